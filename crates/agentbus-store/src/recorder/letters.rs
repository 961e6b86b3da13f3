//! How the recorder keeps the bus's dead letters in the store: a
//! [`DeadLetterSink`] that queues the ids of changed letters for the
//! writer, which reads each letter's state back from the bus and writes it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use agentbus::{DeadLetter, DeadLetterId, DeadLetterQuery, DeadLetterSink, EventBus, WeakEventBus};
use crossbeam_queue::ArrayQueue;

use super::shared::Shared;
use crate::dead_letters::{DeadLetterChanges, DeadLetterStore};
use crate::error::StoreError;

/// The most changed ids queued for the writer; past it the writer rewrites
/// every letter instead (nothing waits, nothing is lost).
pub(crate) const DIRTY_CAPACITY: usize = 4096;

/// Letters read back per page when restoring.
const RESTORE_PAGE: usize = 1000;

/// The ids of changed letters, between the threads that change them and
/// the writer.
pub(crate) struct Letters {
    dirty: ArrayQueue<DeadLetterId>,
    /// Set when `dirty` was full: the writer rewrites every letter.
    rewrite_all: AtomicBool,
    /// Changes noted so far (pushed or folded into `rewrite_all`).
    noted: AtomicU64,
    shared: Arc<Shared>,
    pub(crate) bus: WeakEventBus,
}

impl DeadLetterSink for Letters {
    fn changed(&self, id: DeadLetterId) {
        if self.dirty.push(id).is_err() {
            self.rewrite_all.store(true, Ordering::SeqCst);
        }
        // SeqCst, after the push: a writer that reads this count sees the
        // push (or the flag) when it drains next; pairs with `take`.
        self.noted.fetch_add(1, Ordering::SeqCst);
        self.shared.wake_writer_now();
    }
}

/// What the writer took to write: the changes, and the count of
/// notifications they cover.
pub(crate) struct Batch {
    pub(crate) changes: DeadLetterChanges,
    pub(crate) noted: u64,
}

impl Letters {
    pub(crate) fn new(shared: Arc<Shared>, bus: &EventBus) -> Self {
        Self {
            dirty: ArrayQueue::new(DIRTY_CAPACITY),
            rewrite_all: AtomicBool::new(false),
            noted: AtomicU64::new(0),
            shared,
            bus: bus.downgrade(),
        }
    }

    /// Changes noted so far: the target a flush waits for.
    pub(crate) fn noted(&self) -> u64 {
        self.noted.load(Ordering::SeqCst)
    }

    pub(crate) fn has_work(&self, written: u64) -> bool {
        self.noted() != written
    }

    /// Takes the changed ids and reads their letters back from the bus.
    /// `None` when the bus is gone (its letters with it: nothing to write).
    pub(crate) fn take(&self) -> Option<Batch> {
        let noted = self.noted();
        let rewrite_all = self.rewrite_all.swap(false, Ordering::SeqCst);
        let mut ids = Vec::with_capacity(self.dirty.len());
        while let Some(id) = self.dirty.pop() {
            ids.push(id);
        }
        let bus = self.bus.upgrade()?;
        let dead = bus.dead_letters();
        let mut changes = DeadLetterChanges::new();
        if rewrite_all {
            changes.clear = true;
            changes.put = dead.snapshot();
        } else {
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                match dead.current(id) {
                    Some(letter) => changes.put.push(letter),
                    None => changes.remove.push(id),
                }
            }
        }
        drop(dead);
        drop(bus);
        Some(Batch { changes, noted })
    }

    /// After a failed write: the next write rewrites every letter, so
    /// nothing taken is lost.
    pub(crate) fn retry_all(&self) {
        self.rewrite_all.store(true, Ordering::SeqCst);
    }
}

/// Writes `changes` on this thread if the store blocks anyway.
pub(crate) async fn write(
    store: &dyn DeadLetterStore,
    changes: &DeadLetterChanges,
) -> Result<(), StoreError> {
    match store.write_dead_letters_inline(changes) {
        Some(result) => result,
        None => store.write_dead_letters(changes).await,
    }
}

/// Reads every stored letter back, a page at a time, paging past rows
/// that do not decode (logged, and left in the store).
struct Pager {
    query: Option<DeadLetterQuery>,
    stored: Vec<DeadLetter>,
}

impl Pager {
    fn new() -> Self {
        Self {
            query: Some(DeadLetterQuery::new().limit(RESTORE_PAGE)),
            stored: Vec::new(),
        }
    }

    /// Takes one page's result; afterwards `query` is the next page's, or
    /// `None` when all were read.
    fn feed(&mut self, page: Result<Vec<DeadLetter>, StoreError>) -> Result<(), StoreError> {
        let Some(query) = self.query.take() else {
            return Ok(());
        };
        match page {
            Ok(page) => {
                if page.len() == RESTORE_PAGE {
                    self.query = page.last().map(|last| query.after(last.id()));
                }
                self.stored.extend(page);
            }
            Err(StoreError::CorruptDeadLetter { id, source }) => {
                tracing::error!(
                    dead_letter = id,
                    source = ?source.map(|s| s.to_string()),
                    "agentbus-store: a stored dead letter does not decode; left in the store, not restored"
                );
                self.query = Some(query.after(DeadLetterId::new(id)));
            }
            Err(error) => return Err(error),
        }
        Ok(())
    }

    fn restore_into(self, bus: &EventBus) {
        let restored = bus.dead_letters().restore(self.stored);
        if restored.letters > 0 {
            tracing::info!(
                restored = restored.letters,
                renumbered = restored.renumbered,
                dropped = restored.dropped,
                "agentbus-store: dead letters restored from the store"
            );
        }
    }
}

/// Restores the stored letters into `bus` on this thread, if the store
/// reads on the calling thread (`None` otherwise: use [`restore`]).
pub(crate) fn restore_inline(
    store: &dyn DeadLetterStore,
    bus: &EventBus,
) -> Option<Result<(), StoreError>> {
    let mut pager = Pager::new();
    while let Some(query) = &pager.query {
        let page = store.read_dead_letters_inline(query)?;
        if let Err(error) = pager.feed(page) {
            return Some(Err(error));
        }
    }
    pager.restore_into(bus);
    Some(Ok(()))
}

/// Restores the stored letters into `bus`.
pub(crate) async fn restore(store: &dyn DeadLetterStore, bus: &EventBus) -> Result<(), StoreError> {
    let mut pager = Pager::new();
    while let Some(query) = &pager.query {
        let page = store.read_dead_letters(query).await;
        pager.feed(page)?;
    }
    pager.restore_into(bus);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use agentbus::{DeadLetter, DeadLetterId, Event, EventType};

    use super::{Pager, RESTORE_PAGE};
    use crate::error::StoreError;

    fn letters(ids: std::ops::RangeInclusive<u64>) -> Vec<DeadLetter> {
        ids.map(|id| {
            DeadLetter::restored(
                DeadLetterId::new(id),
                Arc::new(Event::new(EventType::TaskFailed)),
                1,
                None,
            )
        })
        .collect()
    }

    /// The restore's paging: a full page asks for the one after its last
    /// letter, a short one ends it, a row that does not decode is skipped,
    /// any other error stops it. A restore that never ends would hang
    /// `Recorder::attach` on the calling thread, and with it the first test
    /// binary that attaches to SQLite, before any test with a deadline
    /// runs: hence a unit test, which runs first and fails at once.
    #[test]
    fn a_full_page_asks_for_the_next_and_a_short_one_ends_the_restore() {
        let mut pager = Pager::new();
        pager.feed(Ok(letters(1..=RESTORE_PAGE as u64))).unwrap();
        let next = pager.query.as_ref().expect("a full page: read on");
        assert_eq!(
            next.get_after(),
            Some(DeadLetterId::new(RESTORE_PAGE as u64))
        );

        pager
            .feed(Err(StoreError::CorruptDeadLetter {
                id: 1001,
                source: None,
            }))
            .unwrap();
        let next = pager.query.as_ref().expect("past the bad row: read on");
        assert_eq!(next.get_after(), Some(DeadLetterId::new(1001)));

        pager.feed(Ok(letters(1002..=1003))).unwrap();
        assert!(pager.query.is_none(), "a short page is the last");
        assert_eq!(pager.stored.len(), RESTORE_PAGE + 2);

        let mut failing = Pager::new();
        assert!(failing.feed(Err(StoreError::Closed)).is_err());
    }
}
