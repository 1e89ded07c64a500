//! Log output: `LEVEL: message` lines on stderr, or `dlrepo: message`
//! datagrams to the syslog socket.

use std::fmt;
use std::io::Write;
use std::os::unix::net::UnixDatagram;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, LogLevel, LogOutput};

/// Events logged with this target print as CRITICAL.
pub const CRITICAL: &str = "critical";

/// INFO events with this target are shown at every level: the one line
/// that says where the server listens and what it serves, and the one
/// that says it stopped.
pub const NOTICE: &str = "notice";

struct LineFormat {
    syslog: bool,
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        if self.syslog {
            let prio = match *meta.level() {
                Level::ERROR if meta.target() == CRITICAL => 10,
                Level::ERROR => 11,
                Level::WARN => 12,
                Level::INFO => 14,
                _ => 15,
            };
            write!(w, "<{prio}>dlrepo: ")?;
        } else {
            let name = match *meta.level() {
                Level::ERROR if meta.target() == CRITICAL => "CRITICAL",
                Level::ERROR => "ERROR",
                Level::WARN => "WARNING",
                Level::INFO => "INFO",
                _ => "DEBUG",
            };
            write!(w, "{name}: ")?;
        }
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// Sends each log line as one datagram to `/dev/log`; drops lines when the
/// socket is unavailable rather than blocking the loop.
struct Syslog(Option<UnixDatagram>);

impl Write for &Syslog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(s) = &self.0 {
            let line = buf.strip_suffix(b"\n").unwrap_or(buf);
            let _ = s.send(line);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct SyslogMaker(Syslog);

impl<'a> MakeWriter<'a> for SyslogMaker {
    type Writer = &'a Syslog;
    fn make_writer(&'a self) -> Self::Writer {
        &self.0
    }
}

pub fn init(cfg: &Config) {
    let level = match cfg.log_level {
        LogLevel::Debug => Level::DEBUG,
        LogLevel::Info => Level::INFO,
        LogLevel::Warning => Level::WARN,
        LogLevel::Error | LogLevel::Critical => Level::ERROR,
    };
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(level)
        .with_target(NOTICE, Level::INFO.max(level));
    let builder = tracing_subscriber::fmt().with_max_level(Level::TRACE);
    let syslog = || {
        let sock = UnixDatagram::unbound().ok().filter(|s| s.connect("/dev/log").is_ok());
        if let Some(s) = &sock {
            let _ = s.set_nonblocking(true);
        }
        SyslogMaker(Syslog(sock))
    };
    // One JSON object per line, its fields at the top level, for log shippers.
    if cfg.log_json {
        let json = builder.json().flatten_event(true).with_current_span(false);
        let res = match cfg.log_output {
            LogOutput::Console => json.with_writer(std::io::stderr).finish().with(filter).try_init(),
            LogOutput::Syslog => json.with_writer(syslog()).finish().with(filter).try_init(),
        };
        if let Err(e) = res {
            eprintln!("WARNING: logging already initialised: {e}");
        }
        return;
    }
    let res = match cfg.log_output {
        LogOutput::Console => builder
            .event_format(LineFormat { syslog: false })
            .with_writer(std::io::stderr)
            .finish()
            .with(filter)
            .try_init(),
        LogOutput::Syslog => builder
            .event_format(LineFormat { syslog: true })
            .with_writer(syslog())
            .finish()
            .with(filter)
            .try_init(),
    };
    if let Err(e) = res {
        eprintln!("WARNING: logging already initialised: {e}");
    }
}
