//! The event filters shared by tail and history.

use agentbus::{EventFilter, EventType, EventTypeSet};

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
    /// The flags as the core's [`EventFilter`] (no `--type`: every type).
    ///
    /// ```
    /// use agentbus::{EventFilter, EventType};
    /// use agentbus_cli::FilterArgs;
    ///
    /// let flags = FilterArgs {
    ///     types: vec![EventType::TaskFailed],
    ///     agent: Some(7),
    ///     ..FilterArgs::default()
    /// };
    /// assert_eq!(
    ///     flags.filter(),
    ///     EventFilter::new().event_type(EventType::TaskFailed).source_agent_id(7)
    /// );
    /// assert_eq!(FilterArgs::default().filter(), EventFilter::new());
    /// ```
    pub fn filter(&self) -> EventFilter {
        let mut filter = EventFilter::new();
        if !self.types.is_empty() {
            filter = filter.event_type(self.types.iter().copied().collect::<EventTypeSet>());
        }
        if let Some(circle) = self.circle {
            filter = filter.circle_id(circle);
        }
        if let Some(agent) = self.agent {
            filter = filter.source_agent_id(agent);
        }
        if let Some(project) = self.project {
            filter = filter.project_id(project);
        }
        filter
    }

    /// The filters as query parameters, in the API's names (types in
    /// declaration order).
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
        query_parameters(&self.filter())
    }
}

/// `filter` as the query parameters of `GET /api/events` and `GET /ws`
/// (types in declaration order; nothing for an open criterion).
pub(crate) fn query_parameters(filter: &EventFilter) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    let types = filter.get_event_types();
    if types.len() < EventType::COUNT {
        let names: Vec<&str> = types.iter().map(EventType::as_str).collect();
        query.push(("type", names.join(",")));
    }
    for (name, value) in [
        ("circle_id", filter.get_circle_id()),
        ("source_agent_id", filter.get_source_agent_id()),
        ("project_id", filter.get_project_id()),
    ] {
        if let Some(value) = value {
            query.push((name, value.to_string()));
        }
    }
    if let Some(chain) = filter.get_correlation_id() {
        query.push(("correlation_id", chain.to_string()));
    }
    query
}

#[cfg(test)]
mod tests {
    use agentbus::{Event, EventFilter, EventType, EventTypeSet};

    use super::query_parameters;

    /// Every criterion becomes the parameter the web API parses back into
    /// the same filter; an open criterion, including "every type", none.
    #[test]
    fn each_criterion_is_one_parameter() {
        let chain = Event::new(EventType::TaskCreated).id;
        let filter = EventFilter::new()
            .event_type([EventType::TaskFailed, EventType::AgentStarted])
            .circle_id(5)
            .source_agent_id(-7)
            .project_id(2)
            .correlation_id(chain);
        assert_eq!(
            query_parameters(&filter),
            [
                ("type", "agent.started,task.failed".to_owned()),
                ("circle_id", "5".to_owned()),
                ("source_agent_id", "-7".to_owned()),
                ("project_id", "2".to_owned()),
                ("correlation_id", chain.to_string()),
            ]
        );
        assert!(query_parameters(&EventFilter::new()).is_empty());
        let every_type = EventFilter::new().event_type(EventTypeSet::all());
        assert!(query_parameters(&every_type).is_empty());
    }
}
