//! L8 reconnect delays, shared by every built-in stream transport.

use std::time::Duration;

use crate::config::ReconnectConfig;

/// A connection that stayed open this long resets the backoff, even when `max_delay_ms` is larger.
const STABLE_OPEN_CAP: Duration = Duration::from_secs(30);

/// L8: exponential backoff from `initial_delay_ms`, doubling up to `max_delay_ms`, with ±50%
/// jitter (uniform in [delay/2, 3·delay/2], never above `max_delay_ms`): clients dropped by the
/// same server restart spread out, yet none retries much sooner than the schedule says.
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(config: &ReconnectConfig) -> Self {
        let initial = Duration::from_millis(config.initial_delay_ms);
        let max = Duration::from_millis(config.max_delay_ms.max(config.initial_delay_ms));
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (base * 2).min(self.max);
        let half = base / 2;
        let jittered = half + half.mul_f64(2.0 * fastrand::f64());
        jittered.min(self.max)
    }

    /// T4: an SSE `retry:` field sets the reconnection time. It becomes the schedule's start
    /// (and, when larger, its ceiling): the next attempt waits about that long, later failed ones
    /// still back off from there.
    pub(crate) fn set_initial(&mut self, delay: Duration) {
        self.initial = delay;
        self.next = delay;
        self.max = self.max.max(delay);
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.initial;
    }

    /// A connection open at least this long was not flapping: the next drop starts the
    /// schedule over.
    pub(crate) fn stable_after(&self) -> Duration {
        self.max.min(STABLE_OPEN_CAP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l8_backoff_doubles_with_jitter_up_to_max_and_resets() {
        let mut backoff = Backoff::new(&ReconnectConfig {
            initial_delay_ms: 100,
            max_delay_ms: 1000,
        });
        for expected in [100u64, 200, 400, 800, 1000, 1000] {
            let d = backoff.next_delay().as_millis() as u64;
            assert!(
                d >= expected / 2 && d <= (expected * 3 / 2).min(1000),
                "{d} vs {expected}"
            );
        }
        backoff.reset();
        let d = backoff.next_delay().as_millis() as u64;
        assert!((50..=150).contains(&d));
    }

    #[test]
    fn t4_a_server_retry_restarts_the_schedule_from_it() {
        let mut backoff = Backoff::new(&ReconnectConfig { initial_delay_ms: 100, max_delay_ms: 1000 });
        backoff.next_delay();
        backoff.next_delay();
        backoff.set_initial(Duration::from_millis(3000));
        let d = backoff.next_delay().as_millis() as u64;
        assert!((1500..=3000).contains(&d), "{d}");
        backoff.reset();
        let d = backoff.next_delay().as_millis() as u64;
        assert!((1500..=3000).contains(&d), "reset goes back to the server's delay: {d}");
    }
}
