//! [`ContentKeys`]: the 64-bit key [`Dedup`](crate::Dedup) compares events'
//! content by.

use std::hash::BuildHasher;

use agentbus::{Event, EventId};
use foldhash::quality::RandomState;
use serde_json::{Map, Number, Value};

/// Hashes an event's type, source agent, circle and data with a random
/// seed, and its id with another (one folded multiply of its two halves:
/// ids are compared whole, the hash only picks a bucket).
///
/// The data is walked once into a chain of 64-bit words, each folded into
/// the state by one 64 × 64 → 128-bit multiply by a random odd multiplier
/// (foldhash's "folded multiply"), with a final multiply by another: one
/// multiply per scalar and per 8 bytes of text, a string of up to 7 bytes
/// being one word with its length and tag. That is about a third of the
/// instructions of `Value`'s derived `Hash` fed to foldhash, whose state
/// does not stay in registers across the recursion. The word encoding is
/// prefix-free, so only a collision of the chain (about 2⁻⁶⁴ per pair, the
/// seed unknown to clients) makes two different contents equal.
///
/// Objects are hashed in key order: serde_json's map iterates sorted unless
/// its `preserve_order` feature is on somewhere in the build, which is
/// checked once, when the keys are made; then each object's entries are
/// sorted first, as serde_json's own `Hash` does. Numbers are hashed by
/// value (with `arbitrary_precision`, also checked once, by their text
/// through foldhash).
#[derive(Clone, Debug)]
pub(crate) struct ContentKeys {
    start: u64,
    multiplier: u64,
    finish: u64,
    id_seed: u64,
    numbers: RandomState,
    maps_iterate_sorted: bool,
    arbitrary_precision: bool,
}

// Tags: 4 bits, in the low byte of a header word or bits 59..62 of a short
// string's word (whose bit 63 is set; a header's never is).
const NULL: u64 = 0;
const FALSE: u64 = 1;
const TRUE: u64 = 2;
const UNSIGNED: u64 = 3;
const SIGNED: u64 = 4;
const FLOAT: u64 = 5;
const STRING: u64 = 6;
const ARRAY: u64 = 7;
const OBJECT: u64 = 8;
const KEY: u64 = 9;
const SHORT: u64 = 1 << 63;

/// The state of one walk, passed and returned by value: a `&mut` state
/// that the recursion shares lives in memory, and each link of the
/// multiply chain then waits for a store to be forwarded to the next load
/// (about 5 cycles a word on x86-64); by value it stays in a register.
/// Two words, so it is returned in registers too.
#[derive(Clone, Copy)]
struct Chain<'a> {
    state: u64,
    keys: &'a ContentKeys,
}

impl Chain<'_> {
    #[inline(always)]
    #[must_use]
    fn word(self, word: u64) -> Self {
        Self {
            state: folded_multiply(self.state ^ word, self.keys.multiplier),
            ..self
        }
    }

    #[inline(always)]
    #[must_use]
    fn string(self, tag: u64, text: &str) -> Self {
        let bytes = text.as_bytes();
        let len = bytes.len();
        if len < 8 {
            // Length and tag in the top byte, the bytes below it.
            return self.word(SHORT | (tag << 59) | ((len as u64) << 56) | short(bytes));
        }
        // A length that does not fit in 55 bits cannot be in memory.
        let mut chain = self.word(((len as u64) << 8) | tag);
        let mut at = 0;
        while at + 8 < len {
            chain = chain.word(read_u64(bytes, at));
            at += 8;
        }
        // The last 8 bytes, overlapping the previous word if need be (the
        // length, already hashed, tells where).
        chain.word(read_u64(bytes, len - 8))
    }

    /// A value inside an array or object: scalars and strings here, in the
    /// caller's loop; only nested containers recurse.
    #[inline(always)]
    #[must_use]
    fn item(self, value: &Value) -> Self {
        match value {
            Value::Null => self.word(NULL),
            Value::Bool(false) => self.word(FALSE),
            Value::Bool(true) => self.word(TRUE),
            Value::Number(number) => self.number(number),
            Value::String(text) => self.string(STRING, text),
            Value::Array(_) | Value::Object(_) => self.value(value),
        }
    }

    #[must_use]
    fn value(self, value: &Value) -> Self {
        match value {
            Value::Array(items) => {
                let mut chain = self.word(((items.len() as u64) << 8) | ARRAY);
                for item in items {
                    chain = chain.item(item);
                }
                chain
            }
            Value::Object(entries) => {
                let mut chain = self.word(((entries.len() as u64) << 8) | OBJECT);
                if self.keys.maps_iterate_sorted {
                    for (key, item) in entries {
                        chain = chain.string(KEY, key).item(item);
                    }
                } else {
                    let mut sorted: Vec<_> = entries.iter().collect();
                    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
                    for (key, item) in sorted {
                        chain = chain.string(KEY, key).item(item);
                    }
                }
                chain
            }
            scalar => self.item(scalar),
        }
    }

    #[inline(always)]
    #[must_use]
    fn number(self, number: &Number) -> Self {
        // The tag tells 1, -1 and 1.0 apart whatever their bits.
        let (tag, bits) = if self.keys.arbitrary_precision {
            (FLOAT, self.keys.numbers.hash_one(number))
        } else if let Some(unsigned) = number.as_u64() {
            (UNSIGNED, unsigned)
        } else if let Some(signed) = number.as_i64() {
            (SIGNED, signed as u64)
        } else {
            // +0.0 and -0.0 are equal numbers: one key for both.
            let float = number.as_f64().unwrap_or(0.0);
            (FLOAT, if float == 0.0 { 0 } else { float.to_bits() })
        };
        self.word(tag).word(bits)
    }
}

impl ContentKeys {
    pub(crate) fn new() -> Self {
        let mut probe = Map::new();
        probe.insert("b".to_owned(), Value::Null);
        probe.insert("a".to_owned(), Value::Null);
        let past_u64: Number = serde_json::from_str("18446744073709551616").expect("a number");
        let seeds = RandomState::default();
        Self {
            start: seeds.hash_one(1u8),
            multiplier: seeds.hash_one(2u8) | 1,
            finish: seeds.hash_one(3u8) | 1,
            id_seed: seeds.hash_one(4u8),
            numbers: RandomState::default(),
            maps_iterate_sorted: probe.keys().next().is_some_and(|key| key == "a"),
            // Without it, a number past u64 parses as a float.
            arbitrary_precision: !past_u64.is_f64(),
        }
    }

    /// The key of (type, source agent, circle, data).
    pub(crate) fn content(&self, event: &Event) -> u64 {
        let chain = Chain {
            state: self.start,
            keys: self,
        }
        .word(event.event_type.index() as u64)
        .word(option(event.source_agent_id))
        .word(event.source_agent_id.unwrap_or(0) as u64)
        .word(option(event.circle_id))
        .word(event.circle_id.unwrap_or(0) as u64)
        .value(&event.data);
        folded_multiply(chain.state, self.finish)
    }

    /// The hash of an id (ids are compared whole; this only picks a bucket).
    pub(crate) fn id(&self, id: &EventId) -> u64 {
        let id = id.as_uuid().as_u128();
        folded_multiply(
            (id as u64) ^ self.id_seed,
            ((id >> 64) as u64) ^ self.multiplier,
        )
    }
}

fn option(value: Option<i64>) -> u64 {
    u64::from(value.is_some())
}

/// The 128-bit product's halves, xored: every input bit reaches the result.
#[inline(always)]
pub(crate) fn folded_multiply(x: u64, y: u64) -> u64 {
    let full = u128::from(x) * u128::from(y);
    (full as u64) ^ ((full >> 64) as u64)
}

/// Up to 7 bytes as one little-endian word (for a given length, a
/// different text gives a different word).
#[inline(always)]
fn short(bytes: &[u8]) -> u64 {
    let len = bytes.len();
    if len >= 4 {
        let low = u64::from(u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")));
        let high = u64::from(u32::from_le_bytes(
            bytes[len - 4..].try_into().expect("4 bytes"),
        ));
        low | (high << ((len - 4) * 8))
    } else if len > 0 {
        u64::from(bytes[0]) | (u64::from(bytes[len / 2]) << 8) | (u64::from(bytes[len - 1]) << 16)
    } else {
        0
    }
}

#[inline(always)]
fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use agentbus::EventType;
    use serde_json::json;

    use super::*;
    use agentbus_testkit::deadline::deadline;

    /// Texts one length or one byte apart, at every position and across
    /// each length where the encoding changes (7/8 bytes: one word to a
    /// header and words; 15/16, 23/24: one word more), including runs of
    /// zero bytes, which only their length tells apart.
    fn near_texts() -> Vec<String> {
        let mut texts = Vec::new();
        for len in 0..=40 {
            let base: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            for at in 0..len {
                let mut bytes = base.clone().into_bytes();
                bytes[at] = b'Z';
                texts.push(String::from_utf8(bytes).expect("ascii"));
            }
            texts.push(base);
            if len > 0 {
                texts.push("\0".repeat(len));
            }
        }
        texts
    }

    fn with_data(data: Value) -> Event {
        Event::new(EventType::TaskCompleted).with_data(data)
    }

    #[track_caller]
    fn assert_all_distinct(keys: &ContentKeys, contents: &[Event]) {
        let mut seen: HashMap<u64, usize> = HashMap::new();
        for (at, event) in contents.iter().enumerate() {
            if let Some(before) = seen.insert(keys.content(event), at) {
                panic!("{:?} and {:?} share a content key", contents[before], event);
            }
        }
    }

    #[test]
    fn strings_one_byte_or_one_length_apart_get_different_keys() {
        let _deadline = deadline();
        let keys = ContentKeys::new();
        let texts = near_texts();
        let mut contents: Vec<Event> = texts.iter().map(|t| with_data(json!(t))).collect();
        // The same texts as keys: a key is told apart from a string value.
        contents.extend(texts.iter().map(|t| with_data(json!({ t: null }))));
        assert_all_distinct(&keys, &contents);
    }

    #[test]
    fn scalars_containers_and_their_places_get_different_keys() {
        let _deadline = deadline();
        let keys = ContentKeys::new();
        let contents: Vec<Event> = [
            json!(null),
            json!(false),
            json!(true),
            json!(0),
            json!(1),
            json!(-1),
            json!(1.0),
            json!(-0.5),
            json!(u64::MAX),
            json!(""),
            json!("null"),
            json!([]),
            json!({}),
            json!([null]),
            json!([[]]),
            json!([1, 2]),
            json!([2, 1]),
            json!([[1], 2]),
            json!([1, [2]]),
            json!({"a": 1}),
            json!({"a": "1"}),
            json!({"a": [1]}),
            json!({"b": 1}),
            json!({"a": 1, "b": 2}),
            json!({"a": 2, "b": 1}),
            json!({"a": {"b": 1}}),
            json!([{"a": 1}]),
            json!(["a", 1]),
        ]
        .into_iter()
        .map(with_data)
        .collect();
        assert_all_distinct(&keys, &contents);
    }

    #[test]
    fn type_agent_and_circle_each_count() {
        let _deadline = deadline();
        let keys = ContentKeys::new();
        let base = || with_data(json!({"n": 1}));
        let contents = [
            base(),
            Event::new(EventType::TaskCreated).with_data(json!({"n": 1})),
            base().with_source_agent(0),
            base().with_source_agent(1),
            base().with_circle(0),
            base().with_circle(1),
            base().with_source_agent(1).with_circle(2),
            base().with_source_agent(2).with_circle(1),
        ];
        assert_all_distinct(&keys, &contents);
    }

    #[test]
    fn equal_contents_get_equal_keys_whatever_their_ids() {
        let _deadline = deadline();
        let keys = ContentKeys::new();
        let make = |n: f64| {
            Event::new(EventType::TaskCompleted)
                .with_source_agent(3)
                .with_circle(-4)
                .with_data(json!({"a key longer than sixteen bytes": "x".repeat(40), "n": n}))
        };
        let (one, two) = (make(-0.0), make(-0.0));
        assert_ne!(one.id, two.id);
        assert_eq!(keys.content(&one), keys.content(&two));
        assert_ne!(keys.id(&one.id), keys.id(&two.id));
        // -0.0 and 0.0 are one number.
        assert_eq!(keys.content(&one), keys.content(&make(0.0)));
        // Another window's keys are another random draw.
        assert_ne!(ContentKeys::new().content(&one), keys.content(&one));
    }

    /// Contents one bit apart, each with its neighbours: a number and the
    /// same number with one of its 64 bits flipped (64 random numbers), and
    /// a 24-byte string and the same with one of the low 7 bits of one byte
    /// flipped, so it stays ASCII (8 random strings).
    fn contents_and_their_neighbours_one_bit_apart() -> Vec<(Event, Vec<Event>)> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut contents = Vec::new();
        for _ in 0..64 {
            let number = random();
            let neighbours = (0..64)
                .map(|bit| with_data(json!({ "n": number ^ (1 << bit) })))
                .collect();
            contents.push((with_data(json!({ "n": number })), neighbours));
        }
        let text = |bytes: &[u8]| json!({ "text": std::str::from_utf8(bytes).expect("ascii") });
        for _ in 0..8 {
            let bytes: Vec<u8> = (0..24).map(|_| b' ' + (random() % 95) as u8).collect();
            let mut neighbours = Vec::new();
            for at in 0..bytes.len() {
                for bit in 0..7 {
                    let mut flipped = bytes.clone();
                    flipped[at] ^= 1 << bit;
                    neighbours.push(with_data(text(&flipped)));
                }
            }
            contents.push((with_data(text(&bytes)), neighbours));
        }
        contents
    }

    /// What "about 2⁻⁶⁴ per pair" rests on: each of the key's 64 bits is a
    /// fair coin over contents. Over 5,512 distinct contents (numbers and
    /// strings and their neighbours one bit apart), every bit is set in 40
    /// to 60 % of the keys: 15 standard deviations of a fair bit either
    /// way. A bit leaning to 3/4, as when the halves of a product are or-ed
    /// rather than xored, would make a pair collide with probability
    /// (5/8)⁶⁴ ≈ 2⁻⁴³.
    #[test]
    fn each_key_bit_is_set_in_about_half_the_keys() {
        let _deadline = deadline();
        let keys = ContentKeys::new();
        let contents: Vec<Event> = contents_and_their_neighbours_one_bit_apart()
            .into_iter()
            .flat_map(|(content, neighbours)| std::iter::once(content).chain(neighbours))
            .collect();
        assert_eq!(contents.len(), 64 * 65 + 8 * (1 + 24 * 7));
        let mut set = [0usize; 64];
        for event in &contents {
            let key = keys.content(event);
            for (bit, count) in set.iter_mut().enumerate() {
                *count += usize::from(key >> bit & 1 == 1);
            }
        }
        let (low, high) = (contents.len() * 4 / 10, contents.len() * 6 / 10);
        for (bit, &count) in set.iter().enumerate() {
            assert!(
                (low..=high).contains(&count),
                "key bit {bit} set in {count} of {} keys",
                contents.len()
            );
        }
    }

    /// Contents one bit apart get unrelated keys: on average half their 64
    /// bits differ (30 to 34 over 5,440 pairs, where a fair key's average
    /// spreads by about 0.05 bits; 24 if the bits leaned to 3/4), and never
    /// fewer than 8 (for two unrelated keys, about 1 in 10¹⁰ a pair).
    #[test]
    fn contents_one_bit_apart_get_keys_about_half_their_bits_apart() {
        let _deadline = deadline();
        let keys = ContentKeys::new();
        let (mut pairs, mut total) = (0, 0);
        for (content, neighbours) in contents_and_their_neighbours_one_bit_apart() {
            let key = keys.content(&content);
            for neighbour in &neighbours {
                let apart = (key ^ keys.content(neighbour)).count_ones();
                assert!(
                    apart >= 8,
                    "{} and {}: keys {apart} bits apart",
                    content.data,
                    neighbour.data
                );
                (pairs, total) = (pairs + 1, total + apart);
            }
        }
        assert_eq!(pairs, 64 * 64 + 8 * 24 * 7);
        let mean = f64::from(total) / f64::from(pairs);
        assert!(
            (30.0..=34.0).contains(&mean),
            "on average {mean} bits apart"
        );
    }
}
