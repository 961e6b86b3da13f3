//! The demo's simulated agents: the specification's scenarios played on a bus.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentbus::{
    with_cause, DeadLetterQuery, Event, EventBus, EventId, EventType, Retry, SubscriptionGuard,
    WeakEventBus,
};
use serde_json::{json, Value};
use tokio::runtime::Handle;

/// How the demo plays.
#[derive(Clone, Copy, Debug)]
pub struct DemoConfig {
    /// The beat: the pause between the script's steps and before each
    /// simulated reaction. 700 ms is a pace a person can follow.
    pub pace: Duration,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            pace: Duration::from_millis(700),
        }
    }
}

/// A simulated agent.
struct Agent {
    id: i64,
    name: &'static str,
    circle: i64,
    competencies: &'static [&'static str],
}

const ROSTER: &[Agent] = &[
    Agent {
        id: 1,
        name: "Ada",
        circle: 5,
        competencies: &["rust", "sql"],
    },
    Agent {
        id: 2,
        name: "Brook",
        circle: 5,
        competencies: &["python", "testing"],
    },
    Agent {
        id: 3,
        name: "Cyd",
        circle: 5,
        competencies: &["frontend", "css"],
    },
    Agent {
        id: 4,
        name: "Dee",
        circle: 7,
        competencies: &["search", "writing"],
    },
    Agent {
        id: 5,
        name: "Eli",
        circle: 7,
        competencies: &["data", "python"],
    },
];

const CIRCLES: &[(i64, &str)] = &[(5, "backend"), (7, "research")];

/// The project every demo event belongs to.
const PROJECT: i64 = 42;

fn agent(id: i64) -> Option<&'static Agent> {
    ROSTER.iter().find(|agent| agent.id == id)
}

fn agent_label(id: Option<i64>) -> String {
    match id.and_then(agent) {
        Some(agent) => format!("agent {} ({})", agent.id, agent.name),
        None => match id {
            Some(id) => format!("agent {id}"),
            None => "someone".to_owned(),
        },
    }
}

/// The specification's scenarios, played by simulated agents on a bus.
///
/// [`Demo::install`] subscribes the reacting parts, each of which publishes
/// its follow-up events a beat later from a task of its own run under
/// [`with_cause`], so the bus stamps each follow-up as caused by the event
/// it reacts to and every scene is one causal chain (the script's own scene
/// openers use [`Event::caused_by`]):
///
/// - **automatic task assignment**: `task.created` is assigned to the circle
///   member with the most matching competencies (`task.assigned`), or warned
///   about (`system.warning`) when nobody fits;
/// - **agents finishing tasks in circles**: the assignee starts, writes its
///   file (`agent.tool.executed`) and completes or fails the task; in circle
///   5 a teammate picks up the completed task's `output_file`;
/// - **a file conflict**: two agents writing one file while the first still
///   holds it gives `task.conflict.detected`;
/// - **knowledge sharing**: `memory.shared` is recalled by a circle member;
/// - **a failing handler**: a metrics exporter fails on every third new
///   event; it reports a `system.error`, every other handler still runs,
///   and its retry policy (3 attempts, 200 ms apart, doubling) delivers the
///   event on the next attempt, so the stats show retries succeeding;
/// - **a dead letter redriven**: the exporter's backend goes down for the
///   second new event (and every fifth after it): every attempt fails, so
///   the event becomes a dead letter (the dashboard's panel lists it). At
///   the end of each round the backend "recovers" and the script redrives
///   the exporter's dead letters, announcing each with a `system.warning`
///   caused by the redriven event (`data.redriven` is the letter's id).
///
/// [`Demo::run`] drives the script in rounds until told to stop. Handlers
/// never panic on events they did not expect (say, ones published by hand
/// over HTTP while the demo runs): missing fields are skipped.
pub struct Demo {
    bus: EventBus,
    world: Arc<World>,
    _subscriptions: Vec<SubscriptionGuard>,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("pace", &self.world.pace)
            .finish_non_exhaustive()
    }
}

/// What the reacting parts share.
struct World {
    bus: WeakEventBus,
    runtime: Handle,
    pace: Duration,
    next_task: AtomicU64,
    next_memory: AtomicU64,
    /// New events the metrics exporter has seen.
    exported: AtomicU64,
    /// What goes wrong for the exporter, per event, until it is delivered.
    exporter_trouble: Mutex<HashMap<EventId, Trouble>>,
    /// Dead letters the script redrove.
    redriven: AtomicU64,
    /// Set when the script stops: reactions still waiting publish nothing.
    stopped: AtomicBool,
    /// file path -> the agent writing it, released when its task ends.
    file_locks: Mutex<HashMap<String, i64>>,
}

impl World {
    /// Publishes the event `make` builds after `beats` paces, from a task
    /// of its own, as caused by `cause`: the task runs under
    /// [`with_cause`], so the bus stamps the causal ids. Built then, so its
    /// timestamp (and time-ordered id) is the moment it is published.
    fn later(
        self: &Arc<Self>,
        beats: f64,
        cause: &Event,
        make: impl FnOnce() -> Event + Send + 'static,
    ) {
        let world = Arc::clone(self);
        let delay = self.pace.mul_f64(beats);
        self.runtime.spawn(with_cause(cause, async move {
            tokio::time::sleep(delay).await;
            if let Some(bus) = world.live_bus() {
                bus.publish(make()).await;
            }
        }));
    }

    /// The bus, unless it is gone or the script has stopped.
    fn live_bus(&self) -> Option<EventBus> {
        if self.stopped.load(Ordering::Relaxed) {
            return None;
        }
        self.bus.upgrade()
    }

    fn task_id(&self) -> u64 {
        self.next_task.fetch_add(1, Ordering::Relaxed) + 1
    }
}

impl Demo {
    /// Subscribes the simulated agents' reactions on `bus`. Must be called
    /// within a tokio runtime, which runs the reactions; they stop when the
    /// `Demo` is dropped.
    pub fn install(bus: &EventBus, config: DemoConfig) -> Self {
        let world = Arc::new(World {
            bus: bus.downgrade(),
            runtime: Handle::current(),
            pace: config.pace,
            next_task: AtomicU64::new(0),
            next_memory: AtomicU64::new(0),
            exported: AtomicU64::new(0),
            exporter_trouble: Mutex::new(HashMap::new()),
            redriven: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            file_locks: Mutex::new(HashMap::new()),
        });
        let mut subscriptions = Vec::new();
        let mut add = |id| subscriptions.push(bus.guard(id));

        let w = Arc::clone(&world);
        add(bus
            .subscription(EventType::TaskCreated)
            .name("auto-assigner")
            .handler(move |event: &Event| auto_assign(&w, event)));

        let w = Arc::clone(&world);
        add(bus
            .subscription(EventType::TaskAssigned)
            .name("simulated-worker")
            .handler(move |event: &Event| work(&w, event)));

        let w = Arc::clone(&world);
        add(bus
            .subscription([
                EventType::AgentToolExecuted,
                EventType::TaskCompleted,
                EventType::TaskFailed,
            ])
            .name("conflict-detector")
            .handler(move |event: &Event| detect_conflicts(&w, event)));

        let w = Arc::clone(&world);
        add(bus
            .subscription(EventType::TaskCompleted)
            .circle_id(5)
            .name("circle-5-teammate")
            .handler(move |event: &Event| pick_up_output(&w, event)));

        let w = Arc::clone(&world);
        add(bus
            .subscription(EventType::MemoryShared)
            .name("knowledge-listener")
            .handler(move |event: &Event| recall(&w, event)));

        let w = Arc::clone(&world);
        add(bus
            .subscription(EventType::TaskCompleted)
            .name(EXPORTER)
            .retry(Retry::attempts(3).delay(Duration::from_millis(200)))
            .handler(move |event: &Event| export_metrics(&w, event)));

        Self {
            bus: bus.clone(),
            world,
            _subscriptions: subscriptions,
        }
    }

    /// Plays the script in rounds until `stop` resolves: circles form, then
    /// each round creates tasks (two of which collide on one file), shares
    /// knowledge, holds a conversation and creates a task nobody can take.
    pub async fn run(&self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let script = async {
            self.form_circles().await;
            for round in 0u64.. {
                self.round(round).await;
                self.recover_exporter().await;
            }
        };
        tokio::select! {
            () = script => {}
            () = &mut stop => {}
        }
        self.world.stopped.store(true, Ordering::Relaxed);
    }

    /// How many dead letters the script has redriven.
    pub fn redriven(&self) -> u64 {
        self.world.redriven.load(Ordering::Relaxed)
    }

    /// The exporter's backend is back: its pending retries succeed, and its
    /// dead letters are redriven, each announced by a `system.warning`
    /// caused by the redriven event. A letter whose redrive fails (say, a
    /// user discarded or redrove it meanwhile) is left as it is.
    async fn recover_exporter(&self) {
        let dead = self.bus.dead_letters();
        let letters = dead.list(&DeadLetterQuery::new().subscription(EXPORTER).limit(100));
        if letters.is_empty() {
            return;
        }
        for trouble in lock(&self.world.exporter_trouble).values_mut() {
            if *trouble == Trouble::Outage {
                *trouble = Trouble::Recovered;
            }
        }
        for letter in letters {
            if dead.redrive(letter.id()).await.is_err() {
                continue;
            }
            self.world.redriven.fetch_add(1, Ordering::Relaxed);
            let event = letter.event();
            let message = format!(
                "metrics exporter recovered: dead letter {} (task {}) redriven after {} failed attempts",
                letter.id(),
                event.data["task_id"],
                letter.attempts()
            );
            self.publish(
                scoped(Event::new(EventType::SystemWarning), event)
                    .with_data(json!({
                        "message": message,
                        "handler": EXPORTER,
                        "redriven": letter.id().get(),
                        "event_id": event.id,
                    }))
                    .caused_by(event),
            )
            .await;
        }
    }

    async fn beat(&self, beats: f64) {
        tokio::time::sleep(self.world.pace.mul_f64(beats)).await;
    }

    async fn publish(&self, event: Event) -> Event {
        let kept = event.clone();
        self.bus.publish(event).await;
        kept
    }

    async fn form_circles(&self) {
        for &(circle, name) in CIRCLES {
            let created = self
                .publish(
                    Event::new(EventType::CircleCreated)
                        .with_circle(circle)
                        .with_project(PROJECT)
                        .with_data(json!({"name": name})),
                )
                .await;
            self.beat(0.5).await;
            for agent in ROSTER.iter().filter(|agent| agent.circle == circle) {
                self.publish(
                    Event::new(EventType::CircleMemberAdded)
                        .with_circle(circle)
                        .with_project(PROJECT)
                        .with_source_agent(agent.id)
                        .with_data(json!({
                            "agent_id": agent.id,
                            "name": agent.name,
                            "competencies": agent.competencies,
                        }))
                        .caused_by(&created),
                )
                .await;
                self.beat(0.3).await;
            }
            self.publish(
                Event::new(EventType::CircleStarted)
                    .with_circle(circle)
                    .with_project(PROJECT)
                    .with_data(json!({"name": name}))
                    .caused_by(&created),
            )
            .await;
            self.beat(0.5).await;
        }
        for agent in ROSTER {
            self.publish(
                Event::new(EventType::AgentStarted)
                    .with_circle(agent.circle)
                    .with_project(PROJECT)
                    .with_source_agent(agent.id)
                    .with_data(json!({"name": agent.name})),
            )
            .await;
        }
        self.beat(1.0).await;
    }

    async fn create_task(&self, circle: i64, title: &str, needs: &[&str], extra: Value) -> Event {
        let mut data = json!({
            "task_id": self.world.task_id(),
            "title": title,
            "circle_id": circle,
            "required_competencies": needs,
        });
        if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
            data.extend(extra);
        }
        self.publish(
            Event::new(EventType::TaskCreated)
                .with_circle(circle)
                .with_project(PROJECT)
                .with_data(data),
        )
        .await
    }

    async fn round(&self, round: u64) {
        // Circle 5: two tasks touching one file -> assignment, work, a conflict,
        // and a teammate picking up the output.
        self.create_task(
            5,
            "Add retries to the database pool",
            &["rust", "sql"],
            json!({"file": "src/db/pool.rs", "output_file": format!("reports/pool-bench-{round}.json")}),
        )
        .await;
        self.beat(0.5).await;
        self.create_task(
            5,
            "Load-test the database pool",
            &["testing", "python"],
            json!({"file": "src/db/pool.rs"}),
        )
        .await;
        self.beat(5.0).await;

        // Circle 7: knowledge sharing.
        let memory_id = self.world.next_memory.fetch_add(1, Ordering::Relaxed) + 1;
        let created = self
            .publish(
                Event::new(EventType::MemoryCreated)
                    .with_circle(7)
                    .with_project(PROJECT)
                    .with_source_agent(4)
                    .with_data(json!({
                        "memory_id": memory_id,
                        "content": "Database connection string is in .env.production",
                        "memory_type": "decision",
                        "scope": "agent",
                    })),
            )
            .await;
        self.beat(1.0).await;
        self.publish(
            Event::new(EventType::MemoryShared)
                .with_circle(7)
                .with_project(PROJECT)
                .with_source_agent(4)
                .with_data(json!({
                    "memory_id": memory_id,
                    "content": "Database connection string is in .env.production",
                    "memory_type": "decision",
                    "scope": "circle",
                    "scope_id": 7,
                    "importance": 0.9,
                }))
                .caused_by(&created),
        )
        .await;
        self.beat(2.0).await;

        // Circle 7: a conversation, then data work that fails every other round.
        let question = self
            .publish(
                Event::new(EventType::ConversationMessage)
                    .with_circle(7)
                    .with_project(PROJECT)
                    .with_source_agent(4)
                    .with_data(json!({"text": "Eli, can you rebuild the usage dataset?"})),
            )
            .await;
        self.beat(1.0).await;
        let answer = self
            .publish(
                Event::new(EventType::ConversationMessage)
                    .with_circle(7)
                    .with_project(PROJECT)
                    .with_source_agent(5)
                    .with_data(json!({"text": "On it."}))
                    .caused_by(&question),
            )
            .await;
        self.publish(
            Event::new(EventType::ConversationTurnComplete)
                .with_circle(7)
                .with_project(PROJECT)
                .with_data(json!({"messages": 2}))
                .caused_by(&answer),
        )
        .await;
        self.beat(0.5).await;
        self.create_task(
            7,
            "Rebuild the usage dataset",
            &["data", "python"],
            json!({"file": "data/usage.parquet", "fail": round % 2 == 1}),
        )
        .await;
        self.beat(4.0).await;

        // Nobody can take this one.
        self.create_task(7, "Deploy to the cluster", &["kubernetes"], json!({}))
            .await;
        self.beat(2.0).await;
    }
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Scenario 5: the member with the most matching competencies gets the task.
fn auto_assign(world: &Arc<World>, event: &Event) {
    let Some(circle) = event.circle_id.or_else(|| event.data["circle_id"].as_i64()) else {
        return;
    };
    let needs = strings(&event.data["required_competencies"]);
    let best = ROSTER
        .iter()
        .filter(|agent| agent.circle == circle)
        .map(|agent| {
            let score = agent
                .competencies
                .iter()
                .filter(|c| needs.contains(c))
                .count();
            (score, agent)
        })
        .filter(|(score, _)| *score > 0)
        .max_by_key(|(score, agent)| (*score, std::cmp::Reverse(agent.id)));
    let follow_up = match best {
        Some((score, agent)) => {
            let mut data = event.data.clone();
            if let Some(map) = data.as_object_mut() {
                map.insert("assigned_agent_id".into(), agent.id.into());
                map.insert("score".into(), score.into());
            }
            (EventType::TaskAssigned, Some(agent.id), data)
        }
        None => (
            EventType::SystemWarning,
            None,
            json!({
                "message": format!("no member of circle {circle} has any of {needs:?}"),
                "task_id": event.data["task_id"],
            }),
        ),
    };
    let follow_up = move || {
        let (event_type, agent, data) = follow_up;
        let event = Event::new(event_type).with_data(data);
        match agent {
            Some(agent) => event.with_source_agent(agent),
            None => event,
        }
    };
    let cause = event.clone();
    world.later(1.0, event, move || scoped(follow_up(), &cause));
}

/// Copies the circle and project of `cause` onto `event`.
fn scoped(mut event: Event, cause: &Event) -> Event {
    event.circle_id = cause.circle_id;
    event.project_id = cause.project_id;
    event
}

/// Agents finishing tasks: start, write the file, complete (or fail), one
/// beat apart, each step caused by the one before.
fn work(world: &Arc<World>, assigned: &Event) {
    let Some(agent) = assigned.source_agent_id else {
        return;
    };
    let assigned = assigned.clone();
    let runtime = world.runtime.clone();
    let world = Arc::clone(world);
    let beat = world.pace.mul_f64(1.2);
    runtime.spawn(async move {
        let task_id = assigned.data["task_id"].clone();
        let step = |event_type, data| {
            scoped(Event::new(event_type), &assigned)
                .with_source_agent(agent)
                .with_data(data)
        };
        let mut previous = assigned.clone();
        let mut steps: Vec<Box<dyn FnOnce() -> Event + Send>> = Vec::new();
        steps.push(Box::new({
            let task_id = task_id.clone();
            move || step(EventType::TaskStarted, json!({"task_id": task_id}))
        }));
        if let Some(file) = assigned.data["file"].as_str().map(str::to_owned) {
            let task_id = task_id.clone();
            steps.push(Box::new(move || {
                step(
                    EventType::AgentToolExecuted,
                    json!({"tool_name": "fs_write", "params": {"path": file}, "task_id": task_id}),
                )
            }));
        }
        if assigned.data["fail"].as_bool() == Some(true) {
            steps.push(Box::new(move || {
                step(
                    EventType::TaskFailed,
                    json!({"task_id": task_id, "error": "source dataset is missing"}),
                )
            }));
        } else {
            let mut data = json!({"task_id": task_id, "result": "success", "duration_ms": 2100});
            if let Some(output) = assigned.data.get("output_file") {
                data["output_file"] = output.clone();
            }
            steps.push(Box::new(move || step(EventType::TaskCompleted, data)));
        }
        for make in steps {
            tokio::time::sleep(beat).await;
            let Some(bus) = world.live_bus() else { return };
            // Stamped here rather than by `with_cause`: the next step needs
            // this one's causal ids, and the bus stamps its own copy.
            let event = make().caused_by(&previous);
            bus.publish(event.clone()).await;
            previous = event;
        }
    });
}

/// Scenario 4: two agents writing one file.
fn detect_conflicts(world: &Arc<World>, event: &Event) {
    let Some(agent) = event.source_agent_id else {
        return;
    };
    let mut locks = world
        .file_locks
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if event.event_type != EventType::AgentToolExecuted {
        locks.retain(|_, holder| *holder != agent);
        return;
    }
    let tool = event.data["tool_name"].as_str();
    if !matches!(tool, Some("fs_write" | "fs_edit")) {
        return;
    }
    let Some(path) = event.data["params"]["path"].as_str() else {
        return;
    };
    match locks.get(path) {
        Some(&holder) if holder != agent => {
            let cause = event.clone();
            let data = json!({"file_path": path, "agent1_id": holder, "agent2_id": agent});
            world.later(0.3, event, move || {
                scoped(Event::new(EventType::TaskConflictDetected), &cause).with_data(data)
            });
        }
        Some(_) => {}
        None => {
            locks.insert(path.to_owned(), agent);
        }
    }
}

/// Scenario 1: in circle 5 a teammate processes a completed task's output.
fn pick_up_output(world: &Arc<World>, completed: &Event) {
    let Some(output) = completed.data["output_file"].as_str() else {
        return;
    };
    let Some(teammate) = ROSTER
        .iter()
        .find(|agent| agent.circle == 5 && Some(agent.id) != completed.source_agent_id)
    else {
        return;
    };
    let cause = completed.clone();
    let data = json!({"tool_name": "fs_read", "params": {"path": output}});
    let teammate = teammate.id;
    world.later(1.0, completed, move || {
        scoped(Event::new(EventType::AgentToolExecuted), &cause)
            .with_source_agent(teammate)
            .with_data(data)
    });
}

/// Scenario 2: a circle member is notified of shared knowledge and recalls it.
fn recall(world: &Arc<World>, shared: &Event) {
    let circle = shared
        .circle_id
        .or_else(|| shared.data["scope_id"].as_i64());
    let Some(listener) = ROSTER
        .iter()
        .find(|agent| Some(agent.circle) == circle && Some(agent.id) != shared.source_agent_id)
    else {
        return;
    };
    let cause = shared.clone();
    let data = json!({"memory_id": shared.data["memory_id"], "content": shared.data["content"]});
    let listener = listener.id;
    world.later(1.0, shared, move || {
        scoped(Event::new(EventType::MemoryRecalled), &cause)
            .with_source_agent(listener)
            .with_data(data)
    });
}

/// The metrics exporter's subscription name.
const EXPORTER: &str = "metrics-exporter";

/// What goes wrong for the exporter with one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trouble {
    /// The first attempt fails; the retry succeeds.
    Blip,
    /// Every attempt fails, until the backend recovers.
    Outage,
    /// The backend is back: the next attempt (a retry or a redrive) succeeds.
    Recovered,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The failing handler. On every third new event the exporter "cannot
/// reach" its backend once (a retry delivers it); on the second new event
/// and every fifth after it the backend is down until
/// [`Demo::recover_exporter`] (the event becomes a dead letter). Each new
/// failure reports a `system.error`; the other handlers of that event still
/// run, and the bus retries it in the background.
fn export_metrics(world: &Arc<World>, completed: &Event) -> Result<(), String> {
    const BLIP: &str = "metrics exporter: connection refused (simulated)";
    const OUTAGE: &str = "metrics exporter: backend down (simulated outage)";
    let mut troubles = lock(&world.exporter_trouble);
    let trouble = match troubles.get(&completed.id) {
        Some(Trouble::Outage) => return Err(OUTAGE.to_owned()),
        Some(Trouble::Blip | Trouble::Recovered) => {
            troubles.remove(&completed.id);
            return Ok(());
        }
        None => match world.exported.fetch_add(1, Ordering::Relaxed) + 1 {
            n if n % 5 == 2 => Trouble::Outage,
            n if n % 3 == 0 => Trouble::Blip,
            _ => return Ok(()),
        },
    };
    troubles.insert(completed.id, trouble);
    drop(troubles);
    let message = if trouble == Trouble::Outage {
        OUTAGE
    } else {
        BLIP
    };
    let cause = completed.clone();
    world.later(0.3, completed, move || {
        scoped(Event::new(EventType::SystemError), &cause)
            .with_data(json!({"handler": EXPORTER, "error": message, "event_id": cause.id}))
    });
    Err(message.to_owned())
}

impl Demo {
    /// A sentence for the demo's notable events, or `None` for routine ones.
    ///
    /// ```
    /// use agentbus::{Event, EventType};
    /// use agentbus_cli::Demo;
    /// use serde_json::json;
    ///
    /// let conflict = Event::new(EventType::TaskConflictDetected)
    ///     .with_data(json!({"file_path": "src/db/pool.rs", "agent1_id": 1, "agent2_id": 2}));
    /// assert_eq!(
    ///     Demo::narrate(&conflict).unwrap(),
    ///     "conflict: agent 1 (Ada) and agent 2 (Brook) both write src/db/pool.rs"
    /// );
    /// assert_eq!(Demo::narrate(&Event::new(EventType::TaskStarted)), None);
    /// ```
    pub fn narrate(event: &Event) -> Option<String> {
        let data = &event.data;
        let who = agent_label(event.source_agent_id);
        let text = |key: &str| data[key].as_str().unwrap_or("?").to_owned();
        let line = match event.event_type {
            EventType::CircleCreated => format!(
                "circle {} \"{}\" created",
                event.circle_id.unwrap_or_default(),
                text("name")
            ),
            EventType::CircleMemberAdded => format!(
                "{who} joined circle {} ({})",
                event.circle_id.unwrap_or_default(),
                strings(&data["competencies"]).join(", ")
            ),
            EventType::TaskCreated => format!(
                "task {} created in circle {}: {} (needs {})",
                data["task_id"],
                event.circle_id.unwrap_or_default(),
                text("title"),
                strings(&data["required_competencies"]).join(", ")
            ),
            EventType::TaskAssigned => format!(
                "task {} assigned to {who} ({} matching competencies)",
                data["task_id"], data["score"]
            ),
            EventType::TaskCompleted => match data["output_file"].as_str() {
                Some(output) => format!("{who} completed task {} -> {output}", data["task_id"]),
                None => format!("{who} completed task {}", data["task_id"]),
            },
            EventType::TaskFailed => {
                format!("{who} failed task {}: {}", data["task_id"], text("error"))
            }
            EventType::TaskConflictDetected => format!(
                "conflict: {} and {} both write {}",
                agent_label(data["agent1_id"].as_i64()),
                agent_label(data["agent2_id"].as_i64()),
                text("file_path")
            ),
            EventType::AgentToolExecuted if data["tool_name"] == "fs_read" => {
                format!(
                    "{who} picks up {}",
                    data["params"]["path"].as_str().unwrap_or("?")
                )
            }
            EventType::MemoryShared => format!(
                "{who} shared with circle {}: \"{}\"",
                event.circle_id.unwrap_or_default(),
                text("content")
            ),
            EventType::MemoryRecalled => format!(
                "{who} was notified and recalled memory {}",
                data["memory_id"]
            ),
            EventType::SystemError => format!("handler failed: {}", text("error")),
            EventType::SystemWarning if data.get("redriven").is_some() => text("message"),
            EventType::SystemWarning => format!("warning: {}", text("message")),
            _ => return None,
        };
        Some(line)
    }
}
