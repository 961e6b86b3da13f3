//! Why the bus is fast, and why it is correct. Behaviour is in
//! [`semantics`](super::semantics); this page is how it is achieved.
//!
//! # One copy-on-write table per event type
//!
//! The bus holds an array of 24 cells indexed by `EventType::index()`, each
//! holding an immutable table of subscribers (a `SmallVec`, four inline)
//! behind an `Arc`. A publish reads its type's table through a hazard slot
//! (below): no lock, no locked instruction, no write to a line another
//! thread reads. Subscribing and unsubscribing build a new table and swap it
//! in; writers serialise on a registry mutex that publishers never take, and
//! replaced tables are retired after it is released. A per-subscriber
//! `active` flag, cleared before the swap, keeps a dispatch that already
//! loaded the old table from calling a handler unsubscribed earlier on its
//! own thread. Each cell also counts its swaps (a version) and the bus
//! counts all of them (a generation): a `Publisher` keeps an owned `Arc` of
//! each table it uses and revalidates it with one plain load of the
//! version, on the cell's own line, and every 64 publishes checks the
//! generation to release other stale copies.
//!
//! # Hazard slots with asymmetric fences
//!
//! Each thread owns a record of four slots, one per nesting depth of
//! publishes (`src/hazard.rs`). A publish stores the table's address in its
//! slot, issues a *light* fence, and loads the cell again; if the address is
//! unchanged the table is protected. When the publish ends it clears the
//! slot with a plain store, issues a light fence, and loads one word
//! (`owed`) that is null unless a writer handed it a reference to drop.
//! That is about 25 instructions and no locked one (arc-swap's debt slots,
//! used before, cost an `xchg` and a `lock cmpxchg`, ≈ 13 ns).
//!
//! The rare writer pays instead. After swapping a table it issues a *heavy*
//! fence and scans every thread's slots: a publish whose slot does not show
//! the old table now can never read it (its re-check comes after the fence
//! in its program, and sees the swap). For each slot that does show it, the
//! writer puts a clone of the table's `Arc` in that slot's `owed` word,
//! issues a second heavy fence and looks again: if the slot still shows the
//! table, that publish's clearing store comes after the fence, so its load
//! of `owed` sees the clone and it drops it when done; if not, the writer
//! and the finished publish race to swap the clone out and the winner drops
//! it. Then the writer drops its own `Arc`. So a replaced table, and a
//! removed handler with its captures, is dropped by whoever lets go of it
//! last: the writer, or the last publish that was reading it, at its end.
//! The writer never waits for a publish, so unsubscribing from inside a
//! handler (whose own slot holds the table) cannot deadlock. Publishes
//! nested deeper than four, or running in a thread-local destructor after
//! the thread's record is gone, clone the `Arc` under the cell's swap lock
//! instead. Records of exited threads are reused by new ones.
//!
//! On Linux the heavy fence is `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`
//! (the process registers once, at its first subscription change; a forked
//! child inherits the registration, and `exec` starts afresh, deciding
//! again; `tests/fork.rs`), which
//! makes every running thread of the process execute a full barrier, and
//! the light fence is a compiler fence: the scheme of folly's hazard pointers
//! and liburcu's `memb` flavour. Where `membarrier` is unavailable (other
//! systems, a kernel that refuses to register, Miri, loom) both are
//! `fence(SeqCst)`, the same algorithm with symmetric fences. The cost moves
//! to subscription changes: a subscribe or unsubscribe takes one or two
//! `membarrier` calls, about half a microsecond each on an idle 2-core VM
//! and tens of microseconds when the machine is oversubscribed, and each
//! call briefly interrupts every running thread of the process, so
//! subscriptions churned non-stop slow publishers down
//! (`benches/RESULTS.md`, session 8). Writers of all buses serialise on one
//! process-wide lock around that handshake.
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
//! defers dropping an event swapped out during a read. Raw `Arc` pointers in the slot words are
//! `unsafe` code (as are the hazard slots' table pointers), each block with
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
//! [loom](https://docs.rs/loom) primitives (the asymmetric fences become
//! `SeqCst` fences; the 128-bit slot word becomes a loom atomic, so its
//! orderings are checked), so the models in `tests/loom.rs` explore the
//! interleavings of the real hazard-slot, table-swap, unsubscribe and
//! history-ring code. The history handshake relies
//! on `SeqCst` accesses, which cost no fence on x86; loom does not model
//! `SeqCst` accesses, so loom builds add the equivalent `SeqCst` fences.
