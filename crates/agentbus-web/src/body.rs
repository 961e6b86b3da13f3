//! [`EventsBody`]: the body of `POST /api/events`, one event object or an
//! array of them (in the core's JSON, or as CloudEvents in structured,
//! batch or binary mode), decoded strictly.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use agentbus::Event;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};

use crate::cloudevents::{self, Attributes, CloudEvent, Text};
use crate::error::ApiError;
use crate::state::SharedState;

/// The events of a `POST` body, all valid, and whether the body was an
/// array (errors about one event then name its index). Rejected with 415
/// unless declared JSON, 413 over the body limit (before reading it when
/// `Content-Length` says so), 400 naming the event and field that do not
/// decode.
#[derive(Debug)]
pub(crate) struct EventsBody {
    pub(crate) events: Vec<Event>,
    pub(crate) array: bool,
}

impl FromRequest<SharedState> for EventsBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &SharedState) -> Result<Self, ApiError> {
        let mode = Mode::of(request.headers())?;
        let limit = state.body_limit;
        // Before the body is read: a client that sent `Expect: 100-continue`
        // gets the 413 instead of an invitation to send what will be refused.
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(too_large(limit));
        }
        let binary = match mode {
            Mode::Binary => Some(binary_attributes(request.headers())?),
            _ => None,
        };
        let body = axum::body::to_bytes(request.into_body(), limit)
            .await
            .map_err(|error| {
                let too_large = std::error::Error::source(&error)
                    .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
                if too_large {
                    self::too_large(limit)
                } else {
                    ApiError::bad_request(format!("could not read the request body: {error}"))
                }
            })?;
        let (events, array) = match binary {
            Some(attributes) => (vec![decode_binary(attributes, &body)?], false),
            None => decode(&body, mode)?,
        };
        Ok(Self { events, array })
    }
}

/// How a `POST` body carries its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The core's JSON: one event object or an array.
    Native,
    /// `application/cloudevents+json`: one CloudEvent object.
    Structured,
    /// `application/cloudevents-batch+json`: an array of CloudEvents.
    Batch,
    /// `ce-*` headers, the body is the event's `data`.
    Binary,
}

impl Mode {
    /// The mode the headers declare; 415 unless the body is JSON
    /// (`application/json` or any `application/*+json`, parameters
    /// allowed), except for a binary-mode event without data.
    fn of(headers: &HeaderMap) -> Result<Self, ApiError> {
        let declared = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| {
                value
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let binary = headers.contains_key("ce-specversion");
        match declared.as_deref() {
            Some(cloudevents::STRUCTURED) => Ok(Mode::Structured),
            Some(cloudevents::BATCH) => Ok(Mode::Batch),
            Some("application/json") => Ok(if binary { Mode::Binary } else { Mode::Native }),
            Some(media) if media.starts_with("application/") && media.ends_with("+json") => {
                Ok(if binary { Mode::Binary } else { Mode::Native })
            }
            None if binary && body_is_empty(headers) => Ok(Mode::Binary),
            Some(other) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content type must be application/json, got {other}"),
            )),
            None => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content type must be application/json, got none",
            )),
        }
    }
}

fn body_is_empty(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim() == "0")
}

/// The `ce-*` headers of a binary-mode event as attributes (their values
/// percent-decoded, as the HTTP binding says); `data` is filled in from
/// the body later.
fn binary_attributes(headers: &HeaderMap) -> Result<Attributes<'static>, ApiError> {
    let mut attributes = Attributes::default();
    for (name, value) in headers {
        let Some(attribute) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        let text = || -> Result<Cow<'static, str>, ApiError> {
            let raw = value.to_str().map_err(|_| {
                ApiError::bad_request(format!("header `{name}` is not visible ascii"))
            })?;
            percent_decode(raw).map(Cow::Owned).ok_or_else(|| {
                ApiError::bad_request(format!("header `{name}`: bad percent-encoding"))
            })
        };
        match attribute {
            "specversion" => attributes.specversion = Some(text()?),
            "id" => attributes.id = Some(text()?),
            "source" => attributes.source = Some(text()?),
            "type" => attributes.event_type = Some(text()?),
            "time" => attributes.time = Some(text()?),
            "agentbusproject" => attributes.agentbusproject = Some(Text(text()?)),
            "agentbuscorrelation" => attributes.agentbuscorrelation = Some(text()?),
            "agentbuscausation" => attributes.agentbuscausation = Some(text()?),
            "traceparent" => attributes.traceparent = Some(text()?),
            "tracestate" => attributes.tracestate = Some(text()?),
            // The body's `Content-Type` is the data's; others have no field.
            _ => {}
        }
    }
    Ok(attributes)
}

/// `%XX` escapes decoded; `None` for a broken escape or bytes that are
/// not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return Some(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            // Two hex digits, nothing else (`from_str_radix` would take a sign).
            let digit = |at: usize| char::from(*bytes.get(at)?).to_digit(16);
            out.push((digit(at + 1)? * 16 + digit(at + 2)?) as u8);
            at += 3;
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A binary-mode event: the attributes from the headers, the body as its
/// JSON `data` (none when empty).
fn decode_binary(mut attributes: Attributes<'static>, body: &[u8]) -> Result<Event, ApiError> {
    if body.iter().any(|b| !b.is_ascii_whitespace()) {
        let data: serde_json::Value = serde_json::from_slice(body)
            .map_err(|error| ApiError::bad_request(format!("malformed json data: {error}")))?;
        if let Some((_, literal)) = first_inexact_integer(body) {
            return Err(inexact(String::new(), &literal));
        }
        attributes.data = Some(data);
    }
    let event = attributes
        .into_cloud_event()
        .map_err(ApiError::bad_request)?
        .event;
    check_timestamps(std::slice::from_ref(&event), false)?;
    Ok(event)
}

/// `event 2: ` inside an array body, nothing for a single event.
pub(crate) fn at(index: usize, array: bool) -> String {
    if array {
        format!("event {index}: ")
    } else {
        String::new()
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body is larger than the limit of {limit} bytes"),
    )
}

/// One event object or an array of them (and whether it was an array),
/// in the core's JSON or as CloudEvents; every error names where it is.
fn decode(body: &[u8], mode: Mode) -> Result<(Vec<Event>, bool), ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let array = first == Some(&b'[');
    let events = match (first, mode) {
        (None, _) => return Err(ApiError::bad_request("malformed json: the body is empty")),
        (Some(b'['), Mode::Native) => from_slice::<Vec<Event>>(body, "field")?,
        (Some(b'{'), Mode::Native) => vec![from_slice::<Event>(body, "field")?],
        (Some(b'['), Mode::Batch) => from_slice::<Vec<CloudEvent>>(body, "attribute")?
            .into_iter()
            .map(|cloud| cloud.event)
            .collect(),
        (Some(b'{'), Mode::Structured) => vec![from_slice::<CloudEvent>(body, "attribute")?.event],
        (Some(_), Mode::Structured) => {
            return Err(ApiError::bad_request(
                "malformed json: expected one cloudevent object (send a batch as application/cloudevents-batch+json)",
            ))
        }
        (Some(_), Mode::Batch) => {
            return Err(ApiError::bad_request(
                "malformed json: expected an array of cloudevents",
            ))
        }
        (Some(_), _) => {
            return Err(ApiError::bad_request(
                "malformed json: expected an event object or an array of them",
            ))
        }
    };
    if events.is_empty() {
        return Err(ApiError::bad_request("the array holds no event"));
    }
    if let Some((index, literal)) = first_inexact_integer(body) {
        return Err(inexact(at(index, array), &literal));
    }
    check_timestamps(&events, array)?;
    Ok((events, array))
}

fn inexact(at: String, literal: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{at}integer {literal} is beyond 64 bits and would lose its exact value: \
         send it as a string"
    ))
}

fn check_timestamps(events: &[Event], array: bool) -> Result<(), ApiError> {
    for (index, event) in events.iter().enumerate() {
        if !encodable(event.timestamp) {
            return Err(ApiError::bad_request(format!(
                "{}field `timestamp`: must be between 1970-01-01 and 9999-12-31",
                at(index, array)
            )));
        }
    }
    Ok(())
}

/// The first integer literal beyond `i64`/`u64` in a body that parsed, and
/// the index of the event holding it (among the top-level array's items).
///
/// serde_json reads such a literal as an `f64`, silently rounding it; its
/// `arbitrary_precision` feature would keep it, but features are shared by
/// the whole build and that one changes the core's `Value`s for everyone.
/// One pass over bytes already known to be valid JSON.
fn first_inexact_integer(body: &[u8]) -> Option<(usize, String)> {
    if !has_digit_run(body, INEXACT_DIGITS) {
        return None;
    }
    let (mut depth, mut index, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    let mut at = 0;
    while at < body.len() {
        if in_string {
            if escaped {
                escaped = false;
                at += 1;
                continue;
            }
            // Most of a body is string contents: skip to the next byte that
            // matters there in one tight search.
            match body[at..].iter().position(|&b| b == b'"' || b == b'\\') {
                Some(offset) => {
                    at += offset;
                    escaped = body[at] == b'\\';
                    in_string = escaped;
                    at += 1;
                    continue;
                }
                None => return None,
            }
        }
        let byte = body[at];
        at += 1;
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => index += 1,
            b'-' | b'0'..=b'9' => {
                let start = at - 1;
                while at < body.len()
                    && matches!(body[at], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    at += 1;
                }
                let literal = &body[start..at];
                // 19 digits always fit; only longer integers can overflow.
                if literal.len() >= 19 && !literal.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) {
                    let text = String::from_utf8_lossy(literal);
                    let fits = if text.starts_with('-') {
                        text.parse::<i64>().is_ok()
                    } else {
                        text.parse::<u64>().is_ok()
                    };
                    if !fits {
                        return Some((index, text.into_owned()));
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// The fewest digits of an integer literal beyond `i64`/`u64`:
/// `-9223372036854775809` has 19, and 18 always fit.
const INEXACT_DIGITS: usize = 19;

/// Whether `body` holds `run` ASCII digits in a row anywhere (in strings
/// too): [`first_inexact_integer`]'s cheap first look, since a literal
/// beyond 64 bits has at least [`INEXACT_DIGITS`]. Any such run covers
/// one of the bytes `run - 1`, `2 * run - 1`, ..., so only those are
/// looked at, and a run is measured only around a digit found there.
fn has_digit_run(body: &[u8], run: usize) -> bool {
    let mut at = run - 1;
    while at < body.len() {
        if body[at].is_ascii_digit() {
            let before = body[..at]
                .iter()
                .rev()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let after = body[at + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if before + 1 + after >= run {
                return true;
            }
        }
        at += run;
    }
    false
}

fn encodable(at: SystemTime) -> bool {
    const RFC3339_MAX_SECS: u64 = 253_402_300_800;
    at.duration_since(UNIX_EPOCH)
        .is_ok_and(|since| since.as_secs() < RFC3339_MAX_SECS)
}

/// `noun` names what the path leads to: a `field` of the core's JSON, an
/// `attribute` of a CloudEvent.
fn from_slice<'a, T: serde::Deserialize<'a>>(body: &'a [u8], noun: &str) -> Result<T, ApiError> {
    // Plain serde_json accepts exactly what the tracked parse below does;
    // only a body that fails pays for tracking the path to name where. The
    // body's UTF-8 is checked once here, so the parse need not check each
    // string again (`from_slice` does: ~15 % of decoding a batch).
    if let Ok(Ok(value)) = std::str::from_utf8(body).map(serde_json::from_str) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|error| describe(error, noun))?;
    deserializer
        .end()
        .map_err(|error| ApiError::bad_request(format!("malformed json: {error}")))?;
    Ok(value)
}

/// `event 2: field `circle_id`: invalid type: ...` for data errors,
/// `malformed json: ...` for syntax errors.
fn describe(error: serde_path_to_error::Error<serde_json::Error>, noun: &str) -> ApiError {
    let inner = error.inner();
    if inner.is_syntax() || inner.is_eof() || inner.is_io() {
        return ApiError::bad_request(format!("malformed json: {inner}"));
    }
    let mut index = None;
    let mut fields = Vec::new();
    for segment in error.path().iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index: i }
                if index.is_none() && fields.is_empty() =>
            {
                index = Some(*i)
            }
            other => fields.push(other.to_string()),
        }
    }
    let mut message = String::new();
    if let Some(index) = index {
        message.push_str(&format!("event {index}: "));
    }
    let field = fields.join(".").trim_start_matches('.').to_owned();
    let text = strip_position(&inner.to_string());
    if field.is_empty() || field == "?" {
        message.push_str(&text);
    } else {
        message.push_str(&format!("{noun} `{field}`: {text}"));
    }
    ApiError::bad_request(message)
}

/// serde_json appends " at line L column C"; the path says more.
fn strip_position(text: &str) -> String {
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// A plain recursive reading of valid JSON: the first integer literal
    /// beyond 64 bits, and the index of the top-level array item holding
    /// it (0 outside an array). The slow, obvious twin of
    /// `first_inexact_integer`.
    fn inexact_by_reading(body: &[u8]) -> Option<(usize, String)> {
        struct Reader<'a> {
            body: &'a [u8],
            at: usize,
        }
        impl Reader<'_> {
            fn peek(&mut self) -> u8 {
                while self.body[self.at].is_ascii_whitespace() {
                    self.at += 1;
                }
                self.body[self.at]
            }
            fn string(&mut self) {
                self.at += 1;
                loop {
                    match self.body[self.at] {
                        b'\\' => self.at += 2,
                        b'"' => break self.at += 1,
                        _ => self.at += 1,
                    }
                }
            }
            /// Reads a value; the first inexact literal in it.
            fn value(&mut self) -> Option<String> {
                match self.peek() {
                    open @ (b'[' | b'{') => {
                        self.at += 1;
                        let close = if open == b'[' { b']' } else { b'}' };
                        let mut found = None;
                        while self.peek() != close {
                            if open == b'{' {
                                self.string();
                                self.peek();
                                self.at += 1; // ':'
                            }
                            let inner = self.value();
                            found = found.or(inner);
                            if self.peek() == b',' {
                                self.at += 1;
                            }
                        }
                        self.at += 1;
                        found
                    }
                    b'"' => {
                        self.string();
                        None
                    }
                    b't' | b'n' => {
                        self.at += 4;
                        None
                    }
                    b'f' => {
                        self.at += 5;
                        None
                    }
                    _ => {
                        let start = self.at;
                        while self.at < self.body.len()
                            && b"+-.eE0123456789".contains(&self.body[self.at])
                        {
                            self.at += 1;
                        }
                        let text = std::str::from_utf8(&self.body[start..self.at]).unwrap();
                        let integer = !text.contains(['.', 'e', 'E']);
                        let fits = text.parse::<i64>().is_ok() || text.parse::<u64>().is_ok();
                        (integer && !fits).then(|| text.to_owned())
                    }
                }
            }
        }
        let mut reader = Reader { body, at: 0 };
        if reader.peek() != b'[' {
            return reader.value().map(|literal| (0, literal));
        }
        reader.at += 1;
        let mut index = 0;
        while reader.peek() != b']' {
            if let Some(literal) = reader.value() {
                return Some((index, literal));
            }
            if reader.peek() == b',' {
                reader.at += 1;
                index += 1;
            }
        }
        None
    }

    const NUMBERS: &[&str] = &[
        "0",
        "-7",
        "42",
        "3.25",
        "1e3",
        "-2.5E-3",
        "922337203685477580",
        "9223372036854775807",
        "-9223372036854775808",
        "-9223372036854775809",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999",
        "123456789012345678901234567890",
        "-123456789012345678901234567890",
        "12345678901234567890.5",
        "12345678901234567890e2",
        "1234567890123456789E-2",
    ];

    fn random_json(next: &mut impl FnMut() -> u64, depth: u32, out: &mut String) {
        let space = |next: &mut dyn FnMut() -> u64, out: &mut String| {
            out.push_str(["", " ", "\n  ", "\t"][(next() % 4) as usize]);
        };
        let kinds = if depth >= 3 { 3 } else { 5 };
        match next() % kinds {
            0 => out.push_str(NUMBERS[(next() % NUMBERS.len() as u64) as usize]),
            1 => random_string(next, out),
            2 => out.push_str(["true", "false", "null"][(next() % 3) as usize]),
            kind => {
                let array = kind == 3;
                out.push(if array { '[' } else { '{' });
                for item in 0..next() % 4 {
                    if item > 0 {
                        out.push(',');
                    }
                    space(next, out);
                    if !array {
                        random_string(next, out);
                        out.push(':');
                        space(next, out);
                    }
                    random_json(next, depth + 1, out);
                    space(next, out);
                }
                out.push(if array { ']' } else { '}' });
            }
        }
    }

    /// Strings with what could mislead a byte scanner: long digit runs,
    /// escaped quotes and backslashes, brackets and commas.
    fn random_string(next: &mut impl FnMut() -> u64, out: &mut String) {
        out.push('"');
        for _ in 0..next() % 5 {
            out.push_str(
                [
                    "a",
                    "12345678901234567890123",
                    "99",
                    "\\\"",
                    "\\\\",
                    "\\u0041",
                    "[{,}]",
                    "-",
                    "é",
                ][(next() % 9) as usize],
            );
        }
        out.push('"');
    }

    #[test]
    fn first_inexact_integer_agrees_with_a_plain_reading() {
        // A scan that stops advancing fails the test instead of hanging it.
        let _deadline = agentbus_testkit::deadline::deadline();
        let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
        let mut found = 0;
        for _ in 0..20_000 {
            let mut body = String::new();
            // Mostly arrays of events, as the API gets them.
            if next().is_multiple_of(4) {
                random_json(&mut next, 0, &mut body);
            } else {
                body.push('[');
                for item in 0..1 + next() % 4 {
                    if item > 0 {
                        body.push_str(", ");
                    }
                    random_json(&mut next, 1, &mut body);
                }
                body.push(']');
            }
            assert!(
                serde_json::from_str::<serde_json::Value>(&body).is_ok(),
                "not JSON: {body}"
            );
            let array = body.starts_with('[');
            let fast = first_inexact_integer(body.as_bytes());
            let plain = inexact_by_reading(body.as_bytes());
            // Outside a top-level array the index is never shown.
            let shown = |found: Option<(usize, String)>| {
                found.map(|(index, literal)| (if array { index } else { 0 }, literal))
            };
            found += usize::from(plain.is_some());
            assert_eq!(shown(fast), shown(plain), "{body}");
        }
        assert!(found > 1_000, "only {found} bodies held an inexact integer");
    }

    #[test]
    fn a_digit_run_is_found_wherever_it_is() {
        let _deadline = agentbus_testkit::deadline::deadline();
        let mut next = xorshift(0x2545_F491_4F6C_DD1D);
        for _ in 0..20_000 {
            let body: Vec<u8> = (0..next() % 60)
                .map(|_| if next().is_multiple_of(5) { b'x' } else { b'7' })
                .collect();
            let run = 1 + (next() % 24) as usize;
            let plain = body
                .windows(run)
                .any(|window| window.iter().all(u8::is_ascii_digit));
            assert_eq!(
                has_digit_run(&body, run),
                plain,
                "{} / run {run}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    #[test]
    fn percent_escapes_are_decoded_and_broken_ones_refused() {
        let _deadline = agentbus_testkit::deadline::deadline();
        for (text, decoded) in [
            ("plain", Some("plain")),
            ("a%20b", Some("a b")),
            ("%41%42c", Some("ABc")),
            ("%c3%A9t%C3%A9", Some("été")),
            ("100%25", Some("100%")),
            ("%", None),
            ("%4", None),
            ("ab%4", None),
            ("%zz", None),
            ("%+1", None),
            ("%FF", None),
        ] {
            assert_eq!(percent_decode(text).as_deref(), decoded, "{text}");
        }
    }
}
