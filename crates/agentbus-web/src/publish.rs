//! `POST /api/events`: decode all, then publish all.

use std::sync::Arc;
use std::time::Duration;

use agentbus::EventId;
use agentbus_store::{EventStore, StoreError};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::body::{at, EventsBody};
use crate::error::ApiError;
use crate::state::SharedState;
use crate::wire::PublishReply;

pub(crate) async fn publish(
    State(state): State<SharedState>,
    EventsBody { events, array }: EventsBody,
) -> Result<Json<PublishReply>, ApiError> {
    let ids: Vec<EventId> = events.iter().map(|event| event.id).collect();
    let Some(recorder) = &state.recorder else {
        for event in events {
            state.bus.publish(Arc::new(event)).await;
        }
        state.hub.nudge();
        return Ok(Json(PublishReply {
            ids,
            sequences: None,
        }));
    };
    // Refuse what the store would skip: a 200 then always means stored.
    for (index, event) in events.iter().enumerate() {
        recorder
            .store()
            .check(event)
            .map_err(|error| unstorable(at(index, array), &error))?;
    }
    // The hub must be following the store before these commit, or it
    // could not report their sequences.
    tokio::time::timeout(SEQUENCE_PATIENCE, state.hub.ready())
        .await
        .map_err(|_| {
            ApiError::unavailable(
                "the store cannot be read yet (its last sequence is unknown); nothing was published",
            )
        })?;
    let expected = state.hub.expect(&ids);
    let rejected_before = recorder.stats().rejected;
    // One deadline for room and commit: a stalled store gets the client a
    // 503 in bounded time, and no worker ever waits on the recorder's queue.
    let deadline = tokio::time::Instant::now() + state.durable_timeout;
    let total = events.len();
    let mut published = 0;
    let mut events = events.into_iter();
    while published < total {
        let room = tokio::time::timeout_at(deadline, recorder.reserve(total - published)).await;
        let room = match room {
            Ok(Ok(room)) => room,
            Ok(Err(error)) => return Err(not_durable(published, total, &error.to_string())),
            Err(_) => {
                let why = format!(
                    "the store is not keeping up: no room in the recorder's queue within {:?}",
                    state.durable_timeout
                );
                return Err(not_durable(published, total, &why));
            }
        };
        for event in events.by_ref().take(room.events()) {
            state.bus.publish(Arc::new(event)).await;
            published += 1;
        }
    }
    let last = match tokio::time::timeout_at(deadline, recorder.flush()).await {
        Ok(Ok(last)) => last,
        Ok(Err(error)) => return Err(not_durable(total, total, &error.to_string())),
        Err(_) => {
            let why = format!("not committed within {:?}", state.durable_timeout);
            return Err(not_durable(total, total, &why));
        }
    };
    let before = expected.before();
    let mut sequences = expected.sequences(last, SEQUENCE_PATIENCE).await;
    // Usually every `None` is an id stored before: the hub saw everything
    // up to `last`, and the store refused nothing meanwhile.
    let surely_stored = state.hub.watermark().is_some_and(|w| w >= last)
        && recorder.stats().rejected == rejected_before;
    if !surely_stored && sequences.contains(&None) {
        let store = recorder.store().as_ref();
        settle(store, &ids, &mut sequences, before, array).await?;
    }
    Ok(Json(PublishReply {
        ids,
        sequences: Some(sequences),
    }))
}

/// Fills in the sequences the hub did not report (it was slow), and makes
/// sure every other `None` is an id stored before this `POST`: `null` in
/// the reply means "already stored", nothing else.
async fn settle(
    store: &dyn EventStore,
    ids: &[EventId],
    sequences: &mut [Option<u64>],
    before: u64,
    array: bool,
) -> Result<(), ApiError> {
    let mut seen = std::collections::HashSet::new();
    for (index, (id, slot)) in ids.iter().zip(sequences.iter_mut()).enumerate() {
        // A repeat of an id earlier in this body is already stored by it.
        if !seen.insert(*id) || slot.is_some() {
            continue;
        }
        let stored = store.get(*id).await.map_err(|error| {
            ApiError::unavailable(format!(
                "the events are committed but the store cannot be read to report their sequences: {error}"
            ))
        })?;
        match stored {
            Some(stored) if stored.sequence > before => *slot = Some(stored.sequence),
            Some(_) => {}
            None => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "{}was published but the store refused it (counted in `store.rejected` \
                         of /api/stats); the other events are stored",
                        at(index, array)
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// The 400 for an event the attached store cannot hold.
fn unstorable(at: String, error: &StoreError) -> ApiError {
    match error {
        StoreError::TimestampOutOfRange { .. } => ApiError::bad_request(format!(
            "{at}field `timestamp`: the store holds timestamps from 1970-01-01T00:00:00Z \
             to 2262-04-11T23:47:16.854775807Z"
        )),
        other => ApiError::bad_request(format!("{at}the store cannot hold this event: {other}")),
    }
}

/// The 503 of a `POST` whose events are not confirmed durable: says what
/// was published (and so may still be committed) and that a retry is safe.
fn not_durable(published: usize, total: usize, why: &str) -> ApiError {
    let what = if published == 0 {
        "nothing was published".to_owned()
    } else if published == total {
        "the events were published but are not confirmed durable; they stay queued and may \
         still be committed, and posting them again with the same ids is safe"
            .to_owned()
    } else {
        format!(
            "the first {published} of the {total} events were published and may still be \
             committed, the others were not; posting them all again with the same ids is safe"
        )
    };
    ApiError::unavailable(format!("{why}; {what}"))
}

/// How long a durable `POST` waits for the hub to report its sequences.
const SEQUENCE_PATIENCE: Duration = Duration::from_secs(10);
