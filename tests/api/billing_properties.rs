//! Property tests of the two pure parsers/deciders that face the outside world: the Stripe
//! signature check (any header, any payload: no panic; what Stripe signs verifies) and the order
//! state machine (any event sequence: forward only, nothing leaves a terminal state).
use ironclad::billing::{
    orders::state::{OrderEvent, OrderStatus, Outcome, transition},
    stripe::signature::{self, SignatureError},
};
use proptest::prelude::*;

const NOW: i64 = 1_764_000_000;
const TOLERANCE: i64 = 300;

fn any_event() -> impl Strategy<Value = OrderEvent> {
    prop_oneof![
        any::<bool>().prop_map(|paid| OrderEvent::CheckoutCompleted { paid }),
        Just(OrderEvent::AsyncPaymentSucceeded),
        Just(OrderEvent::AsyncPaymentFailed),
        Just(OrderEvent::PaymentAttemptFailed),
        Just(OrderEvent::SessionExpired),
        any::<bool>().prop_map(|full| OrderEvent::Refunded { full }),
        Just(OrderEvent::DisputeOpened),
        Just(OrderEvent::LicenseDelivered),
        Just(OrderEvent::CancelRequested),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn any_header_and_payload_is_answered_without_panicking(
        header in ".{0,300}",
        payload in proptest::collection::vec(any::<u8>(), 0..512),
        now in any::<i64>(),
    ) {
        let _ = signature::verify(Some(&header), &payload, &[b"whsec_a".as_slice()], TOLERANCE, now);
    }

    #[test]
    fn structured_but_hostile_headers_never_verify(
        t in any::<i64>(),
        sigs in proptest::collection::vec("[0-9a-fA-F]{0,80}", 0..5),
        extra in "[a-z0-9=,]{0,40}",
        payload in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut header = format!("t={t}");
        for sig in &sigs {
            header.push_str(&format!(",v1={sig}"));
        }
        header.push_str(&format!(",{extra}"));
        let result = signature::verify(Some(&header), &payload, &[b"whsec_a".as_slice()], TOLERANCE, NOW);
        prop_assert!(result.is_err(), "random signatures verified: {header}");
    }

    #[test]
    fn what_stripe_signs_verifies_with_any_secret_in_rotation_and_decoys(
        payload in proptest::collection::vec(any::<u8>(), 0..1024),
        age in -TOLERANCE..=TOLERANCE,
        decoys in proptest::collection::vec("[0-9a-f]{64}", 0..4),
        position in 0usize..5,
        flip in any::<proptest::sample::Index>(),
    ) {
        let timestamp = NOW - age;
        let header = fake_stripe::signature_header(&payload, "whsec_new", timestamp);
        let genuine = header.split_once(",v1=").expect("t=…,v1=…").1.to_owned();
        let mut v1s = decoys.clone();
        v1s.insert(position.min(v1s.len()), genuine);
        let header = format!("t={timestamp},{}", v1s.iter().map(|s| format!("v1={s}")).collect::<Vec<_>>().join(","));
        let secrets = [b"whsec_old".as_slice(), b"whsec_new".as_slice()];
        prop_assert_eq!(signature::verify(Some(&header), &payload, &secrets, TOLERANCE, NOW), Ok(timestamp));
        // One flipped bit in the body: refused.
        if !payload.is_empty() {
            let mut tampered = payload.clone();
            tampered[flip.index(payload.len())] ^= 1;
            prop_assert_eq!(
                signature::verify(Some(&header), &tampered, &secrets, TOLERANCE, NOW),
                Err(SignatureError::Mismatch)
            );
        }
    }

    #[test]
    fn any_event_sequence_moves_forward_and_never_leaves_a_terminal_state(
        events in proptest::collection::vec(any_event(), 0..40),
    ) {
        let mut status = OrderStatus::PendingPayment;
        let mut entered = vec![status];
        for event in events {
            match transition(status, event) {
                Outcome::Applied { to, .. } => {
                    prop_assert!(!status.is_terminal(), "{status:?} is terminal but {event:?} moved it to {to:?}");
                    prop_assert!(to.rank() > status.rank(), "{status:?} -> {to:?} on {event:?} goes backwards");
                    prop_assert!(!entered.contains(&to), "{to:?} entered twice");
                    entered.push(to);
                    status = to;
                }
                Outcome::Ignored { .. } | Outcome::Rejected { .. } => {}
            }
        }
    }
}

/// The fake Stripe (tests, `just bench`, the dev loop) signs as Stripe does: its header verifies.
#[test]
fn the_fake_stripes_signatures_verify() {
    let payload = br#"{"id":"evt_1","type":"checkout.session.completed"}"#;
    let header = fake_stripe::signature_header(payload, "whsec_new", NOW);
    let secrets = [b"whsec_new".as_slice()];
    assert_eq!(
        signature::verify(Some(&header), payload, &secrets, TOLERANCE, NOW),
        Ok(NOW)
    );
    let other = [b"whsec_other".as_slice()];
    assert_eq!(
        signature::verify(Some(&header), payload, &other, TOLERANCE, NOW),
        Err(SignatureError::Mismatch)
    );
}
