//! The conformance suite against SQLite (a file per test).

mod common;

use agentbus_store::SqliteStore;

fn store() -> Option<SqliteStore> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.db")).unwrap();
    // The directory lives as long as the test process; tempfile cleans up
    // on the next boot at worst. Keep it so the file outlives this function.
    std::mem::forget(dir);
    Some(store)
}

conformance_suite! { store();
    append_gives_gap_free_sequences_and_skips_known_ids,
    events_round_trip_exactly,
    read_filters_orders_and_pages,
    cursors_beyond_the_largest_sequence_read_nothing,
    get_reads_one_event_by_id,
    correlation_reads_a_whole_chain_as_the_bus_history_does,
    recorder_stores_every_event_of_concurrent_publishers,
    flush_covers_every_earlier_publish_while_publishers_run,
    catch_up_seam_has_no_gap_and_no_duplicate,
    catch_up_refills_a_consumer_that_fell_behind,
    replay_keeps_ids_and_never_stores_twice,
    projection_resumed_from_a_snapshot_equals_a_rebuild,
    retention_prunes_in_the_background,
    two_recorders_share_one_store,
    a_store_chosen_at_run_time_works_behind_arc_dyn,
    a_slow_writer_slows_publishers_and_memory_stays_bounded,
    reserving_publishers_never_wait_on_their_thread,
    drop_policy_counts_drops_and_flush_reports_them,
    store_failures_are_retried_and_flush_reports_them,
    events_the_store_refuses_are_skipped_not_retried_forever,
}
