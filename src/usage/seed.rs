//! The demo meters (`ai_tokens`, counted by the AI example, and `api_calls`) and what the demo
//! plans include of them. Run after the billing demo catalogue (the plans must exist); every
//! statement skips rows that exist.
use sea_orm::{ConnectionTrait, DbErr};

pub const DEMO_METERS: &str = r#"
INSERT INTO usage_meters (key, name, unit, free_included, free_period, stripe_event_name) VALUES
    ('ai_tokens', 'AI tokens', 'tokens', 10000, 'month', 'ironclad_ai_tokens'),
    ('api_calls', 'API calls', 'calls', 1000, 'day', NULL)
ON CONFLICT DO NOTHING;

INSERT INTO plan_meters (plan_key, meter, included, period, overage) VALUES
    ('starter', 'ai_tokens', 200000, 'billing', 'hard'),
    ('starter', 'api_calls', 10000, 'day', 'hard'),
    ('business', 'ai_tokens', 2000000, 'billing', 'metered'),
    ('business', 'api_calls', 100000, 'day', 'hard')
ON CONFLICT DO NOTHING;
"#;

/// Adds the demo meters' missing rows.
pub async fn demo_meters(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    db.execute_unprepared(DEMO_METERS).await.map(drop)
}
