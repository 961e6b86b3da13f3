//! Dead letters: deliveries that failed for good, kept (bounded) so they
//! can be inspected, redriven or discarded. Behaviour:
//! [`docs::semantics`](crate::docs::semantics#retries-timeouts-and-dead-letters).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc as StdArc;
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
    /// Its id in this bus.
    pub fn id(&self) -> DeadLetterId {
        self.id
    }

    /// The event that was not delivered.
    pub fn event(&self) -> &StdArc<Event> {
        &self.event
    }

    /// The subscription it was not delivered to.
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
}

/// The bus's dead letters in memory, oldest dropped beyond the capacity.
pub(crate) struct DeadLetterStore {
    capacity: usize,
    letters: Mutex<Letters>,
    dropped: AtomicU64,
}

#[derive(Default)]
struct Letters {
    last_id: u64,
    by_id: BTreeMap<u64, DeadLetter>,
}

impl DeadLetterStore {
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
        let oldest = if letters.by_id.len() > self.capacity {
            letters.by_id.pop_first()
        } else {
            None
        };
        drop(letters);
        if let Some((oldest, _)) = oldest {
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
        id
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

    fn take(&self, id: DeadLetterId) -> Option<DeadLetter> {
        lock(&self.letters).by_id.remove(&id.0)
    }

    /// Puts back a letter taken for redrive, under its own id (no bound
    /// check: it had a place when taken).
    fn put_back(&self, letter: DeadLetter) {
        lock(&self.letters).by_id.insert(letter.id.0, letter);
    }

    pub(crate) fn clear(&self) {
        let old = std::mem::take(&mut lock(&self.letters).by_id);
        drop(old);
    }
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
    fn store(&self) -> &DeadLetterStore {
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
        self.store().take(id).is_some()
    }

    /// Delivers the dead letter's event again to its subscription (by id,
    /// or else the live subscription with its name), once: no retries,
    /// but the subscription's timeout and concurrency limits apply. On
    /// success the dead letter is removed; on failure it stays with its
    /// attempts and error updated. While a redrive runs the letter is out
    /// of the list, so two redrives of one id deliver at most once; if the
    /// redrive future is dropped early, the letter goes back.
    pub async fn redrive(&self, id: DeadLetterId) -> Result<(), RedriveError> {
        let store = self.store();
        let letter = store.take(id).ok_or(RedriveError::UnknownId(id))?;
        let mut taken = Taken {
            store,
            letter: Some(letter),
        };
        let letter = taken.letter.as_ref().expect("set above");
        let Some(subscriber) = self.find(letter) else {
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
                Ok(())
            }
            Err(error) => {
                if let Some(letter) = &mut taken.letter {
                    letter.attempts = letter.attempts.saturating_add(1);
                    letter.error.clone_from(&error);
                    letter.last_failed_at = SystemTime::now();
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
}

/// A letter out of the store during a redrive; put back on drop unless
/// the redrive delivered it.
struct Taken<'a> {
    store: &'a DeadLetterStore,
    letter: Option<DeadLetter>,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if let Some(letter) = self.letter.take() {
            self.store.put_back(letter);
        }
    }
}
