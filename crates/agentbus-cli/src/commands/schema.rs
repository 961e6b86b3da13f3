//! `agentbus schema check`: which stored events a directory of schemas
//! would reject (a migration aid before `serve --schemas`).

use std::path::PathBuf;

use agentbus_guard::Schemas;
use agentbus_store::ReadQuery;

use crate::error::CommandError;
use crate::store_spec::StoreSpec;

/// Arguments of `agentbus schema`.
#[derive(Clone, Debug, clap::Args)]
pub struct SchemaArgs {
    /// What to do with the schemas.
    #[command(subcommand)]
    pub command: SchemaCommand,
}

/// An `agentbus schema` subcommand.
#[derive(Clone, Debug, clap::Subcommand)]
#[non_exhaustive]
pub enum SchemaCommand {
    /// List the stored events the schemas in DIR would reject; exit 1 if any.
    Check(SchemaCheckArgs),
}

/// Arguments of `agentbus schema check`.
#[derive(Clone, Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    agentbus schema check schemas/ --store sqlite:agentbus.db\n  \
    agentbus schema check schemas/ --store postgres://postgres@127.0.0.1/events --strict --json")]
pub struct SchemaCheckArgs {
    /// A directory of <event.type>.json JSON Schemas, as `serve --schemas`.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// The store to read: sqlite:PATH or postgres://...
    #[arg(long, env = "AGENTBUS_STORE", hide_env_values = true,
          value_parser = crate::redacting_parser::RedactingParser(crate::commands::replay::parse_durable_store))]
    pub store: StoreSpec,

    /// Also reject events whose type has no schema, as `serve --strict`.
    #[arg(long)]
    pub strict: bool,

    /// Events read per page.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,

    /// One JSON object per rejected event (sequence, id, type, violations).
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn run(args: SchemaArgs) -> Result<(), CommandError> {
    let SchemaCommand::Check(args) = args.command;
    let mut schemas = Schemas::from_dir(&args.dir)?;
    if args.strict {
        schemas = schemas.strict();
    }
    let spec = args.store.to_string();
    let Some(store) = args.store.open_existing().await? else {
        return Err(CommandError::NoStore(spec));
    };
    let (mut after, mut checked, mut rejected) = (0u64, 0u64, 0u64);
    loop {
        let query = ReadQuery::new().after(after).limit(args.batch as usize);
        let page = store
            .read(&query)
            .await
            .map_err(|source| CommandError::ReadStore { after, source })?;
        let Some(last) = page.last().map(|stored| stored.sequence) else {
            break;
        };
        for stored in &page {
            checked += 1;
            let Err(violations) = schemas.validate(&stored.event) else {
                continue;
            };
            rejected += 1;
            let event = &stored.event;
            let line = if args.json {
                serde_json::json!({
                    "sequence": stored.sequence,
                    "id": event.id,
                    "type": event.event_type,
                    "violations": violations.iter().map(|v| serde_json::json!({
                        "pointer": v.pointer, "message": v.message,
                    })).collect::<Vec<_>>(),
                })
                .to_string()
            } else {
                let reasons: Vec<String> = violations.iter().map(ToString::to_string).collect();
                format!(
                    "{} {} {}: {}",
                    stored.sequence,
                    event.id,
                    event.event_type,
                    reasons.join("; ")
                )
            };
            say!("{line}");
        }
        after = last;
    }
    if rejected > 0 {
        return Err(CommandError::SchemaCheck(rejected));
    }
    if !args.json {
        say!("all {checked} stored events pass");
    }
    Ok(())
}
