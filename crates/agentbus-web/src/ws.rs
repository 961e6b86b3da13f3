//! `GET /ws`: the live feed over WebSocket.

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use crate::api::SharedState;
use crate::error::ApiError;
use crate::hub::Item;
use crate::live::{ClientGuard, Kind, Selection};
use crate::params::Filter;

/// The largest message a client may send (they are ignored anyway).
const MAX_INCOMING_MESSAGE: usize = 64 << 10;
/// Frames written before one flush.
const BATCH: usize = 128;

pub(crate) async fn upgrade(
    State(state): State<SharedState>,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let selection = Selection::parse(&uri, None)?;
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(
            rejection.status(),
            format!(
                "websocket upgrade failed: {}",
                rejection.body_text().to_lowercase()
            ),
        )
    })?;
    let guard = ClientGuard::acquire(&state, Kind::WebSocket)?;
    // Subscribe before the handshake completes: nothing published after the
    // 101 reply can be missed.
    let receiver = state.hub.subscribe();
    let send_timeout = state.send_timeout;
    Ok(upgrade
        .max_message_size(MAX_INCOMING_MESSAGE)
        .max_frame_size(MAX_INCOMING_MESSAGE)
        .on_upgrade(move |socket| async move {
            feed(socket, receiver, selection.filter, send_timeout).await;
            drop(guard);
        })
        .into_response())
}

/// Sends every matching event until the client leaves, breaks the protocol,
/// or stops reading for `send_timeout`.
async fn feed(
    mut socket: WebSocket,
    mut receiver: broadcast::Receiver<Item>,
    filter: Filter,
    send_timeout: Duration,
) {
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                // Client messages carry nothing this endpoint reads; pings
                // are answered by the protocol layer.
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            first = receiver.recv() => {
                let batch = write_batch(&mut socket, &mut receiver, &filter, first);
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

/// Writes `first` and whatever else is already waiting (up to [`BATCH`]),
/// then flushes once.
async fn write_batch(
    socket: &mut WebSocket,
    receiver: &mut broadcast::Receiver<Item>,
    filter: &Filter,
    first: Result<Item, RecvError>,
) -> Result<(), ()> {
    let mut next = Some(first);
    let mut written = 0;
    while let Some(item) = next.take() {
        let message = match item {
            Ok(Item::Event(frame)) if filter.matches(&frame.event) => {
                Some(Message::Text(frame.json.clone()))
            }
            Ok(Item::Event(_)) => None,
            Ok(Item::Lagged(missed)) | Err(RecvError::Lagged(missed)) => {
                Some(Message::Text(format!("{{\"lagged\":{missed}}}").into()))
            }
            Err(RecvError::Closed) => return Err(()),
        };
        if let Some(message) = message {
            socket.feed(message).await.map_err(|_| ())?;
            written += 1;
        }
        if written >= BATCH {
            break;
        }
        next = match receiver.try_recv() {
            Ok(item) => Some(Ok(item)),
            Err(TryRecvError::Lagged(missed)) => Some(Err(RecvError::Lagged(missed))),
            Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
            Err(TryRecvError::Empty) => None,
        };
    }
    socket.flush().await.map_err(|_| ())
}
