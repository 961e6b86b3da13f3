//! The original's deduplication window (`configure(dedup_enabled=True,
//! dedup_window=1.0)`): an event with the same type, source agent, circle
//! and data as one accepted less than `window` ago is dropped before it
//! reaches history or any handler, and counted in `events_deduplicated`.
//!
//! Stand-in until `agentbus_guard::Dedup` (issue #19) is on main; the bus
//! reaches it only through [`Dedup::is_duplicate`].
//!
//! Behaviour: off by default (as the original); the window is measured on a
//! monotonic clock; keys are 64-bit hashes with a per-process random key
//! (a collision, about one in 2^64 per pair, would drop a distinct event).
//! Memory is bounded: at [`MAX_KEYS`] remembered keys the expired ones are
//! dropped, and if all are live the memory is cleared, so at that bound a
//! duplicate may pass rather than memory grow.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use agentbus::Event;
use serde_json::Value;

/// The most keys remembered at once.
pub(crate) const MAX_KEYS: usize = 100_000;

pub(crate) struct Dedup {
    /// Mirrors `State::enabled`, so a bus without dedup takes no lock.
    enabled: AtomicBool,
    hasher: RandomState,
    state: Mutex<State>,
}

struct State {
    enabled: bool,
    window: Duration,
    seen: HashMap<u64, Instant>,
}

impl Default for Dedup {
    fn default() -> Self {
        Self {
            enabled: AtomicBool::new(false),
            hasher: RandomState::new(),
            state: Mutex::new(State {
                enabled: false,
                window: Duration::from_secs(1),
                seen: HashMap::new(),
            }),
        }
    }
}

fn hash_value(value: &Value, hasher: &mut impl Hasher) {
    match value {
        Value::Null => 0u8.hash(hasher),
        Value::Bool(b) => (1u8, b).hash(hasher),
        Value::Number(n) => (2u8, n.to_string()).hash(hasher),
        Value::String(s) => (3u8, s).hash(hasher),
        Value::Array(items) => {
            (4u8, items.len()).hash(hasher);
            items.iter().for_each(|item| hash_value(item, hasher));
        }
        Value::Object(map) => {
            // serde_json's map is ordered by key, so equal dicts hash alike
            // whatever their insertion order.
            (5u8, map.len()).hash(hasher);
            for (key, item) in map {
                key.hash(hasher);
                hash_value(item, hasher);
            }
        }
    }
}

impl Dedup {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Turns deduplication on or off and/or sets the window.
    pub(crate) fn configure(&self, enabled: Option<bool>, window: Option<Duration>) {
        let mut state = self.lock();
        if let Some(enabled) = enabled {
            state.enabled = enabled;
            // Relaxed: a publish racing with `configure` may see either
            // setting; the map itself is only touched under the lock.
            self.enabled.store(enabled, Ordering::Relaxed);
        }
        if let Some(window) = window {
            state.window = window;
        }
    }

    /// Whether deduplication is on, and its window.
    pub(crate) fn settings(&self) -> (bool, Duration) {
        let state = self.lock();
        (state.enabled, state.window)
    }

    /// Forgets every event seen (the settings stay).
    pub(crate) fn clear(&self) {
        self.lock().seen.clear();
    }

    /// `true` if `event` repeats one accepted within the window; otherwise
    /// remembers it and returns `false`.
    pub(crate) fn is_duplicate(&self, event: &Event) -> bool {
        if !self.enabled.load(Ordering::Relaxed) {
            return false;
        }
        let mut hasher = self.hasher.build_hasher();
        (
            event.event_type.index(),
            event.source_agent_id,
            event.circle_id,
        )
            .hash(&mut hasher);
        hash_value(&event.data, &mut hasher);
        let key = hasher.finish();
        let now = Instant::now();
        let mut state = self.lock();
        let window = state.window;
        if let Some(seen) = state.seen.get(&key) {
            if now.duration_since(*seen) < window {
                return true;
            }
        }
        if state.seen.len() >= MAX_KEYS {
            state
                .seen
                .retain(|_, seen| now.duration_since(*seen) < window);
            if state.seen.len() >= MAX_KEYS {
                state.seen.clear();
            }
        }
        state.seen.insert(key, now);
        false
    }
}
