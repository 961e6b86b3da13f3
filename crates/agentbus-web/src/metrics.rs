//! `GET /metrics`: the bus, the live clients and the store in the
//! Prometheus/OpenMetrics text format, from `prometheus-client`.
//!
//! Every value but one is read from the counters the bus, the hub and the
//! recorder already keep, when scraped (a [`Collector`]), so nothing on the
//! publish path counts twice; the commit latency histogram is the one
//! metric observed as it happens. More collectors (the NATS bridge's, or
//! any of the application's) plug in with
//! [`WebApi::metrics_collector`](crate::WebApi::metrics_collector).
//!
//! # The families
//!
//! Counters are named here as the Prometheus text format names them (with
//! `_total`; in OpenMetrics the family drops it, its samples keep it).
//!
//! | family | type | labels | what, and where it is read |
//! |---|---|---|---|
//! | `agentbus_events_published_total` | counter | `type` | events published, per type ([`TypeStats::published`]) |
//! | `agentbus_events_delivered_total` | counter | `type` | handler calls that completed, per type of the event ([`TypeStats::delivered`]) |
//! | `agentbus_events_failed_total` | counter | `type` | handler calls that returned `Err` or panicked, and filters that panicked, per type ([`TypeStats::failed`]) |
//! | `agentbus_handler_errors_total` | counter | | all failed calls since the bus was built ([`BusStats::handler_errors`]) |
//! | `agentbus_events_rejected_total` | counter | `reason`: `duplicate`, `rate_limited`, `invalid`, `custom` | events a guard kept out ([`BusStats::events_rejected`] split by reason; `duplicate` is the deduplicated count) |
//! | `agentbus_delivery_retries_total` | counter | | retry attempts made ([`BusStats::retries`]) |
//! | `agentbus_delivery_retries_pending` | gauge | | deliveries waiting for or running a retry ([`BusStats::retries_pending`]) |
//! | `agentbus_delivery_timed_out_total` | counter | | attempts that ran past their timeout ([`BusStats::timed_out`]) |
//! | `agentbus_dead_lettered_total` | counter | | deliveries given up on and kept as dead letters ([`BusStats::dead_lettered`]) |
//! | `agentbus_dead_letters` | gauge | | dead letters held now ([`BusStats::dead_letters`]) |
//! | `agentbus_subscribers` | gauge | | subscriptions on the bus ([`BusStats::active_subscribers`]) |
//! | `agentbus_live_clients` | gauge | `transport`: `websocket`, `sse` | connected live clients (the hub's two counters) |
//! | `agentbus_store_lag` | gauge | | with a store: events published, not yet committed |
//! | `agentbus_store_last_sequence` | gauge | | with a store: the last committed sequence |
//! | `agentbus_store_committed_total`, `_duplicates_total`, `_dropped_total`, `_rejected_total`, `_errors_total` | counter | | with a store: the recorder's [`RecorderStats`](agentbus_store::RecorderStats) of those names |
//! | `agentbus_store_commit_latency_seconds` | histogram | | with a store: a `POST`'s publish to the commit of its events, 1 ms to ~4 s |
//! | `agentbus_nats_sent_total`, `agentbus_nats_received_total` | counter | | `agentbus serve --nats`: the bridge's `BridgeStats` of those names |
//! | `agentbus_nats_lost_total` | counter | `reason`: `outgoing_dropped`, `outgoing_rejected`, `incoming_lost` | `agentbus serve --nats`: events that did not cross the bridge |
//! | `agentbus_nats_rejected_total` | counter | `reason`: `invalid`, `unknown_type`, `oversized` | `agentbus serve --nats`: incoming messages refused |
//!
//! The three per-type families come from the bus's per-type table, which
//! [`WebApi::new`](crate::WebApi::new) turns on
//! ([`EventBus::count_per_type`](agentbus::EventBus::count_per_type)): they
//! count from then on, so what was published before the API was made is in
//! the bus-wide `agentbus_handler_errors_total` (and `/api/stats`'
//! totals) but in no per-type sample. A type appears in all three once
//! anything of it was counted. The rest count from the bus's (or the
//! recorder's) start. Deliveries count every subscriber, including the
//! API's own: the hub's stream (without a store) or the recorder (with
//! one) adds one delivery per event.
//!
//! [`TypeStats::published`]: agentbus::TypeStats::published
//! [`TypeStats::delivered`]: agentbus::TypeStats::delivered
//! [`TypeStats::failed`]: agentbus::TypeStats::failed
//! [`BusStats::handler_errors`]: agentbus::BusStats::handler_errors
//! [`BusStats::events_rejected`]: agentbus::BusStats::events_rejected
//! [`BusStats::retries`]: agentbus::BusStats::retries
//! [`BusStats::retries_pending`]: agentbus::BusStats::retries_pending
//! [`BusStats::timed_out`]: agentbus::BusStats::timed_out
//! [`BusStats::dead_lettered`]: agentbus::BusStats::dead_lettered
//! [`BusStats::dead_letters`]: agentbus::BusStats::dead_letters
//! [`BusStats::active_subscribers`]: agentbus::BusStats::active_subscribers

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use agentbus::TypeStats;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::error::ApiError;
use crate::state::{AppState, SharedState};

/// The `Content-Type` of a scrape that asked for OpenMetrics.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The `Content-Type` of every other scrape: the Prometheus text format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The registry a router serves, and the one metric observed as it happens.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    commit_latency: Histogram,
}

impl Metrics {
    /// The registry over `state` (held weakly: the state owns the registry)
    /// and `extra` collectors.
    pub(crate) fn new(state: Weak<AppState>, extra: Vec<Box<dyn Collector>>) -> Self {
        let mut registry = Registry::default();
        // 1 ms .. ~4 s.
        let commit_latency = Histogram::new(exponential_buckets(0.001, 2.0, 13));
        registry.register(
            "agentbus_store_commit_latency_seconds",
            "Seconds from a POST's publish to the commit of its events",
            commit_latency.clone(),
        );
        registry.register_collector(Box::new(ApiCollector { state }));
        for collector in extra {
            registry.register_collector(collector);
        }
        Self {
            registry,
            commit_latency,
        }
    }

    /// Records how long a `POST`'s events took to commit.
    pub(crate) fn observe_commit(&self, took: Duration) {
        self.commit_latency.observe(took.as_secs_f64());
    }
}

/// A scrape answers in OpenMetrics when its `Accept` names it (as
/// Prometheus's does), else in the Prometheus text format 0.0.4 (as
/// `promtool check metrics` and older scrapers read it).
pub(crate) async fn scrape(
    State(state): State<SharedState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("application/openmetrics-text"));
    let mut body = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut body, &state.metrics.registry).map_err(
        |_| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "the metrics could not be encoded",
            )
        },
    )?;
    let (body, content_type) = if openmetrics {
        (body, OPENMETRICS)
    } else {
        (prometheus_text(&body), PROMETHEUS_TEXT)
    };
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

/// OpenMetrics text as the Prometheus text format 0.0.4 reads it: a
/// counter's `# HELP`/`# TYPE` name its samples' `_total` name, and there
/// is no `# EOF`. (Only counters differ among the types used here.)
fn prometheus_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let comment = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|prefix| Some((prefix, line.strip_prefix(prefix)?)));
        match comment {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                text.push_str(prefix);
                text.push_str(name);
                if counters.contains(&name) {
                    text.push_str("_total");
                }
                text.push(' ');
                text.push_str(tail);
            }
            None => text.push_str(line),
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::prometheus_text;

    #[test]
    fn counters_are_named_by_their_total_and_eof_goes() {
        let openmetrics = "# HELP a_events Events.\n# TYPE a_events counter\n\
            a_events_total{type=\"x\"} 2\n# HELP b Lag.\n# TYPE b gauge\nb 1\n# EOF\n";
        assert_eq!(
            prometheus_text(openmetrics),
            "# HELP a_events_total Events.\n# TYPE a_events_total counter\n\
             a_events_total{type=\"x\"} 2\n# HELP b Lag.\n# TYPE b gauge\nb 1\n"
        );
    }
}

/// Reads the bus's, the hub's and the recorder's counters at each scrape.
#[derive(Debug)]
struct ApiCollector {
    state: Weak<AppState>,
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    ConstCounter::new(value).encode(encoder.encode_descriptor(
        name,
        help,
        None,
        MetricType::Counter,
    )?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> std::fmt::Result {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn saturating(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// One counter family with a `label` per sample.
fn labelled_counters<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    samples: impl IntoIterator<Item = (&'a str, u64)>,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, count) in samples {
        ConstCounter::new(count).encode(family.encode_family(&[(label, value)])?)?;
    }
    Ok(())
}

impl Collector for ApiCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let Some(state) = self.state.upgrade() else {
            return Ok(());
        };
        let bus = state.bus.stats();
        let per_type: Vec<TypeStats> = state
            .bus
            .stats_per_type()
            .unwrap_or_default()
            .into_iter()
            .filter(|counts| counts.published + counts.delivered + counts.failed > 0)
            .collect();
        for (name, help, field) in [
            (
                "agentbus_events_published",
                "Events published on the bus, by type (counted since the web API was made)",
                (|counts| counts.published) as fn(&TypeStats) -> u64,
            ),
            (
                "agentbus_events_delivered",
                "Handler calls that completed successfully, by event type (counted since the web API was made)",
                |counts| counts.delivered,
            ),
            (
                "agentbus_events_failed",
                "Handler calls that returned an error or panicked, by event type (counted since the web API was made)",
                |counts| counts.failed,
            ),
        ] {
            labelled_counters(
                &mut encoder,
                name,
                help,
                "type",
                per_type
                    .iter()
                    .map(|counts| (counts.event_type.as_str(), field(counts))),
            )?;
        }
        counter(
            &mut encoder,
            "agentbus_handler_errors",
            "Handler calls that returned an error or panicked",
            bus.handler_errors,
        )?;
        let named = bus.events_deduplicated + bus.events_rate_limited + bus.events_invalid;
        labelled_counters(
            &mut encoder,
            "agentbus_events_rejected",
            "Events a guard kept out of the bus, by reason",
            "reason",
            [
                ("duplicate", bus.events_deduplicated),
                ("rate_limited", bus.events_rate_limited),
                ("invalid", bus.events_invalid),
                ("custom", bus.events_rejected.saturating_sub(named)),
            ],
        )?;
        counter(
            &mut encoder,
            "agentbus_delivery_retries",
            "Retry attempts made",
            bus.retries,
        )?;
        gauge(
            &mut encoder,
            "agentbus_delivery_retries_pending",
            "Deliveries waiting for or running a retry",
            saturating(bus.retries_pending as u64),
        )?;
        counter(
            &mut encoder,
            "agentbus_delivery_timed_out",
            "Handler attempts that ran past their subscription's timeout",
            bus.timed_out,
        )?;
        counter(
            &mut encoder,
            "agentbus_dead_lettered",
            "Deliveries given up on and kept as dead letters",
            bus.dead_lettered,
        )?;
        gauge(
            &mut encoder,
            "agentbus_dead_letters",
            "Dead letters held now",
            saturating(bus.dead_letters as u64),
        )?;
        gauge(
            &mut encoder,
            "agentbus_subscribers",
            "Active subscriptions on the bus",
            saturating(bus.active_subscribers as u64),
        )?;
        let mut clients = encoder.encode_descriptor(
            "agentbus_live_clients",
            "Connected live clients, by transport",
            None,
            MetricType::Gauge,
        )?;
        for (transport, count) in [
            ("websocket", &state.hub.websocket_clients),
            ("sse", &state.hub.sse_clients),
        ] {
            let labels = [("transport", transport)];
            let count = saturating(count.load(Ordering::Relaxed) as u64);
            ConstGauge::new(count).encode(clients.encode_family(&labels)?)?;
        }
        if let Some(recorder) = &state.recorder {
            let stats = recorder.stats();
            gauge(
                &mut encoder,
                "agentbus_store_lag",
                "Events published but not yet committed to the store",
                saturating(stats.lag()),
            )?;
            gauge(
                &mut encoder,
                "agentbus_store_last_sequence",
                "The store's last committed sequence",
                saturating(stats.last_sequence),
            )?;
            for (name, help, value) in [
                (
                    "agentbus_store_committed",
                    "Events committed to the store",
                    stats.committed,
                ),
                (
                    "agentbus_store_duplicates",
                    "Events skipped as already stored",
                    stats.duplicates,
                ),
                (
                    "agentbus_store_dropped",
                    "Events the recorder dropped (overflow policy)",
                    stats.dropped,
                ),
                (
                    "agentbus_store_rejected",
                    "Events the store refused",
                    stats.rejected,
                ),
                (
                    "agentbus_store_errors",
                    "Failed store writes (retried)",
                    stats.errors,
                ),
            ] {
                counter(&mut encoder, name, help, value)?;
            }
        }
        Ok(())
    }
}

/// Keeps [`Metrics`] constructible before the state it reads exists.
pub(crate) fn cyclic(
    make: impl FnOnce(Metrics) -> AppState,
    extra: Vec<Box<dyn Collector>>,
) -> Arc<AppState> {
    Arc::new_cyclic(|weak| make(Metrics::new(weak.clone(), extra)))
}
