//! The producer's side: enqueue, state, wait, cancel, and the operator's
//! views (stats, dead letters) the CLI prints.

use crate::error::Error;
use crate::keys::{priority_name, QueueKeys, GROUP};
use crate::scripts::{evalsha, is_noscript, Scripts};
use crate::value;
use crate::wire::{now_ms, JobId, JobState, DEFAULT_RESULT_TTL_S, MAX_ATTEMPTS, MAX_RESULT_TTL_S};
use redis::{Connection, RedisResult, Value};
use runq::Priority;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Connections kept for reuse by one [`Client`]; more may be open while
/// calls overlap (a waiter holds one for its whole wait).
const IDLE_CONNECTIONS: usize = 8;

/// A job to enqueue: queue, type (the handler's name), payload, options.
#[derive(Debug, Clone)]
pub struct Enqueue {
    queue: String,
    kind: String,
    payload: Vec<u8>,
    id: Option<String>,
    priority: Priority,
    attempts: u32,
    backoff: Option<Duration>,
    delay: Option<Duration>,
    deadline: Option<Duration>,
    key: Option<String>,
    result_ttl: Option<Duration>,
}

impl Enqueue {
    /// A job of type `kind` (the handler's name) on `queue`.
    pub fn new(
        queue: impl Into<String>,
        kind: impl Into<String>,
        payload: impl Into<Vec<u8>>,
    ) -> Enqueue {
        Enqueue {
            queue: queue.into(),
            kind: kind.into(),
            payload: payload.into(),
            id: None,
            priority: Priority::Normal,
            attempts: 1,
            backoff: None,
            delay: None,
            deadline: None,
            key: None,
            result_ttl: None,
        }
    }

    /// The job's id (default: a fresh random one). Unique within the
    /// queue while the job's record lives.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Which stream: `high`, `normal` (default) or `low`.
    pub fn priority(mut self, p: Priority) -> Self {
        self.priority = p;
        self
    }

    /// Runs in all (default 1: no retry); 0 is an error.
    pub fn attempts(mut self, n: u32) -> Self {
        self.attempts = n;
        self
    }

    /// Exponential backoff base between attempts (default 1 s): attempt
    /// `n + 1` waits `backoff * 2^(n-1)`, at most an hour.
    pub fn backoff(mut self, d: Duration) -> Self {
        self.backoff = Some(d);
        self
    }

    /// Run no earlier than this from now (waits in the scheduled set).
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }

    /// Not started this long from now: the job ends `expired`.
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = Some(d);
        self
    }

    /// Idempotency key: refused while another job with this key is not
    /// terminal.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// How long the record (result or error) stays after the job ends
    /// (default a day; whole seconds, at least one).
    pub fn result_ttl(mut self, d: Duration) -> Self {
        self.result_ttl = Some(d);
        self
    }
}

/// A job's record, as the CLI's `state` prints it.
#[derive(Debug, Clone, Default)]
pub struct JobRecord {
    /// Every field of `runq:{Q}:job:<id>` (state, attempt, result, error,
    /// node, updated_ms, ...).
    pub fields: Vec<(String, Vec<u8>)>,
}

impl JobRecord {
    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// One dead letter of `runq:{Q}:dead`.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The dead stream's entry id (what `requeue-dead` takes).
    pub entry: String,
    /// The entry's fields plus `error`, `attempts`, `dead_ms`, `priority`.
    pub fields: Vec<(String, Vec<u8>)>,
}

impl DeadLetter {
    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// One consumer (node) of a queue's group, on one stream.
#[derive(Debug, Clone)]
pub struct ConsumerStats {
    /// The stream's priority (`high`, `normal`, `low`).
    pub stream: String,
    /// The consumer's name (host-pid-n of its node).
    pub name: String,
    /// Entries it holds unacked (running or about to).
    pub pending: u64,
    /// Since its last read or claim.
    pub idle_ms: u64,
}

/// What the CLI's `stats` prints for one queue.
#[derive(Debug, Clone, Default)]
pub struct QueueStats {
    /// The queue.
    pub queue: String,
    /// Entries waiting in each stream, not yet delivered: high, normal, low.
    pub ready: [u64; 3],
    /// Entries delivered and not acked (running, or held by a dead node
    /// until its lease runs out): high, normal, low.
    pub pending: [u64; 3],
    /// Delayed jobs and retries in the scheduled set.
    pub scheduled: u64,
    /// Dead letters.
    pub dead: u64,
    /// Consumers per stream.
    pub consumers: Vec<ConsumerStats>,
}

/// A handle on the queues in one Redis: enqueue jobs, ask about them, wait
/// for them, cancel them. Cheap to share (`&Client` across threads).
pub struct Client {
    client: redis::Client,
    idle: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.client.get_connection_info().addr())
            .finish_non_exhaustive()
    }
}

fn fresh_id() -> String {
    // 128 random bits from std's per-process random hash keys, a counter and
    // the clock: unique without another dependency.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut a = RandomState::new().build_hasher();
    a.write_u64(n);
    a.write_u64(now_ms());
    a.write_u32(std::process::id());
    let mut b = RandomState::new().build_hasher();
    b.write_u64(a.finish());
    b.write_u64(n);
    format!("{:016x}{:016x}", a.finish(), b.finish())
}

impl Client {
    /// Connects to the Redis at `url` (`redis://host:port/db`) and checks
    /// that it answers.
    pub fn open(url: &str) -> Result<Client, Error> {
        let client = redis::Client::open(url)?;
        let c = Client {
            client,
            idle: Mutex::new(Vec::new()),
        };
        c.with(|con| redis::cmd("PING").query::<()>(con))?;
        Ok(c)
    }

    fn take(&self) -> Result<Connection, Error> {
        if let Some(c) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(c);
        }
        Ok(self.client.get_connection()?)
    }

    fn give(&self, con: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_CONNECTIONS {
            idle.push(con);
        }
    }

    /// Runs `f` on a pooled connection; a connection that failed is dropped,
    /// and a missing script is loaded and `f` tried once more.
    fn with<T>(&self, mut f: impl FnMut(&mut Connection) -> RedisResult<T>) -> Result<T, Error> {
        let mut con = self.take()?;
        let mut r = f(&mut con);
        if let Err(e) = &r {
            if is_noscript(e) {
                Scripts::get().load(&mut con)?;
                r = f(&mut con);
            }
        }
        match r {
            Ok(v) => {
                self.give(con);
                Ok(v)
            }
            Err(e) => {
                if !(e.is_io_error() || e.is_connection_dropped() || e.is_timeout()) {
                    self.give(con);
                }
                Err(e.into())
            }
        }
    }

    /// Adds a job: to its ready stream, or to the scheduled set when it has
    /// a delay. Returns its id.
    pub fn enqueue(&self, job: Enqueue) -> Result<JobId, Error> {
        let q = QueueKeys::new(&job.queue)?;
        if job.kind.is_empty() {
            return Err(Error::InvalidArgument("job type is empty".into()));
        }
        if job.attempts == 0 || job.attempts as u64 > MAX_ATTEMPTS {
            return Err(Error::InvalidArgument(format!(
                "attempts is {}, must be 1 to {MAX_ATTEMPTS}",
                job.attempts
            )));
        }
        let ttl_s = match job.result_ttl {
            None => DEFAULT_RESULT_TTL_S,
            Some(d) if d.as_secs() >= 1 && d.as_secs() <= MAX_RESULT_TTL_S => d.as_secs(),
            Some(d) => {
                return Err(Error::InvalidArgument(format!(
                    "result_ttl {d:?} must be 1 s to {MAX_RESULT_TTL_S} s"
                )))
            }
        };
        let id = match job.id {
            Some(id) if id.is_empty() => {
                return Err(Error::InvalidArgument("job id is empty".into()))
            }
            Some(id) => id,
            None => fresh_id(),
        };
        if let Some(k) = &job.key {
            if k.is_empty() {
                return Err(Error::InvalidArgument("key is empty".into()));
            }
        }
        let backoff_ms = match job.backoff {
            None => crate::wire::DEFAULT_BACKOFF_MS,
            Some(d) if d.as_millis() <= u32::MAX as u128 => d.as_millis() as u64,
            Some(d) => return Err(Error::InvalidArgument(format!("backoff {d:?} is too long"))),
        };
        let now = now_ms();
        let ms = |d: Duration| -> Result<u64, Error> {
            u64::try_from(d.as_millis())
                .ok()
                .and_then(|m| m.checked_add(now))
                .filter(|t| *t < i64::MAX as u64 / 2)
                .ok_or_else(|| Error::InvalidArgument(format!("{d:?} is too far away")))
        };
        let due = match job.delay {
            Some(d) if !d.is_zero() => ms(d)?,
            _ => 0,
        };
        let deadline = job.deadline.map(ms).transpose()?;

        let stream = q.stream(job.priority);
        let sched = q.scheduled();
        let rec = q.job(&id);
        let keykey = q.key(job.key.as_deref().unwrap_or(""));
        let mut cmd = evalsha(&Scripts::get().enqueue, &[&stream, &sched, &rec, &keykey]);
        cmd.arg(&id)
            .arg(now)
            .arg(due)
            .arg(if job.key.is_some() { "1" } else { "0" })
            .arg(job.key.as_deref().unwrap_or(""))
            .arg(ttl_s);
        cmd.arg("id").arg(&id);
        cmd.arg("type").arg(&job.kind);
        cmd.arg("payload").arg(&job.payload[..]);
        cmd.arg("attempts").arg(job.attempts);
        cmd.arg("backoff_ms").arg(backoff_ms);
        if let Some(d) = deadline {
            cmd.arg("deadline_ms").arg(d);
        }
        cmd.arg("result_ttl_s").arg(ttl_s);
        let reply: Value = self.with(|con| cmd.query(con))?;
        let parts = value::array(&reply);
        match parts.first().and_then(value::string).as_deref() {
            Some("queued") | Some("scheduled") => Ok(JobId::new(job.queue, id)),
            Some("dup-id") => Err(Error::DuplicateId(JobId::new(job.queue, id))),
            Some("dup-key") => Err(Error::DuplicateKey {
                key: job.key.unwrap_or_default(),
                holder: JobId::new(
                    job.queue,
                    parts.get(1).and_then(value::string).unwrap_or_default(),
                ),
            }),
            _ => Err(Error::Protocol(format!("enqueue replied {reply:?}"))),
        }
    }

    /// The job's state, or `None` when Redis has no record of it (unknown,
    /// expired after its result TTL, or added with a plain XADD and not
    /// picked up yet).
    pub fn state(&self, id: &JobId) -> Result<Option<JobState>, Error> {
        let q = QueueKeys::new(id.queue())?;
        let s: Option<String> = self.with(|con| {
            redis::cmd("HGET")
                .arg(q.job(id.id()))
                .arg("state")
                .query(con)
        })?;
        match s {
            None => Ok(None),
            Some(s) => JobState::parse(&s)
                .map(Some)
                .ok_or_else(|| Error::Protocol(format!("unknown state {s:?}"))),
        }
    }

    /// Every field of the job's record, or `None` without one.
    pub fn record(&self, id: &JobId) -> Result<Option<JobRecord>, Error> {
        let q = QueueKeys::new(id.queue())?;
        let v: Value = self.with(|con| redis::cmd("HGETALL").arg(q.job(id.id())).query(con))?;
        let fields: Vec<(String, Vec<u8>)> = value::pairs(&v)
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
            .collect();
        Ok(if fields.is_empty() {
            None
        } else {
            Some(JobRecord { fields })
        })
    }

    /// Waits up to `timeout` for the job to end, without polling (a
    /// blocking pop on its done list, which stays for other waiters).
    /// `Some(Ok(result))` when it succeeded, `Some(Err(error))` for any
    /// other end (`failed`, `dead`, `expired`: the recorded error;
    /// `cancelled`), `None` on time-out.
    pub fn wait(
        &self,
        id: &JobId,
        timeout: Duration,
    ) -> Result<Option<Result<Vec<u8>, String>>, Error> {
        let q = QueueKeys::new(id.queue())?;
        let rec = q.job(id.id());
        let done = q.done(id.id());
        if let Some(r) = self.outcome(&rec)? {
            return Ok(Some(r));
        }
        // BLMOVE from the list to itself: wakes when the state is pushed and
        // leaves it there for the next waiter. Timeout in seconds (float);
        // 0 would block forever, so at least a millisecond.
        let secs = timeout.as_secs_f64().max(0.001);
        let mut con = self.take()?;
        // A blocking call waits longer than any read timeout would allow.
        con.set_read_timeout(None)?;
        let r: RedisResult<Option<String>> = redis::cmd("BLMOVE")
            .arg(&done)
            .arg(&done)
            .arg("LEFT")
            .arg("LEFT")
            .arg(secs)
            .query(&mut con);
        match r {
            Ok(None) => {
                self.give(con);
                Ok(None)
            }
            Ok(Some(_)) => {
                self.give(con);
                self.outcome(&rec)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The outcome in a terminal record, or `None` while not terminal.
    fn outcome(&self, rec: &str) -> Result<Option<Result<Vec<u8>, String>>, Error> {
        let v: Vec<Option<Vec<u8>>> = self.with(|con| {
            redis::cmd("HMGET")
                .arg(rec)
                .arg("state")
                .arg("result")
                .arg("error")
                .query(con)
        })?;
        let state = v
            .first()
            .cloned()
            .flatten()
            .and_then(|s| String::from_utf8(s).ok())
            .and_then(|s| JobState::parse(&s));
        let field = |i: usize| v.get(i).cloned().flatten();
        Ok(match state {
            Some(JobState::Succeeded) => Some(Ok(field(1).unwrap_or_default())),
            Some(s) if s.is_terminal() => Some(Err(field(2)
                .map(|e| String::from_utf8_lossy(&e).into_owned())
                .unwrap_or_else(|| s.as_str().to_string()))),
            _ => None,
        })
    }

    /// Cancels a job that has not started (queued, delayed, or waiting for
    /// a retry). True if it will never run; false when it runs or ran
    /// already, or Redis knows no such job.
    pub fn cancel(&self, id: &JobId) -> Result<bool, Error> {
        let q = QueueKeys::new(id.queue())?;
        let rec = q.job(id.id());
        let sched = q.scheduled();
        let mut cmd = evalsha(&Scripts::get().cancel, &[&rec, &sched]);
        cmd.arg(id.id()).arg(now_ms());
        let n: i64 = self.with(|con| cmd.query(con))?;
        Ok(n == 1)
    }

    /// Up to `count` dead letters of `queue`, oldest first.
    pub fn dead(&self, queue: &str, count: usize) -> Result<Vec<DeadLetter>, Error> {
        let q = QueueKeys::new(queue)?;
        let v: Value = self.with(|con| {
            redis::cmd("XRANGE")
                .arg(q.dead())
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(count.max(1))
                .query(con)
        })?;
        Ok(value::array(&v)
            .iter()
            .filter_map(value::entry)
            .map(|(entry, fields)| DeadLetter {
                entry,
                fields: fields
                    .into_iter()
                    .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
                    .collect(),
            })
            .collect())
    }

    /// Moves dead letters back to their ready streams as fresh jobs: the
    /// one with dead-stream entry id `entry`, or all when `None`. Returns
    /// how many moved.
    pub fn requeue_dead(&self, queue: &str, entry: Option<&str>) -> Result<u64, Error> {
        let q = QueueKeys::new(queue)?;
        let dead = q.dead();
        let requeue = |eid: &str| -> Result<u64, Error> {
            let mut cmd = evalsha(&Scripts::get().requeue_dead, &[&dead]);
            cmd.arg(eid).arg(now_ms());
            let n: i64 = self.with(|con| cmd.query(con))?;
            Ok(n as u64)
        };
        match entry {
            Some(e) => requeue(e),
            None => {
                let mut moved = 0;
                // Pages of this size: a bound on one reply, not a tuning value.
                const PAGE: usize = 500;
                loop {
                    let page = self.dead(queue, PAGE)?;
                    if page.is_empty() {
                        return Ok(moved);
                    }
                    let mut progressed = false;
                    for d in &page {
                        let n = requeue(&d.entry)?;
                        moved += n;
                        progressed = true;
                    }
                    if !progressed {
                        return Ok(moved);
                    }
                }
            }
        }
    }

    /// Ready, pending, scheduled and dead counts of `queue`, and its
    /// consumers with their idle times.
    pub fn stats(&self, queue: &str) -> Result<QueueStats, Error> {
        let q = QueueKeys::new(queue)?;
        let mut st = QueueStats {
            queue: queue.to_string(),
            ..QueueStats::default()
        };
        for (i, stream) in q.streams().iter().enumerate() {
            // Acked entries are deleted, so a stream holds exactly the
            // entries not yet delivered plus the pending ones.
            let (exists, len): (bool, u64) = self.with(|con| {
                redis::pipe()
                    .cmd("EXISTS")
                    .arg(stream)
                    .cmd("XLEN")
                    .arg(stream)
                    .query(con)
            })?;
            if !exists {
                continue;
            }
            let groups: Value =
                self.with(|con| redis::cmd("XINFO").arg("GROUPS").arg(stream).query(con))?;
            for g in value::array(&groups) {
                let info = value::pairs(g);
                let get = |name: &str| {
                    info.iter()
                        .find(|(k, _)| k == name.as_bytes())
                        .and_then(|(_, v)| String::from_utf8(v.clone()).ok())
                };
                if get("name").as_deref() != Some(GROUP) {
                    continue;
                }
                st.pending[i] = get("pending").and_then(|s| s.parse().ok()).unwrap_or(0);
            }
            st.ready[i] = len.saturating_sub(st.pending[i]);
            let consumers: Value = self
                .with(|con| {
                    redis::cmd("XINFO")
                        .arg("CONSUMERS")
                        .arg(stream)
                        .arg(GROUP)
                        .query(con)
                })
                .unwrap_or(Value::Nil);
            for c in value::array(&consumers) {
                let info = value::pairs(c);
                let get = |name: &str| {
                    info.iter()
                        .find(|(k, _)| k == name.as_bytes())
                        .and_then(|(_, v)| String::from_utf8(v.clone()).ok())
                };
                st.consumers.push(ConsumerStats {
                    stream: priority_name([Priority::High, Priority::Normal, Priority::Low][i])
                        .to_string(),
                    name: get("name").unwrap_or_default(),
                    pending: get("pending").and_then(|s| s.parse().ok()).unwrap_or(0),
                    idle_ms: get("idle").and_then(|s| s.parse().ok()).unwrap_or(0),
                });
            }
        }
        let (sched, dead): (u64, u64) = self.with(|con| {
            redis::pipe()
                .cmd("ZCARD")
                .arg(q.scheduled())
                .cmd("XLEN")
                .arg(q.dead())
                .query(con)
        })?;
        st.scheduled = sched;
        st.dead = dead;
        Ok(st)
    }
}
