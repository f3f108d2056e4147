//! The OpenAPI document. Paths and schemas are collected from the handlers' `#[utoipa::path]`
//! attributes as routes are registered (utoipa-actix-web), so a route cannot be served undocumented;
//! this file only adds what no handler knows: title, tags, security schemes.
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ironclad API",
        description = "Auth with step-up MFA, idempotent Stripe billing and a persistent job queue. \
                       Errors are RFC 9457 `application/problem+json`; every response carries `X-Request-Id`.",
    ),
    tags(
        (name = "health", description = "Liveness and readiness probes"),
        (name = "auth", description = "Accounts, sessions and MFA"),
        (name = "orgs", description = "Organisations: members and roles (every account has a personal one)"),
        (name = "billing", description = "Checkout, orders, licences and Stripe webhooks"),
        (name = "usage", description = "Usage budgets: meters, an organisation's use this period, members' caps"),
        (name = "ai", description = "An example feature on a usage budget: AI completions charged to `ai_tokens`"),
        (name = "ops", description = "Operations: Prometheus metrics"),
        (name = "admin", description = "Operator tools (admin role and a recent second factor): dead jobs, webhook events to review, stuck orders"),
        (name = "dev", description = "Development-only helpers (absent in production)"),
    ),
    components(schemas(crate::http::Problem)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        // An organisation's API key (`ic_live_…`): accepted on the org routes that list it.
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("ic_live_<32 base62><6 base62 CRC32>")
                    .description(Some(
                        "An organisation's API key, sent as `Authorization: Bearer ic_…`: it acts as the organisation on the routes that list this scheme, within its scopes",
                    ))
                    .build(),
            ),
        );
    }
}
