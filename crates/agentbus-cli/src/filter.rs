//! The event filters shared by tail and history.

use agentbus::EventType;

/// Parses an event type's dotted name; clap lists the names in help and
/// suggests the nearest one on a typo.
pub(crate) fn event_type_parser() -> impl clap::builder::TypedValueParser<Value = EventType> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(EventType::ALL.map(EventType::as_str))
        .try_map(|name| name.parse::<EventType>())
}

/// Which events to show: the query parameters of `GET /api/events` and `GET /ws`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct FilterArgs {
    /// Only these types (comma-separated or repeated), e.g. `task.completed,memory.shared`.
    #[arg(long = "type", value_name = "TYPE", value_delimiter = ',',
          value_parser = event_type_parser(), hide_possible_values = true)]
    pub types: Vec<EventType>,
    /// Only events of this circle.
    #[arg(long, value_name = "ID")]
    pub circle: Option<i64>,
    /// Only events from this source agent.
    #[arg(long, value_name = "ID")]
    pub agent: Option<i64>,
    /// Only events of this project.
    #[arg(long, value_name = "ID")]
    pub project: Option<i64>,
}

impl FilterArgs {
    /// The filters as query parameters, in the API's names.
    ///
    /// ```
    /// use agentbus::EventType;
    /// use agentbus_cli::FilterArgs;
    ///
    /// let filter = FilterArgs {
    ///     types: vec![EventType::TaskCompleted, EventType::TaskFailed],
    ///     circle: Some(5),
    ///     ..FilterArgs::default()
    /// };
    /// assert_eq!(
    ///     filter.query(),
    ///     [("type", "task.completed,task.failed".to_owned()), ("circle_id", "5".to_owned())]
    /// );
    /// ```
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        if !self.types.is_empty() {
            let names: Vec<&str> = self.types.iter().map(|t| t.as_str()).collect();
            query.push(("type", names.join(",")));
        }
        for (name, value) in [
            ("circle_id", self.circle),
            ("source_agent_id", self.agent),
            ("project_id", self.project),
        ] {
            if let Some(value) = value {
                query.push((name, value.to_string()));
            }
        }
        query
    }
}
