//! `edit-config [CLUSTER] [-s k=v]... [-p param=v]... [--apply F|-] [--replace F|-] [-q]
//! [--force]`: changes the `config` key with compare-and-set on the revision read, after
//! showing a diff and asking.

use std::io::Read;

use serde_json::{Map, Value};

use std::time::Duration;

use pgkeel_core::cluster::Cluster;
use pgkeel_core::config::check_dynamic_with;
use pgkeel_core::guc::GucCatalog;

use super::api::Api;
use super::common::{confirm, fail, members_leader_first, Ctx};
use super::diff::unified_diff;
use super::pyfmt::{yaml_dump, yaml_load};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    pub cluster_name: Option<String>,
    /// Do not show changes.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Set specific configuration value. Can be specified multiple times.
    #[arg(short = 's', long = "set")]
    pub set: Vec<String>,
    /// Set specific PostgreSQL parameter value. Shorthand for -s postgresql.parameters.
    #[arg(short = 'p', long = "pg")]
    pub pg: Vec<String>,
    /// Apply configuration from file. Use - for stdin.
    #[arg(long = "apply")]
    pub apply: Option<String>,
    /// Apply configuration from file, replacing existing configuration. Use - for stdin.
    #[arg(long = "replace")]
    pub replace: Option<String>,
    /// Do not ask for confirmation at any point.
    #[arg(long = "force")]
    pub force: bool,
}

/// `set_path_value`: sets (or with `null` removes) a dotted key; under
/// `postgresql.parameters` the rest of the path is one GUC name, dots included. Mappings
/// left empty by a removal are removed too.
fn set_path(config: &mut Map<String, Value>, path: &[&str], value: &Value, prefix: &[&str]) {
    let joined;
    let path: Vec<&str> = if prefix == ["postgresql", "parameters"] {
        joined = path.join(".");
        vec![joined.as_str()]
    } else {
        path.to_vec()
    };
    let key = path[0];
    if path.len() == 1 {
        if value.is_null() {
            config.remove(key);
        } else {
            config.insert(key.to_string(), value.clone());
        }
        return;
    }
    if !config.get(key).is_some_and(Value::is_object) {
        config.insert(key.to_string(), Value::Object(Map::new()));
    }
    let mut prefix = prefix.to_vec();
    prefix.push(key);
    if let Some(Value::Object(inner)) = config.get_mut(key) {
        set_path(inner, &path[1..], value, &prefix);
        if inner.is_empty() {
            config.remove(key);
        }
    }
}

/// `apply_config_changes`: `key.path=yaml-value` pairs.
pub(crate) fn apply_pairs(data: &Value, pairs: &[String]) -> anyhow::Result<Value> {
    let mut changed = match data {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=').filter(|_| !pair.is_empty()) else {
            return fail(format!("Invalid parameter setting {pair}"));
        };
        let value = yaml_load(value).map_err(|e| {
            super::common::CtlError(format!("Invalid parameter setting {pair}: {e}"))
        })?;
        let path: Vec<&str> = key.trim().split('.').collect();
        set_path(&mut changed, &path, &value, &[]);
    }
    Ok(Value::Object(changed))
}

/// Patroni's `patch_config`: a recursive merge where `null` deletes.
pub(crate) fn patch_config(config: &mut Map<String, Value>, data: &Map<String, Value>) {
    for (name, value) in data {
        if value.is_null() {
            config.remove(name);
            continue;
        }
        match (config.get_mut(name), value) {
            (Some(Value::Object(existing)), Value::Object(patch)) => patch_config(existing, patch),
            _ => {
                config.insert(name.clone(), value.clone());
            }
        }
    }
}

fn read_source(name: &str) -> anyhow::Result<String> {
    if name == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        return Ok(s);
    }
    std::fs::read_to_string(name).map_err(|e| anyhow::anyhow!("cannot read {name}: {e}"))
}

/// `apply_yaml_file`: `data` patched with the mapping in the file.
fn apply_yaml(data: &Value, text: &str, source: &str) -> anyhow::Result<Value> {
    let mut changed = match data {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    match yaml_load(text)? {
        Value::Object(patch) => patch_config(&mut changed, &patch),
        Value::Null => {}
        _ => return fail(format!("{source} does not hold a YAML mapping")),
    }
    Ok(Value::Object(changed))
}

fn invoke_editor(before: &str, cluster: &str) -> anyhow::Result<Value> {
    let editor = std::env::var("EDITOR")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .or_else(|| {
            ["editor", "vi"].iter().find_map(|e| {
                std::process::Command::new("sh")
                    .args(["-c", &format!("command -v {e}")])
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
                    .map(|_| e.to_string())
            })
        });
    let Some(editor) = editor else {
        return fail("EDITOR environment variable is not set. editor or vi are not available");
    };
    let file = tempfile::Builder::new()
        .prefix(&format!("{}-config-", cluster.replace('/', "_")))
        .suffix(".yaml")
        .tempfile()?;
    std::fs::write(file.path(), before)?;
    // Through the shell so that EDITOR may carry arguments ("code -w").
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file.path())
        .status()?;
    if !status.success() {
        return fail(format!(
            "Editor exited with return code {}",
            status.code().unwrap_or(-1)
        ));
    }
    let after = std::fs::read_to_string(file.path())?;
    match yaml_load(&after)? {
        v @ Value::Object(_) => Ok(v),
        Value::Null => Ok(Value::Object(Map::new())),
        _ => fail("the edited configuration is not a YAML mapping"),
    }
}

/// The leader's pg_settings (else another member's), from `GET /parameters`.
async fn member_catalog(ctx: &Ctx, cluster: &Cluster) -> Result<GucCatalog, String> {
    const ASK_TIMEOUT: Duration = Duration::from_secs(3);
    let api = Api::new(&ctx.cfg).map_err(|e| e.to_string())?;
    let mut last = "no member publishes a REST API".to_string();
    for m in members_leader_first(cluster) {
        let asked = tokio::time::timeout(ASK_TIMEOUT, api.get_json(&m, "parameters")).await;
        match asked {
            Ok(Ok(v)) => match GucCatalog::from_json(&v) {
                Ok(c) => return Ok(c),
                Err(e) => last = format!("member {}: {e}", m.name),
            },
            Ok(Err(e)) => last = format!("{e:#}"),
            Err(_) => last = format!("member {} did not answer within {ASK_TIMEOUT:?}", m.name),
        }
    }
    Err(last)
}

pub(crate) async fn run(ctx: &Ctx, a: Args) -> anyhow::Result<()> {
    let name = ctx.cluster_name(a.cluster_name.as_deref());
    let dcs = ctx.dcs(&name).await?;
    let cluster = super::common::load(&dcs).await?;
    let Some(data) = cluster.config.clone() else {
        return fail(format!(
            "The config key does not exist in the cluster {name}"
        ));
    };
    let before = yaml_dump(&data);
    let mut changed: Option<Value> = None;
    if let Some(f) = &a.replace {
        changed = Some(apply_yaml(&Value::Object(Map::new()), &read_source(f)?, f)?);
    }
    if let Some(f) = &a.apply {
        let base = changed.clone().unwrap_or_else(|| data.clone());
        changed = Some(apply_yaml(&base, &read_source(f)?, f)?);
    }
    if !a.set.is_empty() || !a.pg.is_empty() {
        let pairs: Vec<String> = a
            .set
            .iter()
            .cloned()
            .chain(
                a.pg.iter()
                    .map(|p| format!("postgresql.parameters.{}", p.trim_start())),
            )
            .collect();
        let base = changed.clone().unwrap_or_else(|| data.clone());
        changed = Some(apply_pairs(&base, &pairs)?);
    }
    let changed = match changed {
        Some(c) => c,
        None => invoke_editor(&before, &name)?,
    };
    if changed == data {
        if !a.quiet {
            println!("Not changed");
        }
        return Ok(());
    }
    // The agents' own check, with their server's pg_settings: a value they would refuse
    // is never written (they would keep their last valid settings and report it).
    let params = |v: &Value| {
        v.get("postgresql")
            .and_then(|p| p.get("parameters"))
            .cloned()
    };
    let catalog = match params(&changed) == params(&data) {
        // No parameter changed: nothing to ask the members about.
        true => None,
        false => match member_catalog(ctx, &cluster).await {
            Ok(c) => Some(c),
            Err(why) => {
                eprintln!(
                    "warning: PostgreSQL parameters are not checked against pg_settings ({why}); \
                 the agents check them before they use them"
                );
                None
            }
        },
    };
    if let Err(why) = check_dynamic_with(&changed, catalog.as_ref()) {
        return fail(format!("invalid configuration: {why}"));
    }
    if !a.quiet {
        for line in unified_diff(&before, &yaml_dump(&changed)) {
            println!("{line}");
        }
    }
    let from_stdin = a.apply.as_deref() == Some("-") || a.replace.as_deref() == Some("-");
    if from_stdin && !a.force {
        println!("Use --force option to apply changes");
        return Ok(());
    }
    if a.force || confirm("Apply these changes?").await? {
        if !dcs.write_config(&changed, cluster.config_revision).await? {
            return fail("Config modification aborted due to concurrent changes");
        }
        println!("Configuration changed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn set_pairs() {
        let data = json!({"ttl": 30, "postgresql": {"parameters": {"max_connections": 100}}, "tags": {"a": 1}});
        let out = apply_pairs(
            &data,
            &s(&[
                "ttl=20",
                "loop_wait=5",
                "postgresql.parameters.pg_stat_statements.max=1000",
                "postgresql.parameters.max_connections=null",
                "tags.a=",
                "synchronous_mode=true",
                "name='007'",
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"ttl": 20, "loop_wait": 5, "synchronous_mode": true, "name": "007",
                   "postgresql": {"parameters": {"pg_stat_statements.max": 1000}}})
        );
        assert_eq!(
            apply_pairs(&data, &s(&["ttl"])).unwrap_err().to_string(),
            "Invalid parameter setting ttl"
        );
    }

    #[test]
    fn patch_merges_and_deletes() {
        let mut base = json!({"a": {"b": 1, "c": 2}, "d": 3, "e": [1]});
        let patch = json!({"a": {"b": null, "x": 9}, "d": null, "e": {"k": 1}, "f": "new"});
        let (Value::Object(b), Value::Object(p)) = (&mut base, &patch) else {
            unreachable!()
        };
        patch_config(b, p);
        assert_eq!(
            base,
            json!({"a": {"c": 2, "x": 9}, "e": {"k": 1}, "f": "new"})
        );
        let v = apply_yaml(&json!({"ttl": 30}), "loop_wait: 5\nttl: null\n", "f").unwrap();
        assert_eq!(v, json!({"loop_wait": 5}));
        assert!(apply_yaml(&json!({}), "- a\n", "f").is_err());
    }
}
