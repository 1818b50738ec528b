//! The `runq-redis` command line against a real redis-server: each
//! subcommand, its JSON output and its exit codes.

mod common;

use common::server;
use runq::Pool;
use runq_redis::{Job, Node};
use std::process::{Command, Output};

fn cli(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runq-redis"))
        .arg("--redis")
        .arg(url)
        .args(args)
        .output()
        .expect("run runq-redis")
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{o:?}");
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {o:?}"))
}

#[test]
fn every_subcommand_works_and_exit_codes_say_what_happened() {
    let Some(srv) = server() else { return };
    let url = srv.url();
    // Before a node runs: enqueue, stats show it ready.
    let o = cli(
        &url,
        &[
            "enqueue", "-q", "c", "echo", "hi", "--id", "e1", "--key", "k", "--json",
        ],
    );
    assert_eq!(json(&o)["id"], "e1");
    let dup = cli(&url, &["enqueue", "-q", "c", "echo", "again", "--key", "k"]);
    assert_eq!(dup.status.code(), Some(4), "{dup:?}");
    cli(
        &url,
        &[
            "enqueue",
            "-q",
            "c",
            "fail",
            "bad",
            "--id",
            "f1",
            "--priority",
            "high",
        ],
    );
    cli(
        &url,
        &["enqueue", "-q", "c", "echo", "x", "--delay-ms", "60000"],
    );
    let s = json(&cli(&url, &["stats", "c", "--json"]));
    let q = &s["queues"][0];
    assert_eq!(q["ready"]["normal"], 1);
    assert_eq!(q["ready"]["high"], 1);
    assert_eq!(q["scheduled"], 1);

    let pool = Pool::builder().workers(1).build().unwrap();
    let node = Node::builder(url.as_str(), pool)
        .queue("c")
        .name("cli-node")
        .handler("echo", |j: &Job| -> Result<Vec<u8>, String> {
            Ok(j.payload.clone())
        })
        .handler("fail", |j: &Job| -> Result<Vec<u8>, String> {
            Err(String::from_utf8_lossy(&j.payload).into_owned())
        })
        .start()
        .unwrap();
    let o = cli(
        &url,
        &[
            "enqueue",
            "-q",
            "c",
            "echo",
            "sync",
            "--wait-ms",
            "30000",
            "--json",
        ],
    );
    let v = json(&o);
    assert_eq!(v["state"], "succeeded");
    assert_eq!(v["result"], "sync");
    common::wait_until("f1 is dead-lettered", || {
        json(&cli(&url, &["dead", "-q", "c", "--json"]))["dead"]
            .as_array()
            .is_some_and(|d| d.len() == 1)
    });
    let st = json(&cli(&url, &["state", "-q", "c", "e1", "--json"]));
    assert_eq!(st["state"], "succeeded");
    assert_eq!(st["result"], "hi");
    let st = json(&cli(&url, &["state", "-q", "c", "f1", "--json"]));
    assert_eq!(st["state"], "failed");
    assert_eq!(
        cli(&url, &["state", "-q", "c", "nope"]).status.code(),
        Some(3)
    );
    let s = json(&cli(&url, &["stats", "c", "--json"]));
    let consumers = s["queues"][0]["consumers"].as_array().unwrap().clone();
    assert!(consumers.iter().any(|c| c["name"] == "cli-node"), "{s}");
    // Text output too.
    let text = cli(&url, &["stats", "c"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("cli-node"));
    node.shutdown();

    let dead = json(&cli(&url, &["dead", "-q", "c", "--json"]));
    let entry = dead["dead"][0]["entry"].as_str().unwrap().to_string();
    assert_eq!(dead["dead"][0]["fields"]["error"], "bad");
    assert_eq!(
        cli(&url, &["requeue-dead", "-q", "c", "0-1"]).status.code(),
        Some(3)
    );
    let r = json(&cli(&url, &["requeue-dead", "-q", "c", &entry, "--json"]));
    assert_eq!(r["requeued"], 1);
    let s = json(&cli(&url, &["stats", "c", "--json"]));
    assert_eq!(s["queues"][0]["ready"]["high"], 1);
    assert_eq!(s["queues"][0]["dead"], 0);
    let r = json(&cli(&url, &["requeue-dead", "-q", "c", "--all", "--json"]));
    assert_eq!(r["requeued"], 0);

    // Bad input: exit 2; Redis unreachable: exit 1.
    assert_eq!(
        cli(&url, &["enqueue", "-q", "c", "echo", "--attempts", "0"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        cli(&url, &["enqueue", "-q", "", "echo"]).status.code(),
        Some(2)
    );
    assert_eq!(cli(&url, &["bogus"]).status.code(), Some(2));
    assert_eq!(
        cli("redis://127.0.0.1:1/", &["stats"]).status.code(),
        Some(1)
    );
}
