//! Serde helpers shared by the wire types: values written as strings and
//! parsed back with `FromStr`, and RFC 3339 timestamps.

use std::fmt::{self, Display};
use std::marker::PhantomData;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserializer, Serializer};

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

/// Writes `at` as RFC 3339 UTC with nanoseconds; an error, not a panic, for
/// times before 1970 or after 9999.
pub(crate) fn serialize_timestamp<S: Serializer>(
    at: &SystemTime,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::Error;
    match at.duration_since(UNIX_EPOCH) {
        Ok(since) if since.as_secs() < RFC3339_MAX_SECS => {
            serializer.collect_str(&humantime::format_rfc3339_nanos(*at))
        }
        _ => Err(S::Error::custom(
            "timestamp outside 1970-01-01..=9999-12-31 cannot be written as rfc 3339",
        )),
    }
}

/// An RFC 3339 UTC timestamp on the wire.
pub(crate) struct Rfc3339(pub(crate) SystemTime);

impl FromStr for Rfc3339 {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        humantime::parse_rfc3339(text)
            .map(Rfc3339)
            .map_err(|err| format!("invalid timestamp: {err}"))
    }
}
