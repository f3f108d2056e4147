use std::time::Duration;

use serde_json::json;

use super::{Person, call, join, org, person, role_of};
use crate::support::{TestApp, auth};

/// The token of the `nth` (1-based) invitation email to `to`, waiting for it.
async fn invitation_token(app: &TestApp, to: &str, nth: usize) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let mails: Vec<_> = app
            .sink
            .messages()
            .into_iter()
            .filter(|m| {
                m.to.iter().any(|t| t == to)
                    && m.subject
                        .as_deref()
                        .unwrap_or("")
                        .contains("invited you to")
            })
            .collect();
        if mails.len() >= nth {
            return auth::token_in(&mails[nth - 1]);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no invitation email #{nth} to {to}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn invite(app: &TestApp, who: &Person, org: &str, email: &str, role: &str) -> auth::Response {
    call(
        app,
        who,
        "POST",
        &format!("/orgs/{org}/invitations"),
        Some(json!({"email": email, "role": role})),
    )
    .await
}

async fn accept(app: &TestApp, who: &Person, token: &str) -> auth::Response {
    call(
        app,
        who,
        "POST",
        "/invitations/accept",
        Some(json!({"token": token})),
    )
    .await
}

#[tokio::test]
async fn an_invited_person_registers_verifies_and_joins_once() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let acme = org(&app, &ada, "acme").await;
    let sent = invite(&app, &ada, &acme, "Grace@Example.com", "admin").await;
    assert_eq!(sent.status, 201, "{}", sent.body);
    assert_eq!(sent.body["status"], "sent");
    assert_eq!(sent.body["invitation"]["email"], "grace@example.com");
    assert_eq!(sent.body["invitation"]["invited_by"], "ada@example.com");
    let token = invitation_token(&app, "grace@example.com", 1).await;
    assert_eq!(token.len(), 43, "256 bits, base64url");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM org_invitations WHERE token_hash = sha256('{token}'::bytea)"
        ))
        .await,
        1,
        "stored only as its SHA-256"
    );

    // Without an account there is nothing to accept with; registered but unverified is refused.
    let (unverified, _) = auth::signed_in_unverified(&app, "grace@example.com").await;
    let grace = Person {
        id: auth::claims(&unverified)["sub"]
            .as_str()
            .unwrap()
            .to_owned(),
        token: unverified,
    };
    let refused = accept(&app, &grace, &token).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(
        refused.problem_type(),
        "urn:ironclad:problem:email-verification-required"
    );
    auth::verified(&app, "grace@example.com").await;

    let joined = accept(&app, &grace, &token).await;
    assert_eq!(joined.status, 200, "{}", joined.body);
    assert_eq!(joined.body, json!({"org_id": acme, "role": "admin"}));
    assert_eq!(role_of(&app, &acme, &grace).await.as_deref(), Some("admin"));
    let again = accept(&app, &grace, &token).await;
    assert_eq!(
        again.status, 200,
        "a retry answers the same: {}",
        again.body
    );
    let listed = call(
        &app,
        &ada,
        "GET",
        &format!("/orgs/{acme}/invitations"),
        None,
    )
    .await;
    assert_eq!(listed.body, json!([]), "no longer pending");

    // Someone else holding the token gets nothing.
    let bob = person(&app, "bob@example.com").await;
    let other = accept(&app, &bob, &token).await;
    assert_eq!(other.status, 403, "{}", other.body);
    assert_eq!(role_of(&app, &acme, &bob).await, None);
    // Inviting a member is a no-op: no row, no email.
    let member = invite(&app, &ada, &acme, "grace@example.com", "member").await;
    assert_eq!(
        (member.status, member.body["status"].as_str()),
        (200, Some("already_member"))
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM org_invitations WHERE org_id = '{acme}'"
        ))
        .await,
        1
    );
}

#[tokio::test]
async fn resending_rotates_the_token_and_revoking_ends_it() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let grace = person(&app, "grace@example.com").await;
    let acme = org(&app, &ada, "acme").await;
    assert_eq!(
        invite(&app, &ada, &acme, "grace@example.com", "member")
            .await
            .status,
        201
    );
    let first = invitation_token(&app, "grace@example.com", 1).await;
    let resent = invite(&app, &ada, &acme, "grace@example.com", "admin").await;
    assert_eq!(
        (resent.status, resent.body["status"].as_str()),
        (200, Some("resent")),
        "{}",
        resent.body
    );
    let second = invitation_token(&app, "grace@example.com", 2).await;
    assert_ne!(first, second);
    let stale = accept(&app, &grace, &first).await;
    assert_eq!(stale.status, 404, "{}", stale.body);
    assert_eq!(
        stale.problem_type(),
        "urn:ironclad:problem:invitation-not-found"
    );

    let listed = call(
        &app,
        &ada,
        "GET",
        &format!("/orgs/{acme}/invitations"),
        None,
    )
    .await;
    let pending = listed.body.as_array().unwrap();
    assert_eq!(pending.len(), 1, "one row, rotated: {}", listed.body);
    assert_eq!(pending[0]["role"], "admin");
    let id = pending[0]["id"].as_str().unwrap();
    let revoked = call(
        &app,
        &ada,
        "DELETE",
        &format!("/orgs/{acme}/invitations/{id}"),
        None,
    )
    .await;
    assert_eq!(revoked.status, 204, "{}", revoked.body);
    assert_eq!(accept(&app, &grace, &second).await.status, 404);
    assert_eq!(
        call(
            &app,
            &ada,
            "DELETE",
            &format!("/orgs/{acme}/invitations/{id}"),
            None
        )
        .await
        .status,
        404
    );
    assert_eq!(role_of(&app, &acme, &grace).await, None);
}

#[tokio::test]
async fn only_admins_invite_and_nobody_invites_an_owner() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let bob = person(&app, "bob@example.com").await;
    let acme = org(&app, &ada, "acme").await;
    join(&app, &acme, &bob, "member").await;
    let by_member = invite(&app, &bob, &acme, "x@example.com", "member").await;
    assert_eq!(by_member.status, 403, "{}", by_member.body);
    assert_eq!(
        call(
            &app,
            &bob,
            "GET",
            &format!("/orgs/{acme}/invitations"),
            None
        )
        .await
        .status,
        403
    );
    let owner = invite(&app, &ada, &acme, "x@example.com", "owner").await;
    assert_eq!(owner.status, 422, "{}", owner.body);
    let bad = invite(&app, &ada, &acme, "not an address", "member").await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(app.count("SELECT count(*) FROM org_invitations").await, 0);
}

#[tokio::test]
async fn two_accepts_at_once_make_one_membership() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let grace = person(&app, "grace@example.com").await;
    let (second_session, _) =
        auth::tokens_of(&auth::login(&app, "grace@example.com", auth::PASSWORD).await);
    let grace_too = Person {
        token: second_session,
        id: grace.id.clone(),
    };
    for round in 0..5 {
        let acme = org(&app, &ada, &format!("acme-{round}")).await;
        assert_eq!(
            invite(&app, &ada, &acme, "grace@example.com", "member")
                .await
                .status,
            201
        );
        let token = invitation_token(&app, "grace@example.com", round + 1).await;
        let (a, b) = tokio::join!(
            accept(&app, &grace, &token),
            accept(&app, &grace_too, &token)
        );
        assert_eq!((a.status, b.status), (200, 200), "{} / {}", a.body, b.body);
        assert_eq!(
            app.count(&format!("SELECT count(*) FROM org_audit WHERE org_id = '{acme}' AND action = 'invitation.accepted'")).await,
            1
        );
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) FROM org_members WHERE org_id = '{acme}'"
            ))
            .await,
            2
        );
    }
}

#[tokio::test]
async fn members_and_pending_invitations_stay_within_the_seat_limit() {
    let app = TestApp::spawn().await;
    let ada = person(&app, "ada@example.com").await;
    let grace = person(&app, "grace@example.com").await;
    let acme = org(&app, &ada, "acme").await;
    app.sql(&format!(
        "UPDATE orgs SET seat_limit = 2 WHERE id = '{acme}'"
    ))
    .await;
    assert_eq!(
        invite(&app, &ada, &acme, "grace@example.com", "member")
            .await
            .status,
        201
    );
    let full = invite(&app, &ada, &acme, "hopper@example.com", "member").await;
    assert_eq!(full.status, 402, "{}", full.body);
    assert_eq!(
        full.problem_type(),
        "urn:ironclad:problem:seat-limit-reached"
    );
    assert_eq!(full.body["seat_limit"], 2);
    // The plan shrinks before Grace accepts: her seat is gone.
    app.sql(&format!(
        "UPDATE orgs SET seat_limit = 1 WHERE id = '{acme}'"
    ))
    .await;
    let token = invitation_token(&app, "grace@example.com", 1).await;
    let refused = accept(&app, &grace, &token).await;
    assert_eq!(refused.status, 402, "{}", refused.body);
    app.sql(&format!(
        "UPDATE orgs SET seat_limit = 2 WHERE id = '{acme}'"
    ))
    .await;
    assert_eq!(accept(&app, &grace, &token).await.status, 200);
}

#[tokio::test]
async fn sending_invitations_is_rate_limited_per_inviter() {
    let app = TestApp::spawn_with(&[("ORG_INVITES_PER_INVITER_PER_HOUR", "2")]).await;
    let ada = person(&app, "ada@example.com").await;
    let acme = org(&app, &ada, "acme").await;
    assert_eq!(
        invite(&app, &ada, &acme, "a@example.com", "member")
            .await
            .status,
        201
    );
    assert_eq!(
        invite(&app, &ada, &acme, "a@example.com", "member")
            .await
            .status,
        200,
        "a resend counts"
    );
    let limited = invite(&app, &ada, &acme, "b@example.com", "member").await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    let retry: u64 = limited.header("retry-after").parse().unwrap();
    assert!((3500..=3600).contains(&retry), "{retry}");
    assert_eq!(app.count("SELECT count(*) FROM org_invitations").await, 1);
}
