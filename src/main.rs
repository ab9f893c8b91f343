//! The `otter-service` binary: parse the command line and hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = otter_service::cli::Cli::parse();
    otter_service::cli::run(cli)
}
