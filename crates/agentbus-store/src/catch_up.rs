//! [`CatchUp`]: stored events after a sequence, then live ones as they
//! commit, with no gap and no duplicate at the seam. Behaviour is documented
//! on [`Recorder::subscribe_from`](crate::Recorder::subscribe_from).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use agentbus::{Event, Order};
use futures_core::Stream;
use tokio::sync::broadcast;

use crate::error::StoreError;
use crate::query::ReadQuery;
use crate::store::EventStore;
use crate::stored::StoredEvent;

/// Rows per store read while catching up.
const PAGE: usize = 1000;
/// Backlog reads in flight at most while the backlog is dense.
const READS_AHEAD: usize = 2;
/// The pause before retrying a read that failed.
const RETRY_DELAY: Duration = Duration::from_millis(100);

/// One committed batch, as catch-up streams receive it: the events that
/// were stored (duplicates left out) with their sequences.
pub(crate) struct Committed {
    pub(crate) events: Vec<(u64, Arc<Event>)>,
}

type Item = Result<StoredEvent, StoreError>;

/// A read of one backlog page, started ahead of the consumer.
type PageRead = Pin<Box<dyn Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send>>;

/// A lossless stream of [`StoredEvent`]s; from
/// [`Recorder::subscribe_from`](crate::Recorder::subscribe_from).
///
/// No event is copied on the way: a row read back is decoded into one
/// `Arc`, and an event that arrives live is the `Arc` published on the bus.
pub struct CatchUp {
    inner: Pin<Box<dyn Stream<Item = Item> + Send>>,
}

impl std::fmt::Debug for CatchUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatchUp").finish_non_exhaustive()
    }
}

impl Stream for CatchUp {
    type Item = Result<StoredEvent, StoreError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl CatchUp {
    /// This stream as `(sequence, event)` pairs: the same events, in the
    /// same order, the same `Arc`s.
    ///
    /// ```
    /// use agentbus::{Event, EventBus, EventType};
    /// use agentbus_store::{ReadQuery, Recorder, SqliteStore};
    /// use futures_util::StreamExt;
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), agentbus_store::StoreError> {
    /// let bus = EventBus::new();
    /// let recorder = Recorder::attach(&bus, SqliteStore::open_in_memory()?);
    /// # #[allow(deprecated)]
    /// let mut stream = recorder.subscribe_from(0, ReadQuery::new()).shared();
    /// let event = Arc::new(Event::new(EventType::TaskCreated));
    /// bus.publish(Arc::clone(&event)).await;
    /// let (sequence, live) = stream.next().await.unwrap()?;
    /// assert_eq!(sequence, 1);
    /// assert_eq!(live.id, event.id);
    /// # Ok(()) }
    /// ```
    #[deprecated(
        note = "a `CatchUp` yields `StoredEvent`s, which hold the `Arc<Event>`: use the stream itself"
    )]
    pub fn shared(
        self,
    ) -> impl Stream<Item = Result<(u64, Arc<Event>), StoreError>> + Send + Unpin {
        futures_util::StreamExt::map(self.inner, |item| {
            item.map(|stored| (stored.sequence, stored.event))
        })
    }
}

enum Mode {
    /// Find the store's last sequence, then read up to it.
    Start,
    /// Read the store from the cursor up to `up_to`, then go live (or end).
    Backlog {
        up_to: u64,
    },
    /// Take committed batches from the recorder.
    Live,
    Done,
}

struct State {
    store: Arc<dyn EventStore>,
    live: broadcast::Receiver<Arc<Committed>>,
    /// The last sequence delivered or passed over (filtered out).
    cursor: u64,
    filter: ReadQuery,
    buffer: VecDeque<Item>,
    mode: Mode,
    /// The recorder is gone: after the final backlog, end.
    ending: bool,
    /// The last page held every sequence of its range: read ahead.
    dense: bool,
    /// Backlog reads started, oldest first, with the sequence each reads
    /// after.
    ahead: VecDeque<(u64, PageRead)>,
    /// Where the next read ahead starts.
    next_read: u64,
    retry: bool,
}

impl CatchUp {
    pub(crate) fn new(
        store: Arc<dyn EventStore>,
        live: broadcast::Receiver<Arc<Committed>>,
        after: u64,
        filter: ReadQuery,
    ) -> Self {
        let state = State {
            store,
            live,
            cursor: after,
            filter: filter.order(Order::Ascending).limit(PAGE),
            buffer: VecDeque::new(),
            mode: Mode::Start,
            ending: false,
            dense: true,
            ahead: VecDeque::new(),
            next_read: after,
            retry: false,
        };
        let stream = futures_util::stream::unfold(state, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        });
        Self {
            inner: Box::pin(stream),
        }
    }
}

impl State {
    async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.buffer.pop_front() {
                return Some(item);
            }
            if std::mem::take(&mut self.retry) {
                tokio::time::sleep(RETRY_DELAY).await;
            }
            match self.mode {
                Mode::Start => match self.store.last_sequence().await {
                    Ok(up_to) => self.mode = Mode::Backlog { up_to },
                    Err(error) => return Some(Err(self.failed(error))),
                },
                Mode::Backlog { up_to } => {
                    if self.cursor >= up_to {
                        self.ahead.clear();
                        self.mode = if self.ending { Mode::Done } else { Mode::Live };
                        continue;
                    }
                    if let Err(error) = self.read_page(up_to).await {
                        return Some(Err(self.failed(error)));
                    }
                }
                Mode::Live => match self.live.recv().await {
                    Ok(batch) => self.take_batch(&batch),
                    // Fell behind the live buffer: refill from the store.
                    Err(broadcast::error::RecvError::Lagged(_)) => self.mode = Mode::Start,
                    Err(broadcast::error::RecvError::Closed) => {
                        self.ending = true;
                        self.mode = Mode::Start;
                    }
                },
                Mode::Done => return None,
            }
        }
    }

    fn failed(&mut self, error: StoreError) -> StoreError {
        self.retry = true;
        error
    }

    /// Starts reads of the backlog ahead of the consumer, up to
    /// [`READS_AHEAD`] in flight while the backlog is dense (every sequence
    /// present and matching, as in an unfiltered catch-up), one otherwise.
    /// Each reads a page by sequence range from where the one before it
    /// would end if dense: a full page ends there or later, so the reads
    /// overlap when the backlog turns sparse and never leave a gap.
    fn start_reads(&mut self, up_to: u64) {
        if self.ahead.is_empty() {
            self.next_read = self.cursor;
        }
        let wanted = if self.dense { READS_AHEAD } else { 1 };
        while self.ahead.len() < wanted && self.next_read < up_to {
            let store = Arc::clone(&self.store);
            let query = self.filter.clone().after(self.next_read).up_to(up_to);
            let read = async move { store.read(&query).await };
            let read: PageRead = match tokio::runtime::Handle::try_current() {
                // On its own task, so it runs while the consumer takes the
                // pages before it.
                Ok(runtime) => {
                    let task = runtime.spawn(read);
                    Box::pin(async move {
                        task.await
                            .unwrap_or_else(|join| match join.try_into_panic() {
                                Ok(panic) => std::panic::resume_unwind(panic),
                                // The runtime is shutting down.
                                Err(_) => Err(StoreError::Closed),
                            })
                    })
                }
                // No runtime: read when awaited, one page at a time.
                Err(_) => Box::pin(read),
            };
            self.ahead.push_back((self.next_read, read));
            self.next_read += PAGE as u64;
        }
    }

    /// Takes the oldest read of the backlog into the buffer, starting the
    /// next ones first so they run while the consumer takes this page (two
    /// reads in flight: two reader connections for SQLite, two pooled
    /// connections for PostgreSQL). Rows a read shares with the page
    /// before it (the backlog turned sparse) are skipped.
    async fn read_page(&mut self, up_to: u64) -> Result<(), StoreError> {
        self.start_reads(up_to);
        let Some((from, read)) = self.ahead.pop_front() else {
            return Ok(());
        };
        // Every read starts at or before the cursor: the one before it was
        // full (so it reached at least `from`) or reached `up_to`.
        debug_assert!(from <= self.cursor, "a read ahead left a gap");
        match read.await {
            Ok(page) => {
                let full = page.len() == PAGE;
                let last = page.last().map(|stored| stored.sequence);
                self.dense = full && last == Some(from + PAGE as u64);
                let after = self.cursor;
                // A full page covers the matches up to its last row; a
                // short one all of them up to `up_to`.
                self.cursor = match (full, last) {
                    (true, Some(last)) => after.max(last),
                    _ => up_to,
                };
                self.buffer.extend(
                    page.into_iter()
                        .filter(|stored| stored.sequence > after)
                        .map(Ok),
                );
                if self.cursor < up_to {
                    self.start_reads(up_to);
                } else {
                    self.ahead.clear();
                }
                Ok(())
            }
            Err(error) => {
                self.ahead.clear();
                match error.sequence() {
                    // A row that does not decode: deliver the rows before
                    // it, then the error, and go on after it.
                    Some(bad) if bad > self.cursor => {
                        let before = self.filter.clone().after(self.cursor).up_to(bad - 1);
                        let page = self.store.read(&before).await?;
                        self.buffer.extend(page.into_iter().map(Ok));
                        self.buffer.push_back(Err(error));
                        self.cursor = bad;
                        Ok(())
                    }
                    _ => Err(error),
                }
            }
        }
    }

    fn take_batch(&mut self, batch: &Committed) {
        for (sequence, event) in &batch.events {
            let sequence = *sequence;
            if sequence <= self.cursor {
                continue;
            }
            if sequence > self.cursor + 1 {
                // Something committed that this stream did not see live:
                // read it, and the rest of this batch, from the store.
                let up_to = batch.events.last().map_or(sequence, |(last, _)| *last);
                self.mode = Mode::Backlog { up_to };
                return;
            }
            if self.filter.matches(event) {
                self.buffer.push_back(Ok(StoredEvent {
                    sequence,
                    event: Arc::clone(event),
                }));
            }
            self.cursor = sequence;
        }
    }
}
