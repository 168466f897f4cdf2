//! Extra facts for the REST API's status JSON. Best effort: an error yields empty fields,
//! because the API must answer even when PostgreSQL does not.

use serde::Serialize;
use tokio_postgres::Client;

use crate::status::OBSERVE_TIMEOUT;
use crate::Pg;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PgDetails {
    /// `server_version_num`, e.g. 150004.
    pub server_version: Option<u32>,
    /// `pg_postmaster_start_time()` as PostgreSQL prints it.
    pub postmaster_start_time: Option<String>,
    /// `pg_stat_replication` (empty on a replica or on error).
    pub replication: Vec<ReplicationInfo>,
    /// Parameters changed in the files that take effect only after a restart:
    /// name → (value in force, value in the file), Patroni's `pending_restart_reason`.
    pub pending_restart: std::collections::BTreeMap<String, (String, String)>,
}

/// One row of `pg_stat_replication`, with Patroni's field names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicationInfo {
    pub usename: Option<String>,
    pub application_name: Option<String>,
    pub client_addr: Option<String>,
    pub state: Option<String>,
    pub sync_state: Option<String>,
    pub sync_priority: Option<i32>,
}

impl Pg {
    pub async fn details(&self) -> PgDetails {
        if self.was_silent() {
            return PgDetails::default();
        }
        let Ok(client) = self.client().await else {
            return PgDetails::default();
        };
        match tokio::time::timeout(OBSERVE_TIMEOUT, query_details(&client)).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "details query failed");
                PgDetails::default()
            }
            Err(_) => {
                self.mark_silent();
                PgDetails::default()
            }
        }
    }
}

async fn query_details(client: &Client) -> Result<PgDetails, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int, pg_postmaster_start_time()::text",
            &[],
        )
        .await?;
    let version: i32 = row.try_get(0)?;
    let rows = client
        .query(
            "SELECT usename::text, application_name, host(client_addr), state, sync_state, sync_priority \
             FROM pg_stat_replication ORDER BY application_name",
            &[],
        )
        .await?;
    let replication = rows
        .iter()
        .map(|r| {
            Ok(ReplicationInfo {
                usename: r.try_get(0)?,
                application_name: r.try_get(1)?,
                client_addr: r.try_get(2)?,
                state: r.try_get(3)?,
                sync_state: r.try_get(4)?,
                sync_priority: r.try_get(5)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    // The file value comes from pg_file_settings (the last, applicable line for a name).
    let pending = client
        .query(
            "SELECT s.name, s.setting, \
                    coalesce((SELECT f.setting FROM pg_file_settings f \
                              WHERE f.name = s.name ORDER BY f.seqno DESC LIMIT 1), '') \
             FROM pg_settings s WHERE s.pending_restart \
               AND s.name NOT IN ('primary_conninfo', 'primary_slot_name', 'recovery_target_timeline') \
             ORDER BY s.name",
            &[],
        )
        .await?;
    let pending_restart = pending
        .iter()
        .map(|r| Ok((r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?))))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    Ok(PgDetails {
        server_version: u32::try_from(version).ok(),
        postmaster_start_time: row.try_get(1)?,
        replication,
        pending_restart,
    })
}
