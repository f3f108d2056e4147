//! A minimal in-process SMTP server that keeps every message in memory. Development uses it so
//! `just dev` needs no mail server (see `GET /dev/mail`); tests use it to assert what was sent.
//! It speaks just enough SMTP for lettre: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT.
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::Notify,
};
use utoipa::ToSchema;

/// One message as received.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "from": "no-reply@localhost",
    "to": ["ada@example.com"],
    "subject": "Welcome to Ironclad",
    "message_id": "<welcome.user-1@ironclad.localhost>",
    "raw": "From: Ironclad <no-reply@localhost>\r\nTo: ada@example.com\r\nSubject: Welcome to Ironclad\r\n...",
    "received_at": "2026-11-23T12:00:00Z"
}))]
pub struct CapturedMail {
    pub from: String,
    pub to: Vec<String>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    /// The raw RFC 5322 message (headers and MIME body).
    pub raw: String,
    pub received_at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct MailSink {
    addr: SocketAddr,
    inbox: Arc<Inbox>,
}

#[derive(Default)]
struct Inbox {
    messages: Mutex<Vec<CapturedMail>>,
    arrived: Notify,
    /// How long to take before accepting a message (a slow provider, for chaos experiments).
    latency: Duration,
}

impl MailSink {
    /// Listens on a free loopback port and serves until the runtime stops.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with_latency(Duration::ZERO).await
    }

    /// Like [`MailSink::start`], taking `latency` to accept each message, like a slow provider.
    pub async fn start_with_latency(latency: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let sink = Self {
            addr: listener.local_addr()?,
            inbox: Arc::new(Inbox {
                latency,
                ..Inbox::default()
            }),
        };
        let inbox = sink.inbox.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let inbox = inbox.clone();
                tokio::spawn(async move {
                    if let Err(error) = serve(stream, &inbox).await {
                        tracing::debug!(%error, "mail sink connection ended");
                    }
                });
            }
        });
        tracing::info!(addr = %sink.addr, "in-process mail sink listening");
        Ok(sink)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn messages(&self) -> Vec<CapturedMail> {
        self.inbox.messages.lock().expect("inbox lock").clone()
    }

    /// Waits until at least `count` messages arrived or `timeout` passed; returns what is there.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<CapturedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.inbox.arrived.notified();
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.messages();
            }
        }
    }
}

async fn serve(stream: TcpStream, inbox: &Inbox) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 ironclad mail sink ready\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-ironclad\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            "HELO" | "NOOP" => b"250 ok\r\n",
            "MAIL" => {
                from = address_of(&command);
                to.clear();
                b"250 ok\r\n"
            }
            "RCPT" => {
                to.push(address_of(&command));
                b"250 ok\r\n"
            }
            "RSET" => {
                from.clear();
                to.clear();
                b"250 ok\r\n"
            }
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let raw = read_data(&mut lines).await?;
                tokio::time::sleep(inbox.latency).await;
                let mail = CapturedMail {
                    subject: header(&raw, "Subject"),
                    message_id: header(&raw, "Message-ID"),
                    from: std::mem::take(&mut from),
                    to: std::mem::take(&mut to),
                    raw,
                    received_at: Utc::now(),
                };
                inbox.messages.lock().expect("inbox lock").push(mail);
                inbox.arrived.notify_waiters();
                b"250 queued\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

async fn read_data(
    lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<String> {
    let mut raw = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == ".\r\n" || line == ".\n" {
            return Ok(raw);
        }
        // Undo dot-stuffing (RFC 5321 4.5.2).
        raw.push_str(line.strip_prefix('.').unwrap_or(&line));
    }
}

/// `MAIL FROM:<a@b>` / `RCPT TO:<a@b>` → `a@b`.
fn address_of(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command.rfind('>').unwrap_or(command.len());
    command.get(start..end).unwrap_or_default().to_owned()
}

/// The first value of an unfolded header line (good enough for ASCII subjects and ids).
fn header(raw: &str, name: &str) -> Option<String> {
    raw.lines()
        .take_while(|line| !line.is_empty())
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
}
