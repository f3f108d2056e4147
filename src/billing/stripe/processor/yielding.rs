//! Ingest keeps its priority. In the one-box shape (`serve` with the processors in-process, as
//! `just dev` and small deploys run it) the webhook's ack and the processors share the same cores.
//! Left alone, a storm's ack falls to the processing speed: eight lanes of apply transactions (our
//! CPU and Postgres') take the cores the ingest needs, and Stripe sees slow answers exactly when it
//! sends the most. An acknowledged event is durable, so applying it a few seconds later costs
//! nothing; a slow ack costs retries and, past Stripe's timeout, duplicates.
//!
//! So while the ingest is **hot** (it stored at least `STRIPE_INBOX_YIELD_AT` deliveries per
//! second over the last window) a processor runs `STRIPE_INBOX_YIELD_LANES` lanes, claims only what
//! those lanes take, and after each chunk rests in proportion to the time the chunk took, so it
//! applies for at most `STRIPE_INBOX_YIELD_DUTY_PCT` % of the time: processing never stops (a
//! storm of hours still drains), and it catches up at full speed once the storm calms.
//!
//! The signal is the rate, not the deliveries in flight: those grow whenever the box is busy with
//! anything, so yielding to them slowed a steady 1,000 events/s further (measured: lag p99 4.5 s
//! instead of 1.7 s), the feedback loop of a processor making room for its own slowness. A steady
//! load below the threshold never yields. Pure: the processor feeds it the counter and the clock.
use std::time::{Duration, Instant};

use crate::billing::config::InboxConfig;

/// How long the rate is taken over: long enough that the bursts of a steady load average out,
/// short enough that a storm is seen (and its end) within a tenth of a second.
const WINDOW: Duration = Duration::from_millis(100);

/// The ingest's deliveries per second, measured over windows of at least [`WINDOW`].
#[derive(Debug)]
pub struct Gauge {
    since: Instant,
    stored_then: u64,
    per_sec: f64,
}

impl Gauge {
    pub fn new(stored: u64, now: Instant) -> Self {
        Self {
            since: now,
            stored_then: stored,
            per_sec: 0.0,
        }
    }

    /// The rate over the last full window, re-measured once a window has passed. `stored` is the
    /// ingest's running count (`IngestLoad::stored`).
    pub fn sample(&mut self, stored: u64, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed >= WINDOW {
            let count = stored.saturating_sub(self.stored_then) as f64;
            self.per_sec = count / elapsed.as_secs_f64();
            self.since = now;
            self.stored_then = stored;
        }
        self.per_sec
    }
}

/// How hard a processor may work right now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// The ingest is hot: the processor gives way.
    pub yielding: bool,
    /// Apply transactions at once.
    pub lanes: usize,
    /// Events one claim takes.
    pub claim: usize,
    /// After a chunk, rest this many times as long as the chunk took (0 while calm).
    pub rest_ratio: f64,
}

impl Pace {
    /// The pace for an ingest answering `per_sec` deliveries a second.
    pub fn for_load(config: &InboxConfig, per_sec: f64) -> Self {
        let hot = config.yield_at > 0 && per_sec >= f64::from(config.yield_at);
        if !hot {
            return Self {
                yielding: false,
                lanes: config.lanes,
                claim: config.claim_batch,
                rest_ratio: 0.0,
            };
        }
        let lanes = config.yield_lanes.min(config.lanes);
        let duty = f64::from(config.yield_duty_pct.clamp(1, 100)) / 100.0;
        Self {
            yielding: true,
            lanes,
            claim: (lanes * config.apply_batch).min(config.claim_batch),
            rest_ratio: (1.0 - duty) / duty,
        }
    }

    /// How long a lane rests after a chunk that took `applying`.
    pub fn rest_after(&self, applying: Duration) -> Duration {
        applying.mul_f64(self.rest_ratio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yield_at: u32, yield_lanes: usize, yield_duty_pct: u32) -> InboxConfig {
        let none = |_: &str| None;
        let mut config =
            InboxConfig::from_vars(&crate::config::Vars::new(&none)).expect("defaults");
        config.lanes = 8;
        config.apply_batch = 16;
        config.claim_batch = 256;
        config.yield_at = yield_at;
        config.yield_lanes = yield_lanes;
        config.yield_duty_pct = yield_duty_pct;
        config
    }

    #[test]
    fn the_rate_is_measured_over_whole_windows() {
        let start = Instant::now();
        let mut gauge = Gauge::new(0, start);
        // Too early for a first measurement: nothing is known yet.
        assert_eq!(gauge.sample(500, start + Duration::from_millis(50)), 0.0);
        // 2,000 stored in 200 ms: 10,000 a second.
        let rate = gauge.sample(2_000, start + Duration::from_millis(200));
        assert!((rate - 10_000.0).abs() < 1e-6, "{rate}");
        // Within the next window the last rate stands; after it, the new one (calm: nothing).
        assert_eq!(
            gauge.sample(2_000, start + Duration::from_millis(250)),
            rate
        );
        assert_eq!(gauge.sample(2_000, start + Duration::from_millis(300)), 0.0);
    }

    #[test]
    fn a_steady_load_in_bursts_is_not_a_storm() {
        let start = Instant::now();
        let mut gauge = Gauge::new(0, start);
        // 50 deliveries at once every 50 ms: 1,000 events/s, whatever each burst's peak.
        let rate = gauge.sample(100, start + Duration::from_millis(100));
        assert!((rate - 1_000.0).abs() < 1e-6, "{rate}");
        assert!(!Pace::for_load(&config(2_000, 1, 50), rate).yielding);
        assert!(Pace::for_load(&config(2_000, 1, 50), 2_000.0).yielding);
    }

    #[test]
    fn while_calm_every_lane_runs_without_rest() {
        let pace = Pace::for_load(&config(2_000, 1, 50), 1_999.0);
        assert_eq!(
            pace,
            Pace {
                yielding: false,
                lanes: 8,
                claim: 256,
                rest_ratio: 0.0
            }
        );
        assert_eq!(pace.rest_after(Duration::from_millis(40)), Duration::ZERO);
    }

    #[test]
    fn while_hot_fewer_lanes_claim_only_what_they_take_and_rest_for_the_duty() {
        let pace = Pace::for_load(&config(2_000, 1, 25), 10_000.0);
        assert!(pace.yielding);
        assert_eq!(pace.lanes, 1);
        assert_eq!(pace.claim, 16);
        // 25 % duty: a 10 ms chunk, then 30 ms of rest.
        assert_eq!(
            pace.rest_after(Duration::from_millis(10)),
            Duration::from_millis(30)
        );
        // At 100 % the lanes are fewer but never rest.
        let full_duty = Pace::for_load(&config(2_000, 2, 100), 10_000.0);
        assert_eq!((full_duty.lanes, full_duty.rest_ratio), (2, 0.0));
    }

    #[test]
    fn yield_at_zero_never_yields() {
        assert!(!Pace::for_load(&config(0, 1, 25), 100_000.0).yielding);
        assert_eq!(Pace::for_load(&config(0, 1, 25), 100_000.0).lanes, 8);
    }
}
