//! [`RedactingParser`]: argument values that may hold a password.

use std::ffi::OsStr;

use agentbus::Redacted;
use clap::builder::TypedValueParser;
use clap::error::ErrorKind;

/// A clap value parser for a location (`--store`, `--url`): clap's own
/// echoes a rejected value in the usage error, password included; this
/// one shows it [`Redacted`].
#[derive(Clone)]
pub(crate) struct RedactingParser<F>(pub(crate) F);

impl<T, F> TypedValueParser for RedactingParser<F>
where
    F: Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    type Value = T;

    fn parse_ref(
        &self,
        command: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let invalid = |shown: &dyn std::fmt::Display, reason: &str| {
            let arg = arg.map_or_else(|| "...".to_owned(), ToString::to_string);
            clap::Error::raw(
                ErrorKind::ValueValidation,
                format!("invalid value '{shown}' for '{arg}': {reason}\n"),
            )
            .with_cmd(command)
        };
        let text = value
            .to_str()
            .ok_or_else(|| invalid(&"(not UTF-8)", "not UTF-8"))?;
        (self.0)(text).map_err(|reason| invalid(&Redacted(text), &reason))
    }
}
