//! The `ironclad` command: the server, the workers, migrations and tools.
// The command talks to a terminal: its usage errors go to stderr (the library logs through tracing).
#![allow(clippy::print_stderr)]
use anyhow::Context;
use clap::{Parser, Subcommand};
use ironclad::{
    auth::{
        dto::{Credentials, NewAccount},
        users,
    },
    billing,
    config::Environment,
    startup::{self, Config, Layers, seed},
    telemetry,
};
use migration::{Migrator, MigratorTrait};
use tokio_util::sync::CancellationToken;

mod cli;

#[derive(Parser)]
#[command(version, about = "Ironclad SaaS backend")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP and run the job workers in-process (the development default).
    Serve {
        /// Serve HTTP only; run workers separately with `ironclad worker`.
        #[arg(long)]
        no_workers: bool,
    },
    /// Run the job workers only (scale them out separately from the HTTP servers).
    Worker,
    /// Manage the database schema.
    Migrate {
        #[command(subcommand)]
        action: Option<MigrateAction>,
    },
    /// Print the OpenAPI document production serves as JSON (what `just openapi` commits).
    Openapi {
        /// Include the development-only routes (`/dev/*`).
        #[arg(long)]
        dev: bool,
    },
    /// Add the demo data (products, plans, meters) where missing and, in development, a verified
    /// demo account. Refuses in production.
    Seed,
    /// Scaffold code in this checkout (run from its root).
    Generate {
        #[command(subcommand)]
        what: Generate,
    },
    /// Stripe tools.
    Stripe {
        #[command(subcommand)]
        action: StripeAction,
    },
    /// Create a verified admin account. Takes no input from stdin (usable in CI and scripts).
    CreateAdmin {
        #[arg(long)]
        email: String,
        /// The password (12 to 128 characters, not a common one). Prefer the environment variable
        /// to keep it out of shell history and process listings.
        #[arg(long, env = "IRONCLAD_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
    },
}

#[derive(Subcommand)]
enum Generate {
    /// A new layer: mod.rs, config.rs, error.rs, service.rs, routes.rs (one documented example
    /// route), a migration and an integration test, wired into the composition root.
    Module {
        /// snake_case, e.g. projects or team_notes.
        name: String,
    },
}

#[derive(Subcommand)]
enum StripeAction {
    /// Catch up after an outage: feed every event Stripe created since a time (from its Events API,
    /// which keeps 30 days) into the inbox. Events already received change nothing. The processors
    /// of the running `serve`/`worker` processes apply them.
    SyncEvents {
        /// An RFC 3339 time (2026-12-01T00:00:00Z) or an age (90m, 12h, 3d).
        #[arg(long)]
        since: String,
    },
    /// Sign one event and send it to a running app's webhook endpoint, like `stripe trigger`
    /// (refused in production). Order events (checkout.session.*, payment_intent.payment_failed,
    /// charge.refunded, charge.dispute.created) need --order.
    Trigger {
        /// The event type, e.g. checkout.session.completed.
        event_type: String,
        /// The order the event is about (its id, from `GET /api/v1/orders`).
        #[arg(long)]
        order: Option<uuid::Uuid>,
        /// The webhook endpoint. Default: PUBLIC_URL + /api/v1/webhooks/stripe.
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Subcommand, Clone, Copy)]
enum MigrateAction {
    /// Apply all pending migrations (default).
    Up,
    /// Roll back the last N migrations.
    Down {
        #[arg(default_value_t = 1)]
        steps: u32,
    },
    /// List migrations and whether each is applied.
    Status,
    /// Drop every table, function and the job queue's schema, then apply all migrations
    /// (refused in production).
    Fresh,
    /// Roll back every migration, then apply them all again (refused in production).
    Refresh,
    /// Roll back every migration (refused in production).
    Reset,
}

impl MigrateAction {
    /// Fresh, refresh and reset destroy data: never against production.
    fn destroys_data(self) -> bool {
        matches!(self, Self::Fresh | Self::Refresh | Self::Reset)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Openapi { dev } = cli.command {
        // Needs no database: the document is built from the route table.
        let spec = startup::openapi_spec(dev);
        println!("{}", spec.to_pretty_json()?);
        return Ok(());
    }
    if let Command::Generate {
        what: Generate::Module { name },
    } = &cli.command
    {
        // Needs no configuration either: it writes source files.
        return generate_module(name);
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}\nSee .env.example for every setting.");
            std::process::exit(2);
        }
    };
    // rustls sees both ring and aws-lc-rs in this dependency tree and cannot pick one by itself.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // Held to the end of main: dropping it exports the spans still buffered.
    let _telemetry = telemetry::init(config.env, &config.telemetry);

    match cli.command {
        Command::Serve { no_workers } => {
            let app = startup::Application::build(config).await?;
            tracing::info!(port = app.port(), docs = %format!("http://localhost:{}/docs/", app.port()), "listening");
            app.run(!no_workers, shutdown_on_signal()).await
        }
        Command::Worker => {
            let (layers, _sink) = Layers::build(config).await?;
            tracing::info!("job workers running");
            layers
                .workers()
                .run(shutdown_on_signal())
                .await
                .context("job workers")
        }
        Command::Migrate { action } => {
            let action = action.unwrap_or(MigrateAction::Up);
            if action.destroys_data() && config.env == Environment::Production {
                eprintln!("migrate: refusing to drop data in production (APP_ENV=production)");
                std::process::exit(2);
            }
            let db = ironclad::db::connect(&config.database).await?;
            match action {
                MigrateAction::Up => Migrator::up(&db, None).await?,
                MigrateAction::Down { steps } => Migrator::down(&db, Some(steps)).await?,
                MigrateAction::Status => Migrator::status(&db).await?,
                MigrateAction::Fresh => migration::fresh(&db).await?,
                MigrateAction::Refresh => Migrator::refresh(&db).await?,
                MigrateAction::Reset => Migrator::reset(&db).await?,
            }
            Ok(())
        }
        Command::Seed => {
            let db = ironclad::db::connect(&config.database).await?;
            match seed::run(&db, config.env, &config.auth.totp_issuer).await {
                Ok(seeded) => {
                    println!("demo products, plans and meters present");
                    if seeded.demo_user.is_some() {
                        println!(
                            "created the demo account {} (password {})",
                            seed::DEMO_EMAIL,
                            seed::DEMO_PASSWORD
                        );
                    }
                    Ok(())
                }
                Err(error) => {
                    eprintln!("seed: {error:#}");
                    std::process::exit(2);
                }
            }
        }
        Command::Stripe {
            action:
                StripeAction::Trigger {
                    event_type,
                    order,
                    url,
                },
        } => trigger(&config, &event_type, order, url).await,
        Command::Stripe {
            action: StripeAction::SyncEvents { since },
        } => {
            let since = match billing::stripe::sync::parse_since(&since, chrono::Utc::now()) {
                Ok(since) => since,
                Err(error) => {
                    eprintln!("sync-events: --since {error}");
                    std::process::exit(2);
                }
            };
            let (layers, _sink) = Layers::build(config).await?;
            let report = billing::stripe::sync::sync_events(&layers.billing, since)
                .await
                .context("syncing Stripe events")?;
            println!(
                "listed {} events since {since} in {} pages; {} were new to the inbox",
                report.listed, report.pages, report.new
            );
            Ok(())
        }
        Command::CreateAdmin { email, password } => {
            let db = ironclad::db::connect(&config.database).await?;
            let credentials = Credentials {
                email,
                password: password.into(),
            };
            let created = match NewAccount::parse(&credentials, &config.auth.totp_issuer) {
                Ok(account) => users::create_admin(&db, account).await,
                Err(invalid) => Err(invalid),
            };
            let email = credentials.email;
            match created {
                Ok(id) => {
                    println!("created admin {email} ({id})");
                    Ok(())
                }
                Err(error) => {
                    eprintln!("create-admin: {error}");
                    std::process::exit(1);
                }
            }
        }
        Command::Openapi { .. } | Command::Generate { .. } => unreachable!("handled above"),
    }
}

/// `ironclad generate module NAME`, in the current directory (a checkout's root).
fn generate_module(name: &str) -> anyhow::Result<()> {
    let root = std::env::current_dir()?;
    if !root.join("src/startup/mod.rs").is_file() {
        eprintln!("generate: run from the root of the checkout (no src/startup/mod.rs here)");
        std::process::exit(2);
    }
    let names = cli::generate::Names::parse(name).unwrap_or_else(|why| {
        eprintln!("generate: {why}");
        std::process::exit(2);
    });
    match cli::generate::module(&root, &names, chrono::Utc::now()) {
        Ok(files) => {
            for file in files {
                println!(
                    "wrote {}",
                    file.strip_prefix(&root).unwrap_or(&file).display()
                );
            }
            println!(
                "next: `just migrate` and `just openapi` (the committed document gains the \
                 route), then `just test`; the example route is GET /api/v1/{}",
                names.url
            );
            Ok(())
        }
        Err(why) => {
            eprintln!("generate: {why} (nothing was written)");
            std::process::exit(1);
        }
    }
}

/// `ironclad stripe trigger`: exits 1 when the app does not answer 2xx, 2 on a usage error.
async fn trigger(
    config: &Config,
    event_type: &str,
    order: Option<uuid::Uuid>,
    url: Option<String>,
) -> anyhow::Result<()> {
    use ironclad::billing::stripe::trigger::{self, OrderFacts};
    use secrecy::ExposeSecret;
    if config.env == Environment::Production {
        eprintln!("stripe trigger: refusing to send made-up events in production");
        std::process::exit(2);
    }
    let order = match order {
        Some(id) => {
            let db = ironclad::db::connect(&config.database).await?;
            match ironclad::billing::orders::find(&db, id).await? {
                Some(order) => Some(OrderFacts::from(&order)),
                None => {
                    eprintln!("stripe trigger: no order {id}");
                    std::process::exit(2);
                }
            }
        }
        None => None,
    };
    let event = trigger::event(event_type, order.as_ref()).unwrap_or_else(|error| {
        eprintln!("stripe trigger: {error}");
        std::process::exit(2);
    });
    let url = url.unwrap_or_else(|| {
        let base = config.http.public_url.trim_end_matches('/');
        format!("{base}/api/v1/webhooks/stripe")
    });
    let secret = config.billing.webhook_secrets[0].expose_secret().as_bytes();
    let answer = trigger::send(&url, secret, &event)
        .await
        .with_context(|| format!("sending to {url}"))?;
    println!(
        "{} {} → {url}: {} {}",
        event["type"].as_str().unwrap_or_default(),
        event["id"].as_str().unwrap_or_default(),
        answer.status,
        answer.body
    );
    if !(200..300).contains(&answer.status) {
        std::process::exit(1);
    }
    Ok(())
}

/// A token cancelled on SIGTERM or Ctrl-C: the server stops accepting, finishes in-flight requests
/// and jobs, then exits.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("install SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown signal received");
        trigger.cancel();
    });
    token
}
