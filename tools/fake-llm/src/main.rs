//! `fake-llm [PORT]`: serves the fake LLM provider on 127.0.0.1:PORT (default 8091) until
//! stopped. `just dev` starts it and points `AI_PROVIDER_URL` at it.
use std::net::TcpListener;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse().expect("PORT is a number"))
        .unwrap_or(8091);
    let llm = fake_llm::FakeLlm::on(TcpListener::bind(("127.0.0.1", port))?)?;
    eprintln!("fake LLM provider at {}", llm.url);
    tokio::signal::ctrl_c().await?;
    llm.stop().await;
    Ok(())
}
