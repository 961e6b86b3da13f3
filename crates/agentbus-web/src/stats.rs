//! `GET /api/stats`.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::Json;

use crate::state::SharedState;
use crate::wire::{RateWindow, StatsReply, StoreCounters};

pub(crate) async fn stats(State(state): State<SharedState>) -> Json<StatsReply> {
    let bus = state.bus.stats();
    let hub = &state.hub;
    let rates = hub.rates();
    let websocket = hub.websocket_clients.load(Ordering::Relaxed);
    let sse = hub.sse_clients.load(Ordering::Relaxed);
    let recorder = state.recorder.as_ref().map(|recorder| recorder.stats());
    Json(StatsReply {
        events_published: bus.events_published,
        events_delivered: bus.events_delivered,
        handler_errors: bus.handler_errors,
        active_subscribers: bus.active_subscribers,
        history_size: bus.history_size,
        events_rejected: bus.events_rejected,
        events_deduplicated: bus.events_deduplicated,
        events_rate_limited: bus.events_rate_limited,
        events_invalid: bus.events_invalid,
        retries: bus.retries,
        retries_pending: bus.retries_pending,
        timed_out: bus.timed_out,
        dead_lettered: bus.dead_lettered,
        dead_letters: bus.dead_letters,
        per_type: state
            .bus
            .stats_per_type()
            .unwrap_or_default()
            .into_iter()
            .filter(|counts| counts.published > 0)
            .map(|counts| (counts.event_type.as_str().to_owned(), counts.published))
            .collect(),
        publish_rate: rates.recent_rate,
        clients: websocket + sse,
        websocket_clients: websocket,
        sse_clients: sse,
        store_lag: recorder.as_ref().map(|stats| stats.lag()),
        store: recorder.map(|stats| StoreCounters {
            last_sequence: stats.last_sequence,
            committed: stats.committed,
            duplicates: stats.duplicates,
            dropped: stats.dropped,
            rejected: stats.rejected,
            errors: stats.errors,
            last_error: stats.last_error.as_ref().map(ToString::to_string),
        }),
        rates: RateWindow {
            end: rates.end,
            seconds: crate::hub::RATE_WINDOW_SECS,
            per_type: rates
                .series
                .into_iter()
                .map(|(t, counts)| (t.as_str().to_owned(), counts))
                .collect(),
        },
    })
}
