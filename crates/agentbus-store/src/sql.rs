//! The SQL both backends read with, rendered once: the column list, the
//! `SELECT` of a [`ReadQuery`] and the clamps that map its bounds onto the
//! schemas' `BIGINT` columns. The backends differ only in placeholders
//! (`?N` for SQLite, `$N` for PostgreSQL) and in how a type list is passed.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use agentbus::{DeadLetterQuery, EventId, EventType, Order};

use crate::query::ReadQuery;

/// The columns of a stored event, in the order the backends decode them.
pub(crate) const COLUMNS: &str = "sequence, id, event_type, source_agent_id, circle_id, \
    project_id, correlation_id, causation_id, timestamp_ns, data, traceparent, tracestate";

/// Both schemas' columns for an event's W3C trace context (schema version
/// 2), added to a version-1 table by `ALTER TABLE`: both nullable, so rows
/// written before keep no trace context.
pub(crate) const ADD_TRACE_CONTEXT: &str =
    "ALTER TABLE agentbus_events ADD COLUMN traceparent TEXT;
ALTER TABLE agentbus_events ADD COLUMN tracestate TEXT;";

/// Both schemas' dead-letter table (schema version 3): the event whole, as
/// its JSON, so a letter needs no row of `agentbus_events` (see
/// [`DeadLetterStore`](crate::DeadLetterStore)).
pub(crate) const ADD_DEAD_LETTERS: &str = "CREATE TABLE agentbus_dead_letters (
    id                BIGINT PRIMARY KEY,
    event             TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    subscription_id   BIGINT NOT NULL,
    subscription_name TEXT,
    error             TEXT NOT NULL,
    attempts          BIGINT NOT NULL,
    first_failed_ns   BIGINT NOT NULL,
    last_failed_ns    BIGINT NOT NULL
);
CREATE INDEX agentbus_dead_letters_subscription ON agentbus_dead_letters (subscription_name);";

/// The columns of a stored dead letter, in the order the backends decode
/// them and write them.
pub(crate) const LETTER_COLUMNS: &str = "id, event, event_type, subscription_id, \
    subscription_name, error, attempts, first_failed_ns, last_failed_ns";

/// Which database the SQL is for.
// A build with one backend renders for that one only.
#[cfg_attr(not(all(feature = "sqlite", feature = "postgres")), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `?N` placeholders; a type list is written into the SQL (rusqlite
    /// binds no arrays), so each list is its own cached statement.
    Sqlite,
    /// `$N` placeholders; a type list is one `text[]` parameter, so every
    /// list shares a statement.
    Postgres,
}

/// A value bound to a placeholder of a [`Select`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Parameter {
    /// A sequence, an id of a circle, agent or project, or nanoseconds.
    Integer(i64),
    /// An event id.
    Id(EventId),
    /// A text value.
    Text(String),
    /// Event type names ([`Dialect::Postgres`] only).
    Types(Vec<&'static str>),
}

/// A rendered query: the SQL and its parameters, `parameters[i]` bound to
/// placeholder `i + 1`.
#[derive(Debug)]
pub(crate) struct Select {
    pub(crate) sql: String,
    pub(crate) parameters: Vec<Parameter>,
}

impl Dialect {
    fn placeholder(self, n: usize) -> String {
        match self {
            Self::Sqlite => format!("?{n}"),
            Self::Postgres => format!("${n}"),
        }
    }
}

/// The `SELECT` for `query`, or `None` when it cannot match anything (a
/// limit of 0, or no event type).
pub(crate) fn select(query: &ReadQuery, dialect: Dialect) -> Option<Select> {
    let filter = query.get_filter();
    let types = filter.get_event_types();
    if query.get_limit() == 0 || types.is_empty() {
        return None;
    }
    let mut select = Select {
        sql: format!("SELECT {COLUMNS} FROM agentbus_events WHERE "),
        parameters: Vec::new(),
    };
    select.condition(
        dialect,
        "sequence",
        ">",
        Parameter::Integer(clamp_sequence(query.get_after())),
    );
    if types.len() < EventType::COUNT {
        match dialect {
            Dialect::Sqlite => {
                // The names are the crate's own constants: no quoting needed.
                let names: Vec<String> = types.iter().map(|t| format!("'{t}'")).collect();
                let _ = write!(select.sql, " AND event_type IN ({})", names.join(", "));
            }
            Dialect::Postgres => {
                let names = types.iter().map(EventType::as_str).collect();
                select.condition(dialect, "event_type", "= ANY", Parameter::Types(names));
            }
        }
    }
    if let Some(up_to) = query.get_up_to() {
        let up_to = Parameter::Integer(clamp_sequence(up_to));
        select.condition(dialect, "sequence", "<=", up_to);
    }
    for (column, value) in [
        ("circle_id", filter.get_circle_id()),
        ("source_agent_id", filter.get_source_agent_id()),
        ("project_id", filter.get_project_id()),
    ] {
        if let Some(value) = value {
            select.condition(dialect, column, "=", Parameter::Integer(value));
        }
    }
    if let Some(since) = query.get_since() {
        let since = Parameter::Integer(clamp_nanos(since));
        select.condition(dialect, "timestamp_ns", ">=", since);
    }
    if let Some(until) = query.get_until() {
        let until = Parameter::Integer(clamp_nanos(until));
        select.condition(dialect, "timestamp_ns", "<", until);
    }
    if let Some(chain) = filter.get_correlation_id() {
        // The core's rule (`Event::chain_id`): the chain's first event has
        // no correlation id and belongs by its own id. Each side of the OR
        // is an index lookup (the partial correlation index, the unique id
        // index).
        select.parameters.push(Parameter::Id(chain));
        let n = dialect.placeholder(select.parameters.len());
        let _ = write!(
            select.sql,
            " AND (correlation_id = {n} OR (correlation_id IS NULL AND id = {n}))"
        );
    }
    let order = match query.get_order() {
        Order::Ascending => "ASC",
        Order::Descending => "DESC",
    };
    let limit = i64::try_from(query.get_limit()).unwrap_or(i64::MAX);
    let _ = write!(select.sql, " ORDER BY sequence {order} LIMIT {limit}");
    Some(select)
}

/// The `SELECT` of the dead letters `query` selects.
pub(crate) fn select_dead_letters(query: &DeadLetterQuery, dialect: Dialect) -> Select {
    let mut select = Select {
        sql: format!("SELECT {LETTER_COLUMNS} FROM agentbus_dead_letters WHERE "),
        parameters: Vec::new(),
    };
    let after = query.get_after().map_or(0, crate::dead_letters::clamp_id);
    select.condition(dialect, "id", ">", Parameter::Integer(after));
    if let Some(before) = query.get_before() {
        let before = Parameter::Integer(crate::dead_letters::clamp_id(before));
        select.condition(dialect, "id", "<", before);
    }
    if let Some(name) = query.get_subscription() {
        select.condition(
            dialect,
            "subscription_name",
            "=",
            Parameter::Text(name.to_owned()),
        );
    }
    if let Some(event_type) = query.get_event_type() {
        let name = Parameter::Text(event_type.as_str().to_owned());
        select.condition(dialect, "event_type", "=", name);
    }
    let limit = i64::try_from(query.max_results()).unwrap_or(i64::MAX);
    let order = if query.is_newest_first() {
        "DESC"
    } else {
        "ASC"
    };
    let _ = write!(select.sql, " ORDER BY id {order} LIMIT {limit}");
    select
}

/// The upsert of one dead letter, its columns bound to placeholders 1 to 9
/// in [`LETTER_COLUMNS`] order.
pub(crate) fn upsert_dead_letter(dialect: Dialect) -> String {
    let placeholders: Vec<String> = (1..=9).map(|n| dialect.placeholder(n)).collect();
    format!(
        "INSERT INTO agentbus_dead_letters ({LETTER_COLUMNS}) VALUES ({}) \
         ON CONFLICT (id) DO UPDATE SET event = excluded.event, event_type = excluded.event_type, \
         subscription_id = excluded.subscription_id, subscription_name = excluded.subscription_name, \
         error = excluded.error, attempts = excluded.attempts, \
         first_failed_ns = excluded.first_failed_ns, last_failed_ns = excluded.last_failed_ns",
        placeholders.join(", ")
    )
}

/// The `SELECT` of the event with one id, bound to placeholder 1.
pub(crate) fn select_by_id(dialect: Dialect) -> String {
    format!(
        "SELECT {COLUMNS} FROM agentbus_events WHERE id = {}",
        dialect.placeholder(1)
    )
}

impl Select {
    /// Appends ` AND {column} {op} {placeholder}` and binds `value` to it.
    fn condition(&mut self, dialect: Dialect, column: &str, op: &str, value: Parameter) {
        if !self.parameters.is_empty() {
            self.sql.push_str(" AND ");
        }
        self.parameters.push(value);
        let placeholder = dialect.placeholder(self.parameters.len());
        // `= ANY` takes its array in parentheses.
        let _ = match op {
            "= ANY" => write!(self.sql, "{column} {op} ({placeholder})"),
            _ => write!(self.sql, "{column} {op} {placeholder}"),
        };
    }
}

/// A sequence as both schemas store it (`BIGINT`), clamped: a cursor past
/// `i64::MAX` is past every stored event, never a negative number.
pub(crate) fn clamp_sequence(sequence: u64) -> i64 {
    i64::try_from(sequence).unwrap_or(i64::MAX)
}

/// Nanoseconds since the epoch for a time bound, clamped to the stored
/// range (`BIGINT` nanoseconds: 1677..2262).
pub(crate) fn clamp_nanos(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use agentbus::{Event, EventFilter, EventType};

    use super::*;

    /// One query with every criterion, rendered for each backend: the same
    /// clauses in the same order, only the placeholders and the type list
    /// differ.
    #[test]
    fn both_dialects_render_the_same_clauses() {
        let chain = Event::new(EventType::TaskCreated).id;
        let filter = EventFilter::new()
            .event_type([EventType::TaskCompleted, EventType::TaskFailed])
            .circle_id(5)
            .source_agent_id(7)
            .project_id(2)
            .correlation_id(chain);
        let query = ReadQuery::from(filter)
            .after(u64::MAX)
            .up_to(9)
            .since(UNIX_EPOCH + Duration::from_nanos(3))
            .until(UNIX_EPOCH - Duration::from_nanos(4))
            .descending()
            .limit(10);

        let sqlite = select(&query, Dialect::Sqlite).unwrap();
        assert_eq!(
            sqlite.sql,
            format!(
                "SELECT {COLUMNS} FROM agentbus_events WHERE sequence > ?1 \
                 AND event_type IN ('task.completed', 'task.failed') AND sequence <= ?2 \
                 AND circle_id = ?3 AND source_agent_id = ?4 AND project_id = ?5 \
                 AND timestamp_ns >= ?6 AND timestamp_ns < ?7 \
                 AND (correlation_id = ?8 OR (correlation_id IS NULL AND id = ?8)) \
                 ORDER BY sequence DESC LIMIT 10"
            )
        );
        use Parameter::{Id, Integer};
        let scalars = [
            Integer(i64::MAX),
            Integer(9),
            Integer(5),
            Integer(7),
            Integer(2),
            Integer(3),
            Integer(-4),
            Id(chain),
        ];
        assert_eq!(sqlite.parameters, scalars);

        let postgres = select(&query, Dialect::Postgres).unwrap();
        assert_eq!(
            postgres.sql,
            format!(
                "SELECT {COLUMNS} FROM agentbus_events WHERE sequence > $1 \
                 AND event_type = ANY ($2) AND sequence <= $3 \
                 AND circle_id = $4 AND source_agent_id = $5 AND project_id = $6 \
                 AND timestamp_ns >= $7 AND timestamp_ns < $8 \
                 AND (correlation_id = $9 OR (correlation_id IS NULL AND id = $9)) \
                 ORDER BY sequence DESC LIMIT 10"
            )
        );
        let mut expected = scalars.to_vec();
        expected.insert(1, Parameter::Types(vec!["task.completed", "task.failed"]));
        assert_eq!(postgres.parameters, expected);
    }

    #[test]
    fn an_open_query_is_a_sequence_range_and_an_empty_one_is_none() {
        let all = select(&ReadQuery::new(), Dialect::Postgres).unwrap();
        assert_eq!(
            all.sql,
            format!(
                "SELECT {COLUMNS} FROM agentbus_events WHERE sequence > $1 \
                 ORDER BY sequence ASC LIMIT {}",
                i64::MAX
            )
        );
        assert_eq!(all.parameters, [Parameter::Integer(0)]);
        assert!(select(&ReadQuery::new().limit(0), Dialect::Sqlite).is_none());
        let no_type = ReadQuery::new().event_type(agentbus::EventTypeSet::empty());
        assert!(select(&no_type, Dialect::Sqlite).is_none());
    }

    #[test]
    fn clamps_keep_bounds_inside_bigint() {
        assert_eq!(clamp_sequence(u64::MAX), i64::MAX);
        assert_eq!(clamp_sequence(7), 7);
        let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 2);
        assert_eq!(clamp_nanos(far), i64::MAX);
        let before = UNIX_EPOCH - Duration::from_secs(1 << 40);
        assert_eq!(clamp_nanos(before), i64::MIN);
    }
}
