//! [`Recorder`]: records every event published on a bus into a store, with
//! a lock-free hand-off on the publishing thread and a background writer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use agentbus::{Event, EventBus, EventId, EventTypeSet, SubscriptionGuard};
use crossbeam_queue::ArrayQueue;
use tokio::sync::{broadcast, mpsc, oneshot, Notify};

use self::letters::Letters;
use self::shared::{Counters, RecorderConfig, Reserved, Shared};
use self::writer::{Control, LetterState, Writer};
use crate::catch_up::{CatchUp, Committed};
use crate::error::StoreError;
use crate::query::ReadQuery;
use crate::store::{EventStore, Retention};
use crate::tracked::Tracked;

mod letters;
mod shared;
mod writer;

/// What a publisher does when the recorder's queue is full (the writer is
/// slower than the publishers, or the store is down and being retried): the
/// core's [`agentbus::Overflow`], re-exported here. The recorder honours
/// every policy:
///
/// - [`Wait`](Overflow::Wait) (the default): the publisher waits (spinning,
///   then sleeping briefly) until the writer makes room: publishers slow down
///   to the store's pace and nothing is lost. The wait holds the publishing
///   thread: an async publisher awaits [`Recorder::reserve`] first instead.
/// - [`DropNewest`](Overflow::DropNewest): the event being published is not
///   recorded.
/// - [`DropOldest`](Overflow::DropOldest): the oldest queued event is not
///   recorded, and the new one takes its place.
///
/// Under both drop policies publishers never wait, each dropped event is
/// counted in [`RecorderStats::dropped`] and logged (`WARN`, rate-limited),
/// and the next [`Recorder::flush`] returns [`StoreError::EventsDropped`].
/// Handlers still receive every event.
///
/// The policy is about events only: changes to dead letters never wait and
/// are never dropped (see [the crate docs](crate#dead-letters)).
pub use agentbus::Overflow;

/// A snapshot of a recorder's counters; from [`Recorder::stats`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RecorderStats {
    /// Events handed off and waiting in the queue.
    pub queued: usize,
    /// Events taken by the writer and not yet committed (the batch being
    /// written or retried).
    pub in_flight: usize,
    /// Events committed by this recorder (duplicates excluded).
    pub committed: u64,
    /// Events skipped because their id was already stored (a replay, say).
    pub duplicates: u64,
    /// Events not recorded because the queue was full under
    /// [`Overflow::DropNewest`] or [`Overflow::DropOldest`].
    pub dropped: u64,
    /// Events the store can never hold (a timestamp outside 1970..2262, or
    /// data the backend refuses), logged and skipped.
    pub rejected: u64,
    /// Times a publisher waited for room under [`Overflow::Wait`].
    pub waits: u64,
    /// Failed write attempts (each is retried).
    pub errors: u64,
    /// Committed batches.
    pub batches: u64,
    /// Events removed by retention.
    pub pruned: u64,
    /// The store's last sequence after this recorder's latest commit.
    pub last_sequence: u64,
    /// Events handed off but not yet committed: `queued + in_flight`.
    pub lag: u64,
    /// The error of the latest failed attempt, cleared by the next success.
    pub last_error: Option<StoreError>,
}

impl RecorderStats {
    /// Events handed off but not yet committed: the [`lag`](Self::lag) field.
    pub fn lag(&self) -> u64 {
        self.lag
    }
}

/// How a recorder batches, bounds its queue, retries and prunes; from
/// [`Recorder::builder`].
#[derive(Clone, Debug, Default)]
pub struct RecorderBuilder {
    config: RecorderConfig,
}

impl RecorderBuilder {
    /// The most events queued between publishers and the writer (default
    /// 65,536; at least 1). Memory stays bounded by this many `Arc<Event>`s
    /// plus one batch.
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.config.capacity = capacity.max(1);
        self
    }

    /// The most events per transaction (default 1000; at least 1).
    #[must_use]
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.config.max_batch = max_batch.max(1);
        self
    }

    /// How long the writer waits for a batch to fill before committing
    /// (default zero: batches form while the previous one commits, so they
    /// grow under load and a lone event commits at once).
    #[must_use]
    pub fn linger(mut self, linger: Duration) -> Self {
        self.config.linger = linger;
        self
    }

    /// What publishers do when the queue is full (default [`Overflow::Wait`]).
    #[must_use]
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.config.overflow = overflow;
        self
    }

    /// Prune the store to `retention` in the background, at start and then
    /// every `interval`.
    #[must_use]
    pub fn retention(mut self, retention: Retention, interval: Duration) -> Self {
        self.config.retention = retention;
        self.config.prune_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The backoff between failed write attempts: from `min`, doubling, up
    /// to `max` (default 10 ms to 1 s).
    #[must_use]
    pub fn retry_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.config.retry_min = min.max(Duration::from_micros(100));
        self.config.retry_max = max.max(self.config.retry_min);
        self
    }

    /// Starts recording every event published on `bus` into `store` from
    /// now on (see [`Recorder::attach`]).
    pub fn attach<S: EventStore>(self, bus: &EventBus, store: S) -> Recorder {
        Recorder::start(self.config, bus, Arc::new(store))
    }
}

/// The handle's owned parts: dropping the last clone of the [`Recorder`]
/// unsubscribes and lets the writer drain and stop.
struct Handle {
    shared: Arc<Shared>,
    store: Arc<dyn EventStore>,
    control: mpsc::UnboundedSender<Control>,
    /// Taken by `close`, so catch-up streams end once the writer is gone.
    live: Mutex<Option<broadcast::Sender<Arc<Committed>>>>,
    guard: Mutex<Option<SubscriptionGuard>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(guard) = self
            .guard
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            guard.unsubscribe();
        }
        let _ = self.control.send(Control::Close { done: None });
    }
}

/// Records every event published on a bus into an [`EventStore`].
///
/// A cheap handle: clones share one recorder. See the [crate docs](crate)
/// for the behaviour (hand-off, batching, overflow, flush, retries).
///
/// ```
/// use agentbus::{Event, EventBus, EventType};
/// use agentbus_store::{EventStore, ReadQuery, Recorder, SqliteStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), agentbus_store::StoreError> {
/// let bus = EventBus::new();
/// let store = SqliteStore::open_in_memory()?;
/// let recorder = Recorder::attach(&bus, store.clone());
/// bus.publish(Event::new(EventType::TaskCreated).with_circle(5)).await;
/// let last = recorder.flush().await?; // durable from here on
/// assert_eq!(last, 1);
/// assert_eq!(store.read(&ReadQuery::new()).await?.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Recorder {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Recorder {
    /// Starts recording every event published on `bus` into `store` from
    /// now on, with the default settings (queue of 65,536, batches of up to
    /// 1000, [`Overflow::Wait`], no retention). `store` may be a concrete
    /// store or an `Arc<dyn EventStore>`.
    ///
    /// Needs no async runtime: the writer runs on its own thread.
    ///
    /// If the store keeps dead letters ([`EventStore::dead_letter_store`]),
    /// the recorder keeps the bus's too, and puts the stored ones back into
    /// the bus: before this returns when the store reads on the calling
    /// thread (SQLite), else before the writer's first write (see the
    /// [crate docs](crate#dead-letters)).
    pub fn attach<S: EventStore>(bus: &EventBus, store: S) -> Recorder {
        Self::builder().attach(bus, store)
    }

    /// Settings for a recorder.
    ///
    /// ```
    /// use agentbus::EventBus;
    /// use agentbus_store::{Overflow, Recorder, Retention, SqliteStore};
    /// use std::time::Duration;
    ///
    /// let bus = EventBus::new();
    /// let recorder = Recorder::builder()
    ///     .capacity(10_000)
    ///     .overflow(Overflow::DropNewest)
    ///     .retention(Retention::forever().max_events(1_000_000), Duration::from_secs(60))
    ///     .attach(&bus, SqliteStore::open_in_memory().unwrap());
    /// assert_eq!(recorder.stats().dropped, 0);
    /// ```
    pub fn builder() -> RecorderBuilder {
        RecorderBuilder::default()
    }

    fn start(config: RecorderConfig, bus: &EventBus, store: Arc<dyn EventStore>) -> Recorder {
        let shared = Arc::new(Shared {
            queue: ArrayQueue::new(config.capacity),
            overflow: config.overflow,
            writer_idle: AtomicBool::new(false),
            wake: Notify::new(),
            reserved: Reserved::default(),
            room: Notify::new(),
            writer_gone: AtomicBool::new(false),
            counters: Counters::default(),
            last_error: Mutex::new(None),
            tracking: Arc::default(),
        });
        let (control, control_rx) = mpsc::unbounded_channel();
        let (live, _) = broadcast::channel(config.live_capacity);
        let letters = store
            .dead_letter_store()
            .map(|letter_store| Self::keep_dead_letters(bus, letter_store, &shared));
        let writer = Writer::new(
            config,
            Arc::clone(&shared),
            Arc::clone(&store),
            control_rx,
            live.clone(),
            letters,
        );
        let thread = std::thread::Builder::new()
            .name("agentbus-store-writer".into())
            .spawn(move || writer.run())
            .expect("spawning the recorder's writer thread");
        let feeder = Arc::clone(&shared);
        let id = bus
            .subscription(EventTypeSet::all())
            .name("agentbus-store recorder")
            .shared_handler(move |event: &Arc<Event>| feeder.hand_off(event));
        Recorder {
            handle: Arc::new(Handle {
                shared,
                store,
                control,
                live: Mutex::new(Some(live)),
                guard: Mutex::new(Some(bus.guard(id))),
                thread: Mutex::new(Some(thread)),
            }),
        }
    }

    /// Sends the bus's dead-letter changes to the writer from now on, and
    /// restores the stored letters now if the store reads on this thread
    /// (else the writer restores them before it writes any change).
    fn keep_dead_letters(
        bus: &EventBus,
        letter_store: &dyn crate::DeadLetterStore,
        shared: &Arc<Shared>,
    ) -> LetterState {
        let sink = Arc::new(Letters::new(Arc::clone(shared), bus));
        let weak: std::sync::Weak<dyn agentbus::DeadLetterSink> = Arc::downgrade(&sink) as _;
        bus.dead_letters().set_sink(weak);
        let restored = match letters::restore_inline(letter_store, bus) {
            Some(Ok(())) => true,
            Some(Err(error)) => {
                tracing::warn!(%error, "agentbus-store: reading the stored dead letters failed; the writer retries");
                false
            }
            None => false,
        };
        LetterState::new(sink, restored)
    }

    /// Resolves when every event published before this call is committed
    /// (with the store's durable setting) and returns the store's last
    /// sequence.
    ///
    /// Fails with [`StoreError::FlushFailed`] when a write attempt fails
    /// while the flush waits (the events stay queued and are retried: flush
    /// again), with [`StoreError::EventsDropped`] when events were dropped
    /// since the previous flush, and with [`StoreError::Closed`] after
    /// [`close`](Self::close).
    pub async fn flush(&self) -> Result<u64, StoreError> {
        let (done, result) = oneshot::channel();
        self.handle
            .control
            .send(Control::Flush { done })
            .map_err(|_| StoreError::Closed)?;
        self.handle.shared.wake_writer_now();
        result.await.unwrap_or(Err(StoreError::Closed))
    }

    /// Notes `ids` so that the writer reports the sequence it gives each as
    /// it commits them: call it before publishing the events, then
    /// [`Tracked::commit`] after, which waits for these events (not for
    /// others queued behind them) and returns the sequences (`None` for an
    /// id already stored) without reading the store. A
    /// publisher that must answer with the sequences of what it published
    /// (a web `POST`) uses it instead of [`flush`](Self::flush).
    ///
    /// ```
    /// use agentbus::{Event, EventBus, EventType};
    /// use agentbus_store::{Recorder, SqliteStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), agentbus_store::StoreError> {
    /// let bus = EventBus::new();
    /// let recorder = Recorder::attach(&bus, SqliteStore::open_in_memory()?);
    /// let first = Event::new(EventType::TaskCreated);
    /// bus.publish(first.clone()).await;
    /// recorder.flush().await?; // stored as 1
    /// let second = Event::new(EventType::TaskCreated);
    ///
    /// let tracked = recorder.track(&[first.id, second.id]);
    /// bus.publish(first).await; // a retry: already stored
    /// bus.publish(second).await;
    /// assert_eq!(tracked.commit().await?, [None, Some(2)]);
    /// # Ok(()) }
    /// ```
    pub fn track(&self, ids: &[EventId]) -> Tracked {
        let recorder = self.clone();
        self.handle.shared.tracking.track(
            ids,
            Box::new(move || Box::pin(async move { recorder.flush().await })),
        )
    }

    /// Waits, without blocking the thread, until the queue has room for
    /// `events` more events (at most its capacity) beyond what is queued and
    /// what other reservations hold, and holds that room until the returned
    /// [`Reservation`] is dropped.
    ///
    /// Publishing at most [`Reservation::events`] events while holding it
    /// never waits for room under [`Overflow::Wait`] (nor drops under
    /// the drop policies), as long as every publisher racing for the
    /// queue reserves too. An async publisher that must not block its
    /// thread when the store stalls (a web handler on a Tokio worker) reserves
    /// first, under a timeout of its choice; a batch larger than the queue
    /// is published in parts, one reservation each.
    ///
    /// Fails with [`StoreError::Closed`] once the writer has stopped.
    ///
    /// ```
    /// use agentbus::{Event, EventBus, EventType};
    /// use agentbus_store::{Recorder, SqliteStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), agentbus_store::StoreError> {
    /// let bus = EventBus::new();
    /// let recorder = Recorder::builder()
    ///     .capacity(2)
    ///     .attach(&bus, SqliteStore::open_in_memory()?);
    /// let room = recorder.reserve(5).await?;
    /// assert_eq!(room.events(), 2, "at most the queue's capacity");
    /// bus.publish(Event::new(EventType::TaskCreated)).await;
    /// bus.publish(Event::new(EventType::TaskCreated)).await;
    /// drop(room);
    /// assert_eq!(recorder.flush().await?, 2);
    /// # Ok(()) }
    /// ```
    pub async fn reserve(&self, events: usize) -> Result<Reservation, StoreError> {
        let shared = &self.handle.shared;
        let events = events.min(shared.queue.capacity());
        loop {
            let mut room = std::pin::pin!(shared.room.notified());
            for _ in 0..2 {
                if shared.writer_gone.load(Ordering::Acquire) {
                    return Err(StoreError::Closed);
                }
                if shared.try_reserve(events) {
                    return Ok(Reservation {
                        shared: Arc::clone(shared),
                        events,
                    });
                }
                // Registered before looking again, so room made in between
                // wakes us (the first look skips registering: usually there
                // is room).
                room.as_mut().enable();
            }
            room.await;
        }
    }

    /// Stops recording: unsubscribes from the bus, commits everything
    /// already handed off, stops the writer and returns the last sequence.
    /// Other clones of this recorder then fail with [`StoreError::Closed`].
    pub async fn close(&self) -> Result<u64, StoreError> {
        if let Some(guard) = self
            .handle
            .guard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            guard.unsubscribe();
        }
        self.handle
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let (done, result) = oneshot::channel();
        self.handle
            .control
            .send(Control::Close { done: Some(done) })
            .map_err(|_| StoreError::Closed)?;
        self.handle.shared.wake_writer_now();
        let last = result.await.unwrap_or(Err(StoreError::Closed));
        let thread = self
            .handle
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        last
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> RecorderStats {
        let shared = &self.handle.shared;
        let counters = &shared.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let queued = shared.queue.len();
        let in_flight = load(&counters.in_flight) as usize;
        RecorderStats {
            queued,
            in_flight,
            lag: (queued + in_flight) as u64,
            committed: load(&counters.committed),
            duplicates: load(&counters.duplicates),
            dropped: load(&counters.dropped),
            rejected: load(&counters.rejected),
            waits: load(&counters.waits),
            errors: load(&counters.errors),
            batches: load(&counters.batches),
            pruned: load(&counters.pruned),
            last_sequence: load(&counters.last_sequence),
            last_error: shared
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    /// The store this recorder writes to.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.handle.store
    }

    /// A lossless catch-up stream: every stored event matching `filter`
    /// with a sequence above `after`, then each new one as it commits.
    ///
    /// - **No gap, no duplicate.** Sequences come in ascending order, each
    ///   at most once; the seam between the stored backlog and live events
    ///   is found by sequence, so events committed while the backlog is read
    ///   are neither missed nor repeated.
    /// - **Slow consumers are refilled, not dropped.** Live events reach the
    ///   stream through a bounded buffer; a consumer that falls behind goes
    ///   back to reading the store from its last sequence, and then live
    ///   again. The same happens when the stream sees a sequence gap (events
    ///   written by another process or retried after a cut connection).
    /// - **The backlog is read ahead.** Inside a Tokio runtime, up to two
    ///   pages of 1000 are being read (on the runtime, as tasks) while the
    ///   consumer takes the page before them, so catching up runs on two
    ///   cores; a stream dropped mid-backlog lets those reads finish
    ///   unused. Without a runtime, pages are read one at a time when
    ///   polled.
    /// - The filter's types, fields, correlation and time bounds apply; its
    ///   `after`, `up_to`, order and limit are ignored.
    /// - A row that does not decode is yielded as an `Err` naming its
    ///   sequence, and the stream continues after it. A store error while
    ///   reading is yielded as an `Err` and the read is retried on the next
    ///   poll.
    /// - The stream ends after the recorder is closed or dropped, once
    ///   everything committed is delivered.
    ///
    /// ```
    /// use agentbus::{Event, EventBus, EventType};
    /// use agentbus_store::{ReadQuery, Recorder, SqliteStore};
    /// use futures_util::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), agentbus_store::StoreError> {
    /// let bus = EventBus::new();
    /// let recorder = Recorder::attach(&bus, SqliteStore::open_in_memory()?);
    /// bus.publish(Event::new(EventType::TaskCreated)).await;
    /// recorder.flush().await?;
    ///
    /// let mut stream = recorder.subscribe_from(0, ReadQuery::new());
    /// bus.publish(Event::new(EventType::TaskCompleted)).await; // live
    /// let first = stream.next().await.unwrap()?;
    /// let second = stream.next().await.unwrap()?;
    /// assert_eq!((first.sequence, second.sequence), (1, 2));
    /// assert_eq!(second.event.event_type, EventType::TaskCompleted);
    /// # Ok(()) }
    /// ```
    pub fn subscribe_from(&self, after: u64, filter: ReadQuery) -> CatchUp {
        let live = match &*self
            .handle
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            Some(live) => live.subscribe(),
            // Closed: the stream reads what is stored and ends.
            None => broadcast::channel(1).1,
        };
        CatchUp::new(Arc::clone(&self.handle.store), live, after, filter)
    }
}

/// Room in a recorder's queue held for one publisher; from
/// [`Recorder::reserve`]. Dropping it gives back what was not used.
#[must_use = "the room is given back when the reservation is dropped"]
pub struct Reservation {
    shared: Arc<Shared>,
    events: usize,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("events", &self.events)
            .finish()
    }
}

impl Reservation {
    /// How many events this reservation holds room for.
    pub fn events(&self) -> usize {
        self.events
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.shared.reserved.release(self.events);
        self.shared.room.notify_waiters();
        // The writer may be holding a batch open for this publisher.
        self.shared.wake_writer_now();
    }
}
