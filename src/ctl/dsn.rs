//! `dsn [CLUSTER] [-r ROLE | -m MEMBER]`: `host=H port=P` of the leader or the member asked.

use pgkeel_core::cluster::Cluster;

use super::common::{any_member, fail, Ctx, Role};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    pub cluster_name: Option<String>,
    /// Give a dsn of any member with this role.
    #[arg(short = 'r', long = "role", value_enum)]
    pub role: Option<Role>,
    /// Generate a dsn for this member.
    #[arg(short = 'm', long = "member")]
    pub member: Option<String>,
}

/// The line `dsn` prints.
pub(crate) fn dsn_line(
    cluster: &Cluster,
    role: Option<Role>,
    member: Option<&str>,
) -> anyhow::Result<String> {
    let Some(m) = any_member(cluster, role, member)? else {
        return fail("Can not find a suitable member");
    };
    let Some((host, port)) = host_port(&m.value.conn_url) else {
        return fail(format!(
            "member {} published no usable conn_url ({:?})",
            m.name, m.value.conn_url
        ));
    };
    Ok(format!("host={host} port={port}"))
}

/// Host and port of a `postgres://` URL; the port defaults to 5432 as libpq's does.
fn host_port(url: &str) -> Option<(String, u16)> {
    if let Some(hp) = pgkeel_core::dcs_values::parse_url_host_port(url) {
        return Some(hp);
    }
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_string(), 5432))
}

pub(crate) async fn run(ctx: &Ctx, a: Args) -> anyhow::Result<()> {
    let name = ctx.cluster_name(a.cluster_name.as_deref());
    if a.role.is_some() && a.member.is_some() {
        return fail("--role and --member are mutually exclusive options");
    }
    let cluster = super::common::load(&ctx.dcs(&name).await?).await?;
    println!("{}", dsn_line(&cluster, a.role, a.member.as_deref())?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgkeel_core::cluster::{LeaderKey, MemberEntry};
    use pgkeel_core::dcs_values::MemberValue;

    #[test]
    fn dsn_of_leader_replica_and_member() {
        let mut c = Cluster::default();
        for (n, url) in [
            ("a", "postgres://10.0.0.1:5433/postgres"),
            ("b", "postgres://replicator@10.0.0.2/postgres"),
        ] {
            c.members.insert(
                n.into(),
                MemberEntry::Ok(MemberValue {
                    conn_url: url.into(),
                    ..Default::default()
                }),
            );
        }
        c.leader = Some(LeaderKey {
            name: "a".into(),
            lease: 0,
            revision: 0,
        });
        assert_eq!(dsn_line(&c, None, None).unwrap(), "host=10.0.0.1 port=5433");
        assert_eq!(
            dsn_line(&c, Some(Role::Replica), None).unwrap(),
            "host=10.0.0.2 port=5432"
        );
        assert_eq!(
            dsn_line(&c, None, Some("b")).unwrap(),
            "host=10.0.0.2 port=5432"
        );
        assert_eq!(
            dsn_line(&c, None, Some("zz")).unwrap_err().to_string(),
            "Can not find a suitable member"
        );
        c.leader = None;
        assert!(dsn_line(&c, None, None).is_err());
    }
}
