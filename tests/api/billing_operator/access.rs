//! Who may use billing's operator routes: admins only, with a fresh second factor.
use crate::support::{auth::assert_operator_only, billing::BillingApp};

#[tokio::test]
async fn billing_operator_routes_need_the_admin_role_and_a_fresh_second_factor() {
    let app = BillingApp::spawn().await;
    let routes = [
        ("GET", "/admin/webhook-events", 200),
        ("POST", "/admin/webhook-events/evt_nope/replay", 404),
        ("GET", "/admin/stuck-orders", 200),
        ("POST", "/admin/stuck-orders/reconcile", 200),
    ];
    assert_operator_only(&app, &routes).await;
    // Only the admitted requests left a trace (the reconcile that found nothing to do).
    assert_eq!(app.count("SELECT count(*) FROM admin_actions").await, 1);
}
