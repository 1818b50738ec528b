//! Client and Node against a real redis-server: results, retries, delays,
//! deadlines, keys, cancel, priorities, shutdown, bad entries, and the wire
//! format as a producer in another language sees it.

mod common;

use common::{get, server, wait_until, xrange};
use runq::{Pool, Priority};
use runq_redis::{Client, Enqueue, Error, Job, JobId, JobState, Node};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Runs = Arc<Mutex<HashMap<String, u32>>>;

/// A node on `q` with `echo`, `fail` and `count` handlers; `runs` counts
/// every run per job id.
fn node(url: &str, q: &str, workers: usize, runs: &Runs) -> Node {
    let pool = Pool::builder().workers(workers).build().unwrap();
    let (r1, r2) = (runs.clone(), runs.clone());
    Node::builder(url, pool)
        .queue(q)
        .lease(Duration::from_secs(5))
        .poll_interval(Duration::from_millis(10))
        .handler("echo", move |job: &Job| -> Result<Vec<u8>, String> {
            *r1.lock().unwrap().entry(job.id.clone()).or_default() += 1;
            Ok(job.payload.clone())
        })
        .handler("fail", move |job: &Job| -> Result<Vec<u8>, String> {
            *r2.lock().unwrap().entry(job.id.clone()).or_default() += 1;
            Err(format!("no: {}", String::from_utf8_lossy(&job.payload)))
        })
        .handler("panic", |_job: &Job| -> Result<Vec<u8>, String> {
            panic!("boom")
        })
        .start()
        .unwrap()
}

#[test]
fn a_job_runs_once_and_its_result_comes_back() {
    let Some(srv) = server() else { return };
    let runs = Runs::default();
    let n = node(&srv.url(), "q", 2, &runs);
    let c = Client::open(&srv.url()).unwrap();
    let id = c
        .enqueue(Enqueue::new("q", "echo", b"hello".to_vec()))
        .unwrap();
    assert_eq!(
        c.wait(&id, Duration::from_secs(30)).unwrap(),
        Some(Ok(b"hello".to_vec()))
    );
    assert_eq!(c.state(&id).unwrap(), Some(JobState::Succeeded));
    // A second waiter learns of the end too.
    assert_eq!(
        c.wait(&id, Duration::from_secs(1)).unwrap(),
        Some(Ok(b"hello".to_vec()))
    );
    let stats = n.shutdown();
    assert_eq!(stats.succeeded, 1);
    assert_eq!(runs.lock().unwrap()[id.id()], 1);
    // Nothing piles up: the stream is empty after the ack.
    let mut con = srv.con();
    let len: u64 = redis::cmd("XLEN")
        .arg("runq:{q}:normal")
        .query(&mut con)
        .unwrap();
    assert_eq!(len, 0);
}

#[test]
fn a_failing_job_retries_then_fails_into_the_dead_letters() {
    let Some(srv) = server() else { return };
    let runs = Runs::default();
    let n = node(&srv.url(), "q", 2, &runs);
    let c = Client::open(&srv.url()).unwrap();
    let id = c
        .enqueue(
            Enqueue::new("q", "fail", "x")
                .attempts(3)
                .backoff(Duration::from_millis(5))
                .id("f1"),
        )
        .unwrap();
    assert_eq!(
        c.wait(&id, Duration::from_secs(30)).unwrap(),
        Some(Err("no: x".into()))
    );
    assert_eq!(c.state(&id).unwrap(), Some(JobState::Failed));
    assert_eq!(runs.lock().unwrap()["f1"], 3);
    let dead = c.dead("q", 10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].get("id"), Some(&b"f1"[..]));
    assert_eq!(dead[0].get("error"), Some(&b"no: x"[..]));
    assert_eq!(dead[0].get("attempts"), Some(&b"3"[..]));
    assert!(dead[0].get("dead_ms").is_some());
    let s = n.shutdown();
    assert_eq!((s.retried, s.failed), (2, 1));
}

#[test]
fn a_panicking_handler_fails_the_job_and_the_node_lives_on() {
    let Some(srv) = server() else { return };
    let runs = Runs::default();
    let _n = node(&srv.url(), "q", 1, &runs);
    let c = Client::open(&srv.url()).unwrap();
    let p = c.enqueue(Enqueue::new("q", "panic", "")).unwrap();
    let r = c.wait(&p, Duration::from_secs(30)).unwrap().unwrap();
    assert!(r.unwrap_err().contains("boom"));
    let e = c.enqueue(Enqueue::new("q", "echo", "after")).unwrap();
    assert_eq!(
        c.wait(&e, Duration::from_secs(30)).unwrap(),
        Some(Ok(b"after".to_vec()))
    );
}

#[test]
fn delays_deadlines_keys_and_cancel_live_in_redis() {
    let Some(srv) = server() else { return };
    let c = Client::open(&srv.url()).unwrap();
    // Before any node runs: a delayed job waits scheduled, a key is held.
    let later = c
        .enqueue(Enqueue::new("q", "echo", "later").delay(Duration::from_millis(300)))
        .unwrap();
    assert_eq!(c.state(&later).unwrap(), Some(JobState::Scheduled));
    let keyed = c
        .enqueue(Enqueue::new("q", "echo", "k").key("order-17"))
        .unwrap();
    match c.enqueue(Enqueue::new("q", "echo", "k2").key("order-17")) {
        Err(Error::DuplicateKey { key, holder }) => {
            assert_eq!(key, "order-17");
            assert_eq!(holder, keyed);
        }
        other => panic!("expected DuplicateKey, got {other:?}"),
    }
    match c.enqueue(Enqueue::new("q", "echo", "again").id(keyed.id())) {
        Err(Error::DuplicateId(id)) => assert_eq!(id, keyed),
        other => panic!("expected DuplicateId, got {other:?}"),
    }
    let expiring = c
        .enqueue(Enqueue::new("q", "echo", "late").deadline(Duration::from_millis(1)))
        .unwrap();
    let cancelled = c.enqueue(Enqueue::new("q", "echo", "no")).unwrap();
    let cancelled_later = c
        .enqueue(Enqueue::new("q", "echo", "no").delay(Duration::from_secs(60)))
        .unwrap();
    assert!(c.cancel(&cancelled).unwrap());
    assert!(c.cancel(&cancelled_later).unwrap());
    assert!(!c.cancel(&cancelled).unwrap(), "cancel twice is false");
    assert!(!c.cancel(&JobId::new("q", "nope")).unwrap());
    std::thread::sleep(Duration::from_millis(5));

    let runs = Runs::default();
    let n = node(&srv.url(), "q", 2, &runs);
    assert_eq!(
        c.wait(&keyed, Duration::from_secs(30)).unwrap(),
        Some(Ok(b"k".to_vec()))
    );
    // Terminal: the key is free again.
    let again = c
        .enqueue(Enqueue::new("q", "echo", "k3").key("order-17"))
        .unwrap();
    assert_eq!(
        c.wait(&again, Duration::from_secs(30)).unwrap(),
        Some(Ok(b"k3".to_vec()))
    );
    assert_eq!(
        c.wait(&later, Duration::from_secs(30)).unwrap(),
        Some(Ok(b"later".to_vec()))
    );
    let r = c.wait(&expiring, Duration::from_secs(30)).unwrap().unwrap();
    assert!(r.unwrap_err().contains("deadline"));
    assert_eq!(c.state(&expiring).unwrap(), Some(JobState::Expired));
    assert_eq!(c.state(&cancelled).unwrap(), Some(JobState::Cancelled));
    assert_eq!(
        c.wait(&cancelled, Duration::from_secs(1)).unwrap(),
        Some(Err("cancelled".into()))
    );
    // The cancelled job's entry is acked without running.
    let mut con = srv.con();
    wait_until("the cancelled entry is acked", || {
        redis::cmd("XLEN")
            .arg("runq:{q}:normal")
            .query::<u64>(&mut con)
            .unwrap()
            == 0
    });
    let runs = runs.lock().unwrap();
    assert!(!runs.contains_key(cancelled.id()));
    assert!(!runs.contains_key(cancelled_later.id()));
    assert!(!runs.contains_key(expiring.id()));
    drop(n);
}

#[test]
fn bad_arguments_are_typed_errors() {
    let Some(srv) = server() else { return };
    let c = Client::open(&srv.url()).unwrap();
    let bad = [
        Enqueue::new("", "echo", ""),
        Enqueue::new("a{b", "echo", ""),
        Enqueue::new("q", "", ""),
        Enqueue::new("q", "echo", "").attempts(0),
        Enqueue::new("q", "echo", "").result_ttl(Duration::from_millis(10)),
        Enqueue::new("q", "echo", "").id(""),
        Enqueue::new("q", "echo", "").key(""),
        Enqueue::new("q", "echo", "").delay(Duration::MAX),
    ];
    for e in bad {
        let dbg = format!("{e:?}");
        assert!(
            matches!(c.enqueue(e), Err(Error::InvalidArgument(_))),
            "{dbg}"
        );
    }
    let pool = || Pool::builder().workers(1).build().unwrap();
    let ok = |j: &Job| -> Result<Vec<u8>, String> { Ok(j.payload.clone()) };
    let url = srv.url();
    for b in [
        Node::builder(url.as_str(), pool()).handler("echo", ok),
        Node::builder(url.as_str(), pool()).queue("q"),
        Node::builder(url.as_str(), pool())
            .queue("q")
            .handler("echo", ok)
            .lease(Duration::ZERO),
        Node::builder(url.as_str(), pool())
            .queue("q")
            .handler("echo", ok)
            .max_deliveries(0),
        Node::builder(url.as_str(), pool())
            .queue("q")
            .handler("echo", ok)
            .max_in_flight(0),
        Node::builder(url.as_str(), pool())
            .queue("q}")
            .handler("echo", ok),
    ] {
        let dbg = format!("{b:?}");
        assert!(matches!(b.start(), Err(Error::InvalidArgument(_))), "{dbg}");
    }
    assert!(matches!(
        Client::open("redis://127.0.0.1:1/"),
        Err(Error::Redis(_))
    ));
    assert!(matches!(
        Node::builder("redis://127.0.0.1:1/", pool())
            .queue("q")
            .handler("echo", ok)
            .start(),
        Err(Error::Redis(_))
    ));
}

#[test]
fn priorities_are_strict_high_then_normal_then_low() {
    let Some(srv) = server() else { return };
    let c = Client::open(&srv.url()).unwrap();
    let mut ids = Vec::new();
    for (i, p) in [Priority::Low, Priority::Normal, Priority::High]
        .into_iter()
        .enumerate()
    {
        for j in 0..5 {
            ids.push(
                c.enqueue(Enqueue::new("q", "order", format!("{i}{j}")).priority(p))
                    .unwrap(),
            );
        }
    }
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    let pool = Pool::builder().workers(1).build().unwrap();
    let n = Node::builder(srv.url(), pool)
        .queue("q")
        .max_in_flight(1)
        .handler("order", move |job: &Job| -> Result<Vec<u8>, String> {
            o.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&job.payload).into_owned());
            Ok(Vec::new())
        })
        .start()
        .unwrap();
    for id in &ids {
        assert!(c
            .wait(id, Duration::from_secs(30))
            .unwrap()
            .unwrap()
            .is_ok());
    }
    n.shutdown();
    let order = order.lock().unwrap();
    let expect: Vec<String> = ["2", "1", "0"]
        .iter()
        .flat_map(|p| (0..5).map(move |j| format!("{p}{j}")))
        .collect();
    assert_eq!(*order, expect);
}

#[test]
fn a_plain_commands_producer_gets_every_field_honoured_and_blpop_wakes() {
    let Some(srv) = server() else { return };
    let mut con = srv.con();
    let far = 4_000_000_000_000u64; // Unix ms in 2096: a deadline not past
    let xadd = |con: &mut redis::Connection, stream: &str, fields: &[(&str, &str)]| {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(stream).arg("*");
        for (k, v) in fields {
            cmd.arg(*k).arg(*v);
        }
        cmd.query::<String>(con).unwrap();
    };
    xadd(
        &mut con,
        "runq:{w}:normal",
        &[("id", "j1"), ("type", "echo"), ("payload", "hi")],
    );
    xadd(
        &mut con,
        "runq:{w}:high",
        &[
            ("id", "j2"),
            ("type", "fail"),
            ("payload", "bad"),
            ("attempts", "2"),
            ("backoff_ms", "5"),
            ("deadline_ms", &far.to_string()),
            ("result_ttl_s", "100"),
            ("color", "blue"),
        ],
    );
    xadd(
        &mut con,
        "runq:{w}:low",
        &[
            ("id", "j3"),
            ("type", "echo"),
            ("payload", ""),
            ("deadline_ms", "1"),
        ],
    );
    let runs = Runs::default();
    let _n = node(&srv.url(), "w", 2, &runs);
    let popped: (String, String) = redis::cmd("BLPOP")
        .arg("runq:{w}:done:j1")
        .arg(30)
        .query(&mut con)
        .unwrap();
    assert_eq!(popped.1, "succeeded");
    let rec: HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
        .arg("runq:{w}:job:j1")
        .query(&mut con)
        .unwrap();
    assert_eq!(rec["result"], b"hi");
    assert_eq!(rec["attempt"], b"1");
    assert!(rec.contains_key("node") && rec.contains_key("updated_ms"));
    let ttl: i64 = redis::cmd("TTL")
        .arg("runq:{w}:job:j1")
        .query(&mut con)
        .unwrap();
    assert!(
        ttl > 86_000 && ttl <= 86_400,
        "default result TTL, got {ttl}"
    );

    let popped: (String, String) = redis::cmd("BLPOP")
        .arg("runq:{w}:done:j2")
        .arg(30)
        .query(&mut con)
        .unwrap();
    assert_eq!(popped.1, "failed");
    assert_eq!(runs.lock().unwrap()["j2"], 2, "attempts = 2");
    let ttl: i64 = redis::cmd("TTL")
        .arg("runq:{w}:job:j2")
        .query(&mut con)
        .unwrap();
    assert!(ttl > 0 && ttl <= 100, "result_ttl_s = 100, got {ttl}");
    let dead = xrange(&mut con, "runq:{w}:dead");
    let d = &dead
        .iter()
        .find(|(_, f)| get(f, "id") == Some("j2"))
        .unwrap()
        .1;
    assert_eq!(get(d, "color"), Some("blue"), "unknown fields are kept");
    assert_eq!(get(d, "error"), Some("no: bad"));
    assert_eq!(get(d, "attempts"), Some("2"));
    assert_eq!(get(d, "priority"), Some("high"));

    let popped: (String, String) = redis::cmd("BLPOP")
        .arg("runq:{w}:done:j3")
        .arg(30)
        .query(&mut con)
        .unwrap();
    assert_eq!(popped.1, "expired");
    assert!(!runs.lock().unwrap().contains_key("j3"));
}

#[test]
fn the_client_writes_every_wire_field() {
    let Some(srv) = server() else { return };
    let c = Client::open(&srv.url()).unwrap();
    let id = c
        .enqueue(
            Enqueue::new("f", "resize", vec![0u8, 255, 1])
                .id("x1")
                .priority(Priority::Low)
                .attempts(5)
                .backoff(Duration::from_millis(100))
                .deadline(Duration::from_secs(60))
                .key("k1")
                .result_ttl(Duration::from_secs(600)),
        )
        .unwrap();
    assert_eq!(id, JobId::new("f", "x1"));
    let mut con = srv.con();
    let entries = xrange(&mut con, "runq:{f}:low");
    assert_eq!(entries.len(), 1);
    let f = &entries[0].1;
    assert_eq!(get(f, "id"), Some("x1"));
    assert_eq!(get(f, "type"), Some("resize"));
    assert_eq!(get(f, "attempts"), Some("5"));
    assert_eq!(get(f, "backoff_ms"), Some("100"));
    assert_eq!(get(f, "result_ttl_s"), Some("600"));
    let deadline: u64 = get(f, "deadline_ms").unwrap().parse().unwrap();
    assert!(deadline > 1_700_000_000_000);
    let payload: Vec<u8> = redis::cmd("XRANGE")
        .arg("runq:{f}:low")
        .arg("-")
        .arg("+")
        .query::<Vec<(String, HashMap<String, Vec<u8>>)>>(&mut con)
        .unwrap()[0]
        .1["payload"]
        .clone();
    assert_eq!(payload, vec![0u8, 255, 1], "payload bytes survive");
    let rec = c.record(&id).unwrap().unwrap();
    assert_eq!(rec.get("state"), Some(&b"queued"[..]));
    assert_eq!(rec.get("attempt"), Some(&b"1"[..]));
    assert!(rec.get("updated_ms").is_some());
    let held: String = redis::cmd("GET")
        .arg("runq:{f}:key:k1")
        .query(&mut con)
        .unwrap();
    assert_eq!(held, "x1");
    // A delayed job: in the scheduled set, scored by its due time.
    let d = c
        .enqueue(Enqueue::new("f", "resize", "").delay(Duration::from_secs(60)))
        .unwrap();
    let score: f64 = redis::cmd("ZSCORE")
        .arg("runq:{f}:scheduled")
        .arg(d.id())
        .query(&mut con)
        .unwrap();
    assert!(score > 1_700_000_000_000.0);
}

#[test]
fn bad_entries_are_dead_lettered_and_the_stream_moves_on() {
    let Some(srv) = server() else { return };
    let mut con = srv.con();
    let bad: &[&[(&str, &str)]] = &[
        &[("type", "echo"), ("payload", "no id")],
        &[("id", "b2"), ("payload", "no type")],
        &[("id", "b3"), ("type", "echo")],
        &[("id", "b4"), ("type", "nosuch"), ("payload", "")],
        &[
            ("id", "b5"),
            ("type", "echo"),
            ("payload", ""),
            ("attempts", "zero"),
        ],
        &[
            ("id", "b6"),
            ("type", "echo"),
            ("payload", ""),
            ("deadline_ms", "soon"),
        ],
        &[
            ("id", "b7"),
            ("type", "echo"),
            ("payload", ""),
            ("result_ttl_s", "-3"),
        ],
        &[
            ("id", "b8"),
            ("type", "echo"),
            ("payload", ""),
            ("backoff_ms", "1e9"),
        ],
    ];
    for fields in bad {
        let mut cmd = redis::cmd("XADD");
        cmd.arg("runq:{b}:normal").arg("*");
        for (k, v) in *fields {
            cmd.arg(*k).arg(*v);
        }
        cmd.query::<String>(&mut con).unwrap();
    }
    let c = Client::open(&srv.url()).unwrap();
    let good = c.enqueue(Enqueue::new("b", "echo", "fine")).unwrap();
    let runs = Runs::default();
    let n = node(&srv.url(), "b", 2, &runs);
    assert_eq!(
        c.wait(&good, Duration::from_secs(30)).unwrap(),
        Some(Ok(b"fine".to_vec()))
    );
    wait_until("every bad entry is dead-lettered", || {
        c.dead("b", 100).unwrap().len() == bad.len()
    });
    let dead = c.dead("b", 100).unwrap();
    let err = |i: usize| String::from_utf8_lossy(dead[i].get("error").unwrap()).into_owned();
    for (i, want) in [
        "`id`",
        "`type`",
        "`payload`",
        "unknown type",
        "`attempts`",
        "`deadline_ms`",
        "`result_ttl_s`",
        "`backoff_ms`",
    ]
    .iter()
    .enumerate()
    {
        assert!(err(i).contains(want), "entry {i}: {}", err(i));
    }
    for id in ["b2", "b3", "b4", "b5", "b6", "b7", "b8"] {
        assert_eq!(
            c.state(&JobId::new("b", id)).unwrap(),
            Some(JobState::Dead),
            "{id}"
        );
        assert!(c
            .wait(&JobId::new("b", id), Duration::from_secs(1))
            .unwrap()
            .unwrap()
            .is_err());
    }
    assert_eq!(n.shutdown().dead_lettered, bad.len() as u64);
    // requeue-dead puts them back as fresh jobs (they are still bad).
    let moved = c.requeue_dead("b", Some(&dead[3].entry)).unwrap();
    assert_eq!(moved, 1);
    assert_eq!(
        c.state(&JobId::new("b", "b4")).unwrap(),
        Some(JobState::Queued)
    );
    let len: u64 = redis::cmd("XLEN")
        .arg("runq:{b}:normal")
        .query(&mut con)
        .unwrap();
    assert_eq!(len, 1);
    assert_eq!(c.requeue_dead("b", None).unwrap(), bad.len() as u64 - 1);
    assert_eq!(c.dead("b", 100).unwrap().len(), 0);
}

#[test]
fn shutdown_finishes_running_jobs_and_releases_the_rest_at_once() {
    let Some(srv) = server() else { return };
    let c = Client::open(&srv.url()).unwrap();
    let ids: Vec<JobId> = (0..20)
        .map(|i| {
            c.enqueue(Enqueue::new("s", "slow", format!("{i}")))
                .unwrap()
        })
        .collect();
    let started = Arc::new(Mutex::new(0u32));
    let s2 = started.clone();
    let pool = Pool::builder().workers(1).build().unwrap();
    let n = Node::builder(srv.url(), pool)
        .queue("s")
        .max_in_flight(10)
        .handler("slow", move |_j: &Job| -> Result<Vec<u8>, String> {
            *s2.lock().unwrap() += 1;
            std::thread::sleep(Duration::from_millis(100));
            Ok(Vec::new())
        })
        .start()
        .unwrap();
    wait_until("a job started", || *started.lock().unwrap() > 0);
    let stats = n.shutdown();
    let ran = *started.lock().unwrap() as u64;
    assert_eq!(
        stats.succeeded, ran,
        "every started job was finished and acked"
    );
    assert!(stats.released > 0, "{stats:?}");
    // Nothing is pending: released jobs are back in the stream for anyone.
    let st = c.stats("s").unwrap();
    assert_eq!(st.pending, [0, 0, 0]);
    assert_eq!(st.ready[1], 20 - ran);
    for id in &ids {
        let s = c.state(id).unwrap().unwrap();
        assert!(s == JobState::Succeeded || s == JobState::Queued, "{s}");
    }
}

#[test]
fn a_redelivered_job_already_recorded_succeeded_is_acked_without_running() {
    let Some(srv) = server() else { return };
    let c = Client::open(&srv.url()).unwrap();
    let id = c
        .enqueue(Enqueue::new("d", "echo", "once").id("same"))
        .unwrap();
    let runs = Runs::default();
    let n = node(&srv.url(), "d", 1, &runs);
    assert!(c.wait(&id, Duration::from_secs(30)).unwrap().is_some());
    // The same entry again (as a redelivery after a lost ack would be).
    let mut con = srv.con();
    redis::cmd("XADD")
        .arg("runq:{d}:normal")
        .arg("*")
        .arg("id")
        .arg("same")
        .arg("type")
        .arg("echo")
        .arg("payload")
        .arg("twice")
        .query::<String>(&mut con)
        .unwrap();
    wait_until("the copy is acked", || n.stats().skipped == 1);
    assert_eq!(runs.lock().unwrap()["same"], 1);
    assert_eq!(
        c.wait(&id, Duration::from_secs(1)).unwrap(),
        Some(Ok(b"once".to_vec()))
    );
    let len: u64 = redis::cmd("XLEN")
        .arg("runq:{d}:normal")
        .query(&mut con)
        .unwrap();
    assert_eq!(len, 0);
}

#[test]
fn a_node_comes_back_after_its_connections_are_killed() {
    let Some(srv) = server() else { return };
    let runs = Runs::default();
    let n = node(&srv.url(), "ck", 2, &runs);
    let c = Client::open(&srv.url()).unwrap();
    let first = c.enqueue(Enqueue::new("ck", "echo", "1")).unwrap();
    assert!(c.wait(&first, Duration::from_secs(30)).unwrap().is_some());
    let mut con = srv.con();
    // Drop every other client's connection: the node's three, the client's.
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query(&mut con)
        .unwrap();
    assert!(killed >= 3, "killed {killed}");
    let c = Client::open(&srv.url()).unwrap();
    let ids: Vec<JobId> = (0..50)
        .map(|i| {
            c.enqueue(Enqueue::new("ck", "echo", format!("{i}")))
                .unwrap()
        })
        .collect();
    for id in &ids {
        assert!(c
            .wait(id, Duration::from_secs(30))
            .unwrap()
            .unwrap()
            .is_ok());
    }
    let s = n.shutdown();
    assert!(s.reconnects >= 1, "{s:?}");
    assert_eq!(s.succeeded, 51);
}

#[test]
fn shutdown_returns_when_redis_is_gone() {
    let Some(mut srv) = server() else { return };
    let c = Client::open(&srv.url()).unwrap();
    let id = c.enqueue(Enqueue::new("g", "slow", "")).unwrap();
    let started = Arc::new(Mutex::new(false));
    let s2 = started.clone();
    let n = Node::builder(srv.url(), Pool::builder().workers(1).build().unwrap())
        .queue("g")
        .handler("slow", move |_j: &Job| -> Result<Vec<u8>, String> {
            *s2.lock().unwrap() = true;
            std::thread::sleep(Duration::from_millis(200));
            Ok(Vec::new())
        })
        .start()
        .unwrap();
    wait_until("the job started", || *started.lock().unwrap());
    srv.stop();
    // The running job finishes but cannot be acked: shutdown gives up
    // after its grace period instead of hanging.
    let s = n.shutdown();
    assert_eq!(s.succeeded, 0);
    let _ = id;
}

#[test]
fn a_job_longer_than_its_lease_runs_once_while_its_node_lives() {
    let Some(srv) = server() else { return };
    let runs = Runs::default();
    let start = |name: &str| {
        let r = runs.clone();
        Node::builder(srv.url(), Pool::builder().workers(1).build().unwrap())
            .queue("long")
            .name(name)
            .lease(Duration::from_millis(300))
            .handler("long", move |j: &Job| -> Result<Vec<u8>, String> {
                *r.lock().unwrap().entry(j.id.clone()).or_default() += 1;
                std::thread::sleep(Duration::from_millis(1500));
                Ok(Vec::new())
            })
            .start()
            .unwrap()
    };
    let (a, b) = (start("long-a"), start("long-b"));
    let c = Client::open(&srv.url()).unwrap();
    let ids: Vec<JobId> = (0..2)
        .map(|_| c.enqueue(Enqueue::new("long", "long", "")).unwrap())
        .collect();
    for id in &ids {
        assert!(c
            .wait(id, Duration::from_secs(60))
            .unwrap()
            .unwrap()
            .is_ok());
    }
    let (sa, sb) = (a.shutdown(), b.shutdown());
    assert_eq!(
        sa.reclaimed + sb.reclaimed,
        0,
        "renewed leases are never claimed"
    );
    for id in &ids {
        assert_eq!(runs.lock().unwrap()[id.id()], 1);
    }
}

#[test]
fn one_node_serves_several_queues() {
    let Some(srv) = server() else { return };
    let runs = Runs::default();
    let r = runs.clone();
    let n = Node::builder(srv.url(), Pool::builder().workers(2).build().unwrap())
        .queue("one")
        .queue("two")
        .handler("echo", move |j: &Job| -> Result<Vec<u8>, String> {
            *r.lock().unwrap().entry(j.id.clone()).or_default() += 1;
            Ok(j.queue.clone().into_bytes())
        })
        .start()
        .unwrap();
    let c = Client::open(&srv.url()).unwrap();
    let a = c.enqueue(Enqueue::new("one", "echo", "")).unwrap();
    let b = c
        .enqueue(
            Enqueue::new("two", "echo", "")
                .priority(Priority::Low)
                .delay(Duration::from_millis(20)),
        )
        .unwrap();
    assert_eq!(
        c.wait(&a, Duration::from_secs(30)).unwrap(),
        Some(Ok(b"one".to_vec()))
    );
    assert_eq!(
        c.wait(&b, Duration::from_secs(30)).unwrap(),
        Some(Ok(b"two".to_vec()))
    );
    n.shutdown();
}

#[test]
fn consumers_of_dead_nodes_are_forgotten_once_they_hold_nothing() {
    let Some(srv) = server() else { return };
    let mut con = srv.con();
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("runq:{fg}:normal")
        .arg("runq")
        .arg("0")
        .arg("MKSTREAM")
        .query::<()>(&mut con)
        .unwrap();
    // A consumer that joined once and went away.
    redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg("runq:{fg}:normal")
        .arg("runq")
        .arg("ghost")
        .query::<i64>(&mut con)
        .unwrap();
    let c = Client::open(&srv.url()).unwrap();
    let names = |c: &Client| -> Vec<String> {
        c.stats("fg")
            .unwrap()
            .consumers
            .into_iter()
            .map(|c| c.name)
            .collect()
    };
    assert!(names(&c).contains(&"ghost".to_string()));
    let n = Node::builder(srv.url(), Pool::builder().workers(1).build().unwrap())
        .queue("fg")
        .name("alive")
        .lease(Duration::from_millis(20))
        .handler("echo", |j: &Job| -> Result<Vec<u8>, String> {
            Ok(j.payload.clone())
        })
        .start()
        .unwrap();
    wait_until("the ghost consumer is forgotten", || {
        !names(&c).contains(&"ghost".to_string())
    });
    let id = c
        .enqueue(Enqueue::new("fg", "echo", "still works"))
        .unwrap();
    assert!(c
        .wait(&id, Duration::from_secs(30))
        .unwrap()
        .unwrap()
        .is_ok());
    n.shutdown();
}
