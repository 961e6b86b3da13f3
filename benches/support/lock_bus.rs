//! The baseline most projects hand-roll: handlers behind one `RwLock`, history
//! behind one `Mutex`. Shared by the `dispatch` and `latency` benches so both
//! compare agentbus with the same peer.

// Each bench binary uses a different subset of this peer.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use agentbus::{Event, EventType};

pub type LockHandler = Box<dyn Fn(&Event) + Send + Sync>;
pub type LockFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
pub type LockAsyncHandler = Box<dyn Fn(Arc<Event>) -> LockFuture + Send + Sync>;

/// History capacity of the baseline, as in the original Python bus.
pub const LOCK_BUS_HISTORY: usize = 1000;

pub struct LockBus {
    // The id is only there so churn benchmarks can unsubscribe.
    handlers: RwLock<HashMap<EventType, Vec<(u64, LockHandler)>>>,
    async_handlers: RwLock<HashMap<EventType, Vec<LockAsyncHandler>>>,
    history: Mutex<VecDeque<Arc<Event>>>,
    capacity: usize,
    next_id: AtomicU64,
}

impl LockBus {
    pub fn new(capacity: usize) -> Self {
        Self {
            handlers: RwLock::new(HashMap::new()),
            async_handlers: RwLock::new(HashMap::new()),
            history: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
            next_id: AtomicU64::new(0),
        }
    }

    pub fn subscribe(
        &self,
        event_type: EventType,
        handler: impl Fn(&Event) + Send + Sync + 'static,
    ) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.handlers
            .write()
            .unwrap()
            .entry(event_type)
            .or_default()
            .push((id, Box::new(handler)));
        id
    }

    pub fn subscribe_async<F, Fut>(&self, event_type: EventType, handler: F)
    where
        F: Fn(Arc<Event>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.async_handlers
            .write()
            .unwrap()
            .entry(event_type)
            .or_default()
            .push(Box::new(move |event| Box::pin(handler(event))));
    }

    pub fn unsubscribe(&self, event_type: EventType, id: u64) -> bool {
        let mut handlers = self.handlers.write().unwrap();
        let Some(list) = handlers.get_mut(&event_type) else {
            return false;
        };
        let before = list.len();
        list.retain(|(other, _)| *other != id);
        before != list.len()
    }

    fn record(&self, event: &Arc<Event>) {
        if self.capacity == 0 {
            return;
        }
        let mut history = self.history.lock().unwrap();
        if history.len() == self.capacity {
            history.pop_front();
        }
        history.push_back(Arc::clone(event));
    }

    /// Records the event, then calls every handler of its type under the read lock.
    pub fn publish(&self, event: Arc<Event>) -> usize {
        self.record(&event);
        let handlers = self.handlers.read().unwrap();
        match handlers.get(&event.event_type) {
            Some(list) => {
                for (_, handler) in list {
                    handler(&event);
                }
                list.len()
            }
            None => 0,
        }
    }

    /// The async form the original Python bus had: start every handler under
    /// the read lock, then await them all concurrently.
    pub async fn publish_async(&self, event: Arc<Event>) -> usize {
        self.record(&event);
        let futures: Vec<LockFuture> = {
            let handlers = self.async_handlers.read().unwrap();
            match handlers.get(&event.event_type) {
                Some(list) => list.iter().map(|h| h(Arc::clone(&event))).collect(),
                None => Vec::new(),
            }
        };
        let n = futures.len();
        futures::future::join_all(futures).await;
        n
    }

    /// Newest first, like `EventBus::history`.
    pub fn history(&self, event_type: EventType, limit: usize) -> Vec<Arc<Event>> {
        self.history
            .lock()
            .unwrap()
            .iter()
            .rev()
            .filter(|e| e.event_type == event_type)
            .take(limit)
            .cloned()
            .collect()
    }
}
