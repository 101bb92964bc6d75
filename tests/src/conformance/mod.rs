//! The conformance suite: each function here is one behaviour every adapter must have, written
//! once and run against both adapters by [`conformance_suite!`] (see
//! `tests/tests/conformance/main.rs`). A suite function written here but not listed in the
//! macro fails `every_suite_function_is_listed`.

pub mod authorizations;
pub mod blocks;
pub mod claims;
pub mod connect_flow;
pub mod connect_tokens;
pub mod credentials;
pub mod links;
pub mod rate_limits;
pub mod registrations;
pub mod seal;
pub mod signing_keys;
pub mod signins;
pub mod worker_tokens;

/// Expands to one `#[tokio::test]` per suite function, for the given [`Backend`](crate::fixtures::Backend).
#[macro_export]
macro_rules! conformance_suite {
    ($backend:expr) => {
        $crate::conformance_suite!(@tests $backend;
            connect_tokens::consumed_exactly_once,
            connect_tokens::expired_token_is_not_consumable,
            connect_tokens::written_by_one_client_consumed_by_another,
            connect_tokens::a_retried_insert_succeeds,
            connect_tokens::account_label_round_trips_and_burn_consumes,
            links::link_both_ways_and_unlink,
            links::same_pair_is_idempotent_other_pairs_conflict,
            links::concurrent_links_of_one_user_one_winner,
            links::concurrent_unlinks_one_winner,
            links::reachability_is_recorded_on_both_sides,
            rate_limits::buckets_admit_their_burst_then_their_rate,
            rate_limits::the_claim_keeps_the_digest_and_the_first_result,
            rate_limits::concurrent_admissions_keep_the_limits,
            claims::begin_complete_then_duplicate,
            claims::dead_attempt_is_taken_over_after_in_progress_expiry,
            claims::released_claim_can_be_retried_at_once,
            claims::claims_end_with_their_retention,
            claims::claim_once_is_one_write_and_one_winner,
            claims::concurrent_begins_one_winner,
            connect_flow::consumes_links_and_claims_in_one_step,
            connect_flow::unknown_and_expired_tokens_write_nothing,
            connect_flow::conflicts_leave_the_token_unconsumed,
            connect_flow::relinking_the_same_pair_keeps_the_original_link,
            connect_flow::a_dead_attempts_claim_does_not_block_a_retry,
            connect_flow::sixteen_updates_with_one_token_one_winner,
            connect_flow::one_update_delivered_concurrently_links_once,
            registrations::create_and_read_by_id_and_token,
            registrations::create_is_all_or_nothing,
            registrations::finish_is_one_time,
            registrations::expired_token_cannot_finish_and_is_marked_expired,
            registrations::concurrent_finishers_one_winner,
            registrations::retention_boundary_and_purge,
            registrations::seed_is_stored_sealed_for_its_owner,
            registrations::totp_target_is_the_latest_or_the_named_completed_seed,
            registrations::totp_step_is_accepted_once,
            registrations::totp_concurrent_accepts_one_winner,
            registrations::totp_failures_lock_and_reset,
            seal::round_trip_and_second_client,
            seal::other_users_context_does_not_open,
            seal::flipped_bytes_do_not_open,
            seal::moved_attribute_or_record_does_not_open,
            seal::one_key_unwrap_per_record,
            credentials::absent_record_reads_as_none,
            credentials::versioned_writes_round_trip_and_conflict,
            credentials::absent_fields_are_removed,
            credentials::concurrent_changes_are_never_lost,
            credentials::worker_read_records_activity_without_a_new_version,
            credentials::worker_read_does_not_revive_an_idle_session,
            credentials::sealed_values_are_bound_to_their_user,
            worker_tokens::tokens_are_listed_per_user_and_revoked,
            worker_tokens::revocation_is_seen_by_another_client_at_once,
            worker_tokens::concurrent_revokes_have_one_winner,
            worker_tokens::worker_read_checks_the_token,
            worker_tokens::token_before_any_credentials,
            worker_tokens::settings_writes_keep_tokens,
            worker_tokens::the_limit_holds_under_concurrent_creation,
            worker_tokens::revoke_all_revokes_every_active_token,
            worker_tokens::writes_on_behalf_of_a_token_check_it,
            blocks::block_revokes_the_link_and_refuses_links,
            blocks::blocked_users_cannot_connect_through_the_bot,
            blocks::block_racing_links_ends_blocked_and_unlinked,
            blocks::concurrent_unblocks_one_winner,
            signins::exchange_starts_a_session_and_uses_the_initdata,
            signins::refresh_rotates_and_a_rotated_token_ends_the_session,
            signins::thirty_two_concurrent_refreshes_one_success,
            signins::unlink_and_block_end_every_session,
            signins::a_link_is_seen_by_the_next_refresh_and_a_session_links_once,
            signins::concurrent_links_with_one_session_link_once,
            signins::exchange_racing_block_ends_blocked_without_sessions,
            signins::revoke_by_refresh_token_or_session,
            signins::the_session_cap_evicts_the_oldest,
            signing_keys::the_first_key_is_created_once_under_concurrency,
            signing_keys::a_rotation_retires_the_current_key_and_both_stay_published,
            signing_keys::adding_a_key_is_conditional_on_the_current_one,
            signing_keys::the_private_key_is_stored_sealed_for_its_purpose,
            authorizations::a_request_is_taken_once_by_another_client,
            authorizations::an_expired_request_cannot_be_taken,
            authorizations::sixteen_concurrent_takers_one_winner,
            authorizations::a_code_is_redeemed_once_and_a_replay_names_the_first_session,
            authorizations::an_expired_code_is_not_redeemed,
            authorizations::sixteen_concurrent_redemptions_one_winner,
        );
    };
    (@tests $backend:expr; $($module:ident :: $name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::conformance::$module::$name($backend).await;
            }
        )+

        /// A suite function written but not listed above would silently never run.
        #[test]
        fn every_suite_function_is_listed() {
            $crate::conformance::assert_all_listed(&[
                $(concat!(stringify!($module), "::", stringify!($name))),+
            ]);
        }
    };
}

/// Every suite function (`pub async fn <name>(backend: Backend)` in a module of this folder) is
/// in `listed` (`module::name`), and every listed one exists (the second half is also checked
/// by the compiler). Read from the sources, so adding a function without listing it fails.
pub fn assert_all_listed(listed: &[&str]) {
    let dir = crate::workspace_root().join("tests/src/conformance");
    let mut written = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("conformance sources") {
        let path = entry.expect("directory entry").path();
        let module = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if path.extension().is_none_or(|e| e != "rs") || module == "mod" {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("conformance source");
        for line in source.lines() {
            let Some(rest) = line.trim_start().strip_prefix("pub async fn ") else {
                continue;
            };
            let Some((name, params)) = rest.split_once('(') else {
                continue;
            };
            if params.starts_with("backend: Backend") {
                written.insert(format!("{module}::{}", name.trim()));
            }
        }
    }
    assert!(written.len() > 10, "suite functions found: {written:?}");
    let listed: std::collections::BTreeSet<String> = listed.iter().map(|s| s.to_string()).collect();
    let unlisted: Vec<_> = written.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "written but not in conformance_suite!: {unlisted:?}"
    );
    let missing: Vec<_> = listed.difference(&written).collect();
    assert!(missing.is_empty(), "listed but not found: {missing:?}");
}
