//! Hazard slots: how a publish reads its type's subscriber table without a
//! locked instruction, and how a replaced table is dropped exactly when the
//! last publish reading it ends.
//!
//! # The reader (every publish)
//!
//! Each thread owns a [`Record`] of [`DEPTHS`] slots, one per nesting depth
//! of publishes (a handler that publishes uses the next slot). To read a
//! [`TableCell`] a publish announces the table's address in its slot, issues
//! a [`light_fence`] (a compiler fence once the process is registered for
//! `membarrier`) and loads the cell again: if it still holds that address,
//! the table is protected until the slot is cleared. Clearing it is a plain
//! store, then (after another light fence) one load of the slot's `owed`
//! word, which is null unless a writer handed this publish a reference to
//! drop. No read-modify-write, no shared line written.
//!
//! # The writer (subscribe, unsubscribe, reset)
//!
//! A writer swaps the cell's pointer under the bus's registry lock and owns
//! the old table's `Arc`; then [`Retired`]'s drop, under the process-wide
//! records lock, runs the asymmetric Dekker handshake twice:
//!
//! 1. [`heavy_fence`], then scan every slot. Every publish that could still
//!    read the old table is seen here: its announcing store came before its
//!    re-check in program order, the heavy fence places a full fence in its
//!    program, and a re-check after that fence sees the swap and retries.
//!    So any publish whose slot does not hold the old table now never reads it.
//! 2. For each slot that holds it: put a clone of the `Arc` in that slot's
//!    `owed` word, [`heavy_fence`] again, and look at the slot once more. If
//!    it still holds the table, that publish's clearing store comes after
//!    the fence in its program, so its load of `owed` (after its light
//!    fence) sees the clone and it drops the clone when it is done. If not,
//!    it finished meanwhile; whoever swaps the clone out of `owed` first (the
//!    writer or the finishing publish) drops it.
//!
//! Then the writer drops its own `Arc`. The table goes with the last `Arc`:
//! the writer's if no publish was reading it, otherwise the clone of the last
//! publish to finish, as with any reference count. So a removed handler is
//! dropped as soon as the last publish that could call it ends, the writer
//! never waits for a reader (an unsubscribe from inside a handler, whose own
//! slot holds the table, just hands that publish the clone), and writers of
//! all buses serialise only on the records lock (one or two `membarrier`s
//! each).
//!
//! A publish nested deeper than [`DEPTHS`], or on a thread whose
//! thread-locals are gone, takes the cell's swap lock and clones the `Arc`
//! (an owned snapshot, dropped normally). A thread's record is marked free when
//! the thread exits and is reused by the next new thread.
//!
//! With symmetric fences (no `membarrier`, Miri, loom) this is the classic
//! hazard-pointer protocol with `SeqCst` fences on both sides; the loom
//! models in `tests/loom.rs` run it.

// Raw `Arc` pointers in the cell, the slots and the hand-offs.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr;

use crossbeam_utils::CachePadded;
use smallvec::SmallVec;

use crate::sync::{
    heavy_fence, light_fence, lock, prepare_fences, Arc, AtomicBool, AtomicPtr, Mutex, Ordering,
};
use crate::table::Table;

/// Nesting depths of publishes on one thread that get a slot; deeper ones
/// clone the table's `Arc` under its cell's lock.
const DEPTHS: usize = 4;

/// One thread's hazard slots.
struct Record {
    /// The table the owner's publish at each depth reads, or null. Only the
    /// owner stores; writers load.
    slots: [AtomicPtr<Table>; DEPTHS],
    /// An `Arc` (from `Arc::into_raw`) a writer handed the publish at each
    /// depth, to drop when it clears its slot; null otherwise.
    owed: [AtomicPtr<Table>; DEPTHS],
    /// Whether a live thread owns the record.
    leased: AtomicBool,
}

impl Record {
    fn new() -> Self {
        Self {
            slots: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            owed: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            leased: AtomicBool::new(true),
        }
    }
}

/// Every record ever made, scanned by writers. Records are leaked (a writer
/// may scan one while its thread exits) and reused by later threads.
#[derive(Default)]
struct Records {
    all: Vec<&'static CachePadded<Record>>,
}

#[cfg(not(agentbus_loom))]
fn records() -> &'static Mutex<Records> {
    static RECORDS: Mutex<Records> = Mutex::new(Records { all: Vec::new() });
    &RECORDS
}

#[cfg(agentbus_loom)]
fn records() -> &'static Mutex<Records> {
    loom::lazy_static! {
        static ref RECORDS: Mutex<Records> = Mutex::new(Records::default());
    }
    &RECORDS
}

/// This thread's record (null until its first publish, and again once its
/// lease is gone) and how many publishes on it are reading a table.
struct Local {
    record: Cell<*const CachePadded<Record>>,
    depth: Cell<usize>,
}

/// Owns this thread's record; gives it back when the thread exits.
struct Lease(&'static CachePadded<Record>);

impl Drop for Lease {
    fn drop(&mut self) {
        // Late publishes (other thread-locals' destructors) lock the cell.
        let _ = LOCAL.try_with(|local| local.record.set(ptr::null()));
        // No publish of this thread is running (they live in synchronous
        // code), so its slots and `owed` words are null. Release pairs with
        // the Acquire of the next claim. (Not the records lock: loom tears
        // down its statics before the main thread's locals.)
        self.0.leased.store(false, Ordering::Release);
    }
}

#[cfg(not(agentbus_loom))]
std::thread_local! {
    /// Read on every publish: no destructor, so no state check.
    static LOCAL: Local = const {
        Local {
            record: Cell::new(ptr::null()),
            depth: Cell::new(0),
        }
    };
    static LEASE: Lease = Lease::claim();
}

#[cfg(agentbus_loom)]
loom::thread_local! {
    static LOCAL: Local = Local {
        record: Cell::new(ptr::null()),
        depth: Cell::new(0),
    };
    static LEASE: Lease = Lease::claim();
}

impl Lease {
    fn claim() -> Self {
        // Before this thread's first light fence: without it, a process
        // whose subscriptions were all made before anyone published would
        // fence fully on every publish until its next subscription change.
        prepare_fences();
        let mut records = lock(records());
        let free = records.all.iter().copied().find(|record| {
            record
                .leased
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        });
        let record = free.unwrap_or_else(|| {
            let record: &'static CachePadded<Record> =
                Box::leak(Box::new(CachePadded::new(Record::new())));
            records.all.push(record);
            record
        });
        Self(record)
    }
}

/// This thread's record, claimed at its first publish; `None` during thread
/// teardown.
#[cold]
#[inline(never)]
fn claim_record() -> Option<&'static CachePadded<Record>> {
    let record = LEASE.try_with(|lease| lease.0).ok()?;
    LOCAL.with(|local| local.record.set(record));
    Some(record)
}

/// An `Arc<Table>` that publishes read without a locked instruction and
/// writers replace whole.
pub(crate) struct TableCell {
    /// From `Arc::into_raw`: the cell owns one reference.
    current: AtomicPtr<Table>,
    /// Held by a writer around its swap and by a publish that has no slot
    /// while it clones the current `Arc`.
    swap_lock: Mutex<()>,
}

/// The cell hands `&Table` to any thread and drops tables on any thread
/// (`AtomicPtr` alone would not ask for this).
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<Table>();
};

impl TableCell {
    pub(crate) fn new(table: Arc<Table>) -> Self {
        Self {
            current: AtomicPtr::new(Arc::into_raw(table).cast_mut()),
            swap_lock: Mutex::new(()),
        }
    }

    /// The current table, protected until the snapshot is dropped. Dropping
    /// it may drop the last reference to a replaced table (user code in its
    /// handlers' captures).
    #[inline]
    pub(crate) fn load(&self) -> Snapshot<'_> {
        let claimed = LOCAL.try_with(|local| {
            let depth = local.depth.get();
            if depth >= DEPTHS {
                return None;
            }
            // SAFETY: a non-null `record` is this thread's leased record,
            // leaked and so valid for `'static`.
            let record = match unsafe { local.record.get().as_ref() } {
                Some(record) => record,
                None => claim_record()?,
            };
            local.depth.set(depth + 1);
            Some((record, depth))
        });
        let Ok(Some((record, depth))) = claimed else {
            return self.load_locked();
        };
        let slot = &record.slots[depth];
        // Acquire (here and below) pairs with the `SeqCst` swap in
        // `replace`: the table's contents are visible once its address is.
        let mut table = self.current.load(Ordering::Acquire);
        loop {
            // Release pairs with the writer's Acquire scan: once the writer
            // sees this slot change (cleared or reused), this publish's
            // reads of the table it held are done.
            slot.store(table, Ordering::Release);
            // StoreLoad against the writer's first heavy fence: either this
            // re-check sees the writer's swap, or the writer's scan sees the
            // announcement above.
            light_fence();
            let again = self.current.load(Ordering::Acquire);
            if again == table {
                break;
            }
            table = again;
        }
        // `table` came from `Arc::into_raw` and is announced in our slot,
        // re-checked after the fence: no writer that swaps it out drops the
        // last reference while the slot holds it (module docs).
        Snapshot {
            table,
            _cell: PhantomData,
            hold: Hold::Slot(record, depth),
            _same_thread: PhantomData,
        }
    }

    /// An owned reference to the current table.
    pub(crate) fn load_full(&self) -> Arc<Table> {
        self.load().to_arc()
    }

    /// The fallback without a slot: clone the current `Arc` under the swap lock.
    #[cold]
    #[inline(never)]
    fn load_locked(&self) -> Snapshot<'_> {
        let _swapping = lock(&self.swap_lock);
        let table = self.current.load(Ordering::Acquire);
        // SAFETY: `table` came from `Arc::into_raw` and the cell still owns
        // that reference: it changes only under `swap_lock`, held here.
        unsafe {
            Arc::increment_strong_count(table);
            Snapshot {
                table,
                _cell: PhantomData,
                hold: Hold::Owned,
                _same_thread: PhantomData,
            }
        }
    }

    /// Replaces the table with `next(current)` and hands back the old one,
    /// whose drop must go through [`Retired`]. Callers serialise writers of
    /// this cell (the registry lock).
    pub(crate) fn replace(&self, next: impl FnOnce(&Table) -> Table) -> Arc<Table> {
        let _swapping = lock(&self.swap_lock);
        let current = self.current.load(Ordering::Acquire);
        // SAFETY: the cell owns `current`'s reference, and only this
        // function, under `swap_lock`, gives it up.
        let next = Arc::new(next(unsafe { &*current }));
        // SeqCst: the store half of the writer's handshake (see the module
        // docs); Release for the readers' Acquire loads of the new table.
        let old = self
            .current
            .swap(Arc::into_raw(next).cast_mut(), Ordering::SeqCst);
        // SAFETY: `old` came from `Arc::into_raw` and the cell's reference
        // to it is now ours.
        unsafe { Arc::from_raw(old) }
    }
}

impl Drop for TableCell {
    fn drop(&mut self) {
        let table = self.current.load(Ordering::Acquire);
        // SAFETY: the cell's own reference, from `Arc::into_raw`; nothing can
        // load it any more (`&mut self`), and a publish that loaded it earlier
        // has ended, since it borrowed the cell.
        drop(unsafe { Arc::from_raw(table) });
    }
}

/// A table a publish is reading.
pub(crate) struct Snapshot<'cell> {
    /// From `Arc::into_raw` (kept raw, not as a reference: its provenance
    /// covers the whole `Arc` allocation, which `Arc::from_raw` needs).
    table: *const Table,
    _cell: PhantomData<&'cell Table>,
    hold: Hold,
    /// Not `Send`: a slot belongs to its thread, and snapshots are dropped
    /// in reverse order of creation on it (they live in synchronous code).
    _same_thread: PhantomData<*const ()>,
}

enum Hold {
    /// Announced in this record's slot at this depth.
    Slot(&'static CachePadded<Record>, usize),
    /// One strong reference, owned.
    Owned,
}

impl Snapshot<'_> {
    fn to_arc(&self) -> Arc<Table> {
        let table = self.table;
        // SAFETY: `table` came from `Arc::into_raw` and is protected while
        // `self` lives, so its count is at least one.
        unsafe {
            Arc::increment_strong_count(table);
            Arc::from_raw(table)
        }
    }
}

impl Deref for Snapshot<'_> {
    type Target = Table;
    #[inline]
    fn deref(&self) -> &Table {
        // SAFETY: protected (a slot or an owned reference) while `self`
        // lives, which this borrow cannot outlive.
        unsafe { &*self.table }
    }
}

impl Drop for Snapshot<'_> {
    #[inline]
    fn drop(&mut self) {
        match self.hold {
            Hold::Slot(record, depth) => {
                // Release pairs with the writer's Acquire loads of the slot:
                // our reads of the table come before it sees the slot change.
                record.slots[depth].store(ptr::null_mut(), Ordering::Release);
                let _ = LOCAL.try_with(|local| local.depth.set(depth));
                // StoreLoad against the writer's second heavy fence: either
                // the writer sees the slot cleared, or the load below sees
                // what it put in `owed`.
                light_fence();
                if !record.owed[depth].load(Ordering::Relaxed).is_null() {
                    take_owed(&record.owed[depth]);
                }
            }
            Hold::Owned => {
                // SAFETY: the reference `load_locked` took for this snapshot.
                drop(unsafe { Arc::from_raw(self.table) });
            }
        }
    }
}

/// Drops the reference a writer left in `owed`, unless the writer took it
/// back first.
#[cold]
#[inline(never)]
fn take_owed(owed: &AtomicPtr<Table>) {
    // Acquire pairs with the writer's AcqRel swap that put it there.
    let table = owed.swap(ptr::null_mut(), Ordering::AcqRel);
    if !table.is_null() {
        // SAFETY: a writer put a reference from `Arc::into_raw` there, and
        // the swap made it ours alone.
        drop(unsafe { Arc::from_raw(table) });
    }
}

/// Tables a write replaced. Dropping it waits for no one: it runs the
/// handshake of the module docs, so each table is dropped here or by the
/// last publish reading it. Drop it after the registry lock is released:
/// that may drop the last reference to a subscriber, whose captures' `Drop`
/// is user code.
pub(crate) struct Retired(SmallVec<[Arc<Table>; 1]>);

impl FromIterator<Arc<Table>> for Retired {
    fn from_iter<I: IntoIterator<Item = Arc<Table>>>(tables: I) -> Self {
        Self(tables.into_iter().collect())
    }
}

impl Drop for Retired {
    fn drop(&mut self) {
        let old = std::mem::take(&mut self.0);
        if old.is_empty() {
            return;
        }
        // References taken back from `owed`, dropped after the lock.
        let mut taken_back: SmallVec<[Arc<Table>; 2]> = SmallVec::new();
        {
            // Serialises writers, so at most one hand-off per slot is pending
            // (the `owed` word is null whenever a writer starts, for every
            // slot that could hold its table), and no record is added
            // meanwhile.
            let records = lock(records());
            if !records.all.is_empty() {
                handshake(&records.all, &old, &mut taken_back);
            }
        }
        drop(taken_back);
        drop(old);
    }
}

/// A clone given to a publish: its slot, its `owed` word, the table.
type HandOff<'a> = (&'a AtomicPtr<Table>, &'a AtomicPtr<Table>, *mut Table);

/// Steps 1 and 2 of the module docs for the tables in `old`.
fn handshake(
    records: &[&'static CachePadded<Record>],
    old: &[Arc<Table>],
    taken_back: &mut SmallVec<[Arc<Table>; 2]>,
) {
    heavy_fence();
    let mut handed: SmallVec<[HandOff<'_>; 4]> = SmallVec::new();
    for record in records {
        for (slot, owed) in record.slots.iter().zip(&record.owed) {
            // Acquire pairs with the publish's Release stores to its slot.
            let held = slot.load(Ordering::Acquire);
            if held.is_null() {
                continue;
            }
            if let Some(table) = old.iter().find(|t| Arc::as_ptr(t) == held.cast_const()) {
                let clone = Arc::into_raw(Arc::clone(table)).cast_mut();
                // AcqRel pairs with the publish's Acquire swap in `take_owed`.
                let previous = owed.swap(clone, Ordering::AcqRel);
                debug_assert!(previous.is_null(), "one pending hand-off per slot");
                handed.push((slot, owed, held));
            }
        }
    }
    if handed.is_empty() {
        return;
    }
    heavy_fence();
    for (slot, owed, table) in handed {
        if slot.load(Ordering::Acquire) != table {
            let clone = owed.swap(ptr::null_mut(), Ordering::AcqRel);
            if !clone.is_null() {
                // SAFETY: the reference this function put in `owed`; the
                // swap made it ours again.
                taken_back.push(unsafe { Arc::from_raw(clone) });
            }
        }
    }
}

// Not under loom: its threads and statics are the models' own.
#[cfg(test)]
#[cfg(not(agentbus_loom))]
mod tests {
    use super::*;

    /// A thread gives its record back when it exits and the next thread
    /// reuses it: the records writers scan grow with the threads alive at
    /// once, not with every thread that ever published.
    #[test]
    fn exited_threads_give_their_records_back() {
        let count = || lock(records()).all.len();
        let before = count();
        for _ in 0..64 {
            std::thread::spawn(|| assert!(claim_record().is_some()))
                .join()
                .unwrap();
        }
        // Other tests' threads may claim records meanwhile; 64 threads that
        // each kept theirs would add 64.
        let after = count();
        assert!(after - before < 32, "{before} records, then {after}");
    }
}
