//! `restart CLUSTER [MEMBER...] [-r ROLE] [--any] [--scheduled T] [--pg-version V]
//! [--pending] [--timeout T] [--force]` → `POST /restart` on each selected member.

use reqwest::Method;
use serde_json::{Map, Value};

use super::api::Api;
use super::common::{fail, isoformat, next_hour, parse_scheduled, prompt, py_str_time, Ctx, Role};
use super::select::{confirm_members_action, get_members};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    pub cluster_name: String,
    pub member_names: Vec<String>,
    /// Restart only members with this role.
    #[arg(short = 'r', long = "role", value_enum, default_value = "any")]
    pub role: Role,
    /// Restart a single member only.
    #[arg(long = "any")]
    pub any: bool,
    /// Timestamp of a scheduled restart in unambiguous format (e.g. ISO 8601).
    #[arg(long = "scheduled")]
    pub scheduled: Option<String>,
    /// Restart if the PostgreSQL version is less than provided (e.g. 9.5.2).
    #[arg(long = "pg-version")]
    pub pg_version: Option<String>,
    /// Restart if pending.
    #[arg(long = "pending")]
    pub pending: bool,
    /// Return error and fail over if necessary when restarting takes longer than this.
    #[arg(long = "timeout")]
    pub timeout: Option<String>,
    /// Do not ask for confirmation at any point.
    #[arg(long = "force")]
    pub force: bool,
}

/// Patroni's `postgres_version_to_int` check: `X.Y` (X ≥ 10) or `X.Y.Z`, all numbers.
pub(crate) fn check_pg_version(v: &str) -> anyhow::Result<()> {
    let parts: Result<Vec<u32>, _> = v.split('.').map(str::parse::<u32>).collect();
    let ok = match parts {
        Ok(p) => !(p.len() < 2 || p.len() > 3 || (p.len() == 2 && p[0] < 10)),
        Err(_) => false,
    };
    if ok {
        Ok(())
    } else {
        fail(format!(
            "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: {v}"
        ))
    }
}

/// The body of `POST /restart`.
pub(crate) fn restart_body(
    pending: bool,
    pg_version: Option<&str>,
    schedule: Option<&str>,
    timeout: Option<&str>,
) -> Value {
    let mut b = Map::new();
    if pending {
        b.insert("restart_pending".into(), true.into());
    }
    if let Some(v) = pg_version.filter(|v| !v.is_empty()) {
        b.insert("postgres_version".into(), v.into());
    }
    if let Some(s) = schedule {
        b.insert("schedule".into(), s.into());
    }
    if let Some(t) = timeout {
        b.insert("timeout".into(), t.into());
    }
    Value::Object(b)
}

/// What patronictl prints for a member's answer to `POST /restart`.
pub(crate) fn restart_message(member: &str, status: u16, body: &str) -> String {
    match status {
        200 => format!("Success: restart on member {member}"),
        202 => format!("Success: restart scheduled on member {member}"),
        409 => format!("Failed: another restart is already scheduled on member {member}"),
        _ => format!("Failed: restart for member {member}, status code={status}, ({body})"),
    }
}

pub(crate) async fn run(ctx: &Ctx, a: Args) -> anyhow::Result<()> {
    let name = a.cluster_name.clone();
    let cluster = super::common::load(&ctx.dcs(&name).await?).await?;
    let mut members = get_members(
        &cluster,
        &name,
        &a.member_names,
        a.role,
        a.force,
        "restart",
        false,
    )
    .await?;
    let mut scheduled = a.scheduled.clone();
    if scheduled.is_none() && !a.force {
        let text = format!("When should the restart take place (e.g. {}) ", next_hour());
        scheduled = Some(prompt(&text, Some("now")).await?);
    }
    let scheduled_at = parse_scheduled(scheduled.as_deref())?;
    if a.pending && scheduled_at.is_none() {
        // Scheduled restarts are filtered at their time, not now.
        let pending_now = pgkeel_api::cluster_json(&cluster, &name);
        let is_pending = |n: &str| {
            pending_now["members"].as_array().is_some_and(|ms| {
                ms.iter().any(|m| {
                    m["name"] == n
                        && m.get("pending_restart").and_then(Value::as_bool) == Some(true)
                })
            })
        };
        members.retain(|m| is_pending(&m.name));
    }
    if a.any {
        // patronictl picks one at random; any single member will do.
        let pick = (std::process::id() as usize) % members.len().max(1);
        members = members.into_iter().skip(pick).take(1).collect();
    }
    confirm_members_action(
        &members,
        a.force,
        "restart",
        scheduled_at.as_ref().map(py_str_time).as_deref(),
        a.pending,
    )
    .await?;
    let mut version = a.pg_version.clone();
    if version.is_none() && !a.force {
        version = Some(
            prompt(
                "Restart if the PostgreSQL version is less than provided (e.g. 9.5.2) ",
                Some(""),
            )
            .await?,
        );
    }
    if let Some(v) = version.as_deref().filter(|v| !v.is_empty()) {
        check_pg_version(v)?;
    }
    let schedule = match &scheduled_at {
        Some(t) => {
            if cluster.paused() {
                return fail("Can't schedule restart in the paused state");
            }
            Some(isoformat(t))
        }
        None => None,
    };
    let body = restart_body(
        a.pending,
        version.as_deref(),
        schedule.as_deref(),
        a.timeout.as_deref(),
    );
    let api = Api::new(&ctx.cfg)?;
    for m in &members {
        if schedule.is_some() && a.force {
            // Replace a restart already scheduled there; "nothing to flush" is fine.
            let r = api.call(m, Method::DELETE, "restart", None).await?;
            if r.status >= 400 && r.status != 404 {
                println!(
                    "Failed: flush scheduled restart for member {}, status code={}, ({})",
                    m.name, r.status, r.body
                );
            }
        }
        let r = api.call(m, Method::POST, "restart", Some(&body)).await?;
        println!("{}", restart_message(&m.name, r.status, &r.body));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions() {
        for ok in ["9.6.24", "16.4", "10.0"] {
            assert!(check_pg_version(ok).is_ok(), "{ok}");
        }
        for bad in ["9.6", "16", "16.x", "1.2.3.4", ""] {
            assert!(check_pg_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bodies_and_messages() {
        assert_eq!(
            restart_body(
                true,
                Some("16.4"),
                Some("2026-01-01T00:00:00+00:00"),
                Some("30")
            ),
            json!({"restart_pending": true, "postgres_version": "16.4", "schedule": "2026-01-01T00:00:00+00:00", "timeout": "30"})
        );
        assert_eq!(restart_body(false, Some(""), None, None), json!({}));
        assert_eq!(
            restart_message("n1", 200, ""),
            "Success: restart on member n1"
        );
        assert_eq!(
            restart_message("n1", 202, ""),
            "Success: restart scheduled on member n1"
        );
        assert_eq!(
            restart_message("n1", 409, ""),
            "Failed: another restart is already scheduled on member n1"
        );
        assert_eq!(
            restart_message("n1", 503, "postgres is still starting"),
            "Failed: restart for member n1, status code=503, (postgres is still starting)"
        );
    }
}
