//! Arbitrary bytes as an `Event` from JSON: decoding never panics, and
//! whatever decodes re-encodes and decodes to an equal event.
#![no_main]

use agentbus::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(event) = Event::from_json(text) else {
        return;
    };
    // The decoder's timestamp parser only accepts years 1970..=9999 (a leap
    // second is folded into :59), which is exactly what the encoder can
    // write, so a decoded event must always re-encode.
    let json = event
        .to_json()
        .unwrap_or_else(|err| panic!("decoded event does not re-encode: {err}: {event:?}"));
    let again = Event::from_json(&json)
        .unwrap_or_else(|err| panic!("re-encoded event does not decode: {err}: {json}"));
    assert_eq!(again, event, "round trip changed the event: {json}");
    // Encoding is deterministic: a second round trip gives the same text.
    assert_eq!(again.to_json().unwrap(), json);
});
