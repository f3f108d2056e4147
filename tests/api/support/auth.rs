//! Accounts and sign-ins for any test: registration, logins, TOTP codes computed from the
//! enrolment secret, hand-made access tokens, and tokens read out of captured emails.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ironclad::auth::config::{DEV_JWT_KID, DEV_JWT_SECRET};
use serde_json::{Value, json};
use totp_rs::{Algorithm, Builder, Secret};

use crate::support::TestApp;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Response {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header: {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    pub fn problem_type(&self) -> &str {
        self.body["type"].as_str().unwrap_or("")
    }
}

/// Sends `method path` with an optional bearer token and JSON body.
pub async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Response {
    let mut request = app
        .client
        .request(method.parse().unwrap(), app.url(&format!("/api/v1{path}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    Response {
        status,
        headers,
        body,
    }
}

pub async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> Response {
    call(app, "POST", path, token, Some(body)).await
}

pub async fn register(app: &TestApp, email: &str) {
    let r = post(
        app,
        "/auth/register",
        None,
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

pub async fn login(app: &TestApp, email: &str, password: &str) -> Response {
    post(
        app,
        "/auth/login",
        None,
        json!({"email": email, "password": password}),
    )
    .await
}

/// Marks `email`'s address verified, as following the emailed link does (the tests of verification
/// itself follow the link).
pub async fn verified(app: &TestApp, email: &str) {
    app.sql(&format!(
        "UPDATE users SET email_verified_at = now() WHERE email = lower('{email}')"
    ))
    .await;
}

/// A registered user's first session, with the address verified: (access token, refresh token).
pub async fn signed_in(app: &TestApp, email: &str) -> (String, String) {
    register(app, email).await;
    verified(app, email).await;
    tokens_of(&login(app, email, PASSWORD).await)
}

/// A registered user who never followed the verification link, signed in.
pub async fn signed_in_unverified(app: &TestApp, email: &str) -> (String, String) {
    register(app, email).await;
    tokens_of(&login(app, email, PASSWORD).await)
}

pub fn tokens_of(r: &Response) -> (String, String) {
    assert_eq!(r.status, 200, "{}", r.body);
    (
        r.body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned(),
        r.body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned(),
    )
}

/// The claims of a JWT, read without verification (the test inspects what the server issued).
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Waits, when fewer than 10 s of the current 30-second TOTP step remain, for the next step: a test
/// that confirms with this step's code and then replays it must not see the step change between
/// the two (the replayed "current" code would then be a new, unused one).
pub async fn early_in_a_totp_step() {
    let into_step = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 30_000;
    if into_step >= 20_000 {
        tokio::time::sleep(Duration::from_millis((30_000 - into_step) as u64 + 50)).await;
    }
}

/// The TOTP code of `secret` (base32, as returned by enrolment) `steps` 30-second steps from now.
pub fn totp_code(secret: &str, steps: i64) -> String {
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap();
    totp.generate((now() + steps * 30) as u64).to_string()
}

/// MFA turned on for a signed-in user. Uses the code of the current step.
pub struct Mfa {
    pub secret: String,
    pub recovery_codes: Vec<String>,
    /// The aal2 access token returned by the confirmation.
    pub access_token: String,
}

/// MFA turned on with `access`'s session (the account's other sessions end).
pub async fn enable_mfa(app: &TestApp, access: &str) -> Mfa {
    early_in_a_totp_step().await;
    let started = post(
        app,
        "/me/mfa/totp",
        Some(access),
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(started.status, 200, "{}", started.body);
    let secret = started.body["secret"].as_str().unwrap().to_owned();
    let confirmed = post(
        app,
        "/me/mfa/totp/confirm",
        Some(access),
        json!({"code": totp_code(&secret, 0)}),
    )
    .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    Mfa {
        secret,
        recovery_codes: confirmed.body["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect(),
        access_token: confirmed.body["access_token"].as_str().unwrap().to_owned(),
    }
}

/// Signs `claims` as the app would with the development key (or another key / kid / algorithm).
pub fn mint(claims: &Value, secret_b64: &str, kid: &str, alg: jsonwebtoken::Algorithm) -> String {
    let secret = base64::engine::general_purpose::STANDARD
        .decode(secret_b64)
        .unwrap();
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .unwrap()
}

/// `claims` changed by `edit`, signed with the app's own (development) key.
pub fn resign(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut c = claims(token);
    edit(&mut c);
    mint(
        &c,
        DEV_JWT_SECRET,
        DEV_JWT_KID,
        jsonwebtoken::Algorithm::HS256,
    )
}

/// The newest email to `to` whose subject contains `subject`, waiting for it to arrive.
pub async fn mail_to(app: &TestApp, to: &str, subject: &str) -> ironclad::mail::CapturedMail {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let found = app.sink.messages().into_iter().rev().find(|m| {
            m.to.iter().any(|t| t == to) && m.subject.as_deref().unwrap_or("").contains(subject)
        });
        if let Some(mail) = found {
            return mail;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no email to {to} about {subject:?}; inbox: {:?}",
            app.sink
                .messages()
                .iter()
                .map(|m| (&m.to, &m.subject))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asks for a password reset link for `email` and returns the token its email carries.
pub async fn reset_link(app: &TestApp, email: &str) -> String {
    let asked = post(app, "/auth/password/forgot", None, json!({"email": email})).await;
    assert_eq!(asked.status, 202, "{}", asked.body);
    token_in(&mail_to(app, email, "Reset your password").await)
}

/// `POST /auth/password/reset` with `token` and the new `password`.
pub async fn reset_password(app: &TestApp, token: &str, password: &str) -> Response {
    post(
        app,
        "/auth/password/reset",
        None,
        json!({"token": token, "password": password}),
    )
    .await
}

/// The `Token: ...` line of an email's text part.
pub fn token_in(mail: &ironclad::mail::CapturedMail) -> String {
    let at = mail.raw.find("Token: ").expect("a Token: line") + "Token: ".len();
    mail.raw[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

pub async fn events(app: &TestApp, event: &str) -> i64 {
    app.count(&format!(
        "SELECT count(*) FROM auth_events WHERE event = '{event}'"
    ))
    .await
}

/// The text of `GET /metrics`.
pub async fn metrics_text(app: &TestApp) -> String {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// Credentials parsed as registration (and `create-admin`) parse them.
pub fn new_account(email: &str, password: &str) -> ironclad::auth::dto::NewAccount {
    let credentials = ironclad::auth::dto::Credentials {
        email: email.to_owned(),
        password: password.to_owned().into(),
    };
    ironclad::auth::dto::NewAccount::parse(&credentials, "Ironclad")
        .expect("acceptable credentials")
}

/// An admin's first session, stepped up with a fresh second factor (aal2).
pub async fn admin_token(app: &TestApp) -> String {
    ironclad::auth::users::create_admin(&app.db, new_account("root@example.com", PASSWORD))
        .await
        .unwrap();
    let (access, _) = tokens_of(&login(app, "root@example.com", PASSWORD).await);
    enable_mfa(app, &access).await.access_token
}

/// An operator route called by an admin (`path` under `/admin`), which must answer 200.
pub async fn admin(app: &TestApp, method: &str, path: &str, token: &str) -> Response {
    let r = call(app, method, &format!("/admin{path}"), Some(token), None).await;
    assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
    r
}

/// Everyone an operator route must refuse, signed in: a user with a fresh second factor, an admin
/// who never enrolled MFA, and an admin whose second factor is stale.
pub struct Outsiders {
    user: String,
    admin_without_mfa: String,
    stale_admin: String,
}

impl Outsiders {
    /// `fresh_admin`: an admin's aal2 token (see [`admin_token`]), made stale here.
    pub async fn sign_in(app: &TestApp, fresh_admin: &str) -> Self {
        let (user, _) = signed_in(app, "ada@example.com").await;
        let user = enable_mfa(app, &user).await.access_token;
        let email = "admin-without-mfa@example.com";
        ironclad::auth::users::create_admin(&app.db, new_account(email, PASSWORD))
            .await
            .unwrap();
        let (admin_without_mfa, _) = tokens_of(&login(app, email, PASSWORD).await);
        let stale_admin = resign(fresh_admin, |c| c["mfa_time"] = (now() - 301).into());
        Self {
            user,
            admin_without_mfa,
            stale_admin,
        }
    }

    /// `method path` answers 401 anonymous, 403 `forbidden` to the user, 403
    /// `mfa-enrolment-required` to the admin without MFA and 401 `mfa-required` (step-up) to the
    /// stale admin.
    pub async fn assert_refused(&self, app: &TestApp, method: &str, path: &str) {
        let anonymous = call(app, method, path, None, None).await;
        assert_eq!(anonymous.status, 401, "anonymous {method} {path}");
        for (who, token, status, problem) in [
            ("user", &self.user, 403, "forbidden"),
            (
                "admin without MFA",
                &self.admin_without_mfa,
                403,
                "mfa-enrolment-required",
            ),
            ("stale admin", &self.stale_admin, 401, "mfa-required"),
        ] {
            let r = call(app, method, path, Some(token), None).await;
            assert_eq!(r.status, status, "{who} {method} {path}: {}", r.body);
            assert_eq!(
                r.problem_type(),
                format!("urn:ironclad:problem:{problem}"),
                "{who} {method} {path}"
            );
        }
    }
}

/// Checks each operator route `(method, path, status a fresh admin gets)` refuses everyone but an
/// admin with a fresh second factor ([`Outsiders`]). Returns the fresh admin's token.
pub async fn assert_operator_only(app: &TestApp, routes: &[(&str, &str, u16)]) -> String {
    let fresh = admin_token(app).await;
    let outsiders = Outsiders::sign_in(app, &fresh).await;
    for &(method, path, expected) in routes {
        outsiders.assert_refused(app, method, path).await;
        let r = call(app, method, path, Some(&fresh), None).await;
        assert_eq!(r.status, expected, "{method} {path}: {}", r.body);
    }
    fresh
}

/// Every operation of the served OpenAPI document under `/api/v1{prefix}` that declares bearer
/// security, as `(method, path below /api/v1)` with each path parameter filled in with a fresh
/// UUID (guards and the caller's extractor run before any parameter is looked at).
pub async fn bearer_operations(app: &TestApp, prefix: &str) -> Vec<(String, String)> {
    let doc: Value = app
        .get("/api-docs/openapi.json")
        .await
        .json()
        .await
        .expect("the OpenAPI document");
    let full_prefix = format!("/api/v1{prefix}");
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let Some(below) = path.strip_prefix("/api/v1") else {
            continue;
        };
        if !path.starts_with(&full_prefix) {
            continue;
        }
        for (method, operation) in item.as_object().unwrap() {
            if operation.get("security").is_none() {
                continue;
            }
            let filled: String = below
                .split('/')
                .map(|segment| {
                    if segment.starts_with('{') {
                        uuid::Uuid::new_v4().to_string()
                    } else {
                        segment.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            operations.push((method.to_uppercase(), filled));
        }
    }
    assert!(
        !operations.is_empty(),
        "no bearer operations under {prefix}"
    );
    operations
}
