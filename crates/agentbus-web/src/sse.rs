//! `GET /api/stream`: the live feed as Server-Sent Events.
//!
//! The response body is a stream that hyper polls only when the client's
//! socket takes more; a client that stops reading would never be noticed
//! from inside it. So a task per client moves its events from the [`Feed`]
//! into a short queue that the body reads, and gives up (ending the stream,
//! freeing the client's slot) when a send waits longer than `send_timeout`:
//! the same rule as `/ws`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_core::Stream;
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::extract::LiveParams;
use crate::live::{ClientGuard, Feed, Kind, Out, Selection};
use crate::params::Format;
use crate::state::SharedState;

/// Batches queued between a client's task and its response body, and
/// events per batch: enough to keep the socket busy with few wake-ups,
/// small next to the client buffer.
const QUEUE: usize = 4;
const BATCH: usize = 64;

pub(crate) async fn stream(
    State(state): State<SharedState>,
    LiveParams(params): LiveParams,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let selection = Selection::parse(&state, params, Some(&headers))?;
    crate::live::hub_ready(&state).await?;
    let guard = ClientGuard::acquire(&state, Kind::Sse)?;
    let format = selection.format;
    let live = Feed::new(&state, selection);
    let (queue, events) = mpsc::channel(QUEUE);
    tokio::spawn(feed(live, queue, state.send_timeout, guard, format));
    let events = futures_util::stream::unfold(
        (events, Vec::new().into_iter()),
        |(mut events, mut batch)| async move {
            loop {
                if let Some(event) = batch.next() {
                    return Some((Ok(event), (events, batch)));
                }
                batch = events.recv().await?.into_iter();
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// Queues every matching event until the client leaves or a send has
/// waited `send_timeout`; the client counts until then.
async fn feed(
    mut live: Feed,
    queue: mpsc::Sender<Vec<SseEvent>>,
    send_timeout: Duration,
    guard: ClientGuard,
    format: Format,
) {
    loop {
        let out = tokio::select! {
            out = live.next() => out,
            () = queue.closed() => break,
        };
        let Some(first) = out else { break };
        let mut batch: Vec<SseEvent> = event(first, format).into_iter().collect();
        while batch.len() < BATCH {
            let Some(out) = live.try_next() else { break };
            batch.extend(event(out, format));
        }
        if batch.is_empty() {
            continue;
        }
        match tokio::time::timeout(send_timeout, queue.send(batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            Err(_) => {
                tracing::debug!("sse client stopped reading; ending its stream");
                break;
            }
        }
    }
    drop(guard);
}

/// The SSE event for `out`; `None` for an event that cannot be written
/// in `format` (logged when encoded).
fn event(out: Out, format: Format) -> Option<SseEvent> {
    match out {
        Out::Event(frame) => {
            let event = SseEvent::default().data(frame.text(format)?.as_str());
            Some(match frame.sequence {
                Some(sequence) => event.id(sequence.to_string()),
                None => event,
            })
        }
        Out::Lagged(missed) => Some(SseEvent::default().data(format!("{{\"lagged\":{missed}}}"))),
    }
}
