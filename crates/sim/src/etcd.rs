//! etcd as the agents see it: a revisioned key space with leases that expire on virtual
//! time, and the transactions pgkeel's etcd adapter issues (create-if-absent, compare value,
//! compare revision). Values are encoded exactly as the adapter encodes them, and reads are
//! parsed by the adapter's own parser, so a simulated agent reads what a real one would.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pgkeel_core::cluster::Cluster;
use pgkeel_dcs::{keys, parse_cluster, RawKv};

pub const PREFIX: &str = "/service/sim/";

#[derive(Debug, Clone)]
struct Kv {
    value: Vec<u8>,
    mod_revision: i64,
    lease: i64,
}

#[derive(Debug, Default)]
pub struct Store {
    revision: i64,
    kvs: BTreeMap<String, Kv>,
    /// id → (expires at, ttl)
    leases: BTreeMap<i64, (Instant, Duration)>,
    next_lease: i64,
}

/// Why a request failed inside etcd (the adapter turns it into an error).
pub type Refused = String;

impl Store {
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Drops leases that ran out at `now`, with their keys. Returns whether anything changed.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let dead: Vec<i64> = self
            .leases
            .iter()
            .filter(|(_, (until, _))| *until <= now)
            .map(|(id, _)| *id)
            .collect();
        let mut gone = Vec::new();
        for id in dead {
            gone.extend(self.revoke(id));
        }
        gone
    }

    /// etcd back after an outage: its new leader refreshes every lease to a full ttl from now
    /// (etcd's lessor `Promote`), so a lease never expires because etcd itself was down.
    pub fn refresh_all(&mut self, now: Instant) {
        for (until, ttl) in self.leases.values_mut() {
            *until = now + *ttl;
        }
    }

    pub fn grant(&mut self, ttl: Duration, now: Instant) -> i64 {
        // etcd counts whole seconds, rounding up, as the adapter asks for.
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let ttl = Duration::from_secs(secs.max(1));
        self.next_lease += 1;
        let id = 0x7000 + self.next_lease;
        self.leases.insert(id, (now + ttl, ttl));
        id
    }

    /// `None`: etcd answers that the lease does not exist.
    pub fn keep_alive(&mut self, id: i64, now: Instant) -> Option<Duration> {
        let (until, ttl) = self.leases.get_mut(&id)?;
        *until = now + *ttl;
        Some(*ttl)
    }

    /// Removes the lease and every key bound to it; returns the keys removed.
    pub fn revoke(&mut self, id: i64) -> Vec<String> {
        self.leases.remove(&id);
        let keys: Vec<String> = self
            .kvs
            .iter()
            .filter(|(_, kv)| kv.lease == id)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &keys {
            self.kvs.remove(k);
        }
        if !keys.is_empty() {
            self.revision += 1;
        }
        keys
    }

    pub fn load(&self) -> Cluster {
        parse_cluster(
            PREFIX,
            self.kvs.iter().map(|(k, kv)| RawKv {
                key: k.as_bytes(),
                value: &kv.value,
                lease: kv.lease,
                mod_revision: kv.mod_revision,
            }),
        )
    }

    fn full(name: &str) -> String {
        format!("{PREFIX}{name}")
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.kvs
            .get(&Self::full(name))
            .map(|kv| kv.value.as_slice())
    }

    pub fn mod_revision(&self, name: &str) -> i64 {
        self.kvs
            .get(&Self::full(name))
            .map_or(0, |kv| kv.mod_revision)
    }

    /// A put; a lease that does not exist is refused, as etcd does.
    pub fn put(&mut self, name: &str, value: Vec<u8>, lease: i64) -> Result<(), Refused> {
        if lease != 0 && !self.leases.contains_key(&lease) {
            return Err(format!("put {name}: requested lease not found"));
        }
        self.revision += 1;
        self.kvs.insert(
            Self::full(name),
            Kv {
                value,
                mod_revision: self.revision,
                lease,
            },
        );
        Ok(())
    }

    pub fn delete(&mut self, name: &str) -> bool {
        let gone = self.kvs.remove(&Self::full(name)).is_some();
        if gone {
            self.revision += 1;
        }
        gone
    }

    pub fn create_if_absent(
        &mut self,
        name: &str,
        value: Vec<u8>,
        lease: i64,
    ) -> Result<bool, Refused> {
        if self.get(name).is_some() {
            return Ok(false);
        }
        self.put(name, value, lease).map(|()| true)
    }

    /// The transaction "if leader == `leader` then put `name`".
    pub fn put_if_leader(
        &mut self,
        leader: &str,
        name: &str,
        value: Vec<u8>,
    ) -> Result<bool, Refused> {
        if self.get(keys::LEADER) != Some(leader.as_bytes()) {
            return Ok(false);
        }
        self.put(name, value, 0).map(|()| true)
    }

    /// Who holds the leader key now, if anyone.
    pub fn leader(&self) -> Option<String> {
        self.get(keys::LEADER)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}
