//! `GET /api/stream`: the live feed as Server-Sent Events.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_core::Stream;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::api::SharedState;
use crate::error::ApiError;
use crate::hub::Item;
use crate::live::{ClientGuard, Kind, Selection};
use crate::params::Filter;

pub(crate) async fn stream(
    State(state): State<SharedState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let selection = Selection::parse(&uri, Some(&headers))?;
    let guard = ClientGuard::acquire(&state, Kind::Sse)?;
    let receiver = state.hub.subscribe();
    let events = futures_util::stream::unfold(
        (receiver, selection.filter, guard),
        |(mut receiver, filter, guard)| async move {
            let event = next(&mut receiver, &filter).await?;
            Some((Ok(event), (receiver, filter, guard)))
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

async fn next(receiver: &mut broadcast::Receiver<Item>, filter: &Filter) -> Option<SseEvent> {
    loop {
        match receiver.recv().await {
            Ok(Item::Event(frame)) if filter.matches(&frame.event) => {
                let event = SseEvent::default().data(frame.json.as_str());
                return Some(match frame.sequence {
                    Some(sequence) => event.id(sequence.to_string()),
                    None => event,
                });
            }
            Ok(Item::Event(_)) => {}
            Ok(Item::Lagged(missed)) | Err(RecvError::Lagged(missed)) => {
                return Some(SseEvent::default().data(format!("{{\"lagged\":{missed}}}")))
            }
            Err(RecvError::Closed) => return None,
        }
    }
}
