//! Builds the application from a [`Config`]: the pool, the mailer, the HTTP server and the job
//! workers. `main` and the tests build it the same way (tests with port 0 and their own database).
use std::{net::TcpListener, sync::Arc};

use actix_web::{
    App, HttpResponse, HttpServer,
    body::MessageBody,
    dev::{Server, ServiceRequest, ServiceResponse},
    http::header,
    middleware::{Next, from_fn},
    web,
};
use anyhow::Context;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_actix_web::{AppExt, scope, service_config::ServiceConfig};
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    admin, auth, billing,
    config::{Config, Environment, MailTransport},
    db,
    http::{errors, health, request_id},
    jobs::{self, JobQueue},
    mail::{self, MailSink, Mailer, Templates},
    metrics::{self, Metrics},
    openapi::ApiDoc,
};

/// What handlers and jobs share. Cheap to clone (everything inside is a handle).
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub config: Arc<Config>,
    pub jobs: JobQueue,
    pub mailer: Mailer,
    pub metrics: Arc<Metrics>,
    /// The Stripe API (at `STRIPE_API_BASE`).
    pub stripe: billing::StripeApi,
}

impl AppState {
    /// Connects to the database and prepares the mailer; starts the in-process mail sink when the
    /// config asks for it (development and tests).
    pub async fn init(config: Config) -> anyhow::Result<(Self, Option<MailSink>)> {
        let db = db::connect(&config.database)
            .await
            .context("connecting to DATABASE_URL")?;
        let sink = match config.mail.transport {
            MailTransport::Sink => Some(MailSink::start().await.context("starting mail sink")?),
            MailTransport::Smtp(_) => None,
        };
        let templates = Templates::load(&config.templates_dir).with_context(|| {
            format!("loading templates from {}", config.templates_dir.display())
        })?;
        let mailer = Mailer::new(&config.mail, templates, sink.as_ref())?;
        let stripe =
            billing::StripeApi::new(&config.billing).context("building the Stripe client")?;
        let state = Self {
            jobs: JobQueue::new(config.jobs.clone(), db.clone()),
            db,
            stripe,
            config: Arc::new(config),
            mailer,
            metrics: Arc::default(),
        };
        Ok((state, sink))
    }
}

/// Every documented route. `dev_mail` adds `GET /dev/mail` (development with the mail sink).
fn routes(cfg: &mut ServiceConfig, dev_mail: bool) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(metrics::scrape)
        .service(
            scope("/api/v1")
                .configure(auth::routes)
                .configure(billing::routes)
                .configure(admin::routes),
        );
    if dev_mail {
        cfg.service(mail::routes::list_mail);
    }
}

/// The OpenAPI document of the routes this configuration serves.
pub fn openapi_spec(dev_mail: bool) -> utoipa::openapi::OpenApi {
    App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(|cfg| routes(cfg, dev_mail))
        .split_for_parts()
        .1
}

/// Jobs a request queued are announced to the workers once it has been handled.
async fn announce_queued_jobs(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    match req.app_data::<web::Data<AppState>>() {
        Some(app) => app.jobs.clone().announce_after(next.call(req)).await,
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
    state: AppState,
    sink: Option<MailSink>,
}

impl Application {
    /// Binds the HTTP listener (port 0 picks a free one) without serving yet.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let (state, sink) = AppState::init(config).await?;
        // The dummy password hash (for unknown emails) is made now, not during the first login.
        tokio::task::spawn_blocking(auth::password::warm_up);
        let http = &state.config.http;
        let listener = TcpListener::bind((http.host, http.port))
            .with_context(|| format!("binding {}:{}", http.host, http.port))?;
        let port = listener.local_addr()?.port();

        let dev_sink = sink
            .clone()
            .filter(|_| state.config.env != Environment::Production);
        let spec = openapi_spec(dev_sink.is_some());
        let allowed = web::Data::new(errors::AllowedMethods::from_spec(&spec));
        let app_state = web::Data::new(state.clone());
        let body_limit = http.body_limit;

        let server = HttpServer::new(move || {
            let mut app = App::new()
                .app_data(app_state.clone())
                .app_data(allowed.clone())
                .app_data(errors::json_config(body_limit))
                .app_data(errors::payload_config(body_limit))
                .app_data(errors::query_config())
                .app_data(errors::path_config());
            if let Some(sink) = &dev_sink {
                app = app.app_data(web::Data::new(sink.clone()));
            }
            let dev_mail = dev_sink.is_some();
            app.into_utoipa_app()
                .configure(|cfg| routes(cfg, dev_mail))
                .into_app()
                .service(SwaggerUi::new("/docs/{_:.*}").url("/api-docs/openapi.json", spec.clone()))
                .route("/docs", web::get().to(redirect_to_docs))
                .default_service(web::to(errors::no_route))
                .wrap(from_fn(announce_queued_jobs))
                .wrap(from_fn(errors::problem_responses))
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
            state,
            sink,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn mail_sink(&self) -> Option<&MailSink> {
        self.sink.as_ref()
    }

    /// Serves HTTP (and runs the job workers when `with_workers`) until `shutdown` fires; then stops
    /// accepting connections and lets in-flight requests and jobs finish.
    pub async fn run(self, with_workers: bool, shutdown: CancellationToken) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let workers = with_workers
            .then(|| tokio::spawn(jobs::worker::run(self.state.clone(), shutdown.clone())));
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
