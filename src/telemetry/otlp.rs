//! The OTLP/HTTP trace exporter, sending protobuf to `<OTEL_EXPORTER_OTLP_ENDPOINT>/v1/traces`
//! through the app's own reqwest client (no second HTTP stack). The SDK's batch processor exports
//! from its own thread; each export is handed to the Tokio runtime that started telemetry.
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};

use crate::config::TelemetryConfig;

/// A tracer provider exporting to `endpoint` (an error outside a Tokio runtime).
pub(super) fn provider(
    config: &TelemetryConfig,
    endpoint: &str,
) -> anyhow::Result<SdkTracerProvider> {
    // The collector may be https: rustls needs its crypto provider (main installs it first).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = ReqwestClient {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?,
        runtime: tokio::runtime::Handle::try_current()?,
    };
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_http_client(client)
        .build()?;
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

#[derive(Debug)]
struct ReqwestClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for ReqwestClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let call = self
            .client
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body);
        // Spawned: the batch processor polls this from its own thread, outside the runtime.
        let answer = self
            .runtime
            .spawn(async move {
                let response = call.send().await?;
                let mut answer = Response::builder().status(response.status());
                for (name, value) in response.headers() {
                    answer = answer.header(name, value);
                }
                let body = response.bytes().await?;
                Ok::<_, HttpError>(answer.body(body)?)
            })
            .await??;
        Ok(answer)
    }
}
