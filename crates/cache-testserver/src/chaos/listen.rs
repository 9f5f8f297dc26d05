//! The proxy's listener: accepts connections and hands each to a link, closes while
//! [`Fault::Refuse`] is in force and opens the same port again when it is lifted.

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    net::{TcpListener, TcpSocket},
    sync::watch,
};

use super::{link, Counters, Fault};

/// How long to wait before binding the port again when the kernel still refuses it.
const REBIND_PAUSE: Duration = Duration::from_millis(20);

/// Binds a listener on `address` with `SO_REUSEADDR`, so that the port can be bound again
/// after a refusal while connections accepted on it are still closing.
pub(super) fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

/// Accepts until the handle is dropped (the fault channel closes).
pub(super) async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mut faults: watch::Receiver<Option<Fault>>,
    counters: Arc<Counters>,
) {
    let address = match listener.local_addr() {
        Ok(address) => address,
        Err(_) => return,
    };
    let mut listener = Some(listener);
    loop {
        let refusing = *faults.borrow_and_update() == Some(Fault::Refuse);
        if refusing {
            // Closing the socket is what makes the kernel refuse: a listener that merely
            // stops accepting still completes handshakes into its backlog.
            listener = None;
        } else if listener.is_none() {
            listener = bind(address).ok();
        }
        tokio::select! {
            changed = faults.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            accepted = accept(listener.as_ref()), if listener.is_some() => {
                if let Ok((client, _)) = accepted {
                    counters.accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::spawn(link::run(
                        client,
                        upstream,
                        faults.clone(),
                        Arc::clone(&counters),
                    ));
                }
            }
            () = tokio::time::sleep(REBIND_PAUSE), if listener.is_none() && !refusing => {}
        }
    }
}

async fn accept(listener: Option<&TcpListener>) -> io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}
