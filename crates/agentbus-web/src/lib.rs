//! agentbus-web (work in progress).
