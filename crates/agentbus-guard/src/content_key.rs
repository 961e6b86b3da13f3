//! [`ContentKeys`]: the 64-bit key [`Dedup`](crate::Dedup) compares events'
//! content by.

use std::hash::{BuildHasher, Hash, Hasher};

use agentbus::{Event, EventId};
use foldhash::quality::RandomState;
use serde_json::{Map, Value};

/// Hashes an event's type, source agent, circle and data with a random
/// seed, and its id with another.
///
/// The data is walked once, feeding the hasher one word per scalar (a tag
/// and a length share it) and each string's bytes in one call, which costs
/// about half of `Value`'s derived `Hash`. The encoding is prefix-free, so
/// only a hash collision makes two different contents equal. Objects are
/// hashed in key order: serde_json's map iterates sorted unless its
/// `preserve_order` feature is on somewhere in the build, which is checked
/// once, when the keys are made; then each object's entries are sorted
/// first, as serde_json's own `Hash` does.
#[derive(Clone, Debug)]
pub(crate) struct ContentKeys {
    content: RandomState,
    ids: RandomState,
    maps_iterate_sorted: bool,
}

// Tags: the low byte of the word written before each value.
const NULL: u64 = 0;
const FALSE: u64 = 1;
const TRUE: u64 = 2;
const UNSIGNED: u64 = 3;
const SIGNED: u64 = 4;
const FLOAT: u64 = 5;
const STRING: u64 = 6;
const ARRAY: u64 = 7;
const OBJECT: u64 = 8;

impl ContentKeys {
    pub(crate) fn new() -> Self {
        let mut probe = Map::new();
        probe.insert("b".to_owned(), Value::Null);
        probe.insert("a".to_owned(), Value::Null);
        Self {
            content: RandomState::default(),
            ids: RandomState::default(),
            maps_iterate_sorted: probe.keys().next().is_some_and(|key| key == "a"),
        }
    }

    /// The key of (type, source agent, circle, data).
    pub(crate) fn content(&self, event: &Event) -> u64 {
        let mut hasher = self.content.build_hasher();
        event.event_type.hash(&mut hasher);
        event.source_agent_id.hash(&mut hasher);
        event.circle_id.hash(&mut hasher);
        self.value(&mut hasher, &event.data);
        hasher.finish()
    }

    /// The hash of an id (ids are compared whole; this only picks a bucket).
    pub(crate) fn id(&self, id: &EventId) -> u64 {
        self.ids.hash_one(id)
    }

    fn value(&self, hasher: &mut impl Hasher, value: &Value) {
        match value {
            Value::Null => hasher.write_u64(NULL),
            Value::Bool(false) => hasher.write_u64(FALSE),
            Value::Bool(true) => hasher.write_u64(TRUE),
            Value::Number(number) => {
                // The tag tells 1, -1 and 1.0 apart whatever their bits;
                // `Number`'s own `Hash` then writes the value (its text with
                // serde_json's `arbitrary_precision`).
                let tag = if number.is_u64() {
                    UNSIGNED
                } else if number.is_i64() {
                    SIGNED
                } else {
                    FLOAT
                };
                hasher.write_u64(tag);
                number.hash(hasher);
            }
            Value::String(text) => string(hasher, STRING, text),
            Value::Array(items) => {
                hasher.write_u64(length_and_tag(items.len(), ARRAY));
                for item in items {
                    self.value(hasher, item);
                }
            }
            Value::Object(entries) => {
                hasher.write_u64(length_and_tag(entries.len(), OBJECT));
                if self.maps_iterate_sorted {
                    for (key, item) in entries {
                        string(hasher, STRING, key);
                        self.value(hasher, item);
                    }
                } else {
                    let mut sorted: Vec<_> = entries.iter().collect();
                    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
                    for (key, item) in sorted {
                        string(hasher, STRING, key);
                        self.value(hasher, item);
                    }
                }
            }
        }
    }
}

fn string(hasher: &mut impl Hasher, tag: u64, text: &str) {
    hasher.write_u64(length_and_tag(text.len(), tag));
    hasher.write(text.as_bytes());
}

fn length_and_tag(length: usize, tag: u64) -> u64 {
    // A length that does not fit in 56 bits cannot be in memory.
    ((length as u64) << 8) | tag
}
