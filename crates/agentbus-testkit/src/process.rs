//! Processes that never outlive the test that started them.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};

/// A child process in its own process group, killed with everything it
/// started (SIGKILL to the group, then reaped) when the guard drops, also
/// while a test panics.
///
/// Should the test process die without unwinding (an abort, a SIGKILL, an
/// interrupted `cargo test`), a watchdog started with the child kills the
/// group once the test process is gone, so no server is left behind.
#[derive(Debug)]
pub struct ProcessGuard {
    child: Child,
    reaped: bool,
}

impl ProcessGuard {
    /// Spawns `command` in a new process group, with a watchdog.
    pub fn spawn(command: &mut Command) -> io::Result<Self> {
        let child = command.process_group(0).spawn()?;
        // `-PID`: the group (the watchdog's sh takes no `--`).
        after_this_process(
            &format!("kill -KILL -{} 2>/dev/null", child.id()),
            Some(child.id()),
        );
        Ok(Self {
            child,
            reaped: false,
        })
    }

    /// The child's process id (also its process group's).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child, for its pipes.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Its exit status if it has exited, without waiting.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().ok().flatten();
        self.reaped |= status.is_some();
        status
    }

    /// Waits for the child to exit by itself.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait()?;
        self.reaped = true;
        Ok(status)
    }

    /// SIGKILL to the child and its group, then reaps it. Does nothing once
    /// it was reaped: its id may belong to another process by then.
    pub fn kill(&mut self) {
        if self.reaped {
            return;
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reaped = true;
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the shell `cleanup` once this test process has exited, however it
/// exits (or as soon as `watched`, when given, has exited too).
pub(crate) fn after_this_process(cleanup: &str, watched: Option<u32>) {
    let also = watched.map_or(String::new(), |pid| {
        format!(" && kill -0 {pid} 2>/dev/null")
    });
    let script = format!(
        "while kill -0 {me} 2>/dev/null{also}; do sleep 0.5; done; {cleanup}",
        me = std::process::id(),
    );
    // setsid: the watchdog must not die with the test's process group
    // (an interrupted `cargo test` signals the whole group).
    let _ = Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(|mut watchdog| {
            // Reap it when it ends, so it leaves no zombie behind.
            std::thread::spawn(move || watchdog.wait())
        });
}
