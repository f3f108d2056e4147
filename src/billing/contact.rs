//! Who billing writes to: the organisation's billing email (where receipts go; changed behind a
//! fresh second factor) and the buyer of an order (where its licences go).
use sea_orm::{ConnectionTrait, DbErr, TransactionTrait};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    app::BillingState,
    customer::{Customer, Placer},
    error::BillingError,
};
use crate::{
    auth::domain::Email, db::stmt, jobs::JobOptions, mail::SendEmail, orgs::audit,
    orgs::audit::Actor,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "invoices@example.com"}))]
pub struct BillingEmailRequest {
    pub email: String,
}

impl BillingEmailRequest {
    pub fn email(&self) -> Result<Email, BillingError> {
        Email::parse(&self.email).map_err(|message| BillingError::InvalidField {
            field: "email",
            message,
        })
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"billing_email": "invoices@example.com"}))]
pub struct BillingEmail {
    /// Where receipts go; absent until set (receipts then go to whoever placed the order).
    pub billing_email: Option<String>,
}

/// The organisation's billing email, if set.
pub async fn billing_email(db: &impl ConnectionTrait, org_id: Uuid) -> Result<BillingEmail, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT billing_email FROM org_billing WHERE org_id = $1",
            [org_id.into()],
        ))
        .await?;
    Ok(BillingEmail {
        billing_email: row.map(|r| r.try_get("", "billing_email")).transpose()?,
    })
}

/// Changes where the organisation's receipts go. Audited in the org's trail, and the org's owners,
/// the person who changed it and the previous address are told (a hijacked session redirecting
/// invoices does not go unnoticed).
pub async fn change_billing_email(
    app: &BillingState,
    customer: Customer,
    email: Email,
) -> Result<BillingEmail, BillingError> {
    let txn = app.db.begin().await?;
    // The org's row lock orders concurrent changes, so each sees the one before it.
    let org = txn
        .query_one_raw(stmt(
            "SELECT o.name, b.billing_email AS old FROM orgs o \
             LEFT JOIN org_billing b ON b.org_id = o.id WHERE o.id = $1 FOR UPDATE OF o",
            [customer.org_id.into()],
        ))
        .await?
        .ok_or_else(|| BillingError::Internal(anyhow::anyhow!("org vanished")))?;
    let org_name: String = org.try_get("", "name")?;
    let previous: Option<String> = org.try_get("", "old")?;
    txn.execute_raw(stmt(
        "INSERT INTO org_billing (org_id, billing_email) VALUES ($1, $2) \
         ON CONFLICT (org_id) DO UPDATE SET billing_email = EXCLUDED.billing_email, updated_at = now()",
        [customer.org_id.into(), email.as_str().into()],
    ))
    .await?;
    let actor = match customer.placer {
        Placer::User(id) => Actor::User(id),
        Placer::Key(id) => Actor::Key(id),
    };
    audit::record(
        &txn,
        customer.org_id,
        actor,
        "billing_email_changed",
        None,
        json!({"from": previous, "to": email.as_str()}),
    )
    .await?;
    let (actor_user, _) = customer.placer.columns();
    let told = txn
        .query_all_raw(stmt(
            "SELECT email FROM users WHERE id = $2 \
                OR id IN (SELECT user_id FROM org_members WHERE org_id = $1 AND role = 'owner') \
             UNION SELECT $3::text WHERE $3::text IS NOT NULL",
            [
                customer.org_id.into(),
                actor_user.into(),
                previous.clone().into(),
            ],
        ))
        .await?;
    for row in told {
        let to: String = row.try_get("", "email")?;
        let notice = SendEmail {
            to,
            template: "security_notice".into(),
            context: json!({
                "title": format!("The billing email of {org_name} was changed"),
                "body": format!(
                    "Receipts for {org_name} will now go to {email}. If you did not expect this, \
                     check the organisation's members and API keys now."
                ),
                "when": chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
                "app_url": app.public_url,
            }),
            message_key: None,
        };
        app.jobs.push(&txn, &notice, JobOptions::default()).await?;
    }
    txn.commit().await?;
    Ok(BillingEmail {
        billing_email: Some(email.to_string()),
    })
}

/// Who an email about an order goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient {
    /// Whoever placed it (licences, the checkout's email): the person; for an API key, the org's
    /// billing email, else the key's creator.
    Buyer,
    /// The org's billing email, else the buyer (receipts).
    Billing,
}

/// The address of `recipient` for order `order_id`; an owner's as the last resort (a key whose
/// creator is gone, no billing email).
pub async fn recipient(
    db: &impl ConnectionTrait,
    order_id: Uuid,
    recipient: Recipient,
) -> Result<String, BillingError> {
    let order = match recipient {
        Recipient::Buyer => "coalesce(placer.email, b.billing_email, creator.email, owner.email)",
        Recipient::Billing => "coalesce(b.billing_email, placer.email, creator.email, owner.email)",
    };
    let row = db
        .query_one_raw(stmt(
            &format!(
                "SELECT {order} AS email FROM orders o \
                 LEFT JOIN users placer ON placer.id = o.placed_by \
                 LEFT JOIN org_api_keys k ON k.id = o.placed_by_key \
                 LEFT JOIN users creator ON creator.id = k.created_by \
                 LEFT JOIN org_billing b ON b.org_id = o.org_id \
                 LEFT JOIN LATERAL (SELECT u.email FROM org_members m JOIN users u ON u.id = m.user_id \
                     WHERE m.org_id = o.org_id AND m.role = 'owner' \
                     ORDER BY m.created_at, m.user_id LIMIT 1) owner ON true \
                 WHERE o.id = $1"
            ),
            [order_id.into()],
        ))
        .await?
        .ok_or(BillingError::OrderNotFound)?;
    row.try_get::<Option<String>>("", "email")?.ok_or_else(|| {
        BillingError::Internal(anyhow::anyhow!("order {order_id} has no one to write to"))
    })
}
