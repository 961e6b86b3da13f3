//! [`Redacted`]: a location string fit for a log line or an error message.

use std::fmt;

/// Shows a location string (a store, a NATS server or list of servers, a
/// server URL) with every secret it holds replaced by `***`: the one way the
/// agentbus crates print a location in a log line or an error message.
///
/// A location is shown as given except for:
///
/// - **a URL's password**: `scheme://user:PASSWORD@host` shows as
///   `scheme://user:***@host`. The user information ends at the *last* `@`
///   before the query, so a password holding `@`, `/` or `:` is hidden
///   whole;
/// - **a URL's user without a password**, which NATS takes as a token
///   (`nats://TOKEN@host` shows as `nats://***@host`), except in a
///   `postgres://` or `postgresql://` URL, where it is the role name;
/// - **secret parameters**: the value of a query parameter (`?password=x`,
///   `&token=x`) or of a PostgreSQL `key=value` pair (`password=x`,
///   `password='x y'`) whose name contains `pass`, `pwd`, `token`, `secret`
///   or `key`, in any case;
/// - **lists**: each URL of a comma-separated list
///   (`nats://a:x@h1,nats://b:y@h2`) is shown by these rules on its own;
/// - **no scheme**: `user:password@host:port` (how NATS also takes a
///   server) is read as a URL's user information and host; a part before the
///   `@` with a `/`, `\` or a space is a path, shown as given.
///
/// `sqlite:PATH`, paths, hosts, ports and database names are never secrets.
/// Formatting allocates nothing; [`Debug`](fmt::Debug) is redacted too.
///
/// ```
/// use agentbus::Redacted;
///
/// let shown = |location: &str| Redacted(location).to_string();
/// assert_eq!(shown("sqlite:./events.db"), "sqlite:./events.db");
/// assert_eq!(shown("postgres://app:hunter2@db:5432/events"), "postgres://app:***@db:5432/events");
/// assert_eq!(shown("postgres://app:p@ss/w0rd@db/events"), "postgres://app:***@db/events");
/// assert_eq!(shown("postgres://app@db/events?password=hunter2&sslmode=disable"),
///            "postgres://app@db/events?password=***&sslmode=disable");
/// assert_eq!(shown("host=db user=app password='hunter 2' dbname=events"),
///            "host=db user=app password=*** dbname=events");
/// assert_eq!(shown("nats://ann:hunter2@h1:4222,nats://TOKEN@h2:4222"),
///            "nats://ann:***@h1:4222,nats://***@h2:4222");
/// assert_eq!(shown("http://ann:hunter2@127.0.0.1:7878/?token=s3cret"),
///            "http://ann:***@127.0.0.1:7878/?token=***");
/// assert_eq!(format!("{:?}", Redacted("nats://ann:hunter2@h1")), r#""nats://ann:***@h1""#);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Redacted<'a>(pub &'a str);

/// What a parameter's name contains when its value is a secret.
const SECRET_NAMES: [&str; 5] = ["pass", "pwd", "token", "secret", "key"];

/// What a secret is shown as.
const MASK: &str = "***";

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        loop {
            let (item, next) = split_list(rest);
            write_item(item, f)?;
            let Some(next) = next else {
                return Ok(());
            };
            f.write_str(",")?;
            rest = next;
        }
    }
}

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// The length of `text`'s leading `scheme://`, if it starts with one.
fn scheme_len(text: &str) -> Option<usize> {
    let end = text.find("://")?;
    let scheme = &text[..end];
    let mut chars = scheme.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_valid = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (starts_with_letter && rest_valid).then_some(end + 3)
}

/// Splits at the first comma that starts another URL (a comma inside a
/// password or between hosts of one URL does not).
fn split_list(text: &str) -> (&str, Option<&str>) {
    let mut from = 0;
    while let Some(offset) = text[from..].find(',') {
        let comma = from + offset;
        let after = &text[comma + 1..];
        if scheme_len(after.trim_start()).is_some() {
            return (&text[..comma], Some(after));
        }
        from = comma + 1;
    }
    (text, None)
}

fn write_item(item: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let body = item.trim_start();
    f.write_str(&item[..item.len() - body.len()])?;
    if body.starts_with("sqlite:") {
        return f.write_str(body);
    }
    if is_key_value(body) {
        return write_key_values(body, f);
    }
    let (scheme, rest) = match scheme_len(body) {
        Some(len) => body.split_at(len),
        None => ("", body),
    };
    f.write_str(scheme)?;
    let query_at = rest.find(['?', '#']).unwrap_or(rest.len());
    let (front, query) = rest.split_at(query_at);
    match front.rfind('@') {
        Some(at) if !scheme.is_empty() || !front[..at].contains(['/', '\\', ' ']) => {
            let is_postgres = scheme.eq_ignore_ascii_case("postgres://")
                || scheme.eq_ignore_ascii_case("postgresql://");
            write_userinfo(&front[..at], is_postgres, f)?;
            f.write_str(&front[at..])?;
        }
        _ => f.write_str(front)?,
    }
    write_parameters(query, f)
}

/// `user:password` as `user:***`; a lone `user` as itself when it names a
/// role (`user_is_a_name`), else as `***` (NATS reads it as a token).
fn write_userinfo(userinfo: &str, user_is_a_name: bool, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match userinfo.split_once(':') {
        Some((user, _password)) => write!(f, "{user}:{MASK}"),
        None if user_is_a_name => f.write_str(userinfo),
        None => f.write_str(MASK),
    }
}

/// A query and fragment (`?a=1&password=x#k=v`), secret values masked.
fn write_parameters(query: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut rest = query;
    while !rest.is_empty() {
        let end = rest[1..]
            .find(['&', ';', '#', '?'])
            .map_or(rest.len(), |at| at + 1);
        let (parameter, next) = rest.split_at(end);
        // `parameter` starts with its separator.
        match parameter[1..].split_once('=') {
            Some((name, _value)) if is_secret_name(name) => {
                write!(f, "{}{name}={MASK}", &parameter[..1])?
            }
            _ => f.write_str(parameter)?,
        }
        rest = next;
    }
    Ok(())
}

fn is_secret_name(name: &str) -> bool {
    let name = name.as_bytes();
    SECRET_NAMES.iter().any(|secret| {
        name.windows(secret.len())
            .any(|window| window.eq_ignore_ascii_case(secret.as_bytes()))
    })
}

/// Whether `text` starts like a PostgreSQL `key=value` string: a keyword,
/// maybe spaces, then `=`.
fn is_key_value(text: &str) -> bool {
    let keyword_len = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    keyword_len > 0 && text[keyword_len..].trim_start().starts_with('=')
}

/// `key = value` pairs (libpq's grammar: a value is single-quoted with `\`
/// escapes, or runs to the next space), secret values masked.
fn write_key_values(text: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut rest = text;
    while !rest.is_empty() {
        let key_start = rest.len() - rest.trim_start().len();
        let after_key = rest[key_start..]
            .find(|c: char| c == '=' || c.is_whitespace())
            .map_or(rest.len(), |at| key_start + at);
        let key = &rest[key_start..after_key];
        let Some(equals) = rest[after_key..].find('=').map(|at| after_key + at) else {
            return f.write_str(rest);
        };
        if !rest[after_key..equals].trim().is_empty() {
            // Not `key = value`: the rest is shown as given.
            return f.write_str(rest);
        }
        let value_start =
            equals + 1 + (rest[equals + 1..].len() - rest[equals + 1..].trim_start().len());
        let value_end = value_start + value_len(&rest[value_start..]);
        f.write_str(&rest[..value_start])?;
        if is_secret_name(key) {
            f.write_str(MASK)?;
        } else {
            f.write_str(&rest[value_start..value_end])?;
        }
        rest = &rest[value_end..];
    }
    Ok(())
}

/// The length of the value at the start of `text`: quoted, or up to the
/// next whitespace; a `\` escapes the next character either way.
fn value_len(text: &str) -> usize {
    let quoted = text.starts_with('\'');
    let mut escaped = false;
    for (at, c) in text.char_indices().skip(usize::from(quoted)) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '\'' if quoted => return at + 1,
            c if !quoted && c.is_whitespace() => return at,
            _ => {}
        }
    }
    text.len()
}
