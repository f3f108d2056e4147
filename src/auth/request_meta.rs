//! Who is calling from where ([`RequestMeta`]), for the audit trail and per-IP limits.
use std::{
    future::{Ready, ready},
    net::{IpAddr, SocketAddr},
};

use actix_web::{Error, FromRequest, HttpRequest, dev::Payload, http::header, web};

use super::AuthState;

/// Who is calling from where, for the audit trail and per-IP limits.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl RequestMeta {
    pub fn of(req: &HttpRequest) -> Self {
        let trust_proxy = req
            .app_data::<web::Data<AuthState>>()
            .is_some_and(|s| s.config.trust_proxy_headers);
        // The peer address unless told to trust proxy headers: `X-Forwarded-For` is set by whoever
        // sends the request, so honouring it without a proxy that overwrites it would let any
        // client pick the IP its failed attempts are counted against.
        let ip = if trust_proxy {
            req.connection_info().realip_remote_addr().map(normalise_ip)
        } else {
            req.peer_addr().map(|a| a.ip().to_string())
        };
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect());
        Self { ip, user_agent }
    }
}

fn normalise_ip(raw: &str) -> String {
    let raw = raw.trim();
    if let Ok(addr) = raw.parse::<SocketAddr>() {
        return addr.ip().to_string();
    }
    if let Ok(ip) = raw.trim_matches(['[', ']']).parse::<IpAddr>() {
        return ip.to_string();
    }
    raw.chars().take(64).collect()
}

impl FromRequest for RequestMeta {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self::of(req)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_addresses_are_normalised() {
        assert_eq!(normalise_ip("203.0.113.7:5555"), "203.0.113.7");
        assert_eq!(normalise_ip("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(normalise_ip("2001:db8::1"), "2001:db8::1");
        assert_eq!(normalise_ip(" 198.51.100.2 "), "198.51.100.2");
    }
}
