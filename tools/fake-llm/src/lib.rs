//! A local stand-in for an LLM provider: `POST /v1/completions {model, prompt, max_tokens}`
//! answers OpenAI-style, `{choices: [{text}], usage: {prompt_tokens, completion_tokens,
//! total_tokens}}`, deterministically: a prompt costs a token per four characters, the answer
//! half of `max_tokens` (at least one) plus whatever [`FakeLlm::overrun`] adds. It can fail the
//! next calls (502) or wait before answering, like a slow model.
use std::{
    net::TcpListener,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{App, HttpResponse, HttpServer, dev::ServerHandle, web};
use serde_json::{Value, json};

#[derive(Default)]
struct State {
    calls: usize,
    fail_next: usize,
    overrun: i64,
    delay: Duration,
}

/// A running fake; dropping it stops the server.
pub struct FakeLlm {
    /// `http://127.0.0.1:PORT`: the app's `AI_PROVIDER_URL`.
    pub url: String,
    state: Arc<Mutex<State>>,
    handle: ServerHandle,
}

impl FakeLlm {
    /// Serves a fresh fake on a free loopback port (inside a Tokio runtime).
    pub fn start() -> std::io::Result<Self> {
        Self::on(TcpListener::bind("127.0.0.1:0")?)
    }

    /// Serves it on `listener` (the binary's fixed port).
    pub fn on(listener: TcpListener) -> std::io::Result<Self> {
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(State::default()));
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/v1/completions", web::post().to(complete))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Self { url, state, handle })
    }

    /// Completions answered so far (failed ones included).
    pub fn calls(&self) -> usize {
        self.state.lock().unwrap().calls
    }

    /// The next `n` calls fail with a 502.
    pub fn fail_next(&self, n: usize) {
        self.state.lock().unwrap().fail_next = n;
    }

    /// Each answer uses `extra` tokens more than it otherwise would (past the estimate, say).
    pub fn overrun(&self, extra: i64) {
        self.state.lock().unwrap().overrun = extra;
    }

    /// Each call waits this long before answering.
    pub fn delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    /// Stops serving (the handle's graceful stop).
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

/// What a prompt and answer cost: a token per four characters of prompt, half of `max_tokens`.
pub fn tokens(prompt: &str, max_tokens: i64, overrun: i64) -> (i64, i64) {
    let prompt_tokens = prompt.chars().count().div_ceil(4) as i64;
    (prompt_tokens, (max_tokens / 2).max(1) + overrun)
}

async fn complete(body: web::Json<Value>, state: web::Data<Mutex<State>>) -> HttpResponse {
    let (fail, overrun, delay) = {
        let mut state = state.lock().unwrap();
        state.calls += 1;
        let fail = state.fail_next > 0;
        state.fail_next = state.fail_next.saturating_sub(1);
        (fail, state.overrun, state.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if fail {
        return HttpResponse::BadGateway().json(json!({"error": {"message": "the model is down"}}));
    }
    let prompt = body["prompt"].as_str().unwrap_or_default();
    let max_tokens = body["max_tokens"].as_i64().unwrap_or(16);
    let (prompt_tokens, completion_tokens) = tokens(prompt, max_tokens, overrun);
    let text = format!("(fake completion of {completion_tokens} tokens)");
    HttpResponse::Ok().json(json!({
        "id": format!("cmpl-fake-{}", prompt_tokens + completion_tokens),
        "object": "text_completion",
        "model": body["model"],
        "choices": [{"index": 0, "text": text, "finish_reason": "length"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }))
}
