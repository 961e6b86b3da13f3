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
///   uses): nanosecond precision. On x86-64 Linux, when the kernel's own
///   clocksource is the CPU's time-stamp counter (`tsc`, which it picks only
///   once it found the counter invariant and in step on every CPU), it is
///   read straight from the counter (about 13 ns) and converted at a rate
///   calibrated against `CLOCK_MONOTONIC` once per process, which costs
///   2 ms at the first call (the rate is exact to 0.05 %, typically
///   0.002 %, so a quota of 1000 a second lets in at most 1000.5; a
///   calibration disturbed past that, or one whose OS clock does not reach
///   the 2 ms within 100,000 paired readings (a clock standing still), is
///   taken again, and after three tries the OS clock is used: a first call
///   never hangs, it gives up after 300,000 readings, about 60 ms where a
///   reading takes 200 ns). Elsewhere it is `CLOCK_MONOTONIC` itself
///   (about 20 to 30 ns a read). [`is_tsc`](Self::is_tsc) tells which.
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
    /// The start, in ticks of the CPU's time-stamp counter.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    Cycles(u64, &'static tsc::Rate),
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
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        if let Some(rate) = tsc::rate() {
            return Self(Source::Cycles(tsc::read(), rate));
        }
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

    /// Whether this clock reads the CPU's time-stamp counter: a
    /// [`monotonic`](Self::monotonic) clock on x86-64 Linux whose kernel
    /// keeps time by the counter and whose calibration succeeded; `false`
    /// for every other clock (the OS clock, coarse or manual).
    ///
    /// ```
    /// use agentbus_guard::Clock;
    ///
    /// assert!(!Clock::coarse().is_tsc());
    /// assert!(!Clock::manual().is_tsc());
    /// ```
    pub fn is_tsc(&self) -> bool {
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        if let Source::Cycles(..) = self.0 {
            return true;
        }
        false
    }
}

impl Clock {
    /// [`now`](Self::now) in whole nanoseconds (saturating after 584 years).
    #[inline]
    pub(crate) fn now_nanos(&self) -> u64 {
        match &self.0 {
            Source::Monotonic(start) => os_nanos(Precision::Precise).saturating_sub(*start),
            #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
            Source::Cycles(start, rate) => rate.nanos(tsc::read().saturating_sub(*start)),
            Source::Coarse(start) => os_nanos(Precision::Coarse).saturating_sub(*start),
            // Relaxed: the time is one value; nothing else is published with it.
            Source::Manual(now) => now.load(Ordering::Relaxed),
        }
    }
}

/// The same time as [`Clock::now`], for a `governor` rate limiter of one's
/// own (a manual clock then steps it too).
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

/// The CPU's time-stamp counter as a monotonic clock, where the kernel
/// itself keeps time by it.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod tsc {
    use std::sync::OnceLock;
    use std::time::Duration;

    use super::{os_nanos, Precision};

    /// Nanoseconds per tick, as a 32.32 fixed-point number.
    #[derive(Debug)]
    pub(super) struct Rate(u64);

    impl Rate {
        #[inline(always)]
        pub(super) fn nanos(&self, ticks: u64) -> u64 {
            ((u128::from(ticks) * u128::from(self.0)) >> 32)
                .try_into()
                .unwrap_or(u64::MAX)
        }
    }

    /// How long the calibration spins: the error of its two end readings
    /// (tens of nanoseconds each) over this is about 0.002 %.
    const CALIBRATION: Duration = Duration::from_millis(2);

    /// The most paired readings one measurement takes before it gives up:
    /// a pair costs at least five OS clock reads (about 200 ns here, so
    /// [`CALIBRATION`] takes about 10,000 of them), and an OS clock that
    /// stands still would otherwise keep the first
    /// [`Clock::monotonic`](super::Clock::monotonic) spinning for ever.
    /// Counted, not timed: no clock is trusted to measure the clocks.
    const MAX_READINGS: u32 = 100_000;

    /// The counter's rate, measured once per process; `None` where the
    /// kernel does not keep time by the counter (or the measurement makes
    /// no sense), so the OS clock is used instead.
    pub(super) fn rate() -> Option<&'static Rate> {
        static RATE: OnceLock<Option<Rate>> = OnceLock::new();
        RATE.get_or_init(calibrate).as_ref()
    }

    /// The counter, unserialized: a read may run a few instructions early
    /// or late, nanoseconds that do not matter to a quota.
    #[inline(always)]
    pub(super) fn read() -> u64 {
        // SAFETY: `rdtsc` exists on every x86-64 CPU, reads no memory and
        // only returns the counter; Linux does not forbid it to user space
        // (`rate` checked that the kernel itself reads it).
        unsafe { std::arch::x86_64::_rdtsc() }
    }

    fn calibrate() -> Option<Rate> {
        let clocksource = std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        )
        .ok()?;
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
        if !kernel_keeps_time_by_counter(&clocksource, &cpuinfo) {
            return None;
        }
        // A thread held off the CPU between the two clocks' readings of a
        // pair on every try would skew the rate, and an OS clock that does
        // not move would never end one: such a measurement is taken again,
        // and after three the OS clock is used.
        (0..3).find_map(|_| measure_rate())
    }

    /// Whether the kernel's clocksource is the counter and the CPU says the
    /// counter runs at one rate through frequency changes and sleep states.
    fn kernel_keeps_time_by_counter(clocksource: &str, cpuinfo: &str) -> bool {
        let Some(flags) = cpuinfo.lines().find(|line| line.starts_with("flags")) else {
            return false;
        };
        let has = |flag| flags.split_whitespace().any(|f| f == flag);
        clocksource.trim() == "tsc" && has("constant_tsc") && has("nonstop_tsc")
    }

    /// One measurement of the rate over [`CALIBRATION`], if both of its
    /// paired readings were tight enough for a rate exact to 0.05 % and
    /// the OS clock got there within [`MAX_READINGS`].
    fn measure_rate() -> Option<Rate> {
        measure_rate_with(paired_reading)
    }

    /// [`measure_rate`] on any source of paired readings (a test's).
    fn measure_rate_with(mut paired_reading: impl FnMut() -> (u64, u64, u64)) -> Option<Rate> {
        let (start_nanos, start_ticks, start_width) = paired_reading();
        let end = start_nanos.checked_add(u64::try_from(CALIBRATION.as_nanos()).ok()?)?;
        let (mut nanos, mut ticks, mut width) = paired_reading();
        let mut readings = 1;
        while nanos < end {
            if readings == MAX_READINGS {
                return None;
            }
            (nanos, ticks, width) = paired_reading();
            readings += 1;
        }
        let (nanos, ticks) = (nanos - start_nanos, ticks.checked_sub(start_ticks)?);
        // Between 100 MHz and 100 GHz, or something is wrong.
        if ticks < nanos / 10 || ticks > nanos.saturating_mul(100) {
            return None;
        }
        if (start_width + width).saturating_mul(2_000) > ticks {
            return None;
        }
        let rate = (u128::from(nanos) << 32) / u128::from(ticks);
        Some(Rate(u64::try_from(rate).ok()?))
    }

    /// The OS clock and the counter read as close together as this thread
    /// manages: of a few tries, the one whose counter readings around the
    /// OS clock's are nearest.
    /// Returns the OS clock, the counter and the width of the counter's
    /// bracket, the uncertainty of the pair.
    fn paired_reading() -> (u64, u64, u64) {
        paired_reading_of(read, || os_nanos(Precision::Precise))
    }

    /// [`paired_reading`] of any counter and OS clock (a test's).
    #[inline(always)]
    fn paired_reading_of(
        mut counter: impl FnMut() -> u64,
        mut os_clock: impl FnMut() -> u64,
    ) -> (u64, u64, u64) {
        let mut best = (0, 0, u64::MAX);
        for _ in 0..5 {
            let before = counter();
            let nanos = os_clock();
            let after = counter();
            let width = after.wrapping_sub(before);
            if width < best.2 {
                best = (nanos, before + width / 2, width);
            }
        }
        best
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// Paired readings of a counter at `ticks / per` ticks a nanosecond
        /// whose OS clock moves `step` ns a pair, each pair `width` ticks
        /// wide (whole numbers, so a boundary is met exactly).
        fn steady(
            step: u64,
            (ticks, per): (u64, u64),
            width: u64,
        ) -> impl FnMut() -> (u64, u64, u64) {
            let mut nanos = 1_000_000_000;
            move || {
                nanos += step;
                (nanos, nanos * ticks / per, width)
            }
        }

        fn nanos_per_second(rate: &Rate) -> u64 {
            // A second's worth of ticks at 3 GHz.
            rate.nanos(3_000_000_000)
        }

        #[test]
        fn a_steady_counter_is_measured_to_its_rate() {
            let rate = measure_rate_with(steady(200, (3, 1), 20)).expect("a rate");
            let second = nanos_per_second(&rate);
            assert!(second.abs_diff(1_000_000_000) <= 1, "{second}");
            // An odd pair width and a slower counter: still its rate.
            let rate = measure_rate_with(steady(150, (3, 2), 7)).expect("a rate");
            assert!(rate.nanos(1_500_000_000).abs_diff(1_000_000_000) <= 1);
        }

        /// The measurement ends at the first pair 2 ms after the start
        /// (not before: a shorter one would be less exact).
        #[test]
        fn a_measurement_spans_the_calibration_time() {
            let mut calls = 0u32;
            let mut readings = steady(1_000, (3, 1), 0);
            measure_rate_with(|| {
                calls += 1;
                readings()
            })
            .expect("a rate");
            assert_eq!(calls, 1 + 2_000);
        }

        /// A clock standing still (the OS clock, or both) ends the
        /// measurement after a bounded number of readings, with no rate.
        #[test]
        fn a_clock_standing_still_gives_up_after_max_readings() {
            for still in [(5, 5, 0), (5, 0, 0), (0, 0, 0)] {
                let mut calls = 0u32;
                let rate = measure_rate_with(|| {
                    calls += 1;
                    still
                });
                assert!(rate.is_none());
                assert_eq!(calls, 1 + MAX_READINGS, "{still:?}");
            }
            // The OS clock moving after all, late: still in time.
            let mut calls = 0u64;
            let late = measure_rate_with(|| {
                calls += 1;
                let nanos = calls.saturating_sub(90_000) * 1_000;
                (nanos, nanos * 3, 0)
            });
            assert!(late.is_some());
        }

        /// Between 100 MHz and 100 GHz, both ends included.
        #[test]
        fn a_counter_outside_100_mhz_to_100_ghz_is_refused() {
            assert!(measure_rate_with(steady(200, (1, 10), 0)).is_some());
            assert!(measure_rate_with(steady(200, (99, 1_000), 0)).is_none());
            assert!(measure_rate_with(steady(200, (100, 1), 0)).is_some());
            assert!(measure_rate_with(steady(200, (1_001, 10), 0)).is_none());
        }

        /// The two pairs' widths, over the ticks measured, at most 1/2000
        /// (0.05 %).
        #[test]
        fn a_loose_pair_is_refused() {
            // 2 ms at 3 GHz: 6,000,000 ticks, so 3,000 ticks of width.
            assert!(measure_rate_with(steady(1_000, (3, 1), 1_500)).is_some());
            assert!(measure_rate_with(steady(1_000, (3, 1), 1_501)).is_none());
        }

        #[test]
        fn a_counter_going_back_is_refused() {
            let mut nanos = 0;
            let rate = measure_rate_with(|| {
                nanos += 1_000;
                (nanos, 10_000_000_000 - nanos * 3, 0)
            });
            assert!(rate.is_none());
        }

        /// Of five tries, the tightest bracket of counter readings around
        /// an OS clock reading, its counter taken at the bracket's middle.
        #[test]
        fn a_paired_reading_is_the_middle_of_the_tightest_bracket() {
            // (before, after) of each try, and the OS clock between them.
            let brackets = [
                (1_000, 1_040),
                (2_000, 2_030),
                (3_000, 3_011),
                (4_000, 4_020),
                (5_000, 5_050),
            ];
            let mut counter = brackets.iter().flat_map(|&(before, after)| [before, after]);
            let mut os_clock = [10, 20, 30, 40, 50].into_iter();
            let pair = paired_reading_of(
                || counter.next().expect("two counter readings a try"),
                || os_clock.next().expect("one OS reading a try"),
            );
            assert_eq!(pair, (30, 3_005, 11));
            assert_eq!(counter.next(), None, "five tries");
        }

        #[test]
        fn a_rate_converts_ticks_to_nanoseconds() {
            let one = Rate(1 << 32);
            assert_eq!(one.nanos(12_345), 12_345);
            let half = Rate(1 << 31);
            assert_eq!(half.nanos(12_345), 6_172);
            assert_eq!(Rate(u64::MAX).nanos(u64::MAX), u64::MAX);
        }

        #[test]
        fn only_a_tsc_clocksource_with_both_flags_is_trusted() {
            let cpuinfo = "processor\t: 0\nflags\t\t: fpu tsc constant_tsc nonstop_tsc rdtscp\n";
            assert!(kernel_keeps_time_by_counter("tsc\n", cpuinfo));
            assert!(!kernel_keeps_time_by_counter("hpet\n", cpuinfo));
            assert!(!kernel_keeps_time_by_counter("kvm-clock\n", cpuinfo));
            for flags in [
                "fpu tsc constant_tsc",
                "fpu tsc nonstop_tsc",
                "constant_tsc_x nonstop_tsc",
            ] {
                let cpuinfo = format!("processor\t: 0\nflags\t\t: {flags}\n");
                assert!(!kernel_keeps_time_by_counter("tsc", &cpuinfo), "{flags}");
            }
            assert!(!kernel_keeps_time_by_counter("tsc", "processor\t: 0\n"));
        }
    }
}
