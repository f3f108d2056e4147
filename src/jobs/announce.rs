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
//!
//! The same task announces on other channels for whoever calls [`JobQueue::announce`](super::JobQueue::announce)
//! after a commit (the Stripe inbox wakes its processors so), and [`Wakeups`] listens on one.
use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet},
    future::Future,
    time::Duration,
};

use apalis_postgres::PgListener;
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
    finished: mpsc::UnboundedSender<Announcement>,
}

/// What one message to the announcing task asks for.
#[derive(Debug)]
enum Announcement {
    Jobs(Queued),
    Channel(&'static str),
}

impl Announcer {
    /// Starts the announcing task; it ends when the last `Announcer` is dropped.
    pub(super) fn start(db: DatabaseConnection) -> Self {
        let (finished, mut receiver) = mpsc::unbounded_channel::<Announcement>();
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                // Under load, many units of work finish while one NOTIFY is on its way: one statement
                // announces them all.
                let (mut queued, mut channels) = (Queued::new(), BTreeSet::new());
                let mut next = Some(first);
                while let Some(announcement) = next {
                    match announcement {
                        Announcement::Jobs(jobs) => queued.extend(jobs),
                        Announcement::Channel(channel) => {
                            channels.insert(channel);
                        }
                    }
                    next = receiver.try_recv().ok();
                }
                if !queued.is_empty()
                    && let Err(error) = db.execute_raw(notify(&queued)).await
                {
                    tracing::warn!(%error, "could not wake the job workers; their poll will find the jobs");
                }
                for channel in channels {
                    let wake = db::stmt("SELECT pg_notify($1, '')", [channel.into()]);
                    if let Err(error) = db.execute_raw(wake).await {
                        tracing::warn!(%error, channel, "could not announce; the listeners' poll remains");
                    }
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
            let _ = self.finished.send(Announcement::Jobs(queued));
        }
        output
    }

    /// Notifies `channel`'s listeners soon, on the announcing task's connection: call it once
    /// what they should see has committed. Announcements made meanwhile are sent as one.
    pub(super) fn channel(&self, channel: &'static str) {
        let _ = self.finished.send(Announcement::Channel(channel));
    }
}

/// Notifications on one channel, from any process: `next` resolves on the next one. While the
/// listening connection is down it reconnects, pausing between tries, and `next` waits (the
/// caller's poll keeps it working meanwhile).
pub struct Wakeups {
    db: DatabaseConnection,
    channel: &'static str,
    listener: Option<PgListener>,
}

impl Wakeups {
    pub fn new(db: DatabaseConnection, channel: &'static str) -> Self {
        Self {
            db,
            channel,
            listener: None,
        }
    }

    /// The next notification (several sent together may resolve it once).
    pub async fn next(&mut self) {
        loop {
            if self.listener.is_none() {
                self.listener = self.connect().await;
            }
            let Some(listener) = self.listener.as_mut() else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            match listener.try_recv().await {
                Ok(Some(_)) => return,
                // The connection dropped (notifications meanwhile are lost: the poll finds them).
                Ok(None) | Err(_) => self.listener = None,
            }
        }
    }

    async fn connect(&self) -> Option<PgListener> {
        let pool = self.db.get_postgres_connection_pool();
        let connected = async {
            let mut listener = PgListener::connect_with(pool).await?;
            listener.listen(self.channel).await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        };
        match connected.await {
            Ok(listener) => Some(listener),
            Err(error) => {
                tracing::warn!(%error, channel = self.channel, "cannot listen; polling only");
                None
            }
        }
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
