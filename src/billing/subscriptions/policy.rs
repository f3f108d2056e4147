//! Entitlements and the billing banner, decided from our copy of the org's subscription and the
//! time. Pure: one table over status × time, tested exhaustively, never a Stripe call.
//!
//! - `trialing` and `active` grant, `active` with `cancel_at_period_end` too, until the period (or
//!   trial) ends — plus [`RENEWAL_LEEWAY`], the time Stripe takes to renew. A period long over
//!   means a renewal we never heard of (dj-stripe issue 1010): our copy is stale, the
//!   reconciliation sweep re-reads it, and until then nothing is granted.
//! - `past_due` grants for the configured grace, counted from when it became past due, so a
//!   failed renewal (or one waiting for SCA, cashier issue 1454) does not lock a team out at once.
//! - Everything else denies.
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::facts::SubscriptionStatus;

/// How long after its period ends an unrenewed copy still grants: Stripe renews at the period's
/// end, and its events take a moment.
pub const RENEWAL_LEEWAY: Duration = Duration::hours(24);

/// What the policy reads of the org's subscription (our copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub status: SubscriptionStatus,
    pub status_since: DateTime<Utc>,
    pub period_end: Option<DateTime<Utc>>,
    pub trial_end: Option<DateTime<Utc>>,
    /// The features its plan grants (none for a price that is not one of our plans).
    pub features: Vec<String>,
    pub quantity: i32,
    pub action_required: bool,
}

/// Why a feature is refused (a 402 problem of that type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No subscription, or one that ended, never started or is paused.
    SubscriptionRequired,
    /// Past due beyond the grace, or unpaid.
    PaymentPastDue,
    /// Subscribed, on a plan without this feature.
    FeatureNotInPlan,
}

impl Refusal {
    pub fn problem_type(self) -> &'static str {
        match self {
            Self::SubscriptionRequired => "urn:ironclad:problem:subscription-required",
            Self::PaymentPastDue => "urn:ironclad:problem:payment-past-due",
            Self::FeatureNotInPlan => "urn:ironclad:problem:feature-not-in-plan",
        }
    }
}

/// Whether the subscription grants anything at `now`.
pub fn access(
    standing: Option<&Standing>,
    now: DateTime<Utc>,
    grace: Duration,
) -> Result<(), Refusal> {
    use SubscriptionStatus as S;
    let Some(s) = standing else {
        return Err(Refusal::SubscriptionRequired);
    };
    let until = |end: Option<DateTime<Utc>>| end.is_none_or(|end| now < end + RENEWAL_LEEWAY);
    match s.status {
        S::Trialing if until(s.trial_end.or(s.period_end)) => Ok(()),
        S::Active if until(s.period_end) => Ok(()),
        S::PastDue if now < s.status_since + grace => Ok(()),
        S::PastDue | S::Unpaid => Err(Refusal::PaymentPastDue),
        S::Trialing | S::Active => Err(Refusal::SubscriptionRequired),
        S::Incomplete | S::IncompleteExpired | S::Canceled | S::Paused => {
            Err(Refusal::SubscriptionRequired)
        }
    }
}

/// Whether the subscription grants `feature` at `now`.
pub fn entitled(
    standing: Option<&Standing>,
    feature: &str,
    now: DateTime<Utc>,
    grace: Duration,
) -> Result<(), Refusal> {
    access(standing, now, grace)?;
    match standing {
        Some(s) if s.features.iter().any(|f| f == feature) => Ok(()),
        _ => Err(Refusal::FeatureNotInPlan),
    }
}

/// What the app's billing banner shows, derived from the copy (never stored apart from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BillingStatus {
    /// Never subscribed.
    None,
    Ok,
    PastDue,
    /// A payment waits for the customer to authenticate (SCA).
    ActionRequired,
    Unpaid,
    Canceled,
    /// Fewer seats than members (seats were lowered elsewhere, e.g. in the Stripe portal):
    /// invitations are blocked until seats are added or members leave.
    OverSeatLimit,
}

pub fn billing_status(standing: Option<&Standing>, members: i64) -> BillingStatus {
    use SubscriptionStatus as S;
    let Some(s) = standing else {
        return BillingStatus::None;
    };
    match s.status {
        _ if s.action_required && !s.status.is_terminal() => BillingStatus::ActionRequired,
        S::PastDue => BillingStatus::PastDue,
        S::Unpaid => BillingStatus::Unpaid,
        S::Canceled | S::IncompleteExpired | S::Paused => BillingStatus::Canceled,
        S::Incomplete => BillingStatus::ActionRequired,
        S::Trialing | S::Active if members > i64::from(s.quantity) => BillingStatus::OverSeatLimit,
        S::Trialing | S::Active => BillingStatus::Ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).unwrap() + Duration::hours(hours)
    }

    const GRACE: Duration = Duration::days(7);

    fn standing(status: SubscriptionStatus) -> Standing {
        Standing {
            status,
            status_since: at(0),
            period_end: Some(at(30 * 24)),
            trial_end: None,
            features: vec!["projects".into()],
            quantity: 3,
            action_required: false,
        }
    }

    /// The whole table: every status, at the start of the period, after it ended (within and
    /// beyond the leeway), and within and beyond the past-due grace.
    #[test]
    fn access_over_every_status_and_time() {
        use SubscriptionStatus as S;
        let granted = Ok(());
        let required = Err(Refusal::SubscriptionRequired);
        let past_due = Err(Refusal::PaymentPastDue);
        let period_end = 30 * 24;
        let times = [1, period_end + 1, period_end + 25, 7 * 24 - 1, 7 * 24 + 1];
        #[rustfmt::skip]
        let table = [
            (S::Trialing,          [granted, granted, required, granted, granted]),
            (S::Active,            [granted, granted, required, granted, granted]),
            (S::PastDue,           [granted, past_due, past_due, granted, past_due]),
            (S::Unpaid,            [past_due; 5]),
            (S::Incomplete,        [required; 5]),
            (S::IncompleteExpired, [required; 5]),
            (S::Canceled,          [required; 5]),
            (S::Paused,            [required; 5]),
        ];
        assert_eq!(table.len(), S::ALL.len());
        for (status, expected) in table {
            for (hours, want) in times.into_iter().zip(expected) {
                let s = standing(status);
                assert_eq!(
                    access(Some(&s), at(hours), GRACE),
                    want,
                    "{status:?} at +{hours}h"
                );
            }
        }
        assert_eq!(access(None, at(1), GRACE), required);
    }

    #[test]
    fn cancel_at_period_end_grants_until_the_period_ends() {
        // Cancel-at-period-end leaves the status `active` until the end: the period decides.
        let s = standing(SubscriptionStatus::Active);
        assert_eq!(access(Some(&s), at(30 * 24 - 1), GRACE), Ok(()));
        assert_eq!(
            access(Some(&s), at(31 * 24 + 1), GRACE),
            Err(Refusal::SubscriptionRequired)
        );
    }

    #[test]
    fn a_trial_grants_until_its_end_not_the_period() {
        let mut s = standing(SubscriptionStatus::Trialing);
        s.trial_end = Some(at(14 * 24));
        assert_eq!(access(Some(&s), at(14 * 24 + 23), GRACE), Ok(()));
        assert_eq!(
            access(Some(&s), at(15 * 24 + 1), GRACE),
            Err(Refusal::SubscriptionRequired)
        );
    }

    #[test]
    fn features_come_from_the_plan_once_access_is_granted() {
        let s = standing(SubscriptionStatus::Active);
        assert_eq!(entitled(Some(&s), "projects", at(1), GRACE), Ok(()));
        assert_eq!(
            entitled(Some(&s), "audit_log", at(1), GRACE),
            Err(Refusal::FeatureNotInPlan)
        );
        let canceled = standing(SubscriptionStatus::Canceled);
        assert_eq!(
            entitled(Some(&canceled), "projects", at(1), GRACE),
            Err(Refusal::SubscriptionRequired)
        );
        assert_eq!(
            entitled(None, "projects", at(1), GRACE),
            Err(Refusal::SubscriptionRequired)
        );
    }

    #[test]
    fn the_banner_over_every_status() {
        use SubscriptionStatus as S;
        #[rustfmt::skip]
        let table = [
            (S::Trialing, BillingStatus::Ok),
            (S::Active, BillingStatus::Ok),
            (S::PastDue, BillingStatus::PastDue),
            (S::Unpaid, BillingStatus::Unpaid),
            (S::Incomplete, BillingStatus::ActionRequired),
            (S::IncompleteExpired, BillingStatus::Canceled),
            (S::Canceled, BillingStatus::Canceled),
            (S::Paused, BillingStatus::Canceled),
        ];
        assert_eq!(table.len(), S::ALL.len());
        for (status, want) in table {
            assert_eq!(
                billing_status(Some(&standing(status)), 3),
                want,
                "{status:?}"
            );
        }
        assert_eq!(billing_status(None, 1), BillingStatus::None);
        let mut sca = standing(S::PastDue);
        sca.action_required = true;
        assert_eq!(billing_status(Some(&sca), 3), BillingStatus::ActionRequired);
        let mut ended = standing(S::Canceled);
        ended.action_required = true;
        assert_eq!(billing_status(Some(&ended), 3), BillingStatus::Canceled);
        let active = standing(S::Active);
        assert_eq!(
            billing_status(Some(&active), 4),
            BillingStatus::OverSeatLimit
        );
        assert_eq!(billing_status(Some(&active), 3), BillingStatus::Ok);
    }
}
