//! `pg_settings` read from a real PostgreSQL, and `core::guc`'s check of a value compared
//! with the server's own verdict (`set_config`), which is the oracle.

use pgkeel_core::StopMode;
use pgkeel_pg::testing::{free_port, pg_tempdir, sample_settings, StopOnDrop};
use pgkeel_pg::Pg;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_agrees_with_postgresql() {
    let dir = pg_tempdir().expect("test directory");
    let pg = Pg::new(sample_settings("a", dir.path(), free_port().unwrap()));
    let _guard = StopOnDrop(vec![pg.settings().data_dir.clone()]);
    pg.bootstrap(&pgkeel_core::action::BootstrapPlan::Initdb)
        .await
        .expect("bootstrap");
    let catalog = {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match pg.parameter_catalog().await {
                Ok(c) => break c,
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("not yet: {e:#}");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => panic!("pg_settings: {e:#}"),
            }
        }
    };
    assert!(catalog.len() > 300, "only {} parameters", catalog.len());
    assert!(catalog.server_version_num >= 150000);

    let client = pgkeel_pg::testing::superuser_client(&pg).await;

    // Every value the server runs with passes, except the fixed (internal) ones.
    let rows = client
        .query("SELECT name, setting, context FROM pg_settings", &[])
        .await
        .unwrap();
    for r in &rows {
        let (name, setting, context): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let verdict = catalog.check(&name, &setting);
        if context == "internal" {
            assert!(verdict.is_err(), "{name} is internal but was accepted");
        } else {
            assert_eq!(verdict, Ok(()), "{name} = {setting:?}");
        }
    }

    // Numbers, units, booleans and enums: the check accepts exactly what the server does.
    let params = [
        "work_mem",
        "temp_buffers",
        "statement_timeout",
        "log_min_duration_statement",
        "random_page_cost",
        "vacuum_cost_delay",
        "geqo_threshold",
        "default_statistics_target",
        "enable_seqscan",
        "synchronous_commit",
        "constraint_exclusion",
    ];
    let values = [
        "abc",
        "0",
        "1",
        "-1",
        "1.5",
        "0x10",
        "010",
        "08",
        "1e3",
        "1e400",
        "nan",
        "inf",
        "10kB",
        "10MB",
        "1GB",
        "5min",
        "1.5s",
        "10 ms",
        " 10ms ",
        "10mb",
        "on",
        "off",
        "true",
        "of",
        "o",
        "yes",
        "2",
        "  7",
        "1e",
        "1.",
        ".5",
        "+3",
        "99999999999",
        "100000",
        "local",
        "partition",
        "",
        "1TB",
        "20d",
        "3h",
        "500us",
    ];
    // And values built at random from the pieces the parser cares about (a fixed seed, so a
    // failure replays): signs, digits, hex and octal prefixes, fractions, exponents, spaces,
    // every unit and a few near misses, boolean and enum words.
    const PIECES: &[&str] = &[
        "-",
        "+",
        "0",
        "1",
        "7",
        "9",
        "42",
        "0x",
        "1f",
        ".",
        "e",
        "E",
        "5",
        " ",
        "B",
        "kB",
        "MB",
        "GB",
        "TB",
        "us",
        "ms",
        "s",
        "min",
        "h",
        "d",
        "mb",
        "Kb",
        "on",
        "off",
        "t",
        "no",
        "local",
        "2147483647",
        "99999",
        "x",
    ];
    let mut seed: u64 = 0x5eed_1234_abcd_0001;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let random: Vec<String> = (0..400)
        .map(|_| {
            (0..1 + next() % 4)
                .map(|_| PIECES[next() % PIECES.len()])
                .collect()
        })
        .collect();
    let values: Vec<&str> = values
        .iter()
        .copied()
        .chain(random.iter().map(String::as_str))
        .collect();
    let mut disagreements = Vec::new();
    let mut cases = 0;
    for p in params {
        for v in &values {
            cases += 1;
            let ours = catalog.check(p, v).is_ok();
            client.batch_execute("BEGIN").await.unwrap();
            let theirs = client
                .query_one("SELECT set_config($1, $2, true)", &[&p, v])
                .await
                .is_ok();
            client.batch_execute("ROLLBACK").await.unwrap();
            if ours != theirs {
                disagreements.push(format!(
                    "{p} = {v:?}: pgkeel {}, PostgreSQL {}",
                    if ours { "accepts" } else { "refuses" },
                    if theirs { "accepts" } else { "refuses" }
                ));
            }
        }
    }
    println!("{cases} parameter values compared with PostgreSQL's verdict");
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    assert!(catalog.check("no_such_parameter", "1").is_err());
    pg.stop(StopMode::Fast).await.unwrap();
}
