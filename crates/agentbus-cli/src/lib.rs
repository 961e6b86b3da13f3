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
//! | `agentbus publish TYPE` | `POST /api/events` one event, or a file of them in batches (`--format cloudevents`: CloudEvents JSON) |
//! | `agentbus tail` | a coloured live view over `GET /ws`, resuming after a disconnect (`--format cloudevents`: CloudEvents JSON lines) |
//! | `agentbus history` | `GET /api/events`, one line or JSON object per event |
//! | `agentbus replay --store S` | publish a stored range into a fresh bus (or a server) |
//! | `agentbus stats` | `GET /api/stats` |
//! | `agentbus schema check DIR --store S` | the stored events a directory of JSON Schemas would reject (exit 1 if any) |
//!
//! # Behaviour
//!
//! - **Exit codes.** 0 on success, 1 on a runtime error, 2 on a usage error
//!   (clap's, which also lists valid event types and suggests the nearest
//!   one). `--help` works on every command.
//! - **Errors** are printed on stderr as one line: the error and its causes
//!   joined with `": "` (see [`report`]), e.g.
//!   `error: cannot read the stats: cannot reach http://127.0.0.1:7878/api/stats: ... Connection refused (os error 111)`.
//!   An HTTP error answer is shown with its status and the server's `error` message.
//! - **Colour** only on a terminal, never when `NO_COLOR` is set, unless
//!   `--color always`; never in `--json` output.
//! - **Client commands** (`publish`, `tail`, `history`, `stats`) talk to
//!   `--url` (env `AGENTBUS_URL`, default `http://127.0.0.1:7878`) and send
//!   `--token` (env `AGENTBUS_TOKEN`) as a bearer token when one is given.
//!   Connecting gives up after 5 s, a request after 60 s.
//! - **`serve`** binds `127.0.0.1:7878` unless told otherwise (it warns when
//!   bound beyond loopback without a token) and prints its URL as the first
//!   line on stdout (`--addr 127.0.0.1:0` picks a free port). With a store, a
//!   `POST /api/events` is answered only once its events are durable, so a
//!   crash (even SIGKILL) loses nothing that was acknowledged. On Ctrl-C or
//!   SIGTERM it stops accepting connections, gives open ones 3 s, stops the
//!   NATS bridge (which sends what it buffered), then commits every recorded
//!   event and prints the last sequence. It refuses foreign web pages and
//!   cuts off slow and idle connections as [`agentbus_web`] describes;
//!   `--allow-origin` and `--allow-host` (repeatable) let more pages and
//!   host names in, `--header-timeout` (default 10 s), `--idle-timeout`
//!   (60 s) and `--max-connections` (2048) tune the limits.
//! - **`--nats URL`** bridges the served bus to NATS (core, or JetStream with
//!   `--jetstream`): local events go out, other buses' events come in and are
//!   stored and shown like local ones; a bus ignores its own events coming
//!   back. An unreachable server is a startup error.
//! - **`tail`** fails at once when the first connection fails or the server
//!   refuses it (a bad filter, a missing token). A connection lost later is
//!   retried with backoff (250 ms doubling to 5 s) and resumed after the
//!   last sequence seen, so with a store nothing is missed or repeated;
//!   without one, events published during the gap are missed (it says so).
//!   `{"lagged": n}` from the server is reported on stderr.
//! - **`history`** shows the newest `--limit` events, oldest first, unless
//!   given `--after`, `--order` or `--all` (which pages to the end).
//! - **`publish --file`** validates every event before sending any (one bad
//!   event: none are published, and the error names its index and line),
//!   then posts batches of `--batch`; each batch is all-or-nothing on the
//!   server, and after a failure it says how many were published.
//! - **`replay`** reads the store in pages of `--batch` and publishes each
//!   event, in sequence order, on a fresh bus (printing it with its
//!   sequence) or into a
//!   running server with `--to-url`. Events keep their ids, so a server with
//!   a store does not store them twice. It never creates a store: a SQLite
//!   file that does not exist is an error (exit 1) naming it.
//! - **Secrets.** A location (`--store`, `--nats`, `--url`, `--to-url`) is
//!   shown in every line and error with its passwords and tokens as `***`
//!   ([`agentbus::Redacted`]); `--help` never shows the values of the
//!   `AGENTBUS_*` variables. A PostgreSQL store can also be given as a
//!   `key=value` string (`host=... user=... password=... dbname=...`).
//! - **`demo`** serves the same API over simulated agents (see [`Demo`]);
//!   its default store is `memory`.
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

/// `println!` that ignores a closed stdout (`| head`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `eprintln!` that ignores a closed stderr instead of panicking.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod cli;
mod client;
mod commands;
mod error;
mod filter;
mod nats;
mod redacting_parser;
mod render;
mod scenarios;
mod store_spec;
mod wire_format;

// The deprecated names (the old error types, `Order`) stay exported until
// the next breaking release.
#[allow(deprecated)]
pub use crate::{
    cli::{Cli, Command},
    client::{ApiClient, ClientError, ServerArgs},
    commands::demo::DemoArgs,
    commands::dlq::{DlqArgs, DlqCommand},
    commands::history::{HistoryArgs, Order},
    commands::publish::PublishArgs,
    commands::replay::ReplayArgs,
    commands::schema::{SchemaArgs, SchemaCheckArgs, SchemaCommand},
    commands::serve::{ExposureArgs, GuardArgs, RateLimitBy, ServeArgs},
    commands::stats::StatsArgs,
    commands::tail::TailArgs,
    error::{
        report, CommandError, DemoError, HistoryError, PublishError, ReplayError, ServeError,
        StatsError, TailError,
    },
    filter::FilterArgs,
    nats::{NatsArgs, NatsError},
    render::{ColorChoice, Palette},
    scenarios::{Demo, DemoConfig},
    store_spec::{OpenStoreError, ParseStoreSpecError, StoreSpec},
    wire_format::WireFormat,
};
// The API's wire types, defined once by the server crate.
pub use agentbus_web::{EventsPage, PublishReply, SequencedEvent};

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
            Command::Serve(args) => commands::serve::run(args, color).await?,
            Command::Demo(args) => commands::demo::run(args, color).await?,
            Command::Publish(args) => commands::publish::run(args, color).await?,
            Command::Tail(args) => commands::tail::run(args, color).await?,
            Command::History(args) => commands::history::run(args, color).await?,
            Command::Replay(args) => commands::replay::run(args, color).await?,
            Command::Stats(args) => commands::stats::run(args, color).await?,
            Command::Schema(args) => commands::schema::run(args).await?,
            Command::Dlq(args) => commands::dlq::run(args).await?,
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
