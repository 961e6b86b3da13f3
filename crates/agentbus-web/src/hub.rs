//! The hub: one bus subscription shared by every live client.
//!
//! The bus's publishing thread only pushes the event's `Arc` into a bounded
//! lock-free buffer (an [`EventStream`]). A hub task drains it every
//! millisecond (at once when this crate's own `POST` publishes), encodes each
//! event to JSON once, counts it, and hands it to a broadcast channel that
//! every WebSocket and SSE client reads at its own pace. So the publish cost
//! does not grow with the number of clients, and waking client tasks never
//! happens on the publisher's thread.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentbus::{Event, EventBus, EventStream, EventType, TryRecvError};
use axum::extract::ws::Utf8Bytes;
use tokio::sync::{broadcast, Notify};

/// How many events the hub's bus subscription buffers between drains.
const INTAKE_CAPACITY: usize = 1 << 16;
/// How often the hub drains when nothing nudges it.
const TICK: Duration = Duration::from_millis(1);
/// How many seconds of per-type rates the hub keeps.
pub(crate) const RATE_WINDOW_SECS: usize = 300;

/// One event as clients receive it: encoded once, shared by all.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) event: Arc<Event>,
    pub(crate) sequence: Option<u64>,
    /// The event's JSON, with `"sequence"` when it has one.
    pub(crate) json: Utf8Bytes,
}

impl Frame {
    pub(crate) fn new(event: Arc<Event>, sequence: Option<u64>) -> Option<Self> {
        let json = encode(&event, sequence)?;
        Some(Self {
            event,
            sequence,
            json: json.into(),
        })
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

pub(crate) struct Hub {
    sender: broadcast::Sender<Item>,
    nudge: Arc<Notify>,
    per_type: [AtomicU64; EventType::COUNT],
    rates: Mutex<Rates>,
    pub(crate) websocket_clients: AtomicUsize,
    pub(crate) sse_clients: AtomicUsize,
    /// Taken by the first call to [`Hub::start`].
    intake: Mutex<Option<EventStream>>,
}

impl Hub {
    /// Subscribes to every event on `bus`; nothing runs until [`Hub::start`].
    pub(crate) fn new(bus: &EventBus, client_buffer: usize) -> Arc<Self> {
        let (sender, _) = broadcast::channel(client_buffer.max(1));
        let intake = bus.stream(agentbus::EventTypeSet::all(), INTAKE_CAPACITY);
        Arc::new(Self {
            sender,
            nudge: Arc::new(Notify::new()),
            per_type: std::array::from_fn(|_| AtomicU64::new(0)),
            rates: Mutex::new(Rates::new()),
            websocket_clients: AtomicUsize::new(0),
            sse_clients: AtomicUsize::new(0),
            intake: Mutex::new(Some(intake)),
        })
    }

    /// Starts the hub task on the current Tokio runtime, once. Returns
    /// `false` when there is no runtime here (it is retried on the next
    /// request).
    pub(crate) fn start(self: &Arc<Self>) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let Some(intake) = self.intake.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return true;
        };
        runtime.spawn(run(Arc::downgrade(self), Arc::clone(&self.nudge), intake));
        true
    }

    /// Wakes the hub now instead of at its next tick.
    pub(crate) fn nudge(&self) {
        self.nudge.notify_one();
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Item> {
        self.sender.subscribe()
    }

    /// Events the hub has seen, per type, since it started.
    pub(crate) fn per_type(&self) -> Vec<(EventType, u64)> {
        EventType::ALL
            .iter()
            .map(|&t| (t, self.per_type[t.index()].load(Ordering::Relaxed)))
            .filter(|&(_, n)| n > 0)
            .collect()
    }

    pub(crate) fn rates(&self, window: usize) -> RateSnapshot {
        let window = window.clamp(1, RATE_WINDOW_SECS);
        let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        rates.advance(unix_seconds());
        let end = rates.newest;
        let bucket = |second: u64| &rates.buckets[(second % RATE_WINDOW_SECS as u64) as usize];
        let first = end + 1 - window as u64;
        let series = EventType::ALL
            .iter()
            .filter_map(|&t| {
                let counts: Vec<u32> = (first..=end).map(|s| bucket(s)[t.index()]).collect();
                counts.iter().any(|&n| n > 0).then_some((t, counts))
            })
            .collect();
        let recent: u64 = (end - 5..end)
            .map(|s| bucket(s).iter().map(|&n| u64::from(n)).sum::<u64>())
            .sum();
        RateSnapshot {
            end,
            series,
            recent_rate: recent as f64 / 5.0,
        }
    }

    fn record(&self, event: &Event, rates: &mut Rates) {
        let slot = event.event_type.index();
        self.per_type[slot].fetch_add(1, Ordering::Relaxed);
        let bucket = &mut rates.buckets[(rates.newest % RATE_WINDOW_SECS as u64) as usize];
        bucket[slot] = bucket[slot].saturating_add(1);
    }

    /// Hands every buffered event to the clients.
    fn drain(&self, intake: &mut EventStream) -> bool {
        let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        rates.advance(unix_seconds());
        loop {
            match intake.try_recv() {
                Ok(event) => {
                    self.record(&event, &mut rates);
                    if self.sender.receiver_count() == 0 {
                        continue;
                    }
                    if let Some(frame) = Frame::new(event, None) {
                        // An error means no receiver: nobody to tell.
                        let _ = self.sender.send(Item::Event(Arc::new(frame)));
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
}

async fn run(hub: Weak<Hub>, nudge: Arc<Notify>, mut intake: EventStream) {
    loop {
        let Some(strong) = hub.upgrade() else {
            return;
        };
        if !strong.drain(&mut intake) {
            return;
        }
        drop(strong);
        tokio::select! {
            () = nudge.notified() => {}
            () = tokio::time::sleep(TICK) => {}
        }
    }
}

pub(crate) fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
