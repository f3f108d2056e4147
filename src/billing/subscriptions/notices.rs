//! The emails recurring billing sends (template `billing_notice`), through the job queue in the
//! caller's transaction, each at most once: its job key and Message-ID derive from what it is
//! about (the invoice and its attempt, the trial's end, the subscription's end), so a redelivered
//! or replayed event sends nothing twice. They go to the org's billing email, else its first
//! owner.
use chrono::{DateTime, Utc};
use sea_orm::{DatabaseTransaction, DbErr, FromQueryResult};
use serde_json::json;
use uuid::Uuid;

use super::facts::{InvoiceFacts, SubscriptionFacts};
use crate::{
    billing::{app::BillingState, money},
    db::stmt,
    jobs::JobOptions,
    mail::SendEmail,
};

pub enum Notice<'a> {
    /// A receipt for a paid invoice.
    Paid(&'a InvoiceFacts),
    /// A payment attempt failed (dunning): once per attempt.
    PaymentFailed(&'a InvoiceFacts),
    /// The payment needs the customer to authenticate (SCA): once per attempt.
    ActionRequired(&'a InvoiceFacts),
    TrialEnding(&'a SubscriptionFacts, DateTime<Utc>),
    Ended(&'a SubscriptionFacts),
}

struct Message {
    key: String,
    subject: String,
    title: &'static str,
    body: String,
    link: Option<String>,
}

fn day(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d").to_string()
}

impl Notice<'_> {
    fn message(&self, app_url: &str) -> Message {
        let billing = format!("{app_url}/billing");
        match self {
            Self::Paid(invoice) => {
                let amount = money::format(invoice.amount_paid, &invoice.currency);
                Message {
                    key: format!("invoice-paid-{}", invoice.id),
                    subject: format!("Your receipt ({amount})"),
                    title: "Payment received",
                    body: format!(
                        "We received {amount} for invoice {}. Thank you.",
                        invoice.id
                    ),
                    link: invoice.hosted_invoice_url.clone(),
                }
            }
            Self::PaymentFailed(invoice) => {
                let amount = money::format(invoice.amount_due, &invoice.currency);
                let next = invoice.next_payment_attempt.map_or_else(
                    || {
                        "We will not retry it: please pay the invoice to keep your subscription."
                            .to_owned()
                    },
                    |at| format!("We will try again on {}.", day(at)),
                );
                Message {
                    key: format!("invoice-failed-{}-{}", invoice.id, invoice.attempt_count),
                    subject: format!("Your payment of {amount} failed"),
                    title: "A payment failed",
                    body: format!(
                        "We could not collect {amount} for invoice {}. {next} You can update \
                         your payment method or pay the invoice now.",
                        invoice.id
                    ),
                    link: invoice.hosted_invoice_url.clone().or(Some(billing)),
                }
            }
            Self::ActionRequired(invoice) => {
                let amount = money::format(invoice.amount_due, &invoice.currency);
                Message {
                    key: format!("invoice-action-{}-{}", invoice.id, invoice.attempt_count),
                    subject: format!("Confirm your payment of {amount}"),
                    title: "Your bank asks you to confirm a payment",
                    body: format!(
                        "Your bank needs you to confirm the payment of {amount} for invoice {}. \
                         Until you do, your subscription is past due.",
                        invoice.id
                    ),
                    link: invoice.hosted_invoice_url.clone().or(Some(billing)),
                }
            }
            Self::TrialEnding(subscription, end) => Message {
                key: format!("trial-ending-{}-{}", subscription.id, end.timestamp()),
                subject: "Your trial ends soon".to_owned(),
                title: "Your trial ends soon",
                body: format!(
                    "Your trial ends on {}. Add a payment method to keep your features.",
                    day(*end)
                ),
                link: Some(billing),
            },
            Self::Ended(subscription) => Message {
                key: format!("subscription-ended-{}", subscription.id),
                subject: "Your subscription has ended".to_owned(),
                title: "Your subscription has ended",
                body: "Your subscription has ended and its features are no longer available. \
                       You can subscribe again at any time."
                    .to_owned(),
                link: Some(billing),
            },
        }
    }
}

#[derive(FromQueryResult)]
struct Recipient {
    org_name: String,
    email: Option<String>,
}

/// Queues `notice` for the org in `txn`.
pub async fn send(
    app: &BillingState,
    txn: &DatabaseTransaction,
    org_id: Uuid,
    notice: Notice<'_>,
) -> Result<(), DbErr> {
    let Some(to) = Recipient::find_by_statement(stmt(
        "SELECT o.name AS org_name, coalesce(b.billing_email, ( \
            SELECT u.email FROM org_members m JOIN users u ON u.id = m.user_id \
            WHERE m.org_id = o.id AND m.role = 'owner' ORDER BY m.created_at LIMIT 1)) AS email \
         FROM orgs o LEFT JOIN org_billing b ON b.org_id = o.id WHERE o.id = $1",
        [org_id.into()],
    ))
    .one(txn)
    .await?
    else {
        return Ok(());
    };
    let Some(email) = to.email else {
        tracing::warn!(%org_id, "billing notice: the org has no billing email and no owner");
        return Ok(());
    };
    let message = notice.message(&app.public_url);
    let mail = SendEmail {
        to: email,
        template: "billing_notice".into(),
        context: json!({
            "org_name": to.org_name,
            "subject": message.subject,
            "title": message.title,
            "body": message.body,
            "link": message.link,
        }),
        message_key: Some(message.key.clone()),
    };
    app.jobs
        .push(txn, &mail, JobOptions::idempotency_key(message.key))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invoice(attempt: i32) -> InvoiceFacts {
        InvoiceFacts {
            id: "in_1".into(),
            subscription: Some("sub_1".into()),
            customer: Some("cus_1".into()),
            amount_due: 2700,
            amount_paid: 0,
            currency: "usd".into(),
            attempt_count: attempt,
            next_payment_attempt: DateTime::from_timestamp(1_767_225_600, 0),
            hosted_invoice_url: Some("https://invoice.stripe.test/in_1".into()),
            period_end: None,
        }
    }

    #[test]
    fn dunning_emails_are_keyed_per_invoice_attempt() {
        let first = Notice::PaymentFailed(&invoice(1)).message("https://app");
        let again = Notice::PaymentFailed(&invoice(1)).message("https://app");
        let second = Notice::PaymentFailed(&invoice(2)).message("https://app");
        assert_eq!(first.key, again.key);
        assert_ne!(first.key, second.key);
        assert!(first.body.contains("27.00 USD"), "{}", first.body);
        assert!(first.body.contains("2026-01-01"), "{}", first.body);
        assert_eq!(
            first.link.as_deref(),
            Some("https://invoice.stripe.test/in_1")
        );
        let sca = Notice::ActionRequired(&invoice(1)).message("https://app");
        assert_ne!(sca.key, first.key);
    }
}
