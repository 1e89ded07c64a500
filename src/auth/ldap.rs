//! Groups from LDAP (docs/spec/auth.md §3.4), with the `ldap3` client on this runtime:
//! an LDAP round trip is just another awaited socket, so it never stalls
//! other requests. At most `DLREPO_LDAP_MAX_CONNECTIONS` authentications
//! talk to the server at once.

use std::rc::Rc;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use tokio::sync::Semaphore;

use crate::config::Config;

pub struct Ldap {
    url: String,
    start_tls: bool,
    user_filter: String,
    base_dn: String,
    groups_filter: String,
    timeout: Duration,
    ignore_passwords: bool,
    slots: Rc<Semaphore>,
}

/// Escapes a value for an LDAP search filter (RFC 4515), so a login cannot
/// widen the filter it is put in. (0.44 used DN escaping here.)
pub fn escape_filter_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// Python `str.format` with only `{login}` and `{dn}`: `{{`/`}}` are
/// literal braces, any other placeholder is an error.
pub fn fill_template(template: &str, login: &str, dn: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err(format!("unclosed placeholder in {template:?}")),
                    }
                }
                match name.as_str() {
                    "login" => out.push_str(login),
                    "dn" => out.push_str(dn),
                    other => return Err(format!("unknown placeholder {{{other}}} in {template:?}")),
                }
            }
            '}' => return Err(format!("single '}}' in {template:?}")),
            c => out.push(c),
        }
    }
    Ok(out)
}

impl Ldap {
    pub fn new(cfg: &Config) -> Ldap {
        let url = cfg.ldap_url.clone().unwrap_or_default();
        Ldap {
            start_tls: cfg.ldap_start_tls && url.starts_with("ldap://"),
            url,
            user_filter: cfg.ldap_user_filter.clone().unwrap_or_default(),
            base_dn: cfg.ldap_base_dn.clone().unwrap_or_default(),
            groups_filter: cfg.ldap_groups_filter.clone().unwrap_or_default(),
            timeout: Duration::from_secs(cfg.ldap_timeout.max(1)),
            ignore_passwords: cfg.ignore_passwords,
            slots: Rc::new(Semaphore::new(cfg.ldap_max_connections.max(1) as usize)),
        }
    }

    async fn connect(&self) -> Result<ldap3::Ldap, String> {
        let settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout)
            .set_starttls(self.start_tls);
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &self.url)
            .await
            .map_err(|e| e.to_string())?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    /// The login's groups: empty when the user is unknown or the password
    /// is wrong; an error for anything else (the request gets a 500 in 0.44;
    /// here it is refused).
    pub async fn groups(&self, login: &str, password: &str) -> Result<Vec<String>, String> {
        if !self.ignore_passwords && (login.is_empty() || password.is_empty()) {
            return Ok(Vec::new());
        }
        let _slot = self.slots.acquire().await.map_err(|e| e.to_string())?;
        let escaped = escape_filter_value(login);
        let filter = fill_template(&self.user_filter, &escaped, "")?;
        let mut ldap = self.connect().await?;
        let (entries, _) = ldap
            .with_timeout(self.timeout)
            .search(&self.base_dn, Scope::Subtree, &filter, vec!["1.1"])
            .await
            .and_then(|r| r.success())
            .map_err(|e| e.to_string())?;
        let _ = ldap.unbind().await;
        let dn = match entries.len() {
            0 => return Ok(Vec::new()),
            1 => SearchEntry::construct(entries.into_iter().next().ok_or("no entry")?).dn,
            n => return Err(format!("{n} LDAP entries match user {login}")),
        };
        let mut ldap = self.connect().await?;
        let bind = if self.ignore_passwords {
            ldap.with_timeout(self.timeout).simple_bind("", "").await
        } else {
            ldap.with_timeout(self.timeout).simple_bind(&dn, password).await
        }
        .map_err(|e| e.to_string())?;
        if bind.rc == 49 {
            // invalidCredentials
            let _ = ldap.unbind().await;
            return Ok(Vec::new());
        }
        bind.success().map_err(|e| e.to_string())?;
        let filter = fill_template(&self.groups_filter, &escaped, &dn)?;
        let (entries, _) = ldap
            .with_timeout(self.timeout)
            .search(&self.base_dn, Scope::Subtree, &filter, vec!["cn"])
            .await
            .and_then(|r| r.success())
            .map_err(|e| e.to_string())?;
        let _ = ldap.unbind().await;
        Ok(entries
            .into_iter()
            .filter_map(|e| {
                SearchEntry::construct(e)
                    .attrs
                    .get("cn")
                    .and_then(|v| v.first().cloned())
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_escaping() {
        assert_eq!(escape_filter_value("bob"), "bob");
        assert_eq!(escape_filter_value("*)(uid=*"), "\\2a\\29\\28uid=\\2a");
        assert_eq!(escape_filter_value("a\\b\0"), "a\\5cb\\00");
    }

    #[test]
    fn templates() {
        assert_eq!(
            fill_template("(uid={login})", "bob", "").expect("test value"),
            "(uid=bob)"
        );
        assert_eq!(
            fill_template("(&(member={dn})(x={{y}}))", "bob", "uid=bob,dc=x").expect("test value"),
            "(&(member=uid=bob,dc=x)(x={y}))"
        );
        assert!(fill_template("({other})", "bob", "").is_err());
        assert!(fill_template("(uid={login)", "bob", "").is_err());
    }
}
