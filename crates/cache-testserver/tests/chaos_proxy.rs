//! The chaos proxy itself, in front of a small line server of the test's own that answers
//! each line `x` with `x:x` (`abcd` gets `abcd:abcd\n`, whose first half is `abcd:`).

use std::{
    io,
    net::SocketAddr,
    time::{Duration, Instant},
};

use cache_testserver::chaos::{ChaosProxy, Fault, GARBLED};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
    time::timeout,
};

/// Long enough for a loaded two-core machine to forward a few bytes.
const PROMPT: Duration = Duration::from_secs(2);
/// How long "nothing arrives" is watched.
const QUIET: Duration = Duration::from_millis(300);

/// Starts the line server; it stops when the returned task is aborted.
async fn line_server() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply = format!("{line}:{line}\n");
                    if write.write_all(reply.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (address, task)
}

async fn proxied() -> (ChaosProxy, JoinHandle<()>) {
    let (server, task) = line_server().await;
    (ChaosProxy::start(server).await.unwrap(), task)
}

/// Sends `line` and reads what comes back within `within`: the bytes, and whether the
/// connection was closed.
async fn exchange(stream: &mut TcpStream, line: &str, within: Duration) -> (Vec<u8>, bool) {
    stream
        .write_all(format!("{line}\n").as_bytes())
        .await
        .unwrap();
    read_for(stream, within).await
}

/// Reads until a newline, the end of the stream, or `within`.
async fn read_for(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let deadline = Instant::now() + within;
    let mut buffer = [0_u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, stream.read(&mut buffer)).await {
            Err(_) => return (got, false),
            Ok(Ok(0) | Err(_)) => return (got, true),
            Ok(Ok(read)) => {
                got.extend_from_slice(&buffer[..read]);
                if got.ends_with(b"\n") {
                    return (got, false);
                }
            }
        }
    }
}

/// With no fault, bytes go through unchanged and the proxy counts the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_fault_bytes_go_through_unchanged() {
    let (proxy, _server) = proxied().await;
    let mut client = TcpStream::connect(proxy.address()).await.unwrap();
    assert_eq!(
        exchange(&mut client, "abc", PROMPT).await,
        (b"abc:abc\n".to_vec(), false)
    );
    assert_eq!(proxy.accepted_connections(), 1);
    assert_eq!(proxy.open_connections(), 1);
    assert_eq!(proxy.fault(), None);
}

/// Latency delays replies by at least what was asked, and ends with `heal`: after it,
/// an exchange takes well under the 700 ms the fault added (under 350 ms, leaving room
/// for a loaded machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_delays_each_direction_until_healed() {
    let (proxy, _server) = proxied().await;
    let mut client = TcpStream::connect(proxy.address()).await.unwrap();
    proxy.inject(Fault::Latency {
        to_server: Duration::from_millis(300),
        to_client: Duration::from_millis(400),
    });
    let started = Instant::now();
    assert_eq!(
        exchange(&mut client, "slow", PROMPT).await.0,
        b"slow:slow\n"
    );
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(700), "took {took:?}");
    proxy.heal();
    let started = Instant::now();
    assert_eq!(
        exchange(&mut client, "fast", PROMPT).await.0,
        b"fast:fast\n"
    );
    assert!(
        started.elapsed() < Duration::from_millis(350),
        "took {:?}",
        started.elapsed()
    );
}

/// A reply is cut in half and the connection closed; after `heal` a new one works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_mid_response_delivers_half_then_closes() {
    let (proxy, _server) = proxied().await;
    let mut client = TcpStream::connect(proxy.address()).await.unwrap();
    proxy.inject(Fault::DropMidResponse);
    let (got, closed) = exchange(&mut client, "abcd", PROMPT).await;
    assert_eq!((got.as_slice(), closed), (&b"abcd:"[..], true));
    proxy.heal();
    let mut again = TcpStream::connect(proxy.address()).await.unwrap();
    assert_eq!(exchange(&mut again, "ok", PROMPT).await.0, b"ok:ok\n");
}

/// Half a reply, then nothing while the fault lasts (later requests still reach the
/// server); `heal` delivers the rest and the held replies, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reply_is_completed_in_order_after_healing() {
    let (proxy, _server) = proxied().await;
    let mut client = TcpStream::connect(proxy.address()).await.unwrap();
    proxy.inject(Fault::HalfReplyThenStall);
    let (got, closed) = exchange(&mut client, "abcd", QUIET).await;
    assert_eq!((got.as_slice(), closed), (&b"abcd:"[..], false));
    let (more, closed) = exchange(&mut client, "ef", QUIET).await;
    assert_eq!((more.as_slice(), closed), (&b""[..], false));
    proxy.heal();
    let mut rest = Vec::new();
    while !rest.ends_with(b"ef:ef\n") {
        let (got, closed) = read_for(&mut client, PROMPT).await;
        assert!(
            !got.is_empty() && !closed,
            "after healing: {rest:?} then {got:?}"
        );
        rest.extend(got);
    }
    assert_eq!(rest, b"abcd\nef:ef\n");
}

/// Each reply is replaced by the garbled line while the fault lasts, the connection kept
/// open; after `heal` the same connection gets the server's replies again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbled_replies_replace_each_reply_until_healed() {
    let (proxy, _server) = proxied().await;
    let mut client = TcpStream::connect(proxy.address()).await.unwrap();
    assert_eq!(
        exchange(&mut client, "before", PROMPT).await.0,
        b"before:before\n"
    );
    proxy.inject(Fault::GarbledReplies);
    for line in ["abcd", "ef"] {
        let (got, closed) = exchange(&mut client, line, PROMPT).await;
        assert_eq!((got.as_slice(), closed), (GARBLED, false), "{line}");
    }
    proxy.heal();
    assert_eq!(exchange(&mut client, "ok", PROMPT).await.0, b"ok:ok\n");
}

/// A blackhole accepts connections but forwards nothing, either way, until healed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackhole_accepts_and_never_answers_until_healed() {
    let (proxy, _server) = proxied().await;
    proxy.inject(Fault::Blackhole);
    let mut client = timeout(PROMPT, TcpStream::connect(proxy.address()))
        .await
        .expect("a blackhole still accepts")
        .unwrap();
    assert_eq!(exchange(&mut client, "x", QUIET).await, (Vec::new(), false));
    proxy.heal();
    assert_eq!(
        read_for(&mut client, PROMPT).await,
        (b"x:x\n".to_vec(), false)
    );
}

/// Refusing resets open connections and refuses new ones; `heal` opens the same port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_resets_and_refuses_until_healed() {
    let (proxy, _server) = proxied().await;
    let mut client = TcpStream::connect(proxy.address()).await.unwrap();
    assert_eq!(exchange(&mut client, "a", PROMPT).await.0, b"a:a\n");
    proxy.inject(Fault::Refuse);
    let mut buffer = [0_u8; 8];
    let read = timeout(PROMPT, client.read(&mut buffer))
        .await
        .expect("reset in time");
    assert!(
        matches!(&read, Err(error) if error.kind() == io::ErrorKind::ConnectionReset),
        "an open connection: {read:?}"
    );
    let refused = refused_within(proxy.address(), PROMPT).await;
    assert!(refused, "new connections were still accepted");
    proxy.heal();
    let mut again = connect_within(proxy.address(), PROMPT).await;
    assert_eq!(exchange(&mut again, "b", PROMPT).await.0, b"b:b\n");
}

/// Dropping the proxy closes its port and every connection through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_proxy_stops_everything() {
    let (proxy, _server) = proxied().await;
    let address = proxy.address();
    let mut client = TcpStream::connect(address).await.unwrap();
    proxy.inject(Fault::Blackhole);
    drop(proxy);
    let (got, closed) = read_for(&mut client, PROMPT).await;
    assert!(
        got.is_empty() && closed,
        "after the drop: {got:?}, closed {closed}"
    );
    assert!(
        refused_within(address, PROMPT).await,
        "the port still accepts"
    );
}

/// True once a connection to `address` is refused, trying until `within` has passed.
async fn refused_within(address: SocketAddr, within: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < within {
        match TcpStream::connect(address).await {
            Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => return true,
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    false
}

/// Connects to `address`, trying until `within` has passed.
async fn connect_within(address: SocketAddr, within: Duration) -> TcpStream {
    let started = Instant::now();
    loop {
        match TcpStream::connect(address).await {
            Ok(stream) => return stream,
            Err(error) if started.elapsed() > within => panic!("cannot connect again: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// The connections open when the fault is injected go dead for good, silently (no reply,
/// no close), also after `heal`; connections opened under the fault or after it work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn severed_connections_stay_dead_and_new_ones_work() {
    let (proxy, _server) = proxied().await;
    let mut open = TcpStream::connect(proxy.address()).await.unwrap();
    assert_eq!(
        exchange(&mut open, "before", PROMPT).await.0,
        b"before:before\n"
    );
    proxy.inject(Fault::SeverOpenConnections);
    assert_eq!(
        exchange(&mut open, "abcd", QUIET).await,
        (Vec::new(), false)
    );
    let mut during = TcpStream::connect(proxy.address()).await.unwrap();
    assert_eq!(exchange(&mut during, "ef", PROMPT).await.0, b"ef:ef\n");
    proxy.heal();
    assert_eq!(exchange(&mut open, "gh", QUIET).await, (Vec::new(), false));
    assert_eq!(exchange(&mut during, "ij", PROMPT).await.0, b"ij:ij\n");
    let mut after = TcpStream::connect(proxy.address()).await.unwrap();
    assert_eq!(exchange(&mut after, "kl", PROMPT).await.0, b"kl:kl\n");
    assert_eq!(proxy.open_connections(), 3);
}
