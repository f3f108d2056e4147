//! `fake-stripe`: the local Stripe stand-in `just dev` starts when no real `STRIPE_SECRET_KEY` is
//! set. The app's `STRIPE_API_BASE` points here; Checkout Sessions open a hosted page whose buttons
//! send the webhook events Stripe would, signed with the development secret, to the app.
//!
//! ```text
//! fake-stripe --port 12111 --webhook-url http://127.0.0.1:8080/api/v1/webhooks/stripe [--chaos]
//! ```
// A terminal program: it tells its user where it listens.
#![allow(clippy::print_stderr)]
use std::{net::TcpListener, time::Duration};

use clap::Parser;
use fake_stripe::{FakeStripe, Policy, Webhook};

#[derive(Parser)]
#[command(about = "A local Stripe stand-in: API, hosted checkout page and webhook deliveries")]
struct Args {
    /// Port to listen on (127.0.0.1).
    #[arg(long, env = "FAKE_STRIPE_PORT", default_value_t = 12111)]
    port: u16,
    /// Where events are delivered: the app's webhook endpoint.
    #[arg(
        long,
        env = "FAKE_STRIPE_WEBHOOK_URL",
        default_value = "http://127.0.0.1:8080/api/v1/webhooks/stripe"
    )]
    webhook_url: String,
    /// The signing secret; the first of the app's STRIPE_WEBHOOK_SECRETS (the app's development
    /// default when unset).
    #[arg(
        long,
        env = "STRIPE_WEBHOOK_SECRETS",
        default_value = "whsec_ironclad_development"
    )]
    webhook_secret: String,
    /// Duplicate about a third of the deliveries and deliver in random order, as Stripe may.
    #[arg(long)]
    chaos: bool,
    /// Seconds a delayed payment method (bank debit) takes to succeed or bounce.
    #[arg(long, default_value_t = 5)]
    settle_after_secs: u64,
    /// Seconds before the first retry of a failed delivery (doubling, up to a minute).
    #[arg(long, default_value_t = 1)]
    retry_base_secs: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(("127.0.0.1", args.port))?;
    let stripe = FakeStripe::serve(listener);
    let secret = args.webhook_secret.split(',').next().unwrap_or_default();
    let webhook = Webhook {
        url: args.webhook_url.clone(),
        secret: secret.trim().to_owned(),
    };
    let policy = Policy {
        chaos: args.chaos,
        retry_base: Duration::from_secs(args.retry_base_secs),
        ..Policy::default()
    };
    stripe.deliver_to(webhook, policy);
    stripe.settle_after(Duration::from_secs(args.settle_after_secs));
    let chaos = if args.chaos {
        " (chaos: duplicates, reordering)"
    } else {
        ""
    };
    eprintln!(
        "fake Stripe on {url} · deliveries to {to}{chaos} · log at {url}deliveries",
        url = stripe.url,
        to = args.webhook_url,
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
