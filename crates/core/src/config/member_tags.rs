//! The `tags` section → [`Tags`]. Unknown tags are kept: peers and `?tag_<k>=<v>` health
//! checks read them.

use serde_json::Value;

use super::diag::Diag;
use super::raw::Node;
use super::scalar::{self, found};
use crate::tags::Tags;

pub(crate) fn tags(node: Option<&Node>, diag: &mut Diag) -> Option<Tags> {
    let mut tags = Tags::default();
    let Some(node) = node else {
        return Some(tags);
    };
    let map = match &node.value {
        Value::Null => return Some(tags),
        Value::Object(m) => m,
        other => {
            diag.problem(&node.path, found(other), "a mapping of tag: value");
            return None;
        }
    };
    let before = diag.problems.len();
    let mut priority_given = None;
    let mut sync_priority_given = None;
    for (k, v) in map {
        let path = node.path.key(k);
        match k.as_str() {
            "nofailover" => tags.nofailover = scalar::boolean(v, &path, diag).unwrap_or(false),
            "noloadbalance" => {
                tags.noloadbalance = scalar::boolean(v, &path, diag).unwrap_or(false)
            }
            "clonefrom" => tags.clonefrom = scalar::boolean(v, &path, diag).unwrap_or(false),
            "nosync" => tags.nosync = scalar::boolean(v, &path, diag).unwrap_or(false),
            "failover_priority" => {
                let allowed = "an integer, 0 or more (0: never promote automatically)";
                if let Some(n) = scalar::unsigned(v, &path, diag, allowed) {
                    match u32::try_from(n) {
                        Ok(p) => {
                            tags.failover_priority = p;
                            priority_given = Some(path);
                        }
                        Err(_) => diag.problem(&path, found(v), allowed),
                    }
                }
            }
            "sync_priority" => {
                let allowed = "an integer, 0 or more (0: never a synchronous standby)";
                if let Some(n) = scalar::unsigned(v, &path, diag, allowed) {
                    match u32::try_from(n) {
                        Ok(p) => {
                            tags.sync_priority = p;
                            sync_priority_given = Some(path);
                        }
                        Err(_) => diag.problem(&path, found(v), allowed),
                    }
                }
            }
            // Patroni's predefined boolean tag that pgkeel does not act on yet: kept only when
            // set, as Patroni publishes it (`Tags._filter_tags`).
            "nostream" => {
                if crate::flag::truthy(v) {
                    tags.other.insert(k.clone(), v.clone());
                }
            }
            _ => {
                tags.other.insert(k.clone(), v.clone());
            }
        }
    }
    // Patroni's rule (config.py `_validate_failover_tags`): when the boolean tag and its
    // priority contradict each other, the boolean wins, as if no priority were given, with
    // Patroni's warning. Letting `nofailover: true` win is the safe reading.
    let py = |b: bool| if b { "True" } else { "False" };
    if let Some(path) = priority_given {
        if map.contains_key("nofailover") && (tags.nofailover == (tags.failover_priority > 0)) {
            diag.warn(
                &path,
                format!(
                    "Conflicting configuration between nofailover: {} and failover_priority: {}. \
                     Defaulting to nofailover: {}",
                    py(tags.nofailover),
                    tags.failover_priority,
                    py(tags.nofailover)
                ),
            );
            // nofailover: true already forbids promotion (the priority stays as written, and
            // is published so, as Patroni does); false with priority 0 promotes as if no
            // priority were given.
            if !tags.nofailover {
                tags.failover_priority = 1;
            }
        }
    }
    if let Some(path) = sync_priority_given {
        if map.contains_key("nosync") && (tags.nosync == (tags.sync_priority > 0)) {
            diag.warn(
                &path,
                format!(
                    "Conflicting configuration between nosync: {} and sync_priority: {}. \
                     Defaulting to nosync: {}",
                    py(tags.nosync),
                    tags.sync_priority,
                    py(tags.nosync)
                ),
            );
            if !tags.nosync {
                tags.sync_priority = 1;
            }
        }
    }
    // Published as written, Patroni's filter applied: `failover_priority: '1'` stays a
    // string and `nofailover: false` shows next to a priority, as Patroni shows them.
    tags.published = Some(crate::tags::patroni_filter(map));
    (diag.problems.len() == before).then_some(tags)
}
