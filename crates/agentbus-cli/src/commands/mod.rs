//! One file per `agentbus` subcommand: its arguments (`ServeArgs`, ...) and
//! its `run`, which fails with [`CommandError`](crate::CommandError).

pub(crate) mod demo;
pub(crate) mod dlq;
pub(crate) mod history;
pub(crate) mod publish;
pub(crate) mod replay;
pub(crate) mod schema;
pub(crate) mod serve;
pub(crate) mod stats;
pub(crate) mod tail;
