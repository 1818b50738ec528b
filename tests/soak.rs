//! Fault-injection soak.
//!
//! Each round builds a pool of 1 to 4 workers and throws at it, from several
//! submitter threads at once: tasks that panic, tasks that fail and retry,
//! delays, deadlines that expire, keys that collide, guards, nested
//! submit-and-wait, scopes and joins, batches, cancels at random moments,
//! and a `shutdown` or `shutdown_now` while the submitters are still
//! submitting. Half the rounds run an elastic pool (a ceiling up to 4 above
//! the floor, keep-alives from zero to 10 ms, so that workers start and
//! retire all through the round) with tasks that block in
//! `block_in_place`. An independent ledger (atomics per task) then checks that
//!
//! * every accepted task reached exactly one terminal state, consistent with
//!   what its body did, and its callback ran exactly once;
//! * every refused submission never ran and never got a callback;
//! * a `cancel()` that returned true was followed by no further run;
//! * every handle resolves to the outcome its callback saw;
//! * the pool's counters balance and no thread outlives the round.
//!
//! Ignored by default. Run it with
//! `ROUNDS=20 SEED=1234 cargo test --test soak -- --ignored --nocapture`;
//! the seed is printed so that a failing round's inputs can be replayed (the
//! schedule itself is up to the machine).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use runq::{Handle, Jitter, Pool, Retry, SubmitError, Task, TaskError, WhenFull};

mod common;

use common::threads_named;

/// How long any single wait may take before the soak calls it a hang.
const LIMIT: Duration = Duration::from_secs(30);
/// Ledger slots per round; submitters stop when they run out.
const MAX_TASKS: usize = 1 << 14;
/// Marker in planned panic messages, so the panic hook can keep them quiet.
const PLANNED: &str = "soak: planned panic";

/// xorshift64*: small, fast, and enough to vary the inputs reproducibly.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Spread the seed and keep the state non-zero.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// What kind of task a ledger slot describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Plain = 1,
    Panics,
    Flaky,
    Delayed,
    Deadline,
    Keyed,
    Guarded,
    Nested,
    Scoped,
    Cooperative,
    Blocking,
}

impl Kind {
    fn from_u8(v: u8) -> Kind {
        match v {
            1 => Kind::Plain,
            2 => Kind::Panics,
            3 => Kind::Flaky,
            4 => Kind::Delayed,
            5 => Kind::Deadline,
            6 => Kind::Keyed,
            7 => Kind::Guarded,
            8 => Kind::Nested,
            9 => Kind::Scoped,
            10 => Kind::Cooperative,
            11 => Kind::Blocking,
            _ => panic!("bad kind {v}"),
        }
    }
}

/// A task's outcome as the ledger records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Outcome {
    Ok = 1,
    Panicked,
    Failed,
    Cancelled,
    Expired,
    ShutDown,
    Other,
}

impl Outcome {
    fn of(r: &Result<u64, TaskError>) -> Outcome {
        match r {
            Ok(_) => Outcome::Ok,
            Err(TaskError::Panicked(_)) => Outcome::Panicked,
            Err(TaskError::Failed { .. }) => Outcome::Failed,
            Err(TaskError::Cancelled) => Outcome::Cancelled,
            Err(TaskError::Expired) => Outcome::Expired,
            Err(TaskError::ShutDown) => Outcome::ShutDown,
            Err(_) => Outcome::Other,
        }
    }
    fn from_u8(v: u8) -> Option<Outcome> {
        Some(match v {
            1 => Outcome::Ok,
            2 => Outcome::Panicked,
            3 => Outcome::Failed,
            4 => Outcome::Cancelled,
            5 => Outcome::Expired,
            6 => Outcome::ShutDown,
            7 => Outcome::Other,
            _ => return None,
        })
    }
}

/// How a round ends its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Shutdown,
    ShutdownNow,
    /// Every clone dropped: the same as `shutdown()`, from whichever thread
    /// drops the last one.
    Drop,
}

const NOT_SUBMITTED: u8 = 0;
const ACCEPTED: u8 = 1;
const REFUSED: u8 = 2;

/// One task's line in the ledger.
#[derive(Default)]
struct Entry {
    admission: AtomicU8,
    kind: AtomicU8,
    /// Runs allowed: the retry policy's attempts (1 without retries).
    attempts: AtomicU32,
    /// For guarded tasks: what the guard answers.
    guard_allows: AtomicBool,
    runs: AtomicU32,
    callbacks: AtomicU32,
    outcome: AtomicU8,
    /// `cancel()` was called on it (whatever it returned).
    cancel_tried: AtomicBool,
    cancel_won: AtomicBool,
    runs_at_cancel: AtomicU32,
}

struct Ledger {
    entries: Vec<Entry>,
    next: AtomicUsize,
    anomalies: Mutex<Vec<String>>,
}

impl Ledger {
    fn new() -> Ledger {
        Ledger {
            entries: (0..MAX_TASKS).map(|_| Entry::default()).collect(),
            next: AtomicUsize::new(0),
            anomalies: Mutex::new(Vec::new()),
        }
    }
    fn alloc(&self) -> Option<usize> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        (id < MAX_TASKS).then_some(id)
    }
    fn used(&self) -> usize {
        self.next.load(Ordering::SeqCst).min(MAX_TASKS)
    }
    fn anomaly(&self, what: String) {
        self.anomalies.lock().unwrap().push(what);
    }
    fn admit(&self, id: usize, accepted: bool) {
        let e = &self.entries[id];
        let prev = e
            .admission
            .swap(if accepted { ACCEPTED } else { REFUSED }, Ordering::SeqCst);
        if prev != NOT_SUBMITTED {
            self.anomaly(format!("task {id}: admitted twice"));
        }
    }
    fn record_cancel(&self, id: usize, h: &Handle<u64>) {
        self.entries[id].cancel_tried.store(true, Ordering::SeqCst);
        if h.cancel() {
            let e = &self.entries[id];
            e.runs_at_cancel
                .store(e.runs.load(Ordering::SeqCst), Ordering::SeqCst);
            e.cancel_won.store(true, Ordering::SeqCst);
        }
    }
    /// Checks a handle's result against the ledger once `wait` returned.
    fn check_waited(&self, id: usize, res: &Result<u64, TaskError>) {
        let e = &self.entries[id];
        if e.callbacks.load(Ordering::SeqCst) != 1 {
            self.anomaly(format!(
                "task {id}: wait returned {res:?} with {} callback runs",
                e.callbacks.load(Ordering::SeqCst)
            ));
            return;
        }
        let recorded = Outcome::from_u8(e.outcome.load(Ordering::SeqCst));
        if recorded != Some(Outcome::of(res)) {
            self.anomaly(format!(
                "task {id}: callback saw {recorded:?}, wait returned {res:?}"
            ));
        }
        if let Ok(v) = res {
            if *v != id as u64 {
                self.anomaly(format!("task {id}: returned the value of task {v}"));
            }
        }
    }
}

/// Everything a task body needs to reach its pool and the ledger.
#[derive(Clone)]
struct Ctx {
    pool: Pool,
    ledger: Arc<Ledger>,
}

/// Describes a fresh task for slot `id` and notes its kind in the ledger.
fn build_task(ctx: &Ctx, rng: &mut Rng, id: usize, depth: u32) -> Task<u64> {
    let kind = match rng.below(100) {
        0..=9 => Kind::Plain,
        10..=19 => Kind::Blocking,
        20..=29 => Kind::Panics,
        30..=44 => Kind::Flaky,
        45..=54 => Kind::Delayed,
        55..=64 => Kind::Deadline,
        65..=71 => Kind::Keyed,
        72..=78 => Kind::Guarded,
        79..=86 if depth < 2 => Kind::Nested,
        87..=92 => Kind::Scoped,
        93..=99 => Kind::Cooperative,
        _ => Kind::Plain,
    };
    let entry = &ctx.ledger.entries[id];
    entry.kind.store(kind as u8, Ordering::Relaxed);
    entry.attempts.store(1, Ordering::Relaxed);
    let ledger = ctx.ledger.clone();
    let run = move || ledger.entries[id].runs.fetch_add(1, Ordering::SeqCst) + 1;
    let value = id as u64;
    let task = match kind {
        Kind::Plain => Task::new(move || {
            run();
            value
        }),
        Kind::Panics => Task::new(move || {
            run();
            panic!("{PLANNED} (task {id})");
        }),
        Kind::Flaky => {
            let attempts = 1 + rng.below(3) as u32;
            let failures = rng.below(4) as u32;
            let by_panic = rng.percent(30);
            let delay = Duration::from_micros(rng.below(2_000));
            let jitter = [Jitter::None, Jitter::Equal, Jitter::Full][rng.below(3) as usize];
            let policy = if rng.percent(50) {
                Retry::fixed(attempts, delay)
            } else {
                Retry::exponential(attempts, delay)
            };
            entry.attempts.store(attempts, Ordering::Relaxed);
            Task::fallible(move || {
                let n = run();
                if n > failures {
                    Ok(value)
                } else if by_panic {
                    panic!("{PLANNED} (task {id}, run {n})");
                } else {
                    Err(format!("planned failure {n}"))
                }
            })
            .retry(policy.jitter(jitter))
        }
        Kind::Delayed => Task::new(move || {
            run();
            value
        })
        .delay(Duration::from_micros(rng.below(5_000))),
        Kind::Deadline => Task::new(move || {
            run();
            value
        })
        .deadline(Duration::from_micros(rng.below(3_000))),
        Kind::Keyed => Task::new(move || {
            run();
            std::thread::sleep(Duration::from_micros(200));
            value
        })
        .key(format!("key-{}", rng.below(4))),
        Kind::Guarded => {
            let allow = rng.percent(50);
            entry.guard_allows.store(allow, Ordering::Relaxed);
            Task::new(move || {
                run();
                value
            })
            .guard(move || allow)
        }
        Kind::Nested => {
            let inner_ctx = ctx.clone();
            let inner_seed = rng.next();
            Task::new(move || {
                run();
                nested_body(&inner_ctx, inner_seed, depth + 1);
                value
            })
        }
        Kind::Scoped => {
            let inner_ctx = ctx.clone();
            Task::new(move || {
                run();
                scoped_body(&inner_ctx, id);
                value
            })
        }
        Kind::Blocking => {
            let pause = Duration::from_micros(rng.below(500));
            Task::new(move || {
                run();
                runq::block_in_place(|| std::thread::sleep(pause));
                value
            })
        }
        Kind::Cooperative => Task::new(move || {
            run();
            let start = Instant::now();
            while !runq::is_cancelled() && start.elapsed() < Duration::from_millis(3) {
                std::hint::spin_loop();
            }
            value
        }),
    };
    let ledger = ctx.ledger.clone();
    task.on_complete(move |r| {
        let e = &ledger.entries[id];
        e.outcome.store(Outcome::of(r) as u8, Ordering::SeqCst);
        e.callbacks.fetch_add(1, Ordering::SeqCst);
    })
}

/// Submits a tracked task from inside the pool and waits for it there.
fn nested_body(ctx: &Ctx, seed: u64, depth: u32) {
    let mut rng = Rng::new(seed);
    let Some(id) = ctx.ledger.alloc() else { return };
    let task = build_task(ctx, &mut rng, id, depth);
    match ctx.pool.submit_task(task) {
        Ok(h) => {
            ctx.ledger.admit(id, true);
            if rng.percent(20) {
                ctx.ledger.record_cancel(id, &h);
            }
            match h.wait_timeout(LIMIT) {
                Ok(res) => ctx.ledger.check_waited(id, &res),
                Err(h) => ctx.ledger.anomaly(format!(
                    "task {id}: nested wait timed out in status {:?}",
                    h.status()
                )),
            }
        }
        Err(SubmitError::ShutDown) | Err(SubmitError::Duplicate(_)) => ctx.ledger.admit(id, false),
        Err(e) => {
            ctx.ledger.admit(id, false);
            ctx.ledger
                .anomaly(format!("task {id}: nested submit refused with {e}"));
        }
    }
}

/// Borrows from the stack in a scope and forks with `join`; all of it must
/// run even while the pool shuts down around it.
fn scoped_body(ctx: &Ctx, id: usize) {
    let hits = AtomicU32::new(0);
    ctx.pool.scope(|s| {
        for _ in 0..3 {
            s.spawn(|s| {
                hits.fetch_add(1, Ordering::SeqCst);
                s.spawn(|_| {
                    hits.fetch_add(1, Ordering::SeqCst);
                });
            });
        }
    });
    let (a, b) = runq::join(|| 1u32, || 2u32);
    let seen = hits.load(Ordering::SeqCst);
    if seen != 6 || a + b != 3 {
        ctx.ledger.anomaly(format!(
            "task {id}: scope saw {seen} of 6 spawns, join gave {a}+{b}"
        ));
    }
}

/// A ledger id with the handle of its task.
type Tracked = (usize, Handle<u64>);

/// Handles waiting for the canceller thread.
type CancelList = Arc<Mutex<Vec<Tracked>>>;

/// One submitter thread's work: returns the handles it kept.
fn submitter(ctx: Ctx, seed: u64, count: usize, cancels: CancelList) -> Vec<Tracked> {
    let mut rng = Rng::new(seed);
    let mut kept = Vec::new();
    let mut refused_shutdown = 0;
    let mut i = 0;
    while i < count && refused_shutdown < 20 {
        let mode = rng.below(100);
        let n = if mode < 8 {
            2 + rng.below(3) as usize
        } else {
            1
        };
        let mut ids = Vec::with_capacity(n);
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let Some(id) = ctx.ledger.alloc() else {
                return kept;
            };
            tasks.push(build_task(&ctx, &mut rng, id, 0));
            ids.push(id);
        }
        i += n;
        let result: Result<Vec<Handle<u64>>, SubmitError> = if n > 1 {
            ctx.pool.submit_batch(tasks)
        } else if mode < 18 {
            ctx.pool
                .try_submit_task(tasks.pop().unwrap())
                .map(|h| vec![h])
                .map_err(|e| e.error.clone())
        } else {
            ctx.pool.submit_task(tasks.pop().unwrap()).map(|h| vec![h])
        };
        match result {
            Ok(handles) => {
                if handles.len() != ids.len() {
                    ctx.ledger.anomaly(format!(
                        "batch of {} gave {} handles",
                        ids.len(),
                        handles.len()
                    ));
                }
                for (&id, h) in ids.iter().zip(handles) {
                    ctx.ledger.admit(id, true);
                    match rng.below(100) {
                        0..=11 => {
                            ctx.ledger.record_cancel(id, &h);
                            kept.push((id, h));
                        }
                        12..=21 => cancels.lock().unwrap().push((id, h)),
                        22..=31 => drop(h),
                        32..=36 => match h.wait_timeout(LIMIT) {
                            Ok(res) => ctx.ledger.check_waited(id, &res),
                            Err(h) => {
                                ctx.ledger.anomaly(format!(
                                    "task {id}: wait timed out in {:?}",
                                    h.status()
                                ));
                            }
                        },
                        _ => kept.push((id, h)),
                    }
                }
            }
            Err(e) => {
                for &id in &ids {
                    ctx.ledger.admit(id, false);
                }
                match e {
                    SubmitError::ShutDown => refused_shutdown += 1,
                    SubmitError::Full | SubmitError::Duplicate(_) => {}
                    other => ctx
                        .ledger
                        .anomaly(format!("unexpected submit error {other}")),
                }
            }
        }
        if rng.percent(10) {
            std::thread::yield_now();
        }
    }
    kept
}

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Polls until `cond` holds; false if it never did within `limit`.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// Joins a thread, treating a thread still running after `LIMIT` as a hang.
fn join_bounded<T>(t: std::thread::JoinHandle<T>, what: &str) -> T {
    assert!(eventually(LIMIT, || t.is_finished()), "{what} hung");
    t.join().unwrap_or_else(|_| panic!("{what} panicked"))
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Keeps planned panics out of the output; others print as usual.
fn quiet_planned_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if !msg.contains(PLANNED) {
            default(info);
        }
    }));
}

/// Checks every ledger line after the round; returns outcome counts.
/// `stopped_now`: the round ran `shutdown_now`, which (like a cancel of a
/// running task) stops retries after the current run.
fn audit(ledger: &Ledger, stopped_now: bool) -> [usize; 8] {
    let mut counts = [0usize; 8];
    for id in 0..ledger.used() {
        let e = &ledger.entries[id];
        let runs = e.runs.load(Ordering::SeqCst);
        let callbacks = e.callbacks.load(Ordering::SeqCst);
        match e.admission.load(Ordering::SeqCst) {
            REFUSED => {
                if runs != 0 || callbacks != 0 {
                    ledger.anomaly(format!(
                        "task {id}: refused, yet ran {runs} times with {callbacks} callbacks"
                    ));
                }
                continue;
            }
            ACCEPTED => {}
            _ => {
                ledger.anomaly(format!("task {id}: neither accepted nor refused"));
                continue;
            }
        }
        let kind = Kind::from_u8(e.kind.load(Ordering::SeqCst));
        if callbacks != 1 {
            ledger.anomaly(format!(
                "task {id} ({kind:?}): callback ran {callbacks} times"
            ));
            continue;
        }
        let Some(outcome) = Outcome::from_u8(e.outcome.load(Ordering::SeqCst)) else {
            ledger.anomaly(format!("task {id} ({kind:?}): no outcome recorded"));
            continue;
        };
        counts[outcome as usize] += 1;
        let attempts = e.attempts.load(Ordering::SeqCst);
        let retries = kind == Kind::Flaky;
        let bad = |why: &str| {
            ledger.anomaly(format!(
                "task {id} ({kind:?}, {attempts} attempts): {outcome:?} after {runs} runs: {why}"
            ))
        };
        if runs > attempts {
            bad("ran more often than allowed");
        }
        if e.cancel_won.load(Ordering::SeqCst) {
            if outcome != Outcome::Cancelled {
                bad("cancel() returned true");
            }
            if runs != e.runs_at_cancel.load(Ordering::SeqCst) {
                bad("ran again after cancel() returned true");
            }
        }
        match outcome {
            Outcome::Ok => {
                if runs == 0 {
                    bad("succeeded without running");
                }
                if kind == Kind::Panics {
                    bad("a panicking body succeeded");
                }
                if kind == Kind::Guarded && !e.guard_allows.load(Ordering::SeqCst) {
                    bad("ran although its guard said no");
                }
            }
            Outcome::Panicked => {
                if runs == 0 || !matches!(kind, Kind::Panics | Kind::Flaky) {
                    bad("panicked unexpectedly");
                }
            }
            Outcome::Failed => {
                let ran_out = retries && runs == attempts;
                // A run that ends while cancel was requested keeps its own
                // outcome, and no retry follows.
                let cut_short =
                    retries && runs >= 1 && (stopped_now || e.cancel_tried.load(Ordering::SeqCst));
                let single_panic = kind == Kind::Panics && runs == 1;
                if !ran_out && !cut_short && !single_panic {
                    bad("failed before its attempts ran out");
                }
            }
            Outcome::Cancelled | Outcome::ShutDown => {
                if runs != 0 && !retries {
                    bad("ran, then resolved as not run");
                }
                if retries && runs == attempts {
                    bad("ran every attempt, then resolved as not run");
                }
            }
            Outcome::Expired => {
                if runs != 0 {
                    bad("expired after running");
                }
            }
            Outcome::Other => bad("unknown task error"),
        }
    }
    counts
}

#[test]
#[ignore = "soak: run with --ignored; sized by ROUNDS and SEED"]
fn soak_every_accepted_task_ends_once_and_nothing_leaks() {
    let rounds = env_u64("ROUNDS").unwrap_or(20);
    let seed = env_u64("SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    println!("soak: ROUNDS={rounds} SEED={seed}");
    quiet_planned_panics();
    let baseline_threads = thread_count();

    for round in 0..rounds {
        let mut rng = Rng::new(seed ^ round.wrapping_mul(0xA076_1D64_78BD_642F));
        let workers = 1 + rng.below(4) as usize;
        let submitters = 2 + rng.below(3) as usize;
        let per_submitter = 100 + rng.below(300) as usize;
        let ending = match rng.below(10) {
            0 | 1 => Ending::Drop,
            2..=5 => Ending::ShutdownNow,
            _ => Ending::Shutdown,
        };
        let shutdown_after = Duration::from_micros(rng.below(60_000));
        let drain_first = rng.percent(25);
        let prefix = format!("sk{round}");
        let mut builder = Pool::builder()
            .workers(workers)
            .pin_workers(rng.percent(50))
            .thread_name(prefix.clone());
        let ceiling = if rng.percent(50) {
            workers + 1 + rng.below(4) as usize
        } else {
            workers
        };
        let keep_alive = [0, 200, 2_000, 10_000][rng.below(4) as usize];
        builder = builder
            .max_workers(ceiling)
            .keep_alive(Duration::from_micros(keep_alive));
        let policy = match rng.below(6) {
            0 => Some(WhenFull::Block),
            1 => Some(WhenFull::Reject),
            2 => Some(WhenFull::RunInCaller),
            _ => None,
        };
        if let Some(p) = policy {
            builder = builder.capacity(8 + rng.below(64) as usize).when_full(p);
        }
        let pool = builder.build().expect("build pool");
        let ledger = Arc::new(Ledger::new());
        let ctx = Ctx {
            pool: pool.clone(),
            ledger: ledger.clone(),
        };
        let cancels: CancelList = Arc::default();
        let submitting = Arc::new(AtomicUsize::new(submitters));

        let threads: Vec<_> = (0..submitters)
            .map(|_| {
                let ctx = ctx.clone();
                let cancels = cancels.clone();
                let submitting = submitting.clone();
                let s = rng.next();
                std::thread::spawn(move || {
                    let kept = submitter(ctx, s, per_submitter, cancels);
                    submitting.fetch_sub(1, Ordering::SeqCst);
                    kept
                })
            })
            .collect();
        let canceller = {
            let ledger = ledger.clone();
            let cancels = cancels.clone();
            let submitting = submitting.clone();
            let mut rng = Rng::new(rng.next());
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                loop {
                    let picked = {
                        let mut list = cancels.lock().unwrap();
                        if list.is_empty() {
                            None
                        } else {
                            let i = rng.below(list.len() as u64) as usize;
                            Some(list.swap_remove(i))
                        }
                    };
                    match picked {
                        Some((id, h)) => {
                            ledger.record_cancel(id, &h);
                            kept.push((id, h));
                        }
                        None if submitting.load(Ordering::SeqCst) == 0 => return kept,
                        None => {}
                    }
                    std::thread::sleep(Duration::from_micros(rng.below(300)));
                }
            })
        };

        if drain_first {
            // Let every submitter finish before shutting down.
            assert!(
                eventually(LIMIT, || submitting.load(Ordering::SeqCst) == 0),
                "submitters hung before shutdown"
            );
        }
        std::thread::sleep(shutdown_after);
        // Sometimes a second shutdown races the first from another thread.
        let racer_now = rng.percent(50);
        let racer = (ending != Ending::Drop && rng.percent(25)).then(|| {
            let p = pool.clone();
            std::thread::spawn(move || {
                if racer_now {
                    p.shutdown_now()
                } else {
                    p.shutdown()
                }
            })
        });
        let (pool, report) = match ending {
            Ending::Shutdown => {
                let report = pool.shutdown();
                (Some(pool), Some(report))
            }
            Ending::ShutdownNow => {
                let report = pool.shutdown_now();
                (Some(pool), Some(report))
            }
            Ending::Drop => {
                // The pool ends when its last clone goes: a submitter's, or
                // one held by a task on a worker.
                drop(pool);
                (None, None)
            }
        };
        let stopped_now = ending == Ending::ShutdownNow || (racer.is_some() && racer_now);
        if let Some(r) = racer {
            join_bounded(r, "racing shutdown");
        }
        let mut handles = Vec::new();
        for (t, th) in threads.into_iter().enumerate() {
            handles.extend(join_bounded(th, &format!("submitter {t}")));
        }
        handles.extend(join_bounded(canceller, "canceller"));
        drop(ctx);

        // After shutdown nothing is accepted.
        if let Some((pool, id)) = pool.as_ref().and_then(|p| Some((p, ledger.alloc()?))) {
            let task = build_task(
                &Ctx {
                    pool: pool.clone(),
                    ledger: ledger.clone(),
                },
                &mut rng,
                id,
                0,
            );
            match pool.submit_task(task) {
                Err(SubmitError::ShutDown) => ledger.admit(id, false),
                Ok(h) => {
                    ledger.admit(id, true);
                    ledger.anomaly(format!("task {id}: accepted after shutdown returned"));
                    handles.push((id, h));
                }
                Err(e) => {
                    ledger.admit(id, false);
                    ledger.anomaly(format!("after shutdown: {e} instead of ShutDown"));
                }
            }
        }

        for (id, h) in handles {
            match h.wait_timeout(LIMIT) {
                Ok(res) => ledger.check_waited(id, &res),
                Err(h) => ledger.anomaly(format!(
                    "task {id}: unresolved after shutdown, {:?}",
                    h.status()
                )),
            }
        }
        if pool.is_none() {
            // A pool whose last clone went on a worker drains in the
            // background (a worker cannot wait for itself): its threads leave
            // once every task has resolved, so wait for that before the audit.
            let prefix = format!("{prefix}-");
            if !eventually(LIMIT, || threads_named(&prefix) == 0) {
                ledger.anomaly(format!(
                    "{} pool threads still running {LIMIT:?} after the last clone went",
                    threads_named(&prefix)
                ));
            }
        }
        let counts = audit(&ledger, stopped_now);

        let accepted = (0..ledger.used())
            .filter(|&id| ledger.entries[id].admission.load(Ordering::SeqCst) == ACCEPTED)
            .count() as u64;
        let refused = ledger.used() as u64 - accepted;
        let m = pool.as_ref().map(Pool::metrics).unwrap_or_default();
        if pool.is_some() {
            if m.submitted != m.completed + m.failed + m.cancelled + m.expired {
                ledger.anomaly(format!("metrics do not balance: {m:?}"));
            }
            if m.peak_workers > ceiling as u64 || m.workers_retired > m.workers_started {
                ledger.anomaly(format!("worker counts out of bounds: {m:?}"));
            }
            if m.submitted != accepted {
                ledger.anomaly(format!(
                    "metrics count {} submitted, the ledger {accepted}",
                    m.submitted
                ));
            }
        }
        if let Some(report) = report {
            if policy != Some(WhenFull::RunInCaller)
                && report.submitted
                    != report.completed + report.failed + report.cancelled + report.expired
            {
                ledger.anomaly(format!("shutdown report does not balance: {report:?}"));
            }
        }
        drop(pool);
        if !eventually(Duration::from_secs(5), || {
            threads_named(&format!("{prefix}-")) == 0
        }) {
            ledger.anomaly(format!(
                "{} pool threads outlived the pool",
                threads_named(&format!("{prefix}-"))
            ));
        }
        if !eventually(Duration::from_secs(5), || {
            thread_count() <= baseline_threads
        }) {
            ledger.anomaly(format!(
                "{} threads alive, {baseline_threads} before the round",
                thread_count()
            ));
        }

        println!(
            "round {round}: workers={workers}..{ceiling} (started {}, retired {}) submitters={submitters} policy={policy:?} {}{ending:?} after {shutdown_after:?}: \
             accepted={accepted} refused={refused} ok={} panicked={} failed={} cancelled={} expired={} shutdown={} retried={}",
            m.workers_started,
            m.workers_retired,
            if drain_first { "drain, " } else { "" },
            counts[Outcome::Ok as usize],
            counts[Outcome::Panicked as usize],
            counts[Outcome::Failed as usize],
            counts[Outcome::Cancelled as usize],
            counts[Outcome::Expired as usize],
            counts[Outcome::ShutDown as usize],
            m.retried,
        );
        let anomalies = ledger.anomalies.lock().unwrap();
        assert!(
            anomalies.is_empty(),
            "SEED={seed} round {round}: {} anomalies, first ones:\n{}",
            anomalies.len(),
            anomalies
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
