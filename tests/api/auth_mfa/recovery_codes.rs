//! Recovery codes: each works once; regenerating them (behind `require_mfa`) voids the old ones.
use serde_json::json;

use crate::support::{TestApp, auth::*};

#[tokio::test]
async fn a_recovery_code_works_once() {
    let app = TestApp::spawn().await;
    let (access, _) = signed_in(&app, "ada@example.com").await;
    let mfa = enable_mfa(&app, &access).await;
    let code = mfa.recovery_codes[3].to_lowercase();

    let challenge = login(&app, "ada@example.com", PASSWORD).await.body["mfa_token"].clone();
    let ok = post(
        &app,
        "/auth/mfa/verify",
        None,
        json!({"mfa_token": challenge, "code": code}),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        claims(ok.body["access_token"].as_str().unwrap())["aal"],
        "aal2"
    );
    let challenge = login(&app, "ada@example.com", PASSWORD).await.body["mfa_token"].clone();
    let again = post(
        &app,
        "/auth/mfa/verify",
        None,
        json!({"mfa_token": challenge, "code": code}),
    )
    .await;
    assert_eq!(again.status, 401);
    assert_eq!(events(&app, "recovery_code_used").await, 1);
    mail_to(&app, "ada@example.com", "A recovery code was used").await;
}

#[tokio::test]
async fn recovery_codes_are_regenerated_behind_require_mfa() {
    let app = TestApp::spawn().await;
    let (aal1, _) = signed_in(&app, "ada@example.com").await;
    let mfa = enable_mfa(&app, &aal1).await;

    let r = post(&app, "/me/mfa/recovery-codes", Some(&aal1), json!({})).await;
    assert_eq!(r.status, 401);
    let r = post(
        &app,
        "/me/mfa/recovery-codes",
        Some(&mfa.access_token),
        json!({}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let fresh: Vec<String> = r.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|c| !mfa.recovery_codes.contains(c)));

    let challenge = login(&app, "ada@example.com", PASSWORD).await.body["mfa_token"].clone();
    let old = post(
        &app,
        "/auth/mfa/verify",
        None,
        json!({"mfa_token": challenge, "code": mfa.recovery_codes[0]}),
    )
    .await;
    assert_eq!(old.status, 401, "old codes are void");
    let new = post(
        &app,
        "/auth/mfa/verify",
        None,
        json!({"mfa_token": challenge, "code": fresh[0]}),
    )
    .await;
    assert_eq!(new.status, 200);
    assert_eq!(events(&app, "recovery_codes_regenerated").await, 1);
}
