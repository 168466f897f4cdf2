//! `reload CLUSTER [MEMBER...] [-r ROLE] [--force]` → `POST /reload` on each member.

use reqwest::Method;

use super::api::Api;
use super::common::{Ctx, Role};
use super::select::get_members;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    pub cluster_name: String,
    pub member_names: Vec<String>,
    /// Reload only members with this role.
    #[arg(short = 'r', long = "role", value_enum, default_value = "any")]
    pub role: Role,
    /// Do not ask for confirmation at any point.
    #[arg(long = "force")]
    pub force: bool,
}

/// What patronictl prints for a member's answer to `POST /reload`.
pub(crate) fn reload_message(member: &str, status: u16, body: &str, loop_wait: u64) -> String {
    match status {
        200 => format!("No changes to apply on member {member}"),
        202 => format!(
            "Reload request received for member {member} and will be processed within {loop_wait} seconds"
        ),
        _ => format!("Failed: reload for member {member}, status code={status}, ({body})"),
    }
}

pub(crate) async fn run(ctx: &Ctx, a: Args) -> anyhow::Result<()> {
    let cluster = super::common::load(&ctx.dcs(&a.cluster_name).await?).await?;
    let members = get_members(
        &cluster,
        &a.cluster_name,
        &a.member_names,
        a.role,
        a.force,
        "reload",
        true,
    )
    .await?;
    let api = Api::new(&ctx.cfg)?;
    let loop_wait = Ctx::loop_wait(&cluster);
    for m in &members {
        let r = api.call(m, Method::POST, "reload", None).await?;
        println!("{}", reload_message(&m.name, r.status, &r.body, loop_wait));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        assert_eq!(
            reload_message("n2", 202, "reload scheduled", 10),
            "Reload request received for member n2 and will be processed within 10 seconds"
        );
        assert_eq!(
            reload_message("n2", 200, "", 10),
            "No changes to apply on member n2"
        );
        assert_eq!(
            reload_message("n2", 401, "no auth header received", 10),
            "Failed: reload for member n2, status code=401, (no auth header received)"
        );
    }
}
