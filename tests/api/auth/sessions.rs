//! Sessions: refresh rotation with reuse detection, logout of one or every session, listing and
//! ending sessions.
use serde_json::json;

use crate::support::{TestApp, auth::*};

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_session() {
    let app = TestApp::spawn().await;
    let (access, first) = signed_in(&app, "ada@example.com").await;

    let rotated = post(&app, "/auth/refresh", None, json!({"refresh_token": first})).await;
    let (new_access, second) = tokens_of(&rotated);
    assert_ne!(first, second);
    assert_eq!(claims(&new_access)["sid"], claims(&access)["sid"]);

    // The spent token replayed (stolen?): refused, and the whole session dies with it.
    let replay = post(&app, "/auth/refresh", None, json!({"refresh_token": first})).await;
    assert_eq!(replay.status, 401);
    assert_eq!(
        replay.problem_type(),
        "urn:ironclad:problem:invalid-refresh-token"
    );
    let after = post(
        &app,
        "/auth/refresh",
        None,
        json!({"refresh_token": second}),
    )
    .await;
    assert_eq!(after.status, 401, "the legitimate holder's token died too");
    let me = call(&app, "GET", "/me", Some(&new_access), None).await;
    assert_eq!(me.status, 401);
    assert_eq!(events(&app, "refresh_reuse_detected").await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM sessions WHERE revoked_reason = 'refresh_token_reuse'")
            .await,
        1
    );
    let unknown = post(
        &app,
        "/auth/refresh",
        None,
        json!({"refresh_token": "nope"}),
    )
    .await;
    assert_eq!(unknown.status, 401);
}

#[tokio::test]
async fn logout_ends_one_session_and_logout_all_ends_every_one() {
    let app = TestApp::spawn().await;
    let (a1, r1) = signed_in(&app, "ada@example.com").await;
    let (a2, r2) = tokens_of(&login(&app, "ada@example.com", PASSWORD).await);
    let (a3, r3) = tokens_of(&login(&app, "ada@example.com", PASSWORD).await);

    let out = post(&app, "/auth/logout", None, json!({"refresh_token": r1})).await;
    assert_eq!(out.status, 204);
    assert_eq!(
        post(&app, "/auth/refresh", None, json!({"refresh_token": r1}))
            .await
            .status,
        401
    );
    assert_eq!(call(&app, "GET", "/me", Some(&a1), None).await.status, 401);
    assert_eq!(call(&app, "GET", "/me", Some(&a2), None).await.status, 200);

    let no_token = call(&app, "POST", "/auth/logout-all", None, None).await;
    assert_eq!(no_token.status, 401);
    assert!(no_token.header("www-authenticate").starts_with("Bearer"));
    let all = call(&app, "POST", "/auth/logout-all", Some(&a2), None).await;
    assert_eq!(all.status, 204);
    for (access, refresh) in [(&a2, &r2), (&a3, &r3)] {
        assert_eq!(
            call(&app, "GET", "/me", Some(access), None).await.status,
            401
        );
        assert_eq!(
            post(
                &app,
                "/auth/refresh",
                None,
                json!({"refresh_token": refresh})
            )
            .await
            .status,
            401
        );
    }
    assert_eq!(events(&app, "logout").await, 1);
    assert_eq!(events(&app, "logout_all").await, 1);
}

#[tokio::test]
async fn sessions_can_be_listed_and_ended() {
    let app = TestApp::spawn().await;
    let (mine, _) = signed_in(&app, "ada@example.com").await;
    let (other, other_refresh) = tokens_of(&login(&app, "ada@example.com", PASSWORD).await);
    let (stranger, _) = signed_in(&app, "eve@example.com").await;

    let list = call(&app, "GET", "/me/sessions", Some(&mine), None).await;
    assert_eq!(list.status, 200);
    let sessions = list.body.as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], claims(&mine)["sid"]);

    let other_id = claims(&other)["sid"].as_str().unwrap().to_owned();
    let by_stranger = call(
        &app,
        "DELETE",
        &format!("/me/sessions/{other_id}"),
        Some(&stranger),
        None,
    )
    .await;
    assert_eq!(
        by_stranger.status, 404,
        "someone else's session is not found"
    );
    let ended = call(
        &app,
        "DELETE",
        &format!("/me/sessions/{other_id}"),
        Some(&mine),
        None,
    )
    .await;
    assert_eq!(ended.status, 204);
    assert_eq!(
        call(&app, "GET", "/me", Some(&other), None).await.status,
        401
    );
    assert_eq!(
        post(
            &app,
            "/auth/refresh",
            None,
            json!({"refresh_token": other_refresh})
        )
        .await
        .status,
        401
    );
    let list = call(&app, "GET", "/me/sessions", Some(&mine), None).await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    assert_eq!(events(&app, "session_revoked").await, 1);
}
