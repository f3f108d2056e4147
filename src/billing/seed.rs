//! The demo catalogue a fresh clone sells: three products and two plans, with fixed ids so docs
//! and tests can name them. `ironclad seed` adds it (see `startup::seed`); every statement skips
//! rows that exist, so seeding twice changes nothing and edits made since are kept. Replace these
//! rows with your own products and plans (or seed from your admin tool).
use sea_orm::{ConnectionTrait, DbErr};

pub const DEMO_CATALOGUE: &str = r#"
INSERT INTO products (id, slug, name, description, seats) VALUES
    ('0193a4c0-0000-7000-8000-000000000001', 'ironclad-pro', 'Ironclad Pro',
     'Perpetual licence for one developer, with a year of updates.', 1),
    ('0193a4c0-0000-7000-8000-000000000002', 'ironclad-team', 'Ironclad Team',
     'Perpetual licence for a team of five developers, with a year of updates.', 5),
    ('0193a4c0-0000-7000-8000-000000000003', 'ironclad-support', 'Priority support',
     'One year of priority email support.', 1)
ON CONFLICT DO NOTHING;

INSERT INTO prices (product_id, currency, unit_amount) VALUES
    ('0193a4c0-0000-7000-8000-000000000001', 'usd', 4900),
    ('0193a4c0-0000-7000-8000-000000000001', 'eur', 4500),
    ('0193a4c0-0000-7000-8000-000000000002', 'usd', 19900),
    ('0193a4c0-0000-7000-8000-000000000002', 'eur', 18500),
    ('0193a4c0-0000-7000-8000-000000000003', 'usd', 9900)
ON CONFLICT DO NOTHING;

INSERT INTO plans (key, name, description, trial_days, features, max_seats, sort_order) VALUES
    ('starter', 'Starter', 'For small teams getting going.', 14,
     '{projects}', 5, 1),
    ('business', 'Business', 'Audit log, SSO-ready and priority support.', 14,
     '{projects,audit_log,priority_support}', 100, 2)
ON CONFLICT DO NOTHING;

INSERT INTO plan_prices (plan_key, interval, stripe_price_id, unit_amount, currency) VALUES
    ('starter', 'month', 'price_demo_starter_month', 900, 'usd'),
    ('starter', 'year', 'price_demo_starter_year', 9000, 'usd'),
    ('business', 'month', 'price_demo_business_month', 2900, 'usd'),
    ('business', 'year', 'price_demo_business_year', 29000, 'usd')
ON CONFLICT DO NOTHING;
"#;

/// Adds the demo catalogue's missing rows.
pub async fn demo_catalogue(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    db.execute_unprepared(DEMO_CATALOGUE).await.map(drop)
}
