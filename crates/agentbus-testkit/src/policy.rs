//! Whether a missing service skips a test or fails it.

/// The environment variable that turns a missing service into a failure.
///
/// `.ci/run` sets it to `1` after installing the services, so a machine
/// where a service cannot start fails the run instead of passing by
/// skipping.
pub const REQUIRE_SERVICES: &str = "AGENTBUS_REQUIRE_SERVICES";

/// Why a service cannot start on this machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{service} cannot start: {why} (install it with `bash .ci/install/{script}`)")]
pub struct Unavailable {
    service: &'static str,
    why: String,
    script: &'static str,
}

impl Unavailable {
    /// `service` cannot start because of `why`; `script` (in
    /// `.ci/install/`) installs it.
    pub fn new(service: &'static str, script: &'static str, why: impl Into<String>) -> Self {
        Self {
            service,
            why: why.into(),
            script,
        }
    }

    /// The service, as its program is called.
    pub fn service(&self) -> &'static str {
        self.service
    }
}

/// `Some(service)` when it started. When it could not, prints
/// `SKIPPED <test>: <why>` on stderr and returns `None`, or panics instead
/// when [`REQUIRE_SERVICES`] is `1`.
///
/// Every `start_or_skip` of this crate ends here, so the policy is the same
/// for each service.
pub fn skip_or_fail<T>(test: &str, started: Result<T, Unavailable>) -> Option<T> {
    decide(services_required(), test, started)
}

fn decide<T>(required: bool, test: &str, started: Result<T, Unavailable>) -> Option<T> {
    match started {
        Ok(service) => Some(service),
        Err(why) if required => {
            panic!("{test}: {why}, and {REQUIRE_SERVICES}=1 requires it")
        }
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
}

/// `Ok` when `program --version` runs and succeeds, else the
/// [`Unavailable`] that says `script` (in `.ci/install/`) installs it.
pub(crate) fn require_program(
    program: &'static str,
    script: &'static str,
) -> Result<(), Unavailable> {
    let installed = std::process::Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if installed {
        Ok(())
    } else {
        Err(Unavailable::new(
            program,
            script,
            format!("`{program}` is not on PATH"),
        ))
    }
}

/// `true` when [`REQUIRE_SERVICES`] is `1`.
pub fn services_required() -> bool {
    std::env::var(REQUIRE_SERVICES).as_deref() == Ok("1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing() -> Result<(), Unavailable> {
        Err(Unavailable::new("nats-server", "nats.sh", "not on PATH"))
    }

    #[test]
    fn a_started_service_is_used_whether_required_or_not() {
        assert_eq!(decide(false, "t", Ok(7)), Some(7));
        assert_eq!(decide(true, "t", Ok(7)), Some(7));
    }

    #[test]
    fn a_missing_service_skips_when_not_required() {
        assert_eq!(decide(false, "t", missing()), None);
    }

    #[test]
    #[should_panic(
        expected = "t: nats-server cannot start: not on PATH (install it with `bash .ci/install/nats.sh`), and AGENTBUS_REQUIRE_SERVICES=1 requires it"
    )]
    fn a_missing_service_fails_when_required() {
        decide(true, "t", missing());
    }
}
