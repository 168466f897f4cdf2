//! The open connections of one server: how many, which of them are being answered, and
//! when each last moved a byte.
//!
//! Invariants: at most `max` connections are registered, and at most `max` +
//! [`MAX_CLOSING`] sockets are open (registered, or evicted and not yet closed by their
//! task). Admitting one more first evicts the oldest connection that has not sent a byte,
//! or else the oldest that is not being answered (its task closes it as soon as it runs); when every registered connection is being
//! answered, the newcomer is refused, which costs only its accept and close. When too many
//! evicted ones are still closing (the thread is behind), the server lets their tasks run
//! before it admits the newcomer ([`Admission::Closing`]).
//! Evicting the oldest idle connection rather than refusing the newcomer is what keeps the
//! API answering under a flood: a health check's connection sends its request at once and
//! is answered long before thousands of newer ones could push it out, while a flood's
//! connections, idle or trickling a header, are the ones that get closed.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// One connection as the server tracks it.
#[derive(Debug)]
pub(crate) struct Conn {
    /// Requests of this connection being answered (past their body, not yet written).
    answering: AtomicUsize,
    /// When a byte last moved either way, or an answer was last done, in milliseconds since
    /// `epoch`.
    moved_ms: AtomicU64,
    epoch: Instant,
    /// Whether the client has sent a byte yet.
    spoke: AtomicBool,
    /// Notified when the connection is evicted: its task closes it.
    evicted: Notify,
}

impl Conn {
    fn new(now: Instant) -> Conn {
        Conn {
            answering: AtomicUsize::new(0),
            moved_ms: AtomicU64::new(0),
            epoch: now,
            spoke: AtomicBool::new(false),
            evicted: Notify::new(),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.moved_ms.store(ms, Ordering::Relaxed);
    }

    /// Marks a request as being answered until the guard is dropped.
    pub(crate) fn answering(self: &Arc<Self>) -> Answering {
        self.answering.fetch_add(1, Ordering::Relaxed);
        Answering(self.clone())
    }

    fn is_answering(&self) -> bool {
        self.answering.load(Ordering::Relaxed) > 0
    }

    /// When the connection counts as idle unless something moves: `idle` after the last
    /// movement; `None` while a request is being answered.
    pub(crate) fn idle_deadline(&self, idle: Duration) -> Option<Instant> {
        if self.is_answering() {
            return None;
        }
        Some(self.epoch + Duration::from_millis(self.moved_ms.load(Ordering::Relaxed)) + idle)
    }

    /// Resolves when the server evicts this connection.
    pub(crate) async fn evicted(&self) {
        self.evicted.notified().await
    }
}

/// A request being answered; dropping it counts as activity, so the idle time of a
/// keep-alive connection runs from the end of its last answer.
pub(crate) struct Answering(Arc<Conn>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.answering.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// What happened to a connection offered to [`Conns::admit`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Registered; no other connection had to go.
    Admitted,
    /// Registered after evicting the oldest connection not being answered.
    Evicted,
    /// Every registered connection is being answered: close the new one.
    Refused,
    /// [`MAX_CLOSING`] evicted connections are still open: let their tasks close them,
    /// then offer the new one again.
    Closing,
}

/// Evicted connections whose task has not closed them yet, at most: the sockets the API
/// holds beyond its cap, which the descriptor reserve must cover.
pub(crate) const MAX_CLOSING: usize = 64;

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    /// By id, which is the order of acceptance: the first is the oldest.
    open: BTreeMap<u64, Arc<Conn>>,
    /// Connections whose task still runs: `open` and the evicted ones still closing.
    live: usize,
}

/// The registered connections of one server.
#[derive(Debug)]
pub(crate) struct Conns {
    max: usize,
    table: Mutex<Table>,
}

/// Unregisters its connection when the connection's task ends.
pub(crate) struct Registered {
    conns: Arc<Conns>,
    id: u64,
    pub(crate) conn: Arc<Conn>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut t = self.conns.lock();
        t.open.remove(&self.id);
        t.live -= 1;
    }
}

impl Conns {
    pub(crate) fn new(max: usize) -> Arc<Conns> {
        Arc::new(Conns {
            max: max.max(1),
            table: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding this lock leaves a consistent map (every change is one
        // insert or remove): keep going.
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a newly accepted connection, evicting the oldest idle one at the cap.
    pub(crate) fn admit(self: &Arc<Self>) -> (Admission, Option<Registered>) {
        let mut t = self.lock();
        let mut admission = Admission::Admitted;
        if t.open.len() >= self.max {
            if t.live - t.open.len() >= MAX_CLOSING {
                return (Admission::Closing, None);
            }
            // The oldest that never sent a byte, else the oldest not being answered: a
            // client in the middle of its request goes after those that said nothing.
            let mut oldest_idle = None;
            for (id, c) in t.open.iter().filter(|(_, c)| !c.is_answering()) {
                oldest_idle.get_or_insert(*id);
                if !c.spoke.load(Ordering::Relaxed) {
                    oldest_idle = Some(*id);
                    break;
                }
            }
            let Some(id) = oldest_idle else {
                return (Admission::Refused, None);
            };
            if let Some(c) = t.open.remove(&id) {
                c.evicted.notify_one();
            }
            admission = Admission::Evicted;
        }
        let id = t.next_id;
        t.next_id += 1;
        t.live += 1;
        let conn = Arc::new(Conn::new(Instant::now()));
        t.open.insert(id, conn.clone());
        (
            admission,
            Some(Registered {
                conns: self.clone(),
                id,
                conn,
            }),
        )
    }

    /// How many connections are registered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().open.len()
    }
}

/// A stream that records on its [`Conn`] each time a byte moves.
pub(crate) struct Tracked<S> {
    pub(crate) inner: S,
    pub(crate) conn: Arc<Conn>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.touch();
            self.conn.spoke.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn at_the_cap_the_oldest_idle_connection_goes() {
        let conns = Conns::new(3);
        let (a1, r1) = conns.admit();
        let (_, r2) = conns.admit();
        let (_, r3) = conns.admit();
        assert_eq!(a1, Admission::Admitted);
        let (r1, r2, r3) = (r1.unwrap(), r2.unwrap(), r3.unwrap());
        // The first is being answered: the second is the oldest idle one.
        let busy = r1.conn.answering();
        let (a4, r4) = conns.admit();
        assert_eq!(a4, Admission::Evicted);
        assert_eq!(conns.len(), 3);
        // The evicted connection's task learns it at once (the permit is stored).
        tokio::time::timeout(Duration::from_millis(100), r2.conn.evicted())
            .await
            .expect("the second connection was told to close");
        drop(r2); // its task ends; it was unregistered already
        assert_eq!(conns.len(), 3);
        let _busy3 = r3.conn.answering();
        let r4 = r4.unwrap();
        let _busy4 = r4.conn.answering();
        // Everyone is being answered: the newcomer is refused.
        let (a5, r5) = conns.admit();
        assert_eq!((a5, r5.is_none()), (Admission::Refused, true));
        // The first is done: it is the oldest idle one now.
        drop(busy);
        let (a6, _r6) = conns.admit();
        assert_eq!(a6, Admission::Evicted);
        assert_eq!(conns.len(), 3);
        // Its task ends: unregistered already, nothing else goes.
        drop(r1);
        assert_eq!(conns.len(), 3);
    }

    /// A connection that has sent part of a request outlives older ones that said nothing.
    #[tokio::test(flavor = "current_thread")]
    async fn silent_connections_go_first() {
        let conns = Conns::new(2);
        let r1 = conns.admit().1.unwrap();
        let r2 = conns.admit().1.unwrap();
        r1.conn.spoke.store(true, Ordering::Relaxed);
        let (a, _r3) = conns.admit();
        assert_eq!(a, Admission::Evicted);
        tokio::time::timeout(Duration::from_millis(100), r2.conn.evicted())
            .await
            .expect("the silent one was evicted, not the older one that spoke");
    }

    /// Evicted connections whose tasks have not run yet still hold their sockets: past
    /// MAX_CLOSING of them, newcomers wait until they have closed.
    #[tokio::test(flavor = "current_thread")]
    async fn sockets_still_closing_count_against_the_cap() {
        let conns = Conns::new(2);
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(conns.admit().1.unwrap());
        }
        // Each newcomer evicts one; the evicted tasks do not end (their guards are kept).
        for _ in 0..MAX_CLOSING {
            let (a, r) = conns.admit();
            assert_eq!(a, Admission::Evicted);
            held.push(r.unwrap());
        }
        assert_eq!(conns.len(), 2);
        assert_eq!(conns.admit().0, Admission::Closing);
        // One evicted task ends: room for one more.
        drop(held.remove(0));
        assert_eq!(conns.admit().0, Admission::Evicted);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn idle_time_runs_from_the_last_movement_and_not_while_answering() {
        let conns = Conns::new(1);
        let r = conns.admit().1.unwrap();
        let idle = Duration::from_secs(5);
        let first = r.conn.idle_deadline(idle).unwrap();
        let answering = r.conn.answering();
        assert_eq!(r.conn.idle_deadline(idle), None);
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(answering);
        assert!(r.conn.idle_deadline(idle).unwrap() > first);
    }
}
