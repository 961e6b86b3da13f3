//! `agentbus publish`: one event, or a file of them in batches.

use std::io::{Read, Write};
use std::path::PathBuf;

use agentbus::{Event, EventId, EventType};
use indicatif::{ProgressBar, ProgressStyle};

use crate::client::{ApiClient, ServerArgs};
use crate::error::CommandError;
use crate::render::{ColorChoice, Palette};
use crate::wire_format::WireFormat;

/// Arguments of `agentbus publish`.
#[derive(Clone, Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    agentbus publish task.completed --data '{\"task_id\": 123}' --circle 5 --agent 1\n  \
    agentbus publish --file events.ndjson        # one event per line, or a JSON array\n  \
    cat events.ndjson | agentbus publish --file -\n  \
    agentbus publish --format cloudevents --file cloudevents.ndjson")]
pub struct PublishArgs {
    /// The event type, e.g. `task.completed`.
    #[arg(
        value_name = "TYPE",
        required_unless_present = "file",
        value_parser = crate::filter::event_type_parser()
    )]
    pub event_type: Option<EventType>,

    /// The payload, as JSON.
    #[arg(long, value_name = "JSON", value_parser = parse_json, conflicts_with = "file")]
    pub data: Option<serde_json::Value>,

    /// The circle the event belongs to.
    #[arg(long, value_name = "ID", conflicts_with = "file")]
    pub circle: Option<i64>,

    /// The agent that triggered the event.
    #[arg(long, value_name = "ID", conflicts_with = "file")]
    pub agent: Option<i64>,

    /// The project the event belongs to.
    #[arg(long, value_name = "ID", conflicts_with = "file")]
    pub project: Option<i64>,

    /// The event whose handling caused this one: it joins that event's causal
    /// chain (fetched from the server for its correlation id).
    #[arg(long, value_name = "EVENT_ID", conflicts_with = "file")]
    pub caused_by: Option<EventId>,

    /// Publish the events of a file instead: one JSON event per line, or one
    /// JSON array; `-` reads stdin.
    #[arg(long, value_name = "PATH", conflicts_with = "event_type")]
    pub file: Option<PathBuf>,

    /// Events per request with `--file`.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,

    /// `cloudevents`: the file holds CloudEvents 1.0 JSON (one per line, or
    /// a batch array), and events are sent as CloudEvents (structured mode
    /// for one, a batch for more).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = WireFormat::Json)]
    pub format: WireFormat,

    /// Print the server's JSON answer instead of a summary.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub server: ServerArgs,
}

fn parse_json(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))
}

/// Runs `agentbus publish`.
pub(crate) async fn run(args: PublishArgs, color: ColorChoice) -> Result<(), CommandError> {
    let client = ApiClient::new(&args.server).map_err(CommandError::Publish)?;
    let palette = Palette::stdout(color);
    match &args.file {
        Some(path) => publish_file(&client, path, &args, palette).await,
        None => publish_one(&client, &args, palette).await,
    }
}

async fn publish_one(
    client: &ApiClient,
    args: &PublishArgs,
    palette: Palette,
) -> Result<(), CommandError> {
    let event_type = args.event_type.expect("clap requires TYPE without --file");
    let mut event = Event::new(event_type);
    if let Some(data) = &args.data {
        event = event.with_data(data.clone());
    }
    if let Some(circle) = args.circle {
        event = event.with_circle(circle);
    }
    if let Some(agent) = args.agent {
        event = event.with_source_agent(agent);
    }
    if let Some(project) = args.project {
        event = event.with_project(project);
    }
    if let Some(cause) = args.caused_by {
        let parent = client
            .event(cause)
            .await
            .map_err(CommandError::Publish)?
            .ok_or(CommandError::UnknownCause(cause))?;
        event = event.caused_by(&parent.event);
    }
    let reply = send(client, std::slice::from_ref(&event), args.format)
        .await
        .map_err(CommandError::Publish)?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(stdout, "{}", reply_json(&reply));
    } else {
        let stored = match reply.sequences.as_deref() {
            Some([Some(sequence), ..]) => format!(" (sequence {sequence})"),
            Some([None, ..]) => " (already stored)".to_owned(),
            _ => String::new(),
        };
        let _ = writeln!(
            stdout,
            "published {} {}{stored}",
            palette.event_type(event.event_type, event.event_type.as_str()),
            reply
                .ids
                .first()
                .map_or_else(|| event.id.to_string(), ToString::to_string),
        );
    }
    Ok(())
}

async fn send(
    client: &ApiClient,
    events: &[Event],
    format: WireFormat,
) -> Result<agentbus_web::PublishReply, crate::client::ClientError> {
    match format {
        WireFormat::Json => client.publish(events).await,
        WireFormat::Cloudevents => client.publish_cloudevents(events).await,
    }
}

/// One event of a file in `format`.
fn decode(json: serde_json::Value, format: WireFormat) -> Result<Event, serde_json::Error> {
    match format {
        WireFormat::Json => serde_json::from_value(json),
        WireFormat::Cloudevents => {
            serde_json::from_value::<agentbus_web::CloudEvent>(json).map(|cloud| cloud.event)
        }
    }
}

fn reply_json(reply: &agentbus_web::PublishReply) -> serde_json::Value {
    serde_json::json!({"ids": reply.ids, "sequences": reply.sequences})
}

/// Reads a file (or stdin) of events: a JSON array, or one event per line
/// (blank lines skipped).
fn read_events(path: &PathBuf, format: WireFormat) -> Result<Vec<Event>, CommandError> {
    let read_error = |source| CommandError::ReadFile {
        path: path.clone(),
        source,
    };
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(read_error)?;
    } else {
        text = std::fs::read_to_string(path).map_err(read_error)?;
    }
    if text.trim_start().starts_with('[') {
        let values: Vec<serde_json::Value> =
            serde_json::from_str(&text).map_err(|source| CommandError::BadEvent {
                path: path.clone(),
                index: 0,
                line: source.line(),
                source,
            })?;
        return values
            .into_iter()
            .enumerate()
            .map(|(index, value)| {
                decode(value, format).map_err(|source| CommandError::BadEvent {
                    path: path.clone(),
                    index,
                    line: 1,
                    source,
                })
            })
            .collect();
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .enumerate()
        .map(|(index, (line, json))| {
            serde_json::from_str(json)
                .and_then(|value| decode(value, format))
                .map_err(|source| CommandError::BadEvent {
                    path: path.clone(),
                    index,
                    line: line + 1,
                    source,
                })
        })
        .collect()
}

async fn publish_file(
    client: &ApiClient,
    path: &PathBuf,
    args: &PublishArgs,
    palette: Palette,
) -> Result<(), CommandError> {
    let events = read_events(path, args.format)?;
    let progress = ProgressBar::new(events.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut published = 0usize;
    let mut sequences: (Option<u64>, Option<u64>) = (None, None);
    let mut already_stored = 0usize;
    for batch in events.chunks(args.batch as usize) {
        let reply = send(client, batch, args.format).await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) => {
                progress.abandon();
                note!(
                    "{published} of {} events were published before the error",
                    events.len()
                );
                return Err(CommandError::Publish(error));
            }
        };
        for sequence in reply.sequences.iter().flatten() {
            match sequence {
                Some(sequence) => {
                    sequences.0 = sequences.0.or(Some(*sequence));
                    sequences.1 = Some(*sequence);
                }
                None => already_stored += 1,
            }
        }
        if args.json {
            say!("{}", reply_json(&reply));
        }
        published += batch.len();
        progress.inc(batch.len() as u64);
    }
    progress.finish_and_clear();
    if !args.json {
        let mut range = match sequences {
            (Some(first), Some(last)) => format!(" (sequences {first}..={last})"),
            _ => String::new(),
        };
        if already_stored > 0 {
            range.push_str(&format!(", {already_stored} already stored"));
        }
        say!(
            "published {} events from {}{range}",
            palette.bold(&published.to_string()),
            path.display()
        );
    }
    Ok(())
}
