//! agentbus-store (work in progress).
