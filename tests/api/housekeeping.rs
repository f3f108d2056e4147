//! Housekeeping deletes exactly what can no longer be used, however much has piled up, and runs by
//! itself on the workers.
use std::time::Duration;

use ironclad::{db::DELETE_BATCH, housekeeping, jobs::periodic};
use tokio_util::sync::CancellationToken;

use crate::support::{
    TestApp,
    auth::{mail_to, register},
};

/// Done jobs, `done_days_ago` days ago: `n` of them, numbered from `first`.
async fn done_jobs(app: &TestApp, first: u64, n: u64, done_days_ago: u32) {
    app.sql(&format!(
        "INSERT INTO apalis.jobs (id, job_type, job, status, done_at) \
             SELECT 'done-' || i, 'email', convert_to('{{}}', 'UTF8'), 'Done', \
                    now() - interval '{done_days_ago} days' \
             FROM generate_series({first}, {}) AS i",
        first + n - 1
    ))
    .await;
}

#[tokio::test]
async fn housekeeping_deletes_only_what_can_no_longer_be_used() {
    // Defaults: finished jobs kept 7 days, ended sessions 30, the throttle window 15 minutes.
    let app = TestApp::spawn().await;
    register(&app, "keeper@example.com").await;
    // Registering queued a verification email: let its job finish, so only the rows below count.
    mail_to(&app, "keeper@example.com", "Verify").await;
    let old_done = 2 * DELETE_BATCH + 500;
    done_jobs(&app, 1, old_done, 8).await;
    done_jobs(&app, old_done + 1, 1, 1).await;
    app.sql(
        "INSERT INTO apalis.jobs (id, job_type, job, status, done_at, attempts, max_attempts) VALUES
           ('dead-old', 'email', convert_to('{}', 'UTF8'), 'Killed', now() - interval '60 days', 8, 8),
           ('pending-old', 'email', convert_to('{}', 'UTF8'), 'Pending', NULL, 0, 8);
         UPDATE apalis.jobs SET run_at = now() - interval '60 days' WHERE id = 'pending-old';

         INSERT INTO sessions (id, user_id, aal, expires_at, revoked_at)
         SELECT s.id, u.id, 'aal1', now() + s.expires, s.revoked
         FROM users u, (VALUES
           ('00000000-0000-7000-8000-000000000001'::uuid, interval '-40 days', NULL::timestamptz),
           ('00000000-0000-7000-8000-000000000002'::uuid, interval '-10 days', NULL),
           ('00000000-0000-7000-8000-000000000003'::uuid, interval '20 days', now() - interval '1 day'),
           ('00000000-0000-7000-8000-000000000004'::uuid, interval '20 days', NULL)
         ) AS s (id, expires, revoked)
         WHERE u.email = 'keeper@example.com';
         INSERT INTO refresh_tokens (token_hash, session_id) VALUES
           ('\\x01', '00000000-0000-7000-8000-000000000001'),
           ('\\x04', '00000000-0000-7000-8000-000000000004');

         INSERT INTO email_tokens (token_hash, user_id, purpose, expires_at)
         SELECT t.hash, u.id, 'password_reset', now() + t.expires
         FROM users u, (VALUES ('\\xe1'::bytea, interval '-1 minute'), ('\\xe2'::bytea, interval '1 hour'))
              AS t (hash, expires)
         WHERE u.email = 'keeper@example.com';
         INSERT INTO mfa_challenges (id, token_hash, user_id, expires_at)
         SELECT c.id, c.hash, u.id, now() + c.expires
         FROM users u, (VALUES
           ('00000000-0000-7000-8000-0000000000c1'::uuid, '\\xc1'::bytea, interval '-1 minute'),
           ('00000000-0000-7000-8000-0000000000c2'::uuid, '\\xc2'::bytea, interval '5 minutes')
         ) AS c (id, hash, expires)
         WHERE u.email = 'keeper@example.com';

         INSERT INTO auth_throttle (key, attempts, window_started_at) VALUES
           ('login:ip:ended', 3, now() - interval '16 minutes'),
           ('login:ip:current', 3, now() - interval '14 minutes');

         INSERT INTO idempotency_keys (scope, key, fingerprint, owner, locked_until, expires_at) VALUES
           ('user:a', 'expired', '\\x00', gen_random_uuid(), now() - interval '25 hours', now() - interval '1 hour'),
           ('user:a', 'live', '\\x00', gen_random_uuid(), now(), now() + interval '1 hour');

         INSERT INTO sent_emails (message_key, lease_until, sent_at) VALUES
           ('sent-long-ago', now() - interval '8 days', now() - interval '8 days'),
           ('sent-recently', now() - interval '1 day', now() - interval '1 day'),
           ('never-sent', now() - interval '8 days', NULL);",
    )
    .await;
    let before = |table: &str| format!("SELECT count(*) FROM {table}");
    let sessions_before = app.count(&before("sessions")).await;
    let sent_before = app.count(&before("sent_emails")).await;
    let jobs_before = app.count(&before("apalis.jobs")).await;

    // Invitations: one accepted 31 days ago, one expired 31 days ago (gone); one revoked
    // yesterday and one pending (kept).
    for (i, (accepted, revoked, expires)) in [
        (
            "now() - interval '31 days'",
            "NULL",
            "now() - interval '20 days'",
        ),
        ("NULL", "NULL", "now() - interval '31 days'"),
        (
            "NULL",
            "now() - interval '1 day'",
            "now() + interval '6 days'",
        ),
        ("NULL", "NULL", "now() + interval '6 days'"),
    ]
    .into_iter()
    .enumerate()
    {
        app.sql(&format!(
            "INSERT INTO org_invitations (id, org_id, email, role, token_hash, expires_at, accepted_at, revoked_at) \
             SELECT gen_random_uuid(), id, 'guest{i}@example.com', 'member', sha256('t{i}'::bytea), {expires}, {accepted}, {revoked} \
             FROM orgs LIMIT 1"
        ))
        .await;
    }
    let deleted = app.layers.housekeeping().run().await.unwrap();

    let deleted_from = |table: &str| {
        deleted
            .iter()
            .find(|(t, _)| *t == table)
            .unwrap_or_else(|| panic!("{table} is not pruned"))
            .1
    };
    assert_eq!(deleted_from("apalis.jobs"), old_done);
    assert_eq!(deleted_from("sessions"), 1);
    assert_eq!(deleted_from("email_tokens"), 1);
    assert_eq!(deleted_from("mfa_challenges"), 1);
    assert_eq!(deleted_from("auth_throttle"), 1);
    assert_eq!(deleted_from("idempotency_keys"), 1);
    assert_eq!(deleted_from("org_invitations"), 2);
    assert_eq!(app.count("SELECT count(*) FROM org_invitations").await, 2);
    assert_eq!(deleted_from("sent_emails"), 1);

    // What stays: recent, live, dead (for the operator) or not yet due.
    assert_eq!(
        app.count(&before("apalis.jobs")).await,
        jobs_before - old_done as i64
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM apalis.jobs \
             WHERE id IN ('dead-old', 'pending-old', 'done-2501')"
        )
        .await,
        3
    );
    assert_eq!(app.count(&before("sessions")).await, sessions_before - 1);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM sessions WHERE id = '00000000-0000-7000-8000-000000000001'"
        )
        .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) FROM refresh_tokens WHERE token_hash IN ('\\x01', '\\x04')")
            .await,
        1,
        "the pruned session's refresh tokens go with it, the live one's stay"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM email_tokens WHERE token_hash = '\\xe2'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM mfa_challenges WHERE token_hash = '\\xc2'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM auth_throttle WHERE key = 'login:ip:current'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM idempotency_keys WHERE key = 'live'")
            .await,
        1
    );
    assert_eq!(app.count(&before("sent_emails")).await, sent_before - 1);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM sent_emails WHERE message_key IN ('sent-recently', 'never-sent')"
        )
        .await,
        2
    );

    // Nothing left to do: a second run (another instance, a retry) deletes nothing.
    let again = app.layers.housekeeping().run().await.unwrap();
    assert!(again.iter().all(|(_, n)| *n == 0), "{again:?}");
}

#[tokio::test]
async fn housekeeping_runs_by_itself_on_the_workers() {
    let app = TestApp::spawn_with(&[("HOUSEKEEPING_INTERVAL_SECS", "1")]).await;
    done_jobs(&app, 1, 3, 8).await;
    // A housekeeping run finished, and the old finished jobs are gone.
    app.eventually_within(
        "SELECT least(count(*), 1) FROM apalis.jobs WHERE job_type = 'housekeeping' \
         AND status = 'Done' AND NOT EXISTS (SELECT 1 FROM apalis.jobs WHERE id LIKE 'done-%')",
        1,
        Duration::from_secs(10),
    )
    .await;
}

#[tokio::test]
async fn a_periodic_job_is_queued_once_per_interval_however_many_processes_schedule_it() {
    // The app's workers schedule housekeeping every second; three more schedulers stand in for
    // three more processes.
    let app = TestApp::spawn_with(&[("HOUSEKEEPING_INTERVAL_SECS", "1")]).await;
    let others = CancellationToken::new();
    for _ in 0..3 {
        tokio::spawn(periodic::schedule::<housekeeping::Housekeeping>(
            app.layers.jobs.clone(),
            app.db.clone(),
            Duration::from_secs(1),
            others.clone(),
        ));
    }
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    others.cancel();

    // Four schedulers ticked about three times each: twelve runs without the per-interval key. With
    // it, one per one-second interval the ticks fell in — at most four (three ticks, a boundary).
    let queued = app
        .count("SELECT count(*) FROM apalis.jobs WHERE job_type = 'housekeeping'")
        .await;
    assert!(
        (2..=4).contains(&queued),
        "{queued} runs queued in 3.5 s by four schedulers of a 1 s interval"
    );
}
