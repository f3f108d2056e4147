//! The bench's world: a fresh database on the configured server, a mail sink, a fake Stripe, and
//! release server processes started on loopback with the settings a scenario asks for.
use std::{
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use fake_stripe::FakeStripe;
use ironclad::mail::MailSink;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use tokio::{
    process::{Child, Command},
    sync::OnceCell,
};

pub struct BenchDb {
    pub url: String,
    pub name: String,
    admin_url: String,
    pub db: DatabaseConnection,
}

impl BenchDb {
    /// Creates, migrates and seeds `ironclad_bench_<random>` on the server `DATABASE_URL` points at.
    pub async fn create() -> anyhow::Result<Self> {
        let base = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        Self::create_on(&base).await
    }

    /// The same on the server of `server_url`.
    pub async fn create_on(server_url: &str) -> anyhow::Result<Self> {
        let mut url = url::Url::parse(server_url)?;
        // TLS over loopback protects nothing and costs the server, Postgres and pgbench CPU on every
        // round trip; an explicit `sslmode` in DATABASE_URL still wins.
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if loopback && !url.query_pairs().any(|(key, _)| key == "sslmode") {
            url.query_pairs_mut().append_pair("sslmode", "disable");
        }
        url.set_path("postgres");
        let admin_url = url.to_string();
        let name = format!("ironclad_bench_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(&admin_url).await?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await?;
        url.set_path(&name);
        let db = Database::connect(url.as_str()).await?;
        Migrator::up(&db, None).await?;
        ironclad::startup::seed::demo_data(&db).await?;
        // Flush what earlier scenarios wrote, so this one does not pay for their checkpoint. Needs
        // superuser or pg_checkpoint; without them the scenario just runs on.
        if let Err(error) = admin.execute_unprepared("CHECKPOINT").await {
            eprintln!("note: CHECKPOINT refused ({error}); scenarios may share checkpoint work");
        }
        Ok(Self {
            url: url.to_string(),
            name,
            admin_url,
            db,
        })
    }

    pub async fn drop_database(self) -> anyhow::Result<()> {
        self.db.close().await?;
        let admin = Database::connect(&self.admin_url).await?;
        admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await?;
        Ok(())
    }

    pub async fn scalar_i64(&self, sql: &str) -> anyhow::Result<i64> {
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                sql.to_owned(),
            ))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no row: {sql}"))?;
        Ok(row.try_get_by_index::<Option<i64>>(0)?.unwrap_or(0))
    }

    pub async fn scalar_f64(&self, sql: &str) -> anyhow::Result<f64> {
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                sql.to_owned(),
            ))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no row: {sql}"))?;
        Ok(row.try_get_by_index::<Option<f64>>(0)?.unwrap_or(0.0))
    }
}

/// A release `ironclad` process.
pub struct Server {
    pub addr: SocketAddr,
    child: Child,
}

impl Server {
    /// Starts `ironclad <args>` with `env` on a free loopback port and waits for `/healthz`.
    pub async fn start(
        db: &BenchDb,
        sink: &MailSink,
        args: &[&str],
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let stripe = fake_stripe().await;
        let mut command = Command::new(server_binary());
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("APP_ENV", "production")
            .env("RUST_LOG", "warn")
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("DATABASE_URL", &db.url)
            .env("SMTP_URL", format!("smtp://{}", sink.addr()))
            .env(
                "TEMPLATES_DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../../templates"),
            )
            .env("JOBS_POLL_INTERVAL_MS", "200")
            .envs(app_env(&stripe.url))
            // Tuning knobs to try without rebuilding: `STRIPE_INBOX_WRITERS=4 just bench --only webhook`.
            .envs(
                std::env::vars()
                    .filter(|(k, _)| k.starts_with("STRIPE_INBOX_") || k.starts_with("BENCH_APP_"))
                    .map(|(k, v)| (k.trim_start_matches("BENCH_APP_").to_owned(), v)),
            )
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let child = command.spawn()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut server = Self { addr, child };
        if args.first() == Some(&"serve") {
            server.wait_healthy().await?;
        }
        Ok(server)
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                anyhow::bail!("server exited at start-up ({status}); its error is above");
            }
            if let Ok(stream) = tokio::net::TcpStream::connect(self.addr).await {
                drop(stream);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("server on {} did not come up", self.addr)
    }

    /// `kill -9`: no shutdown, no acknowledgements, locks left behind.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// Still running (not crashed)?
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            // SIGTERM: the graceful path, as an orchestrator would.
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
        tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await??;
        Ok(())
    }
}

/// The release `ironclad` binary next to this one (both live in target/release).
fn server_binary() -> PathBuf {
    let me = std::env::current_exe().expect("current exe");
    me.with_file_name("ironclad")
}

/// The bench process's one fake Stripe, started by the first server that needs it. Every server
/// points `STRIPE_API_BASE` at it, so none ever talks to api.stripe.com (say, a worker sweeping
/// stuck orders, or a checkout), whatever a scenario does.
pub async fn fake_stripe() -> &'static FakeStripe {
    static STRIPE: OnceCell<FakeStripe> = OnceCell::const_new();
    STRIPE.get_or_init(FakeStripe::start).await
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub const WEBHOOK_SECRET: &str = "whsec_bench_secret";

/// Production-mode settings every bench server starts with (production refuses the development
/// keys), Stripe's API at `stripe_api_base`; a scenario's own settings come after them and win.
fn app_env(stripe_api_base: &str) -> Vec<(&'static str, String)> {
    vec![
        ("STRIPE_API_BASE", stripe_api_base.into()),
        ("STRIPE_SECRET_KEY", "sk_test_bench".into()),
        ("STRIPE_WEBHOOK_SECRETS", WEBHOOK_SECRET.into()),
        ("BILLING_SUCCESS_URL", "https://app.example.com/ok".into()),
        (
            "BILLING_PORTAL_RETURN_URL",
            "https://app.example.com/billing".into(),
        ),
        // Unpaced unless a scenario says otherwise (the fake has no rate limit by default).
        ("STRIPE_MAX_REQUESTS_PER_SEC", "100000".into()),
        (
            "BILLING_CANCEL_URL",
            "https://app.example.com/cancel".into(),
        ),
        ("JWT_KID", "bench".into()),
        (
            "JWT_SECRET",
            "YmVuY2gtc2VjcmV0LWJlbmNoLXNlY3JldC1iZW5jaC1zZWNyZXQtMzItYnl0ZXMh".into(),
        ),
        (
            "AUTH_TOTP_ENCRYPTION_KEY",
            "YmVuY2gta2V5LWJlbmNoLWtleS1iZW5jaC1rZXktMzI=".into(),
        ),
    ]
}
