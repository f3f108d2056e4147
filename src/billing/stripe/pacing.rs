//! One pace for every Stripe API call of this process: requests leave at most
//! `STRIPE_MAX_REQUESTS_PER_SEC` a second, evenly spaced, and a 429 (Stripe's rate limit) pauses
//! all of them before the refused request is tried again, with a doubling delay.
//!
//! Per process: with several processes, give each its share of Stripe's limit (about 100/s live,
//! 25/s in test mode).
use std::{future::Future, sync::Mutex, time::Duration};

use tokio::time::Instant;

/// Retries of one request Stripe refused with 429, before its error is returned.
pub const MAX_RATE_LIMIT_RETRIES: u32 = 6;
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const MAX_PAUSE: Duration = Duration::from_secs(8);

#[derive(Debug)]
pub struct Pacer {
    spacing: Duration,
    /// When the next request may leave.
    next: Mutex<Instant>,
}

impl Pacer {
    pub fn new(per_second: u32) -> Self {
        Self {
            spacing: Duration::from_secs(1) / per_second.max(1),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this request's turn.
    pub async fn turn(&self) {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let slot = (*next).max(Instant::now());
            *next = slot + self.spacing;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// Nobody sends for `pause` (Stripe said 429).
    pub fn pause(&self, pause: Duration) {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        *next = (*next).max(Instant::now() + pause);
    }

    /// Sends with `send` in turn; a 429 (`is_rate_limited`) pauses everyone and sends again, up
    /// to [`MAX_RATE_LIMIT_RETRIES`] times. Returns the result and how many 429s it met.
    pub async fn send<T, E, F, Fut>(
        &self,
        is_rate_limited: impl Fn(&E) -> bool,
        send: F,
    ) -> (Result<T, E>, u32)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut pause = FIRST_PAUSE;
        let mut refused = 0;
        loop {
            self.turn().await;
            match send().await {
                Err(error) if is_rate_limited(&error) && refused < MAX_RATE_LIMIT_RETRIES => {
                    refused += 1;
                    self.pause(pause);
                    pause = (pause * 2).min(MAX_PAUSE);
                }
                result => return (result, refused),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_leave_evenly_spaced() {
        let pacer = Pacer::new(10);
        let start = Instant::now();
        for _ in 0..21 {
            pacer.turn().await;
        }
        // 21 requests at 10/s: the last leaves 2 s after the first.
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_and_retries_with_a_doubling_delay() {
        let pacer = Pacer::new(1_000);
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let (result, refused) = pacer
            .send(
                |e: &u16| *e == 429,
                || async {
                    match calls.fetch_add(1, Ordering::SeqCst) {
                        0..3 => Err(429),
                        _ => Ok("done"),
                    }
                },
            )
            .await;
        assert_eq!(result, Ok("done"));
        assert_eq!(refused, 3);
        // 250 + 500 + 1000 ms of pauses.
        assert!(
            start.elapsed() >= Duration::from_millis(1_750),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn other_errors_and_endless_429s_are_returned() {
        let pacer = Pacer::new(1_000);
        let (result, refused) = pacer
            .send(|e: &u16| *e == 429, || async { Err::<(), _>(500) })
            .await;
        assert_eq!((result, refused), (Err(500), 0));
        let (result, refused) = pacer
            .send(|e: &u16| *e == 429, || async { Err::<(), _>(429) })
            .await;
        assert_eq!((result, refused), (Err(429), MAX_RATE_LIMIT_RETRIES));
    }
}
