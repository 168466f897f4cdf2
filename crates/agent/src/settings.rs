//! The PostgreSQL adapter's settings, derived from the validated config.

use std::time::Duration;

use pgkeel_core::config::DynamicConfig;
use pgkeel_core::Config;
use pgkeel_pg::{HbaLines, PgSettings};

/// Cluster-wide parameters from the dynamic config, overridden by local ones; pg_hba from
/// the local section, else the dynamic one (written exactly), else bootstrap's (after
/// pgkeel's own loopback lines' place, see `pgkeel_pg::HbaLines`).
pub fn pg_settings(cfg: &Config, dynamic: &DynamicConfig) -> PgSettings {
    let pg = &cfg.postgresql;
    let mut parameters = dynamic.parameters.clone();
    parameters.extend(pg.parameters.clone());
    let slots = pgkeel_core::slots::SlotsConfig::from_dynamic(&dynamic.json);
    if pgkeel_core::slots::needs_hot_standby_feedback(&slots, dynamic.use_slots, &cfg.tags) {
        parameters.insert("hot_standby_feedback".into(), "on".into());
    }
    let pg_hba = match [&pg.pg_hba, &dynamic.pg_hba]
        .into_iter()
        .find(|h| !h.is_empty())
    {
        Some(lines) => HbaLines::Configured(lines.clone()),
        None if !cfg.bootstrap.pg_hba.is_empty() => {
            HbaLines::Bootstrap(cfg.bootstrap.pg_hba.clone())
        }
        None => HbaLines::Defaults,
    };
    PgSettings {
        name: cfg.name.clone(),
        data_dir: pg.data_dir.clone(),
        bin_dir: pg.bin_dir.clone(),
        listen_addresses: pg.listen_addresses.clone(),
        port: pg.port,
        superuser: pg.superuser.clone(),
        replication: pg.replication.clone(),
        rewind: pg.rewind_user().clone(),
        parameters,
        pg_hba,
        pgpass: pg.pgpass.clone(),
        initdb: cfg.bootstrap.initdb.clone(),
        basebackup: pg.basebackup.clone(),
        // pgkeel's 120 s unless `pg_ctl_timeout` says otherwise.
        op_timeout: pg.pg_ctl_timeout.unwrap_or(Duration::from_secs(120)),
        probe_timeout: probe_timeout(dynamic),
        use_unix_socket: pg.use_unix_socket,
        pg_ident: pg.pg_ident.clone(),
    }
}

/// One health probe's deadline: the hang bound itself. A slow answer is an answer: only a
/// probe that got none for the whole bound makes a primary count as hung.
pub(crate) fn probe_timeout(dynamic: &DynamicConfig) -> Duration {
    dynamic.hang_timeout()
}
