//! The one place atomics, `Arc`, locks and atomically swapped pointers come from.
//!
//! A normal build uses `std`. Under `--cfg agentbus_loom` the same names
//! resolve to [loom] primitives, so the model tests in `tests/loom.rs`
//! explore every interleaving of the real code. The asymmetric fences of the
//! subscriber tables' hazard slots ([`light_fence`], [`heavy_fence`]) are
//! both a `SeqCst` fence there, so the models check the algorithm with
//! symmetric fences. [`RetiredList`] (crossbeam's `SegQueue`, whose spin
//! loops on std atomics would hang a model) is a loom mutex around a `Vec`. [`AtomicWord`] (128 bits, which loom lacks) is instead a loom
//! atomic index into the values stored, so its orderings stay real.
//!
//! [loom]: https://docs.rs/loom

mod asymmetric;
pub(crate) use asymmetric::{heavy_fence, light_fence, prepare as prepare_fences};

#[cfg(not(agentbus_loom))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering},
    Arc, Mutex, MutexGuard,
};

#[cfg(agentbus_loom)]
pub(crate) use loom::sync::{
    atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering},
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

/// Completes a store-then-load handshake whose accesses are all `SeqCst`.
///
/// In the C++/Rust memory model `SeqCst` accesses alone give Dekker's
/// guarantee, and on x86 they need no fence instruction. Loom does not model
/// `SeqCst` accesses (tokio-rs/loom#180), only `SeqCst` fences, so loom
/// builds put one here: the same guarantee, in a form loom checks.
#[inline(always)]
pub(crate) fn dekker_fence() {
    #[cfg(agentbus_loom)]
    fence(Ordering::SeqCst);
}

/// Locks `mutex` if nobody holds it, ignoring poisoning as [`lock`] does.
pub(crate) fn try_lock<T>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

#[cfg(agentbus_loom)]
mod modelled;
#[cfg(agentbus_loom)]
pub(crate) use modelled::word::{AtomicWord, RetiredList};

#[cfg(not(agentbus_loom))]
#[allow(unsafe_code)]
mod word {
    use std::sync::atomic::Ordering;

    use crossbeam_queue::SegQueue;

    /// A 128-bit atomic word (`cmpxchg16b` on x86_64, detected at run time,
    /// with portable-atomic's fallback elsewhere): lets a history slot swap
    /// its ticket and its event pointer in one step.
    pub(crate) struct AtomicWord(portable_atomic::AtomicU128);

    impl AtomicWord {
        pub(crate) const fn new(value: u128) -> Self {
            Self(portable_atomic::AtomicU128::new(value))
        }

        #[inline]
        pub(crate) fn load(&self, order: Ordering) -> u128 {
            self.0.load(order)
        }

        /// The word, or a torn mix of its two halves as they were at two
        /// moments of a concurrent update: a first guess for
        /// [`compare_exchange`](Self::compare_exchange), which fails on a
        /// torn guess and returns the real value. Each half is one that the
        /// word really held (an aligned 8-byte load is atomic on x86_64).
        #[inline]
        pub(crate) fn load_guess(&self) -> u128 {
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            {
                // SAFETY: `as_ptr` points to the live, 16-byte aligned word,
                // valid for reads; the two loads read it as two atomic
                // 8-byte halves and write nothing.
                unsafe { native::load_halves(self.0.as_ptr()) }
            }
            #[cfg(not(all(target_arch = "x86_64", not(miri))))]
            {
                self.0.load(Ordering::Relaxed)
            }
        }

        /// Always at least as strong as `success` and `failure` ask: on
        /// x86_64 with `cmpxchg16b` (every x86_64 CPU since 2008) it is one
        /// inline `lock cmpxchg16b`, which is `SeqCst`.
        #[inline]
        pub(crate) fn compare_exchange(
            &self,
            current: u128,
            new: u128,
            success: Ordering,
            failure: Ordering,
        ) -> Result<u128, u128> {
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            if std::arch::is_x86_feature_detected!("cmpxchg16b") {
                // SAFETY: `as_ptr` points to the live, 16-byte aligned word,
                // which is only ever accessed atomically (by portable-atomic,
                // which on a CPU with `cmpxchg16b` uses this very instruction
                // or an atomic 16-byte load, or by this function), and the
                // CPU supports the instruction (checked just above).
                return unsafe { native::compare_exchange(self.0.as_ptr(), current, new) };
            }
            self.0.compare_exchange(current, new, success, failure)
        }
    }

    /// `lock cmpxchg16b`, inline.
    ///
    /// portable-atomic reaches the same instruction through a function
    /// pointer chosen at run time and moves the halves through memory: about
    /// 40 instructions and an indirect call on every publish (callgrind,
    /// `benches/RESULTS.md`, issue 18). Here it is the instruction and the
    /// register moves it needs.
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    mod native {
        use std::arch::asm;

        /// The two halves of `*word`, each loaded atomically (the pair may be
        /// torn).
        ///
        /// # Safety
        ///
        /// `word` must be valid for reads and 16-byte aligned.
        #[inline(always)]
        pub(super) unsafe fn load_halves(word: *mut u128) -> u128 {
            let (low, high): (u64, u64);
            // SAFETY: the caller's contract; aligned 8-byte `mov`s are
            // atomic on x86_64.
            unsafe {
                asm!(
                    "mov {low}, qword ptr [{word}]",
                    "mov {high}, qword ptr [{word} + 8]",
                    word = in(reg) word,
                    low = out(reg) low,
                    high = lateout(reg) high,
                    options(nostack, preserves_flags, readonly),
                );
            }
            (u128::from(high) << 64) | u128::from(low)
        }

        /// Replaces `*word` with `new` if it equals `current`; `Ok(current)`
        /// if it did, `Err(actual)` if not. `SeqCst`.
        ///
        /// # Safety
        ///
        /// `word` must be valid for reads and writes, 16-byte aligned, never
        /// accessed non-atomically while others may access it, and the CPU
        /// must support `cmpxchg16b`.
        #[inline(always)]
        pub(super) unsafe fn compare_exchange(
            word: *mut u128,
            current: u128,
            new: u128,
        ) -> Result<u128, u128> {
            let (previous_low, previous_high): (u64, u64);
            let failed: u8;
            // SAFETY: the caller's contract. `rbx` is reserved by LLVM, so the
            // new value's low half goes in through `r8` and is swapped in
            // and out around the instruction, as portable-atomic does.
            unsafe {
                asm!(
                    "xchg r8, rbx",
                    "lock cmpxchg16b xmmword ptr [rsi]",
                    "setne cl",
                    "mov rbx, r8",
                    // A fixed register: `in(reg)` may pick `rbx`, which the
                    // `xchg` above overwrites.
                    in("rsi") word,
                    inout("r8") new as u64 => _,
                    in("rcx") (new >> 64) as u64,
                    inout("rax") current as u64 => previous_low,
                    inout("rdx") (current >> 64) as u64 => previous_high,
                    lateout("cl") failed,
                    options(nostack),
                );
            }
            let previous = (u128::from(previous_high) << 64) | u128::from(previous_low);
            if failed == 0 {
                Ok(previous)
            } else {
                Err(previous)
            }
        }
    }

    /// A lock-free bag of values whose drop must wait (see `history.rs`).
    pub(crate) struct RetiredList<T>(SegQueue<T>);

    impl<T> RetiredList<T> {
        pub(crate) fn new() -> Self {
            Self(SegQueue::new())
        }

        pub(crate) fn push(&self, value: T) {
            self.0.push(value);
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.0.is_empty()
        }

        /// Drops everything in the list.
        pub(crate) fn drain(&self) {
            while let Some(value) = self.0.pop() {
                drop(value);
            }
        }
    }
}

#[cfg(not(agentbus_loom))]
pub(crate) use word::{AtomicWord, RetiredList};
