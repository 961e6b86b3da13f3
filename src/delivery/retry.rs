//! [`Retry`]: how many times a failed delivery is tried, and how long to
//! wait between tries.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::time::Duration;

/// A retry policy for a subscription; see
/// [`SubscriptionBuilder::retry`](crate::SubscriptionBuilder::retry).
///
/// `attempts` counts every call, the first included. Before attempt `n`
/// (`n >= 2`) the delivery waits `delay * 2^(n - 2)`, at most `max_delay`;
/// with jitter (the default) the wait is drawn uniformly from the upper
/// half of that, `[d / 2, d]`, so subscribers that failed together do not
/// retry together. Defaults: 100 ms delay, 30 s maximum.
///
/// ```
/// use agentbus::Retry;
/// use std::time::Duration;
///
/// let policy = Retry::attempts(4)
///     .delay(Duration::from_millis(10))
///     .max_delay(Duration::from_millis(25))
///     .jitter(false);
/// assert_eq!(policy.max_attempts(), 4);
/// assert_eq!(policy.delay_before(2), Duration::from_millis(10));
/// assert_eq!(policy.delay_before(3), Duration::from_millis(20));
/// assert_eq!(policy.delay_before(4), Duration::from_millis(25));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Retry {
    attempts: u32,
    delay: Duration,
    max_delay: Duration,
    jitter: bool,
}

impl Retry {
    /// At most `attempts` calls in all, the first included (`0` is taken
    /// as 1: no retry).
    pub fn attempts(attempts: u32) -> Self {
        Self {
            attempts: attempts.max(1),
            delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            jitter: true,
        }
    }

    /// The wait before the first retry; it doubles for each retry after.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// The longest wait between two attempts.
    #[must_use]
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Whether waits are randomised (the default) or exact.
    #[must_use]
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// The number of calls, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.attempts
    }

    /// The wait before attempt `attempt` (the first retry is attempt 2;
    /// attempt 1 is not waited for). Random with jitter.
    pub fn delay_before(&self, attempt: u32) -> Duration {
        if attempt < 2 {
            return Duration::ZERO;
        }
        let doublings = (attempt - 2).min(31);
        let wait = self
            .delay
            .checked_mul(1 << doublings)
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        if !self.jitter {
            return wait;
        }
        let half = wait / 2;
        let spread = u64::try_from((wait - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(random() % spread.saturating_add(1))
    }
}

/// 64 random bits: each `RandomState` has fresh keys, drawn from the OS
/// once per thread and then varied per instance.
fn random() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x2545_f491_4f6c_dd1d);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_the_upper_half_of_the_doubled_delay() {
        let policy = Retry::attempts(5).delay(Duration::from_millis(8));
        for attempt in 2..=5 {
            let exact = policy.jitter(false).delay_before(attempt);
            for _ in 0..100 {
                let wait = policy.delay_before(attempt);
                assert!(wait >= exact / 2 && wait <= exact, "{wait:?} vs {exact:?}");
            }
        }
    }

    /// Without jitter the delay doubles from the first retry on; with it,
    /// the waits spread over the upper half instead of all being one value.
    #[test]
    fn delays_double_and_jitter_spreads_them() {
        let policy = Retry::attempts(5).delay(Duration::from_millis(8));
        let exact: Vec<_> = (1..=5)
            .map(|attempt| policy.jitter(false).delay_before(attempt).as_millis())
            .collect();
        assert_eq!(exact, [0, 8, 16, 32, 64]);
        let waits: std::collections::HashSet<_> =
            (0..100).map(|_| policy.delay_before(3)).collect();
        assert!(waits.len() > 10, "{waits:?}");
    }

    #[test]
    fn huge_attempt_numbers_saturate_at_max_delay() {
        let policy = Retry::attempts(u32::MAX)
            .delay(Duration::from_secs(1))
            .max_delay(Duration::from_secs(5))
            .jitter(false);
        assert_eq!(policy.delay_before(u32::MAX), Duration::from_secs(5));
        assert_eq!(Retry::attempts(0).max_attempts(), 1);
    }
}
