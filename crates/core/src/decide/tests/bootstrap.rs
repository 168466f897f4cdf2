//! The bootstrap race: who initializes an empty cluster and how (initdb or a custom method),
//! who clones from whom with which replica methods, the bootstrap until post_bootstrap, and
//! its abandon when it fails.

use super::*;
use crate::action::{BootstrapPlan, CloneMethod, ClonePlan, RestoreRecovery};
use crate::config::{BootstrapMethod, CustomBootstrap, CustomReplicaMethod, ReplicaMethod};

fn uninitialized(o: Obs) -> Obs {
    o.with(|o, _| o.dcs.as_mut().unwrap().initialize = None)
}

fn clone_plan(actions: &[Action]) -> &ClonePlan {
    match actions.first() {
        Some(Action::Clone { plan }) => plan,
        other => panic!("expected a clone, got {other:?}"),
    }
}

fn custom(name: &str, no_leader: bool, keep_data: bool) -> ReplicaMethod {
    let mut params = vec![("envdir".to_string(), "/etc/wal-e".to_string())];
    if no_leader {
        params.push(("no_leader".into(), "1".into()));
    }
    ReplicaMethod::Command(CustomReplicaMethod {
        name: name.into(),
        command: vec![format!("./{name}.sh"), "-v".into()],
        no_params: false,
        no_leader,
        keep_data,
        params,
    })
}

#[test]
fn an_empty_node_in_an_uninitialized_cluster_races_to_bootstrap() {
    let o = uninitialized(Obs::new("n1"));
    assert_eq!(
        o.actions(),
        vec![
            Action::ClaimInitialize,
            Action::Bootstrap {
                plan: BootstrapPlan::Initdb
            },
            Action::PostBootstrap { script: None },
        ]
    );
}

#[test]
fn a_custom_bootstrap_method_gets_scope_datadir_and_its_arguments() {
    let method = |no_params: bool, recovery_conf: Option<&[(&str, &str)]>, keep: bool| {
        uninitialized(Obs::new("n1")).with(move |_, c| {
            c.bootstrap.method = BootstrapMethod::Custom(CustomBootstrap {
                name: "restore".into(),
                command: vec!["scripts/restore.sh".into(), "--from".into()],
                no_params,
                keep_existing_recovery_conf: keep,
                recovery_conf: recovery_conf.map(|r| {
                    r.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                }),
                args: vec![("sourcedir".into(), "/backup".into())],
            })
        })
    };
    let plan = |o: Obs| match &o.actions()[1] {
        Action::Bootstrap {
            plan: BootstrapPlan::Custom(p),
        } => p.clone(),
        other => panic!("{other:?}"),
    };
    let p = plan(method(false, None, false));
    assert_eq!(
        p.argv,
        [
            "scripts/restore.sh",
            "--from",
            "--scope=demo",
            "--datadir=/tmp/x",
            "--sourcedir=/backup"
        ]
    );
    assert_eq!(p.recovery, RestoreRecovery::None);
    assert!(!p.hot_standby_off);
    // no_params: the section's arguments only.
    let p = plan(method(true, None, true));
    assert_eq!(
        p.argv,
        ["scripts/restore.sh", "--from", "--sourcedir=/backup"]
    );
    assert_eq!(p.recovery, RestoreRecovery::KeepExisting);
    assert!(
        p.hot_standby_off,
        "the backup tool's recovery: hot_standby off"
    );
    // recovery_conf wins over keep_existing_recovery_conf; a promotion at the target turns
    // hot_standby off until then (Patroni's rule).
    let p = plan(method(
        false,
        Some(&[
            ("restore_command", "cp /a/%f %p"),
            ("recovery_target_action", "promote"),
            ("standby_mode", "off"),
        ]),
        true,
    ));
    match &p.recovery {
        RestoreRecovery::Settings { settings, standby } => {
            assert!(!standby);
            assert_eq!(
                settings.len(),
                2,
                "standby_mode is not a setting: {settings:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(p.hot_standby_off);
    // Patroni's translation of pause_at_recovery_target; pausing keeps hot_standby on.
    let p = plan(method(
        false,
        Some(&[("pause_at_recovery_target", "true"), ("standby_mode", "on")]),
        false,
    ));
    assert_eq!(
        p.recovery,
        RestoreRecovery::Settings {
            settings: [("recovery_target_action".to_string(), "pause".to_string())].into(),
            standby: true
        }
    );
    assert!(!p.hot_standby_off);
}

#[test]
fn a_node_that_may_never_lead_does_not_bootstrap() {
    for tags in [
        Tags {
            nofailover: true,
            ..Tags::default()
        },
        Tags {
            failover_priority: 0,
            ..Tags::default()
        },
    ] {
        let o = uninitialized(Obs::new("n1")).with(|_, c| c.tags = tags);
        assert!(o.actions().is_empty());
    }
}

#[test]
fn an_empty_node_waits_while_another_bootstraps() {
    let o = Obs::new("n2").with(|o, c| {
        o.dcs.as_mut().unwrap().initialize = Some(String::new());
        // Not even a method that needs no leader runs during a bootstrap (Patroni's
        // `concurrent_bootstrap`).
        c.postgresql.create_replica_methods = vec![custom("restore", true, false)];
    });
    let d = o.decide_at(Duration::ZERO);
    assert!(d.actions.is_empty());
    assert!(
        d.reason.contains("another node is bootstrapping"),
        "{}",
        d.reason
    );
}

#[test]
fn an_empty_node_clones_from_the_leader_and_follows_it() {
    let o = Obs::new("n2").member("n1", "primary").leader(Some("n1"), 5);
    let up = upstream("n1", "n2");
    let (_, port) = member("n1", "primary").pg_host_port().unwrap();
    let d = o.decide_at(Duration::ZERO);
    assert_eq!(
        d.actions,
        vec![
            Action::Clone {
                plan: ClonePlan {
                    source: Some(up.clone()),
                    what: "from leader 'n1'".into(),
                    methods: vec![CloneMethod::Basebackup {
                        connstring: format!(
                            "dbname=postgres user=replicator host=127.0.0.1 port={port}"
                        )
                    }],
                }
            },
            Action::StartReplica { upstream: Some(up) }
        ]
    );
    assert!(
        d.reason.starts_with("trying to bootstrap from leader 'n1'"),
        "{}",
        d.reason
    );
}

#[test]
fn the_replica_methods_run_in_order_with_patronis_arguments() {
    let o = Obs::new("n2")
        .member("n1", "primary")
        .leader(Some("n1"), 5)
        .with(|_, c| {
            c.postgresql.create_replica_methods =
                vec![custom("wal_e", true, false), ReplicaMethod::Basebackup];
        });
    let (_, port) = member("n1", "primary").pg_host_port().unwrap();
    let conn = format!("dbname=postgres user=replicator host=127.0.0.1 port={port}");
    let actions = o.actions();
    let plan = clone_plan(&actions);
    assert_eq!(
        plan.methods,
        vec![
            CloneMethod::Command {
                name: "wal_e".into(),
                argv: [
                    "./wal_e.sh",
                    "-v",
                    "--envdir=/etc/wal-e",
                    "--no_leader=1",
                    "--scope=demo",
                    "--role=replica",
                    "--datadir=/tmp/x",
                ]
                .iter()
                .map(|s| s.to_string())
                .chain([format!("--connstring={conn}")])
                .collect(),
                command_len: 2,
                keep_data: false,
            },
            CloneMethod::Basebackup { connstring: conn },
        ]
    );
}

#[test]
fn no_params_passes_only_the_sections_own_arguments() {
    let o = Obs::new("n2")
        .member("n1", "primary")
        .leader(Some("n1"), 5)
        .with(|_, c| {
            c.postgresql.create_replica_methods =
                vec![ReplicaMethod::Command(CustomReplicaMethod {
                    name: "pgbackrest".into(),
                    command: vec!["pgbackrest".into(), "--delta".into(), "restore".into()],
                    no_params: true,
                    no_leader: false,
                    keep_data: true,
                    params: vec![
                        ("keep_data".into(), "True".into()),
                        ("no_params".into(), "True".into()),
                        ("stanza".into(), "demo".into()),
                        // A key named like one of Patroni's arguments is passed as written.
                        ("role".into(), "mine".into()),
                    ],
                })];
        });
    let actions = o.actions();
    assert_eq!(
        clone_plan(&actions).methods,
        vec![CloneMethod::Command {
            name: "pgbackrest".into(),
            argv: [
                "pgbackrest",
                "--delta",
                "restore",
                "--stanza=demo",
                "--role=mine"
            ]
            .map(String::from)
            .to_vec(),
            command_len: 3,
            keep_data: true,
        }]
    );
}

#[test]
fn a_key_named_like_patronis_argument_takes_patronis_value_in_place() {
    let o = Obs::new("n2")
        .member("n1", "primary")
        .leader(Some("n1"), 5)
        .with(|_, c| {
            c.postgresql.create_replica_methods =
                vec![ReplicaMethod::Command(CustomReplicaMethod {
                    name: "m".into(),
                    command: vec!["m".into()],
                    no_params: false,
                    no_leader: false,
                    keep_data: false,
                    params: vec![("role".into(), "mine".into()), ("x".into(), "1".into())],
                })];
        });
    let actions = o.actions();
    let CloneMethod::Command { argv, .. } = &clone_plan(&actions).methods[0] else {
        panic!()
    };
    assert_eq!(&argv[..4], ["m", "--role=replica", "--x=1", "--scope=demo"]);
}

#[test]
fn an_empty_node_prefers_a_running_clonefrom_replica() {
    let o = Obs::new("n3")
        .member("n1", "primary")
        .leader(Some("n1"), 5)
        .with(|o, _| {
            let mut m = member("n2", "replica");
            m.tags.clonefrom = true;
            o.dcs
                .as_mut()
                .unwrap()
                .members
                .insert("n2".into(), MemberEntry::Ok(m));
        });
    let actions = o.actions();
    let plan = clone_plan(&actions);
    let source = plan.source.as_ref().unwrap();
    assert_eq!(source.member, "n2");
    assert_eq!(plan.what, "from replica 'n2'");
    assert_eq!(
        source.slot, None,
        "no slot is used on a clone source that is not the leader"
    );
}

#[test]
fn an_empty_node_waits_for_a_leader_in_an_initialized_cluster() {
    assert!(Obs::new("n2").actions().is_empty());
}

#[test]
fn without_a_leader_only_the_no_leader_methods_run_and_the_replica_follows_nobody() {
    let methods = vec![
        custom("wal_e", false, false),
        ReplicaMethod::Basebackup,
        custom("restore", true, true),
    ];
    let o = Obs::new("n2").with(|_, c| c.postgresql.create_replica_methods = methods.clone());
    let d = o.decide_at(Duration::ZERO);
    let plan = clone_plan(&d.actions);
    assert_eq!(plan.source, None);
    assert_eq!(plan.what, "(without leader)");
    assert_eq!(plan.methods.len(), 1);
    let CloneMethod::Command {
        name,
        argv,
        keep_data,
        ..
    } = &plan.methods[0]
    else {
        panic!("{plan:?}")
    };
    assert_eq!((name.as_str(), *keep_data), ("restore", true));
    assert_eq!(argv.last().map(String::as_str), Some("--connstring="));
    assert_eq!(d.actions[1], Action::StartReplica { upstream: None });
    assert!(
        d.reason.starts_with("trying to bootstrap (without leader)"),
        "{}",
        d.reason
    );
    // A node that may never lead does not initialize a new cluster but may restore one
    // (Patroni's order: the initialize race only for a node that may lead).
    let o = uninitialized(Obs::new("n2")).with(|_, c| {
        c.postgresql.create_replica_methods = methods.clone();
        c.tags.nofailover = true;
    });
    assert!(matches!(o.actions()[0], Action::Clone { .. }));
}

#[test]
fn the_bootstrap_waits_for_the_end_of_recovery_then_runs_post_bootstrap() {
    let booting = |o: Obs| o.with(|o, _| o.bootstrapping = Some(Bootstrapping::Started));
    // A restored backup still recovering towards its target.
    let d = booting(Obs::new("n1").replica(100)).decide_at(Duration::ZERO);
    assert!(d.actions.is_empty());
    assert!(
        d.reason
            .starts_with("waiting for end of recovery after bootstrap"),
        "{}",
        d.reason
    );
    assert!(booting(Obs::new("n1").pg(PgView::Starting))
        .actions()
        .is_empty());
    // Promoted: post_bootstrap with the superuser's connection string (no password).
    let o = booting(Obs::new("n1").primary(100)).with(|_, c| {
        c.bootstrap.post_bootstrap = Some(vec![
            "psql".into(),
            "-w".into(),
            "-f".into(),
            "x.sql".into(),
        ]);
        c.postgresql.listen_addresses = vec!["0.0.0.0".into()];
    });
    assert_eq!(
        o.actions(),
        vec![Action::PostBootstrap {
            script: Some(
                [
                    "psql",
                    "-w",
                    "-f",
                    "x.sql",
                    "dbname=postgres user=postgres host=localhost port=5432"
                ]
                .map(String::from)
                .to_vec()
            )
        }]
    );
    assert_eq!(
        booting(Obs::new("n1").primary(100)).actions(),
        vec![Action::PostBootstrap { script: None }]
    );
}

#[test]
fn a_failed_bootstrap_is_abandoned_as_patroni_cancels_initialization() {
    let booting = |o: Obs, b| o.with(move |o, _| o.bootstrapping = Some(b));
    for o in [
        booting(Obs::new("n1"), Bootstrapping::Started),
        booting(
            Obs::new("n1").pg(PgView::Stopped(stopped("in archive recovery", false))),
            Bootstrapping::Started,
        ),
        booting(Obs::new("n1").primary(100), Bootstrapping::Failed),
    ] {
        let d = o.decide_at(Duration::ZERO);
        assert_eq!(d.actions, vec![Action::AbandonBootstrap], "{o:?}");
        assert!(
            d.reason.starts_with(
                "removing initialize key after failed attempt to bootstrap the cluster"
            ),
            "{}",
            d.reason
        );
    }
}
