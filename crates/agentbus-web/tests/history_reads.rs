//! Without a store: reads of a large history run off the runtime and stop
//! at their limit, so other requests keep answering meanwhile.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentbus::{Event, EventBus, EventType};
use agentbus_web::WebApi;
use common::*;

const HISTORY: usize = 400_000;

fn big_history() -> EventBus {
    let bus = EventBus::builder().history_capacity(HISTORY).build();
    for n in 0..HISTORY {
        let event_type = if n % 2 == 0 {
            EventType::TaskCreated
        } else {
            EventType::TaskCompleted
        };
        bus.publish_blocking(Event::new(event_type).with_circle(n as i64 % 100));
    }
    bus
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_while_whole_history_reads_run() {
    let bus = big_history();
    let api = WebApi::new(bus.clone());
    // One worker: a read scanning the history on it would hold every other
    // request until it ends.
    let server = ThreadServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), move || api);
    // A filter no event matches, on several types: each read goes through
    // the whole history.
    let url = server.url("/api/events?type=agent.started,memory.shared&limit=10");
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (url, done, stop) = (url.clone(), Arc::clone(&done), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let reply = get(&url).await;
                    assert_eq!(reply.status, 200);
                    assert_eq!(reply.json()["events"], serde_json::json!([]));
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    // The readers are under way once one read came back.
    tokio::time::timeout(Duration::from_secs(60), async {
        while done.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("a read answers");

    // Each health request is answered while the reads keep running, not
    // after the one in progress: far fewer reads end meanwhile than there
    // are health requests (a worker blocked by reads lets at least one end
    // before each).
    let before = done.load(Ordering::SeqCst);
    for _ in 0..6 {
        let health = tokio::time::timeout(Duration::from_secs(60), get(&server.url("/api/health")))
            .await
            .expect("health answers");
        assert_eq!(health.status, 200);
    }
    let during = done.load(Ordering::SeqCst) - before;
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
    assert!(
        during < 3,
        "{during} whole-history reads ended during 6 health requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_reads_return_the_newest_matches_in_either_order() {
    let bus = EventBus::builder().history_capacity(1000).build();
    for n in 0..300i64 {
        let event_type = match n % 3 {
            0 => EventType::TaskCreated,
            1 => EventType::TaskCompleted,
            _ => EventType::AgentStarted,
        };
        bus.publish_blocking(Event::new(event_type).with_circle(n % 2).with_project(n));
    }
    let server = Server::start(WebApi::new(bus.clone())).await;
    let projects = |url: &str| {
        let url = server.url(url);
        async move {
            get(&url).await.json()["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["project_id"].as_i64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        projects("/api/events?order=desc&limit=3").await,
        [299, 298, 297]
    );
    assert_eq!(projects("/api/events?limit=3").await, [297, 298, 299]);
    // One type, several types, with a scope.
    assert_eq!(
        projects("/api/events?type=task.created&order=desc&limit=2").await,
        [297, 294]
    );
    assert_eq!(
        projects("/api/events?type=task.created,task.completed&circle_id=0&limit=4").await,
        [288, 292, 294, 298]
    );
    assert_eq!(
        projects("/api/events?type=task.created,agent.started&order=desc&limit=300")
            .await
            .len(),
        200
    );
    assert!(projects("/api/events?type=task.created&circle_id=7")
        .await
        .is_empty());
}
