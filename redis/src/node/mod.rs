//! A node: consumes the ready streams of one or more queues into a runq
//! [`Pool`], runs each job's handler, and records its end.
//!
//! Three threads per node, each with its own connection ([`Conn`]: it
//! reconnects by itself):
//!
//! * **reader** (`reader.rs`): takes batches of new entries, strictly high
//!   before normal before low (`take.lua`: one round trip per batch), and
//!   hands them to the pool at their priority; when every stream is empty
//!   it blocks in XREADGROUP until one is not. It keeps at most
//!   `max_in_flight` jobs taken and not yet acked.
//! * **acker** (`acker.rs`): collects the outcomes of finished jobs and
//!   records them in pipelined batches (`finish.lua` per job: terminal
//!   state or retry, and the ack, in one step).
//! * **keeper** (`keeper.rs`): promotes due delayed jobs and retries
//!   (`promote.lua`), renews the leases of held entries (XCLAIM JUSTID every
//!   third of a lease), and claims entries idle longer than the lease from
//!   dead or cut-off nodes, dead-lettering those delivered `max_deliveries`
//!   times (`reclaim.lua`); it also removes consumers that hold nothing and
//!   stayed idle for ten leases (`forget_consumers.lua`): dead nodes.
//!
//! `Node::shutdown` stops the reader and the claims, lets running jobs
//! finish and acks them, and releases the jobs taken but not started (each
//! is put back at the end of its stream, for any node, at once).

mod acker;
mod dispatch;
mod keeper;
mod reader;

use crate::conn::Conn;
use crate::error::Error;
use crate::keys::{validate_queue, QueueKeys};
use runq::{Pool, Priority};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Default lease: an entry idle this long is claimable by any node. Long
/// enough that renewal (every third of it) survives a stalled Redis or a
/// GC-like pause; short enough that a dead node's jobs resume within a
/// minute (asynq's fixed 30 s, here a knob).
const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Default `max_deliveries` (wire format v1).
const DEFAULT_MAX_DELIVERIES: u32 = 5;
/// Default interval of the keeper's promotions: the precision of delays
/// and retry backoffs.
const DEFAULT_POLL: Duration = Duration::from_millis(100);
/// Default in-flight jobs per pool worker, with [`MIN_IN_FLIGHT`]: enough
/// to keep every worker busy while the next batch is read and the last one
/// acked, few enough that a dead node strands little until its lease ends.
const IN_FLIGHT_PER_WORKER: usize = 4;
/// Floor of the default in-flight bound: batches smaller than this cost a
/// round trip for too few jobs.
const MIN_IN_FLIGHT: usize = 32;

pub(crate) type Handler = Arc<dyn Fn(&Job) -> Result<Vec<u8>, String> + Send + Sync>;

/// One job, as its handler sees it.
#[derive(Debug, Clone)]
pub struct Job {
    /// The job's id (the entry's `id` field).
    pub id: String,
    /// Its queue.
    pub queue: String,
    /// Its type: the handler's name (the entry's `type` field).
    pub kind: String,
    /// Its payload.
    pub payload: Vec<u8>,
    /// This attempt, from 1.
    pub attempt: u32,
    /// Runs in all.
    pub attempts: u32,
    /// The stream it came from.
    pub priority: Priority,
}

/// Counts of what one node did, since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Jobs that ended `succeeded` here.
    pub succeeded: u64,
    /// Jobs that failed their last attempt here.
    pub failed: u64,
    /// Failed attempts sent back to the scheduled set for a retry.
    pub retried: u64,
    /// Entries dead-lettered here: malformed, or delivered too often.
    pub dead_lettered: u64,
    /// Jobs found past their deadline at pickup.
    pub expired: u64,
    /// Deliveries acked without running: the record was already terminal.
    pub skipped: u64,
    /// Jobs taken but not started at shutdown, put back.
    pub released: u64,
    /// Entries claimed from other nodes after their lease ran out.
    pub reclaimed: u64,
    /// Delayed jobs and retries this node moved to their streams.
    pub promoted: u64,
    /// Commands or pipelines sent to Redis: round trips.
    pub round_trips: u64,
    /// Times a connection was lost and opened again.
    pub reconnects: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) succeeded: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) released: AtomicU64,
    pub(crate) reclaimed: AtomicU64,
    pub(crate) promoted: AtomicU64,
    pub(crate) round_trips: Arc<AtomicU64>,
    pub(crate) reconnects: Arc<AtomicU64>,
}

/// How a run ended, for the acker.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Ok(Vec<u8>),
    Err(String),
    /// Not started (the node is stopping): put back for any node.
    Release,
}

/// A finished (or released) job on its way to `finish.lua`.
#[derive(Debug, Clone)]
pub(crate) struct Completion {
    pub(crate) queue: usize,
    pub(crate) stream: String,
    pub(crate) entry: String,
    pub(crate) id: String,
    pub(crate) outcome: Outcome,
    pub(crate) attempt: u32,
    pub(crate) attempts: u32,
    pub(crate) backoff_ms: u64,
    pub(crate) result_ttl_s: u64,
}

pub(crate) struct Shared {
    pub(crate) client: redis::Client,
    pub(crate) queues: Vec<QueueKeys>,
    pub(crate) handlers: HashMap<String, Handler>,
    pub(crate) pool: Pool,
    pub(crate) consumer: String,
    pub(crate) lease: Duration,
    pub(crate) max_deliveries: u32,
    pub(crate) max_in_flight: usize,
    pub(crate) poll: Duration,
    /// Set by shutdown: stop reading and claiming; unstarted jobs are released.
    pub(crate) stopping: AtomicBool,
    /// Set by shutdown once every taken job is acked: helpers exit.
    pub(crate) closed: AtomicBool,
    /// Entries taken and not acked, per stream: the leases to renew.
    pub(crate) held: Mutex<HashMap<String, HashSet<String>>>,
    /// How many entries are taken and not acked.
    pub(crate) in_flight: Mutex<usize>,
    pub(crate) in_flight_changed: Condvar,
    pub(crate) done: Mutex<mpsc::Sender<Completion>>,
    pub(crate) counters: Counters,
}

impl Shared {
    pub(crate) fn conn(&self, name: &'static str, read_timeout: Duration) -> Conn {
        let streams = self.queues.iter().flat_map(|q| q.streams()).collect();
        Conn::new(
            self.client.clone(),
            name,
            streams,
            read_timeout,
            self.counters.round_trips.clone(),
            self.counters.reconnects.clone(),
        )
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    pub(crate) fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn lock_held(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, usize> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Configures and starts a [`Node`].
pub struct NodeBuilder {
    url: String,
    pool: Pool,
    queues: Vec<String>,
    handlers: HashMap<String, Handler>,
    lease: Duration,
    max_deliveries: u32,
    max_in_flight: Option<usize>,
    poll: Duration,
    name: Option<String>,
}

impl fmt::Debug for NodeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.handlers.keys().collect();
        names.sort();
        f.debug_struct("NodeBuilder")
            .field("url", &self.url)
            .field("queues", &self.queues)
            .field("handlers", &names)
            .field("lease", &self.lease)
            .field("max_deliveries", &self.max_deliveries)
            .field("max_in_flight", &self.max_in_flight)
            .field("poll", &self.poll)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl NodeBuilder {
    /// Consume queue `q` too (call once per queue; at least once).
    pub fn queue(mut self, q: impl Into<String>) -> Self {
        self.queues.push(q.into());
        self
    }

    /// The handler for jobs of type `kind`. It runs on the pool; `Ok` bytes
    /// become the record's `result`, `Err` (its `Display` text) the
    /// `error`, and a retry when attempts remain. A panic counts as an `Err`.
    pub fn handler<F, E>(mut self, kind: impl Into<String>, f: F) -> Self
    where
        F: Fn(&Job) -> Result<Vec<u8>, E> + Send + Sync + 'static,
        E: fmt::Display,
    {
        let h: Handler = Arc::new(move |job: &Job| f(job).map_err(|e| e.to_string()));
        self.handlers.insert(kind.into(), h);
        self
    }

    /// The lease (default 30 s): renewed every third of it while a job
    /// runs; an entry idle longer is claimed by any node.
    pub fn lease(mut self, d: Duration) -> Self {
        self.lease = d;
        self
    }

    /// Deliveries after which an entry goes to the dead letters instead of
    /// running again (default 5).
    pub fn max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = n;
        self
    }

    /// Most jobs taken and not yet acked (default 4 per pool worker, at
    /// least 32); also the most read in one batch.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = Some(n);
        self
    }

    /// How often due delayed jobs and retries are promoted (default 100 ms).
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll = d;
        self
    }

    /// The node's consumer name (default `<host>-<pid>-<n>`), also written
    /// in job records.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Checks the settings, connects (creating the consumer groups) and
    /// starts the node's threads.
    pub fn start(self) -> Result<Node, Error> {
        if self.queues.is_empty() {
            return Err(Error::InvalidArgument(
                "a node needs at least one queue".into(),
            ));
        }
        for q in &self.queues {
            validate_queue(q)?;
        }
        if self.handlers.is_empty() {
            return Err(Error::InvalidArgument(
                "a node needs at least one handler".into(),
            ));
        }
        if self.handlers.keys().any(|k| k.is_empty()) {
            return Err(Error::InvalidArgument(
                "a handler's type name is empty".into(),
            ));
        }
        if self.lease < Duration::from_millis(10) {
            return Err(Error::InvalidArgument(format!(
                "lease {:?} is below 10 ms",
                self.lease
            )));
        }
        if self.max_deliveries == 0 {
            return Err(Error::InvalidArgument("max_deliveries is 0".into()));
        }
        if self.max_in_flight == Some(0) {
            return Err(Error::InvalidArgument("max_in_flight is 0".into()));
        }
        if self.poll.is_zero() {
            return Err(Error::InvalidArgument("poll interval is 0".into()));
        }
        let name = match self.name {
            Some(n) if n.is_empty() || n.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                return Err(Error::InvalidArgument(format!("node name {n:?}")))
            }
            Some(n) => n,
            None => default_name(),
        };
        let client = redis::Client::open(self.url.as_str())?;
        let queues = self
            .queues
            .iter()
            .map(|q| QueueKeys::new(q))
            .collect::<Result<Vec<_>, _>>()?;
        // Connect once now: a wrong URL or a Redis that is down is an error
        // here, not a silent retry loop.
        {
            let mut con = client.get_connection()?;
            crate::scripts::Scripts::get().load(&mut con)?;
            let streams: Vec<String> = queues.iter().flat_map(|q| q.streams()).collect();
            crate::conn::create_groups(&mut con, &streams)?;
        }
        let workers = self.pool.workers();
        let max_in_flight = self
            .max_in_flight
            .unwrap_or((workers * IN_FLIGHT_PER_WORKER).max(MIN_IN_FLIGHT));
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            client,
            queues,
            handlers: self.handlers,
            pool: self.pool,
            consumer: name,
            lease: self.lease,
            max_deliveries: self.max_deliveries,
            max_in_flight,
            poll: self.poll,
            stopping: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            held: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(0),
            in_flight_changed: Condvar::new(),
            done: Mutex::new(tx),
            counters: Counters::default(),
        });
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(f)
                .map_err(|e| Error::InvalidArgument(format!("cannot start a thread: {e}")))
        };
        let acker = {
            let sh = shared.clone();
            spawn("runq-redis-acker", Box::new(move || acker::run(&sh, rx)))?
        };
        let keeper = {
            let sh = shared.clone();
            spawn("runq-redis-keeper", Box::new(move || keeper::run(&sh)))?
        };
        let reader = {
            let sh = shared.clone();
            spawn("runq-redis-reader", Box::new(move || reader::run(&sh)))?
        };
        Ok(Node {
            shared,
            threads: Mutex::new(Some([reader, acker, keeper])),
        })
    }
}

fn default_name() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_string());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A running node. Dropping it is [`Node::shutdown`].
pub struct Node {
    shared: Arc<Shared>,
    threads: Mutex<Option<[JoinHandle<()>; 3]>>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.shared.consumer)
            .field(
                "queues",
                &self
                    .shared
                    .queues
                    .iter()
                    .map(|q| &q.name)
                    .collect::<Vec<_>>(),
            )
            .field("stats", &self.stats())
            .finish()
    }
}

impl Node {
    /// A builder for a node on the Redis at `url` running handlers on `pool`.
    pub fn builder(url: impl Into<String>, pool: Pool) -> NodeBuilder {
        NodeBuilder {
            url: url.into(),
            pool,
            queues: Vec::new(),
            handlers: HashMap::new(),
            lease: DEFAULT_LEASE,
            max_deliveries: DEFAULT_MAX_DELIVERIES,
            max_in_flight: None,
            poll: DEFAULT_POLL,
            name: None,
        }
    }

    /// The node's consumer name.
    pub fn name(&self) -> &str {
        &self.shared.consumer
    }

    /// What the node did so far.
    pub fn stats(&self) -> NodeStats {
        let c = &self.shared.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        NodeStats {
            succeeded: l(&c.succeeded),
            failed: l(&c.failed),
            retried: l(&c.retried),
            dead_lettered: l(&c.dead_lettered),
            expired: l(&c.expired),
            skipped: l(&c.skipped),
            released: l(&c.released),
            reclaimed: l(&c.reclaimed),
            promoted: l(&c.promoted),
            round_trips: l(&c.round_trips),
            reconnects: l(&c.reconnects),
        }
    }

    /// Stops reading, lets running jobs finish and acks them, releases the
    /// jobs taken but not started (back to their streams at once), and
    /// leaves the consumer group when nothing is left pending. Returns the
    /// node's counts. Idempotent.
    ///
    /// It waits for running handlers however long they take. If Redis is
    /// unreachable, it tries to ack for 10 s more, then returns; what it
    /// could not ack stays pending and another node claims it when the
    /// lease ends.
    pub fn shutdown(&self) -> NodeStats {
        let threads = self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some([reader, acker, keeper]) = threads {
            let sh = &self.shared;
            sh.stopping.store(true, Ordering::Release);
            sh.in_flight_changed.notify_all();
            let _ = reader.join();
            {
                let mut n = sh.lock_in_flight();
                while *n > 0 {
                    n = sh
                        .in_flight_changed
                        .wait(n)
                        .unwrap_or_else(|p| p.into_inner());
                }
            }
            sh.closed.store(true, Ordering::Release);
            let _ = acker.join();
            let _ = keeper.join();
            self.leave_group();
        }
        self.stats()
    }

    /// Deletes this node's consumer from each stream's group when it holds
    /// no entry there (DELCONSUMER would drop pending entries otherwise).
    fn leave_group(&self) {
        let Ok(mut con) = self.shared.client.get_connection() else {
            return;
        };
        for q in &self.shared.queues {
            for s in q.streams() {
                let pending: redis::RedisResult<redis::Value> = redis::cmd("XPENDING")
                    .arg(&s)
                    .arg(crate::keys::GROUP)
                    .arg("-")
                    .arg("+")
                    .arg(1)
                    .arg(&self.shared.consumer)
                    .query(&mut con);
                if let Ok(v) = pending {
                    if crate::value::array(&v).is_empty() {
                        let _: redis::RedisResult<i64> = redis::cmd("XGROUP")
                            .arg("DELCONSUMER")
                            .arg(&s)
                            .arg(crate::keys::GROUP)
                            .arg(&self.shared.consumer)
                            .query(&mut con);
                    }
                }
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown();
    }
}
