//! The Stripe calls billing makes, on async-stripe. The API base comes from config, so tests and an
//! offline developer point it at a local fake.
use std::{collections::HashMap, sync::Arc};

use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use stripe::{IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_checkout::{
    CheckoutSession, CheckoutSessionMode, CheckoutSessionStatus,
    checkout_session::{
        CreateCheckoutSession, CreateCheckoutSessionLineItems,
        CreateCheckoutSessionLineItemsPriceData, CreateCheckoutSessionPaymentIntentData,
        ExpireCheckoutSession, ProductData, RetrieveCheckoutSession,
    },
};
use stripe_types::Expandable;
use uuid::Uuid;

use super::pacing::Pacer;
use crate::billing::{config::BillingConfig, error::BillingError};

/// A handle on the Stripe API. Cheap to clone. Every call waits its turn at one [`Pacer`].
#[derive(Clone)]
pub struct StripeApi {
    client: stripe::Client,
    pacer: Arc<Pacer>,
}

fn rate_limited(error: &stripe::StripeError) -> bool {
    matches!(error, stripe::StripeError::Stripe(_, 429))
}

impl std::fmt::Debug for StripeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StripeApi")
    }
}

/// What a Checkout Session is created from: one order, priced by us.
#[derive(Debug, Clone)]
pub struct SessionRequest<'a> {
    pub order_id: Uuid,
    /// The organisation buying.
    pub org_id: Uuid,
    pub customer_email: &'a str,
    pub currency: &'a str,
    pub amount_total: i64,
    pub lines: Vec<SessionLine<'a>>,
}

#[derive(Debug, Clone)]
pub struct SessionLine<'a> {
    pub name: &'a str,
    pub unit_amount: i64,
    pub quantity: u64,
}

#[derive(Debug, Clone)]
pub struct CreatedSession {
    pub id: String,
    pub url: String,
}

/// How a Checkout Session ended once [`StripeApi::expire_checkout_session`] was done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedSession {
    /// Expired, by this call or earlier: it can no longer be paid.
    Expired,
    /// Completed: the customer paid, or a delayed payment (SEPA, ACH) is under way.
    Completed,
}

impl StripeApi {
    pub fn new(config: &BillingConfig) -> Result<Self, BillingError> {
        let client = stripe::ClientBuilder::new(config.stripe_secret_key.expose_secret())
            .url(config.stripe_api_base.clone())
            .timeout(config.stripe_timeout)
            .app_info("ironclad", Some(env!("CARGO_PKG_VERSION").into()), None)
            .build()?;
        Ok(Self {
            client,
            pacer: Arc::new(Pacer::new(config.stripe_max_requests_per_sec)),
        })
    }

    /// Sends `call` in its turn, again after each 429 (see [`Pacer::send`]).
    async fn paced<T, F, Fut>(&self, call: F) -> Result<T, stripe::StripeError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, stripe::StripeError>>,
    {
        let (result, refused) = self.pacer.send(rate_limited, call).await;
        if refused > 0 {
            tracing::warn!(refused, "stripe: rate limited (429); paused and retried");
        }
        result
    }

    /// Sends a request the typed API has no call for (e.g. the Events API, kept as raw JSON);
    /// `request` builds it afresh for each attempt.
    pub async fn send<T: miniserde::Deserialize>(
        &self,
        request: impl Fn() -> stripe_client_core::RequestBuilder,
    ) -> Result<T, BillingError> {
        Ok(self
            .paced(|| request().customize::<T>().send(&self.client))
            .await?)
    }

    /// Sends a typed request and reads the answer as JSON, leniently: our copies read only the
    /// fields they keep, so new API versions (new fields, moved fields) do not break them. With
    /// `key`, Stripe answers a retry with the first answer.
    pub async fn json(
        &self,
        request: impl Fn() -> stripe_client_core::RequestBuilder,
        key: Option<&str>,
    ) -> Result<serde_json::Value, BillingError> {
        let key = key
            .map(IdempotencyKey::new)
            .transpose()
            .map_err(|e| BillingError::Internal(anyhow::anyhow!("idempotency key: {e}")))?;
        let answer = self
            .paced(|| {
                let mut call = request().customize::<miniserde::json::Value>();
                if let Some(key) = &key {
                    call = call.request_strategy(RequestStrategy::Idempotent(key.clone()));
                }
                call.send(&self.client)
            })
            .await?;
        serde_json::from_str(&miniserde::json::to_string(&answer))
            .map_err(|e| BillingError::Stripe(anyhow::anyhow!("unreadable answer: {e}")))
    }

    /// Creates the order's Checkout Session. The request carries an idempotency key derived from the
    /// order (see [`session_idempotency_key`]): a retry — ours, the client's, after a crash — gets the
    /// same session back from Stripe instead of a second one, so the customer can only pay once.
    pub async fn create_checkout_session(
        &self,
        request: &SessionRequest<'_>,
        config: &BillingConfig,
    ) -> Result<CreatedSession, BillingError> {
        let order_id = request.order_id.to_string();
        let metadata = HashMap::from([("order_id".to_owned(), order_id.clone())]);
        // Copied to the PaymentIntent so its events (and its charges') name the order too.
        let mut payment_intent_data = CreateCheckoutSessionPaymentIntentData::new();
        payment_intent_data.metadata = Some(metadata.clone());
        let line_items: Vec<_> = request
            .lines
            .iter()
            .map(|line| {
                let mut price = CreateCheckoutSessionLineItemsPriceData::new(
                    request
                        .currency
                        .parse::<stripe_types::Currency>()
                        .unwrap_or_else(|e| match e {}),
                );
                price.unit_amount = Some(line.unit_amount);
                price.product_data = Some(ProductData::new(line.name));
                let mut item = CreateCheckoutSessionLineItems::new();
                item.price_data = Some(price);
                item.quantity = Some(line.quantity);
                item
            })
            .collect();
        let key = IdempotencyKey::new(session_idempotency_key(request))
            .map_err(|e| BillingError::Internal(anyhow::anyhow!("idempotency key: {e}")))?;
        let create = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Payment)
            .client_reference_id(order_id)
            .customer_email(request.customer_email)
            .metadata(metadata)
            .payment_intent_data(payment_intent_data)
            .line_items(line_items)
            .success_url(&config.success_url)
            .cancel_url(&config.cancel_url);
        let session = self
            .paced(|| {
                create
                    .customize()
                    .request_strategy(RequestStrategy::Idempotent(key.clone()))
                    .send(&self.client)
            })
            .await?;
        let url = session.url.ok_or_else(|| {
            BillingError::Stripe(anyhow::anyhow!("the Checkout Session has no url"))
        })?;
        Ok(CreatedSession {
            id: session.id.to_string(),
            url,
        })
    }
}

impl StripeApi {
    /// Fetches a Checkout Session, as the JSON subset the orders room reads
    /// ([`crate::billing::orders::interpret_session`]; the same fields its webhook events carry).
    pub async fn retrieve_checkout_session(
        &self,
        id: &str,
    ) -> Result<serde_json::Value, BillingError> {
        let retrieve = RetrieveCheckoutSession::new(id);
        let session = self.paced(|| retrieve.send(&self.client)).await?;
        Ok(session_json(&session))
    }

    /// Expires the Checkout Session, so the customer can no longer pay in it. Stripe only expires an
    /// `open` session and refuses any other with a 4xx; the session is then fetched to learn how it
    /// ended. Anything else (unreachable, 5xx, a session still `open`) is an error: nothing is known
    /// to be closed.
    pub async fn expire_checkout_session(&self, id: &str) -> Result<ClosedSession, BillingError> {
        let expire = ExpireCheckoutSession::new(id);
        let refusal = match self.paced(|| expire.send(&self.client)).await {
            Ok(_) => return Ok(ClosedSession::Expired),
            Err(stripe::StripeError::Stripe(error, status)) if (400..500).contains(&status) => {
                error.message.unwrap_or_default()
            }
            Err(other) => return Err(other.into()),
        };
        let retrieve = RetrieveCheckoutSession::new(id);
        let session = self.paced(|| retrieve.send(&self.client)).await?;
        match session.status {
            Some(CheckoutSessionStatus::Expired) => Ok(ClosedSession::Expired),
            Some(CheckoutSessionStatus::Complete) => Ok(ClosedSession::Completed),
            status => Err(BillingError::Stripe(anyhow::anyhow!(
                "session {id} is {status:?} and could not be expired: {refusal}"
            ))),
        }
    }

    /// Fetches a Checkout Session with its PaymentIntent expanded (one request): `payment_intent`
    /// is then `{"id", "status"}`, what [`crate::billing::orders::interpret_async_payment`] reads.
    /// A delayed payment's outcome lives on the PaymentIntent; the session stays `complete` and
    /// `unpaid`.
    pub async fn retrieve_checkout_session_with_payment_intent(
        &self,
        id: &str,
    ) -> Result<serde_json::Value, BillingError> {
        let retrieve = RetrieveCheckoutSession::new(id).expand(["payment_intent".to_owned()]);
        let session = self.paced(|| retrieve.send(&self.client)).await?;
        Ok(session_json(&session))
    }
}

fn session_json(session: &CheckoutSession) -> serde_json::Value {
    let payment_intent = session.payment_intent.as_ref().map(|pi| match pi {
        Expandable::Id(id) => serde_json::json!(id.as_str()),
        Expandable::Object(pi) => serde_json::json!({
            "id": pi.id.as_str(),
            "status": pi.status.as_str(),
        }),
    });
    serde_json::json!({
        "id": session.id.as_str(),
        "status": session.status.as_ref().map(|s| s.as_str()),
        "payment_status": session.payment_status.as_str(),
        "amount_total": session.amount_total,
        "currency": session.currency.as_ref().map(ToString::to_string),
        "client_reference_id": session.client_reference_id,
        "metadata": session.metadata,
        "payment_intent": payment_intent,
    })
}

/// `checkout-<order id>-<hash of org, amount, currency and lines>`: the same order always yields
/// the same key, and should an order's contents ever differ, the key does too (Stripe would otherwise
/// answer a reused key with different parameters by an error).
pub fn session_idempotency_key(request: &SessionRequest<'_>) -> String {
    let mut hash = Sha256::new();
    hash.update(request.org_id.as_bytes());
    hash.update(request.amount_total.to_be_bytes());
    hash.update(request.currency.as_bytes());
    for line in &request.lines {
        hash.update(line.name.as_bytes());
        hash.update([0]);
        hash.update(line.unit_amount.to_be_bytes());
        hash.update(line.quantity.to_be_bytes());
    }
    let digest = hex::encode(hash.finalize());
    format!("checkout-{}-{}", request.order_id, &digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(amount: i64) -> SessionRequest<'static> {
        SessionRequest {
            order_id: Uuid::from_u128(1),
            org_id: Uuid::from_u128(2),
            customer_email: "ada@example.com",
            currency: "usd",
            amount_total: amount,
            lines: vec![SessionLine {
                name: "Pro",
                unit_amount: amount,
                quantity: 1,
            }],
        }
    }

    #[test]
    fn the_session_key_is_deterministic_per_order_and_content() {
        let key = session_idempotency_key(&request(4900));
        assert_eq!(key, session_idempotency_key(&request(4900)));
        assert!(key.starts_with("checkout-00000000-0000-0000-0000-000000000001-"));
        assert!(key.len() <= 255);
        assert_ne!(key, session_idempotency_key(&request(5000)));
        let mut other_org = request(4900);
        other_org.org_id = Uuid::from_u128(3);
        assert_ne!(key, session_idempotency_key(&other_org));
    }
}
