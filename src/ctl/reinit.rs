//! `reinit CLUSTER [MEMBER...] [--from-leader] [--wait] [--force]` → `POST /reinitialize`
//! on each replica named; `--wait` polls `GET /patroni` until the re-clone is over.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::api::Api;
use super::common::{confirm, Ctx, Role};
use super::select::get_members;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    pub cluster_name: String,
    pub member_names: Vec<String>,
    /// Do not ask for confirmation at any point.
    #[arg(long = "force")]
    pub force: bool,
    /// Get basebackup from leader.
    #[arg(long = "from-leader")]
    pub from_leader: bool,
    /// Wait until reinitialization completes.
    #[arg(long = "wait")]
    pub wait: bool,
}

/// `check_response`: the line for a member's answer and whether it succeeded.
pub(crate) fn check_response(
    member: &str,
    action: &str,
    status: u16,
    body: &str,
) -> (String, bool) {
    if status >= 400 {
        (
            format!("Failed: {action} for member {member}, status code={status}, ({body})"),
            false,
        )
    } else {
        (format!("Success: {action} for member {member}"), true)
    }
}

pub(crate) async fn run(ctx: &Ctx, a: Args) -> anyhow::Result<()> {
    let cluster = super::common::load(&ctx.dcs(&a.cluster_name).await?).await?;
    let members = get_members(
        &cluster,
        &a.cluster_name,
        &a.member_names,
        Role::Replica,
        a.force,
        "reinitialize",
        true,
    )
    .await?;
    let api = Api::new(&ctx.cfg)?;
    let mut waiting = Vec::new();
    for m in &members {
        let mut force = a.force;
        loop {
            let body = json!({"force": force, "from_leader": a.from_leader});
            let r = api
                .call(m, Method::POST, "reinitialize", Some(&body))
                .await?;
            let (line, started) = check_response(&m.name, "reinitialize", r.status, &r.body);
            println!("{line}");
            if !started
                && r.body.ends_with(" already in progress")
                && !force
                && confirm("Do you want to cancel it and reinitialize anyway?").await?
            {
                force = true;
                continue;
            }
            if started && a.wait {
                waiting.push(m.clone());
            }
            break;
        }
    }
    let mut shown: Vec<String> = Vec::new();
    while !waiting.is_empty() {
        let names: Vec<String> = waiting.iter().map(|m| m.name.clone()).collect();
        if names != shown {
            println!(
                "Waiting for reinitialize to complete on: {}",
                names.join(", ")
            );
            shown = names;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut still = Vec::new();
        for m in waiting {
            let status = api.get_json(&m, "patroni").await?;
            if status.get("state").and_then(|s| s.as_str()) != Some("creating replica") {
                println!("Reinitialize is completed on: {}", m.name);
            } else {
                still.push(m);
            }
        }
        waiting = still;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        assert_eq!(
            check_response("n2", "reinitialize", 200, "reinitialize started"),
            ("Success: reinitialize for member n2".to_string(), true)
        );
        assert_eq!(
            check_response("n2", "reinitialize", 503, "reinitialize already in progress"),
            (
                "Failed: reinitialize for member n2, status code=503, (reinitialize already in progress)"
                    .to_string(),
                false
            )
        );
    }
}
