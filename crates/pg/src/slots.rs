//! Physical replication slots on the primary.

use anyhow::Context;
use tokio_postgres::error::SqlState;

use crate::status::OBSERVE_TIMEOUT;
use crate::Pg;

impl Pg {
    /// Creates the physical slots in `names` that do not exist yet. Slots are created with
    /// `immediately_reserve` so WAL is kept from now on, before the replica first connects.
    pub async fn ensure_slots(&self, names: &[String]) -> anyhow::Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        if self.was_silent() {
            return Err(self.skipped_silent("ensuring replication slots"));
        }
        let client = self.client().await.context("ensuring replication slots")?;
        // Bounded like every other call: a server that stalls after the connection must not
        // hold the loop (and the next probe) until it answers.
        let Ok(rows) = tokio::time::timeout(
            OBSERVE_TIMEOUT,
            client.query("SELECT slot_name::text FROM pg_replication_slots", &[]),
        )
        .await
        else {
            self.mark_silent();
            anyhow::bail!("listing replication slots: no answer within {OBSERVE_TIMEOUT:?}");
        };
        let rows = rows.context("listing replication slots")?;
        let existing: Vec<String> = rows.iter().filter_map(|r| r.try_get(0).ok()).collect();
        for name in names.iter().filter(|n| !existing.contains(n)) {
            let Ok(created) = tokio::time::timeout(
                OBSERVE_TIMEOUT,
                client.execute(
                    "SELECT pg_create_physical_replication_slot($1, true)",
                    &[name],
                ),
            )
            .await
            else {
                self.mark_silent();
                anyhow::bail!(
                    "creating replication slot {name:?}: no answer within {OBSERVE_TIMEOUT:?}"
                );
            };
            match created {
                Ok(_) => tracing::info!(slot = %name, "created physical replication slot"),
                // Created concurrently (another call, an operator): what we wanted.
                Err(e) if e.code() == Some(&SqlState::DUPLICATE_OBJECT) => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("creating replication slot {name:?}"))
                }
            }
        }
        Ok(())
    }
}
