//! Where the client's settings come from, in the original client's order:
//! URL and prefix from the command line, then the environment, then
//! `~/.config/dlrepo-cli`; the user from that file first, then
//! `DLREPO_USER`, then the login name; the password from
//! `DLREPO_PASSWORD`, then the file.

use std::collections::HashMap;

use dlrepo::cli_slot::{DEFAULT_URL, SLOT_LEN, SLOT_MARKER};

/// The server URL compiled in, which a server rewrites when it serves this
/// binary at `/cli` (its `DLREPO_PUBLIC_URL`): the marker, then the URL,
/// NUL-padded to a fixed size.
#[used]
static DEFAULT_URL_SLOT: [u8; SLOT_LEN] = slot();

const fn slot() -> [u8; SLOT_LEN] {
    let mut s = [0u8; SLOT_LEN];
    let mut i = 0;
    while i < SLOT_MARKER.len() {
        s[i] = SLOT_MARKER[i];
        i += 1;
    }
    let mut j = 0;
    while j < DEFAULT_URL.len() {
        s[i + j] = DEFAULT_URL.as_bytes()[j];
        j += 1;
    }
    s
}

/// The URL in the slot, read at run time: the bytes may have been
/// rewritten in the file, so the compiler must not fold the constant.
fn built_in_url() -> String {
    // SAFETY: a plain read of a static byte array.
    let bytes: [u8; SLOT_LEN] = unsafe { std::ptr::read_volatile(&DEFAULT_URL_SLOT) };
    let url = &bytes[SLOT_MARKER.len()..];
    let end = url.iter().position(|&b| b == 0).unwrap_or(url.len());
    match std::str::from_utf8(&url[..end]) {
        Ok(u) if !u.is_empty() => u.to_string(),
        _ => DEFAULT_URL.to_string(),
    }
}

pub struct Settings {
    /// `urljoin(url, prefix)`, the base every path is joined to.
    pub base: String,
    pub prefix: String,
    pub user: String,
    pub password: String,
}

/// The `[dlrepo-cli]` section of the config file, keys lowercased.
fn config_file() -> Result<HashMap<String, String>, String> {
    let Some(home) = std::env::var_os("HOME") else {
        return Ok(HashMap::new());
    };
    let path = std::path::Path::new(&home).join(".config/dlrepo-cli");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(_) => return Ok(HashMap::new()),
    };
    let ini = ini::Ini::load_from_str_noescape(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = HashMap::new();
    if let Some(section) = ini.section(Some("dlrepo-cli")) {
        for (k, v) in section.iter() {
            out.insert(k.to_lowercase(), v.to_string());
        }
    }
    Ok(out)
}

/// configparser's basic interpolation: `%(key)s` is another key's value
/// and `%%` a literal `%`.
fn interpolate(value: &str, vars: &HashMap<String, String>, depth: u32) -> Result<String, String> {
    if depth > 10 {
        return Err(format!("interpolation too deep in {value:?}"));
    }
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('%') {
            out.push('%');
            rest = r;
        } else if let Some(r) = after.strip_prefix('(') {
            let end = r.find(")s").ok_or_else(|| format!("bad interpolation in {value:?}"))?;
            let key = r[..end].to_lowercase();
            let v = vars
                .get(&key)
                .ok_or_else(|| format!("no option {key:?} for interpolation"))?;
            out.push_str(&interpolate(v, vars, depth + 1)?);
            rest = &r[end + 2..];
        } else {
            return Err(format!("'%' must be followed by '%' or '(' in {value:?}"));
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn login_name() -> String {
    for var in ["LOGNAME", "USER", "LNAME", "USERNAME"] {
        if let Ok(v) = std::env::var(var) {
            if !v.is_empty() {
                return v;
            }
        }
    }
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default()
}

pub fn resolve(url: Option<String>, prefix: Option<String>) -> Result<Settings, String> {
    let env = |k: &str| std::env::var(k).ok();
    let mut vars = HashMap::from([
        ("user".to_string(), env("DLREPO_USER").unwrap_or_else(login_name)),
        ("password".to_string(), String::new()),
        ("url".to_string(), built_in_url()),
        ("prefix".to_string(), "/~%(user)s/".to_string()),
    ]);
    vars.extend(config_file()?);
    let get = |k: &str| interpolate(&vars[k], &vars, 0);
    let user = get("user")?;
    let password = match env("DLREPO_PASSWORD") {
        Some(p) => p,
        None => get("password")?,
    };
    let url = match url.or_else(|| env("DLREPO_URL")) {
        Some(u) => u,
        None => get("url")?,
    };
    let prefix = match prefix.or_else(|| env("DLREPO_PREFIX")) {
        Some(p) => p,
        None => get("prefix")?,
    };
    let base = url::Url::parse(&url)
        .and_then(|u| u.join(&prefix))
        .map_err(|e| format!("{url}: not a valid URL: {e}"))?;
    Ok(Settings {
        base: base.to_string(),
        prefix,
        user,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slot_holds_the_default_until_a_server_rewrites_it() {
        assert_eq!(built_in_url(), DEFAULT_URL);
        assert!(DEFAULT_URL_SLOT.starts_with(SLOT_MARKER));
    }

    #[test]
    fn interpolation_follows_configparser() {
        let vars = HashMap::from([("user".to_string(), "bob".to_string())]);
        assert_eq!(interpolate("/~%(user)s/", &vars, 0).expect("interpolates"), "/~bob/");
        assert_eq!(interpolate("100%%", &vars, 0).expect("interpolates"), "100%");
        assert!(interpolate("%(nope)s", &vars, 0).is_err());
        assert!(interpolate("50%", &vars, 0).is_err());
    }
}
