//! What the WebSocket and SSE endpoints share: the client count and limit,
//! and the parameters that select and resume a feed.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{HeaderMap, StatusCode, Uri};

use crate::api::SharedState;
use crate::error::ApiError;
use crate::params::{Filter, Params, LIVE_PARAMS};

/// Which endpoint a live client came through.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    WebSocket,
    Sse,
}

/// Counts one live client while it lives.
#[derive(Debug)]
pub(crate) struct ClientGuard {
    state: SharedState,
    kind: Kind,
}

impl ClientGuard {
    /// Counts a new client, or 503 when [`max_clients`](crate::WebApi::max_clients)
    /// are already connected.
    pub(crate) fn acquire(state: &SharedState, kind: Kind) -> Result<Self, ApiError> {
        let guard = Self {
            state: SharedState::clone(state),
            kind,
        };
        let before = guard.counter().fetch_add(1, Ordering::AcqRel);
        let other = guard.other().load(Ordering::Acquire);
        if before + other >= state.max_clients {
            // Dropping the guard takes the count back.
            drop(guard);
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "too many live clients (the limit is {}); retry later",
                    state.max_clients
                ),
            ));
        }
        Ok(guard)
    }

    fn counter(&self) -> &AtomicUsize {
        match self.kind {
            Kind::WebSocket => &self.state.hub.websocket_clients,
            Kind::Sse => &self.state.hub.sse_clients,
        }
    }

    fn other(&self) -> &AtomicUsize {
        match self.kind {
            Kind::WebSocket => &self.state.hub.sse_clients,
            Kind::Sse => &self.state.hub.websocket_clients,
        }
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.counter().fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a live client asked for.
#[derive(Debug)]
pub(crate) struct Selection {
    pub(crate) filter: Filter,
}

impl Selection {
    pub(crate) fn parse(uri: &Uri, headers: Option<&HeaderMap>) -> Result<Self, ApiError> {
        let params = Params::parse(&crate::read::query_pairs(uri)?, LIVE_PARAMS)?;
        let mut after = params.after;
        if let Some(headers) = headers {
            if let Some(value) = headers.get("last-event-id") {
                let text = value.to_str().map_err(|_| {
                    ApiError::bad_request("header `Last-Event-ID`: not visible ascii")
                })?;
                if !text.trim().is_empty() {
                    // The header is what a reconnecting EventSource sends: it wins.
                    after = Some(crate::params::sequence("header `Last-Event-ID`", text)?);
                }
            }
        }
        if after.is_some() {
            return Err(ApiError::bad_request(
                "resuming (`after` or `Last-Event-ID`) needs a store: this server keeps no sequences",
            ));
        }
        Ok(Self {
            filter: params.filter,
        })
    }
}
