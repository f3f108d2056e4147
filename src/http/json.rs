//! Reading JSON bodies as the OpenAPI document describes them. JSON Schema counts `8.0` as an
//! integer; serde's integer types refuse it. Integer fields of request bodies use [`whole_number`],
//! so a client whose JSON library writes whole numbers with a fraction is not told its valid
//! request is malformed.
use serde::{Deserialize, Deserializer, de::Error};

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
