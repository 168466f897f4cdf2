//! What one client may hold of the REST API: time to send a request, bytes in a body, and
//! (all clients together) connections.
//!
//! Patroni has no settings for these (its `request_queue_size` is the listen backlog), so
//! they are constants, documented in the README. The connection cap is derived from the
//! process's open-files limit so that a flood of connections can never take the descriptors
//! the agent needs to observe PostgreSQL, talk to etcd and run the fence: [`FD_RESERVE`]
//! stay free whatever the API is asked to hold.

use std::time::Duration;

/// A connection that neither sends nor receives a byte for this long, while no request of
/// it is being answered, is closed: an idle keep-alive connection, one that never sends a
/// request, one that stops in the middle of a body, or one that stops reading its answer.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// A request head (request line and headers) must be complete this long after the
/// connection became ready for it (accepted, or done with its previous request), however
/// slowly its bytes trickle in: the slowloris bound.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A request body must be complete this long after its head.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest request body accepted, 1 MiB; larger ones are answered 413. Far above any
/// real request (a whole `PUT /config` is a few kB), and below etcd's default request limit
/// (1.5 MiB), so that a body the API takes is not refused by etcd afterwards.
pub const MAX_BODY: usize = 1024 * 1024;

/// The largest request head, 64 KiB (hyper answers 431 beyond it).
pub const MAX_HEAD: usize = 64 * 1024;

/// An over-limit body up to this size is still read (and thrown away) before the 413, so
/// that the client, still sending, is not reset before it reads the answer.
pub const MAX_DRAIN: usize = 8 * 1024 * 1024;

/// Open connections at most, whatever the open-files limit allows. Each costs a descriptor
/// and about 10 kB; health checks, peers and operators need a few dozen.
pub const MAX_CONNECTIONS: usize = 1024;

/// Descriptors the API leaves to the rest of the agent: its connections to PostgreSQL and
/// etcd, the fence guardian's pipe, PostgreSQL programs it runs, files it reads. The agent
/// uses a few dozen.
pub const FD_RESERVE: u64 = 512;

// Below etcd's default --max-request-bytes (1.5 MiB).
const _: () = assert!(MAX_BODY < 1_572_864);

/// The least the cap is, however low the open-files limit.
const MIN_CONNECTIONS: usize = 8;

/// The limits one server applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Open connections at most. At the cap, a new connection closes the connection that
    /// was accepted first among those not being answered; when every one is being
    /// answered, the new one is closed at once.
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_body: usize,
}

impl Limits {
    /// The limits for a process that may have `nofile` descriptors open (its soft
    /// `RLIMIT_NOFILE`): [`MAX_CONNECTIONS`], or `nofile - FD_RESERVE` when that is less.
    pub fn for_fd_limit(nofile: u64) -> Limits {
        let room = usize::try_from(nofile.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX);
        Limits {
            max_connections: room.clamp(MIN_CONNECTIONS, MAX_CONNECTIONS),
            idle_timeout: IDLE_TIMEOUT,
            header_timeout: HEADER_TIMEOUT,
            body_timeout: BODY_TIMEOUT,
            max_body: MAX_BODY,
        }
    }
}

impl Default for Limits {
    /// The limits at the usual soft limit of 1024 descriptors.
    fn default() -> Self {
        Limits::for_fd_limit(1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_the_reserve() {
        assert_eq!(Limits::for_fd_limit(1024).max_connections, 512);
        assert_eq!(Limits::for_fd_limit(1300).max_connections, 788);
        assert_eq!(
            Limits::for_fd_limit(20_000).max_connections,
            MAX_CONNECTIONS
        );
        assert_eq!(
            Limits::for_fd_limit(1_048_576).max_connections,
            MAX_CONNECTIONS
        );
        assert_eq!(Limits::for_fd_limit(256).max_connections, MIN_CONNECTIONS);
        assert_eq!(
            Limits::for_fd_limit(u64::MAX).max_connections,
            MAX_CONNECTIONS
        );
        // The slowloris bound is not shorter than the idle one: a client that is sending
        // its head gets the longer of the two.
        let l = Limits::default();
        assert!(l.header_timeout >= l.idle_timeout);
    }
}
