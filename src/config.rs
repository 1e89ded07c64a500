//! Settings, read once at startup from `DLREPO_*` environment variables.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use regex::Regex;

/// Every server setting, with the defaults of `docs/spec/config.md`.
#[derive(Debug, Clone)]
pub struct Config {
    pub root_dir: PathBuf,
    pub listen_address: String,
    pub listen_port: u16,
    pub chunk_size: usize,
    pub x_sendfile_header: Option<String>,
    pub orphan_blob_lifetime: u64,
    pub tag_cleanup_period: u64,
    pub user_quota: u64,
    pub log_level: LogLevel,
    pub log_output: LogOutput,
    /// Log lines as JSON objects (`DLREPO_LOG_FORMAT=json`).
    pub log_json: bool,
    /// The INFO line per request (`DLREPO_ACCESS_LOG`, default on).
    pub access_log: bool,
    /// Large downloads spliced file → pipe → socket instead of copied
    /// (`DLREPO_SPLICE_DOWNLOADS`, default off: over loopback, behind a
    /// local proxy, copying costs less; docs/benchmarks.md).
    pub splice_downloads: bool,
    /// A loopback address serving `/metrics` and `/health` without
    /// authentication (`DLREPO_METRICS_ADDRESS`).
    pub metrics_address: Option<std::net::SocketAddr>,
    pub post_process_cmd: Option<String>,
    pub post_process_filter: Option<Regex>,
    pub internal_format_filter: Option<Regex>,
    pub public_url: Option<String>,
    pub latest_releases: bool,
    pub latest_releases_user: bool,
    pub static_dir: Option<PathBuf>,
    pub templates_dir: Option<PathBuf>,
    pub auth_disabled: bool,
    pub ignore_passwords: bool,
    pub auth_realm: String,
    pub auth_file: PathBuf,
    pub acls_dir: PathBuf,
    pub auth_http_login_header: Option<String>,
    pub auth_http_groups_header: Option<String>,
    pub auth_cache_size: u64,
    pub auth_cache_ttl: u64,
    pub ldap_url: Option<String>,
    pub ldap_start_tls: bool,
    pub ldap_user_filter: Option<String>,
    pub ldap_base_dn: Option<String>,
    pub ldap_groups_filter: Option<String>,
    pub ldap_timeout: u64,
    pub ldap_max_connections: u64,
    pub publish_url: Option<String>,
    pub publish_auth: Option<PathBuf>,
    pub publish_filter_cmd: Option<String>,
    pub publish_timeout: u64,
    pub publish_max_requests: u64,
    /// `DLREPO_PUBLISH_RETRIES`: how many more times a mirror that is down,
    /// times out or answers 5xx is tried, 1 s, 2 s, 4 s… apart.
    pub publish_retries: u32,
    pub cli_path: Option<PathBuf>,
    /// `DLREPO_FSYNC`: make uploads durable before answering 201.
    pub fsync: bool,
    /// `DLREPO_HEADER_TIMEOUT`: seconds a client has to send its request head.
    pub header_timeout: u64,
    /// `DLREPO_BODY_TIMEOUT`: seconds a request body may pause.
    pub body_timeout: u64,
    /// `DLREPO_UPLOAD_SESSION_TIMEOUT`: seconds a registry upload session
    /// may stay idle before its data is dropped; a blob it committed is
    /// kept from the orphan GC as long, for its manifest.
    pub upload_session_timeout: u64,
    /// `DLREPO_LISTEN_BACKLOG`: connections the kernel queues before they
    /// are accepted; the kernel caps it at `net.core.somaxconn`.
    pub listen_backlog: u32,
    /// `DLREPO_DIGESTS_FLUSH_DELAY_MS`: how long a format's `.digests` may
    /// lag behind its uploads (which are journaled meanwhile); 0 rewrites it
    /// before every answer.
    pub digests_flush_delay_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOutput {
    Console,
    Syslog,
}

/// A setting that could not be parsed; the message names the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

struct Env<'a>(&'a HashMap<String, String>);

impl Env<'_> {
    /// A string setting; empty counts as unset.
    fn string(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.is_empty()).cloned()
    }

    fn string_or(&self, name: &str, default: &str) -> String {
        self.string(name).unwrap_or_else(|| default.to_string())
    }

    fn int<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, ConfigError> {
        match self.0.get(name) {
            None => Ok(default),
            // Like Python's int(): surrounding whitespace is allowed, nothing else.
            Some(v) => v
                .trim()
                .parse::<T>()
                .map_err(|_| ConfigError(format!("{name}: invalid integer value {v:?}"))),
        }
    }

    /// "Exactly 1 enables".
    fn flag_one(&self, name: &str) -> bool {
        self.0.get(name).map(|v| v == "1").unwrap_or(false)
    }

    /// "Anything other than 0 enables" (default on).
    fn flag_not_zero(&self, name: &str) -> bool {
        self.0.get(name).map(|v| v != "0").unwrap_or(true)
    }

    fn regex(&self, name: &str) -> Result<Option<Regex>, ConfigError> {
        match self.string(name) {
            None => Ok(None),
            // Python's re.match anchors at the start only.
            Some(v) => Regex::new(&format!("^(?:{v})")).map(Some).map_err(|e| {
                // regex errors span several lines; the message must be one.
                let msg = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
                ConfigError(format!("{name}: invalid regular expression: {msg}"))
            }),
        }
    }
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Config::from_map(&vars)
    }

    /// Reads the settings from a map of variables (for tests).
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let env = Env(vars);
        let log_level = match env.string_or("DLREPO_LOG_LEVEL", "WARNING").to_uppercase().as_str() {
            "DEBUG" => LogLevel::Debug,
            "INFO" => LogLevel::Info,
            "WARNING" | "WARN" => LogLevel::Warning,
            "ERROR" => LogLevel::Error,
            "CRITICAL" | "FATAL" => LogLevel::Critical,
            other => {
                return Err(ConfigError(format!("DLREPO_LOG_LEVEL: unknown level {other:?}")));
            }
        };
        let log_output = match env.string("DLREPO_LOG_OUTPUT").as_deref() {
            Some("console") => LogOutput::Console,
            Some("syslog") => LogOutput::Syslog,
            Some(other) => {
                return Err(ConfigError(format!("DLREPO_LOG_OUTPUT: unknown output {other:?}")));
            }
            None => {
                if nix::unistd::isatty(0).unwrap_or(false) {
                    LogOutput::Console
                } else {
                    LogOutput::Syslog
                }
            }
        };
        let log_json = match env.string_or("DLREPO_LOG_FORMAT", "text").as_str() {
            "text" => false,
            "json" => true,
            other => {
                return Err(ConfigError(format!(
                    "DLREPO_LOG_FORMAT: expected text or json, got {other:?}"
                )));
            }
        };
        let access_log = match vars.get("DLREPO_ACCESS_LOG").map(String::as_str) {
            None | Some("1") => true,
            Some("0") => false,
            Some(v) => return Err(ConfigError(format!("DLREPO_ACCESS_LOG: expected 0 or 1, got {v:?}"))),
        };
        let splice_downloads = match vars.get("DLREPO_SPLICE_DOWNLOADS").map(String::as_str) {
            None | Some("0") => false,
            Some("1") => true,
            Some(v) => {
                return Err(ConfigError(format!(
                    "DLREPO_SPLICE_DOWNLOADS: expected 0 or 1, got {v:?}"
                )))
            }
        };
        let metrics_address = match env.string("DLREPO_METRICS_ADDRESS") {
            None => None,
            Some(a) => {
                let addr: std::net::SocketAddr = a
                    .parse()
                    .map_err(|_| ConfigError(format!("DLREPO_METRICS_ADDRESS: expected IP:PORT, got {a:?}")))?;
                // Nothing asks who is calling there: only this host may.
                if !addr.ip().is_loopback() {
                    return Err(ConfigError(format!(
                        "DLREPO_METRICS_ADDRESS: {a} is not a loopback address; the metrics listener has no authentication"
                    )));
                }
                Some(addr)
            }
        };
        let chunk_size: usize = env.int("DLREPO_CHUNK_SIZE", 262_144)?;
        if chunk_size == 0 {
            return Err(ConfigError("DLREPO_CHUNK_SIZE: must be positive".into()));
        }
        let fsync = match vars.get("DLREPO_FSYNC").map(String::as_str) {
            None | Some("1") => true,
            Some("0") => false,
            Some(v) => return Err(ConfigError(format!("DLREPO_FSYNC: expected 0 or 1, got {v:?}"))),
        };
        Ok(Config {
            root_dir: PathBuf::from(env.string_or("DLREPO_ROOT_DIR", "/var/lib/dlrepo")),
            listen_address: env.string_or("DLREPO_LISTEN_ADDRESS", "127.0.0.1"),
            listen_port: env.int("DLREPO_LISTEN_PORT", 1337)?,
            chunk_size,
            x_sendfile_header: env.string("DLREPO_X_SENDFILE_HEADER"),
            orphan_blob_lifetime: env.int("DLREPO_ORPHAN_BLOB_LIFETIME", 600)?,
            tag_cleanup_period: env.int("DLREPO_TAG_CLEANUP_PERIOD", 86_400)?,
            user_quota: env.int("DLREPO_USER_QUOTA", 10_737_418_240)?,
            log_level,
            log_output,
            log_json,
            access_log,
            splice_downloads,
            metrics_address,
            post_process_cmd: env.string("DLREPO_POST_PROCESS_CMD"),
            post_process_filter: env.regex("DLREPO_POST_PROCESS_FILTER")?,
            internal_format_filter: env.regex("DLREPO_INTERNAL_FORMAT_FILTER")?,
            public_url: env.string("DLREPO_PUBLIC_URL"),
            latest_releases: env.flag_not_zero("DLREPO_LATEST_RELEASES"),
            latest_releases_user: env.flag_not_zero("DLREPO_LATEST_RELEASES_USER"),
            static_dir: env.string("DLREPO_STATIC_DIR").map(PathBuf::from),
            templates_dir: env.string("DLREPO_TEMPLATES_DIR").map(PathBuf::from),
            auth_disabled: env.flag_one("DLREPO_AUTH_DISABLED"),
            ignore_passwords: env.flag_one("DLREPO_IGNORE_PASSWORDS"),
            auth_realm: env.string_or("DLREPO_AUTH_REALM", "dlrepo"),
            auth_file: PathBuf::from(env.string_or("DLREPO_AUTH_FILE", "/etc/dlrepo/auth")),
            acls_dir: PathBuf::from(env.string_or("DLREPO_ACLS_DIR", "/etc/dlrepo/acls")),
            auth_http_login_header: env.string("DLREPO_AUTH_HTTP_LOGIN_HEADER"),
            auth_http_groups_header: env.string("DLREPO_AUTH_HTTP_GROUPS_HEADER"),
            auth_cache_size: env.int("DLREPO_AUTH_CACHE_SIZE", 4096)?,
            auth_cache_ttl: env.int("DLREPO_AUTH_CACHE_TTL", 600)?,
            ldap_url: env.string("DLREPO_LDAP_URL"),
            ldap_start_tls: env.flag_not_zero("DLREPO_LDAP_START_TLS"),
            ldap_user_filter: env.string("DLREPO_LDAP_USER_FILTER"),
            ldap_base_dn: env.string("DLREPO_LDAP_BASE_DN"),
            ldap_groups_filter: env.string("DLREPO_LDAP_GROUPS_FILTER"),
            ldap_timeout: env.int("DLREPO_LDAP_TIMEOUT", 10)?,
            ldap_max_connections: env.int("DLREPO_LDAP_MAX_CONNECTIONS", 4)?,
            publish_url: env.string("DLREPO_PUBLISH_URL"),
            publish_auth: env.string("DLREPO_PUBLISH_AUTH").map(PathBuf::from),
            publish_filter_cmd: env.string("DLREPO_PUBLISH_FILTER_CMD"),
            publish_timeout: env.int("DLREPO_PUBLISH_TIMEOUT", 300)?,
            publish_max_requests: env.int("DLREPO_PUBLISH_MAX_REQUESTS", 1)?,
            publish_retries: env.int("DLREPO_PUBLISH_RETRIES", 5)?,
            cli_path: env.string("DLREPO_CLI_PATH").map(PathBuf::from),
            fsync,
            header_timeout: env.int("DLREPO_HEADER_TIMEOUT", 30)?,
            body_timeout: env.int("DLREPO_BODY_TIMEOUT", 60)?,
            // As many as the system allows: a CI farm connects in bursts.
            listen_backlog: env.int("DLREPO_LISTEN_BACKLOG", 65535)?,
            upload_session_timeout: env.int("DLREPO_UPLOAD_SESSION_TIMEOUT", 3600)?,
            digests_flush_delay_ms: env.int("DLREPO_DIGESTS_FLUSH_DELAY_MS", 1000)?,
        })
    }

    /// Whether a format name matches `DLREPO_INTERNAL_FORMAT_FILTER`.
    pub fn is_internal_format(&self, name: &str) -> bool {
        self.internal_format_filter
            .as_ref()
            .map(|r| r.is_match(name))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        m.entry("DLREPO_LOG_OUTPUT".into()).or_insert_with(|| "console".into());
        Config::from_map(&m)
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).expect("test value");
        assert_eq!(c.root_dir, PathBuf::from("/var/lib/dlrepo"));
        assert_eq!(c.listen_port, 1337);
        assert_eq!(c.chunk_size, 262144);
        assert_eq!(c.orphan_blob_lifetime, 600);
        assert_eq!(c.tag_cleanup_period, 86400);
        assert_eq!(c.digests_flush_delay_ms, 1000);
        assert_eq!(c.user_quota, 10737418240);
        assert_eq!(c.log_level, LogLevel::Warning);
        assert!(!c.auth_disabled);
        assert!(c.fsync);
        assert_eq!(c.auth_realm, "dlrepo");
    }

    #[test]
    fn bad_integers_name_the_variable() {
        let e = cfg(&[("DLREPO_LISTEN_PORT", "abc")]).unwrap_err();
        assert!(e.0.starts_with("DLREPO_LISTEN_PORT:"), "{e}");
        let e = cfg(&[("DLREPO_USER_QUOTA", "")]).unwrap_err();
        assert!(e.0.starts_with("DLREPO_USER_QUOTA:"), "{e}");
        assert!(cfg(&[("DLREPO_FSYNC", "yes")]).is_err());
        let e = cfg(&[("DLREPO_DIGESTS_FLUSH_DELAY_MS", "-1")]).unwrap_err();
        assert!(e.0.starts_with("DLREPO_DIGESTS_FLUSH_DELAY_MS:"), "{e}");
        assert!(cfg(&[("DLREPO_INTERNAL_FORMAT_FILTER", "(")]).is_err());
    }

    #[test]
    fn flags_and_empty_strings() {
        let c = cfg(&[
            ("DLREPO_AUTH_DISABLED", "true"),
            ("DLREPO_PUBLISH_URL", ""),
            ("DLREPO_FSYNC", "0"),
            ("DLREPO_INTERNAL_FORMAT_FILTER", "debug"),
        ])
        .expect("test value");
        assert!(!c.auth_disabled);
        assert!(c.publish_url.is_none());
        assert!(!c.fsync);
        assert!(c.is_internal_format("debug"));
        assert!(c.is_internal_format("debuginfo"));
        assert!(!c.is_internal_format("xdebug"));
        assert!(cfg(&[("DLREPO_AUTH_DISABLED", "1")]).expect("test value").auth_disabled);
    }
}
