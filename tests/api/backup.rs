//! `otter-service backup` makes a consistent copy while submissions are being accepted.

use rusqlite::Connection;

use crate::helpers::{ServiceProcess, cli, port, sample, submit_to};
use crate::hub::hub;

fn one(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn backup_while_accepting_is_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let p = port();
    let toml = ServiceProcess::toml(dir.path(), p, &hub().api_url, "unused", "workers = 0");
    let service = ServiceProcess::start(dir.path(), p, &toml);
    let token = hub().user_token("uma", None).await;
    let (url, nb) = (service.url(), sample("correct"));
    // Submissions keep arriving while the copies are made.
    let load = tokio::spawn(async move {
        let http = reqwest::Client::new();
        for i in 0..300 {
            submit_to(&http, &url, &token, &crate::helpers::copy_of(&nb, i)).await;
        }
    });
    let mut copies = Vec::new();
    for i in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        let copy = dir.path().join(format!("copy{i}.db"));
        cli(
            &service.db_path,
            &["backup", "--output", copy.to_str().unwrap()],
        );
        copies.push(copy);
    }
    load.await.unwrap();
    let live = Connection::open(&service.db_path).unwrap();
    let live_subs = one(&live, "SELECT COUNT(*) FROM submissions");
    assert_eq!(live_subs, 300);
    let mut last = 0;
    for copy in copies {
        let c = Connection::open(&copy).unwrap();
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        let subs = one(&c, "SELECT COUNT(*) FROM submissions");
        // A transaction is in the copy whole or not at all: every submission has its job.
        assert_eq!(
            subs,
            one(&c, "SELECT COUNT(*) FROM jobs WHERE kind = 'grade'")
        );
        assert_eq!(
            subs,
            one(&c, "SELECT COUNT(*) FROM events WHERE event = 'submitted'")
        );
        assert!(
            subs >= last && subs <= live_subs,
            "copies follow the live database"
        );
        last = subs;
    }
    assert!(last > 0, "the copies were taken while accepting");
}
