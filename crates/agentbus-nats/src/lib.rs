//! agentbus-nats (work in progress).
