//! The recorder's background writer: takes batches off the queue, commits
//! them, retries failures with backoff, answers flushes, prunes, and feeds
//! catch-up streams.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use agentbus::Event;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::letters::{self, Letters};
use super::shared::{RecorderConfig, Shared};
use crate::catch_up::Committed;
use crate::error::StoreError;
use crate::store::EventStore;
use crate::tracked::Outcome;

pub(crate) type Reply = oneshot::Sender<Result<u64, StoreError>>;

pub(crate) enum Control {
    Flush { done: Reply },
    Close { done: Option<Reply> },
}

/// A flush (or close) waiting for the writer to have committed everything
/// taken off the queue up to `target`.
struct Waiter {
    target: u64,
    /// Dead-letter changes noted before the request.
    letters: u64,
    done: Option<Reply>,
    close: bool,
}

/// The writer's side of keeping dead letters (`letters.rs`).
pub(crate) struct LetterState {
    sink: Arc<Letters>,
    /// Whether the stored letters were restored into the bus (at attach,
    /// or by the writer before it writes any change).
    restored: bool,
    /// Changes written so far (of those [`Letters::noted`] counts).
    written: u64,
    /// When a failed write (or restore) is tried again.
    retry_at: Option<Instant>,
    backoff: Duration,
    failures_while_closing: u32,
}

impl LetterState {
    pub(crate) fn new(sink: Arc<Letters>, restored: bool) -> Self {
        Self {
            sink,
            restored,
            written: 0,
            retry_at: None,
            backoff: Duration::ZERO,
            failures_while_closing: 0,
        }
    }

    fn settled(&self, target: u64) -> bool {
        self.restored && self.written >= target
    }

    /// When there is dead-letter work to do: now, or after a failure's
    /// backoff; `None` when there is none.
    fn due(&self) -> Option<Instant> {
        if self.restored && !self.sink.has_work(self.written) {
            return None;
        }
        Some(self.retry_at.unwrap_or_else(Instant::now))
    }
}

/// Failed attempts to tolerate while closing before giving up on what is
/// still queued (nobody was promised it was durable).
const CLOSE_ATTEMPTS: u32 = 3;

/// How long a batch waits at most for the rest of a reserved publish.
const RESERVED_LINGER: Duration = Duration::from_millis(2);

/// How long the queue's length must stay the same before the writer takes
/// what is queued: a publisher in the middle of a burst pushes far more
/// often than this.
const SETTLE_QUIET: Duration = Duration::from_micros(5);

/// The longest the writer waits for a queue that keeps growing (and is not
/// yet a full batch) before it takes what is there.
const SETTLE_MAX: Duration = Duration::from_micros(250);

/// How long the writer keeps watching the empty queue after its last commit
/// before it parks: a burst that starts within it pays no wake-up.
const IDLE_SPIN: Duration = Duration::from_micros(50);

/// While bursts keep coming (the last quiet period was shorter than this),
/// the writer keeps looking at the queue for this long after a commit,
/// [`POLL_STEP`] by [`POLL_STEP`], instead of parking: the publisher of the
/// next burst does not pay for waking it.
const BURST_WINDOW: Duration = Duration::from_millis(5);

/// The writer's sleep between looks while it watches for the next burst;
/// the OS adds its timer slack (50 µs by default on Linux).
const POLL_STEP: Duration = Duration::from_micros(20);

pub(crate) struct Writer {
    config: RecorderConfig,
    shared: Arc<Shared>,
    store: Arc<dyn EventStore>,
    control: mpsc::UnboundedReceiver<Control>,
    live: broadcast::Sender<Arc<Committed>>,
    /// Events taken off the queue so far.
    taken: u64,
    /// Events taken and then committed, rejected or skipped.
    settled: u64,
    waiters: Vec<Waiter>,
    closing: bool,
    last_sequence: Option<u64>,
    dropped_reported: u64,
    letters: Option<LetterState>,
    /// The last quiet period ended with events within [`BURST_WINDOW`].
    bursts_coming: bool,
}

impl Writer {
    pub(crate) fn new(
        config: RecorderConfig,
        shared: Arc<Shared>,
        store: Arc<dyn EventStore>,
        control: mpsc::UnboundedReceiver<Control>,
        live: broadcast::Sender<Arc<Committed>>,
        letters: Option<LetterState>,
    ) -> Self {
        Self {
            config,
            shared,
            store,
            control,
            live,
            taken: 0,
            settled: 0,
            waiters: Vec::new(),
            closing: false,
            last_sequence: None,
            dropped_reported: 0,
            letters,
            bursts_coming: false,
        }
    }

    pub(crate) fn run(self) {
        /// Marks the writer gone however the thread ends (a panic included),
        /// so publishers waiting for room give up instead of spinning.
        struct Gone(Arc<Shared>);
        impl Drop for Gone {
            fn drop(&mut self) {
                self.0.writer_gone.store(true, Ordering::Release);
                self.0.room.notify_waiters();
            }
        }
        let _gone = Gone(Arc::clone(&self.shared));
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(self.main()),
            Err(error) => tracing::error!(%error, "agentbus-store writer cannot start a runtime"),
        }
    }

    fn accept(&mut self, control: Control) {
        // Everything handed off before the request is in the queue now, so
        // it is among the next `len()` events taken.
        let target = self.taken + self.shared.queue.len() as u64;
        let letters = self.letters.as_ref().map_or(0, |state| state.sink.noted());
        match control {
            Control::Flush { done } => self.waiters.push(Waiter {
                target,
                letters,
                done: Some(done),
                close: false,
            }),
            Control::Close { done } => {
                self.closing = true;
                self.waiters.push(Waiter {
                    target,
                    letters,
                    done,
                    close: true,
                });
            }
        }
    }

    fn drain_control(&mut self) {
        loop {
            match self.control.try_recv() {
                Ok(control) => self.accept(control),
                Err(mpsc::error::TryRecvError::Empty) => return,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    if !self.closing {
                        self.accept(Control::Close { done: None });
                    }
                    return;
                }
            }
        }
    }

    /// Answers the waiters whose events are all settled; `true` if a close
    /// was among them (the writer stops).
    async fn answer_settled(&mut self) -> bool {
        let letters = self.letters.as_ref();
        let settled = self.settled;
        let done = |waiter: &Waiter| {
            waiter.target <= settled && letters.is_none_or(|state| state.settled(waiter.letters))
        };
        if !self.waiters.iter().any(done) {
            return false;
        }
        let done: Vec<bool> = self.waiters.iter().map(done).collect();
        let result = self.flush_result().await;
        let mut stop = false;
        let mut done = done.into_iter();
        self.waiters.retain_mut(|waiter| {
            if !done.next().unwrap_or(false) {
                return true;
            }
            stop |= waiter.close;
            if let Some(done) = waiter.done.take() {
                let _ = done.send(result.clone());
            }
            false
        });
        stop
    }

    async fn flush_result(&mut self) -> Result<u64, StoreError> {
        let dropped = self.shared.counters.dropped.load(Ordering::Relaxed);
        if dropped > self.dropped_reported {
            let count = dropped - self.dropped_reported;
            self.dropped_reported = dropped;
            return Err(StoreError::EventsDropped { count });
        }
        match self.last_sequence {
            Some(last) => Ok(last),
            None => match self.store.last_sequence().await {
                Ok(last) => {
                    self.last_sequence = Some(last);
                    Ok(last)
                }
                Err(error) => Err(StoreError::FlushFailed {
                    source: Arc::new(error),
                }),
            },
        }
    }

    fn fail_waiters(&mut self, error: &StoreError) {
        for waiter in &mut self.waiters {
            if let Some(done) = waiter.done.take() {
                let _ = done.send(Err(StoreError::FlushFailed {
                    source: Arc::new(error.clone()),
                }));
            }
        }
        // A close keeps its place (the writer still drains); flushes go.
        self.waiters.retain(|waiter| waiter.close);
    }

    async fn main(mut self) {
        let max_batch = self.config.max_batch;
        let mut pending: Vec<Arc<Event>> = Vec::with_capacity(max_batch);
        let mut backoff = self.config.retry_min;
        let mut failures_while_closing = 0;
        let pruning =
            self.config.retention.max_events.is_some() || self.config.retention.max_age.is_some();
        let mut next_prune = Instant::now();
        loop {
            self.drain_control();
            if pending.is_empty() && self.waiters.is_empty() && !self.closing {
                self.settle();
            }
            self.fill(&mut pending);
            if !pending.is_empty() && pending.len() < max_batch && self.waiters.is_empty() {
                if self.config.linger.is_zero() {
                    self.gather_reserved(&mut pending).await;
                } else {
                    tokio::time::sleep(self.config.linger).await;
                    self.fill(&mut pending);
                }
            }
            self.reject_unstorable(&mut pending);
            self.shared
                .counters
                .in_flight
                .store(pending.len() as u64, Ordering::Relaxed);

            if pruning && Instant::now() >= next_prune {
                self.prune().await;
                next_prune = Instant::now() + self.config.prune_interval;
            }
            self.write_letters().await;

            if pending.is_empty() {
                // Everything taken was committed, or rejected above.
                self.settled = self.taken;
                if self.answer_settled().await {
                    return;
                }
                let letters_due = self.letters.as_ref().and_then(LetterState::due);
                if self.closing
                    && self.shared.queue.is_empty()
                    && self.waiters.is_empty()
                    && letters_due.is_none()
                {
                    return;
                }
                let wake_at = match (pruning.then_some(next_prune), letters_due) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                self.idle(wake_at).await;
                continue;
            }

            let attempt = match self.append(&pending).await {
                Ok(appended) => {
                    self.committed(&pending, appended);
                    pending.clear();
                    Ok(())
                }
                // The store refuses some event of the batch itself: commit
                // the others one by one and skip what is refused, rather
                // than retrying a batch that can never commit.
                Err(StoreError::Rejected { .. }) => self.isolate(&mut pending).await,
                Err(error) => Err(error),
            };
            match attempt {
                Ok(()) => {
                    backoff = self.config.retry_min;
                    failures_while_closing = 0;
                    self.settled = self.taken;
                    self.shared.counters.in_flight.store(0, Ordering::Relaxed);
                    if self.answer_settled().await {
                        return;
                    }
                }
                Err(error) => {
                    self.attempt_failed(&error, "events", pending.len(), backoff);
                    if self.closing {
                        failures_while_closing += 1;
                        if failures_while_closing >= CLOSE_ATTEMPTS {
                            self.abandon(&pending, &error);
                            return;
                        }
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.config.retry_max);
                }
            }
        }
    }

    /// Waits, spinning, while the queue still grows: a burst is being
    /// published. Popping events from under a publisher that is still
    /// pushing makes the two threads trade the queue's cache lines for every
    /// event (hundreds of nanoseconds each on the publisher's side); taken
    /// once the burst is over, the batch costs the publisher nothing. Looks
    /// at the length once per [`SETTLE_QUIET`], so the publisher loses the
    /// queue's tail line at most that often, and a lone event waits one such
    /// period. Takes a full batch at once; otherwise stops after
    /// [`SETTLE_MAX`] or when a control message arrives.
    fn settle(&self) {
        let queue = &self.shared.queue;
        let started = Instant::now();
        let mut seen = queue.len();
        // A full batch already waiting: the publisher is outpacing the
        // writer, and taking it at once keeps up best.
        if seen == 0 || seen >= self.config.max_batch {
            return;
        }
        while started.elapsed() < SETTLE_MAX {
            spin_for(SETTLE_QUIET);
            let now = queue.len();
            if now == seen || !self.control.is_empty() {
                return;
            }
            seen = now;
        }
    }

    fn fill(&mut self, pending: &mut Vec<Arc<Event>>) {
        let before = pending.len();
        while pending.len() < self.config.max_batch {
            match self.shared.queue.pop() {
                Some(event) => {
                    pending.push(event);
                    self.taken += 1;
                }
                None => break,
            }
        }
        if pending.len() > before {
            self.shared.room.notify_waiters();
        }
    }

    /// While a publisher holds a [`Reservation`](crate::Reservation) it is
    /// publishing a batch of its own (a web `POST`): waits for the rest of
    /// it (until the reservation ends, the batch is full, a flush or close
    /// arrives, or [`RESERVED_LINGER`] passes), so it commits in one
    /// transaction rather than in as many as the writer can turn around.
    async fn gather_reserved(&mut self, pending: &mut Vec<Arc<Event>>) {
        let until = tokio::time::Instant::now() + RESERVED_LINGER;
        while self.shared.reserved.any()
            && pending.len() < self.config.max_batch
            && self.waiters.is_empty()
            && !self.closing
        {
            // Woken by the reservation's end, a control message, or a
            // publisher waiting for room; a permit left by an earlier wake
            // only costs one more look.
            let woken = tokio::time::timeout_at(until, self.shared.wake.notified()).await;
            self.drain_control();
            self.fill(pending);
            if woken.is_err() {
                return;
            }
        }
    }

    fn reject_unstorable(&self, pending: &mut Vec<Arc<Event>>) {
        pending.retain(|event| {
            let Err(error) = self.store.check(event) else {
                return true;
            };
            self.shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
            self.shared.tracking.settle([(event.id, Outcome::Refused)]);
            tracing::error!(event_id = %event.id, %error, "agentbus-store: the store cannot hold this event; skipped");
            false
        });
    }

    /// Appends `pending` one event at a time, skipping (counting and
    /// logging) each the store rejects; stops at the first other error,
    /// leaving the rest in `pending`, in order.
    async fn isolate(&mut self, pending: &mut Vec<Arc<Event>>) -> Result<(), StoreError> {
        let mut rest = std::mem::take(pending).into_iter();
        while let Some(event) = rest.next() {
            match self.append(std::slice::from_ref(&event)).await {
                Ok(appended) => self.committed(std::slice::from_ref(&event), appended),
                Err(error @ StoreError::Rejected { .. }) => {
                    self.shared
                        .counters
                        .rejected
                        .fetch_add(1, Ordering::Relaxed);
                    self.shared.tracking.settle([(event.id, Outcome::Refused)]);
                    tracing::error!(
                        event_id = %event.id,
                        %error,
                        source = ?std::error::Error::source(&error).map(ToString::to_string),
                        "agentbus-store: the store rejects this event; skipped"
                    );
                }
                Err(error) => {
                    pending.push(event);
                    pending.extend(rest);
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// Appends on this thread when the store blocks anyway (SQLite): the
    /// writer has the thread to itself.
    async fn append(&self, events: &[Arc<Event>]) -> Result<crate::store::Appended, StoreError> {
        match self.store.append_inline(events) {
            Some(appended) => appended,
            None => self.store.append(events).await,
        }
    }

    fn committed(&mut self, pending: &[Arc<Event>], appended: crate::store::Appended) {
        self.shared
            .tracking
            .settle(
                pending
                    .iter()
                    .zip(&appended.sequences)
                    .map(|(event, sequence)| {
                        let outcome = sequence.map_or(Outcome::AlreadyStored, Outcome::Stored);
                        (event.id, outcome)
                    }),
            );
        let counters = &self.shared.counters;
        let stored = appended.sequences.iter().flatten().count() as u64;
        counters.committed.fetch_add(stored, Ordering::Relaxed);
        counters
            .duplicates
            .fetch_add(pending.len() as u64 - stored, Ordering::Relaxed);
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters
            .last_sequence
            .store(appended.last_sequence, Ordering::Relaxed);
        self.last_sequence = Some(appended.last_sequence);
        self.shared
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if self.live.receiver_count() > 0 && stored > 0 {
            let events = pending
                .iter()
                .zip(&appended.sequences)
                .filter_map(|(event, sequence)| sequence.map(|s| (s, Arc::clone(event))))
                .collect();
            let _ = self.live.send(Arc::new(Committed { events }));
        }
    }

    fn abandon(&mut self, pending: &[Arc<Event>], error: &StoreError) {
        let mut abandoned = pending.len();
        while self.shared.queue.pop().is_some() {
            abandoned += 1;
        }
        tracing::error!(%error, abandoned, "agentbus-store recorder closed while the store fails; unflushed events were not stored");
        for waiter in &mut self.waiters {
            if let Some(done) = waiter.done.take() {
                let _ = done.send(Err(StoreError::FlushFailed {
                    source: Arc::new(error.clone()),
                }));
            }
        }
    }

    async fn prune(&mut self) {
        match self.store.prune(&self.config.retention).await {
            Ok(removed) => {
                self.shared
                    .counters
                    .pruned
                    .fetch_add(removed, Ordering::Relaxed);
            }
            Err(error) => {
                self.shared.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "agentbus-store retention prune failed; retried next interval");
            }
        }
    }

    fn letters_due_now(&self) -> bool {
        self.letters
            .as_ref()
            .and_then(LetterState::due)
            .is_some_and(|due| due <= Instant::now())
    }

    /// Restores the stored dead letters if not yet done, then writes the
    /// letters changed since the last write; a failure is logged, reported
    /// to waiting flushes and retried with backoff (rewriting every letter,
    /// so nothing taken is lost). Events keep flowing meanwhile.
    async fn write_letters(&mut self) {
        let Some(state) = &self.letters else {
            return;
        };
        if state.due().is_none_or(|due| due > Instant::now()) {
            return;
        }
        let store = Arc::clone(&self.store);
        let Some(letter_store) = store.dead_letter_store() else {
            return;
        };
        let sink = Arc::clone(&state.sink);
        let restored = state.restored;
        let result: Result<u64, StoreError> = async {
            if !restored {
                if let Some(bus) = sink.bus.upgrade() {
                    letters::restore(letter_store, &bus).await?;
                }
            }
            let noted = sink.noted();
            match sink.take() {
                Some(batch) => {
                    if !batch.changes.is_empty() {
                        letters::write(letter_store, &batch.changes)
                            .await
                            .inspect_err(|_| sink.retry_all())?;
                    }
                    Ok(batch.noted)
                }
                // The bus is gone, its letters with it.
                None => Ok(noted),
            }
        }
        .await;
        let retry_min = self.config.retry_min;
        let retry_max = self.config.retry_max;
        let closing = self.closing;
        let Some(state) = &mut self.letters else {
            return;
        };
        match result {
            Ok(written) => {
                state.restored = true;
                state.written = written;
                state.retry_at = None;
                state.backoff = Duration::ZERO;
            }
            Err(error) => {
                state.backoff = (state.backoff * 2).clamp(retry_min, retry_max);
                state.retry_at = Some(Instant::now() + state.backoff);
                if closing {
                    state.failures_while_closing += 1;
                    if state.failures_while_closing >= CLOSE_ATTEMPTS {
                        // Give up as with events: nobody was told these
                        // changes were durable.
                        tracing::error!(%error, "agentbus-store recorder closed while the store fails; dead-letter changes not stored");
                        state.restored = true;
                        state.written = state.sink.noted();
                        state.retry_at = None;
                    }
                }
                let retry_in = state.backoff;
                self.attempt_failed(&error, "dead letters", 0, retry_in);
            }
        }
    }

    /// A failed write of `what` (`items` of them, if counted): counted,
    /// logged, kept as the last error and reported to waiting flushes.
    fn attempt_failed(
        &mut self,
        error: &StoreError,
        what: &'static str,
        items: usize,
        retry_in: Duration,
    ) {
        self.shared.counters.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            %error,
            source = ?std::error::Error::source(error).map(ToString::to_string),
            what,
            items,
            ?retry_in,
            "agentbus-store recorder write failed; retrying"
        );
        *self
            .shared
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error.clone());
        self.fail_waiters(error);
    }

    /// Sleeps until an event is handed off, a control message arrives, or
    /// pruning is due. First watches the queue for [`IDLE_SPIN`] (yielding
    /// the core), and while bursts keep coming for up to [`BURST_WINDOW`]
    /// (sleeping [`POLL_STEP`] between looks), so a publisher that starts
    /// again soon finds the writer awake and does not pay for waking it.
    async fn idle(&mut self, next_prune: Option<Instant>) {
        let quiet_since = Instant::now();
        let watch = if self.bursts_coming {
            BURST_WINDOW
        } else {
            IDLE_SPIN
        };
        loop {
            if !self.shared.queue.is_empty() {
                self.bursts_coming = true;
                return;
            }
            if !self.control.is_empty() || self.letters_due_now() {
                return;
            }
            let quiet = quiet_since.elapsed();
            if quiet >= watch {
                break;
            }
            if quiet < IDLE_SPIN {
                // Gives the core to any thread waiting for it (on a busy
                // machine, the publisher itself): lingering must not slow it.
                std::thread::yield_now();
            } else {
                std::thread::sleep(POLL_STEP);
            }
        }
        self.shared.writer_idle.store(true, Ordering::SeqCst);
        // Look again after announcing: a publisher that pushed before seeing
        // the flag would otherwise wake nobody.
        if !self.shared.queue.is_empty() || self.letters_due_now() {
            self.shared.writer_idle.store(false, Ordering::SeqCst);
            return;
        }
        let prune_at = next_prune.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            () = self.shared.wake.notified() => {}
            control = self.control.recv() => match control {
                Some(control) => self.accept(control),
                None => {
                    if !self.closing {
                        self.accept(Control::Close { done: None });
                    }
                }
            },
            () = tokio::time::sleep_until(prune_at.into()) => {}
        }
        self.shared.writer_idle.store(false, Ordering::SeqCst);
        self.bursts_coming = !self.shared.queue.is_empty() && quiet_since.elapsed() < BURST_WINDOW;
    }
}

/// Spins for `period` (far shorter than the scheduler would sleep).
fn spin_for(period: Duration) {
    let until = Instant::now() + period;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// `settle` alone: from outside, its effect is only how a burst is split
/// into batches, which a test through the recorder sees only when the
/// publisher and the writer truly run at once (on a loaded 2-core machine,
/// rarely). Here one thread pushes a steady burst while this one settles,
/// and each thread checks that it was not paused meanwhile.
#[cfg(test)]
#[cfg(feature = "sqlite")]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use agentbus::{Event, EventType, Overflow};
    use crossbeam_queue::ArrayQueue;
    use tokio::sync::{broadcast, mpsc, Notify};

    use super::super::shared::{Counters, RecorderConfig, Reserved, Shared};
    use super::Writer;
    use crate::sqlite::SqliteStore;

    fn writer() -> (Writer, Arc<Shared>) {
        let config = RecorderConfig::default();
        let shared = Arc::new(Shared {
            queue: ArrayQueue::new(config.capacity),
            overflow: Overflow::Wait,
            writer_idle: AtomicBool::new(false),
            wake: Notify::new(),
            reserved: Reserved::default(),
            room: Notify::new(),
            writer_gone: AtomicBool::new(false),
            counters: Counters::default(),
            last_error: Mutex::new(None),
            tracking: Arc::default(),
        });
        let (_control, control_rx) = mpsc::unbounded_channel();
        let (live, _) = broadcast::channel(1);
        let store = Arc::new(SqliteStore::open_in_memory().unwrap());
        let writer = Writer::new(config, Arc::clone(&shared), store, control_rx, live, None);
        (writer, shared)
    }

    /// Pushes `events`, one every microsecond from when `go` is set;
    /// returns the longest gap between two pushes.
    fn push_burst(shared: &Shared, go: &AtomicBool, events: u32) -> Duration {
        let event = Arc::new(Event::new(EventType::TaskCreated));
        while !go.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        let started = Instant::now();
        let mut last = started;
        let mut longest = Duration::ZERO;
        for n in 1..=events {
            while started.elapsed() < Duration::from_micros(n.into()) {
                std::hint::spin_loop();
            }
            shared.queue.push(Arc::clone(&event)).unwrap();
            let now = Instant::now();
            longest = longest.max(now - last);
            last = now;
        }
        longest
    }

    /// A burst of 100 events, one a microsecond (well inside the 250 µs
    /// the look may last), is taken whole: `settle` returns only once the
    /// queue stops growing. Bursts where either thread was paused for
    /// longer than one look (5 µs) prove nothing and are not counted; of
    /// the others (at least 5 of up to 100), 4 in 5 must end whole.
    #[test]
    fn settle_waits_for_a_growing_burst_to_end() {
        let (writer, shared) = writer();
        let (mut counted, mut whole) = (0, 0);
        for _ in 0..100 {
            if counted == 20 {
                break;
            }
            while shared.queue.pop().is_some() {}
            let go = Arc::new(AtomicBool::new(false));
            let pusher = {
                let (shared, go) = (Arc::clone(&shared), Arc::clone(&go));
                std::thread::spawn(move || push_burst(&shared, &go, 100))
            };
            go.store(true, Ordering::Release);
            while shared.queue.is_empty() {
                std::hint::spin_loop();
            }
            let before = shared.queue.len();
            let settling = Instant::now();
            writer.settle();
            let seen = shared.queue.len();
            let settled_in = settling.elapsed();
            let longest_gap = pusher.join().unwrap();
            // Paused pusher: any look may see no growth. Paused settler
            // (it took longer than the burst and the last look): it may
            // have slept through the rest of the burst.
            // Paused before it began (the whole burst already queued):
            // there was nothing left to wait for.
            if longest_gap > Duration::from_micros(4)
                || settled_in > Duration::from_micros(150)
                || before == 100
            {
                continue;
            }
            counted += 1;
            if seen == 100 {
                whole += 1;
            }
        }
        assert!(
            counted >= 5,
            "only {counted} bursts ran unpaused: too loaded to tell"
        );
        assert!(
            whole * 5 >= counted * 4,
            "{whole} of {counted} unpaused bursts were taken whole"
        );
    }
}
