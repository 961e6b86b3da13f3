//! The dead letters' hook for keeping them beyond memory: a
//! [`DeadLetterSink`] is told the id of every change and reads the state
//! back; [`DeadLetters::restore`] puts stored letters back after a restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use agentbus::{
    DeadLetter, DeadLetterId, DeadLetterQuery, DeadLetterSink, DeadLetters, Event, EventBus,
    EventType, RedriveError,
};
use futures::executor::block_on;

const TYPE: EventType = EventType::TaskCompleted;

/// Records the ids it is told of.
#[derive(Default)]
struct Told(Mutex<Vec<u64>>);

impl DeadLetterSink for Told {
    fn changed(&self, id: DeadLetterId) {
        self.0.lock().unwrap().push(id.get());
    }
}

impl Told {
    fn take(&self) -> Vec<u64> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

fn attach(dead: &DeadLetters) -> Arc<Told> {
    let told = Arc::new(Told::default());
    let weak: Weak<dyn DeadLetterSink> = Arc::downgrade(&told) as _;
    dead.set_sink(weak);
    told
}

fn ids(letters: &[DeadLetter]) -> Vec<u64> {
    letters.iter().map(|letter| letter.id().get()).collect()
}

#[test]
fn smoke() {
    let bus = EventBus::new();
    bus.subscription(TYPE)
        .name("exporter")
        .handler(|_e: &Event| -> Result<(), String> { Err("down".into()) });
    let told = attach(&bus.dead_letters());
    bus.publish_blocking(Event::new(TYPE));
    assert_eq!(told.take(), [1]);
    assert_eq!(
        bus.dead_letters()
            .current(DeadLetterId::new(1))
            .unwrap()
            .error(),
        "down"
    );
}

/// A sink attached late is told of the letters already kept; then of each
/// new letter, a failed redrive (the update readable at once), a discard,
/// a successful redrive, a drop for room and a reset; a dropped sink is
/// told nothing. While a redrive runs,
/// `current` still shows the letter `get` hides.
#[test]
fn a_sink_is_told_of_every_change_and_reads_it_back() {
    let bus = EventBus::builder().dead_letter_capacity(3).build();
    let fixed = Arc::new(AtomicBool::new(false));
    let is_fixed = Arc::clone(&fixed);
    let seen_during_redrive = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&seen_during_redrive);
    let weak = bus.downgrade();
    bus.subscription(TYPE)
        .name("exporter")
        .handler(move |_e: &Event| -> Result<(), String> {
            if !is_fixed.load(Ordering::SeqCst) {
                return Err("down".into());
            }
            let dead = weak.upgrade().unwrap().dead_letters();
            let one = DeadLetterId::new(1);
            *seen.lock().unwrap() = Some((dead.get(one).is_none(), dead.current(one).is_some()));
            Ok(())
        });
    bus.publish_blocking(Event::new(TYPE));
    let dead = bus.dead_letters();
    let told = attach(&dead);
    assert_eq!(told.take(), [1], "the letter kept before the sink");

    bus.publish_blocking(Event::new(TYPE));
    assert_eq!(told.take(), [2]);

    let failed = block_on(dead.redrive(DeadLetterId::new(2)));
    assert!(matches!(failed, Err(RedriveError::FailedAgain { .. })));
    assert_eq!(told.take(), [2], "the update");
    assert_eq!(dead.current(DeadLetterId::new(2)).unwrap().attempts(), 2);

    assert!(dead.discard(DeadLetterId::new(2)));
    assert_eq!(told.take(), [2]);
    assert!(dead.current(DeadLetterId::new(2)).is_none());

    fixed.store(true, Ordering::SeqCst);
    block_on(dead.redrive(DeadLetterId::new(1))).unwrap();
    assert_eq!(*seen_during_redrive.lock().unwrap(), Some((true, true)));
    assert_eq!(told.take(), [1], "redriven: gone");
    assert!(dead.current(DeadLetterId::new(1)).is_none());

    fixed.store(false, Ordering::SeqCst);
    for _ in 0..4 {
        bus.publish_blocking(Event::new(TYPE));
    }
    assert_eq!(told.take(), [3, 4, 5, 6, 3], "6 pushed 3 out");
    assert_eq!(ids(&dead.snapshot()), [4, 5, 6]);

    drop(told);
    bus.publish_blocking(Event::new(TYPE)); // a dropped sink is told nothing
    assert_eq!(ids(&dead.snapshot()), [5, 6, 7]);

    let told = attach(&dead);
    assert_eq!(told.take(), [5, 6, 7]);
    bus.reset();
    let mut forgotten = told.take();
    forgotten.sort_unstable();
    assert_eq!(forgotten, [5, 6, 7]);
}

/// Restored letters keep their ids unless this bus gave them out already
/// (renumbered, the sink told of both ids); new letters get ids above
/// them; a redrive goes by name, and a letter without one cannot be
/// redriven.
#[test]
fn restore_keeps_ids_renumbers_given_ones_and_redrives_by_name() {
    let bus = EventBus::new();
    let calls = Arc::new(Mutex::new(0));
    let counted = Arc::clone(&calls);
    bus.subscription(TYPE)
        .name("exporter")
        .handler(move |_e: &Event| -> Result<(), String> {
            let mut calls = counted.lock().unwrap();
            *calls += 1;
            if *calls == 1 {
                Err("first call fails".into())
            } else {
                Ok(())
            }
        });
    bus.publish_blocking(Event::new(TYPE)); // letter 1, given out here
    let dead = bus.dead_letters();
    let told = attach(&dead);
    told.take();

    let event = Arc::new(Event::new(TYPE));
    let stored =
        [(1, Some("exporter")), (2, Some("exporter")), (5, None)]
            .map(|(id, name)| {
                DeadLetter::restored(DeadLetterId::new(id), Arc::clone(&event), 9, name)
                    .with_failure("down", 3, std::time::UNIX_EPOCH, std::time::UNIX_EPOCH)
            })
            .into();
    let restored = dead.restore(stored);
    assert_eq!(
        (restored.letters, restored.renumbered, restored.dropped),
        (3, 1, 0)
    );
    assert_eq!(told.take(), [1, 6], "stored 1 is now 6");
    let listed = dead.list(&DeadLetterQuery::new());
    assert_eq!(ids(&listed), [1, 2, 5, 6]);
    assert_eq!(listed[3].attempts(), 3);
    assert!(Arc::ptr_eq(listed[3].event(), &event));

    *calls.lock().unwrap() = 1; // fixed
    block_on(dead.redrive(DeadLetterId::new(6))).unwrap();
    assert_eq!(*calls.lock().unwrap(), 2, "found by name");
    let unnamed = DeadLetterId::new(5);
    assert_eq!(
        block_on(dead.redrive(unnamed)),
        Err(RedriveError::Unnamed(unnamed))
    );

    *calls.lock().unwrap() = 0; // fails once more
    bus.publish_blocking(Event::new(TYPE));
    assert_eq!(
        dead.list(&DeadLetterQuery::new())
            .last()
            .unwrap()
            .id()
            .get(),
        7
    );

    // An id this bus gave out is not given again, even once its letter is
    // gone.
    assert!(dead.discard(DeadLetterId::new(2)));
    let stored = vec![DeadLetter::restored(
        DeadLetterId::new(2),
        Arc::clone(&event),
        9,
        Some("exporter"),
    )
    .with_failure("down", 3, std::time::UNIX_EPOCH, std::time::UNIX_EPOCH)];
    assert_eq!(dead.restore(stored).renumbered, 1);
    assert_eq!(ids(&dead.list(&DeadLetterQuery::new())), [1, 5, 7, 8]);
}
