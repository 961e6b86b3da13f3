//! [`SchemaError`]: why a schema could not be added.

use std::path::PathBuf;

use agentbus::EventType;

/// Why [`Schemas`](crate::Schemas) could not add a schema.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// A file or directory could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// What could not be read.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A schema file is not JSON.
    #[error("{} is not JSON", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// Where and why.
        #[source]
        source: serde_json::Error,
    },
    /// A `.json` file's name is not an event type.
    #[error("{} is not named after an event type (<event.type>.json)", path.display())]
    UnknownType {
        /// The file.
        path: PathBuf,
    },
    /// A schema is not a valid JSON Schema, or needs something outside it.
    #[error("the schema of {event_type}{} does not compile: {message}", path.as_ref().map(|p| format!(" ({})", p.display())).unwrap_or_default())]
    Compile {
        /// The event type it was for.
        event_type: EventType,
        /// The file it came from, if any.
        path: Option<PathBuf>,
        /// What the compiler said.
        message: String,
    },
}
