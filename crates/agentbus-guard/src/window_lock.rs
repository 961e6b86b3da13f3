//! [`WindowLock`]: the lock around a [`Dedup`](crate::Dedup) window.

use std::cell::UnsafeCell;
use std::hint;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

/// A lock word taken by one compare-and-swap and released by a plain store,
/// for a critical section that is short and never runs user code.
///
/// # Behaviour
///
/// - Uncontended, taking it is one locked instruction and releasing it is a
///   plain release store, where `std::sync::Mutex` also swaps on release to
///   learn whether a waiter sleeps (one locked instruction, about 12 ns on
///   the benched machine, more than a tenth of a dedup check).
/// - Contended, a waiter reads the word (no write, so the holder's cache
///   line is not stolen) up to [`SPINS`] times with a doubling pause of
///   `spin_loop` hints, then gives up its time slice
///   ([`thread::yield_now`]) between reads: on a machine with more threads
///   than cores a preempted holder gets to run, and a waiter never burns a
///   core for more than a few microseconds at a time. There is no queue:
///   under heavy contention a waiter can be overtaken (a dedup check holds
///   it for well under a microsecond, so this costs latency, never
///   progress of the bus as a whole).
/// - A panic while it is held releases it (the guard's `Drop`); there is no
///   poisoning, as the window's state stays consistent enough to go on
///   with (only allocation can panic under it).
pub(crate) struct WindowLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

/// Reads of a held lock, with a growing pause, before a waiter yields its
/// time slice instead.
const SPINS: u32 = 6;

// SAFETY: the lock hands out the value to one thread at a time (the
// `locked` word, taken by compare-and-swap with Acquire and released with
// Release), so sharing the lock only ever moves a `T` between threads.
unsafe impl<T: Send> Sync for WindowLock<T> {}

impl<T> WindowLock<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Waits for the lock (see the type's docs for how) and takes it.
    #[inline]
    pub(crate) fn lock(&self) -> WindowGuard<'_, T> {
        // Acquire: pairs with the Release store in `WindowGuard::drop`, so
        // the previous holder's writes to the value are seen.
        if self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        WindowGuard {
            lock: self,
            value: PhantomData,
        }
    }

    #[cold]
    fn lock_contended(&self) {
        let mut spins = 0;
        loop {
            // Relaxed: only a hint of when to try; the compare-and-swap
            // below is what orders (Acquire, as in `lock`).
            while self.locked.load(Ordering::Relaxed) {
                if spins < SPINS {
                    for _ in 0..1u32 << spins {
                        hint::spin_loop();
                    }
                    spins += 1;
                } else {
                    thread::yield_now();
                }
            }
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
}

/// The value of a held [`WindowLock`]; releases it when dropped.
pub(crate) struct WindowGuard<'a, T> {
    lock: &'a WindowLock<T>,
    /// Send and Sync as a `&mut T` is (the lock alone would make it Sync
    /// for any `T: Send`).
    value: PhantomData<&'a mut T>,
}

impl<T> Deref for WindowGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard exists only while its thread holds the lock,
        // so no other reference to the value is live.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for WindowGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference
        // through this guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for WindowGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Release: pairs with the Acquire compare-and-swap in `lock` and
        // `lock_contended`, publishing this holder's writes to the next.
        self.lock.locked.store(false, Ordering::Release);
    }
}
