//! The loom build's versions of [`AtomicWord`](word::AtomicWord) and
//! [`RetiredList`](word::RetiredList): compiled
//! only under `--cfg agentbus_loom`, in a file of their own so cargo-mutants
//! (whose builds never set that cfg) leaves them to the loom models.

pub(crate) mod word {
    use crate::sync::{lock, AtomicUsize, Mutex, Ordering};

    /// Loom has no 128-bit atomic. Every value stored gets a place in an
    /// append-only list and a loom atomic holds its index, so loads and
    /// compare-and-swaps keep their own orderings. (A loom mutex would add
    /// happens-before edges that a real load does not have, and hide a
    /// missing fence.) The list sits behind a `std` mutex, invisible to loom
    /// so it adds no edges; loom runs one thread at a time, so it never
    /// contends.
    pub(crate) struct AtomicWord {
        index: AtomicUsize,
        values: std::sync::Mutex<Vec<u128>>,
    }

    impl AtomicWord {
        pub(crate) fn new(value: u128) -> Self {
            Self {
                index: AtomicUsize::new(0),
                values: std::sync::Mutex::new(vec![value]),
            }
        }

        fn values(&self) -> std::sync::MutexGuard<'_, Vec<u128>> {
            self.values
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }

        pub(crate) fn load(&self, order: Ordering) -> u128 {
            let index = self.index.load(order);
            self.values()[index]
        }

        /// The native build's guess may be torn; a relaxed load models the
        /// orderings it has (none).
        pub(crate) fn load_guess(&self) -> u128 {
            self.load(Ordering::Relaxed)
        }

        pub(crate) fn compare_exchange(
            &self,
            current: u128,
            new: u128,
            success: Ordering,
            failure: Ordering,
        ) -> Result<u128, u128> {
            let (mut expected, new_index) = {
                let mut values = self.values();
                // usize::MAX: `current` was never stored, so the CAS fails
                // and reads what is there, as a real one would.
                let expected = values.iter().rposition(|&v| v == current);
                values.push(new);
                (expected.unwrap_or(usize::MAX), values.len() - 1)
            };
            loop {
                match self
                    .index
                    .compare_exchange(expected, new_index, success, failure)
                {
                    Ok(_) => return Ok(current),
                    Err(actual) => {
                        let value = self.values()[actual];
                        if value != current {
                            return Err(value);
                        }
                        // The same value stored twice: a real CAS compares
                        // values, so try again against this copy.
                        expected = actual;
                    }
                }
            }
        }
    }

    /// crossbeam's `SegQueue` spins on std atomics, which would hang a loom
    /// model; a loom mutex around a `Vec` keeps the same contract.
    pub(crate) struct RetiredList<T>(Mutex<Vec<T>>);

    impl<T> RetiredList<T> {
        pub(crate) fn new() -> Self {
            Self(Mutex::new(Vec::new()))
        }

        pub(crate) fn push(&self, value: T) {
            lock(&self.0).push(value);
        }

        pub(crate) fn is_empty(&self) -> bool {
            lock(&self.0).is_empty()
        }

        pub(crate) fn drain(&self) {
            let values = std::mem::take(&mut *lock(&self.0));
            drop(values);
        }
    }
}
