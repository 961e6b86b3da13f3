//! The client side of the pinned HTTP API, for publish, tail, history,
//! stats and dlq.

use std::borrow::Borrow;
use std::time::Duration;

use agentbus::{Event, EventId, Redacted};
use agentbus_web::{
    CloudEvent, DeadLetterReply, DeadLettersPage, ErrorReply, EventsPage, PublishReply,
    SequencedEvent, StatsReply,
};
use reqwest::{header, Method, RequestBuilder, StatusCode, Url};
use serde::Serialize;

/// Where the server is and how to authenticate: shared by the client commands.
#[derive(Clone, Debug, clap::Args)]
pub struct ServerArgs {
    /// Base URL of a running `agentbus serve` (plain http).
    #[arg(
        long,
        env = "AGENTBUS_URL",
        hide_env_values = true,
        default_value = "http://127.0.0.1:7878",
        value_parser = crate::redacting_parser::RedactingParser(parse_base_url)
    )]
    pub url: Url,

    /// Bearer token, when the server was started with one.
    #[arg(long, env = "AGENTBUS_TOKEN", hide_env_values = true, value_parser = crate::client::parse_token)]
    pub token: Option<String>,
}

/// Checks that a bearer token can travel in an HTTP header: visible ASCII,
/// no spaces, not empty.
pub(crate) fn parse_token(text: &str) -> Result<String, String> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err("a token must be visible ASCII characters without spaces".to_owned());
    }
    Ok(text.to_owned())
}

/// Checks that `text` is an `http://` URL and makes its path a directory, so
/// that `api/events` joins under it.
pub(crate) fn parse_base_url(text: &str) -> Result<Url, String> {
    let mut url = Url::parse(text).map_err(|error| format!("not a URL: {error}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "unsupported scheme {:?}: agentbus speaks plain http (put a TLS proxy in front for remote use)",
            url.scheme()
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// A failed call to the server's HTTP API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Build(#[source] reqwest::Error),
    /// The request did not get an answer: refused, reset or timed out.
    #[error("cannot reach {url}")]
    Unreachable {
        /// The URL called, its secrets redacted.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("{url} answered {status}: {message}")]
    Status {
        /// The URL called, its secrets redacted.
        url: String,
        /// The HTTP status.
        status: StatusCode,
        /// The `error` field of the JSON answer, or the body as text.
        message: String,
    },
    /// The answer was not the JSON the API promises.
    #[error("unexpected answer from {url}")]
    Decode {
        /// The URL called, its secrets redacted.
        url: String,
        /// Why it did not decode.
        #[source]
        source: reqwest::Error,
    },
}

/// `url` for an error message: without its password (reqwest's own
/// errors would show it, hence their `without_url`).
fn shown(url: &Url) -> String {
    Redacted(url.as_str()).to_string()
}

/// A client of one server's HTTP API.
#[derive(Clone, Debug)]
pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl ApiClient {
    /// A client for the server `args` names. Connecting takes at most 5 s;
    /// a request at most 60 s.
    pub fn new(args: &ServerArgs) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .no_proxy()
            .build()
            .map_err(ClientError::Build)?;
        Ok(Self {
            http,
            base: args.url.clone(),
            token: args.token.clone(),
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The absolute URL of `path` (relative, e.g. `"api/events"`).
    pub fn endpoint(&self, path: &str) -> Url {
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    /// The `ws://` URL of `path` with `query`, for the WebSocket endpoint.
    pub fn websocket_url(&self, path: &str, query: &[(&str, String)]) -> Url {
        let mut url = self.endpoint(path);
        // Both schemes are special with the same default port, so this cannot fail.
        let _ = url.set_scheme("ws");
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// The `Authorization` header value, when a token is configured.
    pub fn authorization(&self) -> Option<String> {
        self.token.as_ref().map(|token| format!("Bearer {token}"))
    }

    fn request(&self, method: Method, url: &Url) -> RequestBuilder {
        let request = self.http.request(method, url.clone());
        match self.authorization() {
            Some(value) => request.header(header::AUTHORIZATION, value),
            None => request,
        }
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        url: Url,
        request: RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: shown(&url),
                source: source.without_url(),
            })?;
        if !response.status().is_success() {
            return Err(status_error(&url, response).await);
        }
        response.json().await.map_err(|source| ClientError::Decode {
            url: shown(&url),
            source: source.without_url(),
        })
    }

    /// `GET /api/health`: succeeds when the server answers `{"status":"ok"}`.
    pub async fn health(&self) -> Result<(), ClientError> {
        let url = self.endpoint("api/health");
        let _: serde_json::Value = self
            .call(url.clone(), self.request(Method::GET, &url))
            .await?;
        Ok(())
    }

    /// `POST /api/events` with `events` as one JSON array; resolves once the
    /// server has published them (and, with a store, made them durable).
    pub async fn publish<E: Borrow<Event> + Serialize>(
        &self,
        events: &[E],
    ) -> Result<PublishReply, ClientError> {
        let url = self.endpoint("api/events");
        let request = self.request(Method::POST, &url).json(events);
        self.call(url, request).await
    }

    /// `POST /api/events` with `events` as CloudEvents: one event in
    /// structured mode (`application/cloudevents+json`), more as a batch
    /// (`application/cloudevents-batch+json`).
    pub async fn publish_cloudevents(&self, events: &[Event]) -> Result<PublishReply, ClientError> {
        let url = self.endpoint("api/events");
        let cloud: Vec<CloudEvent> = events.iter().cloned().map(CloudEvent::new).collect();
        let (media, body) = match cloud.as_slice() {
            [one] => ("application/cloudevents+json", serde_json::to_vec(one)),
            many => (
                "application/cloudevents-batch+json",
                serde_json::to_vec(many),
            ),
        };
        // Only a timestamp outside 1970..=9999 fails to encode; the server
        // refuses such an event just the same.
        let body = body.unwrap_or_default();
        let request = self
            .request(Method::POST, &url)
            .header(header::CONTENT_TYPE, media)
            .body(body);
        self.call(url, request).await
    }

    /// `GET /api/events` with `query`.
    pub async fn events(&self, query: &[(&str, String)]) -> Result<EventsPage, ClientError> {
        let url = self.endpoint("api/events");
        let request = self.request(Method::GET, &url).query(query);
        self.call(url, request).await
    }

    /// `GET /api/events/{id}`: the event, or `None` when the server does not know it.
    pub async fn event(&self, id: EventId) -> Result<Option<SequencedEvent>, ClientError> {
        let url = self.endpoint(&format!("api/events/{id}"));
        match self
            .call(url.clone(), self.request(Method::GET, &url))
            .await
        {
            Ok(event) => Ok(Some(event)),
            Err(ClientError::Status { status, .. }) if status == StatusCode::NOT_FOUND => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `GET /api/stats`, as the JSON the server sends.
    pub async fn stats(&self) -> Result<StatsReply, ClientError> {
        let url = self.endpoint("api/stats");
        self.call(url.clone(), self.request(Method::GET, &url))
            .await
    }

    /// `GET /api/dead-letters` with `query`.
    pub async fn dead_letters(
        &self,
        query: &[(&str, String)],
    ) -> Result<DeadLettersPage, ClientError> {
        let url = self.endpoint("api/dead-letters");
        let request = self.request(Method::GET, &url).query(query);
        self.call(url, request).await
    }

    /// `GET /api/dead-letters/{id}`: the dead letter, or `None` when the
    /// server has none with that id.
    pub async fn dead_letter(&self, id: u64) -> Result<Option<DeadLetterReply>, ClientError> {
        let url = self.endpoint(&format!("api/dead-letters/{id}"));
        not_found_is_none(
            self.call(url.clone(), self.request(Method::GET, &url))
                .await,
        )
    }

    /// `POST /api/dead-letters/{id}/redrive`: `Some(())` once delivered,
    /// `None` when the server has no dead letter with that id.
    pub async fn redrive(&self, id: u64) -> Result<Option<()>, ClientError> {
        let url = self.endpoint(&format!("api/dead-letters/{id}/redrive"));
        let reply: Option<serde_json::Value> = not_found_is_none(
            self.call(url.clone(), self.request(Method::POST, &url))
                .await,
        )?;
        Ok(reply.map(drop))
    }

    /// `DELETE /api/dead-letters/{id}`: `true` if it was there.
    pub async fn discard(&self, id: u64) -> Result<bool, ClientError> {
        let url = self.endpoint(&format!("api/dead-letters/{id}"));
        let response = self
            .request(Method::DELETE, &url)
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: shown(&url),
                source: source.without_url(),
            })?;
        match response.status() {
            StatusCode::NO_CONTENT => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(status_error(&url, response).await),
        }
    }
}

/// The error for a response that is not a success: its status and the
/// server's JSON `error` (or its body as text).
async fn status_error(url: &Url, response: reqwest::Response) -> ClientError {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<ErrorReply>(&body)
        .map(|body| body.error)
        .unwrap_or_else(|_| body.trim().to_owned());
    ClientError::Status {
        url: shown(url),
        status,
        message,
    }
}

/// A 404 as `None`.
fn not_found_is_none<T>(result: Result<T, ClientError>) -> Result<Option<T>, ClientError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(ClientError::Status { status, .. }) if status == StatusCode::NOT_FOUND => Ok(None),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentbus::EventType;

    #[test]
    fn base_urls_become_directories_and_https_is_refused() {
        let url = parse_base_url("http://127.0.0.1:7878/bus?x=1").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:7878/bus/");
        assert!(parse_base_url("https://example.org").is_err());
        assert!(parse_base_url("not a url").is_err());
    }

    #[test]
    fn websocket_urls_keep_the_path_and_add_the_query() {
        let args = ServerArgs {
            url: parse_base_url("http://127.0.0.1:9/bus").unwrap(),
            token: None,
        };
        let client = ApiClient::new(&args).unwrap();
        let url = client.websocket_url(
            "ws",
            &[("type", "task.completed".into()), ("after", "7".into())],
        );
        assert_eq!(
            url.as_str(),
            "ws://127.0.0.1:9/bus/ws?type=task.completed&after=7"
        );
    }

    #[test]
    fn a_sequenced_event_decodes_with_and_without_its_sequence() {
        let event = Event::new(EventType::MemoryShared).with_circle(5);
        let mut json = serde_json::to_value(&event).unwrap();
        let plain: SequencedEvent = serde_json::from_value(json.clone()).unwrap();
        assert_eq!((plain.event.clone(), plain.sequence), (event.clone(), None));
        json["sequence"] = 12.into();
        let stored: SequencedEvent = serde_json::from_value(json).unwrap();
        assert_eq!((stored.event, stored.sequence), (event, Some(12)));
    }
}
