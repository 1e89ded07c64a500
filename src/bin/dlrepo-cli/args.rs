//! The command line: the original client's global options and 17
//! sub-commands with their flags, plus what this client adds (`--jobs`,
//! `--retries`, completions and the manual page).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Interact with a dlrepo server. If the server requires a password, it is
/// asked for on a terminal unless DLREPO_PASSWORD is set. The user is your
/// own UNIX user, or DLREPO_USER, or `user` in ~/.config/dlrepo-cli.
#[derive(Parser, Debug)]
#[command(name = "dlrepo-cli", version, infer_long_args = true)]
pub struct Cli {
    /// The root URL of the dlrepo server [default: $DLREPO_URL, the config
    /// file's url, or the server this client was downloaded from]
    #[arg(short = 'U', long, value_name = "URL")]
    pub url: Option<String>,
    /// URL prefix. Use --prefix=/ to work at the repository root rather than
    /// in your own user space [default: $DLREPO_PREFIX, the config file's
    /// prefix, or /~USER/]
    #[arg(short, long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// Print the server's JSON instead of text
    #[arg(short = 'j', long)]
    pub raw_json: bool,
    /// More verbose output (branches)
    #[arg(short, long)]
    pub verbose: bool,
    /// Do not print the target URL
    #[arg(long)]
    pub no_print_url: bool,
    /// Retry a transfer this many times after a transient failure
    /// (connection lost, 408, 429, 5xx)
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retries: u32,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Download files from the specified branch into a local directory
    Get {
        branch: String,
        tag: String,
        job: String,
        format: String,
        /// The target directory
        #[arg(value_name = "DIR")]
        target: PathBuf,
        /// Files downloaded at once
        #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
        jobs: u16,
    },
    /// Upload files and/or folders to the specified branch, tag and job
    /// under the specified artifact format
    Upload {
        branch: String,
        tag: String,
        job: String,
        format: String,
        /// Files or folders to upload
        #[arg(value_name = "FILE_OR_DIR", required = true, value_parser = local_path)]
        paths: Vec<PathBuf>,
        /// Files uploaded at once
        #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
        jobs: u16,
    },
    /// Download metadata for the specified job
    GetInfo { branch: String, tag: String, job: String },
    /// Update metadata for the specified job
    SetInfo {
        branch: String,
        tag: String,
        job: String,
        /// Set a metadata parameter (PARAM= to unset)
        #[arg(value_name = "PARAM=VALUE", required = true, value_parser = job_param)]
        info: Vec<(String, String)>,
    },
    /// Lock a job to prevent further modifications, or lock a tag so that it
    /// is never deleted (even by automatic cleanup)
    Lock {
        branch: String,
        tag: String,
        job: Option<String>,
        /// Unlock instead of locking
        #[arg(short, long)]
        unlock: bool,
    },
    /// Get a tag description
    GetDescription { branch: String, tag: String },
    /// Add a description on a tag
    SetDescription {
        branch: String,
        tag: String,
        description: String,
    },
    /// List the branches of the repository
    Branches,
    /// List the tags of a branch
    Tags {
        branch: String,
        /// Only show released tags
        #[arg(short, long)]
        released_only: bool,
    },
    /// List the jobs of a tag
    Jobs {
        branch: String,
        tag: String,
        /// Only jobs that have this metadata value
        #[arg(value_name = "PARAM=VALUE", value_parser = job_param)]
        filters: Vec<(String, String)>,
    },
    /// Display the current status of a tag
    Status { branch: String, tag: String },
    /// Set or unset the 'released' status of a tag (which publishes it when
    /// the server has mirrors)
    Release {
        branch: String,
        tag: String,
        /// Unset instead of setting
        #[arg(short, long)]
        unset: bool,
    },
    /// Set or unset the 'stable' status of a tag
    Stable {
        branch: String,
        tag: String,
        /// Unset instead of setting
        #[arg(short, long)]
        unset: bool,
    },
    /// Set or unset the 'internal' status of a job (never published)
    Internal {
        branch: String,
        tag: String,
        job: String,
        /// Unset instead of setting
        #[arg(short, long)]
        unset: bool,
    },
    /// Delete a branch, a tag, a job or a format
    Delete {
        branch: String,
        tag: Option<String>,
        job: Option<String>,
        format: Option<String>,
    },
    /// Delete all user data
    Flush,
    /// Get or set a branch cleanup policy
    CleanupPolicy {
        branch: String,
        /// Maximum non-released tags to keep
        #[arg(short = 'd', long)]
        max_daily: Option<i64>,
        /// Maximum released tags to keep
        #[arg(short = 'r', long)]
        max_released: Option<i64>,
    },
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff)
    Man,
}

fn local_path(v: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(v);
    if p.is_dir() || p.is_file() {
        Ok(p)
    } else {
        Err(format!("{v:?}: No such file or directory"))
    }
}

/// `PARAM=VALUE` where PARAM is made of word characters.
fn job_param(v: &str) -> Result<(String, String), String> {
    let bad = || format!("{v:?}: Invalid job parameter");
    let (k, val) = v.split_once('=').ok_or_else(bad)?;
    let word = |c: char| c.is_alphanumeric() || c == '_';
    if k.is_empty() || !k.chars().all(word) || val.contains('\n') {
        return Err(bad());
    }
    Ok((k.to_string(), val.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn job_params_are_word_equals_anything() {
        assert_eq!(job_param("a_1=x=y").expect("valid"), ("a_1".into(), "x=y".into()));
        assert_eq!(job_param("a=").expect("valid"), ("a".into(), String::new()));
        assert!(job_param("=x").is_err());
        assert!(job_param("a-b=x").is_err());
        assert!(job_param("ab").is_err());
    }

    #[test]
    fn global_options_go_before_the_sub_command() {
        let c = Cli::try_parse_from(["dlrepo-cli", "-v", "-p", "/", "branches"]).expect("valid");
        assert!(c.verbose);
        assert!(Cli::try_parse_from(["dlrepo-cli", "branches", "-v"]).is_err());
        // Long options may be abbreviated, as argparse allows.
        let c = Cli::try_parse_from(["dlrepo-cli", "--no-print", "branches"]).expect("valid");
        assert!(c.no_print_url);
    }
}
