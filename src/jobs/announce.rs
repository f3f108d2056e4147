//! Waking the workers for new jobs once the transaction that queued them has committed.
//!
//! A NOTIFY inside the enqueuing transaction would make every such transaction commit one at a
//! time (see the `jobs_wake_after_commit` migration). Instead a unit of work — an HTTP request, a
//! job run — runs inside [`JobQueue::announce_after`](super::JobQueue::announce_after): the jobs it
//! queues are noted, and announced once it has finished, by a background task that sends one
//! NOTIFY statement for everything announced meanwhile. A job queued outside a unit of work is
//! announced on the caller's connection, which delivers it when that connection's transaction
//! commits (the old way).
//!
//! Announcing a job whose transaction rolled back costs a worker one empty fetch; an announcement
//! that is lost costs latency only, as the workers also poll.
use std::{cell::RefCell, collections::BTreeMap, future::Future};

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use crate::db;
use tokio::sync::mpsc;

/// Queue name → one job queued in it. One id per queue is enough: a notification only makes that
/// queue's workers fetch what is due.
pub(super) type Queued = BTreeMap<&'static str, String>;

tokio::task_local! {
    static UNIT_OF_WORK: RefCell<Queued>;
}

/// Hands finished units of work's jobs to the task that announces them.
#[derive(Debug, Clone)]
pub(super) struct Announcer {
    finished: mpsc::UnboundedSender<Queued>,
}

impl Announcer {
    /// Starts the announcing task; it ends when the last `Announcer` is dropped.
    pub(super) fn start(db: DatabaseConnection) -> Self {
        let (finished, mut receiver) = mpsc::unbounded_channel::<Queued>();
        tokio::spawn(async move {
            while let Some(mut queued) = receiver.recv().await {
                // Under load, many units of work finish while one NOTIFY is on its way: one statement
                // announces them all.
                while let Ok(more) = receiver.try_recv() {
                    queued.extend(more);
                }
                if let Err(error) = db.execute_raw(notify(&queued)).await {
                    tracing::warn!(%error, "could not wake the job workers; their poll will find the jobs");
                }
            }
        });
        Self { finished }
    }

    pub(super) async fn after<F: Future>(&self, work: F) -> F::Output {
        let (output, queued) = UNIT_OF_WORK
            .scope(RefCell::default(), async {
                let output = work.await;
                (output, UNIT_OF_WORK.with(RefCell::take))
            })
            .await;
        if !queued.is_empty() {
            // Fails only once the task has stopped (the runtime is shutting down): the poll remains.
            let _ = self.finished.send(queued);
        }
        output
    }
}

/// Notes `id` for the current unit of work's announcement; `false` outside one.
pub(super) fn note(queue: &'static str, id: &str) -> bool {
    UNIT_OF_WORK
        .try_with(|queued| queued.borrow_mut().insert(queue, id.to_owned()))
        .is_ok()
}

/// The notification apalis' trigger sent, `{job_type, id, run_at}` on `apalis::job::insert`, once
/// per queue.
pub(super) fn notify(queued: &Queued) -> Statement {
    let queued = serde_json::to_value(queued).unwrap_or_default();
    db::stmt(
        "SELECT pg_notify('apalis::job::insert', \
             json_build_object('job_type', key, 'id', value, 'run_at', now())::text) \
         FROM json_each_text($1::json)",
        [queued.into()],
    )
}
