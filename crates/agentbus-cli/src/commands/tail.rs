//! `agentbus tail`: a coloured live view over the WebSocket.

use std::io::Write;
use std::time::Duration;

use agentbus::Redacted;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, http::HeaderValue, Message};

use agentbus_web::{CloudEvent, SequencedEvent};

use crate::client::{ApiClient, ServerArgs};
use crate::error::CommandError;
use crate::filter::FilterArgs;
use crate::render::{ColorChoice, Palette};
use crate::wire_format::WireFormat;

/// Arguments of `agentbus tail`.
#[derive(Clone, Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    agentbus tail                                  # everything, live\n  \
    agentbus tail --type task.failed,system.error  # only failures\n  \
    agentbus tail --circle 5 --after 0             # circle 5 from the first stored event, then live")]
pub struct TailArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub filter: FilterArgs,

    /// Start after this store sequence: catch up from the store, then live.
    #[arg(long, value_name = "SEQ")]
    pub after: Option<u64>,

    /// Exit after this many events.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,

    /// One JSON object per line instead of coloured text.
    #[arg(long)]
    pub json: bool,

    /// `cloudevents`: print each event as one CloudEvents 1.0 JSON line
    /// (`?format=cloudevents`), colourless like `--json`.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = WireFormat::Json)]
    pub format: WireFormat,

    /// Exit with an error when the connection drops, instead of reconnecting
    /// and resuming after the last sequence seen.
    #[arg(long)]
    pub no_reconnect: bool,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub server: ServerArgs,
}

/// Runs `agentbus tail` until Ctrl-C, `--count` events, or (with
/// `--no-reconnect`) a lost connection.
pub(crate) async fn run(args: TailArgs, color: ColorChoice) -> Result<(), CommandError> {
    tokio::select! {
        result = follow(&args, color) => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

async fn follow(args: &TailArgs, color: ColorChoice) -> Result<(), CommandError> {
    let client = ApiClient::new(&args.server)?;
    let palette = Palette::stdout(color);
    let notes = Palette::stderr(color);
    let mut last_sequence = args.after;
    let mut shown = 0u64;
    let mut connected_once = false;
    let mut backoff = Duration::from_millis(250);
    if args.count == Some(0) {
        return Ok(());
    }
    loop {
        let mut query = args.filter.query();
        if let Some(after) = last_sequence {
            query.push(("after", after.to_string()));
        }
        if args.format == WireFormat::Cloudevents {
            query.push(("format", "cloudevents".to_owned()));
        }
        let url = client.websocket_url("ws", &query);
        let connected = connect(&client, url.as_str()).await;
        let mut socket = match connected {
            Ok(socket) => socket,
            Err(tungstenite::Error::Http(response)) => {
                let body = response
                    .body()
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                let message = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|value| value["error"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| body.trim().to_owned());
                return Err(CommandError::Refused {
                    url: Redacted(url.as_str()).to_string(),
                    status: response.status().as_u16(),
                    message,
                });
            }
            Err(source) if !connected_once || args.no_reconnect => {
                return Err(CommandError::Connect {
                    url: Redacted(url.as_str()).to_string(),
                    source: Box::new(source),
                })
            }
            Err(error) => {
                tracing::debug!(%error, "reconnect failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let verb = if connected_once {
            "resumed"
        } else {
            "following"
        };
        note!(
            "{} {} (Ctrl-C to stop)",
            notes.dim(verb),
            Redacted(url.as_str())
        );
        connected_once = true;
        backoff = Duration::from_millis(250);

        let failure = loop {
            let message = match socket.next().await {
                Some(Ok(message)) => message,
                Some(Err(error)) => break Some(error),
                None => break None,
            };
            let text = match message {
                Message::Text(text) => text,
                Message::Close(_) => break None,
                _ => continue,
            };
            let value: serde_json::Value = match serde_json::from_str(&text) {
                Ok(value) => value,
                Err(error) => {
                    tracing::warn!(%error, "the server sent a frame that is not JSON");
                    continue;
                }
            };
            if let Some(missed) = value.get("lagged").and_then(serde_json::Value::as_u64) {
                note!(
                    "{}",
                    notes.warning(&format!(
                        "missed {missed} events: this terminal is too slow"
                    ))
                );
                continue;
            }
            let decoded = match args.format {
                WireFormat::Json => serde_json::from_value::<SequencedEvent>(value.clone())
                    .map(|stored| (stored.event, stored.sequence)),
                WireFormat::Cloudevents => serde_json::from_value::<CloudEvent>(value.clone())
                    .map(|cloud| (cloud.event, cloud.sequence)),
            };
            let (event, sequence) = match decoded {
                Ok(stored) => stored,
                Err(error) => {
                    tracing::warn!(%error, "the server sent a frame that is not an event");
                    continue;
                }
            };
            if sequence.is_some() {
                last_sequence = sequence;
            }
            let line = if args.json || args.format == WireFormat::Cloudevents {
                value.to_string()
            } else {
                palette.event_line(&event, sequence)
            };
            let mut stdout = std::io::stdout().lock();
            if writeln!(stdout, "{line}")
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return Ok(());
            }
            shown += 1;
            if args.count.is_some_and(|count| shown >= count) {
                return Ok(());
            }
        };
        if args.no_reconnect {
            return Err(CommandError::Lost {
                url: Redacted(url.as_str()).to_string(),
                source: failure.map(Box::new),
            });
        }
        let resume = match last_sequence {
            Some(sequence) => format!("; resuming after sequence {sequence}"),
            None => {
                "; events published meanwhile are missed (no sequences: the server has no store)"
                    .to_owned()
            }
        };
        note!("{}", notes.warning(&format!("connection lost{resume}")));
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(client: &ApiClient, url: &str) -> Result<Socket, tungstenite::Error> {
    let mut request = url.into_client_request()?;
    if let Some(authorization) = client.authorization() {
        let value = HeaderValue::from_str(&authorization)
            .map_err(|error| tungstenite::Error::HttpFormat(error.into()))?;
        request.headers_mut().insert("authorization", value);
    }
    let (socket, _response) = tokio_tungstenite::connect_async(request).await?;
    Ok(socket)
}
