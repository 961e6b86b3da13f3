//! `agentbus history`: past events from a running server.

use std::io::Write;

use agentbus::EventId;

use crate::client::{ApiClient, ServerArgs};
use crate::error::CommandError;
use crate::filter::{query_parameters, FilterArgs};
use crate::render::{ColorChoice, Palette};

/// The order of `agentbus history`, as clap parsed it before `--order` took
/// the core's [`agentbus::Order`].
#[deprecated(note = "`HistoryArgs::order` is an `agentbus::Order`; convert with `into()`")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

#[allow(deprecated)]
impl From<Order> for agentbus::Order {
    fn from(order: Order) -> Self {
        match order {
            Order::Asc => Self::Ascending,
            Order::Desc => Self::Descending,
        }
    }
}

/// Parses `--order`: `asc` or `desc`, as the API names them.
fn order_parser() -> impl clap::builder::TypedValueParser<Value = agentbus::Order> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new([
        PossibleValue::new("asc").help("Oldest first"),
        PossibleValue::new("desc").help("Newest first"),
    ])
    .map(|name| match name.as_str() {
        "asc" => agentbus::Order::Ascending,
        _ => agentbus::Order::Descending,
    })
}

/// Arguments of `agentbus history`.
#[derive(Clone, Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    agentbus history --type task.completed --circle 5 --limit 10\n  \
    agentbus history --all --json > events.ndjson      # every stored event, for `publish --file`")]
pub struct HistoryArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub filter: FilterArgs,

    /// Only the causal chain started by this event.
    #[arg(long, value_name = "EVENT_ID")]
    pub correlation: Option<EventId>,

    /// Only events stored after this sequence.
    #[arg(long, value_name = "SEQ")]
    pub after: Option<u64>,

    /// Events per page.
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,

    /// Oldest or newest first. Without it (and without `--after` and
    /// `--all`) the newest `--limit` events are shown, oldest first, like
    /// `tail -n`.
    #[arg(long, value_parser = order_parser())]
    pub order: Option<agentbus::Order>,

    /// Follow the pages to the end instead of stopping after one.
    #[arg(long)]
    pub all: bool,

    /// One JSON object per line (the event with its `sequence`) instead of text.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub server: ServerArgs,
}

/// Runs `agentbus history`.
pub(crate) async fn run(args: HistoryArgs, color: ColorChoice) -> Result<(), CommandError> {
    let client = ApiClient::new(&args.server).map_err(CommandError::History)?;
    let palette = Palette::stdout(color);
    let mut after = args.after;
    // The newest page, shown oldest first.
    let latest = args.order.is_none() && args.after.is_none() && !args.all;
    loop {
        let mut filter = args.filter.filter();
        if let Some(correlation) = args.correlation {
            filter = filter.correlation_id(correlation);
        }
        let mut query = query_parameters(&filter);
        if let Some(after) = after {
            query.push(("after", after.to_string()));
        }
        query.push(("limit", args.limit.to_string()));
        let order = match args.order {
            Some(agentbus::Order::Ascending) => Some("asc"),
            Some(agentbus::Order::Descending) => Some("desc"),
            None if latest => Some("desc"),
            None => None,
        };
        if let Some(order) = order {
            query.push(("order", order.to_owned()));
        }
        let mut page = client.events(&query).await.map_err(CommandError::History)?;
        if latest {
            page.events.reverse();
        }
        let mut stdout = std::io::stdout().lock();
        for stored in &page.events {
            let line = if args.json {
                let mut value = serde_json::to_value(&stored.event).unwrap_or_default();
                if let (Some(sequence), Some(map)) = (stored.sequence, value.as_object_mut()) {
                    map.insert("sequence".into(), sequence.into());
                }
                value.to_string()
            } else {
                palette.event_line(&stored.event, stored.sequence)
            };
            // A closed pipe (`| head`) ends the listing quietly.
            if writeln!(stdout, "{line}").is_err() {
                return Ok(());
            }
        }
        match page.next {
            Some(next) if args.all && !page.events.is_empty() && Some(next) != after => {
                after = Some(next);
            }
            _ => return Ok(()),
        }
    }
}
