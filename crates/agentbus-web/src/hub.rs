//! The hub: one bus (or store) subscription shared by every live client.
//!
//! Without a store, the bus's publishing thread only pushes the event's
//! `Arc` into a bounded lock-free buffer (an [`EventStream`]); the hub task
//! drains it every 2 ms (at once when this crate's own `POST`
//! publishes). With a store, the hub follows the recorder's commits through
//! one [`Recorder::subscribe_from`] stream, so every event it hands out has
//! its sequence and is already durable. Either way it counts each event
//! into the per-second rates and, while any client is connected, encodes it to JSON once and hands it
//! to a broadcast channel that every WebSocket and SSE client reads at its
//! own pace: the publish cost does not grow with the number of clients, no
//! client task is woken on the publisher's thread, and with no client
//! nothing is encoded.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentbus::{Event, EventBus, EventStream, EventType, TryRecvError};
use agentbus_store::{ReadQuery, Recorder, StoredEvent};
use axum::extract::ws::Utf8Bytes;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{broadcast, watch, Notify};

use crate::params::Format;

/// How many events the hub's bus subscription buffers between drains.
const INTAKE_CAPACITY: usize = 1 << 16;
/// How often the hub drains the bus when nothing nudges it.
const TICK: Duration = Duration::from_millis(2);
/// How many seconds of per-type rates the hub keeps.
pub(crate) const RATE_WINDOW_SECS: usize = 300;

/// One event as clients receive it: encoded once, shared by all.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) event: Arc<Event>,
    pub(crate) sequence: Option<u64>,
    /// The event's JSON, with `"sequence"` when it has one.
    pub(crate) json: Utf8Bytes,
    /// Its CloudEvents JSON, encoded by the first client that asks for it.
    cloudevent: OnceLock<Option<Utf8Bytes>>,
}

impl Frame {
    pub(crate) fn new(event: Arc<Event>, sequence: Option<u64>) -> Option<Self> {
        let json = encode(&event, sequence)?;
        Some(Self {
            event,
            sequence,
            json: json.into(),
            cloudevent: OnceLock::new(),
        })
    }

    /// The frame's text in `format`, encoded once for all clients.
    pub(crate) fn text(&self, format: Format) -> Option<&Utf8Bytes> {
        match format {
            Format::Native => Some(&self.json),
            Format::CloudEvents => self
                .cloudevent
                .get_or_init(|| {
                    format
                        .encode(&self.event, self.sequence)
                        .map(Utf8Bytes::from)
                })
                .as_ref(),
        }
    }

    pub(crate) fn stored(stored: StoredEvent) -> Option<Self> {
        Self::new(stored.event, Some(stored.sequence))
    }
}

/// The event's JSON object, with `"sequence": n` appended when given.
pub(crate) fn encode(event: &Event, sequence: Option<u64>) -> Option<String> {
    let mut json = match event.to_json() {
        Ok(json) => json,
        Err(error) => {
            tracing::warn!(%error, id = %event.id, "event skipped: it cannot be encoded");
            return None;
        }
    };
    if let Some(sequence) = sequence {
        // `to_json` always writes an object, so the last byte is its `}`.
        json.pop();
        json.push_str(",\"sequence\":");
        json.push_str(&sequence.to_string());
        json.push('}');
    }
    Some(json)
}

/// What the broadcast channel carries.
#[derive(Clone, Debug)]
pub(crate) enum Item {
    Event(Arc<Frame>),
    /// The hub itself fell behind the bus and lost this many events.
    Lagged(u64),
}

/// Per-second, per-type arrival counts for the last [`RATE_WINDOW_SECS`].
struct Rates {
    /// Unix second of the newest bucket.
    newest: u64,
    /// Ring of buckets; `buckets[newest % RATE_WINDOW_SECS]` is the newest.
    buckets: Vec<[u32; EventType::COUNT]>,
}

impl Rates {
    fn new() -> Self {
        Self {
            newest: unix_seconds(),
            buckets: vec![[0; EventType::COUNT]; RATE_WINDOW_SECS],
        }
    }

    /// Moves the window so `now` is the newest second, zeroing the seconds
    /// skipped over.
    fn advance(&mut self, now: u64) {
        if now <= self.newest {
            return;
        }
        let skipped = (now - self.newest).min(RATE_WINDOW_SECS as u64);
        for second in (now - skipped + 1)..=now {
            self.buckets[(second % RATE_WINDOW_SECS as u64) as usize] = [0; EventType::COUNT];
        }
        self.newest = now;
    }

    fn bucket(&self, second: u64) -> &[u32; EventType::COUNT] {
        &self.buckets[(second % RATE_WINDOW_SECS as u64) as usize]
    }
}

/// A snapshot of the rates for `/api/stats`.
pub(crate) struct RateSnapshot {
    /// Unix second of the last element of each series.
    pub(crate) end: u64,
    /// For each type seen in the window: one count per second, oldest first.
    pub(crate) series: Vec<(EventType, Vec<u32>)>,
    /// Events per second over the last five complete seconds.
    pub(crate) recent_rate: f64,
}

/// Where the hub's events come from, until its task takes it.
enum Intake {
    Bus(EventStream),
    Store(Recorder),
}

pub(crate) struct Hub {
    sender: broadcast::Sender<Item>,
    nudge: Arc<Notify>,
    rates: Mutex<Rates>,
    pub(crate) websocket_clients: AtomicUsize,
    pub(crate) sse_clients: AtomicUsize,
    /// With a store: the last sequence broadcast, `None` until the hub has
    /// found where the store ends.
    watermark: watch::Sender<Option<u64>>,
    /// Whether the intake is a store (the watermark will be set).
    stored: bool,
    /// Taken by the first call to [`Hub::start`].
    intake: Mutex<Option<Intake>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("receivers", &self.sender.receiver_count())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Subscribes to every event on `bus` (or, with `recorder`, to its
    /// commits); nothing runs until [`Hub::start`].
    pub(crate) fn new(
        bus: &EventBus,
        recorder: Option<Recorder>,
        client_buffer: usize,
    ) -> Arc<Self> {
        let (sender, _) = broadcast::channel(client_buffer.max(1));
        let stored = recorder.is_some();
        let intake = match recorder {
            Some(recorder) => Intake::Store(recorder),
            None => Intake::Bus(bus.stream(agentbus::EventTypeSet::all(), INTAKE_CAPACITY)),
        };
        Arc::new(Self {
            sender,
            nudge: Arc::new(Notify::new()),
            rates: Mutex::new(Rates::new()),
            websocket_clients: AtomicUsize::new(0),
            sse_clients: AtomicUsize::new(0),
            watermark: watch::Sender::new(None),
            stored,
            intake: Mutex::new(Some(intake)),
        })
    }

    /// Starts the hub task on the current Tokio runtime, once. Without a
    /// runtime here it does nothing (and is retried on the next request).
    pub(crate) fn start(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(intake) = lock(&self.intake).take() else {
            return;
        };
        match intake {
            Intake::Bus(stream) => {
                runtime.spawn(run_bus(
                    Arc::downgrade(self),
                    Arc::clone(&self.nudge),
                    stream,
                ));
            }
            Intake::Store(recorder) => {
                runtime.spawn(run_store(Arc::downgrade(self), recorder));
            }
        }
    }

    /// Wakes the hub now instead of at its next tick.
    pub(crate) fn nudge(&self) {
        self.nudge.notify_one();
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Item> {
        self.sender.subscribe()
    }

    /// Resolves once the hub broadcasts every commit from now on: at once
    /// without a store; with one, once the hub has read where the store
    /// ends (it broadcasts what is committed after that). A live client
    /// subscribes after this, so nothing committed after it subscribed is
    /// missed, however late the hub task got to its first read.
    pub(crate) async fn ready(&self) {
        if !self.stored {
            return;
        }
        let mut known = self.watermark.subscribe();
        // The sender lives as long as `self`: this ends only with a value.
        let _ = known.wait_for(Option::is_some).await;
    }

    /// With a store: the last sequence the hub has broadcast, once known.
    pub(crate) fn watermark(&self) -> Option<u64> {
        *self.watermark.borrow()
    }

    pub(crate) fn rates(&self) -> RateSnapshot {
        let mut rates = lock(&self.rates);
        rates.advance(unix_seconds());
        let end = rates.newest;
        let first = end + 1 - RATE_WINDOW_SECS as u64;
        let series = EventType::ALL
            .iter()
            .filter_map(|&t| {
                let counts: Vec<u32> = (first..=end).map(|s| rates.bucket(s)[t.index()]).collect();
                counts.iter().any(|&n| n > 0).then_some((t, counts))
            })
            .collect();
        let recent: u64 = (end - 5..end)
            .map(|s| rates.bucket(s).iter().map(|&n| u64::from(n)).sum::<u64>())
            .sum();
        RateSnapshot {
            end,
            series,
            recent_rate: recent as f64 / 5.0,
        }
    }

    fn count(&self, event: &Event, rates: &mut Rates) {
        let slot = event.event_type.index();
        let newest = rates.newest;
        let bucket = &mut rates.buckets[(newest % RATE_WINDOW_SECS as u64) as usize];
        bucket[slot] = bucket[slot].saturating_add(1);
    }

    pub(crate) fn broadcast(&self, frame: Frame) {
        // An error means no receiver: nobody to tell.
        let _ = self.sender.send(Item::Event(Arc::new(frame)));
    }

    /// Hands every buffered bus event to the clients; `false` once the bus
    /// is gone.
    fn drain_bus(&self, intake: &mut EventStream) -> bool {
        let mut rates = lock(&self.rates);
        rates.advance(unix_seconds());
        loop {
            match intake.try_recv() {
                Ok(event) => {
                    self.count(&event, &mut rates);
                    if self.sender.receiver_count() > 0 {
                        if let Some(frame) = Frame::new(event, None) {
                            self.broadcast(frame);
                        }
                    }
                }
                Err(TryRecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "web hub fell behind the bus");
                    let _ = self.sender.send(Item::Lagged(missed));
                }
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Closed) => return false,
            }
        }
    }

    /// Hands committed events to the clients and moves the watermark.
    fn take_stored(&self, batch: Vec<StoredEvent>) {
        let Some(last) = batch.last().map(|stored| stored.sequence) else {
            return;
        };
        {
            let mut rates = lock(&self.rates);
            rates.advance(unix_seconds());
            for StoredEvent { sequence, event } in batch {
                self.count(&event, &mut rates);
                // Encoded only for clients subscribed now: one joining later
                // never receives this frame from the channel, and reads it
                // from the store instead (its `after` is below the
                // watermark, or the next frame reveals the gap).
                if self.sender.receiver_count() > 0 {
                    if let Some(frame) = Frame::new(event, Some(sequence)) {
                        self.broadcast(frame);
                    }
                }
            }
        }
        self.watermark.send_replace(Some(last));
    }
}

async fn run_bus(hub: Weak<Hub>, nudge: Arc<Notify>, mut intake: EventStream) {
    loop {
        let Some(strong) = hub.upgrade() else {
            return;
        };
        if !strong.drain_bus(&mut intake) {
            return;
        }
        drop(strong);
        tokio::select! {
            () = nudge.notified() => {}
            () = tokio::time::sleep(TICK) => {}
        }
    }
}

async fn run_store(hub: Weak<Hub>, recorder: Recorder) {
    let mut backoff = Duration::from_millis(10);
    let after = loop {
        match recorder.store().last_sequence().await {
            Ok(last) => break last,
            Err(error) => {
                tracing::warn!(%error, "web hub cannot read the store's last sequence; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                if hub.strong_count() == 0 {
                    return;
                }
            }
        }
    };
    match hub.upgrade() {
        Some(strong) => strong.watermark.send_replace(Some(after)),
        None => return,
    };
    let mut stream = recorder.subscribe_from(after, ReadQuery::new());
    drop(recorder);
    loop {
        // Wake now and then to notice that the router is gone.
        let first = tokio::select! {
            item = stream.next() => item,
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                if hub.strong_count() == 0 { return; }
                continue;
            }
        };
        let Some(first) = first else {
            return;
        };
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(item) = next {
            match item {
                Ok(stored) => batch.push(stored),
                Err(error) => tracing::warn!(%error, "web hub skipped a stored event"),
            }
            if batch.len() >= 4096 {
                break;
            }
            next = stream.next().now_or_never().flatten();
        }
        let Some(strong) = hub.upgrade() else {
            return;
        };
        strong.take_stored(batch);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: u64 = RATE_WINDOW_SECS as u64;

    /// A window ending at `newest` whose every second counts its own number.
    fn numbered(newest: u64) -> Rates {
        let mut rates = Rates {
            newest,
            buckets: vec![[0; EventType::COUNT]; RATE_WINDOW_SECS],
        };
        for second in newest + 1 - WINDOW..=newest {
            rates.buckets[(second % WINDOW) as usize][0] = second as u32;
        }
        rates
    }

    #[test]
    fn advancing_zeroes_exactly_the_seconds_skipped() {
        let mut rates = numbered(1_000);
        // The past or the present: nothing moves.
        rates.advance(990);
        rates.advance(1_000);
        assert_eq!(rates.newest, 1_000);
        for second in 1_000 + 1 - WINDOW..=1_000 {
            assert_eq!(rates.bucket(second)[0], second as u32, "second {second}");
        }
        rates.advance(1_003);
        assert_eq!(rates.newest, 1_003);
        for second in 1_003 + 1 - WINDOW..=1_003 {
            let expected = if second > 1_000 { 0 } else { second as u32 };
            assert_eq!(rates.bucket(second)[0], expected, "second {second}");
        }
        // Further than the window: everything is zero.
        rates.advance(1_003 + WINDOW + 50);
        assert_eq!(rates.newest, 1_003 + WINDOW + 50);
        assert!(rates.buckets.iter().all(|bucket| bucket[0] == 0));
    }
}
