//! Colours and the one-line form of an event, shared by tail, history,
//! replay and the demo.

use std::io::IsTerminal;
use std::time::SystemTime;

use agentbus::{Event, EventType};

/// When to colour output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when writing to a terminal and `NO_COLOR` is unset or empty.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// ANSI styling that is either on or off for one output stream.
///
/// ```
/// use agentbus_cli::{ColorChoice, Palette};
///
/// let plain = Palette::new(false);
/// assert_eq!(plain.error("error"), "error");
/// assert_eq!(Palette::new(true).error("error"), "\u{1b}[1;31merror\u{1b}[0m");
/// assert!(!Palette::stdout(ColorChoice::Never).enabled());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Palette {
    enabled: bool,
}

const RESET: &str = "\x1b[0m";

impl Palette {
    /// A palette that colours when `enabled`.
    pub const fn new(enabled: bool) -> Self {
        Self { enabled }
    }

    /// The palette for stdout under `choice`.
    pub fn stdout(choice: ColorChoice) -> Self {
        Self::new(decide(choice, std::io::stdout().is_terminal()))
    }

    /// The palette for stderr under `choice`.
    pub fn stderr(choice: ColorChoice) -> Self {
        Self::new(decide(choice, std::io::stderr().is_terminal()))
    }

    /// Whether this palette colours.
    pub const fn enabled(self) -> bool {
        self.enabled
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.enabled {
            format!("\x1b[{code}m{text}{RESET}")
        } else {
            text.to_owned()
        }
    }

    /// Bold red, for errors.
    pub fn error(self, text: &str) -> String {
        self.paint("1;31", text)
    }

    /// Yellow, for warnings such as lagged events.
    pub fn warning(self, text: &str) -> String {
        self.paint("33", text)
    }

    /// Dim, for timestamps, sequences and ids.
    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }

    /// Bold, for headings and addresses.
    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    /// `text` in the colour of `event_type`'s domain: agent cyan, memory
    /// magenta, circle blue, task green, conversation white, system yellow;
    /// failures, errors and conflicts red.
    pub fn event_type(self, event_type: EventType, text: &str) -> String {
        self.paint(type_colour(event_type), text)
    }

    /// One line for `event`: time, sequence (when stored), type, scope,
    /// causation and data.
    ///
    /// ```
    /// use agentbus::{Event, EventType};
    /// use agentbus_cli::Palette;
    /// use serde_json::json;
    ///
    /// let event = Event::new(EventType::TaskCompleted).with_circle(5).with_data(json!({"task_id": 1}));
    /// let line = Palette::new(false).event_line(&event, Some(42));
    /// assert!(line.contains("#42"));
    /// assert!(line.contains("task.completed"));
    /// assert!(line.contains("circle=5"));
    /// assert!(line.ends_with(r#"{"task_id":1}"#));
    /// ```
    pub fn event_line(self, event: &Event, sequence: Option<u64>) -> String {
        let mut line = self.dim(&clock(event.timestamp));
        line.push(' ');
        if let Some(sequence) = sequence {
            line.push_str(&self.dim(&format!("#{sequence:<6}")));
            line.push(' ');
        }
        let name = format!("{:<24}", event.event_type.as_str());
        line.push_str(&self.event_type(event.event_type, &name));
        for (label, value) in [
            ("circle", event.circle_id),
            ("agent", event.source_agent_id),
            ("project", event.project_id),
        ] {
            if let Some(value) = value {
                line.push_str(&format!(" {label}={value}"));
            }
        }
        if let Some(cause) = event.causation_id {
            line.push(' ');
            line.push_str(&self.dim(&format!("<-{}", short_id(&cause.to_string()))));
        }
        let empty = event.data.as_object().is_some_and(|map| map.is_empty());
        if !empty {
            line.push(' ');
            line.push_str(&event.data.to_string());
        }
        line.trim_end().to_owned()
    }
}

fn decide(choice: ColorChoice, is_terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            is_terminal && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
        }
    }
}

fn type_colour(event_type: EventType) -> &'static str {
    use EventType::*;
    match event_type {
        AgentTaskFailed | TaskFailed | TaskConflictDetected | SystemError => "1;31",
        SystemWarning => "33",
        _ => match event_type.as_str().split('.').next() {
            Some("agent") => "36",
            Some("memory") => "35",
            Some("circle") => "34",
            Some("task") => "32",
            Some("conversation") => "37",
            _ => "33",
        },
    }
}

/// `HH:MM:SS.mmm` in UTC.
fn clock(timestamp: SystemTime) -> String {
    let text = humantime::format_rfc3339_millis(timestamp).to_string();
    // "2026-12-01T13:52:48.123Z"
    text.get(11..23).map_or(text.clone(), str::to_owned)
}

/// The last 8 characters of an id: the random part, enough to tell events
/// of one run apart by eye.
fn short_id(id: &str) -> &str {
    &id[id.len().saturating_sub(8)..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_the_utc_time_of_day() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(3_723_004);
        assert_eq!(clock(t), "01:02:03.004");
    }

    #[test]
    fn failures_are_red_and_domains_differ() {
        assert_eq!(type_colour(EventType::TaskFailed), "1;31");
        assert_ne!(
            type_colour(EventType::AgentStarted),
            type_colour(EventType::MemoryShared)
        );
    }

    #[test]
    fn always_and_never_override_the_terminal() {
        assert!(decide(ColorChoice::Always, false));
        assert!(!decide(ColorChoice::Never, true));
        assert!(!decide(ColorChoice::Auto, false));
    }
}
