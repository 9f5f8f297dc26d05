//! The connections to one server: a few multiplexed connections taken in turn, each
//! dialled when first needed and again after it failed. One dial at a time per server:
//! the callers that waited for a dial that failed get its failure without dialling again,
//! and after dials that time out (a host that does not answer at all) the next ones wait
//! a growing pause, calls failing at once meanwhile.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, PoisonError,
    },
    task::{ready, Context, Poll},
    time::Duration,
};

use tokio::{sync::oneshot, time::Instant};

use super::connection::{Answers, Connection, Expect, Failure, Payload};
use crate::transport::{self, Transport};

/// The pause after the second dial in a row that timed out; it doubles with each further
/// one up to [`MAX_DIAL_PAUSE`]. A refused dial costs no pause: it is answered at once,
/// and a server that restarts is then used by the very next call.
const FIRST_DIAL_PAUSE: Duration = Duration::from_millis(10);

/// The longest pause between dials to a server that keeps timing out.
const MAX_DIAL_PAUSE: Duration = Duration::from_millis(250);

/// One server's connections.
pub(crate) struct Server {
    address: String,
    transport: Transport,
    slots: Box<[Mutex<Option<Arc<Connection>>>]>,
    next: AtomicUsize,
    /// Held while dialling, so that one dial serves every caller waiting for it.
    dial: tokio::sync::Mutex<Dials>,
}

/// How the last dials to a server went.
#[derive(Default)]
struct Dials {
    /// Dials in a row that timed out.
    timeouts: u32,
    retry_at: Option<Instant>,
    last_failure: Option<(Instant, Failure)>,
}

impl Dials {
    fn pause(&self) -> Duration {
        match self.timeouts {
            0 | 1 => Duration::ZERO,
            n => FIRST_DIAL_PAUSE
                .saturating_mul(1 << (n - 2).min(16))
                .min(MAX_DIAL_PAUSE),
        }
    }

    fn failed(&mut self, failure: &Failure) {
        let now = Instant::now();
        if matches!(failure, Failure::Timeout) {
            self.timeouts = self.timeouts.saturating_add(1);
        }
        self.retry_at = Some(now + self.pause());
        self.last_failure = Some((now, failure.clone()));
    }

    fn succeeded(&mut self) {
        *self = Self::default();
    }

    /// The failure a caller that asked for a connection at `asked` gets without dialling:
    /// that of a dial made while it waited, or one while the pause lasts.
    fn known_failure(&self, address: &str, asked: Instant) -> Option<Failure> {
        let (failed_at, failure) = self.last_failure.as_ref()?;
        if *failed_at >= asked {
            return Some(failure.clone());
        }
        let left = self
            .retry_at?
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())?;
        Some(Failure::Io(
            io::ErrorKind::NotConnected,
            format!(
                "{address} is dialled again in {left:.0?}, after {} dials that timed out",
                self.timeouts
            ),
        ))
    }
}

impl Server {
    pub(crate) fn new(address: String, connections: usize, transport: Transport) -> Self {
        Self {
            address,
            transport,
            slots: (0..connections.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            dial: tokio::sync::Mutex::new(Dials::default()),
        }
    }

    /// Sends `payload` on one of the connections and waits for its answers until
    /// `deadline`. A request that passes its deadline fails its connection: the server
    /// stopped answering on it, so the requests queued behind fail now rather than each
    /// waiting out its own deadline, and the next call starts on a fresh connection with
    /// nothing stuck ahead of it. That holds also when the caller stops waiting first
    /// (the call's future dropped, by a layer's deadline or the application's own
    /// timeout): see [`InFlight`].
    pub(crate) async fn exchange(
        &self,
        payload: Payload,
        expect: Expect,
        deadline: Instant,
    ) -> Result<Answers, Failure> {
        let outcome = tokio::time::timeout_at(deadline, async {
            let connection = self.connection(deadline).await?;
            let answers = connection.send(payload, expect)?;
            InFlight {
                answers: Some(answers),
                connection,
                deadline,
            }
            .await
        })
        .await;
        match outcome {
            Ok(answers) => answers.map_err(|failure| self.located(failure)),
            Err(_) => Err(Failure::Timeout),
        }
    }

    /// `failure`, its message naming this server unless it does already (a dial's
    /// does): a ring's error then says which of its servers failed. A timeout says which
    /// bound ran out and names no one.
    fn located(&self, failure: Failure) -> Failure {
        let address = self.address.as_str();
        match failure {
            Failure::Io(kind, message) if !message.contains(address) => {
                Failure::Io(kind, format!("{address}: {message}"))
            }
            Failure::Protocol(message) if !message.contains(address) => {
                Failure::Protocol(format!("{address}: {message}"))
            }
            other => other,
        }
    }

    /// The next connection in turn, dialled first when it is missing or failed.
    async fn connection(&self, deadline: Instant) -> Result<Arc<Connection>, Failure> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let slot = &self.slots[index];
        if let Some(connection) = usable(slot) {
            return Ok(connection);
        }
        // A dial's future (a TLS handshake included) is over a kilobyte: boxed, it is not
        // part of, and copied with, the future of every call.
        Box::pin(self.dial_into(slot, deadline)).await
    }

    /// Dials the connection of `slot`, unless another caller did meanwhile.
    async fn dial_into(
        &self,
        slot: &Mutex<Option<Arc<Connection>>>,
        deadline: Instant,
    ) -> Result<Arc<Connection>, Failure> {
        let asked = Instant::now();
        let mut dials = self.dial.lock().await;
        // Dialled by another caller while this one waited.
        if let Some(connection) = usable(slot) {
            return Ok(connection);
        }
        if let Some(failure) = dials.known_failure(&self.address, asked) {
            return Err(failure);
        }
        let dialled = match tokio::time::timeout_at(deadline, self.transport.dial(&self.address))
            .await
        {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(error)) => Err(match transport::refusal(&error) {
                Some(refusal) => Failure::Refused(refusal),
                None => Failure::Io(error.kind(), transport::dial_message(&self.address, &error)),
            }),
            Err(_) => Err(Failure::Timeout),
        };
        match dialled {
            Ok(stream) => {
                dials.succeeded();
                let record_limit = self.transport.record_limit();
                let connection = Arc::new(Connection::start(stream, record_limit));
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

/// A request sent and not yet answered: resolves to its answers. Dropped unanswered, it
/// still holds its connection to the request's deadline: at or past it (the call timed
/// out) the connection is failed at once; before it (the caller stopped waiting) a task
/// of its own waits for the answer until then, and fails the connection if none came. A
/// connection that stopped answering (a flow a middlebox forgot, a host gone without a
/// reset) is so given up even when every call on it is cut short before its own
/// deadline, instead of holding the requests of every later call for good.
struct InFlight {
    /// `None` once answered.
    answers: Option<oneshot::Receiver<Answers>>,
    connection: Arc<Connection>,
    deadline: Instant,
}

impl Future for InFlight {
    type Output = Result<Answers, Failure>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(answers) = self.answers.as_mut() else {
            // Polled again after its answer: a caller's mistake, not the connection's.
            return Poll::Ready(Err(Failure::Protocol(
                "a request polled after its answer".to_owned(),
            )));
        };
        let received = ready!(Pin::new(answers).poll(cx));
        self.answers = None;
        Poll::Ready(received.map_err(|_| self.connection.failed()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Some(answers) = self.answers.take() else {
            return;
        };
        if Instant::now() >= self.deadline {
            self.connection.fail(Failure::Timeout);
            return;
        }
        // No runtime (dropped while it shuts down): the connection's tasks stop with it.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (connection, deadline) = (Arc::clone(&self.connection), self.deadline);
        runtime.spawn(async move {
            if tokio::time::timeout_at(deadline, answers).await.is_err() {
                connection.fail(Failure::Timeout);
            }
        });
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
    fn only_dials_that_time_out_make_a_pause() {
        let mut dials = Dials::default();
        let refused = Failure::Io(io::ErrorKind::ConnectionRefused, "refused".to_owned());
        for _ in 0..5 {
            dials.failed(&refused);
            assert_eq!(dials.pause(), Duration::ZERO);
        }
        let mut pauses = Vec::new();
        for _ in 0..8 {
            dials.failed(&Failure::Timeout);
            pauses.push(dials.pause().as_millis());
        }
        assert_eq!(pauses, [0, 10, 20, 40, 80, 160, 250, 250]);
        assert!(dials.known_failure("a", Instant::now()).is_some());
        dials.succeeded();
        assert_eq!(dials.pause(), Duration::ZERO);
        assert!(dials.known_failure("a", Instant::now()).is_none());
    }

    #[test]
    fn a_caller_that_waited_for_a_failed_dial_shares_its_failure() {
        let mut dials = Dials::default();
        let asked = Instant::now();
        dials.failed(&Failure::Io(
            io::ErrorKind::ConnectionRefused,
            "refused".to_owned(),
        ));
        assert!(matches!(
            dials.known_failure("a", asked),
            Some(Failure::Io(io::ErrorKind::ConnectionRefused, _))
        ));
        // A caller that comes after the failure dials again.
        let later = Instant::now() + Duration::from_millis(1);
        assert!(dials.known_failure("a", later).is_none());
    }
}
