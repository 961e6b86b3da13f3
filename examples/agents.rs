//! The specification's integration examples on one bus: agent coordination,
//! knowledge sharing, conflict detection and automatic task assignment, then
//! error isolation, a hot loop through a `Publisher`, a bounded dashboard
//! stream, history queries and stats.
//!
//! Run with `cargo run --release --example agents`.
//!
//! Everything runs on a current-thread runtime, so the output is the same on
//! every run apart from the event ids in the handler-failure log lines.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use agentbus::{event_bus, Event, EventBus, EventType, HistoryQuery, TryRecvError};
use serde_json::{json, Value};

/// Small on purpose: the demo publishes more than this, so the dashboard's
/// stream shows how a consumer that falls behind is told what it missed.
const DASHBOARD_BUFFER: usize = 8;

const CIRCLE_BACKEND: i64 = 5;
const CIRCLE_DOCS: i64 = 6;
const PROJECT_GATHERING: i64 = 7;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // Handler failures are reported through `tracing`; without a subscriber
    // the error-isolation section would fail silently.
    tracing_subscriber::fmt()
        .without_time()
        .with_target(false)
        .init();

    // The process-wide bus is `'static`, so handlers that publish follow-up
    // events can reach it without capturing a clone of the bus they live in.
    let bus = event_bus();

    section("Setup: a dashboard stream and an activity counter");
    let mut dashboard = bus.stream(
        [
            EventType::TaskCompleted,
            EventType::TaskAssigned,
            EventType::TaskConflictDetected,
            EventType::MemoryShared,
            EventType::AgentToolExecuted,
        ],
        DASHBOARD_BUFFER,
    );
    let activity = count_activity(bus);
    println!(
        "dashboard stream {} buffers up to {} events; activity counter sees every type",
        dashboard.id(),
        dashboard.capacity()
    );

    agent_coordination(bus).await;
    knowledge_sharing(bus).await;
    conflict_detection(bus).await;
    task_assignment(bus).await;
    error_isolation(bus).await;
    tool_telemetry(bus);

    section("Dashboard: draining the bounded stream");
    loop {
        match dashboard.try_recv() {
            Ok(event) => println!("  {:<22} {}", event.event_type.as_str(), event.data),
            Err(TryRecvError::Lagged(missed)) => println!(
                "  (fell behind: the {missed} oldest events were dropped; publishers never waited)"
            ),
            Err(TryRecvError::Empty) => break,
            Err(TryRecvError::Closed) => {
                println!("  (stream closed)");
                break;
            }
        }
    }

    history_queries(bus);

    section("Stats");
    let by_type = activity
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for (event_type, count) in &by_type {
        println!("  {:<22} {count}", event_type.as_str());
    }
    let stats = bus.stats();
    println!(
        "published {}, delivered {}, handler errors {}, subscribers {}, history {}/{}",
        stats.events_published,
        stats.events_delivered,
        stats.handler_errors,
        stats.active_subscribers,
        stats.history_size,
        bus.history_capacity(),
    );
}

/// An agent's hot loop: tool-call telemetry through a `Publisher`, which
/// skips the bus's per-publish table snapshot.
fn tool_telemetry(bus: &EventBus) {
    section("Tool telemetry: an agent's hot loop through a Publisher");
    let mut publisher = bus.publisher();
    let mut delivered = 0;
    for call in 0..3 {
        let event = Event::new(EventType::AgentToolExecuted)
            .with_source_agent(4)
            .with_data(json!({"tool": "search", "call": call}));
        delivered += publisher.publish_blocking(event).delivered;
    }
    println!("agent 4 reported 3 tool calls: {delivered} deliveries");
}

fn section(title: &str) {
    println!("\n=== {title} ===");
}

/// Counts every published event by type, with one `subscribe_all`.
fn count_activity(bus: &EventBus) -> Arc<Mutex<BTreeMap<EventType, u64>>> {
    let counts = Arc::new(Mutex::new(BTreeMap::new()));
    let recorder = Arc::clone(&counts);
    bus.subscribe_all(move |event: &Event| {
        *recorder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(event.event_type)
            .or_insert(0) += 1;
    });
    counts
}

// ---------------------------------------------------------------------------
// 1. Agent coordination
// ---------------------------------------------------------------------------

async fn agent_coordination(bus: &EventBus) {
    section("1. Agent coordination: agent 2 picks up circle 5's output files");

    let agent_2 = bus
        .subscription(EventType::TaskCompleted)
        // The spec's `filter_fn=lambda e: e.circle_id == 5`, as a field
        // filter: checked inline, no closure call. Any other test goes in
        // `.filter(|event: &Event| ...)`.
        .circle_id(CIRCLE_BACKEND)
        .name("agent-2")
        .async_handler(|event: Arc<Event>| async move {
            if let Some(file) = event.data.get("output_file").and_then(Value::as_str) {
                process_file(file).await;
            }
        });
    // Agent 2 stays subscribed only as long as this guard lives.
    let agent_2 = bus.guard(agent_2);

    let outcome = bus
        .publish(task_completed(123, 1, CIRCLE_BACKEND, "results.json"))
        .await;
    println!(
        "agent 1 completed task 123 in circle 5: delivered {}, failed {} \
         (agent 2, dashboard, activity counter)",
        outcome.delivered, outcome.failed
    );

    let outcome = bus
        .publish(task_completed(124, 3, CIRCLE_DOCS, "summary.md"))
        .await;
    println!(
        "agent 3 completed task 124 in circle 6: delivered {} (agent 2's filter skipped it)",
        outcome.delivered
    );

    drop(agent_2);
    let outcome = bus
        .publish(task_completed(125, 1, CIRCLE_BACKEND, "results-v2.json"))
        .await;
    println!(
        "agent 2 went offline; task 125 in circle 5: delivered {} (no agent 2)",
        outcome.delivered
    );
}

fn task_completed(task_id: i64, agent_id: i64, circle_id: i64, output_file: &str) -> Event {
    Event::new(EventType::TaskCompleted)
        .with_data(json!({"task_id": task_id, "output_file": output_file}))
        .with_source_agent(agent_id)
        .with_circle(circle_id)
}

async fn process_file(file: &str) {
    // Stands in for real I/O: the publisher awaits this handler.
    tokio::time::sleep(Duration::from_millis(20)).await;
    println!("  agent 2: processed {file}");
}

// ---------------------------------------------------------------------------
// 2. Knowledge sharing
// ---------------------------------------------------------------------------

/// Who a memory is visible to.
#[derive(Clone, Copy, Debug)]
enum Scope {
    Private,
    Circle(i64),
    Project(i64),
}

/// A stand-in for the memory system: it stores nothing, but announces every
/// memory the way the real one does.
struct MemoryManager {
    bus: &'static EventBus,
    last_memory_id: AtomicU64,
}

impl MemoryManager {
    fn new(bus: &'static EventBus) -> Self {
        Self {
            bus,
            last_memory_id: AtomicU64::new(0),
        }
    }

    /// Stores a memory. Circle and project memories are broadcast as
    /// `MemoryShared`; private ones only as `MemoryCreated`.
    async fn remember(
        &self,
        agent_id: i64,
        content: &str,
        memory_type: &str,
        scope: Scope,
        importance: f64,
    ) -> u64 {
        let memory_id = self.last_memory_id.fetch_add(1, Ordering::Relaxed) + 1;
        let data = json!({
            "memory_id": memory_id,
            "content": content,
            "memory_type": memory_type,
            "importance": importance,
        });
        let event = match scope {
            Scope::Private => Event::new(EventType::MemoryCreated),
            Scope::Circle(circle_id) => Event::new(EventType::MemoryShared).with_circle(circle_id),
            Scope::Project(project_id) => {
                Event::new(EventType::MemoryShared).with_project(project_id)
            }
        };
        self.bus
            .publish(event.with_data(data).with_source_agent(agent_id))
            .await;
        memory_id
    }
}

async fn knowledge_sharing(bus: &'static EventBus) {
    section("2. Knowledge sharing: shared memories reach every listener");

    bus.subscription(EventType::MemoryShared)
        .name("agent-2-knowledge-feed")
        .async_handler(|event: Arc<Event>| async move {
            let audience = match (event.circle_id, event.project_id) {
                (Some(circle), _) => format!("circle {circle}"),
                (None, Some(project)) => format!("project {project}"),
                (None, None) => "everyone".to_owned(),
            };
            println!(
                "  agent 2 learned ({audience}): {}",
                event.data["content"].as_str().unwrap_or_default()
            );
        });
    bus.subscribe(EventType::MemoryCreated, |event: &Event| {
        println!(
            "  indexer: private memory #{} of agent {} stored, not broadcast",
            event.data["memory_id"],
            event.source_agent_id.unwrap_or_default()
        );
    });

    let memory = MemoryManager::new(bus);
    let shared = [
        (
            "Database connection string is in .env.production",
            "decision",
            Scope::Circle(CIRCLE_BACKEND),
            0.9,
        ),
        (
            "Release branches are cut on Thursdays",
            "fact",
            Scope::Project(PROJECT_GATHERING),
            0.6,
        ),
        (
            "I work best on parsers before lunch",
            "preference",
            Scope::Private,
            0.2,
        ),
    ];
    for (content, memory_type, scope, importance) in shared {
        println!("agent 1 remembers a {memory_type} ({scope:?})");
        memory
            .remember(1, content, memory_type, scope, importance)
            .await;
    }
}

// ---------------------------------------------------------------------------
// 3. Conflict detection
// ---------------------------------------------------------------------------

/// Which agent first wrote each file.
type FileLocks = Mutex<HashMap<String, i64>>;

async fn conflict_detection(bus: &'static EventBus) {
    section("3. Conflict detection: two agents writing the same file");

    let locks = Arc::new(FileLocks::default());
    bus.subscription(EventType::AgentToolExecuted)
        .name("conflict-detector")
        .async_handler(move |event: Arc<Event>| {
            let conflict = claim_file(&locks, &event);
            async move {
                if let Some(conflict) = conflict {
                    bus.publish(conflict).await;
                }
            }
        });
    bus.subscription(EventType::TaskConflictDetected)
        .name("conflict-reporter")
        .handler(|event: &Event| {
            println!(
                "  CONFLICT in circle {}: {} written by agent {} and agent {}",
                event.circle_id.unwrap_or_default(),
                event.data["file_path"].as_str().unwrap_or_default(),
                event.data["agent1_id"],
                event.data["agent2_id"],
            );
        });

    let tool_calls = [
        (1, "fs_write", "src/db.rs"),
        (1, "fs_read", "README.md"),
        (1, "fs_edit", "src/db.rs"),
        (2, "fs_edit", "src/db.rs"),
        (3, "fs_write", "docs/api.md"),
    ];
    for (agent_id, tool_name, path) in tool_calls {
        println!("agent {agent_id} runs {tool_name} {path}");
        bus.publish(
            Event::new(EventType::AgentToolExecuted)
                .with_data(json!({"tool_name": tool_name, "params": {"path": path}}))
                .with_source_agent(agent_id)
                .with_circle(CIRCLE_BACKEND),
        )
        .await;
    }
}

/// Records the writer of a file, and returns a `TaskConflictDetected` event if
/// another agent already holds it. Reads and other tools take no lock.
fn claim_file(locks: &FileLocks, event: &Event) -> Option<Event> {
    let tool_name = event.data.get("tool_name")?.as_str()?;
    if !matches!(tool_name, "fs_write" | "fs_edit") {
        return None;
    }
    let path = event.data.get("params")?.get("path")?.as_str()?;
    let agent_id = event.source_agent_id?;
    let holder = *locks
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(path.to_owned())
        .or_insert(agent_id);
    if holder == agent_id {
        return None;
    }
    let mut conflict = Event::new(EventType::TaskConflictDetected).with_data(json!({
        "file_path": path,
        "agent1_id": holder,
        "agent2_id": agent_id,
    }));
    conflict.circle_id = event.circle_id;
    Some(conflict)
}

// ---------------------------------------------------------------------------
// 4. Automatic task assignment
// ---------------------------------------------------------------------------

struct Member {
    agent_id: i64,
    name: &'static str,
    competencies: &'static [&'static str],
}

struct TaskRecord {
    status: &'static str,
    assigned_agent_id: Option<i64>,
}

/// A stand-in for the circle store: members per circle, and task status.
struct CircleStore {
    members: HashMap<i64, Vec<Member>>,
    tasks: Mutex<BTreeMap<i64, TaskRecord>>,
}

impl CircleStore {
    fn list_members(&self, circle_id: i64) -> &[Member] {
        self.members.get(&circle_id).map_or(&[], Vec::as_slice)
    }

    fn update_task_status(
        &self,
        task_id: i64,
        status: &'static str,
        assigned_agent_id: Option<i64>,
    ) {
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                task_id,
                TaskRecord {
                    status,
                    assigned_agent_id,
                },
            );
    }

    /// The member covering most of `required`; the earlier member wins a tie.
    fn best_member(&self, circle_id: i64, required: &[&str]) -> Option<(&Member, usize)> {
        let mut best: Option<(&Member, usize)> = None;
        for member in self.list_members(circle_id) {
            let score = required
                .iter()
                .filter(|skill| member.competencies.contains(skill))
                .count();
            if score > best.map_or(0, |(_, best_score)| best_score) {
                best = Some((member, score));
            }
        }
        best
    }
}

async fn task_assignment(bus: &'static EventBus) {
    section("4. Automatic task assignment: the best-matching member gets the task");

    let store = Arc::new(CircleStore {
        members: HashMap::from([(
            CIRCLE_BACKEND,
            vec![
                Member {
                    agent_id: 1,
                    name: "Ada",
                    competencies: &["python", "sql"],
                },
                Member {
                    agent_id: 2,
                    name: "Linus",
                    competencies: &["rust", "linux"],
                },
                Member {
                    agent_id: 3,
                    name: "Grace",
                    competencies: &["rust", "sql", "compilers"],
                },
            ],
        )]),
        tasks: Mutex::default(),
    });

    let assigner_store = Arc::clone(&store);
    bus.subscription(EventType::TaskCreated)
        .name("auto-assign")
        .async_handler(move |event: Arc<Event>| {
            let follow_up = assign(&assigner_store, &event);
            async move {
                if let Some(follow_up) = follow_up {
                    bus.publish(follow_up).await;
                }
            }
        });
    bus.subscribe(EventType::TaskAssigned, |event: &Event| {
        println!(
            "  task {} -> agent {} ({}), {} of {} competencies",
            event.data["task_id"],
            event.data["agent_id"],
            event.data["agent_name"].as_str().unwrap_or_default(),
            event.data["score"],
            event.data["required"].as_array().map_or(0, Vec::len),
        );
    });
    bus.subscribe(EventType::SystemWarning, |event: &Event| {
        println!(
            "  warning: {}",
            event.data["message"].as_str().unwrap_or_default()
        );
    });

    let new_tasks: [(i64, &[&str]); 3] = [
        (42, &["rust", "sql"]),
        (43, &["linux"]),
        (44, &["design", "figma"]),
    ];
    for (task_id, required) in new_tasks {
        println!("task {task_id} created in circle 5, needs {required:?}");
        bus.publish(
            Event::new(EventType::TaskCreated)
                .with_data(json!({"task_id": task_id, "required_competencies": required}))
                .with_circle(CIRCLE_BACKEND),
        )
        .await;
    }

    println!("circle store now holds:");
    for (task_id, record) in store
        .tasks
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        let assignee = record
            .assigned_agent_id
            .map_or_else(|| "nobody".to_owned(), |agent| format!("agent {agent}"));
        println!(
            "  task {task_id}: {}, assigned to {assignee}",
            record.status
        );
    }
}

/// Assigns the task `event` announces, and returns the event that says so:
/// `TaskAssigned`, or a `SystemWarning` when no member has any required skill.
fn assign(store: &CircleStore, event: &Event) -> Option<Event> {
    let task_id = event.data.get("task_id")?.as_i64()?;
    let circle_id = event.circle_id?;
    let required: Vec<&str> = event
        .data
        .get("required_competencies")
        .and_then(Value::as_array)
        .map(|skills| skills.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();

    let Some((member, score)) = store.best_member(circle_id, &required) else {
        store.update_task_status(task_id, "unassigned", None);
        return Some(
            Event::new(EventType::SystemWarning)
                .with_data(json!({
                    "message": format!(
                        "no member of circle {circle_id} has any of {required:?} for task {task_id}"
                    ),
                }))
                .with_circle(circle_id),
        );
    };
    store.update_task_status(task_id, "pending", Some(member.agent_id));
    Some(
        Event::new(EventType::TaskAssigned)
            .with_data(json!({
                "task_id": task_id,
                "agent_id": member.agent_id,
                "agent_name": member.name,
                "score": score,
                "required": required,
            }))
            .with_source_agent(member.agent_id)
            .with_circle(circle_id),
    )
}

// ---------------------------------------------------------------------------
// Error isolation
// ---------------------------------------------------------------------------

async fn error_isolation(bus: &EventBus) {
    section("Error isolation: failing handlers do not stop the others");

    bus.subscription(EventType::SystemError)
        .name("ops-pager")
        .handler(|_event: &Event| -> Result<(), String> {
            Err("pager service unreachable".to_owned())
        });
    bus.subscription(EventType::SystemError)
        .name("buggy-plugin")
        .handler(|event: &Event| {
            let retries = event.data["retries"].as_u64().expect("retries is a number");
            println!("  buggy-plugin: would retry {retries} times");
        });
    bus.subscription(EventType::SystemError)
        .name("audit-log")
        .handler(|event: &Event| {
            println!(
                "  audit-log: recorded \"{}\"",
                event.data["message"].as_str().unwrap_or_default()
            );
        });

    // The bus catches the panic and logs it; the default hook would also print
    // it to stderr as if the process had crashed.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = bus
        .publish(
            Event::new(EventType::SystemError)
                .with_data(json!({"message": "disk 90% full", "retries": "three"})),
        )
        .await;
    std::panic::set_hook(default_hook);

    println!(
        "system error published: delivered {}, failed {} \
         (audit-log and the activity counter ran; ops-pager erred, buggy-plugin panicked)",
        outcome.delivered, outcome.failed
    );
}

// ---------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------

fn history_queries(bus: &EventBus) {
    section("History queries (newest first)");

    let print = |title: &str, query: HistoryQuery| {
        let events = bus.history(&query);
        println!("{title}: {} event(s)", events.len());
        for event in events {
            println!(
                "  {:<22} agent {:<4} circle {:<4} {}",
                event.event_type.as_str(),
                optional(event.source_agent_id),
                optional(event.circle_id),
                event.data
            );
        }
    };

    print(
        "last 2 task.completed",
        HistoryQuery::new()
            .event_type(EventType::TaskCompleted)
            .limit(2),
    );
    print(
        "circle 5, last 4 of any type",
        HistoryQuery::new().circle_id(CIRCLE_BACKEND).limit(4),
    );
    print(
        "everything agent 2 did",
        HistoryQuery::new().source_agent_id(2),
    );
    print(
        "project 7",
        HistoryQuery::new().project_id(PROJECT_GATHERING),
    );
}

fn optional(id: Option<i64>) -> String {
    id.map_or_else(|| "-".to_owned(), |id| id.to_string())
}
