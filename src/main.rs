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
    startup::{self, Config, Layers},
    telemetry,
};
use migration::{Migrator, MigratorTrait};
use tokio_util::sync::CancellationToken;

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
enum StripeAction {
    /// Catch up after an outage: feed every event Stripe created since a time (from its Events API,
    /// which keeps 30 days) into the inbox. Events already received change nothing. The processors
    /// of the running `serve`/`worker` processes apply them.
    SyncEvents {
        /// An RFC 3339 time (2026-12-01T00:00:00Z) or an age (90m, 12h, 3d).
        #[arg(long)]
        since: String,
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
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}\nSee .env.example for every setting.");
            std::process::exit(2);
        }
    };
    telemetry::init(config.env);
    // rustls sees both ring and aws-lc-rs in this dependency tree and cannot pick one by itself.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

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
            let db = ironclad::db::connect(&config.database).await?;
            match action.unwrap_or(MigrateAction::Up) {
                MigrateAction::Up => Migrator::up(&db, None).await?,
                MigrateAction::Down { steps } => Migrator::down(&db, Some(steps)).await?,
                MigrateAction::Status => Migrator::status(&db).await?,
            }
            Ok(())
        }
        Command::Stripe {
            action: StripeAction::SyncEvents { since },
        } => {
            let since = match billing::sync::parse_since(&since, chrono::Utc::now()) {
                Ok(since) => since,
                Err(error) => {
                    eprintln!("sync-events: --since {error}");
                    std::process::exit(2);
                }
            };
            let (layers, _sink) = Layers::build(config).await?;
            let report = billing::sync::sync_events(&layers.billing, since)
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
        Command::Openapi { .. } => unreachable!("handled above"),
    }
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
