//! The background executor that runs retries: one thread per process
//! (`agentbus-retry`, started on first use) polls every retry task, so
//! retries need no async runtime. A task is queued when woken and polled
//! once per queueing; it parks the thread only when nothing is queued.
//!
//! Retried handlers run on this thread: a sync handler's retry occupies it
//! while it runs, and an async handler that needs a runtime's reactor
//! (Tokio timers or I/O) fails there with the runtime's panic, which counts
//! as a failed attempt. It uses `std` primitives: no loom model runs a
//! retry.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

/// A retry task: owns everything it needs and reports its own outcome.
pub(crate) type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

struct Slot {
    task: Mutex<Option<Task>>,
    /// Set while the slot is in the queue, so a task woken many times is
    /// queued once.
    queued: AtomicBool,
}

impl Wake for Slot {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // AcqRel pairs with the worker's Release store of `false` before it
        // polls: a wake that sees `false` re-queues, so no wake-up between
        // that store and the poll's end is lost.
        if !self.queued.swap(true, Ordering::AcqRel) {
            if let Some(worker) = worker() {
                worker.push(Arc::clone(self));
            }
        }
    }
}

struct Worker {
    queue: Mutex<VecDeque<Arc<Slot>>>,
    ready: Condvar,
}

impl Worker {
    fn push(&self, slot: Arc<Slot>) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(slot);
        self.ready.notify_one();
    }

    fn run(&self) {
        loop {
            let slot = {
                let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                loop {
                    if let Some(slot) = queue.pop_front() {
                        break slot;
                    }
                    queue = self
                        .ready
                        .wait(queue)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            };
            // Release pairs with the AcqRel swap in `wake_by_ref`.
            slot.queued.store(false, Ordering::Release);
            let waker = Waker::from(Arc::clone(&slot));
            let mut cx = Context::from_waker(&waker);
            let mut task = slot.task.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(future) = task.as_mut() else {
                continue;
            };
            // Retry tasks catch their handlers' panics themselves; this
            // only keeps the thread alive if the bus's own code panicked.
            let finished = !matches!(
                catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))),
                Ok(Poll::Pending)
            );
            if finished {
                let done = task.take();
                drop(task);
                crate::handler::quietly(|| drop(done));
            }
        }
    }
}

/// The process's retry thread, started on first use; `None` if it could
/// not be started (logged).
fn worker() -> Option<&'static Worker> {
    static WORKER: OnceLock<Option<&'static Worker>> = OnceLock::new();
    *WORKER.get_or_init(|| {
        let worker = Worker {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
        };
        start_thread("agentbus-retry", worker, Worker::run)
    })
}

/// Leaks `state` (it lives as long as the process) and starts thread
/// `name` running `run` on it; `None` (logged) if the thread cannot start.
pub(super) fn start_thread<T: Sync>(name: &str, state: T, run: fn(&T)) -> Option<&'static T> {
    let state: &'static T = Box::leak(Box::new(state));
    match std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || run(state))
    {
        Ok(_) => Some(state),
        Err(err) => {
            tracing::error!(thread = name, error = %err, "cannot start a delivery thread: retries and timeouts do not work");
            None
        }
    }
}

/// Runs `task` in the background; gives it back if no retry thread could
/// be started.
pub(crate) fn spawn(task: Task) -> Result<(), Task> {
    let Some(worker) = worker() else {
        return Err(task);
    };
    worker.push(Arc::new(Slot {
        task: Mutex::new(Some(task)),
        queued: AtomicBool::new(true),
    }));
    Ok(())
}
