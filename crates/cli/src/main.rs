//! `agentgate`: the one binary.

mod agent_cmd;
mod allocator;
mod apps_cmd;
mod audit_cmd;
mod cli;
mod db_cmd;
mod dev_cmd;
mod gateway_cmd;
mod guard_args;
mod keys_cmd;
mod serve_cmd;
mod users_cmd;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: allocator::Allocator = allocator::Allocator;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    init_logging(cli.default_log_filter());
    match cli.run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agentgate: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, filtered by `AGENTGATE_LOG` (else `default`), e.g.
/// `AGENTGATE_LOG=agentgate_guard=debug`.
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AGENTGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
