//! The sub-commands: the requests each sends and what it prints, as the
//! original client does (docs/spec/cli.md).

use serde_json::{json, Map, Value};

use crate::args::{Cli, Command};
use crate::client::{join_raw, path_join, CliError, CliResult, Client, Payload};
use crate::output::{json_dumps, py_str};
use crate::transfer::{collect, Download, Upload};

/// `data[key]`, failing as Python's `KeyError` prints.
fn key<'a>(v: &'a Value, k: &str) -> CliResult<&'a Value> {
    v.get(k).ok_or_else(|| CliError::Local(format!("'{k}'")))
}

fn list<'a>(v: &'a Value, k: &str) -> CliResult<&'a Vec<Value>> {
    key(v, k)?
        .as_array()
        .ok_or_else(|| CliError::Local(format!("'{k}' is not a list")))
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

pub struct Run<'a> {
    pub cli: &'a Cli,
    pub client: &'a Client,
    pub prefix: &'a str,
}

impl Run<'_> {
    /// Prints the JSON (`-j`), or `URL: …` on stderr and returns true when
    /// the caller should print text.
    fn listing(&self, path: &str, data: &Value) -> bool {
        if self.cli.raw_json {
            println!("{}", json_dumps(data));
            return false;
        }
        if !self.cli.no_print_url {
            eprintln!("URL: {}", self.client.make_url(path, &[]));
        }
        true
    }

    fn post(&self, path: &str, body: Value) -> CliResult<()> {
        self.client.call("POST", path, &[], Payload::Json(&body)).map(drop)
    }

    fn put(&self, path: &str, body: Value) -> CliResult<()> {
        self.client.call("PUT", path, &[], Payload::Json(&body)).map(drop)
    }

    pub fn run(&self) -> CliResult<()> {
        let c = self.client;
        let dir = |parts: &[&str]| {
            let mut all = vec!["branches"];
            all.extend_from_slice(parts);
            path_join(&all) + "/"
        };
        match &self.cli.command {
            Command::Get {
                branch,
                tag,
                job,
                format,
                target,
                jobs,
            } => {
                std::fs::create_dir_all(target)?;
                let url = dir(&[branch, tag, job, format]);
                let data = c.get_json(&url, &[])?;
                let files: Vec<String> = list(key(&data, "artifact_format")?, "files")?
                    .iter()
                    .map(py_str)
                    .collect();
                Download {
                    client: c,
                    retries: self.cli.retries,
                    jobs: *jobs as usize,
                }
                .run(&url, &files, target)
            }
            Command::Upload {
                branch,
                tag,
                job,
                format,
                paths,
                jobs,
            } => {
                let url = path_join(&["branches", branch, tag, job, format]);
                let files = collect(paths)?;
                Upload {
                    client: c,
                    format_path: url.clone(),
                    jobs: *jobs as usize,
                }
                .run(&files)?;
                c.call("PATCH", &format!("{url}/"), &[], Payload::None)?;
                println!("Browse/Download: {}/", join_raw(&c.base, &url).to_lowercase());
                Ok(())
            }
            Command::GetInfo { branch, tag, job } => {
                let url = dir(&[branch, tag, job]);
                let data = c.get_json(&url, &[])?;
                if self.listing(&url, &data) {
                    let job = key(&data, "job")?
                        .as_object()
                        .ok_or_else(|| CliError::Local("'job' is not an object".into()))?;
                    for (k, v) in job {
                        let v = match v {
                            Value::Array(a) => a.iter().map(py_str).collect::<Vec<_>>().join(" "),
                            v => py_str(v),
                        };
                        println!("{k}={v}");
                    }
                }
                Ok(())
            }
            Command::SetInfo { branch, tag, job, info } => {
                let url = dir(&[branch, tag, job]);
                let mut m = Map::new();
                for (k, v) in info {
                    m.insert(k.clone(), Value::String(v.clone()));
                }
                c.call("PATCH", &url, &[], Payload::Json(&json!({ "job": m })))?;
                let data = c.get_json(&url, &[])?;
                let job = key(&data, "job")?;
                let keys = ["product", "product_variant", "product_branch", "version"];
                if keys.iter().all(|k| job.get(k).is_some()) {
                    let parts: Vec<String> = keys.iter().map(|k| py_str(&job[*k])).collect();
                    let mut all = vec!["products"];
                    all.extend(parts.iter().map(String::as_str));
                    let link = join_raw(&c.base, &path_join(&all));
                    println!("Browse/Download: {}/", link.to_lowercase());
                }
                Ok(())
            }
            Command::Lock {
                branch,
                tag,
                job,
                unlock,
            } => {
                let locked = json!({ "locked": !unlock });
                match job {
                    Some(j) => {
                        let url = dir(&[branch, tag, j]);
                        let body = json!({ "job": locked });
                        if *unlock {
                            self.post(&url, body)
                        } else {
                            self.put(&url, body)
                        }
                    }
                    None => self.post(&dir(&[branch, tag]), json!({ "tag": locked })),
                }
            }
            Command::GetDescription { branch, tag } => {
                let url = dir(&[branch, tag]);
                let data = c.get_json(&url, &[])?;
                if self.listing(&url, &data) {
                    match data.get("tag").and_then(|t| t.get("description")) {
                        None | Some(Value::Null) => {}
                        Some(d) => println!("{}", py_str(d)),
                    }
                }
                Ok(())
            }
            Command::SetDescription {
                branch,
                tag,
                description,
            } => self.post(&dir(&[branch, tag]), json!({ "tag": { "description": description } })),
            Command::Branches => {
                let url = "branches/";
                let data = c.get_json(url, &[])?;
                if self.listing(url, &data) {
                    self.print_branches(&data)?;
                }
                Ok(())
            }
            Command::Tags { branch, released_only } => {
                let url = dir(&[branch]);
                let params = if *released_only {
                    vec![("released".to_string(), "1".to_string())]
                } else {
                    vec![]
                };
                let data = c.get_json(&url, &params)?;
                if self.listing(&url, &data) {
                    for t in list(key(&data, "branch")?, "tags")? {
                        println!("{}", py_str(key(t, "name")?));
                    }
                }
                Ok(())
            }
            Command::Jobs { branch, tag, filters } => {
                let url = dir(&[branch, tag]);
                // A repeated PARAM keeps its first place and last value, like a dict.
                let mut params: Vec<(String, String)> = Vec::new();
                for (k, v) in filters {
                    match params.iter_mut().find(|(pk, _)| pk == k) {
                        Some(p) => p.1 = v.clone(),
                        None => params.push((k.clone(), v.clone())),
                    }
                }
                let data = c.get_json(&url, &params)?;
                if self.listing(&url, &data) {
                    for j in list(key(&data, "tag")?, "jobs")? {
                        println!("{}", py_str(key(j, "name")?));
                    }
                }
                Ok(())
            }
            Command::Status { branch, tag } => {
                let url = dir(&[branch, tag]);
                let data = c.get_json(&url, &[])?;
                if self.listing(&url, &data) {
                    let t = key(&data, "tag")?;
                    println!("released={}", py_str(key(t, "released")?));
                    println!("stable={}", py_str(key(t, "stable")?));
                    println!("locked={}", py_str(key(t, "locked")?));
                    let ps = t.get("publish_status").map(py_str).unwrap_or_default();
                    println!("publish_status={ps}");
                }
                Ok(())
            }
            Command::Release { branch, tag, unset } => {
                self.post(&dir(&[branch, tag]), json!({ "tag": { "released": !unset } }))
            }
            Command::Stable { branch, tag, unset } => {
                self.post(&dir(&[branch, tag]), json!({ "tag": { "stable": !unset } }))
            }
            Command::Internal {
                branch,
                tag,
                job,
                unset,
            } => self.put(&dir(&[branch, tag, job]), json!({ "job": { "internal": !unset } })),
            Command::Delete {
                branch,
                tag,
                job,
                format,
            } => {
                let mut parts = vec![branch.as_str()];
                // Each level only when given and not empty, as the original.
                for p in [tag, job, format].into_iter().flatten() {
                    if !p.is_empty() {
                        parts.push(p);
                    }
                }
                c.call("DELETE", &dir(&parts), &[], Payload::None).map(drop)
            }
            Command::Flush => {
                if !self.prefix.contains('~') {
                    return Err(CliError::Local(format!(
                        "{} is not a user space, refusing to flush",
                        c.base
                    )));
                }
                let data = c.get_json("/branches/", &[])?;
                println!("deleting all branches in {}", c.base);
                for b in list(&data, "branches")? {
                    let name = py_str(key(b, "name")?);
                    c.call("DELETE", &dir(&[&name]), &[], Payload::None)?;
                }
                Ok(())
            }
            Command::CleanupPolicy {
                branch,
                max_daily,
                max_released,
            } => {
                let url = dir(&[branch]);
                let mut policy = Map::new();
                if let Some(d) = max_daily {
                    policy.insert("max_daily_tags".into(), json!(d));
                }
                if let Some(r) = max_released {
                    policy.insert("max_released_tags".into(), json!(r));
                }
                if !policy.is_empty() {
                    return self.post(&url, json!({ "branch": policy }));
                }
                let data = c.get_json(&url, &[])?;
                if self.cli.raw_json {
                    println!("{}", json_dumps(&data));
                } else if let Some(p) = key(key(&data, "branch")?, "cleanup_policy")?.as_object() {
                    for (k, v) in p {
                        println!("{k}={}", py_str(v));
                    }
                }
                Ok(())
            }
            Command::Completions { .. } | Command::Man => Ok(()),
        }
    }

    /// `branches`, and with `-v` the counts in aligned columns.
    fn print_branches(&self, data: &Value) -> CliResult<()> {
        let branches = list(data, "branches")?;
        if !self.cli.verbose {
            for b in branches {
                println!("{}", py_str(key(b, "name")?));
            }
            return Ok(());
        }
        let mut rows = Vec::new();
        for b in branches {
            let mut released = py_str(key(b, "released_tags")?);
            let mut daily = py_str(key(b, "daily_tags")?);
            let locked = py_str(key(b, "locked_tags")?);
            if truthy(Some(key(b, "max_released_tags")?)) {
                released += &format!("/{}", py_str(&b["max_released_tags"]));
            }
            if truthy(Some(key(b, "max_daily_tags")?)) {
                daily += &format!("/{}", py_str(&b["max_daily_tags"]));
            }
            rows.push((format!("{}:", py_str(key(b, "name")?)), released, daily, locked));
        }
        let w = |f: fn(&(String, String, String, String)) -> usize| rows.iter().map(f).max().unwrap_or(0);
        let (nw, rw, dw) = (
            w(|r| r.0.chars().count()),
            w(|r| r.1.chars().count()),
            w(|r| r.2.chars().count()),
        );
        for (n, r, d, l) in &rows {
            println!("{n:<nw$} released {r:>rw$} daily {d:>dw$} locked {l}");
        }
        Ok(())
    }
}
