//! The inbox's front half: a verified delivery stored in one durable write, then acknowledged.
//!
//! Deliveries that arrive together are **group-committed**: a writer task takes the first one
//! waiting, gathers those that arrive within the batch window (or until the batch is full), inserts
//! them all with one multi-row `INSERT … ON CONFLICT (event_id) DO NOTHING RETURNING event_id` —
//! one statement, one commit — and answers each delivery. The primary key decides duplicates, also
//! two copies of one event inside one batch. If the batch statement fails, its rows are written one
//! by one, so one bad row never fails its neighbours; a row that still fails is answered with the
//! error (500, and Stripe retries it).
//!
//! Several writers run, so one batch is gathered while another commits. Once a batch has committed
//! the processors are woken: in this process directly, in others through the after-commit
//! announcer (`JobQueue::announce`). A NOTIFY inside the insert would make every insert commit
//! one at a time behind Postgres' notification lock, the very serialisation batching removes.
//!
//! [`IngestLoad`] counts the deliveries stored, so the processors of this process can tell a
//! storm (its rate) and yield to it (`processor/yielding.rs`).
use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Value};
use serde::Deserialize;
use tokio::sync::{Mutex, Notify, mpsc, oneshot};

use crate::billing::{config::InboxConfig, error::BillingError};
use crate::{db, jobs::JobQueue};

/// The channel processors in other processes listen on for new events.
pub const CHANNEL: &str = "ironclad_stripe_inbox";

/// A verified event as the inbox stores it: the raw body and the envelope's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub id: String,
    pub event_type: String,
    pub created: DateTime<Utc>,
    pub livemode: bool,
    pub api_version: Option<String>,
    /// The object the event is about (`data.object`): its type and id.
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    /// The body exactly as Stripe signed it.
    pub payload: String,
}

#[derive(Deserialize)]
struct EnvelopeColumns {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    created: i64,
    livemode: bool,
    #[serde(default)]
    api_version: Option<String>,
    data: DataColumns,
}

#[derive(Deserialize)]
struct DataColumns {
    object: ObjectColumns,
}

#[derive(Deserialize)]
struct ObjectColumns {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    object: Option<String>,
}

impl Received {
    /// Reads the envelope of a verified body. Anything that is not a Stripe event (not UTF-8 JSON,
    /// no id, type, created time or `data.object`) is refused, to be answered 400 and not stored.
    pub fn parse(body: &[u8]) -> Result<Self, BillingError> {
        let invalid = |e: &dyn std::fmt::Display| BillingError::InvalidEvent(e.to_string());
        let payload = std::str::from_utf8(body).map_err(|e| invalid(&e))?;
        let columns: EnvelopeColumns = serde_json::from_str(payload).map_err(|e| invalid(&e))?;
        if columns.id.is_empty() || columns.event_type.is_empty() {
            return Err(BillingError::InvalidEvent("empty id or type".into()));
        }
        let created = DateTime::from_timestamp(columns.created, 0)
            .ok_or_else(|| BillingError::InvalidEvent("created is out of range".into()))?;
        Ok(Self {
            id: columns.id,
            event_type: columns.event_type,
            created,
            livemode: columns.livemode,
            api_version: columns.api_version,
            object_type: columns.data.object.object,
            object_id: columns.data.object.id,
            payload: payload.to_owned(),
        })
    }

    fn values(self) -> [Value; 8] {
        [
            self.id.into(),
            self.event_type.into(),
            self.livemode.into(),
            self.api_version.into(),
            self.created.into(),
            self.object_type.into(),
            self.object_id.into(),
            self.payload.into(),
        ]
    }
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// First delivery of this event: stored, to be processed.
    New,
    /// Already in the inbox (a retry, or a copy delivered at the same time).
    Duplicate,
}

struct Delivery {
    event: Received,
    answer: oneshot::Sender<Result<Stored, DbErr>>,
}

/// Hands verified deliveries to the writer tasks. Cheap to clone.
#[derive(Clone)]
pub struct Inbox {
    deliveries: mpsc::Sender<Delivery>,
    /// Wakes this process' processor once a batch has committed.
    pub wake: Arc<Notify>,
    /// How many deliveries this process has stored: the processors' measure of a storm.
    pub load: Arc<IngestLoad>,
}

/// The deliveries this process' inbox has stored (verified, new or duplicate) so far: sampled over
/// an interval, the ingest's rate. Counted, not timed, on purpose: the time deliveries spend in
/// flight grows whenever the box is busy with anything (job workers, a backlog), and a processor
/// yielding to that would slow the very processing that keeps a steady load's lag low. Only
/// verified deliveries count, so forged requests cannot make the processors give way.
#[derive(Debug, Default)]
pub struct IngestLoad {
    stored: AtomicU64,
}

impl IngestLoad {
    /// Deliveries stored so far.
    pub fn stored(&self) -> u64 {
        self.stored.load(Ordering::Relaxed)
    }
}

impl Inbox {
    /// Starts the writers; they stop once the last `Inbox` is dropped.
    pub fn start(db: DatabaseConnection, jobs: JobQueue, config: &InboxConfig) -> Self {
        let (deliveries, receiver) = mpsc::channel(config.batch_max * config.writers.max(1) * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        let wake = Arc::new(Notify::new());
        for _ in 0..config.writers.max(1) {
            let writer = Writer {
                db: db.clone(),
                jobs: jobs.clone(),
                wake: wake.clone(),
                receiver: receiver.clone(),
                batch_max: config.batch_max.max(1),
                window: config.batch_window,
            };
            tokio::spawn(writer.run());
        }
        Self {
            deliveries,
            wake,
            load: Arc::new(IngestLoad::default()),
        }
    }

    /// Stores `event` durably (or finds it stored already); returns once it is committed.
    pub async fn store(&self, event: Received) -> Result<Stored, BillingError> {
        let (answer, answered) = oneshot::channel();
        let stopped = || BillingError::Internal(anyhow::anyhow!("the inbox writers have stopped"));
        self.deliveries
            .send(Delivery { event, answer })
            .await
            .map_err(|_| stopped())?;
        let stored = answered.await.map_err(|_| stopped())??;
        self.load.stored.fetch_add(1, Ordering::Relaxed);
        Ok(stored)
    }
}

struct Writer {
    db: DatabaseConnection,
    jobs: JobQueue,
    wake: Arc<Notify>,
    receiver: Arc<Mutex<mpsc::Receiver<Delivery>>>,
    batch_max: usize,
    window: Duration,
}

impl Writer {
    async fn run(self) {
        while let Some(batch) = self.gather().await {
            let answers = write(&self.db, batch.iter().map(|d| &d.event)).await;
            if answers.iter().any(|a| matches!(a, Ok(Stored::New))) {
                self.wake.notify_one();
                self.jobs.announce(CHANNEL);
            }
            for (delivery, answer) in batch.into_iter().zip(answers) {
                // The delivery's request may have gone (the client hung up): nothing to answer.
                let _ = delivery.answer.send(answer);
            }
        }
    }

    /// The next batch: the first delivery waiting, then whatever arrives within the window.
    async fn gather(&self) -> Option<Vec<Delivery>> {
        let mut receiver = self.receiver.lock().await;
        let mut batch = vec![receiver.recv().await?];
        let deadline = tokio::time::Instant::now() + self.window;
        while batch.len() < self.batch_max {
            match receiver.try_recv() {
                Ok(delivery) => batch.push(delivery),
                Err(_) if self.window.is_zero() => break,
                Err(_) => match tokio::time::timeout_at(deadline, receiver.recv()).await {
                    Ok(Some(delivery)) => batch.push(delivery),
                    Ok(None) | Err(_) => break,
                },
            }
        }
        Some(batch)
    }
}

const COLUMNS: &str = "INSERT INTO stripe_events (event_id, event_type, livemode, api_version, \
     stripe_created, object_type, object_id, payload) VALUES ";

/// One multi-row insert; on failure, row by row. One answer per event, in order.
async fn write<'a>(
    db: &DatabaseConnection,
    events: impl ExactSizeIterator<Item = &'a Received> + Clone,
) -> Vec<Result<Stored, DbErr>> {
    let count = events.len();
    match insert(db, events.clone().cloned().collect()).await {
        Ok(inserted) => {
            let mut first = inserted;
            // Of two copies in one batch, the first is new and the second a duplicate.
            events
                .map(|e| match first.remove(&e.id) {
                    true => Ok(Stored::New),
                    false => Ok(Stored::Duplicate),
                })
                .collect()
        }
        Err(error) if count == 1 => vec![Err(error)],
        Err(error) => {
            tracing::warn!(%error, count, "inbox batch failed; writing its events one by one");
            let mut answers = Vec::with_capacity(count);
            for event in events {
                answers.push(insert(db, vec![event.clone()]).await.map(|inserted| {
                    match inserted.contains(&event.id) {
                        true => Stored::New,
                        false => Stored::Duplicate,
                    }
                }));
            }
            answers
        }
    }
}

/// Inserts the events in one statement; returns the ids it inserted.
async fn insert(db: &DatabaseConnection, events: Vec<Received>) -> Result<HashSet<String>, DbErr> {
    let mut sql = String::with_capacity(COLUMNS.len() + events.len() * 48 + 64);
    sql.push_str(COLUMNS);
    let mut values = Vec::with_capacity(events.len() * 8);
    for (row, event) in events.into_iter().enumerate() {
        let n = row * 8;
        if row > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "(${},${},${},${},${},${},${},${})",
            n + 1,
            n + 2,
            n + 3,
            n + 4,
            n + 5,
            n + 6,
            n + 7,
            n + 8
        ));
        values.extend(event.values());
    }
    sql.push_str(" ON CONFLICT (event_id) DO NOTHING RETURNING event_id");
    let rows = db.query_all_raw(db::stmt(&sql, values)).await?;
    rows.iter()
        .map(|row| row.try_get::<String>("", "event_id"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_columns_come_from_the_event_and_its_object() {
        let body = br#"{"id":"evt_1","object":"event","type":"checkout.session.completed",
            "created":1764547200,"livemode":false,"api_version":"2025-03-31.basil",
            "data":{"object":{"id":"cs_test_1","object":"checkout.session","amount_total":4900}}}"#;
        let received = Received::parse(body).unwrap();
        assert_eq!(received.id, "evt_1");
        assert_eq!(received.event_type, "checkout.session.completed");
        assert_eq!(received.created.timestamp(), 1_764_547_200);
        assert_eq!(received.api_version.as_deref(), Some("2025-03-31.basil"));
        assert_eq!(received.object_type.as_deref(), Some("checkout.session"));
        assert_eq!(received.object_id.as_deref(), Some("cs_test_1"));
        assert_eq!(received.payload.as_bytes(), body);
    }

    #[test]
    fn a_nul_escape_is_kept_as_sent() {
        let body = br#"{"id":"evt_nul","type":"x","created":1,"livemode":true,
            "data":{"object":{"description":"a\u0000b"}}}"#;
        let received = Received::parse(body).unwrap();
        assert!(received.payload.contains(r"\u0000"));
        assert_eq!(received.object_id, None);
    }

    #[test]
    fn what_is_not_an_event_is_refused() {
        for body in [
            &b"not json"[..],
            br#"{"id":"evt_1","type":"x","created":1,"livemode":false}"#,
            br#"{"id":"","type":"x","created":1,"livemode":false,"data":{"object":{}}}"#,
            br#"{"id":"e","type":"","created":1,"livemode":false,"data":{"object":{}}}"#,
            br#"{"id":"e","type":"x","created":1e30,"livemode":false,"data":{"object":{}}}"#,
            &[0xff, 0xfe][..],
        ] {
            assert!(
                matches!(Received::parse(body), Err(BillingError::InvalidEvent(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
