//! `agentbus replay`: publish a stored range again, in order.

use std::sync::Arc;
use std::time::Instant;

use agentbus::{Event, EventBus, Redacted};
use agentbus_store::ReadQuery;
use indicatif::{ProgressBar, ProgressStyle};

use crate::client::{ApiClient, ServerArgs};
use crate::error::CommandError;
use crate::filter::FilterArgs;
use crate::redacting_parser::RedactingParser;
use crate::render::{ColorChoice, Palette};
use crate::store_spec::StoreSpec;

/// Arguments of `agentbus replay`.
#[derive(Clone, Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    agentbus replay --store sqlite:agentbus.db --from 100 --to 250     # print a range, published on a fresh bus\n  \
    agentbus replay --store sqlite:old.db --to-url http://127.0.0.1:7878  # publish it into a running server\n\n\
    Replayed events keep their ids: a server with a store does not store them twice.")]
pub struct ReplayArgs {
    /// The store to read: sqlite:PATH or postgres://... (never created: it
    /// must exist).
    #[arg(long, env = "AGENTBUS_STORE", hide_env_values = true, value_parser = RedactingParser(parse_durable_store))]
    pub store: StoreSpec,

    /// First sequence to replay (inclusive).
    #[arg(long, value_name = "SEQ", default_value_t = 1)]
    pub from: u64,

    /// Last sequence to replay (inclusive); the store's last when not given.
    #[arg(long, value_name = "SEQ")]
    pub to: Option<u64>,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub filter: FilterArgs,

    /// Publish into the running server at this URL (`POST /api/events`)
    /// instead of a fresh in-process bus.
    #[arg(long, value_name = "URL")]
    pub to_url: Option<String>,

    /// Bearer token for `--to-url`.
    #[arg(
        long,
        env = "AGENTBUS_TOKEN",
        hide_env_values = true,
        value_parser = crate::client::parse_token,
        requires = "to_url"
    )]
    pub token: Option<String>,

    /// Events read (and, with `--to-url`, posted) per batch.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,

    /// Print one JSON object per replayed event instead of a line of text.
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,

    /// Print only the summary.
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_durable_store(text: &str) -> Result<StoreSpec, String> {
    let spec = crate::store_spec::parse_store_spec(text)?;
    if !spec.is_durable() {
        return Err(format!(
            "{spec} holds nothing to replay: give sqlite:PATH or postgres://..."
        ));
    }
    Ok(spec)
}

/// Where replayed events go.
enum Target {
    Bus(EventBus),
    Server(ApiClient),
}

/// Runs `agentbus replay`.
pub(crate) async fn run(args: ReplayArgs, color: ColorChoice) -> Result<(), CommandError> {
    let spec = args.store.to_string();
    let Some(store) = args.store.open_existing().await? else {
        return Err(CommandError::NoStore(spec));
    };
    let last = match args.to {
        Some(to) => to,
        None => store
            .last_sequence()
            .await
            .map_err(|source| CommandError::ReadStore { after: 0, source })?,
    };
    let palette = Palette::stdout(color);
    let progress = ProgressBar::new(last.saturating_sub(args.from.saturating_sub(1))).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} sequences ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    let target = match &args.to_url {
        Some(url) => {
            let parsed =
                crate::client::parse_base_url(url).map_err(|reason| CommandError::Url {
                    url: Redacted(url).to_string(),
                    reason,
                })?;
            let client = ApiClient::new(&ServerArgs {
                url: parsed,
                token: args.token.clone(),
            })
            .map_err(|source| CommandError::Post { after: 0, source })?;
            Target::Server(client)
        }
        None => Target::Bus(EventBus::new()),
    };

    let started = Instant::now();
    let mut after = args.from.saturating_sub(1);
    let mut replayed = 0u64;
    let mut span: Option<(u64, u64)> = None;
    let filter = args.filter.filter();
    while after < last {
        let query = ReadQuery::from(filter.clone())
            .after(after)
            .up_to(last)
            .limit(args.batch as usize);
        let page = store
            .read(&query)
            .await
            .map_err(|source| CommandError::ReadStore { after, source })?;
        let Some(page_last) = page.last().map(|stored| stored.sequence) else {
            break;
        };
        match &target {
            Target::Bus(bus) => {
                for stored in &page {
                    if !args.quiet {
                        let line = if args.json {
                            let mut value =
                                serde_json::to_value(&*stored.event).unwrap_or_default();
                            if let Some(map) = value.as_object_mut() {
                                map.insert("sequence".into(), stored.sequence.into());
                            }
                            value.to_string()
                        } else {
                            palette.event_line(&stored.event, Some(stored.sequence))
                        };
                        progress.suspend(|| say!("{line}"));
                    }
                    bus.publish(Arc::clone(&stored.event)).await;
                }
            }
            Target::Server(client) => {
                let events: Vec<&Event> = page.iter().map(|stored| &*stored.event).collect();
                client
                    .publish(&events)
                    .await
                    .map_err(|source| CommandError::Post { after, source })?;
            }
        }
        let first = page[0].sequence;
        span = Some((span.map_or(first, |(start, _)| start), page_last));
        replayed += page.len() as u64;
        progress.set_position(page_last.saturating_sub(args.from.saturating_sub(1)));
        after = page_last;
    }
    progress.finish_and_clear();
    let elapsed = started.elapsed();
    let range = span.map_or_else(
        || "nothing in range".to_owned(),
        |(first, last)| format!("sequences {first}..={last}"),
    );
    let destination = match &target {
        Target::Bus(bus) => format!("a fresh bus ({} published)", bus.stats().events_published),
        Target::Server(client) => Redacted(client.base().as_str()).to_string(),
    };
    note!(
        "replayed {replayed} events ({range}) from {spec} into {destination} in {:.1?}",
        elapsed
    );
    Ok(())
}
