//! Waiting for a condition: poll it until it holds, within a bound that is
//! there only so a broken test fails instead of hanging. Nothing here
//! measures how long anything took; pick bounds generously.
//!
//! Tests use [`eventually`] (async) or [`eventually_blocking`]: each returns
//! what the condition produced once it held, and panics, naming what was
//! awaited (and what was seen last), once the bound has passed.
//! [`wait_for`] and [`wait_for_async`] poll the same way but return an
//! [`Error`] instead of panicking, for code that must not panic (this
//! crate's own process handling).
//!
//! A condition answers with a [`Check`]: `bool`, `Option<T>` (`Some` holds,
//! and is returned) or `Result<T, E>` (`Ok` holds; an `Err` means "not yet",
//! and the last one is shown if the bound passes).

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The answer of a polled condition: does it hold yet, and with what value?
pub trait Check {
    /// What the condition gives once it holds.
    type Value;

    /// `Ok(value)` once the condition holds; otherwise `Err` with what was
    /// seen instead, if there is anything worth saying.
    fn check(self) -> std::result::Result<Self::Value, Option<String>>;
}

impl Check for bool {
    type Value = ();

    fn check(self) -> std::result::Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Check for Option<T> {
    type Value = T;

    fn check(self) -> std::result::Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Display> Check for std::result::Result<T, E> {
    type Value = T;

    fn check(self) -> std::result::Result<T, Option<String>> {
        self.map_err(|e| Some(e.to_string()))
    }
}

/// Pauses between polls: 10 ms at first, doubling up to 200 ms.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const LONGEST: Duration = Duration::from_millis(200);

    fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    /// The next pause, never past `remaining`.
    fn pause(&mut self, remaining: Duration) -> Duration {
        let pause = self.next.min(remaining);
        self.next = (self.next * 2).min(Self::LONGEST);
        pause
    }
}

/// Polls `check` until it holds or `within` has passed; on failure, what
/// was seen last.
fn poll_blocking<C: Check>(
    within: Duration,
    mut check: impl FnMut() -> C,
) -> std::result::Result<C::Value, Option<String>> {
    let start = Instant::now();
    let mut backoff = Backoff::new();
    loop {
        let last = match check().check() {
            Ok(value) => return Ok(value),
            Err(last) => last,
        };
        let elapsed = start.elapsed();
        if elapsed >= within {
            return Err(last);
        }
        std::thread::sleep(backoff.pause(within - elapsed));
    }
}

/// Async [`poll_blocking`]; a check still running when the bound passes is
/// cut off.
async fn poll_async<C: Check>(
    within: Duration,
    mut check: impl AsyncFnMut() -> C,
) -> std::result::Result<C::Value, Option<String>> {
    let deadline = tokio::time::Instant::now() + within;
    let mut backoff = Backoff::new();
    loop {
        let last = match tokio::time::timeout_at(deadline, check()).await {
            Ok(answer) => match answer.check() {
                Ok(value) => return Ok(value),
                Err(last) => last,
            },
            Err(_) => Some("the last check was still running".to_owned()),
        };
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(last);
        }
        tokio::time::sleep(backoff.pause(deadline - now)).await;
    }
}

fn give_up(what: &str, within: Duration, last: Option<String>) -> ! {
    match last {
        Some(last) => panic!("{what}: still not so after {within:?}; last seen: {last}"),
        None => panic!("{what}: still not so after {within:?}"),
    }
}

/// Polls the async `check` (every 10 ms at first, backing off to 200 ms)
/// until it holds, and returns its value: `()` for a `bool`, the `T` of an
/// `Option<T>` or `Result<T, E>`.
///
/// Panics with `what` (and the last `Err` seen, if the check returns a
/// `Result`) once `within` has passed. The bound only turns a hang into a
/// failure; it is not a timing assertion.
///
/// ```no_run
/// # async fn demo(queue_len: impl Fn() -> usize) {
/// use std::time::Duration;
/// use kelp_test_support::eventually;
/// eventually("the queue drains", Duration::from_secs(20), async || {
///     queue_len() == 0
/// })
/// .await;
/// # }
/// ```
pub async fn eventually<C: Check>(
    what: &str,
    within: Duration,
    check: impl AsyncFnMut() -> C,
) -> C::Value {
    match poll_async(within, check).await {
        Ok(value) => value,
        Err(last) => give_up(what, within, last),
    }
}

/// The blocking twin of [`eventually`], for tests without a runtime.
pub fn eventually_blocking<C: Check>(
    what: &str,
    within: Duration,
    check: impl FnMut() -> C,
) -> C::Value {
    match poll_blocking(within, check) {
        Ok(value) => value,
        Err(last) => give_up(what, within, last),
    }
}

/// Polls `condition` as [`eventually_blocking`] does, but returns an error
/// instead of panicking once `timeout` has passed.
pub fn wait_for<F: FnMut() -> bool>(condition: F, timeout: Duration) -> Result<()> {
    poll_blocking(timeout, condition)
        .map_err(|_| Error::new(format!("condition still false after {timeout:?}")))
}

/// Async version of [`wait_for`]: awaits `condition()` repeatedly, as
/// [`eventually`] does, but returns an error instead of panicking once
/// `timeout` has passed (a `condition()` still running then is cut off).
pub async fn wait_for_async<F, Fut>(mut condition: F, timeout: Duration) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll_async(timeout, async || condition().await)
        .await
        .map_err(|_| Error::new(format!("condition still false after {timeout:?}")))
}

/// The next value on a broadcast channel (kelp's connection events) that
/// `pick` accepts, skipping the others (and a lag). Every value seen is
/// printed on stderr, which the test harness shows only when a test fails.
/// Panics, naming `what`, when the channel closes or `within` passes: the
/// bound is there so that a broken test fails instead of hanging.
pub async fn next_matching<T: Clone + Display>(
    rx: &mut tokio::sync::broadcast::Receiver<T>,
    what: &str,
    within: Duration,
    mut pick: impl FnMut(&T) -> bool,
) -> T {
    use tokio::sync::broadcast::error::RecvError;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(value)) => {
                eprintln!("seen: {value}");
                if pick(&value) {
                    return value;
                }
            }
            Ok(Err(RecvError::Lagged(_))) => {}
            Ok(Err(e)) => panic!("waiting for {what}: the channel ended: {e}"),
            Err(_) => panic!("waiting for {what}: it did not come within {within:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_longest_and_never_past_the_bound() {
        let mut b = Backoff::new();
        let pauses: Vec<u64> = (0..7)
            .map(|_| b.pause(Duration::from_secs(1)).as_millis() as u64)
            .collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 200, 200]);
        assert_eq!(b.pause(Duration::from_millis(3)), Duration::from_millis(3));
    }

    #[test]
    fn checks_say_whether_they_hold() {
        assert_eq!(true.check(), Ok(()));
        assert_eq!(false.check(), Err(None));
        assert_eq!(Some(4).check(), Ok(4));
        assert_eq!(None::<u8>.check(), Err(None));
        assert_eq!(Ok::<u8, String>(5).check(), Ok(5));
        assert_eq!(
            Err::<u8, _>("not yet").check(),
            Err(Some("not yet".to_owned()))
        );
    }
}
