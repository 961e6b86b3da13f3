//! The bridge's errors: one type per fallible operation.

use thiserror::Error;

/// Why [`NatsBridge::connect`](crate::NatsBridge::connect) failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// A server of the list is not a NATS URL (`nats://host:port`, `tls://`,
    /// `ws://`, `wss://` or `host:port`).
    #[error("invalid nats server url")]
    Url(#[source] std::io::Error),
    /// The NATS server could not be reached.
    #[error("cannot connect to nats server")]
    Connect(#[source] async_nats::ConnectError),
    /// The subscription on the event subjects failed.
    #[error("cannot subscribe to the event subjects")]
    Subscribe(#[source] async_nats::SubscribeError),
    /// The JetStream stream could not be created or bound.
    #[error("cannot create or bind jetstream stream `{stream}`")]
    Stream {
        /// The stream's name.
        stream: String,
        /// What the server said.
        #[source]
        source: async_nats::jetstream::context::CreateStreamError,
    },
    /// The durable consumer could not be created or bound.
    #[error("cannot create or bind durable consumer `{consumer}`")]
    Consumer {
        /// The consumer's name.
        consumer: String,
        /// What the server said.
        #[source]
        source: async_nats::jetstream::stream::ConsumerError,
    },
    /// The consumer's message stream could not be started.
    #[error("cannot start consuming from jetstream")]
    Consume(#[source] async_nats::jetstream::consumer::StreamError),
    /// The bridge's thread could not be started.
    #[error("cannot start the bridge thread")]
    Thread(#[source] std::io::Error),
    /// The prefix or the name is empty or holds characters a subject or a
    /// consumer name cannot.
    #[error("invalid bridge config: {0}")]
    Config(&'static str),
}
