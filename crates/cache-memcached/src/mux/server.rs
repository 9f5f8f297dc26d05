//! The connections to one server: a few multiplexed connections, the less busy and then
//! the faster of two in turn taken for each request, each dialled when first needed and
//! again after it failed. One dial at a time per server: the callers that waited for a
//! dial that failed get its failure without dialling again, and after dials that time out
//! (a host that does not answer at all) the next ones wait a growing pause, calls failing
//! at once meanwhile.

use std::{
    io,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use tokio::time::Instant;

use super::connection::{Answers, Connection, Expect, Failure};
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
    slots: Box<[Slot]>,
    next: AtomicUsize,
    /// Held while dialling, so that one dial serves every caller waiting for it.
    dial: tokio::sync::Mutex<Dials>,
}

/// One connection's place, and what its recent requests saw.
#[derive(Default)]
struct Slot {
    connection: Mutex<Option<Arc<Connection>>>,
    /// Requests sent on it and not yet answered.
    in_flight: AtomicUsize,
    /// Moving average of the round trip of requests sent on it alone, in nanoseconds
    /// (0 until one is measured).
    round_trip: AtomicU64,
}

impl Slot {
    /// How busy and how slow: the lower, the better the choice.
    fn load(&self) -> (usize, u64) {
        (
            self.in_flight.load(Ordering::Relaxed),
            self.round_trip.load(Ordering::Relaxed),
        )
    }

    /// Folds a round trip into the average (one eighth of the new one).
    fn measured(&self, round_trip: Duration) {
        let sample = u64::try_from(round_trip.as_nanos()).unwrap_or(u64::MAX);
        let old = self.round_trip.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.round_trip.store(new, Ordering::Relaxed);
    }
}

/// Counts a request in flight on a slot for as long as it lives (a request whose caller
/// gave up included).
struct InFlight<'a>(&'a Slot);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every this many picks, the worse of the two candidates is taken, so that the average
/// of a connection not chosen for a while is measured again.
const EXPLORE_EVERY: usize = 256;

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
            slots: (0..connections.max(1)).map(|_| Slot::default()).collect(),
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
    ) -> Result<Answers, Failure> {
        let slot = self.pick();
        let alone = slot.in_flight.fetch_add(1, Ordering::Relaxed) == 0;
        let _in_flight = InFlight(slot);
        let started = alone.then(Instant::now);
        let mut used = None;
        let outcome = tokio::time::timeout_at(deadline, async {
            let connection = self.connection(&slot.connection, deadline).await?;
            used = Some(Arc::clone(&connection));
            connection.exchange(payload, expect).await
        })
        .await;
        match outcome {
            Ok(answers) => {
                // Only a request alone on its connection times the connection (and the
                // server thread behind it): others also wait for the requests ahead.
                if let (Some(started), Ok(_)) = (started, &answers) {
                    slot.measured(started.elapsed());
                }
                answers
            }
            Err(_) => {
                if let Some(connection) = used {
                    connection.fail(Failure::Timeout);
                }
                Err(Failure::Timeout)
            }
        }
    }

    /// The connection for the next request: of two in turn, the one with fewer requests
    /// in flight, and on a tie the one whose requests alone came back sooner. Connections
    /// to one server are served by different server threads, which the server's machine
    /// may run nearer to or farther from this process: with few callers the faster one
    /// is kept, with many the requests spread evenly.
    fn pick(&self) -> &Slot {
        let count = self.slots.len();
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let first = &self.slots[turn % count];
        if count == 1 {
            return first;
        }
        let second = &self.slots[(turn + 1) % count];
        let (better, worse) = if second.load() < first.load() {
            (second, first)
        } else {
            (first, second)
        };
        if turn.is_multiple_of(EXPLORE_EVERY) {
            worse
        } else {
            better
        }
    }

    /// The connection of `slot`, dialled first when it is missing or failed.
    async fn connection(
        &self,
        slot: &Mutex<Option<Arc<Connection>>>,
        deadline: Instant,
    ) -> Result<Arc<Connection>, Failure> {
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
        let dialled =
            match tokio::time::timeout_at(deadline, self.transport.dial(&self.address)).await {
                Ok(Ok(stream)) => Ok(stream),
                Ok(Err(error)) => Err(match transport::refusal(&error) {
                    Some(refusal) => Failure::Refused(refusal),
                    None => Failure::Io(
                        error.kind(),
                        format!("connecting to {}: {error}", self.address),
                    ),
                }),
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

    fn server(connections: usize) -> Server {
        Server::new("127.0.0.1:1".to_owned(), connections, Transport::Tcp)
    }

    fn picked(server: &Server) -> usize {
        let slot = server.pick();
        server
            .slots
            .iter()
            .position(|candidate| std::ptr::eq(candidate, slot))
            .unwrap()
    }

    #[test]
    fn the_less_busy_then_the_faster_connection_is_picked() {
        let server = server(2);
        // Skip the exploring turn.
        server.next.store(1, Ordering::Relaxed);
        server.slots[0].in_flight.store(3, Ordering::Relaxed);
        server.slots[1].in_flight.store(1, Ordering::Relaxed);
        server.slots[1].measured(Duration::from_micros(500));
        assert!((0..10).all(|_| picked(&server) == 1));
        // Equally busy (one caller: none in flight): the one that answered sooner.
        server.slots[0].in_flight.store(0, Ordering::Relaxed);
        server.slots[1].in_flight.store(0, Ordering::Relaxed);
        server.slots[0].measured(Duration::from_micros(20));
        assert!((0..10).all(|_| picked(&server) == 0));
        // Now and then the other, so that its average does not go stale.
        let picks: Vec<usize> = (0..EXPLORE_EVERY).map(|_| picked(&server)).collect();
        assert_eq!(picks.iter().filter(|&&index| index == 1).count(), 1);
    }

    #[test]
    fn the_round_trip_average_follows_its_samples() {
        let slot = Slot::default();
        slot.measured(Duration::from_micros(100));
        assert_eq!(slot.load(), (0, 100_000));
        for _ in 0..64 {
            slot.measured(Duration::from_micros(20));
        }
        let (_, average) = slot.load();
        assert!((20_000..21_000).contains(&average), "{average}");
        // Alone, a slot is always the one picked, exploring or not.
        let server = server(1);
        assert!((0..300).all(|_| picked(&server) == 0));
    }

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
