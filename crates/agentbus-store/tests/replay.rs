//! [`replay`] over more than one page: the store is read 1000 events at a
//! time, and every page is published, up to the query's limit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use agentbus::{Event, EventBus, EventTypeSet};
use agentbus_store::{replay, EventStore, ReadQuery, Replayed, SqliteStore};
use agentbus_testkit::traffic::numbered;

#[tokio::test]
async fn replay_publishes_every_page_up_to_the_limit() {
    let store = SqliteStore::open_in_memory().unwrap();
    let events: Vec<Arc<Event>> = (0..2500).map(|n| Arc::new(numbered(n))).collect();
    store.append(&events).await.unwrap();

    let bus = EventBus::new();
    let published = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&published);
    bus.subscription(EventTypeSet::all())
        .handler(move |_event: &Event| {
            counter.fetch_add(1, Ordering::Relaxed);
        });

    let all = replay(&store, &ReadQuery::new(), &bus).await.unwrap();
    assert_eq!(
        all,
        Replayed {
            events: 2500,
            last_sequence: 2500
        }
    );
    assert_eq!(published.load(Ordering::Relaxed), 2500);

    // A limit past one page, from a cursor: 1200 events after 100.
    let some = replay(&store, &ReadQuery::new().after(100).limit(1200), &bus)
        .await
        .unwrap();
    assert_eq!(
        some,
        Replayed {
            events: 1200,
            last_sequence: 1300
        }
    );
    assert_eq!(published.load(Ordering::Relaxed), 3700);
}
