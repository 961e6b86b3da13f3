//! `agentbus dlq list|show|redrive|discard`: a running server's dead
//! letters (`/api/dead-letters`).

use std::io::Write;

use agentbus::EventType;
use agentbus_web::DeadLetterReply;

use crate::client::{ApiClient, ClientError, ServerArgs};
use crate::error::CommandError;

/// Arguments of `agentbus dlq`.
#[derive(Clone, Debug, clap::Args)]
pub struct DlqArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DlqCommand,
}

/// The `agentbus dlq` subcommands.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// List dead letters, oldest first: one line each (id, attempts,
    /// subscription, event type, error), or JSON lines with `--json`.
    List {
        /// Only those of the subscription with this name.
        #[arg(long)]
        subscription: Option<String>,
        /// Only events of this type.
        #[arg(long = "type", value_name = "TYPE")]
        event_type: Option<EventType>,
        /// Only ids greater than this (the next page).
        #[arg(long)]
        after: Option<u64>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        #[allow(missing_docs)]
        server: ServerArgs,
    },
    /// Print one dead letter as JSON.
    Show {
        /// Its id.
        id: u64,
        #[command(flatten)]
        #[allow(missing_docs)]
        server: ServerArgs,
    },
    /// Deliver a dead letter's event again to its subscription, once.
    Redrive {
        /// Its id.
        id: u64,
        #[command(flatten)]
        #[allow(missing_docs)]
        server: ServerArgs,
    },
    /// Forget a dead letter.
    Discard {
        /// Its id.
        id: u64,
        #[command(flatten)]
        #[allow(missing_docs)]
        server: ServerArgs,
    },
}

/// Runs `agentbus dlq`.
pub(crate) async fn run(args: DlqArgs) -> Result<(), CommandError> {
    let failed = |action| move |source: ClientError| CommandError::DeadLetters { action, source };
    let (DlqCommand::List { server, .. }
    | DlqCommand::Show { server, .. }
    | DlqCommand::Redrive { server, .. }
    | DlqCommand::Discard { server, .. }) = &args.command;
    let client = ApiClient::new(server).map_err(failed("reach"))?;
    let mut out = String::new();
    match args.command {
        DlqCommand::List {
            subscription,
            event_type,
            after,
            limit,
            json,
            ..
        } => {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(subscription.map(|name| ("subscription", name)));
            query.extend(event_type.map(|t| ("type", t.as_str().to_owned())));
            query.extend(after.map(|after| ("after", after.to_string())));
            let page = client.dead_letters(&query).await.map_err(failed("list"))?;
            for letter in &page.dead_letters {
                if json {
                    out.push_str(&serde_json::to_string(letter).unwrap_or_default());
                    out.push('\n');
                } else {
                    out.push_str(&line(letter));
                }
            }
            if let (Some(next), false) = (page.next, json) {
                out.push_str(&format!("(more: --after {next})\n"));
            }
        }
        DlqCommand::Show { id, .. } => {
            let letter = client
                .dead_letter(id)
                .await
                .map_err(failed("show"))?
                .ok_or(CommandError::NoSuchDeadLetter(id))?;
            out = serde_json::to_string_pretty(&letter).unwrap_or_default() + "\n";
        }
        DlqCommand::Redrive { id, .. } => {
            client
                .redrive(id)
                .await
                .map_err(failed("redrive"))?
                .ok_or(CommandError::NoSuchDeadLetter(id))?;
            out = format!("redriven {id}\n");
        }
        DlqCommand::Discard { id, .. } => {
            if !client.discard(id).await.map_err(failed("discard"))? {
                return Err(CommandError::NoSuchDeadLetter(id));
            }
            out = format!("discarded {id}\n");
        }
    }
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    Ok(())
}

/// `id  attempts  subscription  type  error`, one line.
fn line(letter: &DeadLetterReply) -> String {
    format!(
        "{:>6}  x{}  {}  {}  {}\n",
        letter.id,
        letter.attempts,
        letter
            .subscription
            .as_deref()
            .unwrap_or(&letter.subscription_id),
        letter.event.event_type.as_str(),
        letter.error
    )
}
