//! `--nats URL [--jetstream]`: bridge the served bus to a NATS server.

use agentbus::{EventBus, Redacted};
use agentbus_nats::{BridgeConfig, ConnectError, NatsBridge};

/// The NATS options of `agentbus serve`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct NatsArgs {
    /// Bridge the bus to this NATS server (`nats://127.0.0.1:4222`): local
    /// events are sent there and events from other buses arrive here.
    #[arg(
        long,
        env = "AGENTBUS_NATS",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub nats: Option<String>,

    /// Bridge through JetStream (durable, acknowledged) instead of core NATS.
    #[arg(long, requires = "nats")]
    pub jetstream: bool,

    /// This bus's name on NATS (used to ignore its own events coming back).
    #[arg(long, value_name = "NAME", requires = "nats")]
    pub nats_name: Option<String>,
}

/// The NATS bridge could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot bridge to NATS at {url}")]
pub struct NatsError {
    /// The server URL, its secrets redacted.
    url: String,
    #[source]
    source: ConnectError,
}

/// A running bridge.
pub(crate) struct Bridge(NatsBridge);

impl Bridge {
    /// Connects when `--nats` was given.
    pub(crate) async fn connect(
        args: &NatsArgs,
        bus: &EventBus,
    ) -> Result<Option<Self>, NatsError> {
        let Some(url) = &args.nats else {
            return Ok(None);
        };
        let mut config = BridgeConfig::default().jetstream(args.jetstream);
        if let Some(name) = &args.nats_name {
            config = config.name(name.clone());
        }
        let bridge = NatsBridge::connect(url, bus, config)
            .await
            .map_err(|source| NatsError {
                url: Redacted(url).to_string(),
                source,
            })?;
        tracing::info!(url = %Redacted(url), jetstream = args.jetstream, name = bridge.name(), "bridged to NATS");
        Ok(Some(Self(bridge)))
    }

    /// Sends what is buffered and disconnects.
    pub(crate) async fn shutdown(self) {
        let stats = self.0.shutdown().await;
        tracing::info!(
            sent = stats.sent,
            received = stats.received,
            "NATS bridge stopped"
        );
    }
}
