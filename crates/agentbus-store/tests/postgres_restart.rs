//! PostgreSQL stopped and restarted under load: `flush()` fails while the
//! server is down and succeeds after; nothing published is lost (the
//! recorder's default policy makes publishers wait rather than drop).
//! This binary owns its cluster, since it stops it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentbus::EventBus;
use agentbus_store::{PostgresStore, Recorder, StoreError};

use agentbus_testkit::store::{assert_contiguous, read_all};
use agentbus_testkit::traffic::numbered;
use agentbus_testkit::Postgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_restarted_under_load_loses_nothing_flushed() {
    let Some(cluster) = Postgres::start_or_skip("agentbus-store PostgreSQL restart test") else {
        return;
    };
    let url = cluster.create_database();
    let store = PostgresStore::connect(&url).await.unwrap();
    let bus = EventBus::new();
    let recorder = Recorder::builder()
        .capacity(2_048)
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(200))
        .attach(&bus, store.clone());

    let published = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (bus, published, stop) = (bus.clone(), Arc::clone(&published), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                bus.publish_blocking(numbered(n));
                n += 1;
                published.store(n, Ordering::Relaxed);
                if n % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };

    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = recorder.flush().await.unwrap();
    assert!(before > 0);

    cluster.stop();
    let error = tokio::time::timeout(Duration::from_secs(20), recorder.flush())
        .await
        .expect("flush answers while the server is down")
        .unwrap_err();
    assert!(matches!(error, StoreError::FlushFailed { .. }), "{error:?}");
    let down = recorder.stats();
    assert!(down.errors > 0 && down.last_error.is_some(), "{down:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let published_while_down = published.load(Ordering::Relaxed);

    cluster.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let after = loop {
        match recorder.flush().await {
            Ok(last) => break last,
            Err(error) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "never recovered: {error:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(
        after >= published_while_down.min(before + 1),
        "events published while down were stored"
    );

    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    let last = recorder.flush().await.unwrap();
    let total = published.load(Ordering::Relaxed);
    assert_eq!(last, total, "every published event is stored, none twice");
    let all = read_all(&store).await;
    assert_contiguous(&all, 1, last);
    let ns: Vec<u64> = all
        .iter()
        .map(|s| s.event.data["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, (0..total).collect::<Vec<_>>(), "in publish order");
    let ids: HashSet<_> = all.iter().map(|s| s.event.id).collect();
    assert_eq!(ids.len() as u64, total);
    println!(
        "{total} events, {before} flushed before the stop, {} failed attempts while down",
        recorder.stats().errors
    );
}
