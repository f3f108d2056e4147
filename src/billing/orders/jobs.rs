//! Billing's background jobs. Each is enqueued in the transaction that made it necessary, with an
//! idempotency key derived from the order (`order:<id>:<kind>`), so a replayed event cannot queue it
//! twice; and each is safe to run again (a crash can re-run a finished job).
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, FromQueryResult, TransactionTrait};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{
    rows,
    state::{self, Effect, OrderEvent, OrderStatus},
};
use crate::billing::{
    app::BillingState,
    contact::{self, Recipient},
    money,
};
use crate::{
    db::stmt,
    jobs::{Job, JobContext, JobError, JobOptions, NewJob},
    mail::SendEmail,
};

/// Enqueues the jobs an applied transition calls for, in the caller's transaction (one statement).
pub async fn enqueue_effects(
    app: &BillingState,
    txn: &DatabaseTransaction,
    order_id: Uuid,
    effects: &[Effect],
) -> Result<(), DbErr> {
    let key = |kind: &str| JobOptions::idempotency_key(format!("order:{order_id}:{kind}"));
    let restrict = |action| RestrictLicenses { order_id, action };
    let jobs = effects
        .iter()
        .map(|effect| match effect {
            Effect::DeliverLicense => {
                NewJob::new(&DeliverLicense { order_id }, key("deliver_license"))
            }
            Effect::SendReceipt => NewJob::new(&SendReceipt { order_id }, key("send_receipt")),
            Effect::RevokeLicenses => {
                NewJob::new(&restrict(Restriction::Revoke), key("revoke_licenses"))
            }
            Effect::SuspendLicenses => {
                NewJob::new(&restrict(Restriction::Suspend), key("suspend_licenses"))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    app.jobs.push_all(txn, jobs).await?;
    Ok(())
}

/// Creates one licence per order line, moves the order to `fulfilled` and emails the keys — in one
/// transaction under the order's lock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliverLicense {
    pub order_id: Uuid,
}

#[derive(FromQueryResult)]
struct DeliverableLine {
    id: Uuid,
    product_id: Uuid,
    quantity: i32,
    seats: i32,
}

#[derive(Debug, Serialize, FromQueryResult)]
struct DeliveredLicense {
    product_name: String,
    license_key: String,
    seats: i32,
}

impl Job for DeliverLicense {
    const QUEUE: &'static str = "billing_deliver_license";
    type State = BillingState;

    async fn run(self, ctx: JobContext<BillingState>) -> Result<(), JobError> {
        let app = &ctx.state;
        let txn = app.db.begin().await?;
        let order = rows::lock(&txn, self.order_id)
            .await?
            .ok_or_else(|| JobError::msg(format!("order {} not found", self.order_id)))?;
        let status = order.status;
        if !matches!(status, OrderStatus::Paid | OrderStatus::Fulfilled) {
            // Refunded or disputed before we got here: the money is gone, so is the licence.
            tracing::info!(order_id = %order.id, status = status.as_str(), "licence not delivered");
            return Ok(());
        }
        let lines = DeliverableLine::find_by_statement(stmt(
            "SELECT id, product_id, quantity, seats FROM order_lines WHERE order_id = $1",
            [order.id.into()],
        ))
        .all(&txn)
        .await?;
        for line in lines {
            // Unique per order line: a re-run keeps the licence the first run made.
            txn.execute_raw(stmt(
                "INSERT INTO licenses (id, order_line_id, order_id, org_id, product_id, license_key, seats) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (order_line_id) DO NOTHING",
                [
                    Uuid::now_v7().into(),
                    line.id.into(),
                    order.id.into(),
                    order.org_id.into(),
                    line.product_id.into(),
                    license_key().into(),
                    (line.seats * line.quantity).into(),
                ],
            ))
            .await?;
        }
        if status == OrderStatus::Paid {
            let event = OrderEvent::LicenseDelivered;
            let outcome = state::transition(status, event);
            let source = rows::Source::Job;
            let revealed = rows::StripeIds::default();
            rows::record_outcome(app, &txn, &order, event, &outcome, source, revealed).await?;
        }
        let licenses = DeliveredLicense::find_by_statement(stmt(
            "SELECT ol.product_name, l.license_key, l.seats FROM licenses l \
             JOIN order_lines ol ON ol.id = l.order_line_id WHERE l.order_id = $1 ORDER BY ol.product_name",
            [order.id.into()],
        ))
        .all(&txn)
        .await?;
        let email = SendEmail {
            to: email_for(&txn, order.id, Recipient::Buyer).await?,
            template: "license_delivered".into(),
            context: json!({
                "order_id": order.id,
                "licenses": licenses,
                "app_url": app.public_url,
            }),
            message_key: Some(format!("order-{}.license", order.id)),
        };
        let key = JobOptions::idempotency_key(format!("order:{}:license_email", order.id));
        app.jobs.push(&txn, &email, key).await?;
        txn.commit().await?;
        Ok(())
    }
}

/// Emails the receipt for a paid order, once: [`crate::mail::send_once`] keeps a re-run of this job
/// from sending it again; `receipt_sent_at` records when it went out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendReceipt {
    pub order_id: Uuid,
}

#[derive(FromQueryResult)]
struct ReceiptLine {
    product_name: String,
    unit_amount: i64,
    quantity: i32,
}

impl Job for SendReceipt {
    const QUEUE: &'static str = "billing_send_receipt";
    type State = BillingState;

    async fn run(self, ctx: JobContext<BillingState>) -> Result<(), JobError> {
        let app = &ctx.state;
        let order = rows::find(&app.db, self.order_id)
            .await?
            .ok_or_else(|| JobError::msg(format!("order {} not found", self.order_id)))?;
        if order.receipt_sent_at.is_some() {
            return Ok(());
        }
        let lines = ReceiptLine::find_by_statement(stmt(
            "SELECT product_name, unit_amount, quantity FROM order_lines WHERE order_id = $1 ORDER BY product_name",
            [order.id.into()],
        ))
        .all(&app.db)
        .await?;
        let currency = &order.currency;
        let lines: Vec<_> = lines
            .iter()
            .map(|l| {
                json!({
                    "name": l.product_name,
                    "quantity": l.quantity,
                    "unit_price": money::format(l.unit_amount, currency),
                    "amount": money::format(l.unit_amount * i64::from(l.quantity), currency),
                })
            })
            .collect();
        let email = SendEmail {
            to: email_for(&app.db, order.id, Recipient::Billing).await?,
            template: "receipt".into(),
            context: json!({
                "order_id": order.id,
                "lines": lines,
                "total": money::format(order.amount_total, currency),
                "paid_on": order.paid_at.unwrap_or(order.created_at).format("%Y-%m-%d").to_string(),
                "app_url": app.public_url,
            }),
            message_key: None,
        };
        crate::mail::send_once(&app.mail, &email, &format!("order-{}.receipt", order.id)).await?;
        app.db
            .execute_raw(stmt(
                "UPDATE orders SET receipt_sent_at = now() WHERE id = $1 AND receipt_sent_at IS NULL",
                [order.id.into()],
            ))
            .await?;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Restriction {
    /// Refunded: the licence is gone for good.
    Revoke,
    /// Disputed: the licence is on hold while the bank decides.
    Suspend,
}

/// Revokes (refund) or suspends (dispute) the order's licences and tells the customer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestrictLicenses {
    pub order_id: Uuid,
    pub action: Restriction,
}

impl Job for RestrictLicenses {
    const QUEUE: &'static str = "billing_restrict_licenses";
    type State = BillingState;

    async fn run(self, ctx: JobContext<BillingState>) -> Result<(), JobError> {
        let app = &ctx.state;
        let txn = app.db.begin().await?;
        // Under the order's lock, so a licence delivery in flight either finished before (and is
        // restricted here) or runs after (and sees the order refunded or disputed).
        let order = rows::lock(&txn, self.order_id)
            .await?
            .ok_or_else(|| JobError::msg(format!("order {} not found", self.order_id)))?;
        let (update, template, kind) = match self.action {
            Restriction::Revoke => (
                "UPDATE licenses SET status = 'revoked' WHERE order_id = $1 AND status <> 'revoked'",
                "license_revoked",
                "refund",
            ),
            Restriction::Suspend => (
                "UPDATE licenses SET status = 'suspended' WHERE order_id = $1 AND status = 'active'",
                "license_suspended",
                "dispute",
            ),
        };
        txn.execute_raw(stmt(update, [order.id.into()])).await?;
        let had_licenses = txn
            .query_one_raw(stmt(
                "SELECT count(*) AS n FROM licenses WHERE order_id = $1",
                [order.id.into()],
            ))
            .await?
            .map(|row| row.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0)
            > 0;
        let email = SendEmail {
            to: email_for(&txn, order.id, Recipient::Buyer).await?,
            template: template.into(),
            context: json!({
                "order_id": order.id,
                "total": money::format(order.amount_total, &order.currency),
                "had_licenses": had_licenses,
                "app_url": app.public_url,
            }),
            message_key: Some(format!("order-{}.{kind}", order.id)),
        };
        let key = JobOptions::idempotency_key(format!("order:{}:{kind}_email", order.id));
        app.jobs.push(&txn, &email, key).await?;
        txn.commit().await?;
        Ok(())
    }
}

async fn email_for(
    db: &impl ConnectionTrait,
    order_id: Uuid,
    recipient: Recipient,
) -> Result<String, JobError> {
    Ok(contact::recipient(db, order_id, recipient)
        .await
        .map_err(anyhow::Error::from)?)
}

/// `IRON-XXXX-XXXX-XXXX-XXXX`: 80 random bits in Crockford base32 (no I, L, O, U to misread).
pub fn license_key() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let uuid = Uuid::new_v4();
    let b = uuid.as_bytes();
    // Bytes 6 and 8 of a v4 UUID carry its version and variant; the other 14 are random.
    let random = [
        b[0], b[1], b[2], b[3], b[4], b[5], b[10], b[11], b[12], b[13],
    ];
    let mut bits = u128::from_be_bytes({
        let mut wide = [0u8; 16];
        wide[6..].copy_from_slice(&random);
        wide
    });
    let mut chars = [0u8; 16];
    for c in chars.iter_mut().rev() {
        *c = ALPHABET[(bits & 31) as usize];
        bits >>= 5;
    }
    let s = std::str::from_utf8(&chars).expect("ascii");
    format!(
        "IRON-{}-{}-{}-{}",
        &s[0..4],
        &s[4..8],
        &s[8..12],
        &s[12..16]
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn license_keys_are_well_formed_and_distinct() {
        let keys: HashSet<String> = (0..2000).map(|_| license_key()).collect();
        assert_eq!(keys.len(), 2000);
        for key in keys.iter().take(50) {
            assert_eq!(key.len(), 24, "{key}");
            assert!(key.starts_with("IRON-"));
            assert!(
                key[5..]
                    .chars()
                    .all(|c| c == '-' || "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c)),
                "{key}"
            );
        }
    }
}
