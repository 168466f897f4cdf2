//! Which cluster-wide settings a running agent uses after a DCS read: `/config` when it is
//! valid, otherwise the last valid one it used. A bad or unreadable `/config` (an operator's
//! typo through `etcdctl`, a tool that skipped validation) must not change a node's
//! settings, and must never send the cluster back to each node's own `bootstrap.dcs`, which
//! differ from node to node.

use serde_json::Value;

use super::super::{Config, DynamicConfig};
use super::check::check_dynamic_with;
use super::effective::effective_dynamic;
use crate::guc::GucCatalog;

/// What the cluster's `config` key held at one read.
#[derive(Debug, Clone, Copy)]
pub enum StoredConfig<'a> {
    Absent,
    /// The key exists but is not a JSON object; the text says why.
    Unreadable(&'a str),
    Value(&'a Value),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Adopted {
    /// The settings in force from now on.
    pub settings: DynamicConfig,
    /// Why `/config` is not what is in force (`None`: it is, or it is absent).
    pub problem: Option<String>,
}

/// The settings in force after a read of `/config` (`stored`), given those in force before
/// (`last_good`: `None` at start) and, when known, the local server's `pg_settings`.
///
/// - A valid `/config` is adopted whole, with its stored JSON.
/// - A bad or unreadable one keeps `last_good` whole. An agent that starts while `/config`
///   is bad has nothing to keep: it uses the valid fields of `/config` and its own
///   `bootstrap.dcs` for the others, minus any PostgreSQL parameter the server refuses,
///   and says so.
/// - An absent one keeps `last_good` too (the leader writes it back), or at start this
///   node's `bootstrap.dcs` (a new cluster).
pub fn adopt_dynamic(
    local: &Config,
    stored: StoredConfig<'_>,
    last_good: Option<&DynamicConfig>,
    catalog: Option<&GucCatalog>,
) -> Adopted {
    let keep = |problem: String| {
        let (settings, then) = match last_good {
            Some(d) => (
                d.clone(),
                "keeping the last valid settings until it is fixed",
            ),
            None => {
                let mut d = match stored {
                    StoredConfig::Value(v) => effective_dynamic(local, Some(v)),
                    _ => local.bootstrap.dcs.clone(),
                };
                if let Some(c) = catalog {
                    d.parameters.retain(|k, v| c.check(k, v).is_ok());
                }
                (
                    d,
                    "this agent has no earlier valid settings: it uses the valid fields and \
                     this node's bootstrap.dcs for the others until it is fixed",
                )
            }
        };
        Adopted {
            settings,
            problem: Some(format!("{problem}; {then}")),
        }
    };
    match stored {
        StoredConfig::Value(v) => match check_dynamic_with(v, catalog) {
            Ok(mut d) => {
                // What the DCS holds, not the defaults the check filled in.
                d.json = v.clone();
                Adopted {
                    settings: d,
                    problem: None,
                }
            }
            Err(why) => keep(format!("/config is not valid: {why}")),
        },
        StoredConfig::Unreadable(why) => keep(format!("/config cannot be read: {why}")),
        StoredConfig::Absent => Adopted {
            settings: last_good
                .cloned()
                .unwrap_or_else(|| local.bootstrap.dcs.clone()),
            problem: None,
        },
    }
}

/// The problem with `/config` this node reports, said once per change (not every loop).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigProblem {
    current: Option<String>,
}

impl ConfigProblem {
    /// Records the latest read's problem; returns the line to log when it changed: the new
    /// problem, or that `/config` is in force again.
    pub fn note(&mut self, problem: Option<String>) -> Option<String> {
        if problem == self.current {
            return None;
        }
        let line = match &problem {
            Some(p) => p.clone(),
            None => "/config is valid again and in force".to_string(),
        };
        self.current = problem;
        Some(line)
    }

    pub fn get(&self) -> Option<&str> {
        self.current.as_deref()
    }

    pub fn is_set(&self) -> bool {
        self.current.is_some()
    }
}

/// The PostgreSQL parameters in force (the cluster's, then this node's `postgresql.parameters`
/// over them) that the local server would refuse: each is left out of `postgresql.conf`,
/// and said. Returns the lines saying so, naming the key and where it comes from.
pub fn drop_refused_parameters(
    parameters: &mut std::collections::BTreeMap<String, String>,
    local: &Config,
    catalog: &GucCatalog,
) -> Vec<String> {
    let mut said = Vec::new();
    parameters.retain(|name, value| match catalog.check(name, value) {
        Ok(()) => true,
        Err(r) => {
            let from = if local.postgresql.parameters.contains_key(name) {
                "postgresql.parameters (this node's config file)"
            } else {
                "postgresql.parameters (/config)"
            };
            said.push(format!(
                "{from} {name}: {r}; not written to postgresql.conf"
            ));
            false
        }
    });
    said
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_is_said_once_per_change() {
        let mut p = ConfigProblem::default();
        assert_eq!(p.note(None), None);
        assert_eq!(p.note(Some("bad ttl".into())), Some("bad ttl".into()));
        assert_eq!(p.note(Some("bad ttl".into())), None);
        assert_eq!(p.note(Some("bad slots".into())), Some("bad slots".into()));
        assert!(p.is_set());
        assert_eq!(
            p.note(None),
            Some("/config is valid again and in force".into())
        );
        assert_eq!(p.note(None), None);
        assert_eq!(p.get(), None);
    }
}
