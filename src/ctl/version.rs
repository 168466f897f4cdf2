//! `version [CLUSTER [MEMBER...]]`: this binary's version, then each member's as its
//! `GET /patroni` reports it.

use serde_json::Value;

use super::api::Api;
use super::common::{members_with_role, Ctx, Role};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    pub cluster_name: Option<String>,
    pub member_names: Vec<String>,
}

/// Patroni's `format_pg_version`: 90624 → 9.6.24, 140008 → 14.8.
pub(crate) fn format_pg_version(v: u64) -> String {
    if v < 100_000 {
        format!("{}.{}.{}", v / 10000, v / 100 % 100, v % 100)
    } else {
        format!("{}.{}", v / 10000, v % 100)
    }
}

/// One member's line from its status JSON.
pub(crate) fn member_line(name: &str, status: &Value) -> String {
    let version = status
        .get("patroni")
        .and_then(|p| p.get("version"))
        .map_or("None".to_string(), super::table::py_str);
    let pg = status
        .get("server_version")
        .and_then(Value::as_u64)
        .filter(|v| *v > 0)
        .map(|v| format!(" PostgreSQL {}", format_pg_version(v)))
        .unwrap_or_default();
    format!("{name}: pgkeel {version}{pg}")
}

pub(crate) async fn run(ctx: Option<&Ctx>, a: Args) -> anyhow::Result<()> {
    println!("pgkeel version {}", env!("CARGO_PKG_VERSION"));
    let (Some(ctx), Some(name)) = (ctx, a.cluster_name.as_deref()) else {
        return Ok(());
    };
    println!();
    let cluster = super::common::load(&ctx.dcs(name).await?).await?;
    let api = Api::new(&ctx.cfg)?;
    for m in members_with_role(&cluster, Role::Any) {
        if m.value.api_url.is_empty()
            || !(a.member_names.is_empty() || a.member_names.contains(&m.name))
        {
            continue;
        }
        match api.get_json(&m, "patroni").await {
            Ok(s) => println!("{}", member_line(&m.name, &s)),
            Err(e) => println!("{}: failed to get version: {e:#}", m.name),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines() {
        assert_eq!(format_pg_version(90624), "9.6.24");
        assert_eq!(format_pg_version(140008), "14.8");
        assert_eq!(
            member_line(
                "n1",
                &json!({"patroni": {"version": "0.1.0"}, "server_version": 150010})
            ),
            "n1: pgkeel 0.1.0 PostgreSQL 15.10"
        );
        assert_eq!(member_line("n1", &json!({})), "n1: pgkeel None");
    }
}
