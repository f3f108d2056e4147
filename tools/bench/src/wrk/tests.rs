//! The request file's encoding, its refusals, and reading the scripts' summary line: pure, no wrk.
use super::*;

fn request(method: &'static str, path: &str, headers: &[(&str, &str)], body: &str) -> WrkRequest {
    WrkRequest {
        method,
        path: path.to_owned(),
        headers: headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect(),
        body: Bytes::from(body.to_owned()),
    }
}

#[test]
fn encodes_one_request_per_line() {
    let requests = [
        request(
            "POST",
            "/api/v1/orgs",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", "Bearer abc"),
            ],
            r#"{"name":"a b"}"#,
        ),
        request("GET", "/healthz", &[], ""),
    ];
    let encoded = encode_requests(&requests).unwrap();
    assert_eq!(
        encoded.as_slice(),
        &b"POST\t/api/v1/orgs\tContent-Type: application/json\x1fAuthorization: Bearer abc\t{\"name\":\"a b\"}\nGET\t/healthz\t\t\n"[..]
    );
}

#[test]
fn refuses_what_would_break_the_format() {
    let bad = [
        request("POST", "/x", &[], "{\"a\":\t1}"),
        request("POST", "/x", &[], "{\"a\":\n1}"),
        request("GET", "/x", &[("X-Trace", "a\x1fb")], ""),
        request("GET", "/x", &[("X-Trace", "a\r\nX-Evil: 1")], ""),
        request("GET", "/x", &[("Bad:Name", "1")], ""),
        request("GET", "/x", &[("Host", "example.com")], ""),
        request("GET", "/a b", &[], ""),
        request("GET", "relative", &[], ""),
        request("get", "/x", &[], ""),
    ];
    for case in &bad {
        assert!(
            encode_requests(std::slice::from_ref(case)).is_err(),
            "{} {} {:?} was accepted",
            case.method,
            case.path,
            case.headers
        );
    }
}

const STDOUT: &str = "Running 10m test @ http://127.0.0.1:4000
  2 threads and 64 connections
  3000 requests in 9.18s, 457.03KB read
Requests/sec:    326.70
WRK_JSON {\"requests\":3000,\"duration_us\":9182609,\"bytes\":468000,\"errors\":{\"connect\":0,\"read\":1,\"write\":0,\"status\":4,\"timeout\":2},\"latency_us\":{\"p50\":1477,\"p90\":3430,\"p95\":5818,\"p99\":8743,\"p999\":9000,\"max\":12500,\"mean\":2119.2},\"latency_corrected\":false,\"starved\":0,\"sent_once\":3000}
";

#[test]
fn parses_the_summary_line() {
    let result = parse_output(STDOUT.to_owned()).unwrap();
    assert_eq!(result.requests, 3000);
    assert_eq!(result.status_errors, 4);
    assert_eq!(result.errors, 7);
    assert_eq!(result.elapsed, Duration::from_micros(9_182_609));
    assert_eq!(result.p50_ms, 1.477);
    assert_eq!(result.p99_ms, 8.743);
    assert_eq!(result.max_ms, 12.5);
    assert!(!result.latency_corrected);
    assert_eq!(result.sent_once, 3000);
    assert_eq!(result.raw, STDOUT);
    let row = result.row(64);
    assert_eq!(row.len(), crate::load::HEADER.len());
    assert_eq!(row[3], "327");
    assert_eq!(row[8], "<400×2996 ≥400×4");
}

#[test]
fn needs_the_summary_line() {
    assert!(parse_output("Running 10s test @ http://127.0.0.1:4000\n".to_owned()).is_err());
    let truncated = STDOUT.replace(",\"sent_once\":3000", "");
    assert!(parse_output(truncated).is_err());
}

#[test]
fn threads_take_equal_shares_of_the_connections() {
    assert_eq!(threads_for(1), 1);
    assert_eq!(threads_for(2), 2);
    assert_eq!(threads_for(3), 1);
    assert_eq!(threads_for(256), 2);
}
