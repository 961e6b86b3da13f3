//! Event sourcing: rebuild the specification's circle task board from
//! stored events with a `Projection`, snapshot it, and resume from the
//! snapshot when more events arrive.
//!
//! `cargo run -p agentbus-store --example task_board`

use std::collections::BTreeMap;

use agentbus::{Event, EventBus, EventType, EventTypeSet};
use agentbus_store::{Projection, ReadQuery, Recorder, SqliteStore, StoredEvent};
use serde_json::json;

/// Where a task stands on the board.
#[derive(Clone, Debug, PartialEq)]
enum Column {
    Todo,
    Assigned { agent: i64 },
    InProgress { agent: i64 },
    Done { result: String },
    Failed { error: String },
}

#[derive(Clone, Debug, PartialEq)]
struct Task {
    title: String,
    column: Column,
    conflicts: u32,
}

/// Circle id -> task id -> task.
#[derive(Clone, Debug, Default, PartialEq)]
struct Board(BTreeMap<i64, BTreeMap<i64, Task>>);

impl Board {
    fn apply(&mut self, stored: &StoredEvent) {
        let event = &stored.event;
        let (Some(circle), Some(task_id)) = (event.circle_id, event.data["task_id"].as_i64())
        else {
            return;
        };
        let tasks = self.0.entry(circle).or_default();
        let agent = event.source_agent_id.unwrap_or_default();
        let text = |field: &str| event.data[field].as_str().unwrap_or_default().to_owned();
        if event.event_type == EventType::TaskCreated {
            tasks.insert(
                task_id,
                Task {
                    title: text("title"),
                    column: Column::Todo,
                    conflicts: 0,
                },
            );
            return;
        }
        let Some(task) = tasks.get_mut(&task_id) else {
            return;
        };
        match event.event_type {
            EventType::TaskAssigned => {
                let agent = event.data["agent_id"].as_i64().unwrap_or(agent);
                task.column = Column::Assigned { agent };
            }
            EventType::TaskStarted => task.column = Column::InProgress { agent },
            EventType::TaskCompleted => {
                task.column = Column::Done {
                    result: text("result"),
                }
            }
            EventType::TaskFailed => {
                task.column = Column::Failed {
                    error: text("error"),
                }
            }
            EventType::TaskConflictDetected => task.conflicts += 1,
            _ => {}
        }
    }

    fn print(&self) {
        for (circle, tasks) in &self.0 {
            println!("circle {circle}");
            for (id, task) in tasks {
                let conflicts = if task.conflicts > 0 {
                    format!(" ({} conflicts)", task.conflicts)
                } else {
                    String::new()
                };
                println!("  #{id} {:<24} {:?}{conflicts}", task.title, task.column);
            }
        }
    }
}

fn fold(board: &mut Board, stored: &StoredEvent) {
    board.apply(stored);
}

fn task_event(
    kind: EventType,
    circle: i64,
    task: i64,
    agent: i64,
    data: serde_json::Value,
) -> Event {
    let mut data = data;
    data["task_id"] = json!(task);
    Event::new(kind)
        .with_data(data)
        .with_circle(circle)
        .with_source_agent(agent)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bus = EventBus::new();
    let store = SqliteStore::open_in_memory()?;
    let recorder = Recorder::attach(&bus, store.clone());
    use EventType::*;
    let day_one = [
        task_event(TaskCreated, 5, 1, 0, json!({"title": "index the docs"})),
        task_event(
            TaskCreated,
            5,
            2,
            0,
            json!({"title": "write the benchmark"}),
        ),
        task_event(TaskCreated, 7, 3, 0, json!({"title": "review the schema"})),
        task_event(TaskAssigned, 5, 1, 0, json!({"agent_id": 1})),
        task_event(TaskStarted, 5, 1, 1, json!({})),
        task_event(TaskAssigned, 5, 2, 0, json!({"agent_id": 2})),
        task_event(
            TaskConflictDetected,
            5,
            2,
            2,
            json!({"file_path": "bench.rs"}),
        ),
        task_event(TaskCompleted, 5, 1, 1, json!({"result": "success"})),
        // Not a task event: the projection's query leaves it out.
        Event::new(MemoryShared).with_circle(5),
    ];
    for event in day_one {
        bus.publish(event).await;
    }
    recorder.flush().await?;

    let tasks = EventTypeSet::from([
        TaskCreated,
        TaskAssigned,
        TaskStarted,
        TaskCompleted,
        TaskFailed,
        TaskConflictDetected,
    ]);
    let query = ReadQuery::new().event_type(tasks);
    let mut board = Projection::new(Board::default(), query.clone(), fold);
    board.catch_up(&store).await?;
    println!("after day one (sequence {}):", board.sequence());
    board.state().print();
    let (snapshot, at) = board.snapshot(); // save these anywhere

    for event in [
        task_event(TaskStarted, 5, 2, 2, json!({})),
        task_event(TaskFailed, 5, 2, 2, json!({"error": "timeout"})),
        task_event(TaskAssigned, 7, 3, 0, json!({"agent_id": 3})),
    ] {
        bus.publish(event).await;
    }
    recorder.flush().await?;

    // Resume from the snapshot: only the new events are folded.
    let mut resumed = Projection::resume(snapshot, at, query.clone(), fold);
    resumed.catch_up(&store).await?;
    println!("after day two (sequence {}):", resumed.sequence());
    resumed.state().print();

    let mut rebuilt = Projection::new(Board::default(), query, fold);
    rebuilt.catch_up(&store).await?;
    assert_eq!(rebuilt.state(), resumed.state(), "resume equals a rebuild");
    recorder.close().await?;
    Ok(())
}
