//! `GET /api/stats`.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Map, Value};

use crate::state::SharedState;

pub(crate) async fn stats(State(state): State<SharedState>) -> Json<Value> {
    let bus = state.bus.stats();
    let hub = &state.hub;
    let per_type: Map<String, Value> = hub
        .per_type()
        .into_iter()
        .map(|(t, n)| (t.as_str().to_owned(), json!(n)))
        .collect();
    let rates = hub.rates();
    let series: Map<String, Value> = rates
        .series
        .into_iter()
        .map(|(t, counts)| (t.as_str().to_owned(), json!(counts)))
        .collect();
    let websocket = hub.websocket_clients.load(Ordering::Relaxed);
    let sse = hub.sse_clients.load(Ordering::Relaxed);
    let (store, store_lag) = match &state.recorder {
        Some(recorder) => {
            let stats = recorder.stats();
            (
                json!({
                    "last_sequence": stats.last_sequence,
                    "committed": stats.committed,
                    "duplicates": stats.duplicates,
                    "dropped": stats.dropped,
                    "rejected": stats.rejected,
                    "errors": stats.errors,
                    "last_error": stats.last_error.as_ref().map(|e| e.to_string()),
                }),
                json!(stats.lag()),
            )
        }
        None => (Value::Null, Value::Null),
    };
    Json(json!({
        "events_published": bus.events_published,
        "events_delivered": bus.events_delivered,
        "handler_errors": bus.handler_errors,
        "active_subscribers": bus.active_subscribers,
        "history_size": bus.history_size,
        "retries": bus.retries,
        "retries_pending": bus.retries_pending,
        "timed_out": bus.timed_out,
        "dead_lettered": bus.dead_lettered,
        "dead_letters": bus.dead_letters,
        "per_type": per_type,
        "publish_rate": rates.recent_rate,
        "clients": websocket + sse,
        "websocket_clients": websocket,
        "sse_clients": sse,
        "store": store,
        "store_lag": store_lag,
        "rates": {
            "end": rates.end,
            "seconds": crate::hub::RATE_WINDOW_SECS,
            "per_type": series,
        },
    }))
}
