//! An example node for demos and tests: consumes queues from a Redis with
//! four handlers.
//!
//! ```text
//! cargo run --release -p runq-redis --example node -- --redis redis://127.0.0.1:6379/ --queue default
//! ```
//!
//! Handlers: `echo` (result = payload), `sleep` (payload = milliseconds, as
//! text), `fail` (always fails, the payload as the error), `crash` (aborts
//! the process: a node that dies mid-job).

use clap::Parser;
use runq::Pool;
use runq_redis::{Job, Node};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "A runq-redis node with the echo, sleep, fail and crash handlers")]
struct Args {
    /// Redis URL.
    #[arg(long, default_value = "redis://127.0.0.1:6379/")]
    redis: String,
    /// Queue to consume (repeat for several).
    #[arg(long = "queue", default_value = "default")]
    queues: Vec<String>,
    /// Pool workers (default: the number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Lease in milliseconds: entries idle longer are claimed by any node.
    #[arg(long, default_value_t = 30_000)]
    lease_ms: u64,
    /// Deliveries after which a job is dead-lettered.
    #[arg(long, default_value_t = 5)]
    max_deliveries: u32,
    /// Most jobs taken and not yet acked (default: 4 per worker, at least 32).
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// Consumer name (default: host-pid-n).
    #[arg(long)]
    name: Option<String>,
    /// Append "<job id> <attempt>" to this file as each handler starts.
    #[arg(long)]
    log_runs: Option<PathBuf>,
    /// Stop (gracefully) after this many seconds; default: run until killed.
    #[arg(long)]
    run_for_s: Option<u64>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut pool = Pool::builder();
    if let Some(w) = args.workers {
        pool = pool.workers(w);
    }
    let pool = pool.build()?;
    let log: Option<Arc<Mutex<File>>> = match &args.log_runs {
        Some(p) => Some(Arc::new(Mutex::new(
            OpenOptions::new().create(true).append(true).open(p)?,
        ))),
        None => None,
    };
    let note = move |job: &Job| {
        if let Some(f) = &log {
            // One write per line, to a file opened for append: a line is
            // whole even when the process is killed right after.
            let line = format!("{} {}\n", job.id, job.attempt);
            let _ = f
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .write_all(line.as_bytes());
        }
    };
    let (n1, n2, n3, n4) = (note.clone(), note.clone(), note.clone(), note);
    let mut b = Node::builder(args.redis.as_str(), pool)
        .lease(Duration::from_millis(args.lease_ms))
        .max_deliveries(args.max_deliveries)
        .handler("echo", move |job: &Job| -> Result<Vec<u8>, String> {
            n1(job);
            Ok(job.payload.clone())
        })
        .handler("sleep", move |job: &Job| -> Result<Vec<u8>, String> {
            n2(job);
            let ms: u64 = std::str::from_utf8(&job.payload)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| "payload must be milliseconds, as text".to_string())?;
            std::thread::sleep(Duration::from_millis(ms));
            Ok(Vec::new())
        })
        .handler("fail", move |job: &Job| -> Result<Vec<u8>, String> {
            n3(job);
            Err(String::from_utf8_lossy(&job.payload).into_owned())
        })
        .handler("crash", move |job: &Job| -> Result<Vec<u8>, String> {
            n4(job);
            eprintln!("crash: aborting on job {}", job.id);
            std::process::abort()
        });
    for q in &args.queues {
        b = b.queue(q.as_str());
    }
    if let Some(n) = args.max_in_flight {
        b = b.max_in_flight(n);
    }
    if let Some(n) = &args.name {
        b = b.name(n.as_str());
    }
    let node = b.start()?;
    println!("ready {}", node.name());
    match args.run_for_s {
        Some(s) => std::thread::sleep(Duration::from_secs(s)),
        None => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
    }
    let stats = node.shutdown();
    println!("{stats:?}");
    Ok(())
}
