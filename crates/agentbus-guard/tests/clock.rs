//! The clocks the guards read: both system clocks follow real time, the
//! coarse one to within a kernel tick.

use std::time::Duration;

use agentbus_guard::Clock;

/// The longest kernel tick (a 100 Hz kernel), the coarse clock's step.
const TICK: Duration = Duration::from_millis(10);

#[test]
fn the_system_clocks_follow_real_time() {
    let (precise, coarse) = (Clock::monotonic(), Clock::coarse());
    let (precise_start, coarse_start) = (precise.now(), coarse.now());
    std::thread::sleep(Duration::from_millis(30));
    let precise_elapsed = precise.now() - precise_start;
    let coarse_elapsed = coarse.now() - coarse_start;
    assert!(
        precise_elapsed >= Duration::from_millis(30),
        "{precise_elapsed:?}"
    );
    assert!(
        coarse_elapsed + TICK >= Duration::from_millis(30),
        "{coarse_elapsed:?}"
    );
}

#[test]
fn the_coarse_clock_never_goes_back() {
    let coarse = Clock::coarse();
    let mut last = coarse.now();
    for _ in 0..100_000 {
        let now = coarse.now();
        assert!(now >= last);
        last = now;
    }
}

/// The precise clock (on x86-64 Linux, the calibrated time-stamp counter
/// where the kernel keeps time by it) runs at the rate of `Instant`: over
/// 50 ms it agrees to 0.1 % with the `Instant` readings that bracket it.
#[test]
fn the_monotonic_clock_keeps_pace_with_instant() {
    let clock = Clock::monotonic();
    let outer_start = std::time::Instant::now();
    let start = clock.now();
    let inner_start = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(50));
    let inner = inner_start.elapsed();
    let elapsed = clock.now() - start;
    let outer = outer_start.elapsed();
    assert!(
        elapsed.as_secs_f64() >= inner.as_secs_f64() * 0.999,
        "{elapsed:?} < {inner:?}"
    );
    assert!(
        elapsed.as_secs_f64() <= outer.as_secs_f64() * 1.001,
        "{elapsed:?} > {outer:?}"
    );
}

/// Two threads reading one precise clock: each sees it never go back.
#[test]
fn the_monotonic_clock_never_goes_back() {
    let clock = Clock::monotonic();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let clock = clock.clone();
            scope.spawn(move || {
                let mut last = clock.now();
                for _ in 0..1_000_000 {
                    let now = clock.now();
                    assert!(now >= last, "{now:?} < {last:?}");
                    last = now;
                }
            });
        }
    });
}
