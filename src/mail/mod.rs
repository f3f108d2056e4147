//! Outgoing email: templates from `templates/email/`, sent over SMTP by the `email` job queue.
//!
//! Nothing sends mail inline in a request: a handler enqueues [`SendEmail`] in its transaction, so an
//! email goes out if and only if the change that caused it committed, and a failed send is retried.
pub mod routes;
pub mod sink;
mod templates;

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

pub use sink::{CapturedMail, MailSink};
pub use templates::Templates;

use crate::{
    config::{MailConfig, MailTransport},
    db,
    jobs::{Job, JobContext, JobError},
};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("template {name}: {source}")]
    Template {
        name: String,
        source: minijinja::Error,
    },
    #[error("invalid address {0:?}")]
    Address(String),
    #[error("building message: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("smtp: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("templates: {0}")]
    Load(String),
}

/// Renders and sends emails. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    templates: Templates,
    from: Mailbox,
    message_id_domain: String,
}

impl Mailer {
    /// `sink`: the in-process SMTP server to use when the config asks for one.
    pub fn new(
        config: &MailConfig,
        templates: Templates,
        sink: Option<&MailSink>,
    ) -> Result<Self, MailError> {
        let transport = match (&config.transport, sink) {
            (MailTransport::Smtp(url), _) => {
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build()
            }
            (MailTransport::Sink, Some(sink)) => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                    sink.addr().ip().to_string(),
                )
                .port(sink.addr().port())
                .timeout(Some(SMTP_TIMEOUT))
                .build()
            }
            (MailTransport::Sink, None) => {
                return Err(MailError::Load(
                    "mail sink requested but not running".into(),
                ));
            }
        };
        Ok(Self {
            transport,
            templates,
            from: config.from.clone(),
            message_id_domain: config.message_id_domain.clone(),
        })
    }

    /// Renders `email` and sends it. `message_key` makes the Message-ID: the same key always gives
    /// the same id, so a resend after a crash is recognisable as a duplicate by any mail client.
    pub async fn send(&self, email: &SendEmail, message_key: &str) -> Result<(), MailError> {
        let rendered = self.templates.render(&email.template, &email.context)?;
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|_| MailError::Address(email.to.clone()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .message_id(Some(format!("<{message_key}@{}>", self.message_id_domain)))
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))?;
        self.transport.send(message).await?;
        Ok(())
    }
}

/// Job: send one templated email.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendEmail {
    pub to: String,
    /// Name of a template under `templates/email/` (without extension).
    pub template: String,
    /// Variables for the template.
    pub context: serde_json::Value,
    /// Stable key for the Message-ID; defaults to the job id (stable across retries).
    #[serde(default)]
    pub message_key: Option<String>,
}

/// What the `email` queue's runs use: the mailer, and the database recording what was sent.
#[derive(Clone)]
pub struct MailState {
    pub db: DatabaseConnection,
    pub mailer: Mailer,
}

impl Job for SendEmail {
    const QUEUE: &'static str = "email";
    type State = MailState;

    async fn run(self, ctx: JobContext<MailState>) -> Result<(), JobError> {
        let key = self.message_key.clone().unwrap_or(ctx.job_id.clone());
        send_once(&ctx.state, &self, &key).await
    }
}

impl From<MailError> for JobError {
    fn from(error: MailError) -> Self {
        Self::Failed(error.into())
    }
}

/// How long one run may take to send before another run of the same email may try.
const SEND_LEASE_SECS: i64 = 60;
/// A send gives up well inside its lease, so a slow server cannot let a second run in beside it.
const SMTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Forgets emails sent longer than `older_than` ago. Their record only has to outlive the jobs that
/// could send them again (a crash's re-run comes within minutes), so it goes with the finished jobs
/// (`JobQueue::prune_done`). A claim whose email never went out is kept: its job may yet retry.
pub async fn prune_sent(
    conn: &impl ConnectionTrait,
    older_than: std::time::Duration,
) -> Result<u64, sea_orm::DbErr> {
    db::delete_in_batches(
        conn,
        "sent_emails",
        "sent_at < now() - make_interval(secs => $1)",
        vec![older_than.as_secs_f64().into()],
    )
    .await
}

/// Sends `email` unless an email with this Message-ID key was already sent.
///
/// The queue runs a job at least once: a worker whose heartbeats stop is presumed dead and its jobs
/// are re-run elsewhere — possibly while the first run is still talking SMTP. A row per key in
/// `sent_emails`, claimed with a lease before sending, makes the second run stand aside: it succeeds
/// at once if the email went out, or fails (and is retried later) while the first run holds the lease.
/// Only a crash between the SMTP handover and recording it can still send twice, and then the copy
/// carries the same Message-ID, which mail clients collapse.
pub async fn send_once(
    app: &MailState,
    email: &SendEmail,
    message_key: &str,
) -> Result<(), JobError> {
    let stmt = |sql: &str| db::stmt(sql, [message_key.into()]);
    let claimed = app
        .db
        .execute_raw(stmt(&format!(
            "INSERT INTO sent_emails (message_key, lease_until) \
             VALUES ($1, now() + interval '{SEND_LEASE_SECS} seconds') \
             ON CONFLICT (message_key) DO UPDATE SET lease_until = EXCLUDED.lease_until \
             WHERE sent_emails.sent_at IS NULL AND sent_emails.lease_until < now()"
        )))
        .await?
        .rows_affected()
        == 1;
    if !claimed {
        let sent = app
            .db
            .query_one_raw(stmt(
                "SELECT sent_at IS NOT NULL AS sent FROM sent_emails WHERE message_key = $1",
            ))
            .await?
            .map(|row| row.try_get::<bool>("", "sent"))
            .transpose()?
            .unwrap_or(false);
        return if sent {
            tracing::info!(message_key, "email already sent; not sending again");
            Ok(())
        } else {
            Err(JobError::msg(format!(
                "email {message_key} is being sent by another run"
            )))
        };
    }
    if let Err(error) = app.mailer.send(email, message_key).await {
        // Let the next attempt claim it at once.
        app.db
            .execute_raw(stmt(
                "UPDATE sent_emails SET lease_until = now() WHERE message_key = $1 AND sent_at IS NULL",
            ))
            .await?;
        return Err(error.into());
    }
    app.db
        .execute_raw(stmt(
            "UPDATE sent_emails SET sent_at = now() WHERE message_key = $1",
        ))
        .await?;
    Ok(())
}
