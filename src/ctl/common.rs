//! What every patronictl verb shares: the loaded configuration and the DCS of the cluster
//! named on the command line, member selection by role, click-style prompts, timestamps and
//! patronictl's error convention (`Error: <message>` on stderr, exit code 1).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pgkeel_core::cluster::Cluster;
use pgkeel_core::config::CtlConfig;
use pgkeel_core::dcs_values::MemberValue;
use pgkeel_dcs::Etcd;

/// An error patronictl reports as `Error: <message>` with exit code 1 (click's
/// `ClickException`). Anything else that fails is reported the same way, with its context.
#[derive(Debug)]
pub(crate) struct CtlError(pub String);

impl std::fmt::Display for CtlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CtlError {}

/// The user closed stdin at a prompt (click's `Abort`: prints `Aborted!`, exit 1).
#[derive(Debug)]
pub(crate) struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Aborted!")
    }
}

impl std::error::Error for Aborted {}

/// `Err(CtlError(..))` as an `anyhow::Error`.
pub(crate) fn fail<T>(msg: impl Into<String>) -> anyhow::Result<T> {
    Err(CtlError(msg.into()).into())
}

/// patronictl's default `-c`: `~/.config/patroni/patronictl.yaml`.
pub(crate) fn default_config_path() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    Some(Path::new(&home).join(".config/patroni/patronictl.yaml"))
}

/// The CLI's configuration from `PATRONI_*` variables only (patronictl without a file).
fn from_environment() -> anyhow::Result<CtlConfig> {
    let vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("PATRONI_"))
        .collect();
    if vars.is_empty() {
        return fail(
            "no configuration: run pgkeel -c CONFIG <verb>, set PATRONICTL_CONFIG_FILE, create \
             ~/.config/patroni/patronictl.yaml, or set PATRONI_* variables (PATRONI_ETCD3_HOSTS...)",
        );
    }
    Ok(pgkeel_core::config::load_ctl_str_env(
        "",
        "the PATRONI_* environment variables",
        &vars,
    )?)
}

/// How long one etcd call may take before the verb fails.
const DCS_TIMEOUT: Duration = Duration::from_secs(5);

/// The configuration a verb runs with.
pub(crate) struct Ctx {
    pub cfg: CtlConfig,
}

impl Ctx {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Ctx> {
        let path = match path {
            Some(p) => {
                if !p.is_file() {
                    return fail(format!(
                        "Provided config file {} not existing or no read rights. Check the -c/--config-file parameter",
                        p.display()
                    ));
                }
                p.to_path_buf()
            }
            None => match default_config_path().filter(|p| p.is_file()) {
                Some(p) => p,
                // As patronictl: no file, then the PATRONI_* environment variables alone.
                None => {
                    return Ok(Ctx {
                        cfg: from_environment()?,
                    })
                }
            },
        };
        let cfg = pgkeel_core::config::load_ctl_file(&path)?;
        Ok(Ctx { cfg })
    }

    /// The cluster name a verb works on: the one given, else the configuration's `scope`.
    /// As in patronictl, any cluster of the configured namespace may be named.
    pub fn cluster_name(&self, given: Option<&str>) -> String {
        // An empty name (no scope configured, none given) fails at `dcs`, naming the problem.
        given.map_or_else(|| self.cfg.scope.clone(), str::to_string)
    }

    /// Connects to etcd, scoped to `/<namespace>/<cluster>/`.
    pub async fn dcs(&self, cluster: &str) -> anyhow::Result<Etcd> {
        if cluster.is_empty() || cluster.contains('/') {
            if cluster.is_empty() {
                return fail("no cluster name: give it to the verb, or set scope in the configuration (PATRONI_SCOPE)");
            }
            return fail(format!("invalid cluster name {cluster:?}"));
        }
        let prefix = format!("{}/{}/", self.cfg.namespace, cluster);
        // The certificate files are read (and checked) here, as the agent reads them at start.
        let access = pgkeel_dcs::Access::from_config(&self.cfg.etcd)?;
        let etcd = Etcd::connect(&access, prefix, DCS_TIMEOUT).await?;
        Ok(etcd)
    }

    /// `loop_wait` of the cluster's dynamic config (Patroni's default 10).
    pub fn loop_wait(cluster: &Cluster) -> u64 {
        cluster
            .config
            .as_ref()
            .and_then(|c| c.get("loop_wait"))
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .filter(|v| *v > 0)
            .unwrap_or(10)
    }
}

/// Reads the cluster and shows what was wrong in it (bad values, each quoted in bounded
/// form): the agent logs these rate-limited; a verb runs once, so it prints them once.
pub(crate) async fn load(etcd: &Etcd) -> anyhow::Result<Cluster> {
    let cluster = etcd.load().await?;
    for w in &cluster.warnings {
        tracing::warn!("{w}");
    }
    Ok(cluster)
}

/// `-r/--role` values (patronictl's `CtlPostgresqlRole`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Leader,
    Primary,
    #[value(name = "standby-leader")]
    StandbyLeader,
    Replica,
    Standby,
    Any,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Leader => "leader",
            Role::Primary => "primary",
            Role::StandbyLeader => "standby-leader",
            Role::Replica => "replica",
            Role::Standby => "standby",
            Role::Any => "any",
        })
    }
}

/// One member as the CLI sees it: its name and what it published.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub name: String,
    pub value: MemberValue,
}

/// Members of `cluster` that have `role`, in name order (`get_all_members`). For the leader
/// roles that is the leader, if its role in `members/<leader>` matches.
pub(crate) fn members_with_role(cluster: &Cluster, role: Role) -> Vec<Member> {
    let leader = cluster.leader_name().filter(|l| !l.is_empty());
    let all = cluster.members.iter().map(|(name, entry)| Member {
        name: name.clone(),
        value: entry.value().cloned().unwrap_or_default(),
    });
    match role {
        Role::Leader | Role::Primary | Role::StandbyLeader => {
            let Some(leader) = leader else {
                return vec![];
            };
            let value = cluster.member(leader).cloned().unwrap_or_default();
            let data_role = value.role.as_str();
            let ok = match role {
                Role::Leader => true,
                Role::Primary => data_role != "standby_leader",
                _ => !matches!(data_role, "primary" | "master"),
            };
            if ok {
                vec![Member {
                    name: leader.to_string(),
                    value,
                }]
            } else {
                vec![]
            }
        }
        Role::Replica | Role::Standby => all.filter(|m| Some(m.name.as_str()) != leader).collect(),
        Role::Any => all.collect(),
    }
}

/// `get_any_member`: the first member with `role` (default: the leader), or the member named.
pub(crate) fn any_member(
    cluster: &Cluster,
    role: Option<Role>,
    member: Option<&str>,
) -> anyhow::Result<Option<Member>> {
    let role = match (role, member) {
        (Some(_), Some(_)) => return fail("--role and --member are mutually exclusive options"),
        (None, Some(_)) => Role::Any,
        (r, None) => r.unwrap_or(Role::Leader),
    };
    Ok(members_with_role(cluster, role)
        .into_iter()
        .find(|m| member.is_none_or(|n| n == m.name)))
}

/// Members with an API, leader first (`get_all_members_leader_first`).
pub(crate) fn members_leader_first(cluster: &Cluster) -> Vec<Member> {
    let mut all: Vec<Member> = members_with_role(cluster, Role::Any)
        .into_iter()
        .filter(|m| !m.value.api_url.is_empty())
        .collect();
    if let Some(leader) = cluster.leader_name() {
        if let Some(i) = all.iter().position(|m| m.name == leader) {
            let m = all.remove(i);
            all.insert(0, m);
        }
    }
    all
}

/// Reads one line from stdin without blocking the runtime; `None` at end of input.
async fn read_line() -> anyhow::Result<Option<String>> {
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let n = std::io::stdin().lock().read_line(&mut line)?;
        Ok::<_, std::io::Error>((n > 0).then(|| line.trim_end_matches(['\n', '\r']).to_string()))
    })
    .await?
    .map_err(Into::into)
}

fn show_prompt(text: &str) {
    print!("{text}");
    let _ = std::io::stdout().flush();
}

/// `click.prompt(text, default=...)`: `text [default]: `; an empty answer takes the default,
/// and without a default the question is asked again. End of input aborts.
pub(crate) async fn prompt(text: &str, default: Option<&str>) -> anyhow::Result<String> {
    loop {
        match default {
            Some(d) => show_prompt(&format!("{text} [{d}]: ")),
            None => show_prompt(&format!("{text}: ")),
        }
        let Some(answer) = read_line().await? else {
            println!();
            return Err(Aborted.into());
        };
        if !answer.is_empty() {
            return Ok(answer);
        }
        if let Some(d) = default {
            return Ok(d.to_string());
        }
    }
}

/// `click.confirm(text)`: `text [y/N]: `, anything but y/yes is no; unreadable answers are
/// asked again.
pub(crate) async fn confirm(text: &str) -> anyhow::Result<bool> {
    loop {
        show_prompt(&format!("{text} [y/N]: "));
        let Some(answer) = read_line().await? else {
            println!();
            return Err(Aborted.into());
        };
        match answer.trim().to_lowercase().as_str() {
            "y" | "yes" => return Ok(true),
            "" | "n" | "no" => return Ok(false),
            _ => eprintln!("Error: invalid input"),
        }
    }
}

/// patronictl's `timestamp(precision)`: local time, `%Y-%m-%d %H:%M:%S.%f` cut by
/// `7 - precision` characters (so the default shows five fractional digits, as Patroni does).
pub(crate) fn timestamp(precision: usize) -> String {
    let full = chrono::Local::now()
        .format("%Y-%m-%d %H:%M:%S.%6f")
        .to_string();
    let keep = full.len() - (7 - precision.min(6));
    full[..keep].to_string()
}

/// `%Y-%m-%dT%H:%M` of an hour from now: the example in the scheduling prompts.
pub(crate) fn next_hour() -> String {
    (chrono::Local::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M")
        .to_string()
}

/// `parse_scheduled`: `None` for absent/empty/`now`, else the time with a zone (local when
/// none is given).
pub(crate) fn parse_scheduled(
    scheduled: Option<&str>,
) -> anyhow::Result<Option<chrono::DateTime<chrono::FixedOffset>>> {
    let Some(s) = scheduled
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "now")
    else {
        return Ok(None);
    };
    match parse_time(s) {
        Some(t) => Ok(Some(t)),
        None => fail(format!(
            "Unable to parse scheduled timestamp ({s}). It should be in an unambiguous format (e.g. ISO 8601)"
        )),
    }
}

fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone};
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t);
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%d %H:%M%:z",
        "%Y-%m-%dT%H:%M:%S%.f%#z",
        "%Y-%m-%dT%H:%M%#z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t);
        }
    }
    let naive = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })?;
    chrono::Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.fixed_offset())
}

/// Python's `datetime.isoformat()`: microseconds only when not zero.
pub(crate) fn isoformat(t: &chrono::DateTime<chrono::FixedOffset>) -> String {
    if t.timestamp_subsec_micros() == 0 {
        t.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string()
    }
}

/// Python's `str(datetime)`: like `isoformat` with a space instead of `T`.
pub(crate) fn py_str_time(t: &chrono::DateTime<chrono::FixedOffset>) -> String {
    isoformat(t).replacen('T', " ", 1)
}

/// Python's `str(list_of_str)`: `['a', 'b']`.
pub(crate) fn py_list(names: &[String]) -> String {
    let items: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgkeel_core::cluster::{LeaderKey, MemberEntry};

    pub(crate) fn cluster(leader: Option<&str>, names: &[&str]) -> Cluster {
        let mut c = Cluster::default();
        for (i, n) in names.iter().enumerate() {
            c.members.insert(
                n.to_string(),
                MemberEntry::Ok(MemberValue {
                    conn_url: format!("postgres://127.0.0.{}:5432/postgres", i + 1),
                    api_url: format!("http://127.0.0.{}:8008/patroni", i + 1),
                    role: if Some(*n) == leader {
                        "primary"
                    } else {
                        "replica"
                    }
                    .into(),
                    ..Default::default()
                }),
            );
        }
        c.leader = leader.map(|l| LeaderKey {
            name: l.into(),
            lease: 1,
            revision: 1,
        });
        c
    }

    fn names(ms: Vec<Member>) -> Vec<String> {
        ms.into_iter().map(|m| m.name).collect()
    }

    #[test]
    fn members_by_role() {
        let c = cluster(Some("b"), &["a", "b", "c"]);
        assert_eq!(names(members_with_role(&c, Role::Leader)), ["b"]);
        assert_eq!(names(members_with_role(&c, Role::Primary)), ["b"]);
        assert!(members_with_role(&c, Role::StandbyLeader).is_empty());
        assert_eq!(names(members_with_role(&c, Role::Replica)), ["a", "c"]);
        assert_eq!(names(members_with_role(&c, Role::Any)), ["a", "b", "c"]);
        assert_eq!(names(members_leader_first(&c)), ["b", "a", "c"]);
        let c = cluster(None, &["a", "b"]);
        assert!(members_with_role(&c, Role::Leader).is_empty());
        assert_eq!(names(members_with_role(&c, Role::Replica)), ["a", "b"]);
    }

    #[test]
    fn any_member_defaults_to_leader_and_refuses_both_filters() {
        let c = cluster(Some("b"), &["a", "b", "c"]);
        assert_eq!(any_member(&c, None, None).unwrap().unwrap().name, "b");
        assert_eq!(any_member(&c, None, Some("c")).unwrap().unwrap().name, "c");
        assert!(any_member(&c, None, Some("zz")).unwrap().is_none());
        let e = any_member(&c, Some(Role::Any), Some("a")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--role and --member are mutually exclusive options"
        );
    }

    #[test]
    fn scheduled_times() {
        assert!(parse_scheduled(None).unwrap().is_none());
        assert!(parse_scheduled(Some("now")).unwrap().is_none());
        let t = parse_scheduled(Some("2026-11-22T12:00+02:00"))
            .unwrap()
            .unwrap();
        assert_eq!(isoformat(&t), "2026-11-22T12:00:00+02:00");
        assert_eq!(py_str_time(&t), "2026-11-22 12:00:00+02:00");
        let t = parse_scheduled(Some("2026-11-22T12:00:01.5Z"))
            .unwrap()
            .unwrap();
        assert_eq!(isoformat(&t), "2026-11-22T12:00:01.500000+00:00");
        assert!(parse_scheduled(Some("2026-11-22T12:00")).unwrap().is_some());
        let e = parse_scheduled(Some("tomorrow")).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("Unable to parse scheduled timestamp (tomorrow)"));
    }

    #[test]
    fn timestamps_cut_like_patroni() {
        assert_eq!(timestamp(0).len(), "2026-11-22 01:02:03".len());
        assert_eq!(timestamp(6).len(), "2026-11-22 01:02:03.12345".len());
        assert_eq!(py_list(&["a".into(), "b".into()]), "['a', 'b']");
    }
}
