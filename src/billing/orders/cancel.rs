//! The customer cancels an order they have not paid (`POST /billing/orders/{id}/cancel`).
//!
//! Stripe first, then us: the order's Checkout Session is expired at Stripe *before* the order is
//! canceled, so a customer who was told "canceled" can no longer pay. Stripe only expires an open
//! session; if it refuses, the session is fetched: `expired` is as good, `complete` means the money
//! came first (409, the order is left for its webhook). Stripe is called outside any transaction (no
//! row lock is held across a network call); the cancel itself then goes through the state machine
//! under the order's row lock and is audited like any event, so a webhook that paid the order
//! meanwhile wins and the cancel is refused.
//!
//! Idempotent: canceling a canceled order answers it again, without asking Stripe.
use sea_orm::TransactionTrait;
use uuid::Uuid;

use super::{
    rows::{self, Source, StripeIds},
    state::{self, OrderEvent, OrderStatus, Outcome},
    views::{self, OrderView},
};
use crate::billing::{app::BillingState, error::BillingError, stripe::ClosedSession};

/// Cancels the organisation's order `order_id` if it awaits payment; another org's order is not
/// found.
#[tracing::instrument(level = "info", skip_all)]
pub async fn cancel(
    app: &BillingState,
    org_id: Uuid,
    order_id: Uuid,
) -> Result<OrderView, BillingError> {
    let mut order = rows::find(&app.db, order_id)
        .await?
        .filter(|order| order.org_id == org_id)
        .ok_or(BillingError::OrderNotFound)?;
    // Runs at most twice: a session id is only ever set once (when a concurrent checkout stores the
    // session it just created), and the second pass expires that session too.
    loop {
        match order.status {
            OrderStatus::PendingPayment => {}
            OrderStatus::Canceled => return view(app, org_id, order_id).await,
            status => return Err(BillingError::NotCancelable(status.as_str())),
        }
        // No session: creating it failed, so there is nothing at Stripe to pay in.
        if let Some(session) = order.stripe_checkout_session_id.as_deref() {
            match app.stripe.expire_checkout_session(session).await? {
                ClosedSession::Expired => {}
                ClosedSession::Completed => return Err(BillingError::PaymentUnderway),
            }
        }

        let txn = app.db.begin().await?;
        let locked = rows::lock(&txn, order_id)
            .await?
            .ok_or(BillingError::OrderNotFound)?;
        if locked.stripe_checkout_session_id != order.stripe_checkout_session_id {
            txn.rollback().await?;
            order = locked;
            continue;
        }
        let event = OrderEvent::CancelRequested;
        let outcome = state::transition(locked.status, event);
        rows::record_outcome(
            app,
            &txn,
            &locked,
            event,
            &outcome,
            Source::Api,
            StripeIds::default(),
        )
        .await?;
        txn.commit().await?;
        let status = locked.status;
        return match outcome {
            Outcome::Applied { .. } => {
                tracing::info!(%order_id, "order canceled by the customer");
                view(app, org_id, order_id).await
            }
            // Another cancel got there first.
            _ if status == OrderStatus::Canceled => view(app, org_id, order_id).await,
            // A webhook moved the order while Stripe was being asked: it was paid, or (our expiry's
            // own `checkout.session.expired` overtaking us) it expired, which closes it unpaid too.
            _ => Err(BillingError::NotCancelable(status.as_str())),
        };
    }
}

async fn view(app: &BillingState, org_id: Uuid, order_id: Uuid) -> Result<OrderView, BillingError> {
    views::find_for_org(&app.db, org_id, order_id)
        .await?
        .ok_or(BillingError::OrderNotFound)
}
