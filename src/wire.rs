//! Serde helpers shared by the wire types: values written as strings and
//! parsed back with `FromStr`, and RFC 3339 timestamps.

use std::fmt::{self, Display};
use std::marker::PhantomData;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Deserialises a string through `T::from_str`, so the wire form and the
/// `FromStr` form (and their error messages) cannot drift apart.
pub(crate) fn deserialize_parsed<'de, D, T>(
    deserializer: D,
    expecting: &'static str,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    struct Visitor<T>(&'static str, PhantomData<T>);

    impl<T> serde::de::Visitor<'_> for Visitor<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
            text.parse().map_err(E::custom)
        }
    }

    deserializer.deserialize_str(Visitor(expecting, PhantomData))
}

/// The seconds since the epoch past which RFC 3339 needs a five-digit year.
const RFC3339_MAX_SECS: u64 = 253_402_300_800;

/// A timestamp on the wire: RFC 3339 in UTC with nanoseconds
/// (`"2026-11-23T23:54:30.123456789Z"`), so a round trip is exact. The one
/// wire form of every time the crate writes or reads.
///
/// Writing a time before 1970 or after 9999 is an error, not a panic; reading
/// anything else than such a string is an error naming what was expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rfc3339(pub(crate) SystemTime);

impl Rfc3339 {
    /// For `#[serde(serialize_with)]` on a `SystemTime` field.
    pub(crate) fn serialize_time<S: Serializer>(
        at: &SystemTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        Rfc3339(*at).serialize(serializer)
    }
}

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        match self.0.duration_since(UNIX_EPOCH) {
            Ok(since) if since.as_secs() < RFC3339_MAX_SECS => {
                serializer.collect_str(&humantime::format_rfc3339_nanos(self.0))
            }
            _ => Err(S::Error::custom(
                "timestamp outside 1970-01-01..=9999-12-31 cannot be written as rfc 3339",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Rfc3339 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_parsed(
            deserializer,
            "an RFC 3339 UTC timestamp such as \"2026-11-23T23:54:30.123456789Z\"",
        )
    }
}

impl FromStr for Rfc3339 {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(at) = parse_written_form(text) {
            return Ok(Rfc3339(at));
        }
        humantime::parse_rfc3339(text)
            .map(Rfc3339)
            .map_err(|err| format!("invalid timestamp: {err}"))
    }
}

/// The form this crate writes, `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` with nine
/// digits of nanoseconds and every field in its plain range, read without
/// humantime's general loop (a batch of events reads one per event).
/// `None` for anything else, which then goes through
/// `humantime::parse_rfc3339` as before: the same time for what both read
/// (the same calendar arithmetic), and its errors for the rest.
fn parse_written_form(text: &str) -> Option<SystemTime> {
    let b: &[u8; 30] = text.as_bytes().try_into().ok()?;
    if b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || b[29] != b'Z'
    {
        return None;
    }
    let number = |digits: &[u8]| -> Option<u64> {
        digits.iter().try_fold(0u64, |sum, &digit| {
            digit
                .is_ascii_digit()
                .then(|| sum * 10 + u64::from(digit - b'0'))
        })
    };
    let (year, month, day) = (number(&b[0..4])?, number(&b[5..7])?, number(&b[8..10])?);
    let (hour, minute, second) = (
        number(&b[11..13])?,
        number(&b[14..16])?,
        number(&b[17..19])?,
    );
    let nanos = number(&b[20..29])?;
    // Leap seconds, out-of-range fields and years before 1970 are left to
    // humantime, which clamps or refuses them.
    if year < 1970 || !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    const DAYS_BEFORE: [u64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    const DAYS_IN: [u64; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let month = month as usize - 1;
    let days_in_month = DAYS_IN[month] + u64::from(leap && month == 1);
    if day == 0 || day > days_in_month {
        return None;
    }
    let day_of_year = DAYS_BEFORE[month] + day - 1 + u64::from(leap && month > 1);
    let leap_days = (year - 1 - 1968) / 4 - (year - 1 - 1900) / 100 + (year - 1 - 1600) / 400;
    let days = (year - 1970) * 365 + leap_days + day_of_year;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    if seconds >= RFC3339_MAX_SECS {
        return None;
    }
    Some(UNIX_EPOCH + Duration::new(seconds, nanos as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_form_reads_on_the_fast_path_as_the_general_parser_reads_it() {
        for text in [
            "1970-01-01T00:00:00.000000000Z",
            "1972-02-29T23:59:59.999999999Z",
            "1999-12-31T12:34:56.789012345Z",
            "2000-02-29T00:00:00.000000001Z",
            "2000-03-01T00:00:00.000000000Z",
            "2024-03-01T01:02:03.000000004Z",
            "2026-11-23T23:54:30.123456789Z",
            "2100-02-28T10:00:00.500000000Z",
            "2100-03-01T10:00:00.500000000Z",
            "9999-12-31T23:59:59.999999999Z",
        ] {
            let general = humantime::parse_rfc3339(text).unwrap();
            assert_eq!(parse_written_form(text), Some(general), "{text}");
            assert_eq!(text.parse::<Rfc3339>().map(|at| at.0), Ok(general));
            assert_eq!(humantime::format_rfc3339_nanos(general).to_string(), text);
        }
    }

    #[test]
    fn anything_else_goes_to_the_general_parser() {
        for text in [
            "2026-11-23T23:54:30.123456789+00:00",
            "2026-11-23T23:54:30.12345678Z",
            "2026x11-23T23:54:30.123456789Z",
            "2026-11x23T23:54:30.123456789Z",
            "2026-11-23 23:54:30.123456789Z",
            "2026-11-23T23x54:30.123456789Z",
            "2026-11-23T23:54x30.123456789Z",
            "2026-11-23T23:54:30x123456789Z",
            "2026-11-23T23:54:30.123456789z",
            "2026-1a-23T23:54:30.123456789Z",
            "2026-11-23T23:54:30.12345678aZ",
            "1969-12-31T23:59:59.000000000Z",
            "2026-00-01T00:00:00.000000000Z",
            "2026-13-01T00:00:00.000000000Z",
            "2026-01-00T00:00:00.000000000Z",
            "2026-02-29T00:00:00.000000000Z",
            "2026-04-31T00:00:00.000000000Z",
            "2026-01-01T24:00:00.000000000Z",
            "2026-01-01T00:60:00.000000000Z",
            "2016-12-31T23:59:60.000000000Z",
        ] {
            assert_eq!(parse_written_form(text), None, "{text}");
            assert_eq!(
                text.parse::<Rfc3339>().map(|at| at.0).ok(),
                humantime::parse_rfc3339(text).ok(),
                "{text}"
            );
        }
    }
}
