//! The order state machine: pure, no I/O, so every state × event pair is covered by unit tests.
//!
//! Stripe delivers events at least once and in no particular order, so [`transition`] never trusts
//! arrival order. It only ever moves an order *forward* (see [`OrderStatus::rank`]); an event that
//! would move it back, or that repeats what already happened, is `Ignored` (benign: a duplicate or a
//! stale event) or `Rejected` (contradictory: flagged for a human). Every outcome is recorded in
//! `order_events`, so the trail explains each order.
//!
//! | from \ event        | completed (paid) | completed (unpaid) | async ok | async failed | attempt failed | expired | refunded (full) | dispute | licence delivered | cancel |
//! |---------------------|------------------|--------------------|----------|--------------|----------------|---------|-----------------|---------|-------------------|--------|
//! | pending_payment     | paid             | payment_processing | paid     | payment_failed | ignored      | expired | refunded        | disputed| rejected          | canceled |
//! | payment_processing  | paid             | ignored            | paid     | payment_failed | payment_failed | ignored | refunded      | disputed| rejected          | rejected |
//! | paid                | ignored          | ignored            | ignored  | rejected     | ignored        | ignored | refunded        | disputed| fulfilled         | rejected |
//! | fulfilled           | ignored          | ignored            | ignored  | rejected     | ignored        | ignored | refunded        | disputed| ignored           | rejected |
//! | expired, payment_failed, canceled | rejected | ignored   | rejected | ignored      | ignored        | ignored | ignored         | ignored | ignored           | ignored |
//! | refunded, disputed  | ignored (terminal: nothing leaves it)                                                                                   ||||||||||
//!
//! A partial refund is always ignored (the licence stays valid). Why some cells are what they are:
//! - `refunded`/`disputed` from `pending_payment`: a refund or dispute proves a charge happened, so
//!   the `completed` event is merely late; the order goes straight to its final state and the late
//!   `completed` is then ignored — no licence is ever issued for money that was returned.
//! - A failed attempt while `pending_payment` is ignored: within a Checkout Session the customer can
//!   try another card; only the session's own outcome (expired / async failed) closes the order.
//! - Payment reported for an `expired`/`payment_failed`/`canceled` order is rejected, not applied:
//!   Stripe should never do that, and a human must refund it.
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Created; the customer has a Checkout Session to pay in.
    PendingPayment,
    /// Checkout completed with a delayed payment method (SEPA, ACH...): waiting for the money.
    PaymentProcessing,
    /// Paid; the licence is being delivered.
    Paid,
    /// Paid and the licence delivered.
    Fulfilled,
    PaymentFailed,
    /// The Checkout Session expired unpaid.
    Expired,
    /// Canceled by the customer before paying.
    Canceled,
    Refunded,
    Disputed,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 9] = [
        Self::PendingPayment,
        Self::PaymentProcessing,
        Self::Paid,
        Self::Fulfilled,
        Self::PaymentFailed,
        Self::Expired,
        Self::Canceled,
        Self::Refunded,
        Self::Disputed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingPayment => "pending_payment",
            Self::PaymentProcessing => "payment_processing",
            Self::Paid => "paid",
            Self::Fulfilled => "fulfilled",
            Self::PaymentFailed => "payment_failed",
            Self::Expired => "expired",
            Self::Canceled => "canceled",
            Self::Refunded => "refunded",
            Self::Disputed => "disputed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// A closed order: no event moves it anywhere.
    pub fn is_terminal(self) -> bool {
        self.rank() == Self::TERMINAL_RANK
    }

    const TERMINAL_RANK: u8 = 4;

    /// Position along the one road every order travels. Transitions only go to a higher rank.
    pub fn rank(self) -> u8 {
        match self {
            Self::PendingPayment => 0,
            Self::PaymentProcessing => 1,
            Self::Paid => 2,
            Self::Fulfilled => 3,
            Self::PaymentFailed
            | Self::Expired
            | Self::Canceled
            | Self::Refunded
            | Self::Disputed => Self::TERMINAL_RANK,
        }
    }
}

/// What can happen to an order, whatever reported it (a Stripe event, a job, the customer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderEvent {
    /// `checkout.session.completed`; `paid` is false for delayed payment methods.
    CheckoutCompleted { paid: bool },
    /// `checkout.session.async_payment_succeeded`
    AsyncPaymentSucceeded,
    /// `checkout.session.async_payment_failed`
    AsyncPaymentFailed,
    /// `payment_intent.payment_failed`: one payment attempt failed.
    PaymentAttemptFailed,
    /// `checkout.session.expired`
    SessionExpired,
    /// `charge.refunded`; `full` when the whole charge was refunded.
    Refunded { full: bool },
    /// `charge.dispute.created`
    DisputeOpened,
    /// Our delivery job created the licences.
    LicenseDelivered,
    /// The customer canceled before paying.
    CancelRequested,
}

impl OrderEvent {
    pub const ALL: [OrderEvent; 11] = [
        Self::CheckoutCompleted { paid: true },
        Self::CheckoutCompleted { paid: false },
        Self::AsyncPaymentSucceeded,
        Self::AsyncPaymentFailed,
        Self::PaymentAttemptFailed,
        Self::SessionExpired,
        Self::Refunded { full: true },
        Self::Refunded { full: false },
        Self::DisputeOpened,
        Self::LicenseDelivered,
        Self::CancelRequested,
    ];

    /// The name recorded in the audit trail.
    pub fn name(self) -> &'static str {
        match self {
            Self::CheckoutCompleted { paid: true } => "checkout_completed_paid",
            Self::CheckoutCompleted { paid: false } => "checkout_completed_unpaid",
            Self::AsyncPaymentSucceeded => "async_payment_succeeded",
            Self::AsyncPaymentFailed => "async_payment_failed",
            Self::PaymentAttemptFailed => "payment_attempt_failed",
            Self::SessionExpired => "session_expired",
            Self::Refunded { full: true } => "refunded",
            Self::Refunded { full: false } => "partially_refunded",
            Self::DisputeOpened => "dispute_opened",
            Self::LicenseDelivered => "license_delivered",
            Self::CancelRequested => "cancel_requested",
        }
    }

    /// Proof that the customer's money arrived.
    fn proves_payment(self) -> bool {
        matches!(
            self,
            Self::CheckoutCompleted { paid: true } | Self::AsyncPaymentSucceeded
        )
    }
}

/// Follow-up work a transition calls for; each becomes a job enqueued in the same transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    DeliverLicense,
    SendReceipt,
    RevokeLicenses,
    SuspendLicenses,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied {
        to: OrderStatus,
        effects: Vec<Effect>,
    },
    /// Benign: a duplicate or a stale event. Recorded, nothing changes.
    Ignored { reason: &'static str },
    /// Contradicts what we know: recorded for review, nothing changes.
    Rejected { reason: &'static str },
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Applied { .. } => "applied",
            Self::Ignored { .. } => "ignored",
            Self::Rejected { .. } => "rejected",
        }
    }

    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Applied { .. } => None,
            Self::Ignored { reason } | Self::Rejected { reason } => Some(reason),
        }
    }
}

/// The work entering a state calls for. Only ever triggered by an applied transition, and each state
/// is entered at most once, so each effect happens at most once per order.
pub fn effects_of_entering(status: OrderStatus) -> Vec<Effect> {
    match status {
        OrderStatus::Paid => vec![Effect::DeliverLicense, Effect::SendReceipt],
        OrderStatus::Refunded => vec![Effect::RevokeLicenses],
        OrderStatus::Disputed => vec![Effect::SuspendLicenses],
        _ => Vec::new(),
    }
}

pub fn transition(from: OrderStatus, event: OrderEvent) -> Outcome {
    use OrderEvent as E;
    use OrderStatus as S;
    let ignored = |reason| Outcome::Ignored { reason };
    let rejected = |reason| Outcome::Rejected { reason };
    let to = match (from, event) {
        // Closed orders stay closed. Money arriving for one that never got paid needs a human.
        (S::Expired | S::PaymentFailed | S::Canceled, e) if e.proves_payment() => {
            return rejected("payment reported for a closed, unpaid order: review and refund");
        }
        (s, _) if s.is_terminal() => return ignored("the order is closed"),

        (_, E::Refunded { full: false }) => {
            return ignored("partial refund: the licence stays valid");
        }

        (S::PendingPayment | S::PaymentProcessing, e) if e.proves_payment() => S::Paid,
        (S::Paid | S::Fulfilled, e) if e.proves_payment() => {
            return ignored("duplicate: the order is already paid");
        }
        (S::PendingPayment, E::CheckoutCompleted { paid: false }) => S::PaymentProcessing,
        (_, E::CheckoutCompleted { paid: false }) => {
            return ignored("stale: checkout already completed");
        }

        (S::PendingPayment | S::PaymentProcessing, E::AsyncPaymentFailed) => S::PaymentFailed,
        (_, E::AsyncPaymentFailed) => {
            return rejected("payment failure reported for a paid order");
        }

        (S::PaymentProcessing, E::PaymentAttemptFailed) => S::PaymentFailed,
        (S::PendingPayment, E::PaymentAttemptFailed) => {
            return ignored("the customer may retry within the Checkout Session");
        }
        (_, E::PaymentAttemptFailed) => {
            return ignored("stale: an earlier attempt failed before the payment succeeded");
        }

        (S::PendingPayment, E::SessionExpired) => S::Expired,
        (_, E::SessionExpired) => return ignored("stale: the session completed before expiring"),

        (_, E::Refunded { full: true }) => S::Refunded,
        (_, E::DisputeOpened) => S::Disputed,

        (S::Paid, E::LicenseDelivered) => S::Fulfilled,
        (S::Fulfilled, E::LicenseDelivered) => return ignored("duplicate: already fulfilled"),
        (_, E::LicenseDelivered) => return rejected("licence delivered for an unpaid order"),

        (S::PendingPayment, E::CancelRequested) => S::Canceled,
        (_, E::CancelRequested) => {
            return rejected("a payment is in progress or done: refund instead");
        }

        (_, E::CheckoutCompleted { paid: true } | E::AsyncPaymentSucceeded) => {
            unreachable!("payment proofs are handled above")
        }
    };
    Outcome::Applied {
        to,
        effects: effects_of_entering(to),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use OrderEvent as E;
    use OrderStatus as S;

    fn pairs() -> impl Iterator<Item = (OrderStatus, OrderEvent)> {
        S::ALL
            .into_iter()
            .flat_map(|s| E::ALL.into_iter().map(move |e| (s, e)))
    }

    #[test]
    fn names_round_trip() {
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
            let json = serde_json::to_value(s).unwrap();
            assert_eq!(json, s.as_str());
        }
        let names: HashSet<_> = E::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(names.len(), E::ALL.len(), "event names are distinct");
    }

    #[test]
    fn nothing_leaves_a_terminal_state() {
        for (s, e) in pairs().filter(|(s, _)| s.is_terminal()) {
            assert!(
                !matches!(transition(s, e), Outcome::Applied { .. }),
                "{s:?} + {e:?} left a terminal state"
            );
        }
    }

    #[test]
    fn every_applied_transition_moves_strictly_forward() {
        for (s, e) in pairs() {
            if let Outcome::Applied { to, .. } = transition(s, e) {
                assert!(
                    to.rank() > s.rank(),
                    "{s:?} + {e:?} -> {to:?} is not forward"
                );
            }
        }
    }

    #[test]
    fn effects_come_only_from_applied_transitions_and_match_the_target() {
        for (s, e) in pairs() {
            if let Outcome::Applied { to, effects } = transition(s, e) {
                assert_eq!(effects, effects_of_entering(to));
            }
        }
        // Only paying delivers a licence; only a refund revokes; only a dispute suspends.
        for s in S::ALL {
            let effects = effects_of_entering(s);
            assert_eq!(effects.contains(&Effect::DeliverLicense), s == S::Paid);
            assert_eq!(effects.contains(&Effect::RevokeLicenses), s == S::Refunded);
            assert_eq!(effects.contains(&Effect::SuspendLicenses), s == S::Disputed);
        }
    }

    #[test]
    fn every_outcome_that_is_not_applied_says_why() {
        for (s, e) in pairs() {
            let outcome = transition(s, e);
            assert_eq!(outcome.reason().is_some(), outcome.label() != "applied");
        }
    }

    /// All sequences of up to five events, from a new order: the order never moves back, never enters
    /// a state twice (what the database's unique index also enforces) and so delivers at most one
    /// licence and one receipt — whatever Stripe repeats or reorders.
    #[test]
    fn any_event_sequence_is_forward_only_and_effects_happen_at_most_once() {
        fn walk(
            state: OrderStatus,
            depth: usize,
            entered: &mut Vec<OrderStatus>,
            checked: &mut u64,
        ) {
            *checked += 1;
            if depth == 0 {
                return;
            }
            for e in E::ALL {
                match transition(state, e) {
                    Outcome::Applied { to, .. } => {
                        assert!(to.rank() > state.rank());
                        assert!(!entered.contains(&to), "{to:?} entered twice: {entered:?}");
                        entered.push(to);
                        walk(to, depth - 1, entered, checked);
                        entered.pop();
                    }
                    _ => walk(state, depth - 1, entered, checked),
                }
            }
        }
        let mut checked = 0;
        walk(
            S::PendingPayment,
            5,
            &mut vec![S::PendingPayment],
            &mut checked,
        );
        assert!(checked > 100_000, "explored {checked} sequences");
    }

    fn run(events: &[OrderEvent]) -> (OrderStatus, Vec<Outcome>) {
        let mut state = S::PendingPayment;
        let mut outcomes = Vec::new();
        for &e in events {
            let outcome = transition(state, e);
            if let Outcome::Applied { to, .. } = &outcome {
                state = *to;
            }
            outcomes.push(outcome);
        }
        (state, outcomes)
    }

    fn permutations(events: &[OrderEvent]) -> Vec<Vec<OrderEvent>> {
        if events.len() <= 1 {
            return vec![events.to_vec()];
        }
        let mut all = Vec::new();
        for i in 0..events.len() {
            let mut rest = events.to_vec();
            let first = rest.remove(i);
            for mut tail in permutations(&rest) {
                tail.insert(0, first);
                all.push(tail);
            }
        }
        all
    }

    /// The events Stripe sends for one real payment story end in the same state whatever order they
    /// arrive in, and the licence is delivered at most once.
    #[test]
    fn out_of_order_deliveries_converge() {
        let stories: [(&[OrderEvent], OrderStatus); 7] = [
            (&[E::CheckoutCompleted { paid: true }], S::Paid),
            (
                &[
                    E::CheckoutCompleted { paid: false },
                    E::AsyncPaymentSucceeded,
                ],
                S::Paid,
            ),
            (
                &[
                    E::CheckoutCompleted { paid: false },
                    E::AsyncPaymentFailed,
                    E::PaymentAttemptFailed,
                ],
                S::PaymentFailed,
            ),
            (
                &[
                    E::CheckoutCompleted { paid: true },
                    E::Refunded { full: true },
                ],
                S::Refunded,
            ),
            (
                &[
                    E::CheckoutCompleted { paid: false },
                    E::AsyncPaymentSucceeded,
                    E::Refunded { full: true },
                ],
                S::Refunded,
            ),
            (
                &[E::CheckoutCompleted { paid: true }, E::DisputeOpened],
                S::Disputed,
            ),
            (&[E::PaymentAttemptFailed, E::SessionExpired], S::Expired),
        ];
        for (story, expected) in stories {
            for order in permutations(story) {
                let (end, outcomes) = run(&order);
                assert_eq!(end, expected, "{order:?} ended in {end:?}");
                let deliveries = outcomes
                    .iter()
                    .filter(|o| matches!(o, Outcome::Applied { effects, .. } if effects.contains(&Effect::DeliverLicense)))
                    .count();
                assert!(deliveries <= 1, "{order:?} delivered {deliveries} times");
                assert!(
                    !outcomes
                        .iter()
                        .any(|o| matches!(o, Outcome::Rejected { .. })),
                    "{order:?}: a legitimate story was rejected: {outcomes:?}"
                );
            }
        }
    }

    #[test]
    fn documented_out_of_order_outcomes() {
        // `expired` after `paid`: ignored, still paid.
        let (end, outcomes) = run(&[E::CheckoutCompleted { paid: true }, E::SessionExpired]);
        assert_eq!(end, S::Paid);
        assert!(matches!(outcomes[1], Outcome::Ignored { .. }));
        // `refunded` before `paid`: refunded at once, the late `completed` ignored, nothing delivered.
        let (end, outcomes) = run(&[
            E::Refunded { full: true },
            E::CheckoutCompleted { paid: true },
        ]);
        assert_eq!(end, S::Refunded);
        assert_eq!(
            outcomes[0],
            Outcome::Applied {
                to: S::Refunded,
                effects: vec![Effect::RevokeLicenses]
            }
        );
        assert!(matches!(outcomes[1], Outcome::Ignored { .. }));
        // `completed` and `async_payment_succeeded` for one order: one `paid`, one ignored.
        let (end, outcomes) = run(&[
            E::CheckoutCompleted { paid: true },
            E::AsyncPaymentSucceeded,
        ]);
        assert_eq!(end, S::Paid);
        assert!(matches!(outcomes[1], Outcome::Ignored { .. }));
        // Paid after the session expired: a contradiction for a human, not a silent licence.
        let (end, outcomes) = run(&[E::SessionExpired, E::CheckoutCompleted { paid: true }]);
        assert_eq!(end, S::Expired);
        assert!(matches!(outcomes[1], Outcome::Rejected { .. }));
        // A declined card inside the session does not close the order; the next card can pay.
        let (end, _) = run(&[E::PaymentAttemptFailed, E::CheckoutCompleted { paid: true }]);
        assert_eq!(end, S::Paid);
        // Licences are delivered only for paid orders, once.
        assert!(matches!(
            transition(S::PendingPayment, E::LicenseDelivered),
            Outcome::Rejected { .. }
        ));
        assert!(matches!(
            transition(S::Fulfilled, E::LicenseDelivered),
            Outcome::Ignored { .. }
        ));
    }
}
