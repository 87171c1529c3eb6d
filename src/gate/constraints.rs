//! Constraints a policy verdict puts on an allowed action, each enforced by one `tower`
//! layer: time windows, concurrent actions per agent, token-bucket rate limits per key, and
//! the upstream timeout and response size limit.
//!
//! The layers wrap any `Service<Admission<T>>`. The gate runs them when it decides (with an
//! inner service that just hands the admission back), so a breach is a `deny` decision with a
//! reason naming the limit, recorded like any other; an allowed decision carries the
//! resulting [`ConstraintHold`], which the front door keeps while it dispatches the action.
//! The upstream timeout and size limit are enforced where bodies are forwarded
//! (`intercept::forward`, from [`UpstreamLimits`]); the layer here only resolves them.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, FixedOffset, Timelike, Utc};
use futures_util::future::Either;
use serde::{Deserialize, Serialize};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

use super::policy::Constraints;

/// When an action may run: local days and a `[start, end)` time of day at a UTC offset.
/// `end` before `start` wraps past midnight. Absent parts do not restrict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeWindow {
    /// Three-letter day names: `mon`, `tue`, ... `sun`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<Vec<String>>,
    /// `HH:MM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// `HH:MM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// `+HH:MM` or `-HH:MM` (default `+00:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz_offset: Option<String>,
}

/// A limit an action ran into. Its text is the deny reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintBreach {
    #[error("outside the allowed time window ({window}); now {now}")]
    OutsideTimeWindow { window: String, now: String },
    #[error("the policy's time window is malformed ({0}); denied (fail closed)")]
    MalformedTimeWindow(String),
    #[error("rate limit {key} of {per_minute} per minute reached")]
    RateLimited { key: String, per_minute: u32 },
    #[error("concurrency limit of {max} running actions for agent {agent} reached")]
    TooManyConcurrent { agent: String, max: u32 },
}

/// The time and size limits on an upstream call, resolved from the verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamLimits {
    pub timeout: Option<Duration>,
    pub max_response_bytes: Option<u64>,
}

/// What an admitted action holds while it runs: its slot in the agent's concurrency limit
/// (released when the hold is dropped) and its upstream limits.
#[derive(Debug, Default)]
pub struct ConstraintHold {
    slot: Option<RunningSlot>,
    pub upstream: UpstreamLimits,
}

impl ConstraintHold {
    /// Whether dropping this hold frees a concurrency slot.
    pub fn holds_slot(&self) -> bool {
        self.slot.is_some()
    }
}

/// One action being admitted through the layers.
#[derive(Debug)]
pub struct Admission<T> {
    /// Who concurrency is counted for (the authenticated identity, else the agent id).
    pub agent: String,
    pub constraints: Constraints,
    pub now: DateTime<Utc>,
    pub hold: ConstraintHold,
    /// What is being dispatched (`()` when the gate only admits).
    pub call: T,
}

/// The shared state of the rate and concurrency layers.
#[derive(Debug, Default)]
pub struct ConstraintState {
    buckets: Mutex<HashMap<String, TokenBucket>>,
    running: Arc<Mutex<HashMap<String, u32>>>,
}

/// A dispatch service wrapped in every constraint layer, outermost first.
pub type ConstrainedService<S> =
    TimeWindowService<ConcurrencyService<RateLimitService<UpstreamLimitsService<S>>>>;

/// Buckets kept before full (idle) ones are dropped.
const MAX_IDLE_BUCKETS: usize = 10_000;

impl ConstraintState {
    pub fn new() -> Arc<ConstraintState> {
        Arc::new(ConstraintState::default())
    }

    /// The constraint layers, outermost first, around `inner`.
    pub fn layers<S>(self: &Arc<Self>, inner: S) -> ConstrainedService<S> {
        ServiceBuilder::new()
            .layer(TimeWindowLayer)
            .layer(ConcurrencyLayer {
                state: self.clone(),
            })
            .layer(RateLimitLayer {
                state: self.clone(),
            })
            .layer(UpstreamLimitsLayer)
            .service(inner)
    }

    /// Run `dispatch` for an action under its constraints.
    pub async fn run<S, T>(
        self: &Arc<Self>,
        admission: Admission<T>,
        dispatch: S,
    ) -> Result<S::Response, ConstraintBreach>
    where
        S: Service<Admission<T>, Error = ConstraintBreach>,
    {
        self.layers(dispatch).oneshot(admission).await
    }

    /// Admit an action without dispatching it: the hold to keep while it runs.
    pub async fn admit(
        self: &Arc<Self>,
        agent: String,
        constraints: Constraints,
        now: DateTime<Utc>,
    ) -> Result<ConstraintHold, ConstraintBreach> {
        let admission = Admission {
            agent,
            constraints,
            now,
            hold: ConstraintHold::default(),
            call: (),
        };
        let hand_back = tower::service_fn(|a: Admission<()>| ready(Ok(a.hold)));
        self.run(admission, hand_back).await
    }

    fn take_token(&self, key: &str, per_minute: u32) -> bool {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_IDLE_BUCKETS && !buckets.contains_key(key) {
            buckets.retain(|_, b| !b.is_full(now));
        }
        buckets
            .entry(key.to_string())
            .or_insert_with(|| TokenBucket::full(per_minute, now))
            .take(per_minute, now)
    }

    fn take_slot(&self, agent: &str, max: u32) -> Option<RunningSlot> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let count = running.entry(agent.to_string()).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(RunningSlot {
            agent: agent.to_string(),
            running: self.running.clone(),
        })
    }

    /// How many actions of `agent` hold a concurrency slot now.
    pub fn running(&self, agent: &str) -> u32 {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.get(agent).copied().unwrap_or(0)
    }
}

/// One running action's place in its agent's concurrency count.
#[derive(Debug)]
struct RunningSlot {
    agent: String,
    running: Arc<Mutex<HashMap<String, u32>>>,
}

impl Drop for RunningSlot {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = running.get_mut(&self.agent) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                running.remove(&self.agent);
            }
        }
    }
}

/// A token bucket holding up to `per_minute` tokens, refilled continuously.
#[derive(Debug, Clone, Copy)]
struct TokenBucket {
    tokens: f64,
    capacity: f64,
    at: Instant,
}

impl TokenBucket {
    fn full(per_minute: u32, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(per_minute),
            capacity: f64::from(per_minute),
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.capacity / 60.0).min(self.capacity);
        self.at = now;
    }

    fn take(&mut self, per_minute: u32, now: Instant) -> bool {
        // A policy change of the rate applies to the existing bucket.
        self.capacity = f64::from(per_minute);
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn is_full(&self, now: Instant) -> bool {
        let mut b = *self;
        b.refill(now);
        b.tokens >= b.capacity
    }
}

type Checked<F, R> = Either<Ready<Result<R, ConstraintBreach>>, F>;

fn refuse<F, R>(breach: ConstraintBreach) -> Checked<F, R> {
    Either::Left(ready(Err(breach)))
}

/// Denies outside `constraints.time_window`.
#[derive(Debug, Clone, Copy)]
pub struct TimeWindowLayer;

impl<S> Layer<S> for TimeWindowLayer {
    type Service = TimeWindowService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TimeWindowService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct TimeWindowService<S> {
    inner: S,
}

impl<S, T> Service<Admission<T>> for TimeWindowService<S>
where
    S: Service<Admission<T>, Error = ConstraintBreach>,
{
    type Response = S::Response;
    type Error = ConstraintBreach;
    type Future = Checked<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConstraintBreach>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, a: Admission<T>) -> Self::Future {
        if let Some(window) = &a.constraints.time_window
            && let Err(breach) = window.admits(a.now)
        {
            return refuse(breach);
        }
        Either::Right(self.inner.call(a))
    }
}

/// Counts running actions per agent against `constraints.max_concurrent`.
#[derive(Debug, Clone)]
pub struct ConcurrencyLayer {
    state: Arc<ConstraintState>,
}

impl<S> Layer<S> for ConcurrencyLayer {
    type Service = ConcurrencyService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ConcurrencyService {
            inner,
            state: self.state.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConcurrencyService<S> {
    inner: S,
    state: Arc<ConstraintState>,
}

impl<S, T> Service<Admission<T>> for ConcurrencyService<S>
where
    S: Service<Admission<T>, Error = ConstraintBreach>,
{
    type Response = S::Response;
    type Error = ConstraintBreach;
    type Future = Checked<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConstraintBreach>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut a: Admission<T>) -> Self::Future {
        if let Some(max) = a.constraints.max_concurrent {
            match self.state.take_slot(&a.agent, max) {
                Some(slot) => a.hold.slot = Some(slot),
                None => {
                    return refuse(ConstraintBreach::TooManyConcurrent {
                        agent: a.agent,
                        max,
                    });
                }
            }
        }
        Either::Right(self.inner.call(a))
    }
}

/// Takes one token from the bucket `constraints.rate.key` (`per_minute` tokens a minute).
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    state: Arc<ConstraintState>,
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            state: self.state.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RateLimitService<S> {
    inner: S,
    state: Arc<ConstraintState>,
}

impl<S, T> Service<Admission<T>> for RateLimitService<S>
where
    S: Service<Admission<T>, Error = ConstraintBreach>,
{
    type Response = S::Response;
    type Error = ConstraintBreach;
    type Future = Checked<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConstraintBreach>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, a: Admission<T>) -> Self::Future {
        if let Some(rate) = &a.constraints.rate
            && !self.state.take_token(&rate.key, rate.per_minute)
        {
            // The concurrency slot taken by an outer layer is released with `a`.
            return refuse(ConstraintBreach::RateLimited {
                key: rate.key.clone(),
                per_minute: rate.per_minute,
            });
        }
        Either::Right(self.inner.call(a))
    }
}

/// Resolves `timeout_ms` and `max_response_bytes` into the hold's [`UpstreamLimits`], which
/// the forwarding code enforces on the upstream call and its body.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamLimitsLayer;

impl<S> Layer<S> for UpstreamLimitsLayer {
    type Service = UpstreamLimitsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        UpstreamLimitsService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct UpstreamLimitsService<S> {
    inner: S,
}

impl<S, T> Service<Admission<T>> for UpstreamLimitsService<S>
where
    S: Service<Admission<T>, Error = ConstraintBreach>,
{
    type Response = S::Response;
    type Error = ConstraintBreach;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConstraintBreach>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut a: Admission<T>) -> Self::Future {
        a.hold.upstream = UpstreamLimits {
            timeout: a.constraints.timeout_ms.map(Duration::from_millis),
            max_response_bytes: a.constraints.max_response_bytes,
        };
        self.inner.call(a)
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl TimeWindow {
    /// `Ok` when `now` is inside the window.
    pub fn admits(&self, now: DateTime<Utc>) -> Result<(), ConstraintBreach> {
        let malformed = |what: String| ConstraintBreach::MalformedTimeWindow(what);
        let offset = match &self.tz_offset {
            Some(o) => parse_offset(o).ok_or_else(|| malformed(format!("tz_offset {o:?}")))?,
            None => FixedOffset::east_opt(0).ok_or_else(|| malformed("offset".into()))?,
        };
        let local = now.with_timezone(&offset);
        let minute = |t: &Option<String>, name: &str| match t {
            Some(t) => parse_minute(t)
                .map(Some)
                .ok_or_else(|| malformed(format!("{name} {t:?} is not HH:MM"))),
            None => Ok(None),
        };
        let start = minute(&self.start, "start")?;
        let end = minute(&self.end, "end")?;
        let today = DAYS[local.weekday().num_days_from_monday() as usize];
        let mut inside = true;
        if let Some(days) = &self.days {
            if let Some(bad) = days
                .iter()
                .find(|d| !DAYS.contains(&d.to_ascii_lowercase().as_str()))
            {
                return Err(malformed(format!("day {bad:?} is not one of mon..sun")));
            }
            inside &= days.iter().any(|d| d.eq_ignore_ascii_case(today));
        }
        let now_minute = local.hour() * 60 + local.minute();
        inside &= match (start, end) {
            (Some(s), Some(e)) if e > s => now_minute >= s && now_minute < e,
            (Some(s), Some(e)) => now_minute >= s || now_minute < e,
            (Some(s), None) => now_minute >= s,
            (None, Some(e)) => now_minute < e,
            (None, None) => true,
        };
        if inside {
            Ok(())
        } else {
            Err(ConstraintBreach::OutsideTimeWindow {
                window: self.describe(),
                now: local.format("%a %H:%M %:z").to_string(),
            })
        }
    }

    fn describe(&self) -> String {
        let days = self
            .days
            .as_ref()
            .map(|d| d.join(","))
            .unwrap_or_else(|| "every day".into());
        format!(
            "{days} {}-{} {}",
            self.start.as_deref().unwrap_or("00:00"),
            self.end.as_deref().unwrap_or("24:00"),
            self.tz_offset.as_deref().unwrap_or("+00:00")
        )
    }
}

fn parse_minute(t: &str) -> Option<u32> {
    let (h, m) = t.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && t.len() == 5).then_some(h * 60 + m)
}

fn parse_offset(o: &str) -> Option<FixedOffset> {
    let (sign, rest) = match o.as_bytes().first()? {
        b'+' => (1, &o[1..]),
        b'-' => (-1, &o[1..]),
        _ => return None,
    };
    let minutes = parse_minute(rest)?;
    FixedOffset::east_opt(sign * (minutes as i32) * 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::policy::RateLimit;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn window(days: Option<&[&str]>, start: &str, end: &str, tz: &str) -> TimeWindow {
        TimeWindow {
            days: days.map(|d| d.iter().map(|s| s.to_string()).collect()),
            start: Some(start.into()),
            end: Some(end.into()),
            tz_offset: Some(tz.into()),
        }
    }

    #[test]
    fn time_windows() {
        // 2026-11-25 is a Wednesday.
        let w = window(Some(&["mon", "wed"]), "09:00", "17:00", "+00:00");
        assert!(w.admits(at("2026-11-25T10:00:00Z")).is_ok());
        assert!(w.admits(at("2026-11-25T17:00:00Z")).is_err());
        assert!(w.admits(at("2026-11-26T10:00:00Z")).is_err());
        // 08:30 UTC is 10:30 at +02:00.
        let tz = window(None, "09:00", "17:00", "+02:00");
        assert!(tz.admits(at("2026-11-25T08:30:00Z")).is_ok());
        let night = window(None, "22:00", "06:00", "-01:00");
        assert!(night.admits(at("2026-11-25T02:00:00Z")).is_ok());
        assert!(night.admits(at("2026-11-25T12:00:00Z")).is_err());
        let bad = window(None, "9am", "17:00", "+00:00");
        assert!(matches!(
            bad.admits(at("2026-11-25T10:00:00Z")),
            Err(ConstraintBreach::MalformedTimeWindow(_))
        ));
        assert!(
            window(Some(&["funday"]), "09:00", "17:00", "+00:00")
                .admits(at("2026-11-25T10:00:00Z"))
                .is_err()
        );
    }

    fn limits(per_minute: Option<u32>, max_concurrent: Option<u32>) -> Constraints {
        Constraints {
            rate: per_minute.map(|per_minute| RateLimit {
                key: "agent:a:exec".into(),
                per_minute,
            }),
            max_concurrent,
            timeout_ms: Some(1500),
            ..Constraints::default()
        }
    }

    #[tokio::test]
    async fn rate_bucket_holds_per_minute_tokens() {
        let state = ConstraintState::new();
        let mut allowed = 0;
        for _ in 0..25 {
            if state
                .admit("a".into(), limits(Some(10), None), Utc::now())
                .await
                .is_ok()
            {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 10);
        let breach = state
            .admit("a".into(), limits(Some(10), None), Utc::now())
            .await
            .unwrap_err();
        assert!(breach.to_string().contains("agent:a:exec"), "{breach}");
    }

    #[tokio::test]
    async fn concurrency_slots_are_released_with_the_hold() {
        let state = ConstraintState::new();
        let a = state
            .admit("a".into(), limits(None, Some(2)), Utc::now())
            .await
            .unwrap();
        let b = state
            .admit("a".into(), limits(None, Some(2)), Utc::now())
            .await
            .unwrap();
        assert_eq!(a.upstream.timeout, Some(Duration::from_millis(1500)));
        assert!(matches!(
            state
                .admit("a".into(), limits(None, Some(2)), Utc::now())
                .await,
            Err(ConstraintBreach::TooManyConcurrent { max: 2, .. })
        ));
        // Another agent has its own count.
        assert!(
            state
                .admit("b".into(), limits(None, Some(2)), Utc::now())
                .await
                .is_ok()
        );
        drop(a);
        assert_eq!(state.running("a"), 1);
        let c = state
            .admit("a".into(), limits(None, Some(2)), Utc::now())
            .await
            .unwrap();
        drop((b, c));
        assert_eq!(state.running("a"), 0);
    }

    #[tokio::test]
    async fn a_rate_breach_releases_the_concurrency_slot() {
        let state = ConstraintState::new();
        let _first = state
            .admit("a".into(), limits(Some(1), Some(5)), Utc::now())
            .await
            .unwrap();
        assert!(
            state
                .admit("a".into(), limits(Some(1), Some(5)), Utc::now())
                .await
                .is_err()
        );
        assert_eq!(state.running("a"), 1);
    }

    #[tokio::test]
    async fn layers_wrap_a_dispatch() {
        let state = ConstraintState::new();
        let admission = Admission {
            agent: "a".into(),
            constraints: limits(None, Some(1)),
            now: Utc::now(),
            hold: ConstraintHold::default(),
            call: 21,
        };
        let running = state.clone();
        let doubled = state
            .run(
                admission,
                tower::service_fn(move |a: Admission<i32>| {
                    let during = running.running("a");
                    ready(Ok::<_, ConstraintBreach>((a.call * 2, during)))
                }),
            )
            .await
            .unwrap();
        assert_eq!(doubled, (42, 1));
        assert_eq!(state.running("a"), 0);
    }
}
