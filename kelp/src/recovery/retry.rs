//! [`RetryPolicy`]: how long and how often kelp retries connecting,
//! publishing, declaring, and whatever runs under
//! [`Connection::ensure`](crate::Connection::ensure).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Called before each retry with the error and the pause before the retry
/// (Kombu's `errback(exc, interval)`).
///
/// Set one with [`RetryPolicy::on_error`], which takes a plain closure.
pub type ErrorCallback = Arc<dyn Fn(&Error, Duration) + Send + Sync>;

/// When to retry, and when to give up.
///
/// The pause before retry `n` (counting from 0) is
/// `interval_start + n × interval_step`, capped at `interval_max`, plus up to
/// `jitter` of random extra. Kombu's `retry_over_time` caps at
/// `interval_max + interval_start` (its sleeps are 2, 4, …, 30, 32, 32 s with
/// the defaults); kelp caps at `interval_max` itself, which is what the name
/// says. Within one cycle through a connection's broker list the next broker
/// is tried at once, and the pause applies only after a full cycle (Kombu's
/// `completes_cycle`).
///
/// Retrying stops after `max_retries` retries or once `deadline` has passed
/// since the first attempt, whichever comes first; with neither, it goes on
/// while errors are recoverable. Fatal errors (bad credentials, access
/// refused, not found, precondition failed, content not allowed) are never
/// retried.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let policy = kelp::RetryPolicy::default()
///     .max_retries(5)
///     .deadline(Duration::from_secs(30));
/// let pauses: Vec<_> = policy.intervals().take(4).collect();
/// assert_eq!(pauses, [Duration::ZERO, Duration::from_millis(500), Duration::from_secs(1), Duration::from_millis(1500)]);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// The first pause.
    pub interval_start: Duration,
    /// Added to the pause after each retry.
    pub interval_step: Duration,
    /// The largest pause.
    pub interval_max: Duration,
    /// Give up after this many retries (`None`: no limit).
    pub max_retries: Option<u32>,
    /// Give up once this much time passed since the first attempt (`None`: no limit).
    pub deadline: Option<Duration>,
    /// Add a random pause of up to this much, so that many clients do not
    /// reconnect in lockstep.
    pub jitter: Duration,
    /// Told about each error before its retry.
    pub on_error: Option<ErrorCallback>,
}

impl Default for RetryPolicy {
    /// Retry at once, then every 0.5 s more, up to 2 s between attempts, for
    /// at most 60 s: long enough to ride out a broker restart or a failover,
    /// short enough that a publish never hangs (Kombu's `ensure` default
    /// retries forever every 1 s).
    fn default() -> RetryPolicy {
        RetryPolicy {
            interval_start: Duration::ZERO,
            interval_step: Duration::from_millis(500),
            interval_max: Duration::from_secs(2),
            max_retries: None,
            deadline: Some(Duration::from_secs(60)),
            jitter: Duration::ZERO,
            on_error: None,
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::RetryPolicy;
    ///
    /// // A health check should report the first failure, not hide it.
    /// let once = RetryPolicy::none();
    /// assert_eq!(once.max_retries, Some(0));
    /// ```
    pub fn none() -> RetryPolicy {
        RetryPolicy::default().max_retries(0)
    }

    /// Kombu's `retry_over_time` defaults: 2 s start, 2 s step, 30 s max, forever.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let policy = kelp::RetryPolicy::kombu();
    /// let first: Vec<u64> = policy.intervals().take(3).map(|d| d.as_secs()).collect();
    /// assert_eq!(first, [2, 4, 6]);
    /// assert_eq!(policy.deadline, None);
    /// assert_eq!(policy.interval(100), Duration::from_secs(30));
    /// ```
    pub fn kombu() -> RetryPolicy {
        RetryPolicy {
            interval_start: Duration::from_secs(2),
            interval_step: Duration::from_secs(2),
            interval_max: Duration::from_secs(30),
            max_retries: None,
            deadline: None,
            jitter: Duration::ZERO,
            on_error: None,
        }
    }

    /// Set the first pause.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let policy = kelp::RetryPolicy::default().interval_start(Duration::from_secs(1));
    /// assert_eq!(policy.interval(0), Duration::from_secs(1));
    /// ```
    pub fn interval_start(mut self, d: Duration) -> RetryPolicy {
        self.interval_start = d;
        self
    }

    /// Set the step added after each retry.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let policy = kelp::RetryPolicy::default()
    ///     .interval_start(Duration::ZERO)
    ///     .interval_step(Duration::from_millis(100));
    /// assert_eq!(policy.interval(3), Duration::from_millis(300));
    /// ```
    pub fn interval_step(mut self, d: Duration) -> RetryPolicy {
        self.interval_step = d;
        self
    }

    /// Set the largest pause.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let policy = kelp::RetryPolicy::kombu().interval_max(Duration::from_secs(10));
    /// assert_eq!(policy.interval(50), Duration::from_secs(10));
    /// ```
    pub fn interval_max(mut self, d: Duration) -> RetryPolicy {
        self.interval_max = d;
        self
    }

    /// Give up after `n` retries.
    ///
    /// # Examples
    ///
    /// ```
    /// let policy = kelp::RetryPolicy::default().max_retries(3);
    /// assert_eq!(policy.max_retries, Some(3));
    /// ```
    pub fn max_retries(mut self, n: u32) -> RetryPolicy {
        self.max_retries = Some(n);
        self
    }

    /// Retry without a limit on the number of retries.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// // Bounded by time only.
    /// let policy = kelp::RetryPolicy::none().unlimited_retries().deadline(Duration::from_secs(10));
    /// assert_eq!(policy.max_retries, None);
    /// ```
    pub fn unlimited_retries(mut self) -> RetryPolicy {
        self.max_retries = None;
        self
    }

    /// Give up once `d` has passed since the first attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let policy = kelp::RetryPolicy::default().deadline(Duration::from_secs(5));
    /// assert_eq!(policy.deadline, Some(Duration::from_secs(5)));
    /// ```
    pub fn deadline(mut self, d: Duration) -> RetryPolicy {
        self.deadline = Some(d);
        self
    }

    /// No overall deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// // A daemon that must reconnect whatever the outage's length.
    /// let policy = kelp::RetryPolicy::default().no_deadline();
    /// assert!(policy.deadline.is_none() && policy.max_retries.is_none());
    /// ```
    pub fn no_deadline(mut self) -> RetryPolicy {
        self.deadline = None;
        self
    }

    /// Add up to `d` of random extra pause.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// // A thousand workers restarted together should not reconnect together.
    /// let policy = kelp::RetryPolicy::default().jitter(Duration::from_millis(250));
    /// assert_eq!(policy.jitter, Duration::from_millis(250));
    /// ```
    pub fn jitter(mut self, d: Duration) -> RetryPolicy {
        self.jitter = d;
        self
    }

    /// Call `f(error, next_pause)` before each retry.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::time::Duration;
    /// use kelp::{Connection, Queue, RetryPolicy};
    ///
    /// // Another worker holds an exclusive queue; wait until it lets go.
    /// let holder = Connection::new("memory://")?;
    /// Queue::new("on-error-doc").exclusive(true).declare(&holder.default_channel().await?).await?;
    /// tokio::spawn(async move {
    ///     tokio::time::sleep(Duration::from_millis(30)).await;
    ///     holder.close().await
    /// });
    ///
    /// let retries = Arc::new(AtomicU32::new(0));
    /// let seen = retries.clone();
    /// let policy = RetryPolicy::default()
    ///     .interval_step(Duration::from_millis(20))
    ///     .on_error(move |error, pause| {
    ///         eprintln!("retrying in {pause:?}: {error}");
    ///         seen.fetch_add(1, Ordering::Relaxed);
    ///     });
    /// let conn = Connection::new("memory://")?;
    /// conn.ensure(&policy, |conn| async move {
    ///     let channel = conn.default_channel().await?;
    ///     Queue::new("on-error-doc").exclusive(true).declare(&channel).await
    /// })
    /// .await?;
    /// assert!(retries.load(Ordering::Relaxed) >= 1);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn on_error<F>(mut self, f: F) -> RetryPolicy
    where
        F: Fn(&Error, Duration) + Send + Sync + 'static,
    {
        self.on_error = Some(Arc::new(f));
        self
    }

    /// The pause before retry `n` (0-based), without jitter.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let policy = kelp::RetryPolicy::default(); // 0, 0.5, 1, 1.5, 2, 2, ...
    /// assert_eq!(policy.interval(1), Duration::from_millis(500));
    /// assert_eq!(policy.interval(10), Duration::from_secs(2));
    /// ```
    pub fn interval(&self, n: u32) -> Duration {
        self.interval_step
            .checked_mul(n)
            .and_then(|d| d.checked_add(self.interval_start))
            .unwrap_or(Duration::MAX)
            .min(self.interval_max.max(self.interval_start))
    }

    /// The pauses, one per retry, without jitter (endless: callers stop by
    /// the policy's limits).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let policy = kelp::RetryPolicy::default().max_retries(4);
    /// let total: Duration = policy.intervals().take(4).sum();
    /// assert_eq!(total, Duration::from_secs(3)); // the longest wait before giving up
    /// ```
    pub fn intervals(&self) -> impl Iterator<Item = Duration> + '_ {
        (0u32..).map(|n| self.interval(n))
    }

    /// The pause before retry `n`, with jitter.
    pub(crate) fn pause(&self, n: u32) -> Duration {
        let base = self.interval(n);
        if self.jitter.is_zero() {
            return base;
        }
        let extra = fastrand::u64(..=self.jitter.as_nanos().min(u128::from(u64::MAX)) as u64);
        base + Duration::from_nanos(extra)
    }

    /// May retry number `n` (0-based) happen, `elapsed` after the first attempt?
    pub(crate) fn allows(&self, n: u32, elapsed: Duration) -> bool {
        self.max_retries.is_none_or(|max| n < max) && self.deadline.is_none_or(|d| elapsed < d)
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("interval_start", &self.interval_start)
            .field("interval_step", &self.interval_step)
            .field("interval_max", &self.interval_max)
            .field("max_retries", &self.max_retries)
            .field("deadline", &self.deadline)
            .field("jitter", &self.jitter)
            .field("on_error", &self.on_error.as_ref().map(|_| "…"))
            .finish()
    }
}

/// Run `attempt` until it succeeds, a fatal error, or the policy's end.
pub(crate) async fn retry_loop<T, F, Fut>(policy: &RetryPolicy, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let started = Instant::now();
    let mut retries = 0u32;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => pause_or_give_up(policy, error, &mut retries, started).await?,
        }
    }
}

/// After a failed attempt: give up (returning the error) when it is fatal or
/// the policy ran out, else wait the policy's pause.
pub(crate) async fn pause_or_give_up(
    policy: &RetryPolicy,
    error: Error,
    retries: &mut u32,
    started: Instant,
) -> Result<()> {
    if error.is_fatal() {
        return Err(error);
    }
    if !policy.allows(*retries, started.elapsed()) {
        return Err(if *retries == 0 {
            error
        } else {
            Error::new(
                error.kind(),
                format!("gave up after {retries} retries in {:?}: {}", started.elapsed(), error.message()),
            )
            .with_reply_from(&error)
        });
    }
    let mut pause = policy.pause(*retries);
    if let Some(deadline) = policy.deadline {
        pause = pause.min(deadline.saturating_sub(started.elapsed()));
    }
    if let Some(on_error) = &policy.on_error {
        on_error(&error, pause);
    }
    tracing::debug!(error = %error, retry = *retries + 1, ?pause, "retrying");
    tokio::time::sleep(pause).await;
    *retries += 1;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kombu_defaults_grow_by_step_and_cap_at_the_maximum() {
        let p = RetryPolicy::kombu();
        let first: Vec<u64> = p.intervals().take(17).map(|d| d.as_secs()).collect();
        assert_eq!(first, [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 30, 30]);
    }

    #[test]
    fn limits_by_count_and_by_deadline() {
        let p = RetryPolicy::default().max_retries(2).no_deadline();
        assert!(p.allows(0, Duration::ZERO) && p.allows(1, Duration::ZERO));
        assert!(!p.allows(2, Duration::ZERO));
        let p = RetryPolicy::default().unlimited_retries().deadline(Duration::from_secs(1));
        assert!(p.allows(1000, Duration::from_millis(999)));
        assert!(!p.allows(0, Duration::from_secs(1)));
        assert!(!RetryPolicy::none().allows(0, Duration::ZERO));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let p = RetryPolicy::default().jitter(Duration::from_millis(100));
        for n in 0..50 {
            let pause = p.pause(n % 5);
            let base = p.interval(n % 5);
            assert!(pause >= base && pause <= base + Duration::from_millis(100));
        }
    }

    #[test]
    fn huge_steps_do_not_overflow() {
        let p = RetryPolicy::default().interval_step(Duration::MAX).interval_max(Duration::from_secs(5));
        assert_eq!(p.interval(3), Duration::from_secs(5));
    }
}
