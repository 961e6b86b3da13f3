//! Dead letters: deliveries that failed for good, kept (bounded) so they
//! can be inspected, redriven or discarded. Behaviour:
//! [`docs::semantics`](crate::docs::semantics#retries-timeouts-and-dead-letters).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc as StdArc, Weak};
use std::time::SystemTime;

use crate::bus::EventBus;
use crate::event::Event;
use crate::event_type::EventType;
use crate::handler::Subscriber;
use crate::id::SubscriptionId;
use crate::sync::{lock, Arc, AtomicU64, Mutex, Ordering};

/// How many dead letters a bus keeps in memory unless
/// [`EventBusBuilder::dead_letter_capacity`](crate::EventBusBuilder::dead_letter_capacity)
/// says otherwise.
pub const DEFAULT_DEAD_LETTER_CAPACITY: usize = 10_000;

/// Identifies a [`DeadLetter`] within its bus; ids count up from 1.
///
/// ```
/// use agentbus::DeadLetterId;
///
/// let id: DeadLetterId = "42".parse().unwrap();
/// assert_eq!((id.get(), id.to_string()), (42, "42".to_string()));
/// assert!("forty-two".parse::<DeadLetterId>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeadLetterId(u64);

impl DeadLetterId {
    /// An id from its number (as [`get`](Self::get) returns it).
    pub fn new(id: u64) -> Self {
        Self(id)
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for DeadLetterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for DeadLetterId {
    type Err = std::num::ParseIntError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.parse().map(Self)
    }
}

/// One delivery that failed for good: the event, which subscription, why,
/// after how many attempts and when.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    id: DeadLetterId,
    event: StdArc<Event>,
    subscription_id: SubscriptionId,
    subscription_name: Option<StdArc<str>>,
    error: String,
    attempts: u32,
    first_failed_at: SystemTime,
    last_failed_at: SystemTime,
}

impl DeadLetter {
    /// A dead letter as a [`DeadLetterSink`] stored it, to hand back to
    /// [`DeadLetters::restore`] after a restart: its id, event, and the
    /// number and name its subscription had in the bus that kept it. Its
    /// error is empty and its attempts 0 until
    /// [`with_failure`](Self::with_failure) sets them.
    ///
    /// Its [`subscription_id`](Self::subscription_id) has that number but
    /// names no subscription of any live bus, so a redrive finds the
    /// subscription by [name](Self::subscription_name) only.
    pub fn restored(
        id: DeadLetterId,
        event: StdArc<Event>,
        subscription_number: u64,
        subscription_name: Option<&str>,
    ) -> Self {
        let now = SystemTime::now();
        Self {
            id,
            event,
            // Bus 0 is never given out (buses count from 1): no live
            // subscription matches it.
            subscription_id: SubscriptionId::new(0, subscription_number),
            subscription_name: subscription_name.map(StdArc::from),
            error: String::new(),
            attempts: 0,
            first_failed_at: now,
            last_failed_at: now,
        }
    }

    /// This letter with its failure: the last error, the attempts, and
    /// when the first and last failed.
    #[must_use]
    pub fn with_failure(
        mut self,
        error: impl Into<String>,
        attempts: u32,
        first_failed_at: SystemTime,
        last_failed_at: SystemTime,
    ) -> Self {
        self.error = error.into();
        self.attempts = attempts;
        self.first_failed_at = first_failed_at;
        self.last_failed_at = last_failed_at;
        self
    }

    /// Its id in this bus.
    pub fn id(&self) -> DeadLetterId {
        self.id
    }

    /// The event that was not delivered.
    pub fn event(&self) -> &StdArc<Event> {
        &self.event
    }

    /// The subscription it was not delivered to. For a letter
    /// [restored](DeadLetters::restore) from a store, the id the
    /// subscription had in the bus that kept it, which no live subscription
    /// has.
    pub fn subscription_id(&self) -> SubscriptionId {
        self.subscription_id
    }

    /// That subscription's [`name`](crate::SubscriptionBuilder::name), if
    /// it had one: how a redrive finds it after a restart.
    pub fn subscription_name(&self) -> Option<&str> {
        self.subscription_name.as_deref()
    }

    /// Why the last attempt failed: the `Err`'s display, `panicked: ...`,
    /// or `timed out`.
    pub fn error(&self) -> &str {
        &self.error
    }

    /// How many calls failed, redrives included.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// When the first attempt failed.
    pub fn first_failed_at(&self) -> SystemTime {
        self.first_failed_at
    }

    /// When the last attempt failed.
    pub fn last_failed_at(&self) -> SystemTime {
        self.last_failed_at
    }
}

/// Which dead letters [`DeadLetters::list`] returns: oldest first (or
/// [`newest_first`](Self::newest_first)), between optional ids (for
/// paging), at most `limit` (default 100).
///
/// ```
/// use agentbus::{DeadLetterQuery, EventType};
///
/// let query = DeadLetterQuery::new()
///     .subscription("metrics exporter")
///     .event_type(EventType::TaskCompleted)
///     .limit(50);
/// assert_eq!(query.max_results(), 50);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetterQuery {
    subscription: Option<String>,
    event_type: Option<EventType>,
    after: Option<DeadLetterId>,
    before: Option<DeadLetterId>,
    newest_first: bool,
    limit: usize,
}

impl Default for DeadLetterQuery {
    fn default() -> Self {
        Self::new()
    }
}

impl DeadLetterQuery {
    /// Every dead letter, the first 100.
    pub fn new() -> Self {
        Self {
            subscription: None,
            event_type: None,
            after: None,
            before: None,
            newest_first: false,
            limit: 100,
        }
    }

    /// Only those of the subscription named `name`.
    #[must_use]
    pub fn subscription(mut self, name: impl Into<String>) -> Self {
        self.subscription = Some(name.into());
        self
    }

    /// Only events of `event_type`.
    #[must_use]
    pub fn event_type(mut self, event_type: EventType) -> Self {
        self.event_type = Some(event_type);
        self
    }

    /// Only ids greater than `id`: the next page after a page ending at `id`.
    #[must_use]
    pub fn after(mut self, id: DeadLetterId) -> Self {
        self.after = Some(id);
        self
    }

    /// Only ids less than `id`: with [`newest_first`](Self::newest_first),
    /// the next page after a page ending at `id`.
    #[must_use]
    pub fn before(mut self, id: DeadLetterId) -> Self {
        self.before = Some(id);
        self
    }

    /// The newest (highest id) first: the latest failures, as a dashboard
    /// shows them.
    ///
    /// ```
    /// use agentbus::{DeadLetterQuery, Event, EventBus, EventType};
    ///
    /// # futures::executor::block_on(async {
    /// let bus = EventBus::new();
    /// bus.subscription(EventType::TaskCompleted)
    ///     .handler(|_e: &Event| -> Result<(), String> { Err("down".into()) });
    /// for task in 0..3 {
    ///     bus.publish(Event::new(EventType::TaskCompleted).with_circle(task)).await;
    /// }
    /// let dead = bus.dead_letters();
    /// let newest = dead.list(&DeadLetterQuery::new().newest_first().limit(2));
    /// let circles: Vec<_> = newest.iter().map(|letter| letter.event().circle_id).collect();
    /// assert_eq!(circles, [Some(2), Some(1)]);
    /// let rest = dead.list(&DeadLetterQuery::new().newest_first().before(newest[1].id()));
    /// assert_eq!(rest[0].event().circle_id, Some(0));
    /// # });
    /// ```
    #[must_use]
    pub fn newest_first(mut self) -> Self {
        self.newest_first = true;
        self
    }

    /// The id results come before, if any.
    pub fn get_before(&self) -> Option<DeadLetterId> {
        self.before
    }

    /// Whether the newest come first.
    pub fn is_newest_first(&self) -> bool {
        self.newest_first
    }

    /// At most `limit` results.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// The limit.
    pub fn max_results(&self) -> usize {
        self.limit
    }

    /// The subscription name it selects, if any.
    pub fn get_subscription(&self) -> Option<&str> {
        self.subscription.as_deref()
    }

    /// The event type it selects, if any.
    pub fn get_event_type(&self) -> Option<EventType> {
        self.event_type
    }

    /// The id results come after, if any.
    pub fn get_after(&self) -> Option<DeadLetterId> {
        self.after
    }

    fn admits(&self, letter: &DeadLetter) -> bool {
        self.subscription
            .as_deref()
            .is_none_or(|name| letter.subscription_name() == Some(name))
            && self
                .event_type
                .is_none_or(|event_type| letter.event.event_type == event_type)
    }
}

/// Why [`DeadLetters::redrive`] did not deliver.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedriveError {
    /// No dead letter has this id (never had, redriven or discarded).
    #[error("no dead letter with id {0}")]
    UnknownId(DeadLetterId),
    /// The subscription is gone and no subscription has its name; the
    /// dead letter stays.
    #[error("no subscription {subscription} to redrive to")]
    NoSuchSubscription {
        /// The subscription's name, or its id if it had none.
        subscription: String,
    },
    /// The handler failed again; the dead letter stays, its attempts and
    /// error updated.
    #[error("the handler failed again: {error}")]
    FailedAgain {
        /// Why.
        error: String,
    },
    /// The letter was [restored](DeadLetters::restore) from a store and its
    /// subscription had no [name](crate::SubscriptionBuilder::name): after a
    /// restart nothing identifies it. The dead letter stays (discard it).
    #[error("dead letter {0} was restored from a store and its subscription had no name")]
    Unnamed(DeadLetterId),
}

/// Where a bus's dead letters are kept beyond memory (the store crate's
/// recorder is one): told the id of every letter that changed, it reads
/// the letter's state back with [`DeadLetters::current`] (or all of them
/// with [`DeadLetters::snapshot`]) when it gets round to writing.
///
/// **Behaviour.** [`changed`](Self::changed) is called after the change,
/// outside the dead letters' lock, on the thread that made it: a publish
/// (a handler's first failure), the retry thread (the last attempt), or
/// the caller of [`redrive`](DeadLetters::redrive) or
/// [`discard`](DeadLetters::discard). It is called for a new letter, for a
/// redrive that failed again (attempts and error updated), and for a letter
/// that left: redriven, discarded, dropped for room beyond the capacity,
/// or forgotten by [`EventBus::reset`]. A redrive in progress is no
/// change: its letter is still [`current`](DeadLetters::current). Because
/// the sink reads the state back rather than being handed it, calls that
/// race on two threads cannot leave a stale state behind, in any order.
///
/// It must not block for long: it runs on the thread that dead-lettered
/// (possibly a publisher). Hand the id to a thread of your own.
pub trait DeadLetterSink: Send + Sync {
    /// The letter with `id` was kept, updated, or removed.
    fn changed(&self, id: DeadLetterId);
}

/// The bus's dead letters in memory, oldest dropped beyond the capacity,
/// and the sink told of every change.
pub(crate) struct KeptLetters {
    capacity: usize,
    letters: Mutex<Letters>,
    dropped: AtomicU64,
}

#[derive(Default)]
struct Letters {
    /// The last id given out by this bus (restored ids count too).
    last_id: u64,
    by_id: BTreeMap<u64, DeadLetter>,
    /// Letters out of `by_id` while a redrive runs: still kept, for a sink.
    redriving: BTreeMap<u64, DeadLetter>,
    sink: Option<Weak<dyn DeadLetterSink>>,
}

impl Letters {
    /// Drops the oldest letters beyond `capacity`; returns their ids.
    fn trim(&mut self, capacity: usize) -> Vec<u64> {
        let mut dropped = Vec::new();
        while self.by_id.len() > capacity {
            match self.by_id.pop_first() {
                Some((id, _)) => dropped.push(id),
                None => break,
            }
        }
        dropped
    }

    fn sink(&self) -> Option<StdArc<dyn DeadLetterSink>> {
        self.sink.as_ref().and_then(Weak::upgrade)
    }
}

/// Tells `sink` of each id in `ids`; outside the lock.
fn notify(sink: Option<StdArc<dyn DeadLetterSink>>, ids: impl IntoIterator<Item = u64>) {
    if let Some(sink) = sink {
        for id in ids {
            sink.changed(DeadLetterId(id));
        }
    }
}

impl KeptLetters {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            letters: Mutex::new(Letters::default()),
            dropped: AtomicU64::new(0),
        }
    }

    /// Keeps a new dead letter; drops the oldest if full (counted, and
    /// logged at the first drop and every 1000th).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push(
        &self,
        event: StdArc<Event>,
        subscription_id: SubscriptionId,
        subscription_name: Option<&str>,
        error: &str,
        attempts: u32,
        first_failed_at: SystemTime,
    ) -> DeadLetterId {
        let mut letters = lock(&self.letters);
        letters.last_id += 1;
        let id = DeadLetterId(letters.last_id);
        letters.by_id.insert(
            id.0,
            DeadLetter {
                id,
                event,
                subscription_id,
                subscription_name: subscription_name.map(StdArc::from),
                error: error.to_owned(),
                attempts,
                first_failed_at,
                last_failed_at: SystemTime::now(),
            },
        );
        let dropped = letters.trim(self.capacity);
        let sink = letters.sink();
        drop(letters);
        self.count_dropped(&dropped);
        notify(sink, std::iter::once(id.0).chain(dropped));
        id
    }

    /// Counts and logs letters dropped for room.
    fn count_dropped(&self, ids: &[u64]) {
        for &oldest in ids {
            // Relaxed: a count, ordering nothing.
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped == 1 || dropped % 1000 == 0 {
                tracing::warn!(
                    capacity = self.capacity,
                    dropped,
                    oldest,
                    "dead letters full: dropped the oldest"
                );
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.letters).by_id.len()
    }

    /// How many were dropped for room.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn list(&self, query: &DeadLetterQuery) -> Vec<DeadLetter> {
        let letters = lock(&self.letters);
        let from = query.after.map_or(0, |after| after.0.saturating_add(1));
        let range = match query.before {
            Some(before) => letters.by_id.range(from..before.0.max(from)),
            None => letters.by_id.range(from..),
        };
        let admitted = |letter: &&DeadLetter| query.admits(letter);
        if query.newest_first {
            range
                .rev()
                .map(|(_, letter)| letter)
                .filter(admitted)
                .take(query.limit)
                .cloned()
                .collect()
        } else {
            range
                .map(|(_, letter)| letter)
                .filter(admitted)
                .take(query.limit)
                .cloned()
                .collect()
        }
    }

    fn get(&self, id: DeadLetterId) -> Option<DeadLetter> {
        lock(&self.letters).by_id.get(&id.0).cloned()
    }

    /// The letter as kept, also while a redrive runs.
    fn current(&self, id: DeadLetterId) -> Option<DeadLetter> {
        let letters = lock(&self.letters);
        letters
            .by_id
            .get(&id.0)
            .or_else(|| letters.redriving.get(&id.0))
            .cloned()
    }

    fn snapshot(&self) -> Vec<DeadLetter> {
        let letters = lock(&self.letters);
        let mut all: Vec<DeadLetter> = letters
            .by_id
            .values()
            .chain(letters.redriving.values())
            .cloned()
            .collect();
        all.sort_by_key(|letter| letter.id);
        all
    }

    /// Forgets a listed letter (not one being redriven); `true` if it was
    /// there.
    fn discard(&self, id: DeadLetterId) -> bool {
        let mut letters = lock(&self.letters);
        let removed = letters.by_id.remove(&id.0);
        let sink = letters.sink();
        drop(letters);
        let discarded = removed.is_some();
        if discarded {
            notify(sink, [id.0]);
        }
        drop(removed);
        discarded
    }

    /// Forgets a letter whose redrive delivered it.
    fn delivered(&self, id: DeadLetterId) {
        let mut letters = lock(&self.letters);
        let removed = letters.redriving.remove(&id.0);
        let sink = letters.sink();
        drop(letters);
        notify(sink, [id.0]);
        drop(removed);
    }

    /// Takes a letter out of the list for a redrive.
    fn take(&self, id: DeadLetterId) -> Option<DeadLetter> {
        let mut letters = lock(&self.letters);
        let letter = letters.by_id.remove(&id.0)?;
        letters.redriving.insert(id.0, letter.clone());
        Some(letter)
    }

    /// Puts back a letter taken for redrive, under its own id (no bound
    /// check: it had a place when taken); `changed` tells the sink it was
    /// updated.
    fn put_back(&self, letter: DeadLetter, changed: bool) {
        let id = letter.id.0;
        let mut letters = lock(&self.letters);
        letters.redriving.remove(&id);
        letters.by_id.insert(id, letter);
        let sink = letters.sink().filter(|_| changed);
        drop(letters);
        notify(sink, [id]);
    }

    pub(crate) fn clear(&self) {
        let mut letters = lock(&self.letters);
        let old = std::mem::take(&mut letters.by_id);
        let sink = letters.sink();
        drop(letters);
        notify(sink, old.keys().copied());
        drop(old);
    }

    fn set_sink(&self, sink: Weak<dyn DeadLetterSink>) {
        let mut letters = lock(&self.letters);
        letters.sink = Some(sink);
        let ids: Vec<u64> = letters
            .by_id
            .keys()
            .chain(letters.redriving.keys())
            .copied()
            .collect();
        let sink = letters.sink();
        drop(letters);
        notify(sink, ids);
    }

    fn restore(&self, stored: Vec<DeadLetter>) -> DeadLettersRestored {
        let mut letters = lock(&self.letters);
        let given = letters.last_id;
        let mut top = stored
            .iter()
            .map(|letter| letter.id.0)
            .max()
            .unwrap_or(0)
            .max(given);
        let mut changed = Vec::new();
        let mut restored = DeadLettersRestored::default();
        for mut letter in stored {
            let stored_as = letter.id.0;
            if stored_as <= given || letters.by_id.contains_key(&stored_as) {
                top += 1;
                letter.id = DeadLetterId(top);
                changed.extend([stored_as, top]);
                restored.renumbered += 1;
            }
            letters.by_id.insert(letter.id.0, letter);
            restored.letters += 1;
        }
        letters.last_id = top;
        let dropped = letters.trim(self.capacity);
        let sink = letters.sink();
        drop(letters);
        self.count_dropped(&dropped);
        restored.dropped = dropped.len();
        notify(sink, changed.into_iter().chain(dropped));
        restored
    }
}

/// What [`DeadLetters::restore`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLettersRestored {
    /// Letters handed in.
    pub letters: usize,
    /// Of those, how many got a new id because this bus had given theirs
    /// out already.
    pub renumbered: usize,
    /// Letters dropped for room (the oldest, restored or not) to keep the
    /// capacity.
    pub dropped: usize,
}

/// A bus's dead letters; from [`EventBus::dead_letters`]. A cheap handle:
/// it keeps the bus alive.
///
/// ```
/// use agentbus::{DeadLetterQuery, Event, EventBus, EventType};
///
/// # futures::executor::block_on(async {
/// let bus = EventBus::new();
/// bus.subscription(EventType::TaskCompleted)
///     .name("exporter")
///     .handler(|_e: &Event| -> Result<(), String> { Err("exporter down".into()) });
/// bus.publish(Event::new(EventType::TaskCompleted)).await;
///
/// let dead = bus.dead_letters();
/// let letters = dead.list(&DeadLetterQuery::new().subscription("exporter"));
/// assert_eq!(letters.len(), 1);
/// assert_eq!(letters[0].error(), "exporter down");
/// assert!(dead.redrive(letters[0].id()).await.is_err()); // still down
/// assert!(dead.discard(letters[0].id()));
/// assert!(dead.is_empty());
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct DeadLetters {
    bus: EventBus,
}

impl EventBus {
    /// This bus's dead letters.
    pub fn dead_letters(&self) -> DeadLetters {
        DeadLetters { bus: self.clone() }
    }
}

impl DeadLetters {
    fn store(&self) -> &KeptLetters {
        &self.bus.inner().delivery.dead_letters
    }

    /// The dead letters matching `query`, oldest first unless it says
    /// [`newest_first`](DeadLetterQuery::newest_first).
    pub fn list(&self, query: &DeadLetterQuery) -> Vec<DeadLetter> {
        self.store().list(query)
    }

    /// One dead letter.
    pub fn get(&self, id: DeadLetterId) -> Option<DeadLetter> {
        self.store().get(id)
    }

    /// How many are kept.
    pub fn len(&self) -> usize {
        self.store().len()
    }

    /// Whether none are kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many were dropped because the bound was reached.
    pub fn dropped(&self) -> u64 {
        self.store().dropped()
    }

    /// Forgets a dead letter; `true` if it was there.
    pub fn discard(&self, id: DeadLetterId) -> bool {
        self.store().discard(id)
    }

    /// Delivers the dead letter's event again to its subscription (by id,
    /// or else the live subscription with its name), once: no retries,
    /// but the subscription's timeout and concurrency limits apply. On
    /// success the dead letter is removed; on failure it stays with its
    /// attempts and error updated. While a redrive runs the letter is out
    /// of the list, so two redrives of one id deliver at most once; if the
    /// redrive future is dropped early, the letter goes back.
    ///
    /// A letter [restored](Self::restore) from a store is redriven to the
    /// live subscription with its name; one whose subscription had no name
    /// fails with [`RedriveError::Unnamed`].
    pub async fn redrive(&self, id: DeadLetterId) -> Result<(), RedriveError> {
        let store = self.store();
        let letter = store.take(id).ok_or(RedriveError::UnknownId(id))?;
        let mut taken = Taken {
            store,
            letter: Some(letter),
            changed: false,
        };
        let letter = taken.letter.as_ref().expect("set above");
        let Some(subscriber) = self.find(letter) else {
            if letter.subscription_id.bus() == 0 && letter.subscription_name.is_none() {
                return Err(RedriveError::Unnamed(id));
            }
            return Err(RedriveError::NoSuchSubscription {
                subscription: letter
                    .subscription_name()
                    .map_or_else(|| letter.subscription_id.to_string(), str::to_owned),
            });
        };
        let event = StdArc::clone(&letter.event);
        let result =
            super::managed::deliver_once(&subscriber, event, &self.bus.inner().delivery).await;
        crate::handler::quietly(|| drop(subscriber));
        match result {
            Ok(()) => {
                taken.letter = None;
                store.delivered(id);
                Ok(())
            }
            Err(error) => {
                if let Some(letter) = &mut taken.letter {
                    letter.attempts = letter.attempts.saturating_add(1);
                    letter.error.clone_from(&error);
                    letter.last_failed_at = SystemTime::now();
                    taken.changed = true;
                }
                Err(RedriveError::FailedAgain { error })
            }
        }
    }

    /// The letter's subscription if still registered, else the first
    /// registered subscription with its name.
    fn find(&self, letter: &DeadLetter) -> Option<Arc<Subscriber>> {
        let inner = self.bus.inner();
        let registry = lock(&inner.registry);
        if let Some((_, subscriber)) = registry.subscriptions.get(&letter.subscription_id) {
            return Some(Arc::clone(subscriber));
        }
        let name = letter.subscription_name()?;
        registry
            .subscriptions
            .iter()
            .filter(|(_, (_, s))| s.reporter.name() == Some(name))
            .min_by_key(|(id, _)| id.get())
            .map(|(_, (_, s))| Arc::clone(s))
    }

    /// Tells `sink` of every change from now on (replacing an earlier
    /// sink), and at once of every letter already kept, so a sink attached
    /// late stores those too. Held weakly: once the sink is dropped, changes
    /// go nowhere.
    pub fn set_sink(&self, sink: Weak<dyn DeadLetterSink>) {
        self.store().set_sink(sink);
    }

    /// The letter with `id` as kept now, also while a redrive runs (when
    /// [`get`](Self::get) does not show it): what a [`DeadLetterSink`]
    /// writes. `None` once it is gone.
    pub fn current(&self, id: DeadLetterId) -> Option<DeadLetter> {
        self.store().current(id)
    }

    /// Every letter kept, those being redriven too, by id: what a
    /// [`DeadLetterSink`] writes when it rewrites them all.
    pub fn snapshot(&self) -> Vec<DeadLetter> {
        self.store().snapshot()
    }

    /// Keeps `letters` a sink stored (made with [`DeadLetter::restored`]),
    /// after a restart. Each keeps its id unless this bus has given that id
    /// out already (letters kept before the sink was attached): then it
    /// gets the next free id, and the sink is told of both ids. New letters
    /// get ids above every restored one. Beyond the capacity the oldest
    /// letters are dropped as usual (counted in [`dropped`](Self::dropped);
    /// the sink is told).
    ///
    /// ```
    /// use agentbus::{DeadLetter, DeadLetterId, Event, EventBus, EventType};
    /// use std::sync::Arc;
    ///
    /// let bus = EventBus::builder().dead_letter_capacity(2).build();
    /// let event = Arc::new(Event::new(EventType::TaskCompleted));
    /// let stored: Vec<DeadLetter> = [3, 7, 9]
    ///     .map(|id| DeadLetter::restored(DeadLetterId::new(id), Arc::clone(&event), 1, Some("exporter")))
    ///     .into();
    /// let restored = bus.dead_letters().restore(stored);
    /// assert_eq!((restored.letters, restored.dropped), (3, 1));
    /// let ids: Vec<u64> = bus.dead_letters().snapshot().iter().map(|l| l.id().get()).collect();
    /// assert_eq!(ids, [7, 9]);
    /// ```
    pub fn restore(&self, letters: Vec<DeadLetter>) -> DeadLettersRestored {
        self.store().restore(letters)
    }
}

/// A letter out of the list during a redrive; put back on drop unless
/// the redrive delivered it.
struct Taken<'a> {
    store: &'a KeptLetters,
    letter: Option<DeadLetter>,
    /// Whether the letter was updated (a failed redrive).
    changed: bool,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if let Some(letter) = self.letter.take() {
            self.store.put_back(letter, self.changed);
        }
    }
}
