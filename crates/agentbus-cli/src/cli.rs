//! The command line: global options and one subcommand.

use clap::{Parser, Subcommand};

use crate::commands::{
    demo::DemoArgs, dlq::DlqArgs, history::HistoryArgs, publish::PublishArgs, replay::ReplayArgs,
    schema::SchemaArgs, serve::ServeArgs, stats::StatsArgs, tail::TailArgs,
};
use crate::render::ColorChoice;

/// The parsed command line of `agentbus`.
///
/// ```
/// use agentbus_cli::{Cli, Command};
/// use clap::Parser;
///
/// let cli = Cli::try_parse_from(["agentbus", "publish", "task.completed", "--circle", "5"]).unwrap();
/// assert!(matches!(cli.command, Command::Publish(_)));
///
/// let usage = Cli::try_parse_from(["agentbus", "publish", "task.finished"]).unwrap_err();
/// assert_eq!(usage.exit_code(), 2);
/// ```
#[derive(Debug, Parser)]
#[command(
    name = "agentbus",
    version,
    about = "Serve, watch and query an agentbus event bus",
    long_about = "Serve, watch and query an agentbus event bus.\n\n\
        `agentbus demo` starts a bus with simulated agents and its live dashboard. \
        `agentbus serve` runs the bus with a durable store, the HTTP/WebSocket/SSE API and \
        the dashboard; publish, tail, history and stats talk to such a server.\n\n\
        Exit codes: 0 success, 1 runtime error, 2 usage error.",
    propagate_version = true
)]
pub struct Cli {
    /// When to colour the output: auto (a terminal and no NO_COLOR), always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// One `agentbus` subcommand and its arguments.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Run the bus with a store, the HTTP/WebSocket/SSE API and the dashboard.
    Serve(ServeArgs),
    /// Run simulated agents on a bus with the dashboard: watch events flow.
    Demo(DemoArgs),
    /// Publish one event (or a file of events) to a running server.
    Publish(PublishArgs),
    /// Follow a running server's events live, coloured by domain.
    Tail(TailArgs),
    /// List past events from a running server.
    History(HistoryArgs),
    /// Publish a stored range of events again, in order, for debugging.
    Replay(ReplayArgs),
    /// Show a running server's counters.
    Stats(StatsArgs),
    /// Check stored events against a directory of JSON Schemas.
    Schema(SchemaArgs),
    /// List, show, redrive or discard a running server's dead letters.
    Dlq(DlqArgs),
}
