//! The minimal executor behind [`EventBus::publish_blocking`]: polls one
//! future on the calling thread and parks between wake-ups.
//!
//! It parks real OS threads, so it uses `std` primitives directly rather than
//! the loom shim; no loom model runs async handlers.
//!
//! [`EventBus::publish_blocking`]: crate::EventBus::publish_blocking

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Wake, Waker};

/// Polls `future` to completion on this thread, parking between wake-ups.
///
/// Not `futures::executor::block_on`: that one refuses to run inside another
/// of its kind, so an async handler calling `publish_blocking` under an outer
/// `publish_blocking` would panic. Each call has its own wake flag, so a
/// nested call that consumes the thread's unpark token cannot lose the outer
/// call's wake-up.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark {
        woken: AtomicBool,
        thread: std::thread::Thread,
    }
    impl Wake for Unpark {
        fn wake(self: StdArc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &StdArc<Self>) {
            // Release pairs with the Acquire swap below: the poll that follows
            // sees what the waker's caller did before waking.
            self.woken.store(true, Ordering::Release);
            self.thread.unpark();
        }
    }

    let unpark = StdArc::new(Unpark {
        woken: AtomicBool::new(false),
        thread: std::thread::current(),
    });
    let waker = Waker::from(StdArc::clone(&unpark));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        while !unpark.woken.swap(false, Ordering::Acquire) {
            std::thread::park();
        }
    }
}
