//! Noticing that a Postgres client stopped waiting for its statement: a cancel request (psql's
//! Ctrl-C) or the connection closing under it (the client was killed or lost the network).
//!
//! pgwire only reads the socket between statements and only selects on cancel requests while
//! the first batch is computed, so without this a killed psql left its query running until the
//! time limit, and a cancel request during streaming did nothing. Like PostgreSQL's
//! `client_connection_check_interval`, a running statement watches a second handle on the
//! connection's socket: it is never read, only asked whether the peer closed it (`EPOLLRDHUP`),
//! which the kernel reports even when unread bytes are queued before the end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use datafusion_postgres::pgwire;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::SecretKey;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Why a running statement stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interruption {
    /// A cancel request named this connection.
    Cancelled,
    /// The client closed the connection or it broke.
    Gone,
}

/// One connection's link to its client, shared with the cancel registry.
pub(crate) struct ClientLink {
    /// A duplicate of the connection's socket, never read or written.
    socket: Option<TcpStream>,
    /// Counts cancel requests; a statement is interrupted by those arriving after it started.
    cancels: watch::Sender<u64>,
}

impl ClientLink {
    /// A link watching `socket`, a duplicate of the connection's socket (`None` when it could
    /// not be duplicated: then only cancel requests interrupt).
    pub(crate) fn new(socket: Option<TcpStream>) -> ClientLink {
        ClientLink { socket, cancels: watch::Sender::new(0) }
    }

    /// A mark to pass to [`ClientLink::interrupted`] when a statement starts.
    pub(crate) fn mark(&self) -> u64 {
        *self.cancels.borrow()
    }

    /// Resolves when a cancel request arrives after `mark` or the client goes away; never
    /// otherwise. Cancel-safe: dropping it stops watching.
    pub(crate) async fn interrupted(&self, mark: u64) -> Interruption {
        let mut cancels = self.cancels.subscribe();
        tokio::select! {
            _ = cancels.wait_for(|n| *n != mark) => Interruption::Cancelled,
            () = self.closed() => Interruption::Gone,
        }
    }

    async fn closed(&self) {
        let Some(socket) = &self.socket else { return std::future::pending().await };
        loop {
            match socket.ready(Interest::READABLE).await {
                Ok(ready) if ready.is_read_closed() || ready.is_error() => return,
                Ok(_) => {
                    // Bytes are waiting for pgwire (a pipelined message): not ours to read. Clear
                    // the readiness so the next wake-up is a new event, such as the peer closing.
                    let _ = socket.try_io(Interest::READABLE, || Err::<(), _>(std::io::ErrorKind::WouldBlock.into()));
                }
                Err(_) => return,
            }
        }
    }

    fn cancel(&self) {
        self.cancels.send_modify(|n| *n += 1);
    }
}

/// Open connections by their cancel key, so a cancel request (which arrives on a connection
/// of its own) finds the one it names. Entries leave when their connection ends.
#[derive(Default)]
pub(crate) struct Links {
    open: Mutex<HashMap<i32, (Vec<u8>, Weak<ClientLink>)>>,
}

impl Links {
    /// Registers `link` under `pid` and `secret` until the returned guard is dropped.
    pub(crate) fn register(self: &Arc<Self>, pid: i32, secret: &SecretKey, link: &Arc<ClientLink>) -> Registration {
        self.open.lock().expect("links lock").insert(pid, (secret.to_bytes().to_vec(), Arc::downgrade(link)));
        Registration { links: self.clone(), pid }
    }

    /// Interrupts the statement running on the connection `request` names, if the secret
    /// matches. Unknown or mismatched requests are ignored, as PostgreSQL does.
    pub(crate) fn cancel(&self, request: &CancelRequest) {
        let link = {
            let open = self.open.lock().expect("links lock");
            match open.get(&request.pid) {
                Some((secret, link)) if constant_time_eq(secret, &request.secret_key.to_bytes()) => link.upgrade(),
                _ => None,
            }
        };
        match link {
            Some(link) => link.cancel(),
            None => tracing::info!(pid = request.pid, "ignored a cancel request naming no open connection"),
        }
    }
}

/// A connection's entry in [`Links`], removed when dropped.
pub(crate) struct Registration {
    links: Arc<Links>,
    pid: i32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.links.open.lock().expect("links lock").remove(&self.pid);
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
