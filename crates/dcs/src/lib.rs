//! pgkeel's DCS adapter: etcd v3 over native gRPC, with Patroni's key layout and value shapes.
//!
//! Everything lives under a prefix `/<namespace>/<scope>/`: `leader` (plain member name, bound to
//! the leader's lease), `members/<name>` (JSON, same lease), `initialize`, `config`, `status`,
//! `history`. A Patroni node and a pgkeel node can read each other's cluster.
//!
//! Every call is bounded by the per-operation timeout given to [`Etcd::connect`], and every
//! failure to get an answer from etcd (but its refusal of a request too large,
//! [`DcsError::TooLarge`], or of our user, [`DcsError::Refused`]) is a
//! [`DcsError::Unavailable`]: the agent treats that as "the DCS is unreachable" (failsafe
//! territory), distinct from a compare-and-swap that etcd answered with "no", which the
//! write methods return as `Ok(false)`.
//!
//! [`Access`] says how to reach etcd: plain HTTP or TLS (checked by `pgkeel_tls`, as the
//! REST API's clients are), and a user whose token is refreshed when etcd lets it expire.

mod access;
mod etcd;
mod lease;
mod load;
mod port;
mod watch;

pub use access::Access;
pub use etcd::Etcd;
pub use load::{parse_cluster, RawKv};
pub use port::Dcs;
/// Key names under the prefix, for other implementations of [`Dcs`].
pub mod keys {
    pub use crate::etcd::{
        CONFIG, FAILOVER, FAILSAFE, HISTORY, INITIALIZE, LEADER, MEMBERS, STATUS, SYNC,
    };
}

/// Why a DCS call failed. The message names the operation and the key involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DcsError {
    /// No answer from etcd: a timeout, a connection failure or an error reported by etcd.
    #[error("etcd unavailable: {0}")]
    Unavailable(String),
    /// The request itself is wrong (bad prefix, no endpoints, a value that cannot be encoded).
    #[error("invalid DCS request: {0}")]
    Invalid(String),
    /// etcd refused the request as larger than its `--max-request-bytes` (1.5 MiB by
    /// default): etcd is fine, the value is too big.
    #[error("etcd refused the request as too large: {0}")]
    TooLarge(String),
    /// etcd answered and refused our user: a wrong password, no user where etcd requires
    /// one, or a user without the role. No retry changes it until the user is fixed.
    #[error("{0}")]
    Refused(String),
}
