//! [`Servers`]: the `url` of [`NatsBridge::connect`](crate::NatsBridge::connect),
//! a server list and the credentials written into it.

use async_nats::{ConnectOptions, ServerAddr};

use crate::error::ConnectError;

/// The servers to try, without credentials, and the credentials apart: the
/// client is handed no URL holding a password, so neither its errors nor
/// its logs (which print server addresses) can show one.
pub(crate) struct Servers {
    pub(crate) addrs: Vec<ServerAddr>,
    credentials: Option<Credentials>,
}

#[derive(PartialEq, Eq)]
enum Credentials {
    UserAndPassword(String, String),
    /// A user without a password is a token, as NATS URLs have it.
    Token(String),
}

impl Servers {
    /// Parses `nats://[user:password@]host[:port]` or `[user:password@]host[:port]`,
    /// or a comma-separated list of them sharing their credentials.
    pub(crate) fn parse(list: &str) -> Result<Self, ConnectError> {
        let mut addrs = Vec::new();
        let mut credentials = None;
        for server in list.split(',').map(str::trim) {
            let mut url = server
                .parse::<ServerAddr>()
                .map_err(ConnectError::Url)?
                .into_inner();
            let user = percent_decoded(url.username());
            let found = match url.password() {
                Some(password) => Some(Credentials::UserAndPassword(
                    user,
                    percent_decoded(password),
                )),
                None if !user.is_empty() => Some(Credentials::Token(user)),
                None => None,
            };
            if let Some(found) = found {
                if credentials.as_ref().is_some_and(|known| *known != found) {
                    return Err(ConnectError::Config(
                        "the servers of a list must share their user and password or token",
                    ));
                }
                credentials = Some(found);
            }
            // Both fail only for URLs that cannot hold credentials, and
            // those have none to remove.
            let _ = url.set_username("");
            let _ = url.set_password(None);
            addrs.push(ServerAddr::from_url(url).map_err(ConnectError::Url)?);
        }
        Ok(Self { addrs, credentials })
    }

    /// `options` authenticating with the list's credentials, if it has any.
    pub(crate) fn authenticate(&self, options: ConnectOptions) -> ConnectOptions {
        match &self.credentials {
            Some(Credentials::UserAndPassword(user, password)) => {
                options.user_and_password(user.clone(), password.clone())
            }
            Some(Credentials::Token(token)) => options.token(token.clone()),
            None => options,
        }
    }
}

/// `%XX` escapes decoded (a URL's user and password are kept escaped).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = (bytes[at] == b'%')
            .then(|| text.get(at + 1..at + 3))
            .flatten()
            .filter(|hex| hex.bytes().all(|byte| byte.is_ascii_hexdigit()))
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                at += 3;
            }
            None => {
                decoded.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use agentbus_testkit::deadline::deadline;

    use super::{percent_decoded, Credentials, Servers};

    /// Escapes decoded wherever they stand, anything else kept byte for
    /// byte, a broken escape (`%` then fewer than two hex digits) kept as
    /// it is. Under a deadline: a decoder that stops advancing spins.
    #[test]
    fn percent_escapes_are_decoded_and_broken_ones_kept() {
        let _deadline = deadline();
        assert_eq!(percent_decoded(""), "");
        assert_eq!(percent_decoded("ann"), "ann");
        assert_eq!(percent_decoded("p%40ss%20word"), "p@ss word");
        assert_eq!(percent_decoded("%41%62c%2f"), "Abc/");
        assert_eq!(percent_decoded("50%"), "50%");
        assert_eq!(percent_decoded("%4"), "%4");
        assert_eq!(percent_decoded("%zz%4g%"), "%zz%4g%");
        assert_eq!(percent_decoded("%%41"), "%A");
    }

    /// Credentials come from the servers of a list that have them; one
    /// without any neither has empty ones nor clashes with the others'.
    #[test]
    fn servers_without_credentials_take_the_lists() {
        let plain = Servers::parse("127.0.0.1:4222").unwrap();
        assert!(plain.credentials.is_none());
        let mixed = Servers::parse("127.0.0.1:4222, nats://tok@127.0.0.1:4223").unwrap();
        assert!(mixed.credentials == Some(Credentials::Token("tok".to_owned())));
        assert_eq!(mixed.addrs.len(), 2);
    }
}
