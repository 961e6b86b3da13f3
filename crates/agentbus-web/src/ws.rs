//! `GET /ws`: the live feed over WebSocket.

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;

use crate::error::ApiError;
use crate::extract::LiveParams;
use crate::live::{ClientGuard, Feed, Kind, Out, Selection};
use crate::params::Format;
use crate::state::SharedState;

/// The largest message a client may send (they are ignored anyway).
const MAX_INCOMING_MESSAGE: usize = 64 << 10;
/// Frames written before one flush.
const BATCH: usize = 512;

pub(crate) async fn upgrade(
    State(state): State<SharedState>,
    LiveParams(params): LiveParams,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let selection = Selection::parse(&state, params, None)?;
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(
            rejection.status(),
            format!(
                "websocket upgrade failed: {}",
                rejection.body_text().to_lowercase()
            ),
        )
    })?;
    crate::live::hub_ready(&state).await?;
    let guard = ClientGuard::acquire(&state, Kind::WebSocket)?;
    // Subscribe before the handshake completes: nothing broadcast after the
    // 101 reply can be missed.
    let format = selection.format;
    let live = Feed::new(&state, selection);
    let send_timeout = state.send_timeout;
    Ok(upgrade
        .max_message_size(MAX_INCOMING_MESSAGE)
        .max_frame_size(MAX_INCOMING_MESSAGE)
        .on_upgrade(move |socket| async move {
            feed(socket, live, send_timeout, format).await;
            drop(guard);
        })
        .into_response())
}

/// Sends every matching event until the client leaves, breaks the protocol,
/// or stops reading for `send_timeout`.
async fn feed(mut socket: WebSocket, mut live: Feed, send_timeout: Duration, format: Format) {
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                // Client messages carry nothing this endpoint reads; pings
                // are answered by the protocol layer.
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            first = live.next() => {
                let Some(first) = first else { return };
                let batch = write_batch(&mut socket, &mut live, first, format);
                match tokio::time::timeout(send_timeout, batch).await {
                    Ok(Ok(())) => {}
                    Ok(Err(())) => return,
                    Err(_) => {
                        tracing::debug!("websocket client stopped reading; closing it");
                        return;
                    }
                }
            }
        }
    }
}

/// The message for `out`; `None` for an event that cannot be written in
/// `format` (logged when encoded).
fn message(out: Out, format: Format) -> Option<Message> {
    match out {
        Out::Event(frame) => frame.text(format).cloned().map(Message::Text),
        Out::Lagged(missed) => Some(Message::Text(format!("{{\"lagged\":{missed}}}").into())),
    }
}

/// Writes `first` and whatever else is already waiting (up to [`BATCH`]),
/// then flushes once.
async fn write_batch(
    socket: &mut WebSocket,
    live: &mut Feed,
    first: Out,
    format: Format,
) -> Result<(), ()> {
    if let Some(message) = message(first, format) {
        socket.feed(message).await.map_err(|_| ())?;
    }
    for _ in 1..BATCH {
        let Some(out) = live.try_next() else { break };
        if let Some(message) = message(out, format) {
            socket.feed(message).await.map_err(|_| ())?;
        }
    }
    socket.flush().await.map_err(|_| ())
}
