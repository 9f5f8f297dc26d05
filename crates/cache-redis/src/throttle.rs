//! A permission granted at most once per period: the replacements of a connection that
//! stopped answering are spaced out, so that a server refusing every handshake (a wrong
//! password, say) or a cluster whose slots are being read again is not dialled once per
//! call.

use std::{
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

pub(crate) struct AtMostEvery {
    period: Duration,
    /// When the permission was last granted.
    last: Mutex<Option<Instant>>,
}

impl AtMostEvery {
    pub(crate) const fn new(period: Duration) -> Self {
        Self {
            period,
            last: Mutex::new(None),
        }
    }

    /// True, and the period starts again, unless the permission was granted less than a
    /// period ago.
    pub(crate) fn claim(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < self.period) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_within_the_period() {
        let throttle = AtMostEvery::new(Duration::from_secs(3600));
        assert!(throttle.claim(), "the first claim is granted");
        assert!(
            !throttle.claim(),
            "a second claim within the period is refused"
        );
        assert!(!throttle.claim(), "and so is a third");
    }

    #[test]
    fn granted_again_once_the_period_is_over() {
        let throttle = AtMostEvery::new(Duration::ZERO);
        assert!(throttle.claim());
        assert!(throttle.claim(), "a period of zero is over at once");
    }
}
