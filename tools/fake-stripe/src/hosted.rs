//! The hosted pages: a Checkout Session's `url` opens a checkout page (the order's lines and total,
//! and *Pay*, *Pay with a delayed method*, *Decline*, *Abandon*), and `/deliveries` lists the
//! webhook deliveries with the endpoint's answers, like the Dashboard's event log. Each button
//! changes the session as Stripe would and sends the events Stripe would send.
use std::{
    collections::HashMap,
    fmt::Write,
    sync::{Arc, Mutex},
};

use actix_web::{HttpResponse, http::header, web};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    State,
    objects::{completed, payment_intent},
    subscriptions,
};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/checkout/{id}", web::get().to(page))
        .route("/checkout/{id}", web::post().to(act))
        .route("/deliveries", web::get().to(deliveries));
}

#[derive(Deserialize)]
pub(crate) struct Action {
    action: String,
}

async fn index() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/deliveries"))
        .finish()
}

async fn page(id: web::Path<String>, state: web::Data<Mutex<State>>) -> HttpResponse {
    let state = state.lock().unwrap();
    match Checkout::find(&state, &id) {
        Some(checkout) => html(200, &checkout.render(None)),
        None => not_found(&id),
    }
}

/// A button of the checkout page.
async fn act(
    id: web::Path<String>,
    form: web::Form<Action>,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let shared = state.into_inner();
    let mut state = shared.lock().unwrap();
    let Some(checkout) = Checkout::find(&state, &id) else {
        return not_found(&id);
    };
    if checkout.session["status"] != "open" {
        return html(
            409,
            &checkout.render(Some("This checkout is no longer open.")),
        );
    }
    let subscription = checkout.session["mode"] == "subscription";
    let done = match (form.action.as_str(), subscription) {
        ("pay", false) => pay(&mut state, &checkout),
        ("pay" | "delayed_success" | "delayed_failure", true) => subscribe(&mut state, &checkout),
        ("delayed_success", false) => pay_later(&mut state, &shared, &checkout, true),
        ("delayed_failure", false) => pay_later(&mut state, &shared, &checkout, false),
        ("decline", _) => {
            decline(&mut state, &checkout);
            let refused = "Your card was declined. Try another payment method.";
            return html(402, &checkout.render(Some(refused)));
        }
        ("abandon", _) => abandon(&mut state, &checkout),
        (other, _) => {
            let unknown = format!("Unknown action {other:?}.");
            return html(400, &checkout.render(Some(&unknown)));
        }
    };
    html(200, &done)
}

/// The session (as the API returns it) and the form it was created from.
struct Checkout {
    session: Value,
    form: HashMap<String, String>,
}

impl Checkout {
    fn find(state: &State, id: &str) -> Option<Self> {
        let session = state.sessions.iter().find(|s| s["id"] == id)?.clone();
        let form = state.session_forms.get(id).cloned().unwrap_or_default();
        Some(Self { session, form })
    }

    fn id(&self) -> &str {
        self.session["id"].as_str().unwrap_or_default()
    }

    /// The PaymentIntent a payment-mode session pays with (one per session, as Stripe's).
    fn payment_intent_id(&self) -> String {
        format!("pi_{}", self.id().trim_start_matches("cs_"))
    }

    /// The metadata the app gave the PaymentIntent (`payment_intent_data[metadata]`).
    fn payment_intent(&self, status: &str) -> Value {
        let mut intent = payment_intent(&self.payment_intent_id(), &self.session, status);
        intent["metadata"] = subscriptions::metadata(&self.form, "payment_intent_data[metadata]");
        intent
    }

    fn lines(&self) -> Vec<(String, i64, Option<i64>)> {
        (0..)
            .map_while(|i| {
                let field = |name: &str| self.form.get(&format!("line_items[{i}]{name}"));
                let quantity = field("[quantity]")?.parse().unwrap_or(1);
                let name = field("[price_data][product_data][name]")
                    .or_else(|| field("[price]"))
                    .cloned()
                    .unwrap_or_default();
                let unit = field("[price_data][unit_amount]").and_then(|u| u.parse().ok());
                Some((name, quantity, unit))
            })
            .collect()
    }

    fn render(&self, notice: Option<&str>) -> String {
        let currency = self.session["currency"].as_str().unwrap_or("usd");
        let mut rows = String::new();
        for (name, quantity, unit) in self.lines() {
            let amount = unit.map_or("per the price".into(), |u| money(u * quantity, currency));
            let _ = write!(
                rows,
                "<tr><td>{}</td><td>× {quantity}</td><td class=amount>{}</td></tr>",
                escape(&name),
                escape(&amount)
            );
        }
        let subscription = self.session["mode"] == "subscription";
        let total = match self.session["amount_total"].as_i64() {
            Some(total) if !subscription => money(total, currency),
            _ => "billed per period".into(),
        };
        let email = self.session["customer_email"].as_str().unwrap_or("");
        let status = self.session["status"].as_str().unwrap_or("open");
        let notice = notice.map_or(String::new(), |n| {
            format!("<p class=notice>{}</p>", escape(n))
        });
        let buttons = if status == "open" {
            let delayed = if subscription {
                String::new()
            } else {
                "<button name=action value=delayed_success>Pay with a delayed method \
                 (bank debit, succeeds)</button>\
                 <button name=action value=delayed_failure>Pay with a delayed method \
                 (bank debit, bounces)</button>"
                    .into()
            };
            format!(
                "<form method=post action=\"/checkout/{id}\">\
                 <button class=primary name=action value=pay>Pay {total}</button>{delayed}\
                 <button name=action value=decline>Pay with a card that is declined</button>\
                 <button class=quiet name=action value=abandon>Abandon checkout</button></form>",
                id = escape(self.id()),
                total = escape(&total),
            )
        } else {
            format!("<p>This checkout is <b>{}</b>.</p>", escape(status))
        };
        layout(
            "Checkout",
            &format!(
                "<h1>Checkout</h1><p class=muted>{email}</p>{notice}\
                 <table>{rows}<tr class=total><td>Total</td><td></td><td class=amount>{total}</td>\
                 </tr></table>{buttons}\
                 <p class=muted>Session <code>{id}</code> · <a href=\"/deliveries\">webhook \
                 deliveries</a></p>",
                email = escape(email),
                total = escape(&total),
                id = escape(self.id()),
            ),
        )
    }
}

/// A card payment: the session completes paid.
fn pay(state: &mut State, checkout: &Checkout) -> String {
    let intent = checkout.payment_intent_id();
    let session = completed(&checkout.session, &intent, true);
    state.payment_intents.insert(intent, "succeeded".into());
    state.replace_session(session.clone());
    state.emit(
        "payment_intent.succeeded",
        checkout.payment_intent("succeeded"),
    );
    state.emit("checkout.session.completed", session.clone());
    finished(&session, "Payment succeeded.")
}

/// A delayed method (SEPA-like): the session completes unpaid with the money `processing`; after
/// the settling delay the debit succeeds or bounces, with the event Stripe sends for each.
fn pay_later(
    state: &mut State,
    shared: &Arc<Mutex<State>>,
    checkout: &Checkout,
    succeeds: bool,
) -> String {
    let intent = checkout.payment_intent_id();
    let session = completed(&checkout.session, &intent, false);
    state
        .payment_intents
        .insert(intent.clone(), "processing".into());
    state.replace_session(session.clone());
    state.emit("checkout.session.completed", session.clone());
    let (shared, delay) = (shared.clone(), state.settle_after);
    let id = checkout.id().to_owned();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let mut state = shared.lock().unwrap();
        let Some(mut session) = state
            .sessions
            .iter()
            .find(|s| s["id"] == id.as_str())
            .cloned()
        else {
            return;
        };
        let (status, event) = if succeeds {
            session["payment_status"] = json!("paid");
            ("succeeded", "checkout.session.async_payment_succeeded")
        } else {
            (
                "requires_payment_method",
                "checkout.session.async_payment_failed",
            )
        };
        state.payment_intents.insert(intent, status.into());
        state.replace_session(session.clone());
        state.emit(event, session);
    });
    let outcome = if succeeds { "succeeds" } else { "bounces" };
    let seconds = delay.as_secs_f64();
    finished(
        &session,
        &format!("Payment processing: the debit {outcome} in {seconds:.0} s."),
    )
}

/// A subscription-mode session paid: the subscription is made (trialing when the session asked
/// for a trial), with its first invoice paid unless it is in trial.
fn subscribe(state: &mut State, checkout: &Checkout) -> String {
    let trial = checkout
        .form
        .contains_key("subscription_data[trial_period_days]");
    let status = if trial { "trialing" } else { "active" };
    let (session, sub) = state.complete_subscription(checkout.id(), status);
    state.emit("checkout.session.completed", session.clone());
    state.emit("customer.subscription.created", sub.clone());
    if !trial {
        let id = sub["latest_invoice"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let period_end = sub["items"]["data"][0]["current_period_end"].as_i64();
        let invoice = subscriptions::invoice(&sub, &id, 0, period_end.unwrap_or_default(), 1);
        state.emit("invoice.paid", invoice);
    }
    finished(&session, "Subscription started.")
}

/// A declined card: the session stays open, the PaymentIntent records the failure.
fn decline(state: &mut State, checkout: &Checkout) {
    let intent = checkout.payment_intent_id();
    state
        .payment_intents
        .insert(intent, "requires_payment_method".into());
    let mut failed = checkout.payment_intent("requires_payment_method");
    failed["last_payment_error"] = json!({
        "type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
        "message": "Your card was declined.",
    });
    state.emit("payment_intent.payment_failed", failed);
}

/// The customer gives up: the session expires (Stripe expires it after 24 hours).
fn abandon(state: &mut State, checkout: &Checkout) -> String {
    let mut session = checkout.session.clone();
    session["status"] = json!("expired");
    session["url"] = Value::Null;
    state.replace_session(session.clone());
    state.emit("checkout.session.expired", session.clone());
    let back = session["cancel_url"].as_str().unwrap_or_default();
    layout(
        "Checkout abandoned",
        &format!(
            "<h1>Checkout abandoned</h1><p>The session expired. Stripe would now send the \
             customer back to <a href=\"{back}\">{back}</a>.</p>\
             <p><a href=\"/deliveries\">Webhook deliveries</a></p>",
            back = escape(back)
        ),
    )
}

/// The page after paying: where Stripe would send the customer, and the deliveries.
fn finished(session: &Value, what: &str) -> String {
    let id = session["id"].as_str().unwrap_or_default();
    let success = session["success_url"]
        .as_str()
        .unwrap_or_default()
        .replace("{CHECKOUT_SESSION_ID}", id);
    layout(
        what,
        &format!(
            "<h1>{what}</h1><p>Stripe would now send the customer to \
             <a href=\"{success}\">{success}</a>.</p>\
             <p>The events are on their way to the app: <a href=\"/deliveries\">webhook \
             deliveries</a>. Emails it sends are in its <code>/dev/mail</code>.</p>",
            what = escape(what),
            success = escape(&success),
        ),
    )
}

async fn deliveries(state: web::Data<Mutex<State>>) -> HttpResponse {
    let state = state.lock().unwrap();
    let target = state.webhook.as_ref().map_or_else(
        || "nowhere (no webhook URL configured)".to_owned(),
        |w| w.url.clone(),
    );
    let mut rows = String::new();
    for delivery in state.deliveries.iter().rev() {
        let attempts: Vec<String> = delivery
            .attempts
            .iter()
            .map(|a| match &a.outcome {
                Ok(status) => status.to_string(),
                Err(error) => format!("error: {error}"),
            })
            .collect();
        let state = match (delivery.delivered, delivery.attempts.is_empty()) {
            (true, _) => "delivered",
            (false, true) => "pending",
            (false, false) => "retrying",
        };
        let copy = if delivery.copy > 1 {
            " (duplicate)"
        } else {
            ""
        };
        let _ = write!(
            rows,
            "<tr><td><code>{}</code>{copy}</td><td>{}</td><td class={state}>{state}</td>\
             <td>{}</td></tr>",
            escape(&delivery.event_id),
            escape(&delivery.event_type),
            escape(&attempts.join(", ")),
        );
    }
    let chaos = if state.chaos {
        " Chaos is on: deliveries may be duplicated and reordered."
    } else {
        ""
    };
    html(
        200,
        &layout(
            "Webhook deliveries",
            &format!(
                "<meta http-equiv=refresh content=2><h1>Webhook deliveries</h1>\
                 <p class=muted>To {target}.{chaos} Newest first.</p>\
                 <table><tr><th>Event</th><th>Type</th><th>State</th><th>Answers</th></tr>\
                 {rows}</table>",
                target = escape(&target),
            ),
        ),
    )
}

fn not_found(id: &str) -> HttpResponse {
    let body = format!(
        "<h1>No such checkout</h1><p>This fake Stripe has no session <code>{}</code> (it keeps \
         its state in memory: a restart forgets it).</p>",
        escape(id)
    );
    html(404, &layout("No such checkout", &body))
}

fn html(status: u16, body: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type("text/html; charset=utf-8")
        .body(body.to_owned())
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Stripe stand-in</title><style>{STYLE}</style></head><body>\
         <div class=banner>TEST MODE · local Stripe stand-in: no money moves</div>\
         <main>{body}</main></body></html>",
        title = escape(title),
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f6f8fa;margin:0;color:#1a1f36}\
.banner{background:#635bff;color:#fff;text-align:center;padding:6px;font-size:13px;letter-spacing:.03em}\
main{max-width:560px;margin:40px auto;background:#fff;border-radius:8px;padding:28px 32px;\
box-shadow:0 2px 8px rgba(0,0,0,.08)}h1{font-size:22px;margin:0 0 8px}\
.muted{color:#697386;font-size:14px}table{width:100%;border-collapse:collapse;margin:18px 0}\
td,th{padding:8px 4px;border-bottom:1px solid #e3e8ee;text-align:left;font-size:14px}\
.amount{text-align:right}.total td{font-weight:600;border-bottom:none}\
form{display:flex;flex-direction:column;gap:8px}button{font-size:15px;padding:10px;\
border-radius:6px;border:1px solid #c1c9d2;background:#fff;cursor:pointer}\
button.primary{background:#635bff;color:#fff;border-color:#635bff;font-weight:600}\
button.quiet{border:none;color:#697386}.notice{background:#fff4e5;border:1px solid #f5c16c;\
padding:8px 12px;border-radius:6px}.delivered{color:#1a7f37}.retrying{color:#cf222e}\
code{font-size:13px}";

/// An amount in the currency's smallest unit, as a price: `usd 4900` → `$49.00`.
fn money(minor: i64, currency: &str) -> String {
    let symbol = match currency {
        "usd" => "$",
        "eur" => "€",
        "gbp" => "£",
        _ => "",
    };
    let amount = format!("{}.{:02}", minor / 100, minor % 100);
    match symbol {
        "" => format!("{amount} {}", currency.to_uppercase()),
        symbol => format!("{symbol}{amount}"),
    }
}

/// HTML-escapes text and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
