//! `GET /api/stream`: the live feed as Server-Sent Events.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_core::Stream;

use crate::api::SharedState;
use crate::error::ApiError;
use crate::live::{ClientGuard, Feed, Kind, Out, Selection};

pub(crate) async fn stream(
    State(state): State<SharedState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let selection = Selection::parse(&state, &uri, Some(&headers))?;
    let guard = ClientGuard::acquire(&state, Kind::Sse)?;
    let live = Feed::new(&state, selection);
    let events = futures_util::stream::unfold((live, guard), |(mut live, guard)| async move {
        let event = match live.next().await? {
            Out::Event(frame) => {
                let event = SseEvent::default().data(frame.json.as_str());
                match frame.sequence {
                    Some(sequence) => event.id(sequence.to_string()),
                    None => event,
                }
            }
            Out::Lagged(missed) => SseEvent::default().data(format!("{{\"lagged\":{missed}}}")),
        };
        Some((Ok(event), (live, guard)))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
