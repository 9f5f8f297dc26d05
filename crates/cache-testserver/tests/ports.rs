//! `free_port` and `wait_for_port`.

use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use cache_testserver::{free_port, wait_for_port};

/// A port from `free_port` can be bound on 127.0.0.1 right away.
#[test]
fn free_port_returns_a_port_that_can_be_bound() {
    let port = free_port();
    assert_ne!(port, 0, "free_port returned port 0");
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port));
    assert!(
        listener.is_ok(),
        "binding 127.0.0.1:{port} from free_port failed: {listener:?}"
    );
}

/// `wait_for_port` returns as soon as something starts listening.
#[tokio::test]
async fn wait_for_port_returns_once_something_listens() {
    let port = free_port();
    let binder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("bind the port");
        // Held until the waiter is done, so the port stays open.
        std::thread::sleep(Duration::from_secs(1));
        drop(listener);
    });
    let start = Instant::now();
    let result = wait_for_port(port, Duration::from_secs(5)).await;
    let elapsed = start.elapsed();
    assert_eq!(result, Ok(()), "waiting for 127.0.0.1:{port}");
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(1),
        "wait_for_port returned after {elapsed:?}, the listener came after 300 ms"
    );
    binder.join().expect("the binder thread");
}

/// `wait_for_port` gives up with a message naming the port once its deadline has passed.
#[tokio::test]
async fn wait_for_port_fails_after_its_deadline_when_nothing_listens() {
    let port = free_port();
    let start = Instant::now();
    let result = wait_for_port(port, Duration::from_millis(300)).await;
    let elapsed = start.elapsed();
    let err = result.expect_err("nothing listens, yet wait_for_port succeeded");
    assert!(
        err.contains(&format!("127.0.0.1:{port}")),
        "the message does not name the port: {err}"
    );
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3),
        "gave up after {elapsed:?} with a 300 ms deadline"
    );
}

/// `wait_for_port` works on a runtime built without timers or I/O, since it waits on the
/// crate's own runtime.
#[test]
fn wait_for_port_works_on_a_bare_runtime() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a port");
    let port = listener.local_addr().expect("its address").port();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a bare runtime");
    let result = runtime.block_on(wait_for_port(port, Duration::from_secs(5)));
    assert_eq!(result, Ok(()), "waiting for 127.0.0.1:{port}");
}
