//! `agentbus stats`: a running server's counters.

use std::io::Write;

use serde_json::Value;

use crate::client::{ApiClient, ServerArgs};
use crate::error::CommandError;
use crate::render::{ColorChoice, Palette};

/// Arguments of `agentbus stats`.
#[derive(Clone, Debug, clap::Args)]
pub struct StatsArgs {
    /// Print the stats as JSON (`/api/stats`'s shape).
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub server: ServerArgs,
}

/// Runs `agentbus stats`.
pub(crate) async fn run(args: StatsArgs, color: ColorChoice) -> Result<(), CommandError> {
    let client = ApiClient::new(&args.server).map_err(CommandError::Stats)?;
    let stats = client.stats().await.map_err(CommandError::Stats)?;
    // Decoded typed (a server that answers another shape is an error),
    // shown through its JSON: the text form lists every field, nested ones
    // as blocks.
    let stats = serde_json::to_value(&stats).unwrap_or_default();
    let text = if args.json {
        format!("{stats}\n")
    } else {
        let mut text = String::new();
        render(&stats, 0, Palette::stdout(color), &mut text);
        text
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(())
}

/// Objects as indented `key  value` lines, nested objects as headed blocks,
/// arrays of scalars on one line.
fn render(value: &Value, depth: usize, palette: Palette, out: &mut String) {
    let Value::Object(map) = value else {
        out.push_str(&format!("{}{}\n", "  ".repeat(depth), scalar(value)));
        return;
    };
    let width = map.keys().map(String::len).max().unwrap_or(0);
    for (key, value) in map {
        let indent = "  ".repeat(depth);
        match value {
            Value::Object(inner) if inner.is_empty() => {
                out.push_str(&format!("{indent}{key:<width$}  -\n"));
            }
            Value::Object(_) => {
                out.push_str(&format!("{indent}{}\n", palette.bold(key)));
                render(value, depth + 1, palette, out);
            }
            _ => out.push_str(&format!("{indent}{key:<width$}  {}\n", scalar(value))),
        }
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        Value::Number(number) => match number.as_f64() {
            Some(float) if number.is_f64() => format!("{float:.2}"),
            _ => number.to_string(),
        },
        Value::Array(items) if items.len() > 8 && items.iter().all(Value::is_number) => {
            sparkline(items)
        }
        Value::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// A long numeric series (a rate per second, say) as a sparkline of its
/// last 40 values and the latest value.
fn sparkline(items: &[Value]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let values: Vec<f64> = items.iter().filter_map(Value::as_f64).collect();
    let recent = &values[values.len().saturating_sub(40)..];
    let max = recent.iter().copied().fold(0.0_f64, f64::max);
    let bars: String = recent
        .iter()
        .map(|value| {
            if max <= 0.0 {
                BARS[0]
            } else {
                BARS[((value / max) * 7.0).round().clamp(0.0, 7.0) as usize]
            }
        })
        .collect();
    let latest = recent.last().copied().unwrap_or_default();
    format!("{bars} {latest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_stats_render_as_aligned_blocks() {
        let stats = serde_json::json!({
            "events_published": 3,
            "publish_rate": 1.5,
            "store_lag": null,
            "per_type": {"task.completed": 2, "memory.shared": 1}
        });
        let mut text = String::new();
        render(&stats, 0, Palette::new(false), &mut text);
        assert!(text.contains("events_published  3\n"), "{text}");
        assert!(text.contains("publish_rate      1.50\n"), "{text}");
        assert!(text.contains("store_lag         -\n"), "{text}");
        let series: Vec<Value> = (0..50).map(|i| Value::from(i % 8)).collect();
        let line = scalar(&Value::Array(series));
        assert_eq!(line.chars().count(), 40 + 2, "{line}");
        assert!(line.ends_with(" 1"), "{line}");
        assert!(
            text.contains("per_type\n  memory.shared   1\n  task.completed  2\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_server_with_a_store_shows_what_the_store_rejected() {
        let bus = agentbus::EventBus::new();
        let store = agentbus_store::SqliteStore::open_in_memory().unwrap();
        let recorder = agentbus_store::Recorder::attach(&bus, store);
        let app = agentbus_web::WebApi::new(bus).store(recorder).router();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(agentbus_web::serve(listener, app));
        let args = ServerArgs {
            url: crate::client::parse_base_url(&format!("http://{addr}")).unwrap(),
            token: None,
        };
        let stats = ApiClient::new(&args).unwrap().stats().await.unwrap();
        server.abort();
        assert_eq!(stats.store.as_ref().map(|store| store.rejected), Some(0));
        let stats = serde_json::to_value(&stats).unwrap();
        let mut text = String::new();
        render(&stats, 0, Palette::new(false), &mut text);
        let store = &text[text.find("\nstore\n").expect("a store block")..];
        assert!(store.contains("\n  rejected "), "{text}");
    }
}
