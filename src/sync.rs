//! The one place atomics, `Arc`, locks and atomically swapped pointers come from.
//!
//! A normal build uses `std` and `arc-swap`. Under `--cfg agentbus_loom` the
//! same names resolve to [loom] primitives, so the model tests in
//! `tests/loom.rs` explore every interleaving of the real code. arc-swap has no
//! loom support, so [`ArcCell`] and [`ArcSlot`] wrap it: in a loom build they
//! become a loom mutex around an `Arc`, which loom can reason about (the
//! lock-free claim of arc-swap itself is arc-swap's to prove).
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(agentbus_loom))]
pub(crate) use std::sync::{
    atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    Arc, Mutex, MutexGuard,
};

#[cfg(agentbus_loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    Arc, Mutex, MutexGuard,
};

/// Locks `mutex`, ignoring poisoning.
///
/// No user code ever runs while one of our mutexes is held, so a poisoned
/// mutex can only come from a bug of ours; the data behind it is still
/// consistent because every critical section publishes its result in one
/// store at its end.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(not(agentbus_loom))]
    {
        mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    #[cfg(agentbus_loom)]
    {
        mutex
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub(crate) use cell::{ArcCell, ArcSlot, Snapshot};

#[cfg(not(agentbus_loom))]
mod cell {
    use std::ops::Deref;
    use std::sync::Arc;

    use arc_swap::{ArcSwap, ArcSwapOption, Guard};

    /// An `Arc<T>` that readers load without locking and writers replace whole.
    pub(crate) struct ArcCell<T>(ArcSwap<T>);

    /// A borrowed view of an [`ArcCell`]'s current value.
    ///
    /// Cheap to take (arc-swap's debt slots, no reference-count write on the
    /// shared value) but meant to be short-lived and is not `Send`.
    pub(crate) struct Snapshot<T>(Guard<Arc<T>>);

    impl<T> Deref for Snapshot<T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.0
        }
    }

    impl<T> ArcCell<T> {
        pub(crate) fn new(value: Arc<T>) -> Self {
            Self(ArcSwap::new(value))
        }

        pub(crate) fn load(&self) -> Snapshot<T> {
            Snapshot(self.0.load())
        }

        /// Replaces the value and hands back the old one, so the caller
        /// chooses where it is dropped (outside any lock).
        pub(crate) fn swap(&self, value: Arc<T>) -> Arc<T> {
            self.0.swap(value)
        }
    }

    /// An optional `Arc<T>` with compare-and-swap, one per history slot.
    pub(crate) struct ArcSlot<T>(ArcSwapOption<T>);

    impl<T> ArcSlot<T> {
        pub(crate) fn empty() -> Self {
            Self(ArcSwapOption::empty())
        }

        pub(crate) fn load_full(&self) -> Option<Arc<T>> {
            self.0.load_full()
        }

        /// Stores `new` if the slot still holds `current` (by pointer) and
        /// returns what the slot held before the attempt.
        ///
        /// `current` is an owned `Arc`, which keeps its allocation alive, so
        /// its address cannot be reused by another value: no ABA.
        pub(crate) fn compare_and_swap(
            &self,
            current: &Option<Arc<T>>,
            new: Option<Arc<T>>,
        ) -> Option<Arc<T>> {
            let previous = self.0.compare_and_swap(current, new);
            Guard::into_inner(previous)
        }
    }
}

#[cfg(agentbus_loom)]
mod cell {
    use std::ops::Deref;

    use super::{lock, Arc, Mutex};

    pub(crate) struct ArcCell<T>(Mutex<Arc<T>>);

    pub(crate) struct Snapshot<T>(Arc<T>);

    impl<T> Deref for Snapshot<T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.0
        }
    }

    impl<T> ArcCell<T> {
        pub(crate) fn new(value: Arc<T>) -> Self {
            Self(Mutex::new(value))
        }

        pub(crate) fn load(&self) -> Snapshot<T> {
            Snapshot(lock(&self.0).clone())
        }

        pub(crate) fn swap(&self, value: Arc<T>) -> Arc<T> {
            std::mem::replace(&mut *lock(&self.0), value)
        }
    }

    /// History slots hold `std::sync::Arc<Event>`: events are public values
    /// and stay `std` even in a loom build.
    pub(crate) struct ArcSlot<T>(Mutex<Option<std::sync::Arc<T>>>);

    impl<T> ArcSlot<T> {
        pub(crate) fn empty() -> Self {
            Self(Mutex::new(None))
        }

        pub(crate) fn load_full(&self) -> Option<std::sync::Arc<T>> {
            lock(&self.0).clone()
        }

        pub(crate) fn compare_and_swap(
            &self,
            current: &Option<std::sync::Arc<T>>,
            new: Option<std::sync::Arc<T>>,
        ) -> Option<std::sync::Arc<T>> {
            let mut held = lock(&self.0);
            let same = match (&*held, current) {
                (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if same {
                std::mem::replace(&mut *held, new)
            } else {
                held.clone()
            }
        }
    }
}
