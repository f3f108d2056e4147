//! Amounts as Stripe counts them (integers in the currency's smallest unit), formatted for emails.

/// Currencies Stripe treats as having no minor unit.
const ZERO_DECIMAL: [&str; 16] = [
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// `4900, "usd"` → `"49.00 USD"`; `500, "jpy"` → `"500 JPY"`.
pub fn format(amount: i64, currency: &str) -> String {
    let code = currency.to_ascii_uppercase();
    if ZERO_DECIMAL.contains(&currency.to_ascii_lowercase().as_str()) {
        return format!("{amount} {code}");
    }
    let sign = if amount < 0 { "-" } else { "" };
    let abs = amount.unsigned_abs();
    format!("{sign}{}.{:02} {code}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_minor_units() {
        assert_eq!(format(4900, "usd"), "49.00 USD");
        assert_eq!(format(19_905, "eur"), "199.05 EUR");
        assert_eq!(format(5, "usd"), "0.05 USD");
        assert_eq!(format(-250, "usd"), "-2.50 USD");
        assert_eq!(format(500, "jpy"), "500 JPY");
    }
}
