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
