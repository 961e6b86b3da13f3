//! `POST /api/events`: decode all, then publish all.

use agentbus::EventId;
use agentbus_store::{EventStore, StoreError};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::body::{at, EventsBody};
use crate::error::ApiError;
use crate::guards::{admit, spread, PublishError};
use crate::state::SharedState;
use crate::trace_header::TraceHeader;
use crate::wire::PublishReply;

pub(crate) async fn publish(
    State(state): State<SharedState>,
    trace: TraceHeader,
    EventsBody { mut events, array }: EventsBody,
) -> Result<Json<PublishReply>, PublishError> {
    trace.apply(&mut events);
    let ids: Vec<EventId> = events.iter().map(|event| event.id).collect();
    let Some(recorder) = &state.recorder else {
        let admitted = admit(&state.bus, events, array)?;
        for (_, admission) in admitted.admissions {
            admission.publish().await;
        }
        state.hub.nudge();
        return Ok(Json(PublishReply {
            ids,
            sequences: None,
            duplicate_of: admitted.duplicate_of,
        }));
    };
    // Refuse what the store would skip: a 200 then always means stored.
    for (index, event) in events.iter().enumerate() {
        recorder
            .store()
            .check(event)
            .map_err(|error| unstorable(at(index, array), &error))?;
    }
    let admitted = admit(&state.bus, events, array)?;
    let (indices, events): (Vec<usize>, Vec<_>) = admitted.admissions.into_iter().unzip();
    let admitted_ids: Vec<EventId> = events.iter().map(|a| a.event().id).collect();
    // The writer reports each sequence as it commits: no store read after.
    let tracked = recorder.track(&admitted_ids);
    let started = tokio::time::Instant::now();
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
            Ok(Err(error)) => return Err(not_durable(published, total, &error.to_string()).into()),
            Err(_) => {
                let why = format!(
                    "the store is not keeping up: no room in the recorder's queue within {:?}",
                    state.durable_timeout
                );
                return Err(not_durable(published, total, &why).into());
            }
        };
        for admission in events.by_ref().take(room.events()) {
            admission.publish().await;
            published += 1;
        }
    }
    let sequences = match tokio::time::timeout_at(deadline, tracked.commit()).await {
        Ok(Ok(sequences)) => {
            state.metrics.observe_commit(started.elapsed());
            sequences
        }
        Ok(Err(StoreError::NotRecorded { index, .. })) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "{}was published but the store refused it (counted in `store.rejected` \
                     of /api/stats); the other events are stored",
                    at(indices[index], array)
                ),
            )
            .into())
        }
        Ok(Err(error)) => return Err(not_durable(total, total, &error.to_string()).into()),
        Err(_) => {
            let why = format!("not committed within {:?}", state.durable_timeout);
            return Err(not_durable(total, total, &why).into());
        }
    };
    Ok(Json(PublishReply {
        sequences: Some(spread(&indices, sequences, ids.len())),
        ids,
        duplicate_of: admitted.duplicate_of,
    }))
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
