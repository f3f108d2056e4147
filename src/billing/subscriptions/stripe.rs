//! The Stripe calls recurring billing makes. Requests are built with async-stripe's typed
//! parameters; answers are read as JSON by [`StripeApi::json`] (our copy reads only what it keeps,
//! see `facts.rs`). Every write carries an idempotency key derived from our row, so a retry never
//! makes a second customer, session or change.
use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use stripe::StripeRequest;
use stripe_billing::{
    billing_portal_session::CreateBillingPortalSession,
    invoice::{
        CreatePreviewInvoice, CreatePreviewInvoiceSubscriptionDetails,
        CreatePreviewInvoiceSubscriptionDetailsItems,
        CreatePreviewInvoiceSubscriptionDetailsProrationBehavior,
    },
    subscription::{
        CancelSubscription, RetrieveSubscription, UpdateSubscription, UpdateSubscriptionItems,
        UpdateSubscriptionPaymentBehavior, UpdateSubscriptionProrationBehavior,
    },
};
use stripe_checkout::{
    CheckoutSessionMode,
    checkout_session::{
        CreateCheckoutSession, CreateCheckoutSessionLineItems,
        CreateCheckoutSessionSubscriptionData,
    },
};
use stripe_client_core::{RequestBuilder, StripeMethod};
use uuid::Uuid;

use super::config::Proration;
use crate::billing::{config::BillingConfig, error::BillingError, stripe::StripeApi};

#[derive(Serialize)]
struct NewCustomer<'a> {
    name: &'a str,
    email: &'a str,
    metadata: HashMap<&'static str, String>,
}

/// Creates the org's Stripe customer; the same org always gets the same one back (the key).
pub async fn create_customer(
    stripe: &StripeApi,
    org_id: Uuid,
    name: &str,
    email: &str,
) -> Result<String, BillingError> {
    let form = NewCustomer {
        name,
        email,
        metadata: HashMap::from([("org_id", org_id.to_string())]),
    };
    let customer = stripe
        .json(
            || RequestBuilder::new(StripeMethod::Post, "/customers").form(&form),
            Some(&format!("customer-{org_id}")),
        )
        .await?;
    id_of(&customer)
}

/// What a subscription Checkout Session is made from.
#[derive(Debug, Clone)]
pub struct SubscriptionSession<'a> {
    pub checkout_id: Uuid,
    pub org_id: Uuid,
    pub customer: &'a str,
    pub plan: &'a str,
    pub price: &'a str,
    pub seats: u64,
    pub trial_days: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedSession {
    pub id: String,
    pub url: String,
}

/// Creates (or, for the same checkout, finds again) the subscription-mode Checkout Session.
pub async fn create_subscription_session(
    stripe: &StripeApi,
    config: &BillingConfig,
    session: &SubscriptionSession<'_>,
) -> Result<OpenedSession, BillingError> {
    let org = session.org_id.to_string();
    let mut item = CreateCheckoutSessionLineItems::new();
    item.price = Some(session.price.to_owned());
    item.quantity = Some(session.seats);
    let mut data = CreateCheckoutSessionSubscriptionData::new();
    data.metadata = Some(HashMap::from([
        ("org_id".to_owned(), org.clone()),
        ("plan".to_owned(), session.plan.to_owned()),
    ]));
    data.trial_period_days = (session.trial_days > 0).then_some(session.trial_days);
    let create = CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Subscription)
        .customer(session.customer)
        .client_reference_id(&org)
        .metadata(HashMap::from([
            ("org_id".to_owned(), org.clone()),
            (
                "subscription_checkout_id".to_owned(),
                session.checkout_id.to_string(),
            ),
        ]))
        .line_items(vec![item])
        .subscription_data(data)
        .success_url(&config.success_url)
        .cancel_url(&config.cancel_url);
    let key = format!("subscription-checkout-{}", session.checkout_id);
    let opened = stripe.json(|| create.build(), Some(&key)).await?;
    Ok(OpenedSession {
        id: id_of(&opened)?,
        url: opened["url"]
            .as_str()
            .ok_or_else(|| BillingError::Stripe(anyhow::anyhow!("the session has no url")))?
            .to_owned(),
    })
}

/// The subscription as Stripe has it now.
pub async fn retrieve_subscription(stripe: &StripeApi, id: &str) -> Result<Value, BillingError> {
    let retrieve = RetrieveSubscription::new(id);
    stripe.json(|| retrieve.build(), None).await
}

/// Sets (or clears) `cancel_at_period_end`. `key` names this change.
pub async fn set_cancel_at_period_end(
    stripe: &StripeApi,
    id: &str,
    cancel: bool,
    key: &str,
) -> Result<Value, BillingError> {
    let update = UpdateSubscription::new(id).cancel_at_period_end(cancel);
    stripe.json(|| update.build(), Some(key)).await
}

/// Ends the subscription now (a `past_due` one is not carried to its period's end).
pub async fn cancel_now(stripe: &StripeApi, id: &str, key: &str) -> Result<Value, BillingError> {
    let cancel = CancelSubscription::new(id);
    stripe.json(|| cancel.build(), Some(key)).await
}

/// Moves the subscription's one item to `price` × `seats`. With `pending_if_incomplete`, a change
/// whose payment fails changes nothing (cashier issue 766): Stripe keeps it pending.
pub async fn change_plan(
    stripe: &StripeApi,
    id: &str,
    item: &str,
    price: &str,
    seats: u64,
    proration: Proration,
    key: &str,
) -> Result<Value, BillingError> {
    let mut change = UpdateSubscriptionItems::new();
    change.id = Some(item.to_owned());
    change.price = Some(price.to_owned());
    change.quantity = Some(seats);
    let proration = match proration {
        Proration::CreateProrations => UpdateSubscriptionProrationBehavior::CreateProrations,
        Proration::AlwaysInvoice => UpdateSubscriptionProrationBehavior::AlwaysInvoice,
        Proration::None => UpdateSubscriptionProrationBehavior::None,
    };
    let update = UpdateSubscription::new(id)
        .items(vec![change])
        .proration_behavior(proration)
        .payment_behavior(UpdateSubscriptionPaymentBehavior::PendingIfIncomplete);
    stripe.json(|| update.build(), Some(key)).await
}

/// The invoice Stripe would issue for [`change_plan`] with the same arguments (nothing changes).
pub async fn preview_change(
    stripe: &StripeApi,
    id: &str,
    item: &str,
    price: &str,
    seats: u64,
    proration: Proration,
) -> Result<Value, BillingError> {
    let mut change = CreatePreviewInvoiceSubscriptionDetailsItems::new();
    change.id = Some(item.to_owned());
    change.price = Some(price.to_owned());
    change.quantity = Some(seats);
    let mut details = CreatePreviewInvoiceSubscriptionDetails::new();
    details.items = Some(vec![change]);
    details.proration_behavior = Some(match proration {
        Proration::CreateProrations => {
            CreatePreviewInvoiceSubscriptionDetailsProrationBehavior::CreateProrations
        }
        Proration::AlwaysInvoice => {
            CreatePreviewInvoiceSubscriptionDetailsProrationBehavior::AlwaysInvoice
        }
        Proration::None => CreatePreviewInvoiceSubscriptionDetailsProrationBehavior::None,
    });
    let preview = CreatePreviewInvoice::new()
        .subscription(id)
        .subscription_details(details);
    stripe.json(|| preview.build(), None).await
}

/// A customer-portal session for the org's customer: its URL.
pub async fn portal_session(
    stripe: &StripeApi,
    customer: &str,
    return_url: &str,
) -> Result<String, BillingError> {
    let create = CreateBillingPortalSession::new()
        .customer(customer)
        .return_url(return_url);
    let session = stripe.json(|| create.build(), None).await?;
    session["url"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| BillingError::Stripe(anyhow::anyhow!("the portal session has no url")))
}

/// The Stripe idempotency key of one change to subscription `subscription`, made by a request
/// with Idempotency-Key `request_key` (hashed: Stripe takes at most 255 characters).
pub fn change_key(kind: &str, subscription: Uuid, request_key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = hex::encode(Sha256::digest(request_key.as_bytes()));
    format!("subscription-{kind}-{subscription}-{}", &digest[..32])
}

fn id_of(object: &Value) -> Result<String, BillingError> {
    object["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| BillingError::Stripe(anyhow::anyhow!("the answer has no id")))
}
