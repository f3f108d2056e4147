//! The OpenAPI document. Paths and schemas are collected from the handlers' `#[utoipa::path]`
//! attributes as routes are registered (utoipa-actix-web), so a route cannot be served undocumented;
//! this file only adds what no handler knows: title, tags, security schemes, and the problem
//! responses every operation of a kind can give ([`document_common_problems`]).
use utoipa::{
    Modify, OpenApi,
    openapi::{
        ContentBuilder, ObjectBuilder, Ref, RefOr, Response, ResponseBuilder, Type,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
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

/// The problem responses an operation can give for what it *is*, documented once here rather than
/// in every handler's attribute (a handler's own entry for a status wins):
/// - a request body: 400 (not valid JSON for the endpoint), 413 (too large), 415 (not
///   `application/json`), from the JSON extractor's error handler (`http::errors`);
/// - query or header parameters: 400 (a parameter of the wrong shape, a missing header);
/// - path parameters: 404 (a segment of the wrong shape names no resource);
/// - a security requirement: 401 (no, bad or expired credentials) and 403 (authenticated but not
///   allowed: an unverified email address, a missing role, permission or scope).
///
/// - an `Idempotency-Key` header: 409 (a request with the key is still running) and 422 (the key
///   was used with another request), from `http::idempotency`; and the shape it accepts.
pub fn document_common_problems(spec: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::ParameterIn;
    for item in spec.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let located = |place: ParameterIn| {
                operation.parameters.iter().flatten().any(|p| match p {
                    RefOr::T(p) => p.parameter_in == place,
                    RefOr::Ref(_) => false,
                })
            };
            let mut common: Vec<(&str, &str)> = Vec::new();
            if operation.request_body.is_some() {
                common.extend([
                    ("400", "Malformed body (`invalid-body`)"),
                    ("413", "Body too large"),
                    ("415", "Body not sent as application/json"),
                ]);
            }
            if located(ParameterIn::Query) || located(ParameterIn::Header) {
                common.push(("400", "A query parameter or header is missing or malformed"));
            }
            if located(ParameterIn::Path) {
                common.push((
                    "404",
                    "No such resource (a path segment of the wrong shape names none)",
                ));
            }
            if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                common.extend([
                    ("401", "Not signed in, or a revoked or expired token or key"),
                    ("403", "Not allowed: an unverified email address, or a missing role, permission or scope"),
                ]);
            }
            let mut keyed = false;
            if let Some(parameters) = &mut operation.parameters {
                for parameter in parameters.iter_mut() {
                    if let RefOr::T(p) = parameter
                        && p.parameter_in == ParameterIn::Header
                        && p.name.eq_ignore_ascii_case("Idempotency-Key")
                    {
                        p.schema = Some(idempotency_key_schema());
                        keyed = true;
                    }
                }
            }
            if keyed {
                common.extend([
                    ("409", "A request with this Idempotency-Key is still being processed: retry later (`idempotency-key-in-flight`)"),
                    ("422", "This Idempotency-Key was used with a different request (`idempotency-key-mismatch`)"),
                ]);
            }
            for (status, description) in common {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| problem_response(description));
            }
        }
    }
}

/// What `http::idempotency` accepts: 1 to 255 printable ASCII characters.
fn idempotency_key_schema() -> RefOr<utoipa::openapi::schema::Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(255))
        .pattern(Some("^[!-~]{1,255}$"))
        .examples(["3f1c2a9e-7b1d-4c55-9a43-8f2d6f5e0b17"])
        .into()
}

fn problem_response(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            crate::http::problem::CONTENT_TYPE,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}
