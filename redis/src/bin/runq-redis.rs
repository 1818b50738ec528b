//! `runq-redis`: enqueue jobs and look at queues held in Redis.
//!
//! Exit codes: 0 success; 1 a Redis or protocol error; 2 bad arguments;
//! 3 no such job or dead letter, or `wait` timed out; 4 `enqueue` refused a
//! duplicate id or key.

use clap::{Parser, Subcommand, ValueEnum};
use runq::Priority;
use runq_redis::{Client, Enqueue, Error, JobId, QueueStats};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "runq-redis",
    about = "Enqueue jobs and inspect runq queues held in Redis"
)]
struct Cli {
    /// Redis URL.
    #[arg(
        long,
        global = true,
        default_value = "redis://127.0.0.1:6379/",
        env = "RUNQ_REDIS_URL"
    )]
    redis: String,
    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Prio {
    High,
    Normal,
    Low,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Add a job; prints its id.
    Enqueue {
        /// Queue name.
        #[arg(long, short, default_value = "default")]
        queue: String,
        /// Job type: the handler's name.
        kind: String,
        /// Payload (text; empty by default).
        #[arg(default_value = "")]
        payload: String,
        /// Job id (default: a fresh random one).
        #[arg(long)]
        id: Option<String>,
        /// Which stream.
        #[arg(long, value_enum, default_value = "normal")]
        priority: Prio,
        /// Runs in all (1 = no retry).
        #[arg(long, default_value_t = 1)]
        attempts: u32,
        /// Exponential backoff base between attempts, ms.
        #[arg(long)]
        backoff_ms: Option<u64>,
        /// Run no earlier than this many ms from now.
        #[arg(long)]
        delay_ms: Option<u64>,
        /// Expire if not started this many ms from now.
        #[arg(long)]
        deadline_ms: Option<u64>,
        /// Idempotency key: refused while another job holds it.
        #[arg(long)]
        key: Option<String>,
        /// Keep the record this long after the end, seconds.
        #[arg(long)]
        result_ttl_s: Option<u64>,
        /// Wait this many ms for the end and print the result.
        #[arg(long)]
        wait_ms: Option<u64>,
    },
    /// Print a job's record (state, attempt, result, error, node, ...).
    State {
        /// Queue name.
        #[arg(long, short, default_value = "default")]
        queue: String,
        /// Job id.
        id: String,
    },
    /// Per queue: ready by priority, scheduled, pending (running), dead,
    /// and the consumers with their idle time.
    Stats {
        /// Queue names.
        #[arg(default_value = "default")]
        queues: Vec<String>,
    },
    /// List dead letters, oldest first.
    Dead {
        /// Queue name.
        #[arg(long, short, default_value = "default")]
        queue: String,
        /// How many at most.
        #[arg(long, default_value_t = 20)]
        count: usize,
    },
    /// Move dead letters back to their ready streams as fresh jobs.
    RequeueDead {
        /// Queue name.
        #[arg(long, short, default_value = "default")]
        queue: String,
        /// The dead letter's entry id (from `dead`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        entry: Option<String>,
        /// Every dead letter of the queue.
        #[arg(long)]
        all: bool,
    },
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fields_json(fields: &[(String, Vec<u8>)]) -> Value {
    Value::Object(
        fields
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(text(v))))
            .collect(),
    )
}

fn stats_json(s: &QueueStats) -> Value {
    json!({
        "queue": s.queue,
        "ready": {"high": s.ready[0], "normal": s.ready[1], "low": s.ready[2]},
        "pending": {"high": s.pending[0], "normal": s.pending[1], "low": s.pending[2]},
        "scheduled": s.scheduled,
        "dead": s.dead,
        "consumers": s.consumers.iter().map(|c| json!({
            "stream": c.stream, "name": c.name, "pending": c.pending, "idle_ms": c.idle_ms,
        })).collect::<Vec<_>>(),
    })
}

fn run(cli: Cli) -> Result<ExitCode, Error> {
    let client = Client::open(&cli.redis)?;
    match cli.cmd {
        Cmd::Enqueue {
            queue,
            kind,
            payload,
            id,
            priority,
            attempts,
            backoff_ms,
            delay_ms,
            deadline_ms,
            key,
            result_ttl_s,
            wait_ms,
        } => {
            let mut e = Enqueue::new(queue, kind, payload)
                .priority(match priority {
                    Prio::High => Priority::High,
                    Prio::Normal => Priority::Normal,
                    Prio::Low => Priority::Low,
                })
                .attempts(attempts);
            if let Some(id) = id {
                e = e.id(id);
            }
            if let Some(ms) = backoff_ms {
                e = e.backoff(Duration::from_millis(ms));
            }
            if let Some(ms) = delay_ms {
                e = e.delay(Duration::from_millis(ms));
            }
            if let Some(ms) = deadline_ms {
                e = e.deadline(Duration::from_millis(ms));
            }
            if let Some(k) = key {
                e = e.key(k);
            }
            if let Some(s) = result_ttl_s {
                e = e.result_ttl(Duration::from_secs(s));
            }
            let id = match client.enqueue(e) {
                Ok(id) => id,
                Err(e @ (Error::DuplicateId(_) | Error::DuplicateKey { .. })) => {
                    eprintln!("runq-redis: {e}");
                    return Ok(ExitCode::from(4));
                }
                Err(e) => return Err(e),
            };
            let Some(ms) = wait_ms else {
                if cli.json {
                    println!("{}", json!({"queue": id.queue(), "id": id.id()}));
                } else {
                    println!("{}", id.id());
                }
                return Ok(ExitCode::SUCCESS);
            };
            let r = client.wait(&id, Duration::from_millis(ms))?;
            let state = client.state(&id)?.map(|s| s.to_string());
            if cli.json {
                let (result, error) = match &r {
                    Some(Ok(v)) => (Some(text(v)), None),
                    Some(Err(e)) => (None, Some(e.clone())),
                    None => (None, None),
                };
                println!(
                    "{}",
                    json!({"queue": id.queue(), "id": id.id(), "state": state, "result": result, "error": error})
                );
            } else {
                match &r {
                    Some(Ok(v)) => println!("{} succeeded: {}", id.id(), text(v)),
                    Some(Err(e)) => println!(
                        "{} {}: {e}",
                        id.id(),
                        state.unwrap_or_else(|| "ended".into())
                    ),
                    None => println!("{} not finished after {ms} ms", id.id()),
                }
            }
            Ok(match r {
                Some(Ok(_)) => ExitCode::SUCCESS,
                Some(Err(_)) => ExitCode::FAILURE,
                None => ExitCode::from(3),
            })
        }
        Cmd::State { queue, id } => {
            let jid = JobId::new(queue, id);
            let Some(rec) = client.record(&jid)? else {
                eprintln!("runq-redis: no record of job {jid}");
                return Ok(ExitCode::from(3));
            };
            if cli.json {
                println!("{}", fields_json(&rec.fields));
            } else {
                for (k, v) in &rec.fields {
                    if k != "fields" {
                        println!("{k}: {}", text(v));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Stats { queues } => {
            let mut all = Vec::new();
            for q in &queues {
                all.push(client.stats(q)?);
            }
            if cli.json {
                println!(
                    "{}",
                    json!({"queues": all.iter().map(stats_json).collect::<Vec<_>>()})
                );
                return Ok(ExitCode::SUCCESS);
            }
            for s in &all {
                println!("queue {}", s.queue);
                println!(
                    "  ready      high {:>8}  normal {:>8}  low {:>8}",
                    s.ready[0], s.ready[1], s.ready[2]
                );
                println!(
                    "  running    high {:>8}  normal {:>8}  low {:>8}   (delivered, not acked)",
                    s.pending[0], s.pending[1], s.pending[2]
                );
                println!(
                    "  scheduled  {:>8}   (delayed jobs and retries)",
                    s.scheduled
                );
                println!("  dead       {:>8}", s.dead);
                if s.consumers.is_empty() {
                    println!("  consumers  none");
                }
                for c in &s.consumers {
                    println!(
                        "  consumer   {:<32} {:<6} pending {:>6}  idle {:>8} ms",
                        c.name, c.stream, c.pending, c.idle_ms
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Dead { queue, count } => {
            let dead = client.dead(&queue, count)?;
            if cli.json {
                let list: Vec<Value> = dead
                    .iter()
                    .map(|d| json!({"entry": d.entry, "fields": fields_json(&d.fields)}))
                    .collect();
                println!("{}", json!({"queue": queue, "dead": list}));
            } else {
                if dead.is_empty() {
                    println!("no dead letters in {queue}");
                }
                for d in &dead {
                    let f = |n: &str| d.get(n).map(text).unwrap_or_default();
                    println!(
                        "{}  id {}  type {}  attempts {}  error: {}",
                        d.entry,
                        f("id"),
                        f("type"),
                        f("attempts"),
                        f("error")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::RequeueDead { queue, entry, all } => {
            let moved = client.requeue_dead(&queue, if all { None } else { entry.as_deref() })?;
            if cli.json {
                println!("{}", json!({"queue": queue, "requeued": moved}));
            } else {
                println!("requeued {moved} dead letter(s) of {queue}");
            }
            Ok(if moved == 0 && !all {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(Error::InvalidArgument(e)) => {
            eprintln!("runq-redis: invalid argument: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("runq-redis: {e}");
            ExitCode::FAILURE
        }
    }
}
