//! Which period a meter counts in, and what it may use there: pure, decided from the meter's
//! rule, the org's subscription (our copy) and the time.
//!
//! - A plan's `billing` meter counts in the subscription's current period; a `day` meter in the
//!   calendar day (UTC).
//! - An org whose subscription grants nothing (none, ended, unpaid) gets the meter's free
//!   allowance, per calendar `day` or `month`, always `hard`.
//!
//! The period's start is part of the counter's key, so a new period is a new counter: nothing
//! has to reset it, and a reserve racing a period change counts in one period or the other.
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

/// A meter's period rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The subscription's period (a calendar month when it has none).
    Billing,
    Day,
    Month,
}

impl Rule {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "billing" => Some(Self::Billing),
            "day" => Some(Self::Day),
            "month" => Some(Self::Month),
            _ => None,
        }
    }
}

/// What happens past the included amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overage {
    /// Refused past the limit.
    Hard,
    /// Allowed; the excess is billed through Stripe.
    Metered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// What one org may use of one meter now: the counter's key and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub org_id: uuid::Uuid,
    pub meter: String,
    pub period: Period,
    /// What the plan (or the free allowance) includes.
    pub included: i64,
    pub overage: Overage,
    /// A cap on the calling member's share, when an admin set one.
    pub member_cap: Option<i64>,
}

impl Budget {
    /// What reserves are held to: the included amount, or nothing for metered overage.
    pub fn limit(&self) -> Option<i64> {
        match self.overage {
            Overage::Hard => Some(self.included),
            Overage::Metered => None,
        }
    }
}

/// The period containing `now` under `rule`. `subscription` is the subscription's current
/// period, used by [`Rule::Billing`] while `now` lies in it.
pub fn period(rule: Rule, subscription: Option<Period>, now: DateTime<Utc>) -> Period {
    match (rule, subscription) {
        (Rule::Billing, Some(p)) if p.start <= now && now < p.end => p,
        // A copy whose period is over (a renewal not heard of yet) keeps counting in it until
        // the policy stops granting: the renewal's new period then starts a new counter.
        (Rule::Billing, Some(p)) if p.start <= now => p,
        (Rule::Day, _) => {
            let start = midnight(now.date_naive());
            Period {
                start,
                end: start + Duration::days(1),
            }
        }
        (Rule::Billing | Rule::Month, _) => {
            let first = NaiveDate::from_ymd_opt(now.year(), now.month(), 1).expect("a month");
            let next = first
                .checked_add_months(chrono::Months::new(1))
                .expect("a month");
            Period {
                start: midnight(first),
                end: midnight(next),
            }
        }
    }
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_billing_meter_counts_in_the_subscriptions_period() {
        let sub = Period {
            start: at("2026-11-15T10:00:00Z"),
            end: at("2026-12-15T10:00:00Z"),
        };
        assert_eq!(
            period(Rule::Billing, Some(sub), at("2026-12-03T00:00:00Z")),
            sub
        );
        // Over, not renewed yet: still that period.
        assert_eq!(
            period(Rule::Billing, Some(sub), at("2026-12-15T11:00:00Z")),
            sub
        );
    }

    #[test]
    fn without_a_subscription_billing_and_month_are_the_calendar_month() {
        let p = period(Rule::Billing, None, at("2026-12-31T23:59:59Z"));
        assert_eq!(p.start, at("2026-12-01T00:00:00Z"));
        assert_eq!(p.end, at("2027-01-01T00:00:00Z"));
        assert_eq!(
            period(Rule::Month, None, at("2026-02-10T00:00:00Z")).end,
            at("2026-03-01T00:00:00Z")
        );
        // A subscription period that has not started yet is not ours to count in.
        let future = Period {
            start: at("2027-01-01T00:00:00Z"),
            end: at("2027-02-01T00:00:00Z"),
        };
        assert_eq!(
            period(Rule::Billing, Some(future), at("2026-12-05T00:00:00Z")),
            p
        );
    }

    #[test]
    fn a_day_meter_counts_in_the_utc_day_whatever_the_subscription() {
        let sub = Period {
            start: at("2026-11-15T10:00:00Z"),
            end: at("2026-12-15T10:00:00Z"),
        };
        let p = period(Rule::Day, Some(sub), at("2026-12-03T17:30:00Z"));
        assert_eq!(p.start, at("2026-12-03T00:00:00Z"));
        assert_eq!(p.end, at("2026-12-04T00:00:00Z"));
    }

    #[test]
    fn metered_overage_has_no_limit() {
        let mut budget = Budget {
            org_id: uuid::Uuid::nil(),
            meter: "ai_tokens".into(),
            period: period(Rule::Day, None, at("2026-12-03T00:00:00Z")),
            included: 100,
            overage: Overage::Hard,
            member_cap: None,
        };
        assert_eq!(budget.limit(), Some(100));
        budget.overage = Overage::Metered;
        assert_eq!(budget.limit(), None);
    }
}
