//! The `agentbus` command: serve the bus with its durable store, HTTP API and
//! live dashboard, run the demo, and publish, follow, query and replay events.
//!
//! This library holds everything the binary does, one module per command, so
//! that it can be tested and documented; `src/main.rs` only calls [`main`].
//!
//! # Commands
//!
//! | command | what it does |
//! |---|---|
//! | `agentbus serve` | a bus with a store (SQLite `./agentbus.db` by default), the HTTP/WebSocket/SSE API and the dashboard, on `127.0.0.1:7878` |
//! | `agentbus demo` | the same server over simulated agents playing the specification's scenarios |
//! | `agentbus publish TYPE` | `POST /api/events` one event, or a file of them in batches |
//! | `agentbus tail` | a coloured live view over `GET /ws`, resuming after a disconnect |
//! | `agentbus history` | `GET /api/events`, one line or JSON object per event |
//! | `agentbus replay --store S` | publish a stored range into a fresh bus (or a server) |
//! | `agentbus stats` | `GET /api/stats` |
//!
//! # Behaviour
//!
//! - **Exit codes.** 0 on success, 1 on a runtime error, 2 on a usage error
//!   (clap's). `--help` works on every command.
//! - **Errors** are printed on stderr as one line: the error and its causes
//!   joined with `": "` (see [`report`]), e.g.
//!   `error: cannot reach http://127.0.0.1:7878/api/stats: ... Connection refused (os error 111)`.
//! - **Colour** only on a terminal, never when `NO_COLOR` is set, unless
//!   `--color always`.
//! - **Client commands** (`publish`, `tail`, `history`, `stats`) talk to
//!   `--url` (env `AGENTBUS_URL`, default `http://127.0.0.1:7878`) and send
//!   `--token` (env `AGENTBUS_TOKEN`) as a bearer token when one is given.
//! - **`serve` and `demo`** print the address they listen on as their first
//!   line on stdout (`--addr 127.0.0.1:0` picks a free port), shut down on
//!   Ctrl-C or SIGTERM, and flush the store before exiting.
//!
//! # Example
//!
//! ```
//! use agentbus_cli::{Cli, Command};
//! use clap::Parser;
//!
//! let cli = Cli::try_parse_from(["agentbus", "history", "--type", "task.completed,task.failed"]).unwrap();
//! let Command::History(args) = cli.command else { unreachable!() };
//! assert_eq!(args.filter.types.len(), 2);
//! ```

mod cli;
mod client;
mod demo;
mod error;
mod filter;
mod history;
mod nats;
mod publish;
mod render;
mod replay;
mod scenarios;
mod serve;
mod stats;
mod store_spec;
mod tail;

pub use crate::{
    cli::{Cli, Command},
    client::{ApiClient, ClientError, EventsPage, PublishReply, SequencedEvent, ServerArgs},
    demo::{DemoArgs, DemoError},
    error::{report, CommandError},
    filter::FilterArgs,
    history::{HistoryArgs, HistoryError, Order},
    nats::{NatsArgs, NatsError},
    publish::{PublishArgs, PublishError},
    render::{ColorChoice, Palette},
    replay::{ReplayArgs, ReplayError},
    scenarios::{Demo, DemoConfig},
    serve::{ServeArgs, ServeError},
    stats::{StatsArgs, StatsError},
    store_spec::{OpenStoreError, ParseStoreSpecError, StoreSpec},
    tail::{TailArgs, TailError},
};

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

/// Parses the command line, runs the command and returns the exit code:
/// what the `agentbus` binary does.
///
/// Usage errors and `--help` are handled by clap (exit codes 2 and 0);
/// a runtime error is printed on stderr as one line and gives exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.command);
    let palette = Palette::stderr(cli.color);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "{}: {}", palette.error("error"), report(&error));
            ExitCode::FAILURE
        }
    }
}

/// Runs a parsed command line on a new multi-threaded tokio runtime.
pub fn run(cli: Cli) -> Result<(), CommandError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("agentbus")
        .build()
        .map_err(CommandError::Runtime)?;
    let color = cli.color;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args, color).await?,
            Command::Demo(args) => demo::run(args, color).await?,
            Command::Publish(args) => publish::run(args, color).await?,
            Command::Tail(args) => tail::run(args, color).await?,
            Command::History(args) => history::run(args, color).await?,
            Command::Replay(args) => replay::run(args, color).await?,
            Command::Stats(args) => stats::run(args, color).await?,
        }
        Ok(())
    })
}

/// Logs go to stderr, filtered by `RUST_LOG`; the servers log at `info` by
/// default, the client commands only warnings.
fn init_tracing(command: &Command) {
    use tracing_subscriber::EnvFilter;
    let default = match command {
        Command::Serve(_) => "info",
        // The demo narrates its failing handler itself.
        Command::Demo(_) => "info,agentbus::handler=error",
        _ => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(Palette::stderr(ColorChoice::Auto).enabled())
        .try_init();
}
