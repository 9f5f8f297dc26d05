//! The connections to one server: a few multiplexed connections taken in turn, each
//! dialled when first needed and again after it failed, with a growing pause between
//! dials that fail.

use std::{
    io,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use tokio::{net::TcpStream, time::Instant};

use super::connection::{Answer, Connection, Expect, Failure};

/// The pause after the second dial in a row that failed; it doubles with each further
/// failure up to [`MAX_DIAL_PAUSE`]. The first failure costs no pause: a server that
/// restarts is dialled again by the next call.
const FIRST_DIAL_PAUSE: Duration = Duration::from_millis(10);

/// The longest pause between dials to a server that keeps failing: also the most a
/// server that came back waits before it is used again.
pub(crate) const MAX_DIAL_PAUSE: Duration = Duration::from_millis(250);

/// One server's connections.
pub(crate) struct Server {
    address: String,
    slots: Box<[Mutex<Option<Arc<Connection>>>]>,
    next: AtomicUsize,
    /// Held while dialling, so that one dial serves every caller waiting for it.
    dial: tokio::sync::Mutex<Dials>,
}

/// How the last dials to a server went.
#[derive(Default)]
struct Dials {
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<Failure>,
}

impl Dials {
    fn pause(&self) -> Duration {
        match self.failures {
            0 | 1 => Duration::ZERO,
            n => FIRST_DIAL_PAUSE
                .saturating_mul(1 << (n - 2).min(16))
                .min(MAX_DIAL_PAUSE),
        }
    }

    fn failed(&mut self, failure: &Failure) {
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(Instant::now() + self.pause());
        self.last_error = Some(failure.clone());
    }

    fn succeeded(&mut self) {
        *self = Self::default();
    }

    /// A failure without a dial while the pause after the last failed one lasts.
    fn paused(&self, address: &str) -> Option<Failure> {
        let retry_at = self.retry_at?;
        let left = retry_at.checked_duration_since(Instant::now())?;
        let last = match &self.last_error {
            Some(Failure::Io(_, message) | Failure::Protocol(message)) => message.as_str(),
            Some(Failure::Timeout) => "no answer in time",
            None => "unknown",
        };
        Some(Failure::Io(
            io::ErrorKind::NotConnected,
            format!(
                "{address} is dialled again in {left:.0?}, after {} failed dials (last: {last})",
                self.failures
            ),
        ))
    }
}

impl Server {
    pub(crate) fn new(address: String, connections: usize) -> Self {
        Self {
            address,
            slots: (0..connections.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            dial: tokio::sync::Mutex::new(Dials::default()),
        }
    }

    /// Sends `payload` on one of the connections and waits for its answers until
    /// `deadline`. A request that passes its deadline fails its connection: the server
    /// stopped answering on it, so the requests queued behind fail now rather than each
    /// waiting out its own deadline, and the next call starts on a fresh connection with
    /// nothing stuck ahead of it.
    pub(crate) async fn exchange(
        &self,
        payload: Vec<u8>,
        expect: Expect,
        deadline: Instant,
    ) -> Result<Vec<Answer>, Failure> {
        let mut used = None;
        let outcome = tokio::time::timeout_at(deadline, async {
            let connection = self.connection(deadline).await?;
            used = Some(Arc::clone(&connection));
            connection.exchange(payload, expect).await
        })
        .await;
        match outcome {
            Ok(answers) => answers,
            Err(_) => {
                if let Some(connection) = used {
                    connection.fail(Failure::Timeout);
                }
                Err(Failure::Timeout)
            }
        }
    }

    /// The next connection in turn, dialled first when it is missing or failed.
    async fn connection(&self, deadline: Instant) -> Result<Arc<Connection>, Failure> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let slot = &self.slots[index];
        if let Some(connection) = usable(slot) {
            return Ok(connection);
        }
        let mut dials = self.dial.lock().await;
        // Dialled by another caller while this one waited.
        if let Some(connection) = usable(slot) {
            return Ok(connection);
        }
        if let Some(failure) = dials.paused(&self.address) {
            return Err(failure);
        }
        let dialled = match tokio::time::timeout_at(deadline, TcpStream::connect(&self.address))
            .await
        {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(error)) => Err(Failure::Io(
                error.kind(),
                format!("connecting to {}: {error}", self.address),
            )),
            Err(_) => Err(Failure::Timeout),
        };
        match dialled {
            Ok(stream) => {
                dials.succeeded();
                let connection = Arc::new(Connection::start(stream));
                *lock(slot) = Some(Arc::clone(&connection));
                Ok(connection)
            }
            Err(failure) => {
                dials.failed(&failure);
                Err(failure)
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // An `Option<Arc<_>>` replaced in one assignment cannot be left half-written.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn usable(slot: &Mutex<Option<Arc<Connection>>>) -> Option<Arc<Connection>> {
    lock(slot)
        .as_ref()
        .filter(|connection| connection.is_usable())
        .map(Arc::clone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_pauses_grow_to_a_bound() {
        let mut dials = Dials::default();
        let failure = Failure::Io(io::ErrorKind::ConnectionRefused, "refused".to_owned());
        let mut pauses = Vec::new();
        for _ in 0..8 {
            dials.failed(&failure);
            pauses.push(dials.pause().as_millis());
        }
        assert_eq!(pauses, [0, 10, 20, 40, 80, 160, 250, 250]);
        dials.succeeded();
        assert_eq!(dials.pause(), Duration::ZERO);
    }
}
