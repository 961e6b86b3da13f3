//! The `Host` and `Origin` checks: what keeps foreign web pages out.
//!
//! A page on another site can make the user's browser open a WebSocket or
//! send requests to `127.0.0.1` (the browser adds `Origin`), or point a
//! name it controls at `127.0.0.1` after the page has loaded (DNS
//! rebinding: the browser then sends that name as `Host`). Browsers always
//! send the real `Host`, and send `Origin` on every cross-origin request
//! and every WebSocket handshake, so both are checked on every route.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The local address of the connection a request came in on; [`Serve`](crate::Serve)
/// adds it to every request, so the address the server listens on passes
/// the `Host` check.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LocalAddr(pub(crate) SocketAddr);

/// The hosts and origins let in beyond the defaults, normalized once.
#[derive(Clone, Debug, Default)]
pub(crate) struct Allowed {
    /// `host` (any port) or `host:port`, lowercase.
    pub(crate) hosts: Vec<String>,
    /// `scheme://host[:port]`, lowercase, without a default port.
    pub(crate) origins: Vec<String>,
}

impl Allowed {
    pub(crate) fn host(entry: &str) -> String {
        entry.trim().trim_end_matches('/').to_ascii_lowercase()
    }

    pub(crate) fn origin(entry: &str) -> String {
        let entry = entry.trim().trim_end_matches('/');
        match Origin::parse(entry) {
            Some(origin) => origin.normalized(),
            None => entry.to_ascii_lowercase(),
        }
    }
}

/// How long a browser may cache the answer to a preflight request.
const PREFLIGHT_MAX_AGE_SECS: &str = "600";

/// Refuses (403) a request whose `Host` is not allowed, or whose `Origin`
/// is present and is neither the server's own nor listed. A listed origin
/// gets the CORS headers that let its pages read the reply, and its
/// preflight requests are answered here.
pub(crate) async fn check(
    State(allowed): State<Arc<Allowed>>,
    request: Request,
    next: Next,
) -> Response {
    match verdict(&allowed, &request) {
        Ok(Caller::SameOrigin) => next.run(request).await,
        Ok(Caller::Listed(origin)) => {
            let preflight = request.method() == Method::OPTIONS
                && request
                    .headers()
                    .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
            let mut response = if preflight {
                let mut response = StatusCode::NO_CONTENT.into_response();
                let headers = response.headers_mut();
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, POST"),
                );
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    // With the CloudEvents binary mode's attribute headers.
                    HeaderValue::from_static(
                        "authorization, content-type, last-event-id, traceparent, tracestate, \
                         ce-specversion, ce-id, ce-source, ce-type, ce-time, ce-agentbusproject, \
                         ce-agentbuscorrelation, ce-agentbuscausation, ce-traceparent, ce-tracestate",
                    ),
                );
                headers.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static(PREFLIGHT_MAX_AGE_SECS),
                );
                response
            } else {
                next.run(request).await
            };
            let headers = response.headers_mut();
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(crate::read::NEXT_HEADER),
            );
            headers.append(header::VARY, HeaderValue::from_static("origin"));
            response
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// Who sent a request that passed the checks.
enum Caller {
    /// No `Origin`, or the server's own.
    SameOrigin,
    /// A page of a listed origin (the `Origin` header's value).
    Listed(HeaderValue),
}

fn verdict(allowed: &Allowed, request: &Request) -> Result<Caller, ApiError> {
    let local = request
        .extensions()
        .get::<LocalAddr>()
        .map(|local| local.0.ip());
    let host = match request.headers().get(header::HOST) {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| forbidden_host("(not visible ascii)"))?,
        ),
        None => request
            .uri()
            .authority()
            .map(|authority| authority.as_str()),
    };
    // Without a `Host` (HTTP/1.0) the request cannot come from a browser.
    let host = match host {
        Some(host) => {
            let parsed = HostPort::parse(host).ok_or_else(|| forbidden_host(host))?;
            if !host_allowed(allowed, &parsed, local) {
                return Err(forbidden_host(host));
            }
            Some(parsed)
        }
        None => None,
    };
    let Some(origin) = request.headers().get(header::ORIGIN) else {
        return Ok(Caller::SameOrigin);
    };
    let text = origin
        .to_str()
        .map_err(|_| forbidden_origin("(not visible ascii)"))?;
    let Some(parsed) = Origin::parse(text) else {
        return Err(forbidden_origin(text));
    };
    let own = host.is_some_and(|host| {
        host.name == parsed.host.name
            && host.port.or(parsed.default_port()) == parsed.port_or_default()
    });
    if own {
        Ok(Caller::SameOrigin)
    } else if allowed.origins.contains(&parsed.normalized()) {
        Ok(Caller::Listed(origin.clone()))
    } else {
        Err(forbidden_origin(text))
    }
}

fn host_allowed(allowed: &Allowed, host: &HostPort, local: Option<IpAddr>) -> bool {
    let name = host.name.trim_end_matches('.');
    if name == "localhost" {
        return true;
    }
    if let Ok(ip) = name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        // A rebinding page's `Host` is a name it controls, never an
        // address; the loopback, the listening address and the unspecified
        // one a server bound to `0.0.0.0` prints are this server.
        if ip.is_loopback() || ip.is_unspecified() || Some(ip) == local {
            return true;
        }
    }
    allowed
        .hosts
        .iter()
        .any(|entry| match HostPort::parse(entry) {
            Some(HostPort {
                name: listed,
                port: None,
            }) => listed == host.name,
            Some(listed) => listed == *host,
            None => false,
        })
}

fn forbidden_host(host: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        format!(
            "host `{host}` is not allowed: use a loopback address or the address the server listens on, or list the name with `--allow-host` (`WebApi::allowed_hosts`)"
        ),
    )
}

fn forbidden_origin(origin: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        format!(
            "origin `{origin}` is not allowed: only this server's own pages and the origins listed with `--allow-origin` (`WebApi::allowed_origins`) may call it"
        ),
    )
}

/// A `Host` value: a lowercase name (`[...]` kept around IPv6) and a port.
#[derive(Debug, PartialEq, Eq)]
struct HostPort {
    name: String,
    port: Option<u16>,
}

impl HostPort {
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        let (name, port) = if text.starts_with('[') {
            let end = text.find(']')?;
            match &text[end + 1..] {
                "" => (text[..=end].to_owned(), None),
                rest => (
                    text[..=end].to_owned(),
                    Some(rest.strip_prefix(':')?.parse().ok()?),
                ),
            }
        } else {
            match text.rsplit_once(':') {
                Some((name, port)) => (name.to_owned(), Some(port.parse().ok()?)),
                None => (text, None),
            }
        };
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
        valid.then_some(Self { name, port })
    }
}

/// An `Origin` value: `scheme://host[:port]`.
struct Origin {
    scheme: String,
    host: HostPort,
}

impl Origin {
    fn parse(text: &str) -> Option<Self> {
        let (scheme, rest) = text.split_once("://")?;
        if scheme.is_empty() || rest.contains('/') {
            return None;
        }
        Some(Self {
            scheme: scheme.to_ascii_lowercase(),
            host: HostPort::parse(rest)?,
        })
    }

    fn default_port(&self) -> Option<u16> {
        match self.scheme.as_str() {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        }
    }

    fn port_or_default(&self) -> Option<u16> {
        self.host.port.or(self.default_port())
    }

    fn normalized(&self) -> String {
        match self.port_or_default() {
            Some(port) if Some(port) != self.default_port() => {
                format!("{}://{}:{port}", self.scheme, self.host.name)
            }
            _ => format!("{}://{}", self.scheme, self.host.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The listening address passes only on the connection that came in on
    /// it (tests reach no other interface than the loopback).
    #[test]
    fn the_listening_address_is_accepted_as_host() {
        let allowed = Allowed::default();
        let host = HostPort::parse("10.0.0.5:7878").unwrap();
        let local = "10.0.0.5".parse().ok();
        assert!(host_allowed(&allowed, &host, local));
        assert!(!host_allowed(&allowed, &host, None));
        assert!(!host_allowed(&allowed, &host, "10.0.0.6".parse().ok()));
        let v6 = HostPort::parse("[fd00::5]:7878").unwrap();
        assert!(host_allowed(&allowed, &v6, "fd00::5".parse().ok()));
    }

    #[test]
    fn host_values_are_read_or_refused() {
        let read = |text: &str| HostPort::parse(text).map(|host| (host.name, host.port));
        assert_eq!(
            read(" Example.COM:80 "),
            Some(("example.com".into(), Some(80)))
        );
        assert_eq!(read("agent-1.local"), Some(("agent-1.local".into(), None)));
        assert_eq!(read("[::1]:8080"), Some(("[::1]".into(), Some(8080))));
        assert_eq!(read("[::1]"), Some(("[::1]".into(), None)));
        for bad in [
            "",
            ":80",
            "a b",
            "ev!l.example",
            "x:port",
            "x:70000",
            "[::1]x",
            "[::1",
        ] {
            assert_eq!(read(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn origins_are_compared_without_default_ports_or_case() {
        assert_eq!(
            Allowed::origin("HTTPS://App.Example:443/"),
            "https://app.example"
        );
        assert_eq!(
            Allowed::origin("http://app.example:8080"),
            "http://app.example:8080"
        );
        assert_eq!(
            Allowed::origin("http://App.Example:80"),
            "http://app.example"
        );
        assert!(Origin::parse("null").is_none());
        assert!(Origin::parse("https://app.example/path").is_none());
        assert!(Origin::parse("://app.example").is_none());
    }
}
