//! agentbus-cli (work in progress).
