//! Logging: `tracing` with an `EnvFilter` (default `info`, `RUST_LOG` overrides), as text
//! or JSON lines. Tokens, secrets and notebook contents are never logged.

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. `json` selects JSON lines. Logs go to stderr so that
/// commands like `dump-grades` can write CSV to stdout.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
