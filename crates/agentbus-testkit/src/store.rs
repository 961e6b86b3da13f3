//! The store conformance suite, and stores that misbehave on purpose.

pub mod conformance;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentbus::{DeadLetter, DeadLetterQuery, Event, EventId};
use agentbus_store::{
    Appended, BoxFuture, DeadLetterChanges, DeadLetterStore, EventStore, ReadQuery, Recorder,
    Retention, StoreError, StoredEvent,
};

/// Checks that `events` hold sequences `from..=to`, each once, in order.
pub fn assert_contiguous(events: &[StoredEvent], from: u64, to: u64) {
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    let expected: Vec<u64> = (from..=to).collect();
    assert_eq!(
        sequences, expected,
        "sequences must be contiguous {from}..={to}"
    );
}

/// Everything in `store`, read in pages of 5,000.
pub async fn read_all<S: EventStore + ?Sized>(store: &S) -> Vec<StoredEvent> {
    let mut all = Vec::new();
    loop {
        let after = all.last().map_or(0, |e: &StoredEvent| e.sequence);
        let page = store
            .read(&ReadQuery::new().after(after).limit(5000))
            .await
            .expect("read");
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// The first `count` items of `stream`, collected by
/// [`isolated_within`](crate::deadline::isolated_within): a stream that
/// spins without yielding (a catch-up whose reads never start) fails the
/// test within `limit` instead of holding its runtime for ever. Tasks the
/// stream spawns (a catch-up's reads) run on the collection's runtime; a
/// PostgreSQL pool replaces the connections it opened there when they are
/// next asked for.
pub async fn collect_within<St>(stream: St, count: usize, limit: Duration) -> Vec<St::Item>
where
    St: futures_util::Stream + Send + 'static,
    St::Item: Send + 'static,
{
    use futures_util::StreamExt;

    crate::deadline::isolated_within(
        limit,
        &format!("{count} items of the stream"),
        stream.take(count).collect::<Vec<_>>(),
    )
    .await
}

/// `future`'s output, or a panic naming `what` once `limit` has passed: the
/// deadline for a recorder's `flush` or `reserve`, which yield while they
/// wait (so, unlike a spinning stream's, `tokio::time::timeout` holds; see
/// [`collect_within`]; a `close` needs [`close_within`]). A test that would
/// hang with a broken writer fails instead, within the limit.
pub async fn within<F: std::future::Future>(limit: Duration, what: &str, future: F) -> F::Output {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not end within {limit:?}: a hang?"))
}

/// `recorder.close()` by [`isolated_within`](crate::deadline::isolated_within),
/// or a panic after `limit`. [`within`] cannot bound a close: a close joins
/// the writer thread from a blocking task, and a test runtime's shutdown
/// waits for its blocking tasks, so a writer that never stops would hold
/// the failed test for ever.
pub async fn close_within(recorder: &Recorder, limit: Duration) -> Result<u64, StoreError> {
    let recorder = recorder.clone();
    crate::deadline::isolated_within(limit, "close (the writer never stopped?)", async move {
        recorder.close().await
    })
    .await
}

/// The [`EventStore`] methods a wrapper hands to its inner store as they
/// are: `pass_through!(inner: read, get)` inside the wrapper's impl.
macro_rules! pass_through {
    ($field:tt: $($method:ident),+) => {
        $(pass_through!(@ $field $method);)+
    };
    (@ $field:tt append) => {
        fn append<'a>(
            &'a self,
            events: &'a [Arc<Event>],
        ) -> BoxFuture<'a, Result<Appended, StoreError>> {
            self.$field.append(events)
        }
    };
    (@ $field:tt read) => {
        fn read<'a>(
            &'a self,
            query: &'a ReadQuery,
        ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>> {
            self.$field.read(query)
        }
    };
    (@ $field:tt get) => {
        fn get(&self, id: EventId) -> BoxFuture<'_, Result<Option<StoredEvent>, StoreError>> {
            self.$field.get(id)
        }
    };
    (@ $field:tt last_sequence) => {
        fn last_sequence(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
            self.$field.last_sequence()
        }
    };
    (@ $field:tt prune) => {
        fn prune<'a>(&'a self, retention: &'a Retention) -> BoxFuture<'a, Result<u64, StoreError>> {
            self.$field.prune(retention)
        }
    };
}

/// A store whose appends wait `delay` first (a writer slower than the
/// publishers), and fail with [`Injected`] while `failing` is set.
pub struct Throttled<S> {
    /// The store appends reach after the delay.
    pub inner: S,
    /// How long each append waits.
    pub delay: Duration,
    /// While `true`, appends fail.
    pub failing: AtomicBool,
}

impl<S> Throttled<S> {
    /// `inner` behind a `delay`, not failing.
    pub fn new(inner: S, delay: Duration) -> Self {
        Self {
            inner,
            delay,
            failing: AtomicBool::new(false),
        }
    }
}

/// The cause of the failures [`Throttled`] and [`Picky`] inject.
#[derive(Debug, thiserror::Error)]
#[error("injected failure")]
pub struct Injected;

impl<S: EventStore> EventStore for Throttled<S> {
    pass_through!(inner: read, get, last_sequence, prune);

    fn append<'a>(
        &'a self,
        events: &'a [Arc<Event>],
    ) -> BoxFuture<'a, Result<Appended, StoreError>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            if self.failing.load(Ordering::SeqCst) {
                return Err(StoreError::Backend {
                    backend: "test",
                    operation: "append",
                    source: Arc::new(Injected),
                });
            }
            self.inner.append(events).await
        })
    }

    fn dead_letter_store(&self) -> Option<&dyn DeadLetterStore> {
        self.inner.dead_letter_store().map(|_| self as _)
    }
}

/// Dead-letter writes fail while `failing` is set, as appends do (without
/// the delay).
impl<S: EventStore> DeadLetterStore for Throttled<S> {
    fn write_dead_letters<'a>(
        &'a self,
        changes: &'a DeadLetterChanges,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        if self.failing.load(Ordering::SeqCst) {
            return Box::pin(async {
                Err(StoreError::Backend {
                    backend: "test",
                    operation: "write dead letters",
                    source: Arc::new(Injected),
                })
            });
        }
        match self.inner.dead_letter_store() {
            Some(inner) => inner.write_dead_letters(changes),
            None => Box::pin(async { Ok(()) }),
        }
    }

    fn read_dead_letters<'a>(
        &'a self,
        query: &'a DeadLetterQuery,
    ) -> BoxFuture<'a, Result<Vec<DeadLetter>, StoreError>> {
        match self.inner.dead_letter_store() {
            Some(inner) => inner.read_dead_letters(query),
            None => Box::pin(async { Ok(Vec::new()) }),
        }
    }
}

/// A store that refuses, as a database refuses data it cannot hold, every
/// batch containing an event whose data has `"poison": true`
/// ([`StoreError::Rejected`]).
pub struct Picky<S>(pub S);

impl<S: EventStore> EventStore for Picky<S> {
    pass_through!(0: read, get, last_sequence, prune);

    fn append<'a>(
        &'a self,
        events: &'a [Arc<Event>],
    ) -> BoxFuture<'a, Result<Appended, StoreError>> {
        if events.iter().any(|event| event.data["poison"] == true) {
            return Box::pin(async {
                Err(StoreError::Rejected {
                    backend: "test",
                    source: Arc::new(Injected),
                })
            });
        }
        self.0.append(events)
    }

    fn dead_letter_store(&self) -> Option<&dyn DeadLetterStore> {
        self.0.dead_letter_store()
    }
}

/// A store with a switch per part that can fail, and counters of what the
/// recorder asked of it: for the writer's own behaviour (backoff, giving
/// up while closing, pruning, what it refuses at the door, batch sizes),
/// which [`Throttled`] (appends and letters fail together) cannot tell
/// apart.
///
/// - appends fail while `failing_appends` is set, dead-letter writes while
///   `failing_letters` is set (both with [`Injected`] as the cause);
/// - [`check`](EventStore::check) refuses an event whose data has
///   `"unstorable": true` (which `append` would store: only the recorder's
///   check keeps it out);
/// - every prune is counted in `prunes`, and the largest batch appended is
///   kept in `largest_batch`.
///
/// Reads, and the blocking (`_inline`) reads of dead letters, go to `inner`
/// as they are, so a SQLite store still restores its letters on attach.
pub struct Faulty<S> {
    /// The store every call reaches when it does not fail.
    pub inner: S,
    /// While `true`, appends fail.
    pub failing_appends: AtomicBool,
    /// While `true`, dead-letter writes fail.
    pub failing_letters: AtomicBool,
    /// Prunes asked for so far.
    pub prunes: AtomicU64,
    /// The most events in one append so far.
    pub largest_batch: AtomicUsize,
}

impl<S> Faulty<S> {
    /// `inner`, failing nothing yet.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            failing_appends: AtomicBool::new(false),
            failing_letters: AtomicBool::new(false),
            prunes: AtomicU64::new(0),
            largest_batch: AtomicUsize::new(0),
        }
    }
}

fn injected(operation: &'static str) -> StoreError {
    StoreError::Backend {
        backend: "test",
        operation,
        source: Arc::new(Injected),
    }
}

impl<S: EventStore> EventStore for Faulty<S> {
    pass_through!(inner: read, get, last_sequence);

    fn append<'a>(
        &'a self,
        events: &'a [Arc<Event>],
    ) -> BoxFuture<'a, Result<Appended, StoreError>> {
        self.largest_batch.fetch_max(events.len(), Ordering::SeqCst);
        if self.failing_appends.load(Ordering::SeqCst) {
            return Box::pin(async { Err(injected("append")) });
        }
        self.inner.append(events)
    }

    fn prune<'a>(&'a self, retention: &'a Retention) -> BoxFuture<'a, Result<u64, StoreError>> {
        self.prunes.fetch_add(1, Ordering::SeqCst);
        self.inner.prune(retention)
    }

    fn check(&self, event: &Event) -> Result<(), StoreError> {
        if event.data["unstorable"] == true {
            return Err(StoreError::Rejected {
                backend: "test",
                source: Arc::new(Injected),
            });
        }
        self.inner.check(event)
    }

    fn dead_letter_store(&self) -> Option<&dyn DeadLetterStore> {
        self.inner.dead_letter_store().map(|_| self as _)
    }
}

impl<S: EventStore> DeadLetterStore for Faulty<S> {
    fn write_dead_letters<'a>(
        &'a self,
        changes: &'a DeadLetterChanges,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        if self.failing_letters.load(Ordering::SeqCst) {
            return Box::pin(async { Err(injected("write dead letters")) });
        }
        match self.inner.dead_letter_store() {
            Some(inner) => inner.write_dead_letters(changes),
            None => Box::pin(async { Ok(()) }),
        }
    }

    fn read_dead_letters<'a>(
        &'a self,
        query: &'a DeadLetterQuery,
    ) -> BoxFuture<'a, Result<Vec<DeadLetter>, StoreError>> {
        match self.inner.dead_letter_store() {
            Some(inner) => inner.read_dead_letters(query),
            None => Box::pin(async { Ok(Vec::new()) }),
        }
    }

    fn read_dead_letters_inline(
        &self,
        query: &DeadLetterQuery,
    ) -> Option<Result<Vec<DeadLetter>, StoreError>> {
        self.inner
            .dead_letter_store()?
            .read_dead_letters_inline(query)
    }
}

/// A store whose appends of a batch holding an event with `"gated": true`
/// in its data wait until [`open`](Self::open) is called (a write that
/// hangs on one event: the recorder's writer is stuck on it); other
/// batches go straight through.
pub struct Gated<S> {
    /// The store appends reach once let through.
    pub inner: S,
    open: tokio::sync::watch::Sender<bool>,
}

impl<S> Gated<S> {
    /// `inner` behind a closed gate.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            open: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Lets every waiting and later gated append through.
    pub fn open(&self) {
        self.open.send_replace(true);
    }
}

impl<S: EventStore> EventStore for Gated<S> {
    pass_through!(inner: read, get, last_sequence, prune);

    fn append<'a>(
        &'a self,
        events: &'a [Arc<Event>],
    ) -> BoxFuture<'a, Result<Appended, StoreError>> {
        Box::pin(async move {
            if events.iter().any(|event| event.data["gated"] == true) {
                let mut open = self.open.subscribe();
                // The sender lives as long as `self`: this cannot fail.
                let _ = open.wait_for(|open| *open).await;
            }
            self.inner.append(events).await
        })
    }
}

/// A store slow or failing to say where it ends: its first
/// [`last_sequence`](EventStore::last_sequence) waits `delay` and only then
/// reads ([`new`](Self::new): whoever asks first, a web hub starting,
/// learns it late, after what was committed meanwhile), or its first
/// `failures` calls fail with [`Injected`] ([`failing`](Self::failing): a
/// database not answering yet). Later calls and everything else go
/// straight through.
pub struct LateEnd<S> {
    /// The store every call reaches.
    pub inner: S,
    delay: Duration,
    asked: AtomicBool,
    failures_left: AtomicU64,
}

impl<S> LateEnd<S> {
    /// `inner`, its first `last_sequence` late by `delay`.
    pub fn new(inner: S, delay: Duration) -> Self {
        Self {
            inner,
            delay,
            asked: AtomicBool::new(false),
            failures_left: AtomicU64::new(0),
        }
    }

    /// `inner`, its first `failures` calls of `last_sequence` failing.
    pub fn failing(inner: S, failures: u64) -> Self {
        Self {
            failures_left: AtomicU64::new(failures),
            ..Self::new(inner, Duration::ZERO)
        }
    }
}

impl<S: EventStore> EventStore for LateEnd<S> {
    pass_through!(inner: append, read, get, prune);

    fn last_sequence(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let failing =
                self.failures_left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                        left.checked_sub(1)
                    });
            if failing.is_ok() {
                return Err(injected("last sequence"));
            }
            if !self.asked.swap(true, Ordering::Relaxed) {
                tokio::time::sleep(self.delay).await;
            }
            self.inner.last_sequence().await
        })
    }
}

/// Dead letters with these ids, as a store restores them: each of one
/// failed `TaskFailed` event, one attempt, subscription `exporter`.
pub fn restored_letters(ids: std::ops::RangeInclusive<u64>) -> Vec<DeadLetter> {
    ids.map(|id| {
        DeadLetter::restored(
            agentbus::DeadLetterId::new(id),
            Arc::new(Event::new(agentbus::EventType::TaskFailed)),
            1,
            Some("exporter"),
        )
    })
    .collect()
}
