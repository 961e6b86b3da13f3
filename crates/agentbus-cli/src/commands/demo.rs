//! `agentbus demo`: simulated agents on a served bus, narrated.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use agentbus::{Event, EventTypeSet};

use crate::commands::serve::{shutdown_signal, Server, ServerConfig};
use crate::error::CommandError;
use crate::render::{ColorChoice, Palette};
use crate::scenarios::{Demo, DemoConfig};
use crate::store_spec::StoreSpec;

/// Arguments of `agentbus demo`.
#[derive(Clone, Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    agentbus demo                       # open the printed URL, Ctrl-C to stop\n  \
    agentbus demo --duration 30s --pace 300ms\n  \
    agentbus demo --store sqlite:demo.db  # keep the events for `agentbus replay`")]
pub struct DemoArgs {
    /// Address to serve the dashboard and API on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub addr: SocketAddr,

    /// Stop after this long (e.g. `30s`, `2m`); without it, run until Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// The beat between the simulated agents' steps.
    #[arg(long, default_value = "700ms", value_parser = parse_pace)]
    pub pace: Duration,

    /// Where the demo's events are kept (see `agentbus serve --help`).
    #[arg(long, default_value = "memory",
          value_parser = crate::redacting_parser::RedactingParser(crate::store_spec::parse_store_spec))]
    pub store: StoreSpec,

    /// Require this bearer token on the API, as `serve` does.
    #[arg(long, env = "AGENTBUS_TOKEN", hide_env_values = true, value_parser = crate::client::parse_token)]
    pub token: Option<String>,

    /// Print no line per notable event.
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_pace(text: &str) -> Result<Duration, String> {
    let pace = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if pace < Duration::from_millis(10) || pace > Duration::from_secs(60) {
        return Err("the pace must be between 10ms and 60s".to_owned());
    }
    Ok(pace)
}

/// Runs `agentbus demo` until `--duration` has passed, Ctrl-C or SIGTERM.
pub(crate) async fn run(args: DemoArgs, color: ColorChoice) -> Result<(), CommandError> {
    demo(args, color)
        .await
        .map_err(|error| CommandError::Demo(Box::new(error)))
}

async fn demo(args: DemoArgs, color: ColorChoice) -> Result<(), CommandError> {
    let server = Server::start(ServerConfig {
        addr: args.addr,
        store: &args.store,
        token: args.token.clone(),
        history: 1000,
        body_limit: 1 << 20,
        nats: None,
        exposure: Default::default(),
        guards: Default::default(),
    })
    .await?;
    let palette = Palette::stdout(color);
    say!(
        "agentbus demo: dashboard at {} (store {}{})",
        palette.bold(&server.url()),
        args.store,
        match args.duration {
            Some(duration) => format!(", stopping after {}", humantime::format_duration(duration)),
            None => ", Ctrl-C to stop".to_owned(),
        }
    );
    let bus = server.bus.clone();
    let narrator = (!args.quiet).then(|| {
        bus.guard(
            bus.subscription(EventTypeSet::all())
                .name("demo-narrator")
                .handler(move |event: &Event| {
                    if let Some(line) = Demo::narrate(event) {
                        let mut stdout = std::io::stdout().lock();
                        let _ = writeln!(
                            stdout,
                            "{} {} {line}",
                            palette.dim(&clock_of(event)),
                            palette.event_type(
                                event.event_type,
                                &format!("{:<22}", event.event_type.as_str())
                            ),
                        );
                    }
                }),
        )
    });
    let demo = Demo::install(&bus, DemoConfig { pace: args.pace });

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let duration = args.duration;
    tokio::spawn(async move {
        match duration {
            Some(duration) => {
                tokio::select! {
                    () = tokio::time::sleep(duration) => {}
                    () = shutdown_signal() => {}
                }
            }
            None => shutdown_signal().await,
        }
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let script = demo.run(stopped(stop_rx.clone()));
    let serving = server.run_until(stopped(stop_rx));
    let ((), served) = tokio::join!(script, serving);
    let redriven = demo.redriven();
    drop(demo);
    drop(narrator);
    let last = served?;
    let stats = bus.stats();
    say!(
        "demo finished: {} events published, {} deliveries, {} handler failures, {} retries, \
         {} dead-lettered ({redriven} redriven){}",
        stats.events_published,
        stats.events_delivered,
        stats.handler_errors,
        stats.retries,
        stats.dead_lettered,
        last.map_or_else(String::new, |sequence| format!(
            ", stored up to sequence {sequence}"
        ))
    );
    Ok(())
}

fn clock_of(event: &Event) -> String {
    let text = humantime::format_rfc3339_millis(event.timestamp).to_string();
    text.get(11..23).map_or(text.clone(), str::to_owned)
}
