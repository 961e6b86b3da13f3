//! [`CommandError`], the one error of every command, and its one-line report.

use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;

use agentbus::{BuildError, EventId};
use agentbus_store::StoreError;
use tokio_tungstenite::tungstenite;

use crate::client::ClientError;
use crate::nats::NatsError;
use crate::store_spec::OpenStoreError;

/// Why a command failed at run time (exit code 1). Usage errors never get
/// this far: clap reports them and exits with code 2.
///
/// Messages are lowercase, one line, without the cause: [`report`] joins
/// the [`source`](Error::source) chain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The async runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),

    /// `agentbus serve`: the bus could not be built with the given settings.
    #[error("invalid bus settings")]
    Bus(#[from] BuildError),
    /// `serve`, `demo`, `replay`: the store could not be opened.
    #[error(transparent)]
    OpenStore(#[from] OpenStoreError),
    /// `serve`, `demo`: the address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `serve`, `demo`: the server stopped with an I/O error.
    #[error("the server failed")]
    Serve(#[source] std::io::Error),
    /// `serve`, `demo`: the last events could not be made durable at shutdown.
    #[error("cannot flush the store at shutdown")]
    Flush(#[source] StoreError),
    /// `serve --schemas`, `schema check`: the schemas could not be loaded.
    #[error("cannot load the schemas")]
    Schemas(#[from] agentbus_guard::SchemaError),
    /// `schema check`: stored events the schemas would reject.
    #[error("{0} stored event(s) would be rejected by the schemas")]
    SchemaCheck(u64),
    /// `serve`: the NATS bridge could not connect.
    #[error(transparent)]
    Nats(#[from] NatsError),
    /// `agentbus demo`: its server failed (the cause says how).
    #[error("the demo failed")]
    Demo(#[source] Box<CommandError>),

    /// `agentbus publish`: the server could not be asked or refused the events.
    #[error("cannot publish")]
    Publish(#[source] ClientError),
    /// `publish --caused-by` names an event the server does not know.
    #[error("the event {0} given with --caused-by is unknown to the server")]
    UnknownCause(EventId),
    /// `publish --file`: the file could not be read.
    #[error("cannot read {path}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `publish --file`: an event in the file is not a valid event.
    #[error("{path}: event {index} (line {line}) is not a valid event")]
    BadEvent {
        /// The file.
        path: PathBuf,
        /// The event's position in the file, from 0.
        index: usize,
        /// Its line, from 1.
        line: usize,
        /// Why.
        #[source]
        source: serde_json::Error,
    },

    /// `agentbus tail`: the client could not be set up.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// `tail`: the first connection failed (later ones are retried).
    #[error("cannot connect to {url}")]
    Connect {
        /// The WebSocket URL.
        url: String,
        /// Why.
        #[source]
        source: Box<tungstenite::Error>,
    },
    /// `tail`: the server refused the WebSocket upgrade (a bad filter, a
    /// missing token, too many clients).
    #[error("{url} answered {status}: {message}")]
    Refused {
        /// The WebSocket URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The `error` field of the JSON answer, or the body as text.
        message: String,
    },
    /// `tail`: the connection dropped and `--no-reconnect` was given.
    #[error("the connection to {url} was lost")]
    Lost {
        /// The WebSocket URL.
        url: String,
        /// Why, when the connection failed rather than closed.
        #[source]
        source: Option<Box<tungstenite::Error>>,
    },

    /// `agentbus history` failed.
    #[error("cannot read the history")]
    History(#[source] ClientError),
    /// `agentbus stats` failed.
    #[error("cannot read the stats")]
    Stats(#[source] ClientError),
    /// `agentbus dlq` could not do what it was asked.
    #[error("cannot {action} the dead letters")]
    DeadLetters {
        /// What it tried: list, show, redrive or discard.
        action: &'static str,
        /// Why.
        #[source]
        source: ClientError,
    },
    /// `agentbus dlq show|redrive|discard`: the server has no such id.
    #[error("no dead letter with id {0}")]
    NoSuchDeadLetter(u64),

    /// `agentbus replay`: `--store none` names no store.
    #[error("{0} holds nothing to replay")]
    NoStore(String),
    /// `replay`: reading the store failed.
    #[error("cannot read the store after sequence {after}")]
    ReadStore {
        /// The last sequence replayed before the failure.
        after: u64,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// `replay`: `--to-url` is not a usable URL.
    #[error("invalid --to-url \"{url}\": {reason}")]
    Url {
        /// The URL given, its secrets redacted.
        url: String,
        /// Why.
        reason: String,
    },
    /// `replay`: posting to the server failed.
    #[error("cannot publish to the server after sequence {after}")]
    Post {
        /// The last sequence published before the failure.
        after: u64,
        /// Why.
        #[source]
        source: ClientError,
    },
}

/// What `agentbus serve` (or the demo's server) returned.
#[deprecated(note = "every command fails with `CommandError`")]
pub type ServeError = CommandError;
/// What `agentbus demo` returned.
#[deprecated(note = "every command fails with `CommandError`")]
pub type DemoError = CommandError;
/// What `agentbus publish` returned.
#[deprecated(note = "every command fails with `CommandError`")]
pub type PublishError = CommandError;
/// What `agentbus tail` returned.
#[deprecated(note = "every command fails with `CommandError`")]
pub type TailError = CommandError;
/// What `agentbus history` returned.
#[deprecated(note = "every command fails with `CommandError`")]
pub type HistoryError = CommandError;
/// What `agentbus replay` returned.
#[deprecated(note = "every command fails with `CommandError`")]
pub type ReplayError = CommandError;
/// What `agentbus stats` returned.
#[deprecated(note = "every command fails with `CommandError`")]
pub type StatsError = CommandError;

/// `error` and every error in its [`source`](Error::source) chain, joined
/// with `": "`, on one line: what `agentbus` prints on stderr.
///
/// A cause whose message the previous one already ends with is skipped, so
/// wrappers that repeat their cause do not stutter.
///
/// ```
/// use agentbus_cli::report;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("cannot open the store")]
/// struct OpenError(#[source] std::io::Error);
///
/// let error = OpenError(std::io::Error::other("disk full"));
/// assert_eq!(report(&error), "cannot open the store: disk full");
/// ```
pub fn report(error: &(dyn Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut previous = line.clone();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !message.is_empty() && !previous.ends_with(&message) {
            line.push_str(": ");
            line.push_str(&message);
        }
        previous = message;
        source = cause.source();
    }
    // Some causes (hyper's, tungstenite's) carry newlines; the report is one line.
    line.replace(['\n', '\r'], " ")
}
