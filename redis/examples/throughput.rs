//! Throughput through one Redis: jobs per second for 1, 2 and 4 nodes
//! (threads of this process, each a `Node` on its own runq `Pool`), for
//! no-op jobs and for 1 ms jobs, with the Redis round trips each job cost.
//!
//! ```text
//! cargo run --release -p runq-redis --example throughput                 # starts its own redis-server
//! cargo run --release -p runq-redis --example throughput -- --redis redis://127.0.0.1:6379/
//! ```
//!
//! Each run fills one queue with N jobs first (pipelined XADDs, as a
//! producer in any language would), then starts the nodes and times them
//! from start until every job is acked. Round trips: every command or
//! pipeline the nodes sent (reads, pickups, acks, lease renewals,
//! promotions, idle polls), divided by N.

use clap::Parser;
use runq::Pool;
use runq_redis::{Job, Node};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Jobs per second through one Redis for 1, 2 and 4 runq-redis nodes")]
struct Args {
    /// Redis URL; default: start a redis-server from PATH on a free port.
    #[arg(long)]
    redis: Option<String>,
    /// No-op jobs per run.
    #[arg(long, default_value_t = 50_000)]
    noop_jobs: usize,
    /// 1 ms jobs per run.
    #[arg(long, default_value_t = 10_000)]
    sleep_jobs: usize,
    /// Node counts to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    nodes: Vec<usize>,
    /// Pool workers per node.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Most jobs in flight per node (taken, not yet acked).
    #[arg(long, default_value_t = 256)]
    max_in_flight: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

struct OwnRedis(Child);

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Result<(String, OwnRedis), Box<dyn std::error::Error>> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = std::env::temp_dir().join(format!("runq-redis-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start redis-server from PATH: {e}"))?;
    let url = format!("redis://127.0.0.1:{port}/");
    let client = redis::Client::open(url.as_str())?;
    let t0 = Instant::now();
    loop {
        if let Ok(mut c) = client.get_connection() {
            if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                break;
            }
        }
        if t0.elapsed() > Duration::from_secs(10) {
            return Err("redis-server did not answer".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((url, OwnRedis(child)))
}

struct Row {
    kind: &'static str,
    nodes: usize,
    jobs: usize,
    fill_per_s: f64,
    secs: f64,
    per_s: f64,
    round_trips_per_job: f64,
}

fn run_one(
    url: &str,
    args: &Args,
    kind: &'static str,
    nodes: usize,
    jobs: usize,
) -> Result<Row, Box<dyn std::error::Error>> {
    let client = redis::Client::open(url)?;
    let mut con = client.get_connection()?;
    redis::cmd("FLUSHALL").query::<()>(&mut con)?;
    let payload = if kind == "noop" { "" } else { "1" };
    let t_fill = Instant::now();
    // Pages of pipelined XADDs: a bound on one pipeline's size.
    const PAGE: usize = 1000;
    let mut i = 0;
    while i < jobs {
        let mut pipe = redis::pipe();
        for j in i..(i + PAGE).min(jobs) {
            pipe.cmd("XADD")
                .arg("runq:{bench}:normal")
                .arg("*")
                .arg("id")
                .arg(format!("j{j}"))
                .arg("type")
                .arg(kind)
                .arg("payload")
                .arg(payload)
                .ignore();
        }
        pipe.query::<()>(&mut con)?;
        i += PAGE;
    }
    let fill_per_s = jobs as f64 / t_fill.elapsed().as_secs_f64();

    let t0 = Instant::now();
    let mut running = Vec::new();
    for _ in 0..nodes {
        let pool = Pool::builder().workers(args.workers).build()?;
        running.push(
            Node::builder(url, pool)
                .queue("bench")
                .max_in_flight(args.max_in_flight)
                .handler("noop", |_j: &Job| -> Result<Vec<u8>, String> {
                    Ok(Vec::new())
                })
                .handler("sleep", |_j: &Job| -> Result<Vec<u8>, String> {
                    std::thread::sleep(Duration::from_millis(1));
                    Ok(Vec::new())
                })
                .start()?,
        );
    }
    loop {
        let done: u64 = running.iter().map(|n| n.stats().succeeded).sum();
        if done >= jobs as u64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let secs = t0.elapsed().as_secs_f64();
    let mut round_trips = 0;
    for n in &running {
        round_trips += n.shutdown().round_trips;
    }
    Ok(Row {
        kind,
        nodes,
        jobs,
        fill_per_s,
        secs,
        per_s: jobs as f64 / secs,
        round_trips_per_job: round_trips as f64 / jobs as f64,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let (url, _own) = match &args.redis {
        Some(u) => (u.clone(), None),
        None => {
            let (u, r) = start_redis()?;
            (u, Some(r))
        }
    };
    let mut rows = Vec::new();
    for (kind, jobs) in [("noop", args.noop_jobs), ("sleep", args.sleep_jobs)] {
        if jobs == 0 {
            continue;
        }
        for &n in &args.nodes {
            let row = run_one(&url, &args, kind, n, jobs)?;
            if !args.json {
                eprintln!("{kind} x {n} node(s): {:.0} jobs/s", row.per_s);
            }
            rows.push(row);
        }
    }
    if args.json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "job": r.kind, "nodes": r.nodes, "workers_per_node": args.workers,
                    "jobs": r.jobs, "seconds": r.secs, "jobs_per_s": r.per_s,
                    "fill_jobs_per_s": r.fill_per_s, "round_trips_per_job": r.round_trips_per_job,
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "runs": list }));
        return Ok(());
    }
    println!(
        "| job | nodes | workers/node | jobs | seconds | jobs/s | round trips/job | fill (XADD jobs/s) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.0} | {:.3} | {:.0} |",
            if r.kind == "noop" {
                "no-op"
            } else {
                "1 ms sleep"
            },
            r.nodes,
            args.workers,
            r.jobs,
            r.secs,
            r.per_s,
            r.round_trips_per_job,
            r.fill_per_s
        );
    }
    Ok(())
}
