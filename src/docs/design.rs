//! Why the bus is fast, and why it is correct. Behaviour is in
//! [`semantics`](super::semantics); this page is how it is achieved.
//!
//! # One copy-on-write table per event type
//!
//! The bus holds an array of 24
//! cells indexed by `EventType::index()`, each an `arc-swap` cell holding an
//! immutable table of subscribers (a `SmallVec`, four inline). A publish loads
//! its type's table without a lock and without writing a reference count that
//! every publisher shares (arc-swap's per-thread debt slots), then walks it.
//! Subscribing and unsubscribing build a new table and swap it in; writers
//! serialise on a registry mutex that publishers never take, and replaced
//! tables are dropped after it is released. A per-subscriber `active` flag,
//! cleared before the swap, keeps a dispatch that already loaded the old table
//! from calling a handler unsubscribed earlier on its own thread. Each cell
//! also counts its swaps (a version) and the bus counts all of them (a
//! generation): a `Publisher` keeps an owned `Arc` of each table it uses and
//! revalidates it with one plain load of the version, on the cell's own line,
//! and every 64 publishes checks the generation to release other stale
//! copies.
//!
//! # A lock-free history ring
//!
//! Each publish takes a ticket with one
//! `fetch_add` and installs its event in slot `ticket % capacity` with a single
//! 128-bit compare-and-swap of that slot's word: the ticket and event type in
//! the high half, the event's `Arc` pointer in the low half (`cmpxchg16b` on
//! x86_64, detected at run time, portable-atomic's fallback elsewhere). A
//! writer only replaces an older ticket, so tickets never repeat and there is
//! no ABA; slots are 16 bytes, four to a cache line. Readers check each slot's
//! ticket, filter on the type without touching the event, and serialise among
//! themselves (history is for debugging); a Dekker-style handshake with writers
//! defers dropping an event swapped out during a read. This is the crate's
//! only `unsafe` code (raw `Arc` pointers in the slot words), each block with
//! the invariant it relies on.
//!
//! # Striped counters, no locked instruction
//!
//! Stats live in cache-padded
//! stripes. A thread leases a stripe index the first time it publishes and
//! returns it when it exits; while it holds the lease it is the stripe's only
//! writer, so it bumps counters with a plain load and store. Threads beyond 16
//! share one extra stripe with atomic adds. `stats()` sums the stripes, and
//! `reset()` records a baseline rather than zeroing them. Counts are exact once
//! publishers are quiescent.
//!
//! # Event ids without a system call
//!
//! `EventId` is a UUID v7: 48 bits of
//! milliseconds and a 74-bit per-thread counter, seeded once per thread from
//! the standard library's random hash keys and then incremented. Ids sort by
//! creation time, strictly within a thread, and creating an event reads the
//! clock and nothing else.
//!
//! # A sync shim and loom
//!
//! Every atomic, `Arc`, mutex and swapped pointer
//! comes from `src/sync.rs`. Under `--cfg agentbus_loom` they resolve to
//! [loom](https://docs.rs/loom) primitives (arc-swap cells become loom mutexes;
//! the 128-bit slot word becomes a loom atomic, so its orderings are checked),
//! so the models in `tests/loom.rs` explore the interleavings of the real
//! table-swap, unsubscribe and history-ring code. The history handshake relies
//! on `SeqCst` accesses, which cost no fence on x86; loom does not model
//! `SeqCst` accesses, so loom builds add the equivalent `SeqCst` fences.
