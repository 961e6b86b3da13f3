//! Shared by the test binaries: the PostgreSQL harness, the conformance
//! suite both backends run, and small helpers.
#![allow(dead_code)]

pub mod conformance;
pub mod pg;

use std::sync::Arc;
use std::time::Duration;

use agentbus::{Event, EventId, EventType};
use agentbus_store::{
    Appended, BoxFuture, EventStore, ReadQuery, Retention, StoreError, StoredEvent,
};
use serde_json::json;

/// An event numbered `n`, with the fields every filter test looks at.
pub fn numbered(n: u64) -> Event {
    let types = [
        EventType::TaskCreated,
        EventType::TaskAssigned,
        EventType::TaskCompleted,
        EventType::MemoryShared,
    ];
    Event::new(types[(n % 4) as usize])
        .with_data(json!({"n": n, "nested": {"list": [1, 2.5, "three"], "ok": true}}))
        .with_circle((n % 3) as i64)
        .with_source_agent((n % 5) as i64)
        .with_project(7)
}

/// Checks that `events` hold sequences `from..=to`, each once, in order.
pub fn assert_contiguous(events: &[StoredEvent], from: u64, to: u64) {
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    let expected: Vec<u64> = (from..=to).collect();
    assert_eq!(
        sequences, expected,
        "sequences must be contiguous {from}..={to}"
    );
}

/// Reads everything, paging.
pub async fn read_all<S: EventStore + ?Sized>(store: &S) -> Vec<StoredEvent> {
    let mut all = Vec::new();
    loop {
        let after = all.last().map_or(0, |e: &StoredEvent| e.sequence);
        let page = store
            .read(&ReadQuery::new().after(after).limit(5000))
            .await
            .expect("read");
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// A store whose appends are slowed down (a writer slower than publishers),
/// or fail while `failing` is set.
pub struct Throttled<S> {
    pub inner: S,
    pub delay: Duration,
    pub failing: std::sync::atomic::AtomicBool,
}

impl<S> Throttled<S> {
    pub fn new(inner: S, delay: Duration) -> Self {
        Self {
            inner,
            delay,
            failing: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("injected failure")]
pub struct Injected;

impl<S: EventStore> EventStore for Throttled<S> {
    fn append<'a>(
        &'a self,
        events: &'a [Arc<Event>],
    ) -> BoxFuture<'a, Result<Appended, StoreError>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Backend {
                    backend: "test",
                    operation: "append",
                    source: Arc::new(Injected),
                });
            }
            self.inner.append(events).await
        })
    }

    fn read<'a>(
        &'a self,
        query: &'a ReadQuery,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>> {
        self.inner.read(query)
    }

    fn get(&self, id: EventId) -> BoxFuture<'_, Result<Option<StoredEvent>, StoreError>> {
        self.inner.get(id)
    }

    fn last_sequence(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.inner.last_sequence()
    }

    fn prune<'a>(&'a self, retention: &'a Retention) -> BoxFuture<'a, Result<u64, StoreError>> {
        self.inner.prune(retention)
    }
}

/// A store that refuses, as a database refuses data it cannot hold, every
/// batch containing an event whose data has `"poison": true`.
pub struct Picky<S>(pub S);

impl<S: EventStore> EventStore for Picky<S> {
    fn append<'a>(
        &'a self,
        events: &'a [Arc<Event>],
    ) -> BoxFuture<'a, Result<Appended, StoreError>> {
        if events.iter().any(|event| event.data["poison"] == true) {
            return Box::pin(async {
                Err(StoreError::Rejected {
                    backend: "test",
                    source: Arc::new(Injected),
                })
            });
        }
        self.0.append(events)
    }

    fn read<'a>(
        &'a self,
        query: &'a ReadQuery,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>, StoreError>> {
        self.0.read(query)
    }

    fn get(&self, id: EventId) -> BoxFuture<'_, Result<Option<StoredEvent>, StoreError>> {
        self.0.get(id)
    }

    fn last_sequence(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.0.last_sequence()
    }

    fn prune<'a>(&'a self, retention: &'a Retention) -> BoxFuture<'a, Result<u64, StoreError>> {
        self.0.prune(retention)
    }
}
