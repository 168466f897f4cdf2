//! The server's own parameter definitions (`pg_settings`), read once per server start so
//! that parameters are checked against them before they are written (see `core::guc`).

use anyhow::Context;
use pgkeel_core::guc::{GucCatalog, GucRow};

use crate::status::OBSERVE_TIMEOUT;
use crate::Pg;

const CATALOG_SQL: &str = "SELECT current_setting('server_version_num')::int, name, vartype, \
     unit, min_val, max_val, coalesce(enumvals, '{}')::text[], context FROM pg_settings";

impl Pg {
    /// `pg_settings` of the running server, bounded like every other query.
    pub async fn parameter_catalog(&self) -> anyhow::Result<GucCatalog> {
        if self.was_silent() {
            return Err(self.skipped_silent("reading pg_settings"));
        }
        let client = self.client().await.context("reading pg_settings")?;
        let Ok(rows) = tokio::time::timeout(OBSERVE_TIMEOUT, client.query(CATALOG_SQL, &[])).await
        else {
            self.mark_silent();
            anyhow::bail!("reading pg_settings: no answer within {OBSERVE_TIMEOUT:?}");
        };
        let rows = rows.context("reading pg_settings")?;
        let mut version = 0;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let v: i32 = r.try_get(0)?;
            version = u32::try_from(v).unwrap_or(0);
            out.push(GucRow {
                name: r.try_get(1)?,
                vartype: r.try_get(2)?,
                unit: r.try_get(3)?,
                min_val: r.try_get(4)?,
                max_val: r.try_get(5)?,
                enumvals: r.try_get(6)?,
                context: r.try_get(7)?,
            });
        }
        Ok(GucCatalog::from_rows(version, out))
    }
}
