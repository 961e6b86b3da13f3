//! [`Clock`]: the monotonic time the dedup window and the rate limits are
//! measured on, or a manual one for tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::nanos::Nanos;

/// Where [`Dedup`](crate::Dedup) and [`RateLimit`](crate::RateLimit) read
/// the time: the system's monotonic clock (wall-clock jumps do not move
/// it), precise or coarse, or a manual clock that moves only when told to,
/// so a test can step past a window without sleeping.
///
/// - [`monotonic`](Self::monotonic) (what [`RateLimit`](crate::RateLimit)
///   uses): nanosecond precision; a read costs about 20 ns.
/// - [`coarse`](Self::coarse) (what [`Dedup`](crate::Dedup) uses): the same
///   clock as the kernel last stored it, advancing in steps of one kernel
///   tick (1 to 10 ms; 4 ms on a 250 Hz kernel); a read costs about 4 ns.
///   A duration measured on it is exact to within one step either way. Off
///   Linux it is the precise clock.
///
/// Clones of a manual clock share its time.
///
/// ```
/// use agentbus_guard::Clock;
/// use std::time::Duration;
///
/// let clock = Clock::manual();
/// let start = clock.now();
/// clock.advance(Duration::from_millis(1500));
/// assert_eq!(clock.now() - start, Duration::from_millis(1500));
/// ```
#[derive(Clone, Debug)]
pub struct Clock(Source);

#[derive(Clone, Debug)]
enum Source {
    /// The start, in [`os_nanos`] of the precise clock.
    Monotonic(u64),
    /// The start, in [`os_nanos`] of the coarse clock.
    Coarse(u64),
    Manual(Arc<AtomicU64>),
}

impl Default for Clock {
    fn default() -> Self {
        Self::monotonic()
    }
}

impl Clock {
    /// The system's monotonic clock, to the nanosecond.
    pub fn monotonic() -> Self {
        Self(Source::Monotonic(os_nanos(Precision::Precise)))
    }

    /// The system's monotonic clock as the kernel last stored it: a step of
    /// one tick (1 to 10 ms), five times cheaper to read than
    /// [`monotonic`](Self::monotonic).
    pub fn coarse() -> Self {
        Self(Source::Coarse(os_nanos(Precision::Coarse)))
    }

    /// A clock that stands still until [`advance`](Self::advance)d.
    pub fn manual() -> Self {
        Self(Source::Manual(Arc::new(AtomicU64::new(0))))
    }

    /// Moves a manual clock forward; does nothing to the monotonic clock.
    pub fn advance(&self, by: Duration) {
        if let Source::Manual(now) = &self.0 {
            // Relaxed: the time is one value; nothing else is published with it.
            now.fetch_add(
                u64::try_from(by.as_nanos()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        }
    }

    /// The time since this clock started.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.now_nanos())
    }
}

impl Clock {
    /// [`now`](Self::now) in whole nanoseconds (saturating after 584 years).
    pub(crate) fn now_nanos(&self) -> u64 {
        match &self.0 {
            Source::Monotonic(start) => os_nanos(Precision::Precise).saturating_sub(*start),
            Source::Coarse(start) => os_nanos(Precision::Coarse).saturating_sub(*start),
            // Relaxed: the time is one value; nothing else is published with it.
            Source::Manual(now) => now.load(Ordering::Relaxed),
        }
    }
}

impl governor::clock::Clock for Clock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(Clock::now(self))
    }
}

#[derive(Clone, Copy)]
enum Precision {
    Precise,
    Coarse,
}

/// The monotonic clock in nanoseconds since an unspecified start, read
/// straight from `clock_gettime` (what `Instant` reads, without the
/// `timespec` arithmetic of `Instant::elapsed`).
#[cfg(target_os = "linux")]
fn os_nanos(precision: Precision) -> u64 {
    let id = match precision {
        Precision::Precise => libc::CLOCK_MONOTONIC,
        Precision::Coarse => libc::CLOCK_MONOTONIC_COARSE,
    };
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable `timespec` that outlives the call,
    // which writes nothing else. Both clock ids exist on every kernel Rust
    // supports (2.6.32 and later), so the call cannot fail; if it did, `now`
    // would stay zero and the clock would stand still, never go back.
    unsafe { libc::clock_gettime(id, &mut now) };
    u64::try_from(now.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(now.tv_nsec).unwrap_or(0))
}

/// Elsewhere: `Instant` for both precisions.
#[cfg(not(target_os = "linux"))]
fn os_nanos(_precision: Precision) -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
}
