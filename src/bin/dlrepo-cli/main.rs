//! `dlrepo-cli`: the command-line client of dlrepo, a drop-in for the
//! original Python script (same options, sub-commands, outputs and exit
//! codes) that uploads and downloads several files at once, never sends
//! bytes the server already has, retries transient failures and resumes
//! interrupted downloads.

mod args;
mod client;
mod commands;
mod config;
mod output;
mod progress;
mod transfer;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "dlrepo-cli", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man => {
            return match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let settings = match config::resolve(cli.url.clone(), cli.prefix.clone()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let client = client::Client::new(&settings, cli.retries);
    let run = commands::Run {
        cli: &cli,
        client: &client,
        prefix: &settings.prefix,
    };
    match run.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
