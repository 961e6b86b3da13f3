//! [`Schemas`]: a JSON Schema per event type for the event's data.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use agentbus::{Event, EventType, Guard, Rejection, Violation};
use jsonschema::Validator;
use serde_json::Value;

use crate::error::SchemaError;

/// The example schemas, from the data fields the specification's examples
/// use: `(event type, schema text)`.
const SPEC_EXAMPLES: [(EventType, &str); 5] = [
    (
        EventType::TaskCreated,
        include_str!("../schemas/task.created.json"),
    ),
    (
        EventType::TaskCompleted,
        include_str!("../schemas/task.completed.json"),
    ),
    (
        EventType::TaskConflictDetected,
        include_str!("../schemas/task.conflict.detected.json"),
    ),
    (
        EventType::AgentToolExecuted,
        include_str!("../schemas/agent.tool.executed.json"),
    ),
    (
        EventType::MemoryShared,
        include_str!("../schemas/memory.shared.json"),
    ),
];

/// Keeps out an event whose `data` does not match the JSON Schema of its
/// type.
///
/// # Behaviour
///
/// - Each schema is compiled once, when added. Its draft comes from its
///   `$schema` (draft 2020-12, 2019-09, 7, 6 and 4 are understood); without
///   one, 2020-12. `$ref`s resolve only inside the schema itself: nothing
///   is ever fetched over the network or from files, and a schema that
///   needs that fails to compile ([`SchemaError::Compile`]).
/// - A mismatch is [`Rejection::Invalid`] listing every error found, each
///   with a JSON pointer into `data` and a message.
/// - An event whose type has no schema passes, unless [`strict`](Self::strict):
///   then it is rejected with one violation at the root.
/// - Formats (`"format": "email"`, ...) are not checked (annotations only,
///   as draft 2020-12 says by default).
/// - Clones share the counter [`invalid`](Self::invalid).
///
/// ```
/// use agentbus::{Event, EventBus, EventType, Rejection};
/// use agentbus_guard::Schemas;
/// use serde_json::json;
///
/// let schemas = Schemas::new()
///     .schema(EventType::TaskCompleted, json!({"type": "object", "required": ["task_id"]}))?;
/// let bus = EventBus::builder().guard(schemas).build();
///
/// let rejected = bus
///     .try_publish_blocking(Event::new(EventType::TaskCompleted).with_data(json!({"result": "ok"})))
///     .unwrap_err();
/// let Rejection::Invalid { violations } = rejected.reason() else { unreachable!() };
/// assert_eq!(violations[0].pointer, "");
/// assert_eq!(violations[0].message, r#""task_id" is a required property"#);
/// assert!(bus.try_publish_blocking(Event::new(EventType::TaskCompleted).with_data(json!({"task_id": 1}))).is_ok());
/// assert!(bus.try_publish_blocking(Event::new(EventType::AgentStarted)).is_ok()); // no schema, not strict
/// # Ok::<(), agentbus_guard::SchemaError>(())
/// ```
#[derive(Clone)]
pub struct Schemas {
    by_type: Vec<Option<Arc<Validator>>>,
    strict: bool,
    invalid: Arc<AtomicU64>,
}

impl Default for Schemas {
    fn default() -> Self {
        Self::new()
    }
}

impl Schemas {
    /// No schemas yet: every event passes until some are added (or
    /// [`strict`](Self::strict)).
    pub fn new() -> Self {
        Self {
            by_type: vec![None; EventType::COUNT],
            strict: false,
            invalid: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Adds (or replaces) the schema of `event_type`.
    pub fn schema(mut self, event_type: EventType, schema: Value) -> Result<Self, SchemaError> {
        let validator = compile(event_type, &schema, None)?;
        self.by_type[event_type.index()] = Some(Arc::new(validator));
        Ok(self)
    }

    /// Reads every `<event.type>.json` file in `dir` (say
    /// `task.completed.json`); other files are ignored. A `.json` file whose
    /// name is not an event type is an error, so a typo is not silently
    /// left unchecked.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, SchemaError> {
        Self::new().add_dir(dir)
    }

    /// Adds every `<event.type>.json` file in `dir`, as [`from_dir`](Self::from_dir).
    pub fn add_dir(mut self, dir: impl AsRef<Path>) -> Result<Self, SchemaError> {
        let dir = dir.as_ref();
        let io = |source| SchemaError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_some_and(|ext| ext == "json") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        for path in paths {
            let name = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .unwrap_or_default();
            let event_type: EventType = name
                .parse()
                .map_err(|_| SchemaError::UnknownType { path: path.clone() })?;
            let text = std::fs::read_to_string(&path).map_err(|source| SchemaError::Io {
                path: path.clone(),
                source,
            })?;
            let schema: Value =
                serde_json::from_str(&text).map_err(|source| SchemaError::Json {
                    path: path.clone(),
                    source,
                })?;
            let validator = compile(event_type, &schema, Some(&path))?;
            self.by_type[event_type.index()] = Some(Arc::new(validator));
        }
        Ok(self)
    }

    /// The example schemas that ship with this crate, for the event types
    /// the specification's examples give data for (`task.created`,
    /// `task.completed`, `task.conflict.detected`, `agent.tool.executed`,
    /// `memory.shared`); the files are in the crate's `schemas/` directory.
    pub fn spec_examples() -> Self {
        let mut schemas = Self::new();
        for (event_type, text) in SPEC_EXAMPLES {
            let schema: Value = serde_json::from_str(text).expect("shipped schemas are JSON");
            let validator = compile(event_type, &schema, None).expect("shipped schemas compile");
            schemas.by_type[event_type.index()] = Some(Arc::new(validator));
        }
        schemas
    }

    /// Rejects events whose type has no schema.
    #[must_use]
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }

    /// Whether events without a schema are rejected.
    pub fn is_strict(&self) -> bool {
        self.strict
    }

    /// The event types that have a schema.
    pub fn event_types(&self) -> impl Iterator<Item = EventType> + '_ {
        EventType::ALL
            .into_iter()
            .filter(|t| self.by_type[t.index()].is_some())
    }

    /// Every violation of `event` (none if it passes), without counting it.
    pub fn validate(&self, event: &Event) -> Result<(), Vec<Violation>> {
        let Some(validator) = &self.by_type[event.event_type.index()] else {
            if self.strict {
                return Err(vec![Violation::new(
                    "",
                    format!("no schema for event type {} (strict)", event.event_type),
                )]);
            }
            return Ok(());
        };
        if validator.is_valid(&event.data) {
            return Ok(());
        }
        Err(validator
            .iter_errors(&event.data)
            .map(|error| Violation::new(error.instance_path().as_str(), error.to_string()))
            .collect())
    }

    /// Events rejected so far.
    pub fn invalid(&self) -> u64 {
        // Relaxed: a counter, ordering nothing.
        self.invalid.load(Ordering::Relaxed)
    }
}

fn compile(
    event_type: EventType,
    schema: &Value,
    path: Option<&Path>,
) -> Result<Validator, SchemaError> {
    jsonschema::validator_for(schema).map_err(|error| SchemaError::Compile {
        event_type,
        path: path.map(PathBuf::from),
        message: error.to_string(),
    })
}

impl Guard for Schemas {
    fn check(&self, event: &Event) -> Result<(), Rejection> {
        self.validate(event).map_err(|violations| {
            self.invalid.fetch_add(1, Ordering::Relaxed);
            Rejection::Invalid { violations }
        })
    }
}

impl std::fmt::Debug for Schemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schemas")
            .field("event_types", &self.event_types().collect::<Vec<_>>())
            .field("strict", &self.strict)
            .field("invalid", &self.invalid())
            .finish()
    }
}
