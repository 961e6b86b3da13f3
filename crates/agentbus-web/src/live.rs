//! What the WebSocket and SSE endpoints share: the client count and limit,
//! the parameters that select and resume a feed, and the [`Feed`] that
//! turns the hub's broadcast (plus the store, when there is one) into one
//! client's events.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentbus::EventFilter;
use agentbus_store::{EventStore, ReadQuery};
use axum::http::{HeaderMap, StatusCode};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use crate::error::ApiError;
use crate::hub::{Frame, Hub, Item};
use crate::params::{Format, Params};
use crate::state::SharedState;

/// Rows per store read when a client catches up or is refilled.
const REFILL_PAGE: usize = 1000;
/// The pause before retrying a store read that failed.
const REFILL_RETRY: Duration = Duration::from_millis(200);

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
    pub(crate) filter: EventFilter,
    /// Resume after this sequence (`after`, or SSE's `Last-Event-ID`).
    pub(crate) after: Option<u64>,
    /// How each event is written.
    pub(crate) format: Format,
}

impl Selection {
    pub(crate) fn parse(
        state: &SharedState,
        params: Params,
        headers: Option<&HeaderMap>,
    ) -> Result<Self, ApiError> {
        let mut after = params.after;
        if let Some(headers) = headers {
            if let Some(value) = headers.get("last-event-id") {
                let text = value.to_str().map_err(|_| {
                    ApiError::bad_request("header `Last-Event-ID`: not visible ascii")
                })?;
                if !text.trim().is_empty() {
                    // What a reconnecting EventSource sends: it wins.
                    after = Some(crate::params::sequence("header `Last-Event-ID`", text)?);
                }
            }
        }
        if after.is_some() && state.recorder.is_none() {
            return Err(ApiError::bad_request(
                "resuming (`after` or `Last-Event-ID`) needs a store: this server keeps no sequences",
            ));
        }
        Ok(Self {
            filter: params.filter,
            after,
            format: params.format,
        })
    }
}

/// Waits until the hub broadcasts every commit ([`Hub::ready`]), up to
/// the API's durable timeout; a 503 if the store cannot be read by then.
/// Called before a live client is counted or subscribed.
pub(crate) async fn hub_ready(state: &SharedState) -> Result<(), ApiError> {
    tokio::time::timeout(state.durable_timeout, state.hub.ready())
        .await
        .map_err(|_| {
            ApiError::unavailable(format!(
                "the live feed is not ready: the store's last sequence was not read within {:?}",
                state.durable_timeout
            ))
        })
}

/// What a client is sent next.
pub(crate) enum Out {
    Event(Arc<Frame>),
    /// Without a store: this many events were skipped because the client
    /// fell behind.
    Lagged(u64),
}

/// One client's view of the hub.
///
/// Without a store it passes matching events on and turns a lag into
/// [`Out::Lagged`]. With a store it tracks the last sequence it has passed
/// (sent or filtered out): a duplicate is skipped, and a gap (after a lag,
/// or the backlog after `after` on connect) is refilled from the store
/// before the live event that revealed it, so the client sees every
/// matching sequence once, in order.
pub(crate) struct Feed {
    hub: Arc<Hub>,
    receiver: broadcast::Receiver<Item>,
    closed: bool,
    filter: EventFilter,
    store: Option<Arc<dyn EventStore>>,
    /// With a store: the last sequence passed; `None` until the first event
    /// for a client that did not ask to resume.
    last: Option<u64>,
    /// With a store: read the store up to here before going on.
    refill_to: Option<u64>,
    backlog: VecDeque<Arc<Frame>>,
    /// The live frame that revealed a gap, passed on after the refill.
    held: Option<Arc<Frame>>,
}

impl Feed {
    /// Subscribes now: nothing the hub broadcasts from here on is missed.
    pub(crate) fn new(state: &SharedState, selection: Selection) -> Self {
        let receiver = state.hub.subscribe();
        let store = state.recorder.as_ref().map(|r| Arc::clone(r.store()));
        let mut feed = Self {
            hub: Arc::clone(&state.hub),
            receiver,
            closed: false,
            filter: selection.filter,
            store,
            last: None,
            refill_to: None,
            backlog: VecDeque::new(),
            held: None,
        };
        if feed.store.is_some() {
            if let Some(after) = selection.after {
                feed.last = Some(after);
                // Catch up to what the hub has broadcast; anything later
                // comes through the receiver subscribed above.
                feed.refill_to = state.hub.watermark().filter(|&w| w > after);
            }
        }
        feed
    }

    /// The next message for the client; `None` when the hub is gone.
    /// Cancel-safe: state changes only after each await completes.
    pub(crate) async fn next(&mut self) -> Option<Out> {
        loop {
            if let Some(out) = self.ready() {
                return Some(out);
            }
            if let (Some(to), Some(store)) = (self.refill_to, &self.store) {
                let after = self.last.unwrap_or(0);
                let query = self.query(after, to);
                match store.read(&query).await {
                    Ok(page) => {
                        // A short page means nothing else matches up to `to`.
                        let reached = match page.last() {
                            Some(stored) if page.len() == REFILL_PAGE => stored.sequence,
                            _ => to,
                        };
                        self.backlog
                            .extend(page.into_iter().filter_map(Frame::stored).map(Arc::new));
                        self.last = Some(reached);
                        if reached >= to {
                            self.refill_to = None;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "refilling a live client from the store failed; retrying");
                        tokio::time::sleep(REFILL_RETRY).await;
                    }
                }
                continue;
            }
            let item = self.receiver.recv().await;
            if let Some(out) = self.take(item) {
                return Some(out);
            }
            if self.closed {
                return None;
            }
        }
    }

    /// The next message without waiting (nor reading the store), for
    /// batching writes.
    pub(crate) fn try_next(&mut self) -> Option<Out> {
        loop {
            if let Some(out) = self.ready() {
                return Some(out);
            }
            if self.refill_to.is_some() {
                return None;
            }
            let item = match self.receiver.try_recv() {
                Ok(item) => Ok(item),
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(TryRecvError::Closed) => Err(RecvError::Closed),
            };
            if let Some(out) = self.take(item) {
                return Some(out);
            }
            if self.closed {
                return None;
            }
        }
    }

    /// A backlog frame, or the held live frame once the refill is done.
    fn ready(&mut self) -> Option<Out> {
        if let Some(frame) = self.backlog.pop_front() {
            return Some(Out::Event(frame));
        }
        if self.refill_to.is_none() {
            if let Some(frame) = self.held.take() {
                self.last = frame.sequence.or(self.last);
                if self.filter.matches(&frame.event) {
                    return Some(Out::Event(frame));
                }
            }
        }
        None
    }

    /// Handles one broadcast item; `Some` when it is to be sent at once.
    fn take(&mut self, item: Result<Item, RecvError>) -> Option<Out> {
        match item {
            Ok(Item::Event(frame)) => {
                if self.store.is_some() {
                    if let (Some(sequence), Some(last)) = (frame.sequence, self.last) {
                        if sequence <= last {
                            return None;
                        }
                        if sequence > last + 1 {
                            self.refill_to = Some(sequence - 1);
                            self.held = Some(frame);
                            return None;
                        }
                    }
                    self.last = frame.sequence.or(self.last);
                }
                self.filter
                    .matches(&frame.event)
                    .then_some(Out::Event(frame))
            }
            Ok(Item::Lagged(missed)) | Err(RecvError::Lagged(missed)) => {
                if self.store.is_some() {
                    // The next live frame reveals the gap and triggers the
                    // refill; refilling now avoids waiting for it.
                    if let Some(last) = self.last {
                        self.refill_to = self.hub.watermark().filter(|&w| w > last);
                    }
                    None
                } else {
                    Some(Out::Lagged(missed))
                }
            }
            Err(RecvError::Closed) => {
                self.closed = true;
                None
            }
        }
    }

    fn query(&self, after: u64, up_to: u64) -> ReadQuery {
        ReadQuery::from(self.filter.clone())
            .after(after)
            .up_to(up_to)
            .limit(REFILL_PAGE)
    }
}

#[cfg(test)]
mod tests {
    use agentbus::{Event, EventBus, EventType};
    use agentbus_store::{Recorder, SqliteStore};

    use super::*;

    /// A client that subscribes while the hub is broadcasting a batch (it
    /// gets the batch's later frames, and the watermark it read is from
    /// before the batch) has a hole between its catch-up and its first live
    /// frame: that frame reveals it, and the hole is read from the store
    /// before the frame goes out.
    #[tokio::test]
    async fn a_gap_a_live_frame_reveals_is_refilled_before_it() {
        let _deadline = agentbus_testkit::deadline::deadline();
        let bus = EventBus::new();
        let recorder = Recorder::attach(&bus, SqliteStore::open_in_memory().unwrap());
        let mut events = Vec::new();
        for _ in 0..5 {
            let event = Arc::new(Event::new(EventType::TaskCreated));
            bus.publish(Arc::clone(&event)).await;
            events.push(event);
        }
        recorder.flush().await.unwrap();
        let hub = Hub::new(&bus, Some(recorder.clone()), 16);
        // As `Feed::new` with `after=0` and a watermark of 2.
        let mut feed = Feed {
            hub: Arc::clone(&hub),
            receiver: hub.subscribe(),
            closed: false,
            filter: EventFilter::default(),
            store: Some(Arc::clone(recorder.store())),
            last: Some(0),
            refill_to: Some(2),
            backlog: VecDeque::new(),
            held: None,
        };
        // Sequence 3 was broadcast before the client subscribed.
        for sequence in [4, 5] {
            let event = Arc::clone(&events[sequence as usize - 1]);
            hub.broadcast(Frame::new(event, Some(sequence)).unwrap());
        }
        let mut seen = Vec::new();
        while seen.len() < 5 {
            match tokio::time::timeout(Duration::from_secs(10), feed.next()).await {
                Ok(Some(Out::Event(frame))) => seen.push((frame.sequence, frame.event.id)),
                Ok(Some(Out::Lagged(missed))) => panic!("lagged {missed} after {seen:?}"),
                Ok(None) => panic!("the hub is gone after {seen:?}"),
                Err(_) => panic!("nothing more after {seen:?}"),
            }
        }
        let expected: Vec<_> = (1..=5)
            .map(|s| (Some(s), events[s as usize - 1].id))
            .collect();
        assert_eq!(seen, expected);
    }
}
