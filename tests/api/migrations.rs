//! Migrations that move data, run on data: `m20261202_000080_org_billing` moves orders, licences
//! and the billing email from the account to its personal organisation, and back down. And the
//! schema commands: the seed, `migrate fresh`, `refresh` and `reset`.
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::support::app::{drop_database, empty_database};

/// The first column of `sql`'s one row.
async fn first<T: sea_orm::TryGetable>(db: &DatabaseConnection, sql: &str) -> T {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            sql.to_owned(),
        ))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("a row");
    row.try_get_by_index::<T>(0).unwrap()
}

async fn one(db: &DatabaseConnection, sql: &str) -> String {
    first(db, sql).await
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    first(db, sql).await
}

#[tokio::test]
async fn org_billing_moves_a_users_orders_licences_and_billing_email_to_their_personal_org() {
    let (name, db) = empty_database().await;
    let all = Migrator::migrations().len();
    let index = Migrator::migrations()
        .iter()
        .position(|m| m.name() == "m20261202_000080_org_billing")
        .expect("the migration is listed");
    Migrator::up(&db, Some(index as u32)).await.unwrap();
    db.execute_unprepared(
        "INSERT INTO products (id, slug, name, description, seats)
             VALUES ('0193a4c0-0000-7000-8000-000000000001', 'pro', 'Pro', '', 1);
         INSERT INTO users (id, email, password_hash, billing_email)
             VALUES ('0193a4b0-0000-7000-8000-0000000000aa', 'ada@example.com', 'x', 'books@example.com');
         INSERT INTO orders (id, user_id, checkout_key, currency, amount_total, status)
             VALUES ('0193a4c1-0000-7000-8000-0000000000a1', '0193a4b0-0000-7000-8000-0000000000aa',
                     'k', 'usd', 4900, 'fulfilled');
         INSERT INTO order_lines (id, order_id, product_id, product_name, unit_amount, quantity, seats)
             VALUES ('0193a4c1-0000-7000-8000-0000000000b1', '0193a4c1-0000-7000-8000-0000000000a1',
                     '0193a4c0-0000-7000-8000-000000000001', 'Ironclad Pro', 4900, 1, 1);
         INSERT INTO licenses (id, order_line_id, order_id, user_id, product_id, license_key, seats)
             VALUES (gen_random_uuid(), '0193a4c1-0000-7000-8000-0000000000b1',
                     '0193a4c1-0000-7000-8000-0000000000a1', '0193a4b0-0000-7000-8000-0000000000aa',
                     '0193a4c0-0000-7000-8000-000000000001', 'IRON-AAAA-AAAA-AAAA-AAAA', 1);",
    )
    .await
    .unwrap();

    Migrator::up(&db, None).await.unwrap();
    assert_eq!(
        Migrator::get_applied_migrations(&db).await.unwrap().len(),
        all
    );
    let personal =
        "(SELECT id FROM orgs WHERE personal_for = '0193a4b0-0000-7000-8000-0000000000aa')";
    assert_eq!(
        one(
            &db,
            &format!(
                "SELECT (org_id = {personal} AND placed_by = '0193a4b0-0000-7000-8000-0000000000aa' \
                   AND placed_by_key IS NULL)::text FROM orders"
            )
        )
        .await,
        "true"
    );
    assert_eq!(
        one(
            &db,
            &format!("SELECT (org_id = {personal})::text FROM licenses")
        )
        .await,
        "true"
    );
    assert_eq!(
        one(
            &db,
            &format!("SELECT billing_email FROM org_billing WHERE org_id = {personal}")
        )
        .await,
        "books@example.com"
    );

    // And back (through every later migration): the account has its orders, licences and
    // billing email again.
    Migrator::down(&db, Some((all - index) as u32))
        .await
        .unwrap();
    assert_eq!(
        one(
            &db,
            "SELECT (o.user_id = l.user_id AND u.billing_email = 'books@example.com')::text \
             FROM orders o JOIN licenses l ON l.order_id = o.id JOIN users u ON u.id = o.user_id"
        )
        .await,
        "true"
    );
    db.close().await.unwrap();
    drop_database(&name).await;
}

/// `ironclad seed` twice, then `migrate fresh` and `refresh`: the seed adds what is missing and
/// nothing more, the demo account signs in, and a fresh schema has everything but the data.
#[tokio::test]
async fn the_seed_is_idempotent_and_fresh_and_refresh_rebuild_the_schema() {
    use ironclad::{config::Environment, startup::seed};
    let (name, db) = empty_database().await;
    let all = Migrator::migrations().len();
    Migrator::up(&db, None).await.unwrap();
    assert_eq!(
        count(&db, "SELECT count(*) FROM products").await,
        0,
        "no demo rows in migrations"
    );

    let first = seed::run(&db, Environment::Development, "Ironclad")
        .await
        .unwrap();
    assert!(first.demo_user.is_some());
    db.execute_unprepared("UPDATE products SET name = 'Renamed' WHERE slug = 'ironclad-pro'")
        .await
        .unwrap();
    let again = seed::run(&db, Environment::Development, "Ironclad")
        .await
        .unwrap();
    assert!(again.demo_user.is_none(), "the demo account exists already");
    let seeded = "SELECT (SELECT count(*) FROM products) * 1000 + (SELECT count(*) FROM plans) * 100 \
         + (SELECT count(*) FROM usage_meters) * 10 + (SELECT count(*) FROM users)";
    assert_eq!(count(&db, seeded).await, 3221);
    assert_eq!(
        count(&db, "SELECT count(*) FROM products WHERE name = 'Renamed'").await,
        1,
        "an edited row is kept"
    );
    let verified = "SELECT count(*) FROM users WHERE email = 'demo@example.com' \
         AND email_verified_at IS NOT NULL AND role = 'user'";
    assert_eq!(count(&db, verified).await, 1);
    // Outside development there is no demo account; in production, no seed at all.
    let tested = seed::run(&db, Environment::Test, "Ironclad").await.unwrap();
    assert!(tested.demo_user.is_none());
    let refused = seed::run(&db, Environment::Production, "Ironclad").await;
    assert!(refused.is_err(), "seeding production is refused");

    migration::fresh(&db).await.unwrap();
    assert_eq!(
        Migrator::get_applied_migrations(&db).await.unwrap().len(),
        all
    );
    assert_eq!(count(&db, "SELECT count(*) FROM products").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM users").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM apalis.jobs").await, 0);
    seed::demo_data(&db).await.unwrap();
    Migrator::refresh(&db).await.unwrap();
    assert_eq!(
        Migrator::get_applied_migrations(&db).await.unwrap().len(),
        all
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM plans").await,
        0,
        "refresh dropped the data"
    );
    Migrator::reset(&db).await.unwrap();
    let tables = "SELECT count(*) FROM pg_tables WHERE schemaname IN ('public', 'apalis')";
    assert_eq!(count(&db, tables).await, 0, "reset leaves no table");
    db.close().await.unwrap();
    drop_database(&name).await;
}
