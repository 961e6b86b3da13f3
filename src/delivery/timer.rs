//! [`Sleep`]: a timer that needs no async runtime.
//!
//! One thread per process (`agentbus-timer`, started on first use) keeps
//! the pending deadlines in a heap and wakes each one's waker when it is
//! due; the futures that wait run wherever they are polled. It uses `std`
//! primitives: no loom model reaches a timer.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Resolves once `deadline` has passed.
pub(crate) struct Sleep {
    deadline: Instant,
}

impl Sleep {
    pub(crate) fn new(wait: Duration) -> Self {
        let now = Instant::now();
        Self {
            deadline: now
                .checked_add(wait)
                .unwrap_or(now + Duration::from_secs(86_400 * 365)),
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        match timers() {
            Some(timers) => {
                // A spurious re-poll registers again; the earlier entry's
                // wake-up is then merely early, and polls again land here.
                timers.add(self.deadline, cx.waker().clone());
                Poll::Pending
            }
            // No timer thread could be started: waiting would hang.
            None => Poll::Ready(()),
        }
    }
}

struct Entry {
    deadline: Instant,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.deadline.cmp(&other.deadline)
    }
}

struct Timers {
    due: Mutex<BinaryHeap<Reverse<Entry>>>,
    changed: Condvar,
}

impl Timers {
    fn add(&self, deadline: Instant, waker: Waker) {
        let mut due = self.due.lock().unwrap_or_else(PoisonError::into_inner);
        let earliest = due
            .peek()
            .is_none_or(|Reverse(first)| deadline < first.deadline);
        due.push(Reverse(Entry { deadline, waker }));
        drop(due);
        if earliest {
            self.changed.notify_one();
        }
    }

    fn run(&self) {
        let mut due = self.due.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let now = Instant::now();
            let mut ready = Vec::new();
            while due
                .peek()
                .is_some_and(|Reverse(first)| first.deadline <= now)
            {
                if let Some(Reverse(entry)) = due.pop() {
                    ready.push(entry.waker);
                }
            }
            if !ready.is_empty() {
                // Wake outside the lock: a waker may run code that adds a timer.
                drop(due);
                ready.into_iter().for_each(Waker::wake);
                due = self.due.lock().unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            let next = due.peek().map(|Reverse(first)| first.deadline);
            due = match next {
                None => self
                    .changed
                    .wait(due)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let wait = deadline.saturating_duration_since(now);
                    match self.changed.wait_timeout(due, wait) {
                        Ok((guard, _)) => guard,
                        Err(poisoned) => poisoned.into_inner().0,
                    }
                }
            };
        }
    }
}

/// The process's timer thread, started on first use; `None` if it could
/// not be started (logged once).
fn timers() -> Option<&'static Timers> {
    static TIMERS: OnceLock<Option<&'static Timers>> = OnceLock::new();
    *TIMERS.get_or_init(|| {
        let timers = Timers {
            due: Mutex::new(BinaryHeap::new()),
            changed: Condvar::new(),
        };
        super::worker::start_thread("agentbus-timer", timers, Timers::run)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(sleep: &mut Sleep) {
        let waker = futures::task::noop_waker();
        let pending = Pin::new(sleep).poll(&mut Context::from_waker(&waker));
        assert!(pending.is_pending());
    }

    /// Waits for a `wait` sleep on its own thread; `false` if it had not
    /// ended 10 s later.
    fn sleep_ends_in_time(wait: Duration, meanwhile: impl FnOnce()) -> bool {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            crate::executor::block_on(Sleep::new(wait));
            let _ = done.send(());
        });
        meanwhile();
        finished.recv_timeout(Duration::from_secs(10)).is_ok()
    }

    #[test]
    fn an_early_deadline_wakes_on_time_among_later_ones() {
        let mut later = Sleep::new(Duration::from_secs(30));
        register(&mut later);
        // Let the timer thread settle on waiting for `later`.
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            sleep_ends_in_time(Duration::from_millis(200), || ()),
            "a sleep added before a later one's deadline waited for it"
        );
        let mut latest = Sleep::new(Duration::from_secs(60));
        assert!(
            sleep_ends_in_time(Duration::from_millis(300), || {
                std::thread::sleep(Duration::from_millis(50));
                register(&mut latest);
            }),
            "a later deadline added after an earlier one held it back"
        );
    }
}
