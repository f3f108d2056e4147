//! Unit tests of the guards' pure checks (`guard.rs`).
use super::*;

fn account(mfa_enabled: bool, verified: bool, role: Role) -> UserRow {
    UserRow {
        id: Uuid::new_v4(),
        email: "ada@example.com".into(),
        password_hash: String::new(),
        role,
        email_verified_at: verified.then(Utc::now),
        created_at: Utc::now(),
        mfa_enabled,
    }
}

fn user(aal: Aal, mfa_ago: Option<i64>) -> AuthUser {
    AuthUser {
        user_id: Uuid::new_v4(),
        session_id: Uuid::new_v4(),
        aal,
        amr: aal.amr(),
        mfa_at: mfa_ago.map(|s| Utc::now() - chrono::Duration::seconds(s)),
        account: account(true, true, Role::User),
    }
}

const WINDOW: Duration = Duration::from_secs(300);

#[test]
fn fresh_aal2_passes() {
    assert!(check_mfa(&user(Aal::Aal2, Some(10)), WINDOW, Utc::now()).is_ok());
}

#[test]
fn without_mfa_enrolment_is_required() {
    let mut u = user(Aal::Aal2, Some(10));
    u.account.mfa_enabled = false;
    assert!(matches!(
        check_mfa(&u, WINDOW, Utc::now()),
        Err(AuthError::MfaEnrolmentRequired)
    ));
}

#[test]
fn aal1_stale_or_future_mfa_needs_step_up_with_the_route_window() {
    for u in [
        user(Aal::Aal1, None),
        user(Aal::Aal2, Some(301)),
        user(Aal::Aal2, Some(-60)),
        user(Aal::Aal2, None),
    ] {
        match check_mfa(&u, WINDOW, Utc::now()) {
            Err(AuthError::MfaRequired { max_age }) => assert_eq!(max_age, WINDOW),
            other => panic!("{u:?}: {other:?}"),
        }
    }
}

#[test]
fn when_enrolled_the_step_up_is_needed_and_otherwise_not() {
    let mut u = user(Aal::Aal1, None);
    assert!(matches!(
        Policy::MfaWhenEnrolled(WINDOW).check(&u, Utc::now()),
        Err(AuthError::MfaRequired { .. })
    ));
    u.account.mfa_enabled = false;
    assert!(
        Policy::MfaWhenEnrolled(WINDOW)
            .check(&u, Utc::now())
            .is_ok()
    );
    assert!(matches!(
        Policy::Mfa(WINDOW).check(&u, Utc::now()),
        Err(AuthError::MfaEnrolmentRequired)
    ));
}

#[test]
fn roles_are_checked_against_the_current_account() {
    let mut u = user(Aal::Aal2, Some(10));
    assert!(matches!(
        Policy::Role(Role::Admin).check(&u, Utc::now()),
        Err(AuthError::Forbidden(_))
    ));
    u.account.role = Role::Admin;
    assert!(Policy::Role(Role::Admin).check(&u, Utc::now()).is_ok());
}

#[test]
fn an_unverified_email_is_refused_whatever_the_session() {
    let mut u = user(Aal::Aal2, Some(10));
    assert!(Policy::VerifiedEmail.check(&u, Utc::now()).is_ok());
    u.account = account(true, false, Role::Admin);
    assert!(matches!(
        Policy::VerifiedEmail.check(&u, Utc::now()),
        Err(AuthError::EmailVerificationRequired)
    ));
}
