//! Reading JSON bodies as the OpenAPI document describes them:
//! - every body this API takes is an object, but serde reads a struct from an array too (`[null,
//!   null]` as `{"name": null, "slug": null}`): [`objects_only`] refuses those before any handler;
//! - JSON Schema counts `8.0` as an integer, serde's integer types refuse it: integer fields of
//!   request bodies use [`whole_number`], so a valid request is not called malformed.
use actix_web::{
    Error, HttpMessage,
    body::{BoxBody, EitherBody, MessageBody},
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::{StatusCode, header},
    middleware::Next,
    web::{Bytes, BytesMut},
};
use futures_util::StreamExt;
use serde::{Deserialize, Deserializer, de::Error as _};

use super::problem::{Problem, types};

/// What a streamed request body is to actix (its `BoxedPayloadStream`).
type Streamed = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<Bytes, actix_web::error::PayloadError>>>,
>;

/// Leading whitespace read looking for the body's first character, at most.
const MAX_LEADING_WHITESPACE: usize = 1024;

/// Refuses a JSON request whose body is not an object with 400 `invalid-body`. It reads only up to
/// the first character that is not whitespace; the body then streams on to the handler as sent.
pub async fn objects_only(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static, BoxBody>>, Error> {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let mut payload = req.take_payload();
    let mut head = BytesMut::new();
    let first = loop {
        if let Some(byte) = head.iter().find(|b| !b.is_ascii_whitespace()) {
            break Some(*byte);
        }
        if head.len() > MAX_LEADING_WHITESPACE {
            break Some(b' ');
        }
        match payload.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(error)) => return Err(error.into()),
            None => break None,
        }
    };
    if first.is_some_and(|byte| byte != b'{') {
        let problem = Problem::new(
            StatusCode::BAD_REQUEST,
            types::INVALID_BODY,
            "The request body is not valid JSON for this endpoint",
        )
        .with_detail("expected a JSON object");
        let response = actix_web::ResponseError::error_response(&problem);
        return Ok(req.into_response(response).map_into_right_body());
    }
    let head: Bytes = head.freeze();
    let body = futures_util::stream::once(async move { Ok(head) }).chain(payload);
    let body: Streamed = Box::pin(body);
    req.set_payload(Payload::from(body));
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// An unsigned integer field, from `8` or `8.0` (a fraction, a sign or out of range is refused).
pub fn whole_number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let number = serde_json::Number::deserialize(deserializer)?;
    let whole = number.as_u64().or_else(|| {
        let float = number.as_f64()?;
        (float.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&float)).then_some(float as u64)
    });
    let whole = whole.ok_or_else(|| D::Error::custom(format!("{number} is not a whole number")))?;
    T::try_from(whole).map_err(|_| D::Error::custom(format!("{whole} is out of range")))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Seats {
        #[serde(deserialize_with = "super::whole_number")]
        seats: u32,
    }

    fn seats(json: &str) -> Result<u32, String> {
        serde_json::from_str::<Seats>(json)
            .map(|s| s.seats)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_with_or_without_a_fraction_and_nothing_else() {
        assert_eq!(seats(r#"{"seats": 8}"#), Ok(8));
        assert_eq!(seats(r#"{"seats": 8.0}"#), Ok(8));
        for refused in ["8.5", "-1", "1e20", "\"8\"", "null"] {
            let json = format!(r#"{{"seats": {refused}}}"#);
            assert!(seats(&json).is_err(), "{refused}");
        }
    }
}
