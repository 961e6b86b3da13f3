//! Issue 3, cases 1–7: agentbus against the peers a user would reach for,
//! measured in the same group so every ratio comes from one run.
//!
//! Peers: `tokio::sync::broadcast` (send, then `try_recv` by each receiver),
//! `crossbeam-channel` (one bounded channel per subscriber) and the lock-based
//! bus in `support/lock_bus.rs`. One element is one published event.
//!
//! Full run: `cargo bench --bench dispatch` (about 5 minutes on 2 cores);
//! `.ci/bench` runs it with the latency bench and prints the medians.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use agentbus::{Event, EventBus, EventType, HistoryQuery};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::json;

#[path = "support/lock_bus.rs"]
mod lock_bus;
use lock_bus::{LockBus, LOCK_BUS_HISTORY};

const TYPE: EventType = EventType::TaskCompleted;
/// The type a churning thread subscribes to when it is not the published one.
const OTHER_TYPE: EventType = EventType::TaskFailed;
/// Deep enough that a receiver drained every iteration never lags.
const CHANNEL_CAPACITY: usize = 1024;

/// The handler body every implementation runs, so only delivery differs.
#[inline]
fn work(event: &Event) {
    black_box(event.circle_id);
}

fn event() -> Arc<Event> {
    Arc::new(
        Event::new(TYPE)
            .with_data(json!({"task_id": 123}))
            .with_circle(7),
    )
}

fn agentbus_with(subscribers: usize) -> EventBus {
    let bus = EventBus::new();
    for _ in 0..subscribers {
        bus.subscribe(TYPE, |e: &Event| work(e));
    }
    bus
}

fn lock_bus_with(subscribers: usize, capacity: usize) -> LockBus {
    let bus = LockBus::new(capacity);
    for _ in 0..subscribers {
        bus.subscribe(TYPE, work);
    }
    bus
}

/// Case 1: a pre-built `Arc<Event>` to 1, 4, 16 and 64 sync subscribers.
fn fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("1_fan_out");
    group.throughput(Throughput::Elements(1));
    let ev = event();
    for n in [1usize, 4, 16, 64] {
        let bus = agentbus_with(n);
        group.bench_with_input(BenchmarkId::new("agentbus", n), &n, |b, _| {
            b.iter(|| bus.publish_blocking(Arc::clone(&ev)))
        });
        let mut publisher = bus.publisher();
        group.bench_with_input(BenchmarkId::new("agentbus_publisher", n), &n, |b, _| {
            b.iter(|| publisher.publish_blocking(Arc::clone(&ev)))
        });

        let (tx, _) = tokio::sync::broadcast::channel::<Arc<Event>>(CHANNEL_CAPACITY);
        let mut rxs: Vec<_> = (0..n).map(|_| tx.subscribe()).collect();
        group.bench_with_input(BenchmarkId::new("tokio_broadcast", n), &n, |b, _| {
            b.iter(|| {
                tx.send(Arc::clone(&ev)).unwrap();
                for rx in &mut rxs {
                    work(&rx.try_recv().unwrap());
                }
            })
        });

        let chans: Vec<_> = (0..n)
            .map(|_| crossbeam_channel::bounded::<Arc<Event>>(CHANNEL_CAPACITY))
            .collect();
        group.bench_with_input(BenchmarkId::new("crossbeam_channel", n), &n, |b, _| {
            b.iter(|| {
                for (tx, _) in &chans {
                    tx.send(Arc::clone(&ev)).unwrap();
                }
                for (_, rx) in &chans {
                    work(&rx.try_recv().unwrap());
                }
            })
        });

        let lock = lock_bus_with(n, LOCK_BUS_HISTORY);
        group.bench_with_input(BenchmarkId::new("lock_bus", n), &n, |b, _| {
            b.iter(|| lock.publish(Arc::clone(&ev)))
        });
    }
    group.finish();
}

/// Case 2: 16 subscribers, each filtering on its own circle; one matches.
fn filtered(c: &mut Criterion) {
    const N: i64 = 16;
    let mut group = c.benchmark_group("2_filtered_16_1_match");
    group.throughput(Throughput::Elements(1));
    let ev = event(); // circle 7

    let bus = EventBus::new();
    for k in 0..N {
        bus.subscription(TYPE)
            .filter(move |e: &Event| e.circle_id == Some(k))
            .handler(|e: &Event| work(e));
    }
    group.bench_function("agentbus", |b| {
        b.iter(|| bus.publish_blocking(Arc::clone(&ev)))
    });

    // The same subscribers scoped with the field filter instead of a closure.
    let scoped = EventBus::new();
    for k in 0..N {
        scoped
            .subscription(TYPE)
            .circle_id(k)
            .handler(|e: &Event| work(e));
    }
    group.bench_function("agentbus_circle_id", |b| {
        b.iter(|| scoped.publish_blocking(Arc::clone(&ev)))
    });
    let mut publisher = bus.publisher();
    group.bench_function("agentbus_publisher", |b| {
        b.iter(|| publisher.publish_blocking(Arc::clone(&ev)))
    });

    // Broadcast cannot filter at the sender: every receiver gets it and checks.
    let (tx, _) = tokio::sync::broadcast::channel::<Arc<Event>>(CHANNEL_CAPACITY);
    let mut rxs: Vec<_> = (0..N).map(|k| (k, tx.subscribe())).collect();
    group.bench_function("tokio_broadcast", |b| {
        b.iter(|| {
            tx.send(Arc::clone(&ev)).unwrap();
            for (k, rx) in &mut rxs {
                let e = rx.try_recv().unwrap();
                if e.circle_id == Some(*k) {
                    work(&e);
                }
            }
        })
    });

    // A channel bus filters before sending, so only the match gets a message.
    type Filter = Box<dyn Fn(&Event) -> bool>;
    let chans: Vec<(Filter, _)> = (0..N)
        .map(|k| {
            let filter: Filter = Box::new(move |e: &Event| e.circle_id == Some(k));
            (
                filter,
                crossbeam_channel::bounded::<Arc<Event>>(CHANNEL_CAPACITY),
            )
        })
        .collect();
    group.bench_function("crossbeam_channel", |b| {
        b.iter(|| {
            for (filter, (tx, rx)) in &chans {
                if filter(&ev) {
                    tx.send(Arc::clone(&ev)).unwrap();
                    work(&rx.try_recv().unwrap());
                }
            }
        })
    });

    let lock = LockBus::new(LOCK_BUS_HISTORY);
    for k in 0..N {
        lock.subscribe(TYPE, move |e: &Event| {
            if e.circle_id == Some(k) {
                work(e);
            }
        });
    }
    group.bench_function("lock_bus", |b| b.iter(|| lock.publish(Arc::clone(&ev))));
    group.finish();
}

/// Case 3: `publish(..).await` with 1 and 8 async handlers, current-thread runtime.
fn async_handlers(c: &mut Criterion) {
    let mut group = c.benchmark_group("3_async_awaited");
    group.throughput(Throughput::Elements(1));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ev = event();
    for n in [1usize, 8] {
        let bus = EventBus::new();
        for _ in 0..n {
            bus.subscribe_async(TYPE, |e: Arc<Event>| async move { work(&e) });
        }
        // One block_on per sample, so the runtime's entry cost is amortised.
        group.bench_with_input(BenchmarkId::new("agentbus", n), &n, |b, _| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(bus.publish(Arc::clone(&ev)).await);
                    }
                    start.elapsed()
                })
            })
        });

        let (tx, _) = tokio::sync::broadcast::channel::<Arc<Event>>(CHANNEL_CAPACITY);
        let mut rxs: Vec<_> = (0..n).map(|_| tx.subscribe()).collect();
        group.bench_with_input(BenchmarkId::new("tokio_broadcast", n), &n, |b, _| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        tx.send(Arc::clone(&ev)).unwrap();
                        for rx in &mut rxs {
                            work(&rx.recv().await.unwrap());
                        }
                    }
                    start.elapsed()
                })
            })
        });

        let lock = LockBus::new(LOCK_BUS_HISTORY);
        for _ in 0..n {
            lock.subscribe_async(TYPE, |e: Arc<Event>| async move { work(&e) });
        }
        group.bench_with_input(BenchmarkId::new("lock_bus", n), &n, |b, _| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(lock.publish_async(Arc::clone(&ev)).await);
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

/// Case 4: build an event with JSON data and publish it, one subscriber.
fn end_to_end(c: &mut Criterion) {
    let mut group = c.benchmark_group("4_new_event_publish");
    group.throughput(Throughput::Elements(1));
    let new_event = || {
        Event::new(TYPE)
            .with_data(json!({"task_id": 123}))
            .with_circle(7)
    };

    // The floor every implementation shares: make the event and free it.
    group.bench_function("event_only", |b| b.iter(|| Arc::new(new_event())));

    let bus = agentbus_with(1);
    group.bench_function("agentbus", |b| b.iter(|| bus.publish_blocking(new_event())));
    let mut publisher = bus.publisher();
    group.bench_function("agentbus_publisher", |b| {
        b.iter(|| publisher.publish_blocking(new_event()))
    });

    let (tx, mut rx) = tokio::sync::broadcast::channel::<Arc<Event>>(CHANNEL_CAPACITY);
    group.bench_function("tokio_broadcast", |b| {
        b.iter(|| {
            tx.send(Arc::new(new_event())).unwrap();
            work(&rx.try_recv().unwrap());
        })
    });

    let (tx, rx) = crossbeam_channel::bounded::<Arc<Event>>(CHANNEL_CAPACITY);
    group.bench_function("crossbeam_channel", |b| {
        b.iter(|| {
            tx.send(Arc::new(new_event())).unwrap();
            work(&rx.try_recv().unwrap());
        })
    });

    let lock = lock_bus_with(1, LOCK_BUS_HISTORY);
    group.bench_function("lock_bus", |b| {
        b.iter(|| lock.publish(Arc::new(new_event())))
    });
    group.finish();
}

/// Case 5: `history(type, limit 10)` on a full ring of 1000. The ring holds
/// `types` event types round-robin, so a query scans `10 * types` entries.
fn history_query(c: &mut Criterion) {
    let mut group = c.benchmark_group("5_history_type_10_of_1000");
    group.throughput(Throughput::Elements(1));
    for types in [4usize, 24] {
        let bus = EventBus::new();
        let lock = LockBus::new(LOCK_BUS_HISTORY);
        for i in 0..2 * LOCK_BUS_HISTORY {
            let e = Arc::new(Event::new(EventType::ALL[i % types]).with_circle(7));
            bus.publish_blocking(Arc::clone(&e));
            lock.publish(e);
        }
        let wanted = EventType::ALL[1];
        let query = HistoryQuery::new().event_type(wanted).limit(10);
        assert_eq!(bus.history(&query).len(), 10);
        assert_eq!(lock.history(wanted, 10).len(), 10);
        let id = format!("{types}_types");
        group.bench_function(BenchmarkId::new("agentbus", &id), |b| {
            b.iter(|| bus.history(&query))
        });
        group.bench_function(BenchmarkId::new("lock_bus", &id), |b| {
            b.iter(|| lock.history(wanted, 10))
        });
    }
    group.finish();
}

/// Runs the closure `publisher(thread)` makes on each of `publishers` threads
/// released together by a barrier, `iters` calls in all, while `churn` (if
/// any) loops on another thread.
/// Returns the wall time from release to the last publisher's exit.
fn parallel<'a>(
    publishers: usize,
    iters: u64,
    publisher: &(dyn Fn(usize) -> Box<dyn FnMut() + 'a> + Sync),
    churn: Option<&(dyn Fn() + Sync)>,
) -> Duration {
    let per_thread = (iters / publishers as u64).max(1);
    let barrier = Barrier::new(publishers + 1);
    let stop = AtomicBool::new(false);
    let elapsed = std::thread::scope(|s| {
        if let Some(churn) = churn {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    churn();
                }
            });
        }
        let workers: Vec<_> = (0..publishers)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut publish = publisher(t);
                    barrier.wait();
                    for _ in 0..per_thread {
                        publish();
                    }
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for worker in workers {
            worker.join().unwrap();
        }
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        elapsed
    });
    // Rescale so the rounding of `per_thread` does not skew the per-event time.
    elapsed.mul_f64(iters as f64 / (per_thread * publishers as u64) as f64)
}

/// Case 6: aggregate throughput of 1 and 2 publisher threads, one subscriber,
/// with and without a thread subscribing and unsubscribing in a tight loop,
/// on the published type (`+churn`) or on another type (`+churn_other`).
///
/// `prebuilt`: each thread re-publishes its own `Arc<Event>` (as case 1);
/// `new_event`: each publish creates its event (as case 4), which keeps
/// threads off each other's reference counts when history evicts.
fn threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("6_threads");
    group.throughput(Throughput::Elements(1));
    let prebuilt: Vec<Arc<Event>> = (0..2).map(|_| event()).collect();

    for (events, fresh) in [("prebuilt", false), ("new_event", true)] {
        for (publishers, churn) in [
            (1, None),
            (2, None),
            (1, Some(TYPE)),
            (2, Some(TYPE)),
            (1, Some(OTHER_TYPE)),
            (2, Some(OTHER_TYPE)),
        ] {
            let suffix = match churn {
                None => "",
                Some(TYPE) => "+churn",
                Some(_) => "+churn_other",
            };
            let id = format!("{events}/{publishers}_pub{suffix}");

            let next_event = |t: usize| {
                if fresh {
                    event()
                } else {
                    Arc::clone(&prebuilt[t])
                }
            };
            let bus = agentbus_with(1);
            let churn_op = || {
                let id = bus.subscribe(churn.unwrap_or(TYPE), |e: &Event| work(e));
                bus.unsubscribe(id);
            };
            let churn_ref: Option<&(dyn Fn() + Sync)> = churn.map(|_| &churn_op as _);
            let next_event = &next_event;
            let on_bus = |t: usize| -> Box<dyn FnMut() + '_> {
                let bus = &bus;
                Box::new(move || {
                    black_box(bus.publish_blocking(next_event(t)));
                })
            };
            group.bench_function(BenchmarkId::new("agentbus", &id), |b| {
                b.iter_custom(|iters| parallel(publishers, iters, &on_bus, churn_ref))
            });
            let through_publisher = |t: usize| -> Box<dyn FnMut() + '_> {
                let mut publisher = bus.publisher();
                Box::new(move || {
                    black_box(publisher.publish_blocking(next_event(t)));
                })
            };
            group.bench_function(BenchmarkId::new("agentbus_publisher", &id), |b| {
                b.iter_custom(|iters| parallel(publishers, iters, &through_publisher, churn_ref))
            });

            let lock = lock_bus_with(1, LOCK_BUS_HISTORY);
            let publish = |t: usize| -> Box<dyn FnMut() + '_> {
                let lock = &lock;
                Box::new(move || {
                    black_box(lock.publish(next_event(t)));
                })
            };
            let churn_op = || {
                let churned = churn.unwrap_or(TYPE);
                let id = lock.subscribe(churned, work);
                lock.unsubscribe(churned, id);
            };
            let churn_ref: Option<&(dyn Fn() + Sync)> = churn.map(|_| &churn_op as _);
            group.bench_function(BenchmarkId::new("lock_bus", &id), |b| {
                b.iter_custom(|iters| parallel(publishers, iters, &publish, churn_ref))
            });
        }
    }
    group.finish();
}

/// Case 7: the cost of history: capacity 1000 (default) against 0, on one
/// thread and on two.
fn history_on_off(c: &mut Criterion) {
    let mut group = c.benchmark_group("7_history_on_off");
    group.throughput(Throughput::Elements(1));
    let ev = event();
    let per_thread: Vec<Arc<Event>> = (0..2).map(|_| event()).collect();
    for (label, capacity) in [("on_1000", LOCK_BUS_HISTORY), ("off", 0)] {
        let bus = EventBus::builder().history_capacity(capacity).build();
        bus.subscribe(TYPE, |e: &Event| work(e));
        group.bench_function(BenchmarkId::new("agentbus", label), |b| {
            b.iter(|| bus.publish_blocking(Arc::clone(&ev)))
        });
        let lock = lock_bus_with(1, capacity);
        group.bench_function(BenchmarkId::new("lock_bus", label), |b| {
            b.iter(|| lock.publish(Arc::clone(&ev)))
        });

        // Case 6's prebuilt 2-thread run without history isolates what the
        // ring costs once two publishers share it.
        let id = format!("{label}/2_pub");
        let per_thread = &per_thread;
        let publish = |t: usize| -> Box<dyn FnMut() + '_> {
            let bus = &bus;
            Box::new(move || {
                black_box(bus.publish_blocking(Arc::clone(&per_thread[t])));
            })
        };
        group.bench_function(BenchmarkId::new("agentbus", &id), |b| {
            b.iter_custom(|iters| parallel(2, iters, &publish, None))
        });
        let publish = |t: usize| -> Box<dyn FnMut() + '_> {
            let lock = &lock;
            Box::new(move || {
                black_box(lock.publish(Arc::clone(&per_thread[t])));
            })
        };
        group.bench_function(BenchmarkId::new("lock_bus", &id), |b| {
            b.iter_custom(|iters| parallel(2, iters, &publish, None))
        });
    }
    group.finish();
}

fn config() -> Criterion {
    // Short enough that the full run stays near five minutes on 2 cores.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = fan_out, filtered, async_handlers, end_to_end, history_query, threads, history_on_off
}
criterion_main!(benches);
