//! `--nats URL [--jetstream]`: bridge the served bus to a NATS server.

use agentbus::{EventBus, Redacted};
use agentbus_nats::{BridgeConfig, ConnectError, NatsBridge};
use agentbus_web::prometheus_client::collector::Collector;
use agentbus_web::prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use agentbus_web::prometheus_client::metrics::counter::ConstCounter;
use agentbus_web::prometheus_client::metrics::MetricType;

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

/// The bridge's counters on `GET /metrics`: `agentbus_nats_sent_total`,
/// `agentbus_nats_received_total`, `agentbus_nats_lost_total{reason}` (the
/// counts of events that did not make it: `outgoing_dropped`,
/// `outgoing_rejected`, `incoming_lost`) and
/// `agentbus_nats_rejected_total{reason}` (incoming messages refused:
/// `invalid`, `unknown_type`, `oversized`).
#[derive(Debug)]
pub(crate) struct BridgeCollector(pub(crate) agentbus_nats::StatsHandle);

impl Bridge {
    /// A collector of this bridge's counters for the web API's metrics.
    pub(crate) fn collector(&self) -> BridgeCollector {
        BridgeCollector(self.0.stats_handle())
    }
}

impl Collector for BridgeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let stats = self.0.snapshot();
        for (name, help, value) in [
            (
                "agentbus_nats_sent",
                "Events the bridge sent to NATS",
                stats.sent,
            ),
            (
                "agentbus_nats_received",
                "Events the bridge received from NATS",
                stats.received,
            ),
        ] {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(metric)?;
        }
        for (name, help, reasons) in [
            (
                "agentbus_nats_lost",
                "Events that did not cross the bridge, by reason",
                [
                    ("outgoing_dropped", stats.outgoing_dropped),
                    ("outgoing_rejected", stats.outgoing_rejected),
                    ("incoming_lost", stats.incoming_lost),
                ],
            ),
            (
                "agentbus_nats_rejected",
                "Incoming messages refused, by reason",
                [
                    ("invalid", stats.rejected_invalid),
                    ("unknown_type", stats.rejected_unknown_type),
                    ("oversized", stats.rejected_oversized),
                ],
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (reason, value) in reasons {
                ConstCounter::new(value).encode(family.encode_family(&[("reason", reason)])?)?;
            }
        }
        Ok(())
    }
}
