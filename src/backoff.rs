//! The one exponential backoff, shared by step retries (`retries`, `retry_delay`) and webhook
//! deliveries: the first delay, doubled after each failed attempt (saturating).

use std::time::Duration;

/// Delays between attempts: `first`, `2 × first`, `4 × first`, ...
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub fn new(first: Duration) -> Backoff {
        Backoff { next: first }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = self.next.saturating_mul(2);
        d
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.next_delay())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_saturates() {
        let ms = |n| Duration::from_millis(n);
        let v: Vec<Duration> = Backoff::new(ms(10)).take(4).collect();
        assert_eq!(v, [ms(10), ms(20), ms(40), ms(80)]);
        let mut b = Backoff::new(Duration::MAX / 2);
        b.next_delay();
        assert_eq!(b.next_delay(), Duration::MAX - Duration::from_nanos(1));
        assert_eq!(b.next_delay(), Duration::MAX);
    }
}
