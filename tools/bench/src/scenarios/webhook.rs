//! Stripe webhook ack: distinct signed `checkout.session.completed` events for distinct pending
//! orders, stored in the inbox (processors off), sent by our client and by wrk; and the duplicate storm: every event delivered 10
//! times at once across two servers, processed.
use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use ironclad::mail::MailSink;
use serde_json::json;

use super::clients::{self, Pair};
use crate::{
    env::{BenchDb, Server},
    load::{self, LoadResult},
    report::Section,
    wrk::{self, WrkRequest, WrkResult},
};

use crate::env::WEBHOOK_SECRET as SECRET;

/// Creates `count` pending orders (one Pro licence each) numbered from `first`, with sessions
/// `cs_bench_<n>`, as checkout would have left them. Returns their ids, in order.
pub async fn pending_orders(
    db: &BenchDb,
    first: usize,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    use sea_orm::ConnectionTrait;
    let last = first + count - 1;
    db.db
        .execute_unprepared(&format!(
            "INSERT INTO users (id, email, password_hash)
               VALUES ('00000000-0000-7000-8000-00000000b3c4', 'bench@example.com', 'x')
               ON CONFLICT DO NOTHING;
             INSERT INTO orders (id, org_id, placed_by, checkout_key, currency, amount_total, stripe_checkout_session_id)
               SELECT gen_random_uuid(), g.id, g.personal_for, 'bench-' || n, 'usd', 4900, 'cs_bench_' || n
               FROM orgs g, generate_series({first}, {last}) AS n
               WHERE g.personal_for = '00000000-0000-7000-8000-00000000b3c4';
             INSERT INTO order_lines (id, order_id, product_id, product_name, unit_amount, quantity, seats)
               SELECT gen_random_uuid(), o.id, '0193a4c0-0000-7000-8000-000000000001', 'Ironclad Pro', 4900, 1, 1
               FROM orders o WHERE o.stripe_checkout_session_id IN
                 (SELECT 'cs_bench_' || n FROM generate_series({first}, {last}) AS n);"
        ))
        .await?;
    let rows = db
        .db
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT o.id::text FROM generate_series({first}, {last}) AS n
                 JOIN orders o ON o.stripe_checkout_session_id = 'cs_bench_' || n ORDER BY n"
            ),
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()?)
}

/// The signed delivery of the completion event of order `n` (body and Stripe-Signature header).
pub fn signed_completion(n: usize, order_id: &str) -> (Bytes, String) {
    let payload = completion_event(n, order_id).to_string();
    let timestamp = chrono::Utc::now().timestamp();
    let header = fake_stripe::signature_header(payload.as_bytes(), SECRET, timestamp);
    (Bytes::from(payload), header)
}

/// A `checkout.session.completed` event as Stripe sends it (API 2025-10-29.clover): every field of
/// the session, most of them empty: about 2.9 KB, the size the webhook parses, verifies and stores
/// as jsonb (which Postgres compresses past 2 KB) on every delivery.
pub fn completion_event(n: usize, order_id: &str) -> serde_json::Value {
    let created = chrono::Utc::now().timestamp();
    let session = format!("cs_bench_{n}");
    json!({
        "id": format!("evt_bench_{n}"),
        "object": "event",
        "api_version": "2025-10-29.clover",
        "created": created,
        "data": {"object": {
            "id": session,
            "object": "checkout.session",
            "adaptive_pricing": {"enabled": true},
            "after_expiration": null,
            "allow_promotion_codes": null,
            "amount_subtotal": 4900,
            "amount_total": 4900,
            "automatic_tax": {"enabled": false, "liability": null, "provider": null, "status": null},
            "billing_address_collection": null,
            "branding_settings": {
                "background_color": "#ffffff", "border_style": "rounded", "button_color": "#0074d4",
                "display_name": "Ironclad Bench", "font_family": "default", "icon": null, "logo": null
            },
            "cancel_url": "https://app.example.com/billing/cancel",
            "client_reference_id": order_id,
            "client_secret": null,
            "collected_information": {"business_name": null, "individual_name": null, "shipping_details": null},
            "consent": null,
            "consent_collection": null,
            "created": created - 120,
            "currency": "usd",
            "currency_conversion": null,
            "custom_fields": [],
            "custom_text": {
                "after_submit": null, "shipping_address": null, "submit": null,
                "terms_of_service_acceptance": null
            },
            "customer": null,
            "customer_creation": "if_required",
            "customer_details": {
                "address": {
                    "city": null, "country": "FR", "line1": null, "line2": null,
                    "postal_code": null, "state": null
                },
                "business_name": null,
                "email": format!("customer-{n}@example.com"),
                "individual_name": null,
                "name": "Ada Lovelace",
                "phone": null,
                "tax_exempt": "none",
                "tax_ids": []
            },
            "customer_email": format!("customer-{n}@example.com"),
            "discounts": [],
            "expires_at": created + 86_280,
            "invoice": null,
            "invoice_creation": {"enabled": false, "invoice_data": {
                "account_tax_ids": null, "custom_fields": null, "description": null, "footer": null,
                "issuer": null, "metadata": {}, "rendering_options": null
            }},
            "livemode": false,
            "locale": null,
            "metadata": {"order_id": order_id},
            "mode": "payment",
            "origin_context": null,
            "payment_intent": format!("pi_bench_{n}"),
            "payment_link": null,
            "payment_method_collection": "if_required",
            "payment_method_configuration_details": {"id": "pmc_1QbEnchConfig0000000000", "parent": null},
            "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
            "payment_method_types": ["card", "link"],
            "payment_status": "paid",
            "permissions": null,
            "phone_number_collection": {"enabled": false},
            "presentment_details": {"presentment_amount": 4540, "presentment_currency": "eur"},
            "recovered_from": null,
            "saved_payment_method_options": {
                "allow_redisplay_filters": ["always"], "payment_method_remove": "disabled",
                "payment_method_save": null
            },
            "setup_intent": null,
            "shipping_address_collection": null,
            "shipping_cost": null,
            "shipping_details": null,
            "shipping_options": [],
            "status": "complete",
            "submit_type": null,
            "subscription": null,
            "success_url": "https://app.example.com/billing/success?session_id={CHECKOUT_SESSION_ID}",
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": "hosted",
            "url": null,
            "wallet_options": null
        }},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": "checkout.session.completed"
    })
}

pub fn webhook_request(delivery: &(Bytes, String)) -> hyper::Request<Full<Bytes>> {
    load::request("POST", "/api/v1/webhooks/stripe")
        .header("content-type", "application/json")
        .header("stripe-signature", &delivery.1)
        .body(Full::new(delivery.0.clone()))
        .unwrap()
}

/// The same delivery as wrk sends it.
pub fn wrk_webhook(delivery: &(Bytes, String)) -> WrkRequest {
    WrkRequest {
        method: "POST",
        path: "/api/v1/webhooks/stripe".to_owned(),
        headers: vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("Stripe-Signature".to_owned(), delivery.1.clone()),
        ],
        body: delivery.0.clone(),
    }
}

/// `count` pending orders numbered from `first`, and their completion events, signed now.
pub async fn fresh_deliveries(
    db: &BenchDb,
    first: usize,
    count: usize,
) -> anyhow::Result<Vec<(Bytes, String)>> {
    let ids = pending_orders(db, first, count).await?;
    Ok(ids
        .iter()
        .enumerate()
        .map(|(i, id)| signed_completion(first + i, id))
        .collect())
}

/// Sends each delivery once over `connections`, with wrk.
pub async fn deliver_with_wrk(
    addr: std::net::SocketAddr,
    connections: usize,
    deliveries: &[(Bytes, String)],
) -> anyhow::Result<WrkResult> {
    let requests: Vec<WrkRequest> = deliveries.iter().map(wrk_webhook).collect();
    wrk::once(addr, connections, &requests).await
}

/// Sends each delivery once over `connections`, with our client.
pub async fn deliver_with_ours(
    addr: std::net::SocketAddr,
    connections: usize,
    deliveries: Vec<(Bytes, String)>,
) -> anyhow::Result<LoadResult> {
    let count = deliveries.len();
    let deliveries = Arc::new(deliveries);
    let make: load::MakeRequest = Arc::new(move |i| webhook_request(&deliveries[i]));
    load::run(addr, connections, count, make, |s| s == 200).await
}

/// The ack path only (verify, parse the envelope, one group-committed insert; `serve
/// --no-workers`, so nothing processes): distinct events for distinct orders at 16, 64 (three
/// rounds) and 256 connections, each level sent by our client and by wrk, fresh events each.
pub async fn ingest(db: &BenchDb, events_per_round: usize) -> anyhow::Result<(Section, f64)> {
    let sink = MailSink::start().await?;
    let server = Server::start(db, &sink, &["serve", "--no-workers"], &[]).await?;
    let mut first = 0;
    let mut pairs = Vec::new();
    for connections in [16, 64, 64, 64, 256] {
        let deliveries = fresh_deliveries(db, first, events_per_round).await?;
        let ours = deliver_with_ours(server.addr, connections, deliveries).await?;
        first += events_per_round;
        let deliveries = fresh_deliveries(db, first, events_per_round).await?;
        let wrk = deliver_with_wrk(server.addr, connections, &deliveries).await?;
        first += events_per_round;
        pairs.push(Pair {
            connections,
            ours,
            wrk,
        });
    }
    server.stop().await?;
    let total = first as i64;
    let stored = db
        .scalar_i64("SELECT count(*) FROM stripe_events WHERE status = 'pending'")
        .await?;
    let touched = db
        .scalar_i64(
            "SELECT (SELECT count(*) FROM orders WHERE status <> 'pending_payment') \
                  + (SELECT count(*) FROM apalis.jobs)",
        )
        .await?;
    let at = |n: usize| pairs.iter().filter(move |p| p.connections == n);
    let wrk_64 = load::median(at(64).map(|p| p.wrk.throughput()).collect());
    let wrk_p99_64 = load::median(at(64).map(|p| p.wrk.p99_ms).collect());
    let ours_64 = load::median(at(64).map(|p| p.ours.throughput()).collect());
    let at_256: Vec<&Pair> = at(256).collect();
    let wrk_p99_256 = at_256.iter().map(|p| p.wrk.p99_ms).fold(0.0, f64::max);
    let errors_256: u64 = at_256.iter().map(|p| p.wrk.errors).sum();
    let errors: u64 = pairs
        .iter()
        .map(|p| p.ours.errors as u64 + p.wrk.errors)
        .sum();
    let worst = pairs.iter().map(Pair::disagreement).fold(1.0, f64::max);

    let event_bytes = signed_completion(0, &uuid::Uuid::nil().to_string()).0.len();
    let mut section = Section::new("Webhook ack (the inbox's ingest)");
    section.line(format!(
        "{events_per_round} distinct, correctly signed `checkout.session.completed` events ({event_bytes} bytes each, every field Stripe sends) for distinct pending orders per client and row; one `ironclad serve --no-workers` process, so no processor runs. Each delivery: signature check, envelope parse, then the inbox's group commit (2 writer tasks, each insert takes up to 128 of the deliveries already waiting, no window) and the 200. Server settings are the production defaults (pool of 10 connections). Each row: our client, then wrk (2 threads, a Lua script sending each pre-signed event once), on fresh events."
    ));
    section.table(clients::HEADER, clients::rows("webhook ack", &pairs));
    section.line(format!(
        "3 rounds at 64 connections; the verdicts take wrk's figures, the median of the rounds (ours: {ours_64:.0} events/s). Afterwards: {stored} of {total} events stored `pending`; {touched} orders moved or jobs queued (0 expected: nothing but the insert runs in the request)."
    ));
    section.verdict(
        &format!("wrk: ≥ 8,000 events/s at 64 connections (median {wrk_64:.0})"),
        wrk_64 >= 8000.0,
    );
    section.verdict(
        &format!("wrk: p99 < 20 ms at 64 connections (median {wrk_p99_64:.1} ms)"),
        wrk_p99_64 < 20.0,
    );
    section.verdict(
        &format!("wrk: p99 < 60 ms and no errors at 256 connections ({wrk_p99_256:.1} ms, {errors_256} errors)"),
        wrk_p99_256 < 60.0 && errors_256 == 0,
    );
    section.verdict(
        &format!(
            "our client and wrk within {}× at every level (worst {worst:.2}×)",
            clients::AGREE
        ),
        worst <= clients::AGREE,
    );
    section.verdict(
        "every event stored once, nothing else done in the request, no errors",
        stored == total && touched == 0 && errors == 0,
    );
    Ok((section, wrk_64))
}

/// Every event delivered 10 times concurrently, split across two servers sharing the database;
/// workers on, so licences and emails are produced too. Counts duplicates afterwards.
pub async fn duplicate_storm(db: &BenchDb, orders: usize) -> anyhow::Result<Section> {
    const COPIES: usize = 10;
    let sink = MailSink::start().await?;
    let ids = pending_orders(db, 1_000_000, orders).await?;
    let env: [(&str, String); 0] = [];
    let a = Server::start(db, &sink, &["serve"], &env).await?;
    let b = Server::start(db, &sink, &["serve"], &env).await?;
    let deliveries: Arc<Vec<(Bytes, String)>> = Arc::new(
        ids.iter()
            .enumerate()
            .map(|(i, id)| signed_completion(1_000_000 + i, id))
            .collect(),
    );
    // Request i carries event i / COPIES: the copies of one event are in flight together, on both servers.
    let make: load::MakeRequest = {
        let deliveries = deliveries.clone();
        Arc::new(move |i| webhook_request(&deliveries[i / COPIES]))
    };
    let result =
        load::run_spread(&[a.addr, b.addr], 64, orders * COPIES, make, |s| s == 200).await?;

    // Let the processors apply every event and the workers finish every licence and email.
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while std::time::Instant::now() < deadline
        && db
            .scalar_i64(
                "SELECT (SELECT count(*) FROM apalis.jobs WHERE status NOT IN ('Done', 'Killed')) \
                      + (SELECT count(*) FROM stripe_events WHERE status IN ('pending', 'processing'))",
            )
            .await?
            > 0
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    a.stop().await?;
    b.stop().await?;

    let scope = "order_id IN (SELECT id FROM orders WHERE checkout_key LIKE 'bench-1%' AND length(checkout_key) = 13)";
    let paid_transitions = db
        .scalar_i64(&format!("SELECT count(*) FROM order_events WHERE to_status = 'paid' AND outcome = 'applied' AND {scope}"))
        .await
        .unwrap_or(-1);
    let fulfilled = db
        .scalar_i64("SELECT count(*) FROM orders WHERE status = 'fulfilled' AND checkout_key LIKE 'bench-1%' AND length(checkout_key) = 13")
        .await?;
    let licences = db
        .scalar_i64(&format!("SELECT count(*) FROM licenses WHERE {scope}"))
        .await?;
    let jobs = db.scalar_i64("SELECT count(*) FROM apalis.jobs").await?;
    let distinct_jobs = db
        .scalar_i64("SELECT count(DISTINCT (job_type, idempotency_key)) FROM apalis.jobs")
        .await?;
    let mails = sink.messages();
    let mut ids: Vec<_> = mails.iter().filter_map(|m| m.message_id.clone()).collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    let duplicate_mails = before - ids.len();
    let n = orders as i64;

    let mut section = Section::new("Duplicate storm");
    section.line(format!(
        "{orders} events, each delivered {COPIES} times concurrently ({} deliveries over 64 connections), alternating between two `ironclad serve` processes on different ports sharing the database; workers on. Counted in the database afterwards.",
        orders * COPIES
    ));
    section.table(load::HEADER, vec![result.row(64)]);
    section.table(
        &[
            "orders",
            "`paid` transitions",
            "dup transitions",
            "licences",
            "dup licences",
            "jobs",
            "dup jobs",
            "emails",
            "dup emails",
            "fulfilled",
        ],
        vec![vec![
            n.to_string(),
            paid_transitions.to_string(),
            (paid_transitions - n).max(0).to_string(),
            licences.to_string(),
            (licences - n).max(0).to_string(),
            jobs.to_string(),
            (jobs - distinct_jobs).to_string(),
            mails.len().to_string(),
            duplicate_mails.to_string(),
            fulfilled.to_string(),
        ]],
    );
    section.verdict(
        "0 duplicate transitions, licences, jobs and emails; every order fulfilled; no errors",
        paid_transitions == n
            && licences == n
            && jobs == distinct_jobs
            && duplicate_mails == 0
            && fulfilled == n
            && result.errors == 0,
    );
    Ok(section)
}
