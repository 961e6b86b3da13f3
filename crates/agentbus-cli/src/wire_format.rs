//! [`WireFormat`]: the event format `publish` sends and `tail` prints.

/// How `publish` reads and sends events and `tail` prints them: the core's
/// JSON, or CloudEvents 1.0 JSON (the mapping is
/// [`agentbus_web::CloudEvent`]'s).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum WireFormat {
    /// The core's JSON form (`{"type": "task.completed", ...}`).
    #[default]
    Json,
    /// CloudEvents 1.0 JSON (`{"specversion": "1.0", "type": ..., "source": "/agentbus/..."}`).
    Cloudevents,
}
