//! `patroni.dynamic.json` in the data directory, as Patroni keeps it: the last valid
//! `/config` this node used, read at start so that a node finds the cluster's settings
//! even when `/config` is unreadable or the DCS was wiped (the leader then writes it back).

use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;

use crate::Pg;

/// Patroni's file name, so that either agent finds the other's.
pub(crate) const CACHE_FILE: &str = "patroni.dynamic.json";

impl Pg {
    fn cache_path(&self) -> PathBuf {
        self.data_dir().join(CACHE_FILE)
    }

    /// The cached dynamic configuration; `None` when there is none or it is not JSON.
    pub async fn read_dynamic_cache(&self) -> anyhow::Result<Option<Value>> {
        let path = self.cache_path();
        self.on_disk_quick(
            "reading patroni.dynamic.json",
            move |_| match std::fs::read(&path) {
                Ok(bytes) => Ok(serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .filter(Value::is_object)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
            },
        )
        .await
    }

    /// Writes `config` to the cache (mode 0600, PostgreSQL's user); `false` when the data
    /// directory holds no cluster yet (nothing is written into an empty directory, which
    /// initdb and pg_basebackup need empty).
    pub async fn write_dynamic_cache(&self, config: &Value) -> anyhow::Result<bool> {
        let path = self.cache_path();
        let text = serde_json::to_string(config).context("serializing the dynamic config")?;
        self.on_disk_quick("writing patroni.dynamic.json", move |pg| {
            if !pg.data_dir().join("PG_VERSION").exists() {
                return Ok(false);
            }
            pg.owner()?.write_file(&path, &text, 0o600)?;
            Ok(true)
        })
        .await
    }
}
