//! The client every measurement connects with (the benchmarks, the network-fault suite and
//! the end-to-end tests), so that all of them measure with the same client.

use std::time::Duration;

use tokio_postgres::NoTls;

/// Connects like libpq does with a multi-host DSN: each host in turn, `timeout` for the
/// whole attempt on each (connection *and* startup: a frozen server accepts the TCP
/// connection and then never answers), keeping the first that satisfies
/// `target_session_attrs`. tokio-postgres alone bounds only the TCP connect, so one frozen
/// host would stall every later one.
pub async fn connect(dsn: &str, timeout: Duration) -> anyhow::Result<tokio_postgres::Client> {
    let cfg: tokio_postgres::Config = dsn.parse()?;
    let mut last = anyhow::anyhow!("no hosts in {dsn}");
    for (i, host) in cfg.get_hosts().iter().enumerate() {
        let tokio_postgres::config::Host::Tcp(host) = host else {
            continue;
        };
        let port = cfg
            .get_ports()
            .get(i)
            .or(cfg.get_ports().first())
            .copied()
            .unwrap_or(5432);
        let mut one = tokio_postgres::Config::new();
        one.host(host)
            .port(port)
            .connect_timeout(timeout)
            .target_session_attrs(cfg.get_target_session_attrs());
        if let Some(u) = cfg.get_user() {
            one.user(u);
        }
        if let Some(p) = cfg.get_password() {
            one.password(p);
        }
        if let Some(d) = cfg.get_dbname() {
            one.dbname(d);
        }
        match tokio::time::timeout(timeout, one.connect(NoTls)).await {
            Ok(Ok((client, conn))) => {
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                return Ok(client);
            }
            Ok(Err(e)) => last = e.into(),
            Err(_) => last = anyhow::anyhow!("{host}:{port}: no answer within {timeout:?}"),
        }
    }
    Err(last)
}
