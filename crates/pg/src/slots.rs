//! Physical replication slots on the primary.

use anyhow::Context;
use tokio_postgres::error::SqlState;

use crate::status::OBSERVE_TIMEOUT;
use crate::Pg;
use pgkeel_core::slots::{LocalSlot, SlotAction};

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

/// How long a slot step that may have to wait (a logical slot's creation waits for running
/// transactions; advancing one decodes WAL) is given before it is left for the next loop.
/// Not a sign of a hung server: such a step does not mark the server silent.
const SLOT_WORK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The non-temporary slots of the server, with positions as WAL byte offsets.
const LIST_SLOTS: &str = "SELECT slot_name::text, slot_type::text, plugin::text, database::text, \
     pg_catalog.pg_wal_lsn_diff(restart_lsn, '0/0')::bigint, \
     pg_catalog.pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint, \
     xmin IS NOT NULL, active, COALESCE(wal_status = 'lost', false) \
     FROM pg_catalog.pg_replication_slots WHERE NOT temporary";

/// Drops `$1` only when no one streams from it, in one statement (Patroni's): the result
/// says whether it was active and whether it was dropped.
const DROP_IF_INACTIVE: &str = "WITH slots AS (SELECT slot_name, active \
     FROM pg_catalog.pg_replication_slots WHERE slot_name = $1), \
     dropped AS (SELECT pg_catalog.pg_drop_replication_slot(slot_name), true AS dropped \
     FROM slots WHERE NOT active) \
     SELECT active, COALESCE(dropped, false) FROM slots FULL OUTER JOIN dropped ON true";

impl Pg {
    /// The server's replication slots (temporary ones left out: no one manages them).
    pub async fn list_slots(&self) -> anyhow::Result<Vec<LocalSlot>> {
        if self.was_silent() {
            return Err(self.skipped_silent("listing replication slots"));
        }
        let client = self.client().await.context("listing replication slots")?;
        let Ok(rows) = tokio::time::timeout(OBSERVE_TIMEOUT, client.query(LIST_SLOTS, &[])).await
        else {
            self.mark_silent();
            anyhow::bail!("listing replication slots: no answer within {OBSERVE_TIMEOUT:?}");
        };
        let rows = rows.context("listing replication slots")?;
        let lsn = |v: Option<i64>| v.and_then(|n| u64::try_from(n).ok());
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let kind: String = r.try_get(1)?;
            out.push(LocalSlot {
                name: r.try_get(0)?,
                logical: kind == "logical",
                plugin: r.try_get(2)?,
                database: r.try_get(3)?,
                restart_lsn: lsn(r.try_get(4)?),
                confirmed_flush_lsn: lsn(r.try_get(5)?),
                has_xmin: r.try_get(6)?,
                active: r.try_get(7)?,
                wal_lost: r.try_get(8)?,
            });
        }
        Ok(out)
    }

    /// One step of a slot plan. `CopyLogical` is the caller's (it needs the primary).
    pub async fn apply_slot(&self, action: &SlotAction) -> anyhow::Result<()> {
        if self.was_silent() {
            return Err(self.skipped_silent("changing replication slots"));
        }
        match action {
            SlotAction::CreatePhysical { name } => {
                let client = self.client().await.context("creating a replication slot")?;
                let what = format!("creating physical replication slot {name:?}");
                tokio::time::timeout(
                    SLOT_WORK_TIMEOUT,
                    client.execute(
                        "SELECT pg_catalog.pg_create_physical_replication_slot($1, true) \
                         WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots \
                         WHERE slot_name = $1)",
                        &[name],
                    ),
                )
                .await
                .map_err(|_| anyhow::anyhow!("{what}: no answer within {SLOT_WORK_TIMEOUT:?}"))?
                .with_context(|| what.clone())?;
                tracing::info!(slot = %name, "created physical replication slot");
            }
            SlotAction::CreateLogical {
                name,
                database,
                plugin,
            } => {
                let what = format!(
                    "creating logical replication slot {name:?} (database {database:?}, plugin {plugin:?})"
                );
                let client = self
                    .client_of(database)
                    .await
                    .with_context(|| what.clone())?;
                bounded(
                    &what,
                    tokio::time::timeout(
                        SLOT_WORK_TIMEOUT,
                        client.execute(
                            "SELECT pg_catalog.pg_create_logical_replication_slot($1, $2) \
                             WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots \
                             WHERE slot_name = $1)",
                            &[name, plugin],
                        ),
                    )
                    .await,
                )?
                .with_context(|| what.clone())?;
                tracing::info!(slot = %name, %database, %plugin, "created logical replication slot");
            }
            SlotAction::AdvancePhysical { name, lsn } => {
                let client = self
                    .client()
                    .await
                    .context("advancing a replication slot")?;
                self.advance(&client, name, *lsn).await?;
            }
            SlotAction::AdvanceLogical {
                name,
                database,
                lsn,
            } => {
                let client = self
                    .client_of(database)
                    .await
                    .with_context(|| format!("advancing logical replication slot {name:?}"))?;
                self.advance(&client, name, *lsn).await?;
            }
            SlotAction::Drop { name, why } => {
                let client = self.client().await.context("dropping a replication slot")?;
                let what = format!("dropping replication slot {name:?}");
                let rows = bounded(
                    &what,
                    tokio::time::timeout(
                        SLOT_WORK_TIMEOUT,
                        client.query(DROP_IF_INACTIVE, &[name]),
                    )
                    .await,
                )?
                .with_context(|| what.clone())?;
                let (active, dropped) = rows
                    .first()
                    .map(|r| {
                        (
                            r.try_get::<_, Option<bool>>(0)
                                .ok()
                                .flatten()
                                .unwrap_or(false),
                            r.try_get::<_, bool>(1).unwrap_or(false),
                        )
                    })
                    .unwrap_or((false, false));
                if dropped {
                    tracing::info!(slot = %name, "dropped replication slot: {why}");
                } else if active {
                    tracing::warn!(slot = %name, "replication slot not dropped: it is active ({why})");
                }
            }
            SlotAction::CopyLogical { name, .. } => {
                anyhow::bail!("copying logical slot {name:?} from the primary is done by the agent")
            }
        }
        Ok(())
    }

    async fn advance(
        &self,
        client: &tokio_postgres::Client,
        name: &str,
        lsn: u64,
    ) -> anyhow::Result<()> {
        let to = pgkeel_core::Lsn(lsn).to_string();
        let what = format!("advancing replication slot {name:?} to {to}");
        match tokio::time::timeout(
            SLOT_WORK_TIMEOUT,
            client.execute(
                "SELECT pg_catalog.pg_replication_slot_advance($1, $2::text::pg_lsn)",
                &[&name, &to],
            ),
        )
        .await
        {
            Err(_) => anyhow::bail!("{what}: no answer within {SLOT_WORK_TIMEOUT:?}"),
            Ok(r) => {
                r.with_context(|| what.clone())?;
            }
        }
        tracing::debug!(slot = %name, lsn = %to, "advanced replication slot");
        Ok(())
    }

    /// A connection to `database` (logical slots live in one).
    async fn client_of(&self, database: &str) -> anyhow::Result<tokio_postgres::Client> {
        use crate::status::ConnectFailure;
        match self.connect_to(database, OBSERVE_TIMEOUT).await {
            Ok(c) => Ok(c),
            Err(ConnectFailure::NoAnswer) => {
                anyhow::bail!("database {database:?}: no answer within {OBSERVE_TIMEOUT:?}")
            }
            Err(ConnectFailure::NotYetAccepting { .. }) => {
                anyhow::bail!("database {database:?}: not accepting connections yet")
            }
            Err(ConnectFailure::Other(e)) => {
                Err(e.context(format!("connecting to database {database:?}")))
            }
        }
    }
}

/// A slot step's answer, or an error saying it did not come within [`SLOT_WORK_TIMEOUT`].
fn bounded<T>(what: &str, r: Result<T, tokio::time::error::Elapsed>) -> anyhow::Result<T> {
    r.map_err(|_| anyhow::anyhow!("{what}: no answer within {SLOT_WORK_TIMEOUT:?}"))
}

/// A logical slot as the primary has it, ready to be installed on a standby: its state
/// file (`pg_replslot/<name>/state`) read through `pg_read_binary_file`.
#[derive(Debug, Clone)]
pub struct SlotCopy {
    pub name: String,
    pub database: String,
    pub plugin: String,
    pub state: Vec<u8>,
}

impl Pg {
    /// Reads the state files of the logical slots `names` on the primary at `host:port`
    /// (Patroni's `copy_logical_slots`). Slots the primary does not have are left out.
    pub async fn read_primary_slots(
        &self,
        host: &str,
        port: u16,
        names: &[String],
    ) -> anyhow::Result<Vec<SlotCopy>> {
        use crate::status::ConnectFailure;
        let client = match self
            .connect_at(Some((host, port)), "postgres", OBSERVE_TIMEOUT)
            .await
        {
            Ok(c) => c,
            Err(ConnectFailure::Other(e)) => return Err(e),
            Err(_) => anyhow::bail!("the primary at {host}:{port} does not accept connections"),
        };
        let rows = bounded(
            "reading logical slots on the primary",
            tokio::time::timeout(
                SLOT_WORK_TIMEOUT,
                client.query(
                    "SELECT slot_name::text, datname::text, plugin::text, \
                     pg_catalog.pg_read_binary_file('pg_replslot/' || slot_name || '/state') \
                     FROM pg_catalog.pg_get_replication_slots() \
                     JOIN pg_catalog.pg_database ON datoid = oid \
                     WHERE NOT pg_catalog.pg_is_in_recovery() AND slot_type = 'logical' \
                     AND slot_name = ANY($1)",
                    &[&names],
                ),
            )
            .await,
        )?
        .context("reading logical slots on the primary")?;
        rows.iter()
            .map(|r| {
                Ok(SlotCopy {
                    name: r.try_get(0)?,
                    database: r.try_get(1)?,
                    plugin: r.try_get(2)?,
                    state: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Installs `slots` into the stopped server's `pg_replslot` (each written to a
    /// temporary directory, synced, then renamed into place), owned by the data
    /// directory's owner. PostgreSQL loads them when it starts.
    pub fn install_slots(&self, slots: &[SlotCopy]) -> anyhow::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let owner = self.owner()?;
        let base = self.data_dir().join("pg_replslot");
        for s in slots {
            anyhow::ensure!(
                pgkeel_core::slots::valid_slot_name(&s.name),
                "refusing to install a slot named {:?}",
                s.name
            );
            let dir = base.join(&s.name);
            let tmp = base.join(format!("{}.tmp", s.name));
            if tmp.exists() {
                std::fs::remove_dir_all(&tmp)
                    .with_context(|| format!("removing {}", tmp.display()))?;
            }
            owner.create_dir(&tmp)?;
            let file = tmp.join("state");
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&file)
                .with_context(|| format!("creating {}", file.display()))?;
            f.write_all(&s.state)?;
            f.sync_all()?;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            owner.chown(&file)?;
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("removing {}", dir.display()))?;
            }
            std::fs::rename(&tmp, &dir)
                .with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
            std::fs::File::open(&dir)?.sync_all()?;
            tracing::info!(slot = %s.name, database = %s.database, plugin = %s.plugin, "copied logical replication slot from the primary");
        }
        std::fs::File::open(&base)?.sync_all()?;
        Ok(())
    }
}
