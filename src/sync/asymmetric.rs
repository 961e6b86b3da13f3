//! Asymmetric fences: a cheap half for the frequent side of a store-then-load
//! handshake and an expensive half for the rare side.
//!
//! Dekker's handshake (each side stores, then loads what the other stored)
//! needs a StoreLoad fence on both sides, a locked instruction on x86. When
//! one side runs on every publish and the other only on a subscription
//! change, the frequent side can use a compiler fence alone and the rare side
//! pays for both with `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`: the
//! kernel makes every running thread of the process execute a full memory
//! barrier (an IPI) before the call returns, and a thread that is not running
//! passed one when it was switched out. So for each other thread the call
//! places a `SeqCst` fence somewhere in its program, between the compiler
//! fences, which is all the handshake needs (the scheme of folly's
//! `asymmetric_thread_fence_heavy` and liburcu's `memb` flavour).
//!
//! Where that is unavailable (not Linux, the kernel refuses to register,
//! Miri, loom) both halves are `fence(SeqCst)`: the same algorithm with
//! symmetric fences, which is what Miri and the loom models check.
//!
//! The choice is made once per process, by the first [`prepare`] or
//! [`heavy_fence`], and never changes: a [`light_fence`] is only the cheap one after the process is
//! registered, and from then on every [`heavy_fence`] is a `membarrier`.

use crate::sync::{fence, Ordering};

/// The frequent side's fence: orders this thread's earlier stores before its
/// later loads with respect to every [`heavy_fence`] (of any thread).
#[inline(always)]
pub(crate) fn light_fence() {
    #[cfg(all(target_os = "linux", not(miri), not(agentbus_loom)))]
    if membarrier::registered() {
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
        return;
    }
    fence(Ordering::SeqCst);
}

/// Decides now (once per process) whether heavy fences are `membarrier`s,
/// so that light fences are cheap from the next one on. Called when a thread
/// claims its hazard slots; otherwise the first heavy fence decides.
pub(crate) fn prepare() {
    #[cfg(all(target_os = "linux", not(miri), not(agentbus_loom)))]
    membarrier::decide();
}

/// The rare side's fence: a `SeqCst` fence here, and one in every other
/// thread of the process somewhere between its program points before and
/// after this call. About half a microsecond with `membarrier` on an idle
/// machine.
pub(crate) fn heavy_fence() {
    fence(Ordering::SeqCst);
    #[cfg(all(target_os = "linux", not(miri), not(agentbus_loom)))]
    if membarrier::run() {
        fence(Ordering::SeqCst);
    }
}

#[cfg(all(target_os = "linux", not(miri), not(agentbus_loom)))]
#[allow(unsafe_code)]
mod membarrier {
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::Once;

    const UNDECIDED: u8 = 0;
    const REGISTERED: u8 = 1;
    const UNAVAILABLE: u8 = 2;

    /// Set once, by [`decide`], before any `membarrier` command is issued.
    static STATE: AtomicU8 = AtomicU8::new(UNDECIDED);

    // From <linux/membarrier.h>; the libc crate does not define them.
    const CMD_QUERY: libc::c_int = 0;
    const CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

    /// Whether the process is registered, so every heavy fence from now on
    /// is a `membarrier`. Relaxed: no data hangs on it; a thread that still
    /// reads `UNDECIDED` uses a full fence, which is always correct.
    #[inline(always)]
    pub(super) fn registered() -> bool {
        STATE.load(Ordering::Relaxed) == REGISTERED
    }

    /// Issues `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` if the process
    /// is (or can now be) registered; `false` if it cannot be.
    pub(super) fn run() -> bool {
        let mut state = STATE.load(Ordering::Acquire);
        if state == UNDECIDED {
            state = decide();
        }
        if state != REGISTERED {
            return false;
        }
        // SAFETY: `membarrier` takes two integers and touches no memory of
        // ours.
        let result = unsafe { libc::syscall(libc::SYS_membarrier, CMD_PRIVATE_EXPEDITED, 0) };
        if result != 0 {
            // Registered, so the kernel promised this command works; readers
            // already rely on it and no fallback can make their past
            // accesses safe.
            eprintln!(
                "agentbus: membarrier failed after registration: {}",
                std::io::Error::last_os_error()
            );
            std::process::abort();
        }
        true
    }

    #[cold]
    pub(super) fn decide() -> u8 {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            // SAFETY: as above, integers only.
            let commands = unsafe { libc::syscall(libc::SYS_membarrier, CMD_QUERY, 0) };
            let supported =
                commands >= 0 && (commands & libc::c_long::from(CMD_PRIVATE_EXPEDITED)) != 0;
            // SAFETY: as above, integers only.
            let registered = supported
                && unsafe {
                    libc::syscall(libc::SYS_membarrier, CMD_REGISTER_PRIVATE_EXPEDITED, 0)
                } == 0;
            // Release pairs with the Acquire in `run`; readers' Relaxed loads
            // need nothing from it.
            STATE.store(
                if registered { REGISTERED } else { UNAVAILABLE },
                Ordering::Release,
            );
        });
        STATE.load(Ordering::Acquire)
    }
}

#[cfg(test)]
#[cfg(all(target_os = "linux", not(miri), not(agentbus_loom)))]
#[allow(unsafe_code)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    /// Asks the kernel itself, with the command numbers spelt out here,
    /// whether this process can use expedited private `membarrier`s.
    fn kernel_offers_membarrier() -> bool {
        const QUERY: libc::c_long = 0;
        const PRIVATE_EXPEDITED: libc::c_long = 8;
        const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 16;
        // SAFETY: `membarrier` takes two integers and touches no memory of
        // ours; registering twice is allowed.
        let commands = unsafe { libc::syscall(libc::SYS_membarrier, QUERY, 0) };
        commands >= 0
            && commands & PRIVATE_EXPEDITED != 0
            // SAFETY: as above.
            && unsafe { libc::syscall(libc::SYS_membarrier, REGISTER_PRIVATE_EXPEDITED, 0) } == 0
    }

    /// Set in the child process that
    /// [`preparing_decides_and_registers_where_the_kernel_allows`] starts.
    const FRESH_PROCESS: &str = "AGENTBUS_ASYMMETRIC_FRESH_PROCESS";

    #[test]
    fn preparing_decides_and_registers_where_the_kernel_allows() {
        // The decision is once per process and other tests in this binary
        // fence too, so the check runs in a child process of its own.
        if std::env::var_os(FRESH_PROCESS).is_none() {
            let output = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "sync::asymmetric::tests::preparing_decides_and_registers_where_the_kernel_allows",
                    "--test-threads=1",
                ])
                .env(FRESH_PROCESS, "1")
                .output()
                .unwrap();
            let report = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success() && report.contains("1 passed"),
                "the fresh process failed:\n{report}{}",
                String::from_utf8_lossy(&output.stderr)
            );
            return;
        }
        assert!(!membarrier::registered(), "decided before anything fenced");
        prepare();
        let offered = kernel_offers_membarrier();
        assert_eq!(membarrier::registered(), offered);
        // Heavy fences are `membarrier`s exactly when light ones are cheap.
        assert_eq!(membarrier::run(), offered);
    }

    /// Store buffering, the litmus test of the handshake: each side stores
    /// its round number, fences, and loads the other's. Both loads missing
    /// the other's store of the same round is what the fences forbid.
    #[test]
    fn a_heavy_fence_orders_the_other_threads_light_fences() {
        const ROUNDS: usize = 50_000;
        prepare();
        let (light_side, heavy_side) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let arrived = AtomicUsize::new(0);
        let together = |round: usize| {
            arrived.fetch_add(1, Relaxed);
            while arrived.load(Relaxed) < 2 * round {
                std::hint::spin_loop();
            }
        };
        let (seen_by_light, seen_by_heavy) = std::thread::scope(|scope| {
            let light = scope.spawn(|| {
                let mut seen = Vec::with_capacity(ROUNDS);
                for round in 1..=ROUNDS {
                    together(round);
                    light_side.store(round, Relaxed);
                    light_fence();
                    seen.push(heavy_side.load(Relaxed));
                }
                seen
            });
            let mut seen = Vec::with_capacity(ROUNDS);
            for round in 1..=ROUNDS {
                together(round);
                heavy_side.store(round, Relaxed);
                heavy_fence();
                seen.push(light_side.load(Relaxed));
            }
            (light.join().unwrap(), seen)
        });
        let both_missed = (1..=ROUNDS)
            .filter(|&round| seen_by_light[round - 1] < round && seen_by_heavy[round - 1] < round)
            .count();
        assert_eq!(
            both_missed, 0,
            "rounds where both sides missed the other's store"
        );
    }
}
