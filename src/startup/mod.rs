//! The composition root: the one module that knows every layer. It reads the whole [`Config`],
//! builds each layer's state, mounts each layer's routes, registers each layer's jobs and collects
//! their housekeeping steps. `main` and the tests build the app the same way (tests with port 0 and
//! their own database).
//!
//! Adding a layer means its field in [`Config`] and [`Layers`], and a line or block in each of
//! [`Layers::build`], [`Layers::register`], [`API_ROUTES`], [`Layers::workers`] and (if it prunes
//! anything) [`Layers::housekeeping`]; removing one, deleting those lines (README: "How to remove a
//! module"). `ironclad generate module NAME` writes a new layer and its lines, before the
//! `ironclad-generate:` markers. Nothing else in the code base names every layer.
mod config;
mod openapi;
pub mod seed;

use std::{net::TcpListener, sync::Arc};

use actix_web::{
    App, HttpResponse, HttpServer,
    body::MessageBody,
    dev::{Server, ServiceRequest, ServiceResponse},
    http::header,
    middleware::{Condition, Next, from_fn},
    web,
};
use anyhow::Context;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_actix_web::{AppExt, scope, service_config::ServiceConfig};
use utoipa_swagger_ui::SwaggerUi;

pub use config::Config;

use crate::{
    admin, ai, audit_log, auth, billing,
    config::{Environment, MailTransport},
    db,
    housekeeping::{self, Housekeeping, HousekeepingState},
    http::{
        errors, health, idempotency, json, request_id,
        scrape::{self, ScrapeToken},
        security_headers::{self, SecurityHeaders},
    },
    jobs::{JobQueue, Workers},
    mail::{self, MailSink, MailState, Mailer, Templates},
    metrics::{self, Metrics},
    orgs, usage,
};
use openapi::ApiDoc;

/// Every layer's state, built once from the config. Each is registered on its own
/// (`web::Data<AuthState>`, …), so a handler asks for its layer's state and nothing more.
#[derive(Clone)]
pub struct Layers {
    pub config: Arc<Config>,
    pub db: DatabaseConnection,
    pub jobs: JobQueue,
    pub metrics: Arc<Metrics>,
    pub mail: MailState,
    pub auth: auth::AuthState,
    pub orgs: orgs::OrgsState,
    pub billing: billing::BillingState,
    pub usage: usage::UsageState,
    pub ai: ai::AiState,
    // ironclad-generate: layer fields
}

impl Layers {
    /// Connects to the database and prepares the mailer; starts the in-process mail sink when the
    /// config asks for it (development and tests).
    pub async fn build(config: Config) -> anyhow::Result<(Self, Option<MailSink>)> {
        let db = db::connect(&config.database)
            .await
            .context("connecting to DATABASE_URL")?;
        let sink = match config.mail.transport {
            MailTransport::Sink => Some(MailSink::start().await.context("starting mail sink")?),
            MailTransport::Smtp(_) => None,
        };
        let templates_dir = &config.mail.templates_dir;
        let templates = Templates::load(templates_dir)
            .with_context(|| format!("loading templates from {}", templates_dir.display()))?;
        let mailer = Mailer::new(&config.mail, templates, sink.as_ref())?;
        let jobs = JobQueue::new(config.jobs.clone(), db.clone());
        let mut metrics = Metrics::default();
        let auth_metrics = auth::AuthMetrics::register(&mut metrics);
        let billing_metrics = billing::BillingMetrics::register(&mut metrics);
        let usage_metrics = usage::UsageMetrics::register(&mut metrics);
        let metrics = Arc::new(metrics);
        let auth = auth::AuthState {
            db: db.clone(),
            config: Arc::new(config.auth.clone()),
            jobs: jobs.clone(),
            metrics: auth_metrics,
            public_url: config.http.public_url.clone(),
        };
        let mail = MailState {
            db: db.clone(),
            mailer,
        };
        let billing = billing::BillingState {
            db: db.clone(),
            stripe: billing::StripeApi::new(&config.billing)
                .context("building the Stripe client")?,
            config: Arc::new(config.billing.clone()),
            jobs: jobs.clone(),
            metrics: billing_metrics,
            mail: mail.clone(),
            public_url: config.http.public_url.clone(),
            inbox: billing::stripe::Inbox::start(db.clone(), jobs.clone(), &config.billing.inbox),
        };
        let orgs = orgs::OrgsState {
            db: db.clone(),
            config: Arc::new(config.orgs.clone()),
            jobs: jobs.clone(),
            public_url: config.http.public_url.clone(),
            live_keys: config.env == Environment::Production,
        };
        let usage = usage::UsageState {
            db: db.clone(),
            config: Arc::new(config.usage.clone()),
            grace: config.billing.subscriptions.past_due_grace,
            stripe: billing.stripe.clone(),
            metrics: usage_metrics,
        };
        let ai = ai::AiState {
            usage: usage.clone(),
            provider: ai::provider::Provider::new(&config.ai)
                .context("building the AI provider client")?,
        };
        // ironclad-generate: layer states
        let layers = Self {
            mail,
            orgs,
            usage,
            ai,
            // ironclad-generate: layer values
            config: Arc::new(config),
            db,
            jobs,
            metrics,
            auth,
            billing,
        };
        Ok((layers, sink))
    }

    /// Every job kind, each with its layer's state, and the periodic jobs.
    pub fn workers(&self) -> Workers {
        let config = &self.config;
        let mut workers = Workers::new(
            self.db.clone(),
            self.jobs.clone(),
            config.jobs.clone(),
            config.http.shutdown_timeout,
        );
        workers
            .register::<mail::SendEmail>(self.mail.clone())
            .periodic::<Housekeeping>(self.housekeeping(), config.housekeeping.interval);
        auth::register_jobs(&mut workers, &self.auth);
        billing::register_jobs(&mut workers, &self.billing);
        usage::register_jobs(&mut workers, &self.usage);
        workers
    }

    /// What housekeeping deletes: each part's own step.
    pub fn housekeeping(&self) -> HousekeepingState {
        let keep = &self.config.housekeeping;
        let (keep_done_jobs, keep_ended_sessions) = (keep.keep_done_jobs, keep.keep_ended_sessions);
        let steps = [
            housekeeping::step(move |db| async move {
                Ok(vec![(
                    "apalis.jobs",
                    JobQueue::prune_done(&db, keep_done_jobs).await?,
                )])
            }),
            housekeeping::step(move |db| async move {
                Ok(vec![(
                    "sent_emails",
                    mail::prune_sent(&db, keep_done_jobs).await?,
                )])
            }),
            housekeeping::step(|db| async move {
                Ok(vec![(
                    "idempotency_keys",
                    idempotency::prune_expired(&db).await?,
                )])
            }),
            auth::housekeeping_step(&self.auth, keep_ended_sessions),
            orgs::housekeeping_step(),
            usage::housekeeping_step(),
        ];
        HousekeepingState {
            db: self.db.clone(),
            steps: steps.into(),
        }
    }

    /// Registers each state for the handlers, guards and middleware that ask for it.
    pub fn register(&self, app: &mut web::ServiceConfig) {
        app.app_data(web::Data::new(self.db.clone()))
            .app_data(web::Data::new(self.jobs.clone()))
            .app_data(web::Data::from(self.metrics.clone()))
            .app_data(web::Data::new(ScrapeToken(
                self.config.metrics_token.clone(),
            )));
        app.app_data(web::Data::new(self.auth.clone()));
        app.app_data(web::Data::new(self.orgs.clone()));
        // Every `/orgs/{org}/…` route's guard reads the session with the membership.
        app.app_data(web::Data::new(auth::guard::SelfAuthenticating(&[
            "/api/v1/orgs/",
        ])));
        app.app_data(web::Data::new(self.billing.clone()));
        app.app_data(web::Data::new(self.usage.clone()));
        app.app_data(web::Data::new(self.ai.clone()));
        // ironclad-generate: app data
    }
}

/// Each layer's routes, mounted under `/api/v1`.
const API_ROUTES: &[fn(&mut ServiceConfig)] = &[
    auth::routes,
    orgs::routes,
    billing::routes,
    billing::operator::routes,
    audit_log::routes,
    usage::routes,
    ai::routes,
    admin::routes,
    // ironclad-generate: routes
];

/// Every documented route. `dev_mail` adds `GET /dev/mail` (development with the mail sink).
fn routes(cfg: &mut ServiceConfig, dev_mail: bool) {
    let api = API_ROUTES
        .iter()
        .fold(scope("/api/v1"), |api, layer| api.configure(layer));
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(scrape::scrape)
        .service(api);
    if dev_mail {
        cfg.service(mail::routes::list_mail);
    }
}

/// The OpenAPI document of the routes this configuration serves.
pub fn openapi_spec(dev_mail: bool) -> utoipa::openapi::OpenApi {
    let mut spec = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(|cfg| routes(cfg, dev_mail))
        .split_for_parts()
        .1;
    openapi::document_common_problems(&mut spec);
    spec
}

/// Jobs a request queued are announced to the workers once it has been handled.
async fn announce_queued_jobs(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    match req.app_data::<web::Data<JobQueue>>() {
        Some(jobs) => jobs.clone().announce_after(next.call(req)).await,
        None => next.call(req).await,
    }
}

/// Swagger UI lives at `/docs/`; its relative asset links need the trailing slash.
async fn redirect_to_docs() -> HttpResponse {
    HttpResponse::MovedPermanently()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}

pub struct Application {
    server: Server,
    port: u16,
    layers: Layers,
    sink: Option<MailSink>,
}

impl Application {
    /// Binds the HTTP listener (port 0 picks a free one) without serving yet.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let (layers, sink) = Layers::build(config).await?;
        // The dummy password hash (for unknown emails) is made now, not during the first login.
        tokio::task::spawn_blocking(auth::password::warm_up);
        let http = &layers.config.http;
        let listener = TcpListener::bind((http.host, http.port))
            .with_context(|| format!("binding {}:{}", http.host, http.port))?;
        let port = listener.local_addr()?.port();

        let dev_sink = sink
            .clone()
            .filter(|_| layers.config.env != Environment::Production);
        let spec = openapi_spec(dev_sink.is_some());
        let allowed = web::Data::new(errors::AllowedMethods::from_spec(&spec));
        let body_limit = http.body_limit;
        let shared = layers.clone();
        let security_headers = web::Data::new(SecurityHeaders::new(http.hsts_max_age_secs));
        let cors_origins = http.cors_allowed_origins.clone();

        let server = HttpServer::new(move || {
            let mut app = App::new()
                .configure(|app| shared.register(app))
                .app_data(allowed.clone())
                .app_data(errors::json_config(body_limit))
                .app_data(errors::payload_config(body_limit))
                .app_data(errors::query_config())
                .app_data(errors::path_config())
                .app_data(security_headers.clone());
            if let Some(sink) = &dev_sink {
                app = app.app_data(web::Data::new(sink.clone()));
            }
            let dev_mail = dev_sink.is_some();
            let cors = security_headers::cors(&cors_origins);
            app.into_utoipa_app()
                .configure(|cfg| routes(cfg, dev_mail))
                .into_app()
                .service(SwaggerUi::new("/docs/{_:.*}").url("/api-docs/openapi.json", spec.clone()))
                .route("/docs", web::get().to(redirect_to_docs))
                .default_service(web::to(errors::no_route))
                .wrap(from_fn(json::objects_only))
                .wrap(from_fn(auth::guard::identify))
                .wrap(from_fn(announce_queued_jobs))
                .wrap(from_fn(errors::problem_responses))
                .wrap(Condition::new(cors.is_some(), cors.unwrap_or_default()))
                .wrap(from_fn(security_headers::middleware))
                .wrap(from_fn(metrics::middleware))
                .wrap(from_fn(request_id::middleware))
        })
        .workers(http.workers)
        .shutdown_timeout(http.shutdown_timeout.as_secs())
        .disable_signals()
        .listen(listener)?
        .run();

        Ok(Self {
            server,
            port,
            layers,
            sink,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every layer's state, as the app built it (tests reach the database and queue through it).
    pub fn layers(&self) -> &Layers {
        &self.layers
    }

    pub fn mail_sink(&self) -> Option<&MailSink> {
        self.sink.as_ref()
    }

    /// Serves HTTP (and runs the job workers when `with_workers`) until `shutdown` fires; then stops
    /// accepting connections and lets in-flight requests and jobs finish.
    pub async fn run(self, with_workers: bool, shutdown: CancellationToken) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let workers =
            with_workers.then(|| tokio::spawn(self.layers.workers().run(shutdown.clone())));
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            stopper.cancelled().await;
            tracing::info!("shutting down: draining HTTP requests");
            handle.stop(true).await;
        });
        let served = self.server.await;
        // However the server ended, the workers end with it.
        shutdown.cancel();
        served.context("HTTP server")?;
        if let Some(workers) = workers {
            workers.await?.context("job workers")?;
        }
        tracing::info!("stopped");
        Ok(())
    }
}
