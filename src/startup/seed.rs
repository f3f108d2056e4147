//! `ironclad seed`: each layer's demo data and, in development, a verified demo account to sign in
//! with. Everything it adds is skipped when present, so it runs on every `just dev`. The test
//! template and the bench seed with [`demo_data`], the same rows.
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use uuid::Uuid;

use crate::{
    auth::{
        domain::Role,
        dto::{Credentials, NewAccount},
        users,
    },
    billing,
    config::Environment,
    usage,
};

/// The development demo account (README: "Quickstart").
pub const DEMO_EMAIL: &str = "demo@example.com";
pub const DEMO_PASSWORD: &str = "ironclad-demo-password";

/// What a seed run did.
#[derive(Debug)]
pub struct Seeded {
    /// The demo account, when this run made it (`None`: it existed, or not development).
    pub demo_user: Option<Uuid>,
}

/// Every layer's demo rows, in one transaction (billing's catalogue first: usage's plan meters
/// name its plans).
pub async fn demo_data(db: &DatabaseConnection) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    billing::seed::demo_catalogue(&txn).await?;
    usage::seed::demo_meters(&txn).await?;
    txn.commit().await
}

/// `ironclad seed`. Refuses in production: demo products and a known password have no place there.
/// `issuer` is the TOTP issuer the account rules check passwords against (`AUTH_TOTP_ISSUER`).
pub async fn run(
    db: &DatabaseConnection,
    env: Environment,
    issuer: &str,
) -> anyhow::Result<Seeded> {
    anyhow::ensure!(
        env != Environment::Production,
        "refusing to seed demo data in production (APP_ENV=production)"
    );
    demo_data(db).await?;
    let demo_user = if env == Environment::Development {
        let credentials = Credentials {
            email: DEMO_EMAIL.into(),
            password: DEMO_PASSWORD.to_owned().into(),
        };
        let account = NewAccount::parse(&credentials, issuer)?;
        users::create_verified(db, account, Role::User, "seed").await?
    } else {
        None
    };
    Ok(Seeded { demo_user })
}
