//! The one-line error report and the error of the whole command.

use std::error::Error;

use crate::{
    demo::DemoError, history::HistoryError, publish::PublishError, replay::ReplayError,
    serve::ServeError, stats::StatsError, tail::TailError,
};

/// Why a command failed at run time (exit code 1). Usage errors never get
/// this far: clap reports them and exits with code 2.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// `agentbus serve` failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// `agentbus demo` failed.
    #[error(transparent)]
    Demo(#[from] DemoError),
    /// `agentbus publish` failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// `agentbus tail` failed.
    #[error(transparent)]
    Tail(#[from] TailError),
    /// `agentbus history` failed.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// `agentbus replay` failed.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// `agentbus stats` failed.
    #[error(transparent)]
    Stats(#[from] StatsError),
    /// The async runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

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
