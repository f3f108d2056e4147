//! Verifies `Stripe-Signature` exactly as Stripe signs: `t=<unix seconds>,v1=<hex>[,v1=<hex>...]`,
//! where each `v1` is HMAC-SHA256 of `"{t}.{raw body}"` keyed with a webhook secret.
//!
//! Why not `stripe_webhook::Webhook::construct_event`: it keeps only the last `v1` of the header and
//! takes one secret, so it breaks during a secret rotation (Stripe then sends one `v1` per active
//! secret, and we must accept the old and the new); it also parses the event strictly, so an event
//! from a newer API version would be refused with a 400 and lost. We verify here and parse leniently.
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    #[error("the Stripe-Signature header has no v1 signature")]
    NoSignature,
    #[error("the signature timestamp is {age_secs}s away from now (tolerance {tolerance_secs}s)")]
    OutsideTolerance { age_secs: i64, tolerance_secs: i64 },
    #[error("no signature matches the payload")]
    Mismatch,
}

/// Checks `header` against `payload` with each of `secrets` and each `v1` it carries.
/// `now` and `tolerance_secs` bound replays: a timestamp further than that from now, either way, is
/// refused (Stripe's own libraries use 300 s).
pub fn verify(
    header: Option<&str>,
    payload: &[u8],
    secrets: &[&[u8]],
    tolerance_secs: i64,
    now: i64,
) -> Result<i64, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key {
            "t" => {
                let t: i64 = value.parse().map_err(|_| SignatureError::Malformed)?;
                if timestamp.replace(t).is_some() {
                    return Err(SignatureError::Malformed);
                }
            }
            // A v1 that is not hex cannot match anything; another one may still.
            "v1" => signatures.extend(hex::decode(value).ok()),
            // v0 (test-mode legacy scheme) and future schemes are not trusted.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::NoSignature);
    }
    let age_secs = now.saturating_sub(timestamp);
    if age_secs.abs() > tolerance_secs {
        return Err(SignatureError::OutsideTolerance {
            age_secs,
            tolerance_secs,
        });
    }
    for secret in secrets {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(payload);
        // `verify_slice` compares in constant time; each candidate gets a fresh clone.
        if signatures
            .iter()
            .any(|sig| mac.clone().verify_slice(sig).is_ok())
        {
            return Ok(timestamp);
        }
    }
    Err(SignatureError::Mismatch)
}

/// The `Stripe-Signature` header Stripe would send with `payload` at `timestamp`, for
/// `ironclad stripe trigger` (the tests sign with the fake Stripe's own signer, which this one is
/// checked against).
pub fn sign(payload: &[u8], secret: &[u8], timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(payload);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `v1` Stripe would send: signed by the fake Stripe, the workspace's one signer.
    fn sign(payload: &[u8], secret: &[u8], timestamp: i64) -> String {
        let secret = std::str::from_utf8(secret).expect("test secrets are text");
        let header = fake_stripe::signature_header(payload, secret, timestamp);
        header.split_once(",v1=").expect("t=…,v1=…").1.to_owned()
    }

    const NOW: i64 = 1_764_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"checkout.session.completed"}"#;
    const NEW: &[u8] = b"whsec_new";
    const OLD: &[u8] = b"whsec_old";

    fn check(header: &str) -> Result<i64, SignatureError> {
        verify(Some(header), BODY, &[NEW, OLD], 300, NOW)
    }

    #[test]
    fn agrees_with_stripes_own_test_header() {
        let payload = std::str::from_utf8(BODY).unwrap();
        let header =
            stripe_webhook::Webhook::generate_test_header(payload, "whsec_new", Some(NOW - 10));
        assert_eq!(check(&header), Ok(NOW - 10));
        assert_eq!(
            header,
            format!("t={},v1={}", NOW - 10, sign(BODY, NEW, NOW - 10))
        );
    }

    #[test]
    fn any_v1_with_any_configured_secret_is_accepted() {
        let new = sign(BODY, NEW, NOW);
        let old = sign(BODY, OLD, NOW);
        let junk = sign(BODY, b"whsec_other", NOW);
        // Stripe sends one v1 per active secret during a rotation, in any order.
        assert!(check(&format!("t={NOW},v1={junk},v1={old}")).is_ok());
        assert!(check(&format!("t={NOW},v1={new},v1={junk}")).is_ok());
        assert!(check(&format!("t={NOW},v1=zz-not-hex,v1={old},v0={junk}")).is_ok());
    }

    #[test]
    fn refuses_what_stripe_did_not_sign() {
        let good = sign(BODY, NEW, NOW);
        assert_eq!(
            verify(None, BODY, &[NEW], 300, NOW),
            Err(SignatureError::Missing)
        );
        let other_secret = sign(BODY, b"whsec_other", NOW);
        assert_eq!(
            check(&format!("t={NOW},v1={other_secret}")),
            Err(SignatureError::Mismatch)
        );
        // Same signature, different body or timestamp.
        assert_eq!(
            verify(Some(&format!("t={NOW},v1={good}")), b"{}", &[NEW], 300, NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&format!("t={},v1={good}", NOW - 1)),
            Err(SignatureError::Mismatch)
        );
        // Only the legacy v0 scheme: not trusted.
        assert_eq!(
            check(&format!("t={NOW},v0={good}")),
            Err(SignatureError::NoSignature)
        );
        for malformed in [
            "",
            "garbage",
            &format!("v1={good}"),
            &format!("t=abc,v1={good}"),
            &format!("t={NOW},t={NOW},v1={good}"),
        ] {
            assert_eq!(
                check(malformed),
                Err(SignatureError::Malformed),
                "{malformed:?}"
            );
        }
    }

    #[test]
    fn five_minute_tolerance_both_ways() {
        for (t, ok) in [
            (NOW - 300, true),
            (NOW - 301, false),
            (NOW + 300, true),
            (NOW + 301, false),
        ] {
            let header = format!("t={t},v1={}", sign(BODY, NEW, t));
            assert_eq!(check(&header).is_ok(), ok, "timestamp {t}");
        }
        let stale = format!("t={},v1={}", NOW - 3600, sign(BODY, NEW, NOW - 3600));
        assert!(matches!(
            check(&stale),
            Err(SignatureError::OutsideTolerance { age_secs: 3600, .. })
        ));
    }

    #[test]
    fn the_trigger_signs_as_stripe_does() {
        let ours = super::sign(BODY, NEW, NOW);
        let stripes = fake_stripe::signature_header(BODY, "whsec_new", NOW);
        assert_eq!(ours, stripes);
        assert_eq!(check(&ours), Ok(NOW));
    }
}
