//! Faults against a real redis-server: a node killed with SIGKILL in the
//! middle of 5,000 jobs, a job that keeps killing its node, Redis restarted
//! in the middle of a run, and two nodes racing to promote delayed jobs and
//! retries.

mod common;

use common::{example_node, server, server_with, wait_until, xrange, RedisServer};
use runq::Pool;
use runq_redis::{Client, Enqueue, Job, JobId, JobState, Node};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Starts the example node on `queue` and waits for its "ready" line.
fn spawn_node(srv: &RedisServer, queue: &str, name: &str, extra: &[&str]) -> Child {
    let mut child = Command::new(example_node())
        .args(["--redis", &srv.url(), "--queue", queue, "--name", name])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the example node");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("ready"), "node said {line:?}");
    child
}

fn count(con: &mut redis::Connection, cmd: &str, key: &str) -> u64 {
    redis::cmd(cmd).arg(key).query(con).unwrap()
}

/// Job ids the consumer `name` holds unacked on `stream` right now.
fn held_by(con: &mut redis::Connection, stream: &str, name: &str) -> HashSet<String> {
    let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(stream)
        .arg("runq")
        .arg("-")
        .arg("+")
        .arg(100_000)
        .arg(name)
        .query(con)
        .unwrap();
    let mut ids = HashSet::new();
    for (eid, ..) in pending {
        let e: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
            .arg(stream)
            .arg(&eid)
            .arg(&eid)
            .query(con)
            .unwrap();
        if let Some((_, f)) = e.first() {
            ids.insert(f["id"].clone());
        }
    }
    ids
}

fn runs_in(path: &Path) -> HashMap<String, u32> {
    let mut m = HashMap::new();
    if let Ok(text) = std::fs::read_to_string(path) {
        for line in text.lines() {
            if let Some(id) = line.split_whitespace().next() {
                *m.entry(id.to_string()).or_default() += 1;
            }
        }
    }
    m
}

#[test]
fn a_node_killed_mid_run_loses_nothing_and_reruns_only_what_it_held() {
    let Some(srv) = server() else { return };
    const JOBS: usize = 5_000;
    let c = Client::open(&srv.url()).unwrap();
    let ids: Vec<JobId> = (0..JOBS)
        .map(|i| {
            c.enqueue(Enqueue::new("k", "sleep", "1").id(format!("j{i}")))
                .unwrap()
        })
        .collect();
    let log_a = srv.dir.join("a.log");
    let log_b = srv.dir.join("b.log");
    let common_args = ["--workers", "2", "--lease-ms", "1000"];
    let t0 = Instant::now();
    let mut a = spawn_node(
        &srv,
        "k",
        "node-a",
        &[&common_args[..], &["--log-runs", log_a.to_str().unwrap()]].concat(),
    );
    let mut b = spawn_node(
        &srv,
        "k",
        "node-b",
        &[&common_args[..], &["--log-runs", log_b.to_str().unwrap()]].concat(),
    );
    let mut con = srv.con();
    wait_until("a third of the jobs are done", || {
        count(&mut con, "XLEN", "runq:{k}:normal") <= (JOBS as u64 * 2) / 3
    });
    a.kill().unwrap(); // SIGKILL
    a.wait().unwrap();
    let killed_at = t0.elapsed();
    let held = held_by(&mut con, "runq:{k}:normal", "node-a");
    let ran_by_a_before = runs_in(&log_a).values().sum::<u32>();
    wait_until("every job is acked", || {
        count(&mut con, "XLEN", "runq:{k}:normal") == 0
    });
    let all_done = t0.elapsed();
    b.kill().unwrap();
    b.wait().unwrap();

    let (ra, rb) = (runs_in(&log_a), runs_in(&log_b));
    let mut twice = Vec::new();
    for id in &ids {
        assert_eq!(c.state(id).unwrap(), Some(JobState::Succeeded), "{id}");
        let done: u64 = count(&mut con, "LLEN", &format!("runq:{{k}}:done:{}", id.id()));
        assert_eq!(done, 1, "{id}: one terminal write");
        let n = ra.get(id.id()).unwrap_or(&0) + rb.get(id.id()).unwrap_or(&0);
        assert!(n >= 1, "{id} never ran");
        if n > 1 {
            twice.push(id.id().to_string());
        }
    }
    for id in &twice {
        assert!(
            held.contains(id),
            "{id} ran twice but node-a did not hold it when it died"
        );
    }
    assert!(!held.is_empty(), "node-a held jobs when it died");
    println!(
        "kill-a-node: {JOBS} jobs (sleep 1 ms), 2 nodes x 2 workers, lease 1 s; \
         node-a killed at {:.2} s after running {ran_by_a_before} handlers, holding {} unacked; \
         node-b ran {}; all {JOBS} succeeded at {:.2} s; handlers run twice: {} (all among the {} held)",
        killed_at.as_secs_f64(),
        held.len(),
        rb.values().sum::<u32>(),
        all_done.as_secs_f64(),
        twice.len(),
        held.len()
    );
}

#[test]
fn a_job_that_keeps_killing_its_node_is_dead_lettered_after_max_deliveries() {
    let Some(srv) = server() else { return };
    let c = Client::open(&srv.url()).unwrap();
    let id = c
        .enqueue(Enqueue::new("x", "crash", "").id("boom"))
        .unwrap();
    let log = srv.dir.join("crash.log");
    let mut crashes = 0;
    for round in 0..10 {
        let mut node = spawn_node(
            &srv,
            "x",
            &format!("crash-{round}"),
            &[
                "--workers",
                "1",
                "--lease-ms",
                "100",
                "--log-runs",
                log.to_str().unwrap(),
            ],
        );
        // Either the node dies on the job, or the job is dead-lettered.
        let died = loop {
            if let Some(st) = node.try_wait().unwrap() {
                break Some(st);
            }
            if c.state(&id).unwrap() == Some(JobState::Dead) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        match died {
            Some(st) => {
                assert!(!st.success(), "the crash handler aborts");
                crashes += 1;
            }
            None => {
                node.kill().unwrap();
                node.wait().unwrap();
                break;
            }
        }
    }
    assert_eq!(c.state(&id).unwrap(), Some(JobState::Dead));
    assert_eq!(crashes, 5, "default max_deliveries is 5");
    assert_eq!(runs_in(&log)["boom"], 5);
    let r = c.wait(&id, Duration::from_secs(1)).unwrap().unwrap();
    assert!(r.unwrap_err().contains("max_deliveries 5"));
    let mut con = srv.con();
    let dead = xrange(&mut con, "runq:{x}:dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(common::get(&dead[0].1, "id"), Some("boom"));
    assert_eq!(count(&mut con, "XLEN", "runq:{x}:normal"), 0);
}

#[test]
fn redis_restarted_mid_run_loses_no_job_and_records_none_twice() {
    let Some(mut srv) = server_with(true) else {
        return;
    };
    const JOBS: usize = 1_000;
    let c = Client::open(&srv.url()).unwrap();
    let ids: Vec<JobId> = (0..JOBS)
        .map(|i| {
            c.enqueue(Enqueue::new("r", "work", format!("{i}")))
                .unwrap()
        })
        .collect();
    let runs: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let r2 = runs.clone();
    let pool = Pool::builder().workers(2).build().unwrap();
    let node = Node::builder(srv.url(), pool)
        .queue("r")
        .lease(Duration::from_secs(1))
        .handler("work", move |j: &Job| -> Result<Vec<u8>, String> {
            *r2.lock().unwrap().entry(j.id.clone()).or_default() += 1;
            std::thread::sleep(Duration::from_millis(1));
            Ok(j.payload.clone())
        })
        .start()
        .unwrap();
    wait_until("some jobs ran", || {
        node.stats().succeeded >= JOBS as u64 / 4
    });
    srv.stop();
    std::thread::sleep(Duration::from_millis(300));
    srv.start();
    let mut con = srv.con();
    wait_until("every job is acked", || {
        count(&mut con, "XLEN", "runq:{r}:normal") == 0
    });
    let stats = node.shutdown();
    assert!(stats.reconnects > 0, "{stats:?}");
    let c = Client::open(&srv.url()).unwrap();
    let runs = runs.lock().unwrap();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            c.wait(id, Duration::from_secs(5)).unwrap(),
            Some(Ok(format!("{i}").into_bytes())),
            "{id}"
        );
        let done = count(&mut con, "LLEN", &format!("runq:{{r}}:done:{}", id.id()));
        assert_eq!(done, 1, "{id}: one terminal write");
        assert!(runs.get(id.id()).copied().unwrap_or(0) >= 1);
    }
    println!(
        "redis restart: {JOBS} jobs, {} reconnects, {} handlers ran twice",
        stats.reconnects,
        runs.values().filter(|n| **n > 1).count()
    );
}

#[test]
fn delayed_jobs_and_retries_are_promoted_once_with_two_nodes_racing() {
    let Some(srv) = server() else { return };
    let runs: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let start = |name: &str| {
        let (r1, r2) = (runs.clone(), runs.clone());
        Node::builder(srv.url(), Pool::builder().workers(2).build().unwrap())
            .queue("p")
            .name(name)
            .poll_interval(Duration::from_millis(2))
            .handler("ok", move |j: &Job| -> Result<Vec<u8>, String> {
                *r1.lock().unwrap().entry(j.id.clone()).or_default() += 1;
                Ok(Vec::new())
            })
            .handler("flaky", move |j: &Job| -> Result<Vec<u8>, String> {
                *r2.lock().unwrap().entry(j.id.clone()).or_default() += 1;
                Err("again".to_string())
            })
            .start()
            .unwrap()
    };
    let (n1, n2) = (start("racer-1"), start("racer-2"));
    let c = Client::open(&srv.url()).unwrap();
    let delayed: Vec<JobId> = (0..200)
        .map(|i| {
            c.enqueue(Enqueue::new("p", "ok", "").delay(Duration::from_millis(50 + i % 100)))
                .unwrap()
        })
        .collect();
    let flaky: Vec<JobId> = (0..50)
        .map(|_| {
            c.enqueue(
                Enqueue::new("p", "flaky", "")
                    .attempts(3)
                    .backoff(Duration::from_millis(10)),
            )
            .unwrap()
        })
        .collect();
    for id in delayed.iter().chain(&flaky) {
        assert!(
            c.wait(id, Duration::from_secs(60)).unwrap().is_some(),
            "{id}"
        );
    }
    let (s1, s2) = (n1.shutdown(), n2.shutdown());
    let runs = runs.lock().unwrap();
    for id in &delayed {
        assert_eq!(runs[id.id()], 1, "{id}");
    }
    for id in &flaky {
        assert_eq!(runs[id.id()], 3, "{id}");
        assert_eq!(c.state(id).unwrap(), Some(JobState::Failed));
    }
    assert_eq!(s1.promoted + s2.promoted, 200 + 50 * 2, "{s1:?} {s2:?}");
    assert!(s1.promoted > 0 || s2.promoted > 0);
}
