//! Serde helpers shared by the wire types: values written as strings and
//! parsed back with `FromStr`, and RFC 3339 timestamps.

use std::fmt::{self, Display};
use std::marker::PhantomData;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

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
        humantime::parse_rfc3339(text)
            .map(Rfc3339)
            .map_err(|err| format!("invalid timestamp: {err}"))
    }
}
