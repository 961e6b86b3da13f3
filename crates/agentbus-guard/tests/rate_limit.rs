//! Rate limits: burst, refill, retry_after, keys, bounded memory.
//!
//! The tests over thousands of keys run under a deadline
//! (`agentbus_testkit::deadline`): a key hash that puts every key in one
//! bucket turns them quadratic, which should fail here, not hang.

use std::time::Duration;

use agentbus::{Event, EventType, Guard, Rejection};
use agentbus_guard::{Clock, Per, RateLimit};
use agentbus_testkit::deadline::deadline;

fn event(agent: i64, circle: i64, event_type: EventType) -> Event {
    Event::new(event_type)
        .with_source_agent(agent)
        .with_circle(circle)
}

#[test]
fn a_burst_then_a_refill() {
    let clock = Clock::manual();
    // 10 per second: one every 100 ms, bursts of 3.
    let limit = RateLimit::per_agent(10, Duration::from_secs(1))
        .burst(3)
        .clock(clock.clone());
    let e = || event(1, 1, EventType::TaskStarted);
    for _ in 0..3 {
        assert!(limit.check(&e()).is_ok());
    }
    assert_eq!(
        limit.check(&e()),
        Err(Rejection::RateLimited {
            retry_after: Duration::from_millis(100)
        })
    );
    clock.advance(Duration::from_millis(40));
    assert_eq!(
        limit.check(&e()),
        Err(Rejection::RateLimited {
            retry_after: Duration::from_millis(60)
        })
    );
    clock.advance(Duration::from_millis(60));
    assert!(limit.check(&e()).is_ok());
    assert!(limit.check(&e()).is_err());
    // Quiet for a whole refill: the full burst is back.
    clock.advance(Duration::from_millis(300));
    for _ in 0..3 {
        assert!(limit.check(&e()).is_ok());
    }
    assert!(limit.check(&e()).is_err());
    assert_eq!(limit.rate_limited(), 4);
}

#[test]
fn the_default_burst_is_the_count() {
    let limit = RateLimit::global(5, Duration::from_secs(3600)).clock(Clock::manual());
    for _ in 0..5 {
        assert!(limit.check(&event(1, 1, EventType::TaskStarted)).is_ok());
    }
    assert!(limit.check(&event(2, 2, EventType::TaskFailed)).is_err());
}

#[test]
fn each_kind_of_limit_keys_on_its_field() {
    for per in [Per::Agent, Per::Circle, Per::Type, Per::Global] {
        let limit = RateLimit::new(per, 1, Duration::from_secs(3600)).clock(Clock::manual());
        assert!(limit.check(&event(1, 1, EventType::TaskStarted)).is_ok());
        let other_agent = limit.check(&event(2, 1, EventType::TaskStarted)).is_ok();
        let other_circle = limit.check(&event(1, 2, EventType::TaskStarted)).is_ok();
        let other_type = limit.check(&event(1, 1, EventType::TaskFailed)).is_ok();
        assert_eq!(
            (other_agent, other_circle, other_type),
            (per == Per::Agent, per == Per::Circle, per == Per::Type),
            "{per:?}"
        );
    }
}

/// 2 threads × 10,000 distinct agents, over and over: the keys whose quota
/// is full again are pruned, so the tracked keys stay bounded (by the keys
/// of one round, 20,000, plus the slack of the pruning rule: a quarter, at
/// least 64 keys per shard).
#[test]
fn stale_keys_are_pruned() {
    let _deadline = deadline();
    let clock = Clock::manual();
    let limit = RateLimit::per_agent(100, Duration::from_secs(1)).clock(clock.clone());
    for round in 0..5 {
        std::thread::scope(|scope| {
            for thread in 0..2i64 {
                let limit = limit.clone();
                scope.spawn(move || {
                    for agent in 0..10_000 {
                        let agent = round * 1_000_000 + thread * 100_000 + agent;
                        assert!(limit
                            .check(&event(agent, 1, EventType::TaskStarted))
                            .is_ok());
                    }
                });
            }
        });
        // A second later every quota is full again.
        clock.advance(Duration::from_secs(1));
    }
    // Without pruning it would be 100,000 keys.
    assert!(
        limit.tracked_keys() <= 20_000 + 4096,
        "{} keys tracked",
        limit.tracked_keys()
    );
    // Once the last round's quotas are full again, one more new key prunes
    // its shard; every shard gets there as new keys keep coming.
    for agent in 0..20_000 {
        assert!(limit
            .check(&event(10_000_000 + agent, 1, EventType::TaskStarted))
            .is_ok());
    }
    assert!(
        limit.tracked_keys() <= 20_000 + 16 * 64,
        "{} keys tracked",
        limit.tracked_keys()
    );
}

/// Pruning forgets only quotas that are full again: a key that used its
/// quota stays limited however many new keys come and go around it.
#[test]
fn pruning_keeps_the_quotas_in_use() {
    let _deadline = deadline();
    let clock = Clock::manual();
    let limit = RateLimit::per_agent(1, Duration::from_secs(3600)).clock(clock.clone());
    assert!(limit.check(&event(0, 1, EventType::TaskStarted)).is_ok());
    for round in 1..=3 {
        for agent in 1..=10_000 {
            assert!(limit
                .check(&event(round * 100_000 + agent, 1, EventType::TaskStarted))
                .is_ok());
        }
        clock.advance(Duration::from_secs(1));
    }
    assert!(matches!(
        limit.check(&event(0, 1, EventType::TaskStarted)),
        Err(Rejection::RateLimited { .. })
    ));
}

/// Two threads on one key: the quota is shared exactly, whoever wins.
#[test]
fn two_threads_on_one_key_share_its_quota_exactly() {
    let limit = RateLimit::global(1000, Duration::from_secs(3600)).clock(Clock::manual());
    let let_in: usize = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let limit = limit.clone();
                scope.spawn(move || {
                    (0..1000)
                        .filter(|_| limit.check(&event(1, 1, EventType::TaskStarted)).is_ok())
                        .count()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    assert_eq!(let_in, 1000);
    assert_eq!(limit.rate_limited(), 1000);
}

/// Two threads over the same 2,000 agents, each agent checked 8 times in
/// all: exactly its 5 are let in, for every agent.
#[test]
fn two_threads_on_distinct_keys_count_each_key_exactly() {
    let _deadline = deadline();
    let limit = RateLimit::per_agent(5, Duration::from_secs(3600)).clock(Clock::manual());
    let let_in: Vec<Vec<usize>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let limit = limit.clone();
                scope.spawn(move || {
                    let mut let_in = vec![0; 2000];
                    for _ in 0..4 {
                        for (agent, count) in let_in.iter_mut().enumerate() {
                            if limit
                                .check(&event(agent as i64, 1, EventType::TaskStarted))
                                .is_ok()
                            {
                                *count += 1;
                            }
                        }
                    }
                    let_in
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for (agent, (first, second)) in let_in[0].iter().zip(&let_in[1]).enumerate() {
        assert_eq!(first + second, 5, "agent {agent}");
    }
    assert_eq!(limit.rate_limited(), 2000 * 3);
    assert_eq!(limit.tracked_keys(), 2000);
}

/// A count of 0 is taken as 1, and a burst of 0 as 1: one event, then the
/// next only a whole period later.
#[test]
fn a_count_or_burst_of_zero_is_one() {
    let clock = Clock::manual();
    let limits = [
        RateLimit::per_type(0, Duration::from_secs(1)).clock(clock.clone()),
        RateLimit::per_type(1, Duration::from_secs(1))
            .burst(0)
            .clock(clock.clone()),
    ];
    for limit in &limits {
        assert!(limit.check(&event(1, 1, EventType::TaskStarted)).is_ok());
        assert_eq!(
            limit.check(&event(1, 1, EventType::TaskStarted)),
            Err(Rejection::RateLimited {
                retry_after: Duration::from_secs(1)
            })
        );
    }
    clock.advance(Duration::from_secs(1));
    for limit in &limits {
        assert!(limit.check(&event(1, 1, EventType::TaskStarted)).is_ok());
        assert_eq!(limit.per(), Per::Type);
    }
}

/// On its default clock (the monotonic one) a quota refills in real time.
#[test]
fn the_default_clock_is_real_time() {
    let limit = RateLimit::global(1, Duration::from_millis(30));
    assert!(limit.check(&event(1, 1, EventType::TaskStarted)).is_ok());
    let Err(Rejection::RateLimited { retry_after }) =
        limit.check(&event(1, 1, EventType::TaskStarted))
    else {
        panic!("the quota is used");
    };
    assert!(
        retry_after > Duration::ZERO && retry_after <= Duration::from_millis(30),
        "{retry_after:?}"
    );
    // A millisecond more: the clock's rate may be off by 0.05 % (15 µs here).
    std::thread::sleep(retry_after + Duration::from_millis(1));
    assert!(limit.check(&event(1, 1, EventType::TaskStarted)).is_ok());
}

/// What a limit prints: its settings and its counter.
#[test]
fn a_limit_debugs_as_its_settings_and_counter() {
    let limit = RateLimit::per_circle(10, Duration::from_secs(1))
        .burst(3)
        .clock(Clock::manual());
    for _ in 0..4 {
        let _ = limit.check(&event(1, 1, EventType::TaskStarted));
    }
    assert_eq!(
        format!("{limit:?}"),
        "RateLimit { per: Circle, count: 10, period: 1s, burst: 3, rate_limited: 1, .. }"
    );
}
