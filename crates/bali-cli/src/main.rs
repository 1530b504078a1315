//! The `bali` binary: parses the command line and runs [`bali_cli::run`].
//!
//! Failures are printed to stderr as `bali: <message>` and give exit code 1; clap prints
//! its own usage errors and exits with code 2.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = bali_cli::Cli::parse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = bali_cli::run(cli, &mut out).and_then(|()| Ok(out.flush()?));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(bali_cli::CliError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bali: {e}");
            ExitCode::FAILURE
        }
    }
}
