//! Spawns the real application for a test: its own database (cloned from a migrated template, so
//! tests run in parallel and never share state), a free port, the in-process mail sink and the job
//! workers. Dropping the [`TestApp`] stops it and drops its database.
use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    path::Path,
    time::Duration,
};

use ironclad::{
    mail::MailSink,
    startup::{Application, Config, Layers},
};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use tokio_util::sync::CancellationToken;

pub struct TestApp {
    pub address: String,
    pub layers: Layers,
    pub db: DatabaseConnection,
    pub sink: MailSink,
    pub client: reqwest::Client,
    db_name: String,
    shutdown: CancellationToken,
}

/// Settings every test starts from; a test may override any of them.
fn test_settings(database_url: &str) -> HashMap<String, String> {
    [
        ("APP_ENV", "test"),
        ("DATABASE_URL", database_url),
        ("DATABASE_MAX_CONNECTIONS", "10"),
        ("PORT", "0"),
        ("HTTP_WORKERS", "2"),
        ("SMTP_URL", "sink"),
        // A worker silent for 2 s is dead (the shortest window apalis handles correctly).
        ("JOBS_HEARTBEAT_MS", "500"),
        ("JOBS_MISSED_HEARTBEATS", "4"),
        ("JOBS_POLL_INTERVAL_MS", "100"),
        ("JOBS_RETRY_BASE_MS", "50"),
        ("JOBS_RETRY_MAX_MS", "1000"),
        ("SHUTDOWN_TIMEOUT_SECS", "2"),
        (
            "TEMPLATES_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/templates"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Spawns the app with some settings overridden, e.g. `[("JOBS_MAX_ATTEMPTS", "3")]`.
    pub async fn spawn_with(overrides: &[(&str, &str)]) -> Self {
        Self::start(overrides, true).await
    }

    /// Spawns the app with no job workers: jobs wait in the queue until the test runs them with
    /// [`run_jobs_until_idle`](Self::run_jobs_until_idle).
    pub async fn spawn_without_workers(overrides: &[(&str, &str)]) -> Self {
        Self::start(overrides, false).await
    }

    async fn start(overrides: &[(&str, &str)], with_workers: bool) -> Self {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        init_test_logging();
        let (db_name, database_url) = create_test_database().await;
        let mut settings = test_settings(&database_url);
        for (key, value) in overrides {
            settings.insert((*key).to_owned(), (*value).to_owned());
        }
        let config = Config::from_lookup(|k| settings.get(k).cloned()).expect("test config");
        let app = Application::build(config).await.expect("app builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let layers = app.layers().clone();
        let sink = app.mail_sink().expect("tests use the mail sink").clone();
        let shutdown = CancellationToken::new();
        tokio::spawn(app.run(with_workers, shutdown.clone()));
        Self {
            address,
            db: layers.db.clone(),
            layers,
            sink,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            db_name,
            shutdown,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// Counts rows with a raw SQL `SELECT count(*) ...`.
    /// The personal organisation of account `user`.
    pub async fn personal_org(&self, user: uuid::Uuid) -> uuid::Uuid {
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!("SELECT id FROM orgs WHERE personal_for = '{user}'"),
            ))
            .await
            .expect("personal org query")
            .expect("every account has a personal org");
        row.try_get_by_index::<uuid::Uuid>(0).expect("an id")
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                sql.to_owned(),
            ))
            .await
            .expect("count query")
            .expect("a row");
        row.try_get_by_index::<i64>(0).expect("a count")
    }

    /// Runs raw SQL statements (test data, injected faults), failing the test if they fail.
    pub async fn sql(&self, sql: &str) {
        self.db.execute_unprepared(sql).await.expect(sql);
    }

    /// Waits until `sql` (a `SELECT count(*) ...`, or any query answering one bigint) answers
    /// `expected`, failing the test after 15 s.
    pub async fn eventually(&self, sql: &str, expected: i64) {
        self.eventually_within(sql, expected, Duration::from_secs(15))
            .await;
    }

    /// [`TestApp::eventually`], failing the test after `limit`.
    pub async fn eventually_within(&self, sql: &str, expected: i64, limit: Duration) {
        const POLL: Duration = Duration::from_millis(50);
        for _ in 0..limit.as_millis() / POLL.as_millis() {
            if self.count(sql).await == expected {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("{sql} never reached {expected}: {}", self.count(sql).await);
    }

    /// Waits until the job queue is idle: no job Pending, Queued, Running, or Failed with attempts
    /// left (so due to run again). Every status but Done and Killed counts: the retry policy (the
    /// jobs migration's trigger) turns a job that fails with no attempts left into Killed, so a
    /// Failed job is one still to be retried.
    pub async fn jobs_idle(&self) {
        self.eventually(
            "SELECT count(*) FROM apalis.jobs WHERE status NOT IN ('Done', 'Killed')",
            0,
        )
        .await;
    }
}

impl TestApp {
    /// Runs every due job right here, one after another, until none is due: each of the app's job
    /// kinds with its layer's state, as the workers would. For tests that only need the jobs done
    /// (start the app with [`spawn_without_workers`](Self::spawn_without_workers)): deterministic,
    /// no polling, no timeout. Returns how many ran.
    pub async fn run_jobs_until_idle(&self) -> usize {
        self.layers
            .workers()
            .run_until_idle()
            .await
            .expect("jobs run")
    }
}

/// Another server process's stand-in on the same database: its own pool, HTTP server and
/// workers. The database stays the first app's (dropped with it).
pub struct Instance {
    pub layers: Layers,
    shutdown: CancellationToken,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestApp {
    /// A second server on this app's database, with `overrides` (a second process, as far as
    /// Postgres can tell: its own connections, sessions and locks).
    pub async fn another_instance(&self, overrides: &[(&str, &str)]) -> Instance {
        let mut settings = test_settings(&database_url(&self.db_name));
        for (key, value) in overrides {
            settings.insert((*key).to_owned(), (*value).to_owned());
        }
        let config = Config::from_lookup(|k| settings.get(k).cloned()).expect("test config");
        let app = Application::build(config).await.expect("app builds");
        let layers = app.layers().clone();
        let shutdown = CancellationToken::new();
        tokio::spawn(app.run(false, shutdown.clone()));
        Instance { layers, shutdown }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let name = self.db_name.clone();
        // Drop runs inside the test's runtime, which cannot block on async work: use a thread.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    if let Ok(admin) = Database::connect(maintenance_url()).await {
                        let _ = admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            ))
                            .await;
                    }
                });
        })
        .join();
    }
}

fn server_url() -> url::Url {
    let raw = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    url::Url::parse(&raw).expect("DATABASE_URL is a URL")
}

fn database_url(name: &str) -> String {
    let mut url = server_url();
    url.set_path(name);
    url.to_string()
}

fn maintenance_url() -> String {
    database_url("postgres")
}

/// Templates are per checkout (several worktrees may share one server) and per content: the name
/// changes whenever the migrations, the seeds or the locked dependencies do, so a stale template is
/// never cloned.
fn template_prefix() -> String {
    let mut hasher = DefaultHasher::new();
    env!("CARGO_MANIFEST_DIR").hash(&mut hasher);
    format!("ironclad_tpl_{:08x}_", hasher.finish() as u32)
}

fn template_name() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(root.join("migrations/src"))
        .expect("migrations folder")
        .map(|e| e.unwrap().path())
        .collect();
    files.push(root.join("Cargo.lock"));
    // The template is seeded too: the demo data's SQL is part of its content.
    files.extend(["src/billing/seed.rs", "src/usage/seed.rs"].map(|f| root.join(f)));
    files.sort();
    let mut hasher = DefaultHasher::new();
    for file in files {
        std::fs::read(&file).unwrap_or_default().hash(&mut hasher);
    }
    format!("{}{:016x}", template_prefix(), hasher.finish())
}

/// An empty database of its own (no migrations run), for tests of the migrations themselves; and a
/// connection to the server's maintenance database, to drop it afterwards.
pub async fn empty_database() -> (String, DatabaseConnection) {
    let admin = Database::connect(maintenance_url()).await.unwrap();
    let name = format!("ironclad_test_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
    let db = Database::connect(database_url(&name)).await.unwrap();
    admin.close().await.unwrap();
    (name, db)
}

/// Drops a database made by [`empty_database`].
pub async fn drop_database(name: &str) {
    let admin = Database::connect(maintenance_url()).await.unwrap();
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
}

/// Creates a fresh database for one test by cloning the migrated template (built once, under an
/// advisory lock so parallel test processes don't race to build it).
async fn create_test_database() -> (String, String) {
    let template = template_name();
    let admin = Database::connect(maintenance_url())
        .await
        .expect("Postgres reachable at DATABASE_URL (run `just db start`)");
    admin
        .execute_unprepared("SELECT pg_advisory_lock(727274)")
        .await
        .unwrap();
    let exists = admin
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT 1 FROM pg_database WHERE datname = $1",
            [template.clone().into()],
        ))
        .await
        .unwrap()
        .is_some();
    if !exists {
        build_template(&admin, &template).await;
    }
    admin
        .execute_unprepared("SELECT pg_advisory_unlock(727274)")
        .await
        .unwrap();

    let name = format!("ironclad_test_{}", uuid::Uuid::new_v4().simple());
    let create = format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"");
    let mut tries = 0;
    // Two clones of one template at the same instant can collide ("being accessed by other users").
    while let Err(error) = admin.execute_unprepared(&create).await {
        tries += 1;
        assert!(tries < 20, "creating test database: {error}");
        tokio::time::sleep(Duration::from_millis(50 * tries)).await;
    }
    (name.clone(), database_url(&name))
}

async fn build_template(admin: &DatabaseConnection, template: &str) {
    let building = format!("{template}_building");
    admin
        .execute_unprepared(&format!(
            "DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"
        ))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{building}\""))
        .await
        .unwrap();
    {
        let db = Database::connect(database_url(&building)).await.unwrap();
        Migrator::up(&db, None).await.expect("migrations apply");
        ironclad::startup::seed::demo_data(&db)
            .await
            .expect("the demo data seeds");
        db.close().await.unwrap();
    }
    // This checkout's older templates (from earlier migrations) are dead weight now.
    let stale = admin
        .query_all_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1) AND datname <> $2",
            [template_prefix().into(), building.clone().into()],
        ))
        .await
        .unwrap();
    for row in stale {
        let name: String = row.try_get_by_index(0).unwrap();
        for sql in [
            format!("ALTER DATABASE \"{name}\" IS_TEMPLATE false"),
            format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        ] {
            let _ = admin.execute_unprepared(&sql).await;
        }
    }
    admin
        .execute_unprepared(&format!(
            "ALTER DATABASE \"{building}\" RENAME TO \"{template}\""
        ))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!("ALTER DATABASE \"{template}\" IS_TEMPLATE true"))
        .await
        .unwrap();
}

fn init_test_logging() {
    // Quiet by default; `TEST_LOG=1 cargo nextest run` shows the app's logs.
    if std::env::var("TEST_LOG").is_ok() {
        let off = ironclad::config::TelemetryConfig {
            otlp_endpoint: None,
            service_name: "ironclad-test".into(),
        };
        // No exporter: dropping the handle changes nothing.
        ironclad::telemetry::init(ironclad::config::Environment::Test, &off);
    }
}
