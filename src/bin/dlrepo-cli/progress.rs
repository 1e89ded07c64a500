//! Transfer progress on stderr. On a terminal: a bar per transfer in
//! flight (bytes, rate, ETA) and one for the total. Otherwise the
//! original's two plain lines per file, so logs read the same.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::progress_line;

pub struct Progress {
    bars: Option<(MultiProgress, ProgressBar)>,
}

pub struct Transfer {
    bar: Option<ProgressBar>,
    total: Option<ProgressBar>,
    name: String,
}

impl Progress {
    /// For `files` transfers of `bytes` in all (when known).
    pub fn new(files: usize, bytes: Option<u64>) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { bars: None };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total = multi.add(ProgressBar::new(bytes.unwrap_or(0)));
        total.set_style(
            ProgressStyle::with_template("{prefix} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        total.set_prefix(format!("total ({files} files)"));
        Progress {
            bars: Some((multi, total)),
        }
    }

    pub fn start(&self, name: &str, size: Option<u64>) -> Transfer {
        let Some((multi, total)) = &self.bars else {
            eprintln!("{}", progress_line(0, size, name));
            return Transfer {
                bar: None,
                total: None,
                name: name.to_string(),
            };
        };
        let bar = multi.insert_before(total, ProgressBar::new(size.unwrap_or(0)));
        bar.set_style(
            ProgressStyle::with_template("{bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} ETA {eta:>4} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(name.to_string());
        Transfer {
            bar: Some(bar),
            total: Some(total.clone()),
            name: name.to_string(),
        }
    }
}

impl Transfer {
    pub fn add(&self, n: usize) {
        if let Some(b) = &self.bar {
            b.inc(n as u64);
        }
        if let Some(t) = &self.total {
            t.inc(n as u64);
        }
    }

    /// The transfer restarted from `at` bytes (a resumed download).
    pub fn rewind(&self, by: u64) {
        if let Some(b) = &self.bar {
            b.set_position(b.position().saturating_sub(by));
        }
        if let Some(t) = &self.total {
            t.set_position(t.position().saturating_sub(by));
        }
    }

    /// Done with `bytes` transferred; `skipped` bytes were not sent (a
    /// link to a blob the server has) but count toward the total.
    pub fn finish(self, bytes: u64, skipped: u64) {
        match &self.bar {
            Some(b) => {
                if let Some(t) = &self.total {
                    t.inc(skipped);
                }
                b.finish_and_clear();
                if let Some(t) = &self.total {
                    t.println(format!(
                        "{:>10}  {}",
                        indicatif::HumanBytes(bytes.max(skipped)),
                        self.name
                    ));
                }
            }
            None => eprintln!("{}", progress_line(bytes, Some(bytes), &self.name)),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some((_, total)) = &self.bars {
            total.finish_and_clear();
        }
    }
}
