//! [`CatchUp`]: stored events after a sequence, then live ones as they
//! commit, with no gap and no duplicate at the seam. Behaviour is documented
//! on [`Recorder::subscribe_from`](crate::Recorder::subscribe_from).

use std::collections::VecDeque;
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
/// The pause before retrying a read that failed.
const RETRY_DELAY: Duration = Duration::from_millis(100);

/// One committed batch, as catch-up streams receive it: the events that
/// were stored (duplicates left out) with their sequences.
pub(crate) struct Committed {
    pub(crate) events: Vec<(u64, Arc<Event>)>,
}

type Item = Result<StoredEvent, StoreError>;

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

    async fn read_page(&mut self, up_to: u64) -> Result<(), StoreError> {
        let query = self.filter.clone().after(self.cursor).up_to(up_to);
        match self.store.read(&query).await {
            Ok(page) => {
                self.cursor = if page.len() < PAGE {
                    up_to
                } else {
                    page.last().map_or(up_to, |last| last.sequence)
                };
                self.buffer.extend(page.into_iter().map(Ok));
                Ok(())
            }
            Err(error) => match error.sequence() {
                // A row that does not decode: deliver the rows before it,
                // then the error, and go on after it.
                Some(bad) if bad > self.cursor => {
                    let before = self.filter.clone().after(self.cursor).up_to(bad - 1);
                    let page = self.store.read(&before).await?;
                    self.buffer.extend(page.into_iter().map(Ok));
                    self.buffer.push_back(Err(error));
                    self.cursor = bad;
                    Ok(())
                }
                _ => Err(error),
            },
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
