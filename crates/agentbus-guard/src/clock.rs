//! [`Clock`]: the monotonic time the dedup window and the rate limits are
//! measured on, or a manual one for tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::nanos::Nanos;

/// Where [`Dedup`](crate::Dedup) and [`RateLimit`](crate::RateLimit) read
/// the time: the system's monotonic clock (the default; wall-clock jumps do
/// not move it), or a manual clock that moves only when told to, so a test
/// can step past a window without sleeping.
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
    Monotonic(Instant),
    Manual(Arc<AtomicU64>),
}

impl Default for Clock {
    fn default() -> Self {
        Self::monotonic()
    }
}

impl Clock {
    /// The system's monotonic clock.
    pub fn monotonic() -> Self {
        Self(Source::Monotonic(Instant::now()))
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
        match &self.0 {
            Source::Monotonic(start) => start.elapsed(),
            Source::Manual(now) => Duration::from_nanos(now.load(Ordering::Relaxed)),
        }
    }
}

impl governor::clock::Clock for Clock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(Clock::now(self))
    }
}
