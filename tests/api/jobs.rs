//! The job queue's promises: transactional enqueue, idempotent enqueue, retries with backoff, dead
//! jobs kept, and jobs of a killed worker re-run (but not forever).
use std::time::Duration;

use ironclad::{
    jobs::{Enqueued, Job, JobOptions, JobQueue, JobStatus},
    mail::SendEmail,
};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::json;

use crate::support::{
    TestApp,
    auth::{mail_to, post, register},
    jobs::welcome,
};

/// Waits until the job reaches `status` (or fails the test after a while).
async fn wait_for_status(app: &TestApp, id: &str, status: JobStatus) -> ironclad::jobs::JobRecord {
    for _ in 0..200 {
        let job = JobQueue::find(&app.db, id)
            .await
            .unwrap()
            .expect("job exists");
        if job.status == status {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "job {id} never reached {status:?}: {:?}",
        JobQueue::find(&app.db, id).await
    );
}

fn new_id(enqueued: Enqueued) -> String {
    match enqueued {
        Enqueued::New(id) => id,
        Enqueued::Duplicate => panic!("expected a new job"),
    }
}

#[tokio::test]
async fn a_job_enqueued_in_a_rolled_back_transaction_never_runs() {
    let app = TestApp::spawn().await;
    let txn = app.db.begin().await.unwrap();
    app.layers
        .jobs
        .push(
            &txn,
            &welcome("rolled-back@example.com"),
            JobOptions::default(),
        )
        .await
        .unwrap();
    txn.rollback().await.unwrap();

    // A marker job enqueued afterwards runs; once it has, the rolled-back one would have too.
    let marker = new_id(
        app.layers
            .jobs
            .push(
                &app.db,
                &welcome("marker@example.com"),
                JobOptions::default(),
            )
            .await
            .unwrap(),
    );
    wait_for_status(&app, &marker, JobStatus::Done).await;

    let recipients: Vec<_> = app.sink.messages().into_iter().flat_map(|m| m.to).collect();
    assert_eq!(recipients, vec!["marker@example.com"]);
    assert_eq!(app.count("SELECT count(*) FROM apalis.jobs").await, 1);
}

#[tokio::test]
async fn a_job_enqueued_in_a_committed_transaction_runs_with_the_write() {
    let app = TestApp::spawn().await;
    let txn = app.db.begin().await.unwrap();
    txn.execute_unprepared(
        "INSERT INTO users (id, email, password_hash) VALUES (gen_random_uuid(), 'ada@example.com', 'x')",
    )
    .await
    .unwrap();
    let id = new_id(
        app.layers
            .jobs
            .push(&txn, &welcome("ada@example.com"), JobOptions::default())
            .await
            .unwrap(),
    );
    // Not visible to the workers before the commit.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.sink.messages().is_empty());
    txn.commit().await.unwrap();

    let inbox = app.sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].to, vec!["ada@example.com"]);
    let job = wait_for_status(&app, &id, JobStatus::Done).await;
    assert_eq!(job.attempts, 1);
    // Without a key of its own, the Message-ID derives from the job id: stable across retries.
    assert_eq!(
        inbox[0].message_id.as_deref(),
        Some(format!("<{id}@ironclad.localhost>").as_str())
    );
}

#[tokio::test]
async fn the_same_idempotency_key_enqueues_once() {
    let app = TestApp::spawn().await;
    let job = welcome("once@example.com");
    let first = app
        .layers
        .jobs
        .push(&app.db, &job, JobOptions::idempotency_key("welcome:once"))
        .await
        .unwrap();
    // A duplicate inside a transaction must not poison it: the transaction still commits.
    let txn = app.db.begin().await.unwrap();
    let second = app
        .layers
        .jobs
        .push(&txn, &job, JobOptions::idempotency_key("welcome:once"))
        .await
        .unwrap();
    txn.execute_unprepared("SELECT 1").await.unwrap();
    txn.commit().await.unwrap();

    assert!(matches!(first, Enqueued::New(_)));
    assert_eq!(second, Enqueued::Duplicate);
    wait_for_status(&app, &new_id(first), JobStatus::Done).await;
    assert_eq!(app.sink.messages().len(), 1);
}

#[tokio::test]
async fn a_failing_job_is_retried_then_kept_as_dead() {
    let app =
        TestApp::spawn_with(&[("JOBS_MAX_ATTEMPTS", "3"), ("JOBS_RETRY_BASE_MS", "100")]).await;
    let broken = SendEmail {
        template: "no-such-template".into(),
        ..welcome("never@example.com")
    };
    let id = new_id(
        app.layers
            .jobs
            .push(&app.db, &broken, JobOptions::default())
            .await
            .unwrap(),
    );

    let dead = wait_for_status(&app, &id, JobStatus::Killed).await;
    assert_eq!(dead.attempts, 3, "ran exactly max_attempts times");
    let error = dead
        .last_result
        .expect("the last error is kept")
        .to_string();
    assert!(error.contains("no-such-template"), "{error}");
    // Dead jobs are kept (not deleted) and listed for operators.
    let listed = JobQueue::dead_jobs(&app.db, None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert!(app.sink.messages().is_empty());
}

/// Plays apalis' own acknowledgement of a failed run (`status = 'Failed', attempts = n`) against
/// the stored retry policy and returns how long the job must now wait, in ms.
async fn delay_after_failed_attempt(app: &TestApp, id: &str, attempt: i32) -> (String, i64) {
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen)
               VALUES ('w-{attempt}', 'email', 'PgStorage', '', now());
             UPDATE apalis.jobs SET status = 'Running', lock_by = 'w-{attempt}', run_at = now() WHERE id = '{id}';
             UPDATE apalis.jobs SET status = 'Failed', attempts = {attempt}, done_at = now(),
                 last_result = '{{\"Err\": \"boom\"}}' WHERE id = '{id}';"
        ))
        .await
        .unwrap();
    let job = JobQueue::find(&app.db, id).await.unwrap().unwrap();
    let wait_ms = app
        .count(&format!(
            "SELECT (extract(epoch FROM run_at - done_at) * 1000)::bigint FROM apalis.jobs WHERE id = '{id}'"
        ))
        .await;
    (format!("{:?}", job.status), wait_ms)
}

#[tokio::test]
async fn failed_attempts_back_off_exponentially_until_the_job_is_dead() {
    // Workers are running, so the job is kept out of their reach with a delay while we play the acks.
    let app = TestApp::spawn_with(&[
        ("JOBS_MAX_ATTEMPTS", "4"),
        ("JOBS_RETRY_BASE_MS", "1000"),
        ("JOBS_RETRY_MAX_MS", "60000"),
    ])
    .await;
    let options = JobOptions {
        delay: Some(Duration::from_secs(3600)),
        ..JobOptions::default()
    };
    let id = new_id(
        app.layers
            .jobs
            .push(&app.db, &welcome("x@example.com"), options)
            .await
            .unwrap(),
    );
    // base · 2^(attempt-1), ±25% jitter.
    for (attempt, expected_ms) in [(1, 1000), (2, 2000), (3, 4000)] {
        let (status, wait_ms) = delay_after_failed_attempt(&app, &id, attempt).await;
        assert_eq!(status, "Failed");
        let (low, high) = (expected_ms * 3 / 4, expected_ms * 5 / 4);
        assert!(
            (low..=high).contains(&wait_ms),
            "attempt {attempt}: waits {wait_ms} ms, want {low}..={high}"
        );
    }
    let (status, _) = delay_after_failed_attempt(&app, &id, 4).await;
    assert_eq!(status, "Killed", "out of attempts: dead, not retried");
}

/// A worker that died mid-job (kill -9): its row says Running, its heartbeats stopped long ago.
async fn orphan_job(app: &TestApp, attempts: i32, max_attempts: i32, to: &str) -> String {
    let id = new_id(
        app.layers
            .jobs
            .push(
                &app.db,
                &welcome(to),
                JobOptions {
                    max_attempts: Some(max_attempts as u32),
                    // Out of the live workers' reach until we have made it an orphan.
                    delay: Some(Duration::from_secs(3600)),
                    ..JobOptions::default()
                },
            )
            .await
            .unwrap(),
    );
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen)
               VALUES ('dead-worker-{id}', 'email', 'PgStorage', '', now() - interval '1 hour');
             UPDATE apalis.jobs SET status = 'Running', lock_by = 'dead-worker-{id}', lock_at = now(),
               attempts = {attempts}, run_at = now() - interval '1 hour'
             WHERE id = '{id}';"
        ))
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn jobs_of_a_killed_worker_run_again_but_not_forever() {
    let app = TestApp::spawn().await;
    let rescued = orphan_job(&app, 0, 3, "rescued@example.com").await;
    let doomed = orphan_job(&app, 2, 3, "doomed@example.com").await;

    // A live worker's heartbeat notices the dead one and re-enqueues its jobs.
    let done = wait_for_status(&app, &rescued, JobStatus::Done).await;
    assert_eq!(done.attempts, 2, "the lost run counts as an attempt");
    // The one that already used up its attempts (it kept killing its worker) is dead, not re-run.
    let dead = wait_for_status(&app, &doomed, JobStatus::Killed).await;
    assert!(
        dead.last_result
            .unwrap()
            .to_string()
            .contains("worker running it was lost")
    );

    let recipients: Vec<_> = app.sink.messages().into_iter().flat_map(|m| m.to).collect();
    assert_eq!(recipients, vec!["rescued@example.com"]);
}

/// Waits until every job kind's worker is listening for announcements (a NOTIFY sent before that
/// would be missed, and this test's poll is an hour away).
async fn wait_for_listeners(app: &TestApp) {
    let kinds = app.layers.workers().queues().count() as i64;
    app.eventually_within(
        &format!(
            "SELECT least(count(*), {kinds}) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN %'"
        ),
        kinds,
        Duration::from_secs(10),
    )
    .await;
}

#[tokio::test]
async fn new_jobs_wake_the_workers_once_their_transaction_has_committed() {
    // With the workers' poll an hour away, each email below arrives only because whoever queued it
    // announced it: a request, a job run, or (outside both) the enqueuing transaction's commit.
    let app = TestApp::spawn_with(&[("JOBS_POLL_INTERVAL_MS", "3600000")]).await;
    wait_for_listeners(&app).await;

    // A request queues an email.
    register(&app, "ada@example.com").await;
    mail_to(&app, "ada@example.com", "Verify your email").await;

    // A request queues a job that queues an email.
    let forgot = post(
        &app,
        "/auth/password/forgot",
        None,
        json!({"email": "ada@example.com"}),
    )
    .await;
    assert_eq!(forgot.status, 202, "{}", forgot.body);
    mail_to(&app, "ada@example.com", "Reset your password").await;

    // Outside a request or job: the announcement rides on the transaction, delivered at commit.
    let txn = app.db.begin().await.unwrap();
    app.layers
        .jobs
        .push(&txn, &welcome("grace@example.com"), JobOptions::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        app.sink
            .messages()
            .iter()
            .all(|m| m.to != ["grace@example.com"]),
        "not before the commit"
    );
    txn.commit().await.unwrap();
    mail_to(&app, "grace@example.com", "Welcome").await;
}

#[tokio::test]
async fn jobs_queued_in_a_unit_of_work_are_announced_after_it_not_inside_its_transaction() {
    let app = TestApp::spawn().await;
    let mut listener =
        sea_orm::sqlx::postgres::PgListener::connect_with(app.db.get_postgres_connection_pool())
            .await
            .unwrap();
    listener.listen("apalis::job::insert").await.unwrap();

    let (committed, on_commit) = tokio::sync::oneshot::channel();
    let (finish, on_finish) = tokio::sync::oneshot::channel::<()>();
    let (jobs, db) = (app.layers.jobs.clone(), app.db.clone());
    let unit_of_work = tokio::spawn(async move {
        jobs.clone()
            .announce_after(async move {
                let txn = db.begin().await.unwrap();
                let enqueued = jobs
                    .push(&txn, &welcome("ada@example.com"), JobOptions::default())
                    .await
                    .unwrap();
                txn.commit().await.unwrap();
                committed.send(new_id(enqueued)).unwrap();
                on_finish.await.unwrap();
            })
            .await
    });
    let id = on_commit.await.unwrap();

    // Committed, but the unit of work goes on: a NOTIFY inside the transaction would be here now.
    let early = tokio::time::timeout(Duration::from_millis(500), listener.recv()).await;
    assert!(
        early.is_err(),
        "announced inside the transaction: {early:?}"
    );

    finish.send(()).unwrap();
    unit_of_work.await.unwrap();
    let notification = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("announced once the unit of work ended")
        .unwrap();
    let payload: serde_json::Value = serde_json::from_str(notification.payload()).unwrap();
    assert_eq!(payload["job_type"], SendEmail::QUEUE);
    assert_eq!(payload["id"], id.as_str());
}

#[tokio::test]
async fn run_until_idle_runs_what_is_due_records_failures_as_a_worker_does_and_leaves_the_rest() {
    // A retry backs off ten minutes: well past the end of the test, however slow the machine.
    let app = TestApp::spawn_without_workers(&[
        ("JOBS_MAX_ATTEMPTS", "2"),
        ("JOBS_RETRY_BASE_MS", "600000"),
        ("JOBS_RETRY_MAX_MS", "600000"),
    ])
    .await;
    let push = |job: SendEmail, options: JobOptions| {
        let (jobs, db) = (app.layers.jobs.clone(), app.db.clone());
        async move { new_id(jobs.push(&db, &job, options).await.unwrap()) }
    };
    let sent = push(welcome("now@example.com"), JobOptions::default()).await;
    let mut broken = welcome("broken@example.com");
    broken.template = "no_such_template".into();
    let failing = push(broken, JobOptions::default()).await;
    let later = push(
        welcome("later@example.com"),
        JobOptions {
            delay: Some(Duration::from_secs(3600)),
            ..JobOptions::default()
        },
    )
    .await;

    assert_eq!(
        app.run_jobs_until_idle().await,
        2,
        "the two due jobs ran, once each"
    );
    let find = |id: String| {
        let db = app.db.clone();
        async move { JobQueue::find(&db, &id).await.unwrap().expect("job") }
    };
    assert_eq!(find(sent.clone()).await.status, JobStatus::Done);
    assert_eq!(
        app.sink.messages().len(),
        1,
        "the email went out at once, through SMTP"
    );
    let failed = find(failing.clone()).await;
    assert_eq!((failed.status, failed.attempts), (JobStatus::Failed, 1));
    assert!(
        failed.run_at > chrono::Utc::now(),
        "backed off by the retry policy"
    );
    assert!(
        failed
            .last_result
            .unwrap()
            .to_string()
            .contains("no_such_template"),
        "the error is recorded"
    );
    assert_eq!(find(later).await.status, JobStatus::Pending, "not due yet");

    // Nothing is due any more: a second run does nothing.
    assert_eq!(app.run_jobs_until_idle().await, 0);
    // Once the retry is due it runs again, and out of attempts the job is dead.
    app.sql(&format!(
        "UPDATE apalis.jobs SET run_at = now() WHERE id = '{failing}'"
    ))
    .await;
    assert_eq!(app.run_jobs_until_idle().await, 1);
    assert_eq!(find(failing).await.status, JobStatus::Killed);
}
