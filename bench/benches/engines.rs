//! runq side by side with its peers, two workers each: rayon's
//! `ThreadPool::spawn`, tokio's multi-thread `Runtime::spawn`, and a pool of
//! two threads reading boxed closures from a crossbeam channel. runq runs
//! twice: `runq` in its default configuration (workers pinned to cores on
//! Linux) and `runq-unpinned` with `pin_workers(false)`, placed by the OS
//! like every peer's threads. Where the submitting thread shares the cores
//! with the workers, a woken pinned worker waits for its own core, so the
//! two differ most in the latency lines.
//!
//! ```text
//! cargo bench -p runq-bench --bench engines            # everything, a few minutes on 2 cores
//! cargo bench -p runq-bench --bench engines -- chain   # one group
//! ```
//!
//! spawn_remote, spawn_local, chain and fib go through criterion's
//! time-per-iteration model. Wake latency, the priority probe and idle cost
//! do not fit it (each probe waits for an idle or saturated pool, so the
//! time measured is a small part of the wall time spent), so they print
//! their own lines: percentiles of submit-to-start, and CPU time per wall
//! second. Every run checks that all of its tasks ran.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode};
use runq::{Priority, Task};

/// Workers per engine, as the issue's Speed section fixes it.
const WORKERS: usize = 2;
/// Empty tasks in spawn_remote and spawn_local.
const SPAWN_TASKS: usize = 100_000;
/// Links in the chain workload.
const CHAIN_LEN: usize = 10_000;
/// fib(30): about 1.6 million joins, tens of milliseconds on 2 cores.
const FIB_N: u64 = 30;
/// Backlog in front of the priority probe: 2,000 tasks of 20 µs each.
const BACKLOG: usize = 2_000;
const BACKLOG_TASK: Duration = Duration::from_micros(20);
/// Probe counts: enough for a stable p99 of wake latency, a few seconds in all.
const WAKE_PROBES: usize = 400;
const PRIORITY_ROUNDS: usize = 40;
/// Gap before each wake probe; far longer than any engine's spin window,
/// so every probe lands in a parked pool.
const WAKE_GAP: Duration = Duration::from_millis(2);
/// Idle cost: one task every millisecond for this long.
const IDLE_WINDOW: Duration = Duration::from_secs(2);
const IDLE_TICK: Duration = Duration::from_millis(1);

type Job = Box<dyn FnOnce() + Send>;

/// How a task reaches an engine; cheap to clone into tasks.
#[derive(Clone)]
enum Spawner {
    Runq(runq::Pool),
    Rayon(Arc<rayon::ThreadPool>),
    Tokio(tokio::runtime::Handle),
    Channel(crossbeam_channel::Sender<Job>),
}

impl Spawner {
    fn spawn<F: FnOnce() + Send + 'static>(&self, f: F) {
        match self {
            Spawner::Runq(pool) => pool.spawn(f).expect("runq pool accepts work"),
            Spawner::Rayon(pool) => pool.spawn(f),
            Spawner::Tokio(handle) => drop(handle.spawn(async move { f() })),
            Spawner::Channel(tx) => tx.send(Box::new(f)).expect("channel pool is running"),
        }
    }

    /// A High-priority submission where the engine has such a lane.
    fn spawn_high<F: FnOnce() + Send + 'static>(&self, f: F) {
        match self {
            Spawner::Runq(pool) => drop(
                pool.submit_task(Task::new(f).priority(Priority::High))
                    .expect("runq pool accepts work"),
            ),
            other => other.spawn(f),
        }
    }
}

/// What keeps an engine alive. Field order in [`Engine`] matters: the
/// spawner (the channel's last sender) goes first, then the threads join.
enum Keep {
    Nothing,
    Runtime(#[allow(dead_code)] tokio::runtime::Runtime),
    Threads(Vec<JoinHandle<()>>),
}

impl Drop for Keep {
    fn drop(&mut self) {
        if let Keep::Threads(threads) = self {
            for t in threads.drain(..) {
                t.join().expect("channel worker exits cleanly");
            }
        }
    }
}

struct Engine {
    spawner: Spawner,
    _keep: Keep,
}

const ENGINES: [&str; 5] = ["runq", "runq-unpinned", "rayon", "tokio", "channel"];

impl Engine {
    fn new(name: &str) -> Engine {
        let (spawner, keep) = match name {
            "runq" | "runq-unpinned" => (Spawner::Runq(runq_pool(name)), Keep::Nothing),
            "rayon" => {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(WORKERS)
                    .build()
                    .expect("rayon pool");
                (Spawner::Rayon(Arc::new(pool)), Keep::Nothing)
            }
            "tokio" => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(WORKERS)
                    .build()
                    .expect("tokio runtime");
                (Spawner::Tokio(rt.handle().clone()), Keep::Runtime(rt))
            }
            "channel" => {
                let (tx, rx) = crossbeam_channel::unbounded::<Job>();
                let threads = (0..WORKERS)
                    .map(|_| {
                        let rx = rx.clone();
                        thread::spawn(move || rx.iter().for_each(|job| job()))
                    })
                    .collect();
                (Spawner::Channel(tx), Keep::Threads(threads))
            }
            other => unreachable!("unknown engine {other}"),
        };
        Engine {
            spawner,
            _keep: keep,
        }
    }
}

/// A runq pool of [`WORKERS`]: pinned (the default) for `runq`, unpinned
/// for `runq-unpinned`.
fn runq_pool(name: &str) -> runq::Pool {
    runq::Pool::builder()
        .workers(WORKERS)
        .pin_workers(name == "runq")
        .build()
        .expect("runq pool")
}

/// Counts tasks down to zero; the waiter sleeps on a condvar.
struct Countdown {
    left: AtomicUsize,
    done: Mutex<bool>,
    cv: Condvar,
}

impl Countdown {
    fn new(n: usize) -> Arc<Countdown> {
        Arc::new(Countdown {
            left: AtomicUsize::new(n),
            done: Mutex::new(n == 0),
            cv: Condvar::new(),
        })
    }

    fn hit(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.done.lock().unwrap() = true;
            self.cv.notify_all();
        }
    }

    fn wait(&self) {
        let mut done = self.done.lock().unwrap();
        while !*done {
            done = self.cv.wait(done).unwrap();
        }
        assert_eq!(
            self.left.load(Ordering::Acquire),
            0,
            "every task ran exactly once"
        );
    }
}

fn spawn_remote(spawner: &Spawner, n: usize) {
    let cd = Countdown::new(n);
    for _ in 0..n {
        let cd = cd.clone();
        spawner.spawn(move || cd.hit());
    }
    cd.wait();
}

fn spawn_local(spawner: &Spawner, n: usize) {
    let cd = Countdown::new(n);
    let (inner, root_cd) = (spawner.clone(), cd.clone());
    spawner.spawn(move || {
        for _ in 0..n {
            let cd = root_cd.clone();
            inner.spawn(move || cd.hit());
        }
    });
    cd.wait();
}

fn link(spawner: Spawner, left: usize, cd: Arc<Countdown>) {
    cd.hit();
    if left > 1 {
        let next = spawner.clone();
        spawner.spawn(move || link(next, left - 1, cd));
    }
}

fn chain(spawner: &Spawner, n: usize) {
    let cd = Countdown::new(n);
    let (next, theirs) = (spawner.clone(), cd.clone());
    spawner.spawn(move || link(next, n, theirs));
    cd.wait();
}

fn fib_runq(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = runq::join(|| fib_runq(n - 1), || fib_runq(n - 2));
    a + b
}

fn fib_rayon(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = rayon::join(|| fib_rayon(n - 1), || fib_rayon(n - 2));
    a + b
}

/// Criterion's `--test` mode (cargo test --benches) runs everything once at
/// a tiny size.
fn test_mode() -> bool {
    std::env::args().any(|a| a == "--test")
}

fn sized(full: usize, tiny: usize) -> usize {
    if test_mode() {
        tiny
    } else {
        full
    }
}

fn throughput(c: &mut Criterion) {
    let spawn_n = sized(SPAWN_TASKS, 100);
    let chain_n = sized(CHAIN_LEN, 10);
    type Workload = fn(&Spawner, usize);
    let workloads: [(&str, Workload, usize); 3] = [
        ("spawn_remote", spawn_remote, spawn_n),
        ("spawn_local", spawn_local, spawn_n),
        ("chain", chain, chain_n),
    ];
    for (name, run, n) in workloads {
        let mut group = c.benchmark_group(name);
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .sampling_mode(SamplingMode::Flat);
        for engine_name in ENGINES {
            let engine = Engine::new(engine_name);
            group.bench_with_input(BenchmarkId::new(engine_name, n), &n, |b, &n| {
                b.iter(|| run(&engine.spawner, n))
            });
        }
        group.finish();
    }

    let fib_n = if test_mode() { 10 } else { FIB_N };
    let mut group = c.benchmark_group("fib");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sampling_mode(SamplingMode::Flat);
    for name in ["runq", "runq-unpinned"] {
        let pool = runq_pool(name);
        group.bench_with_input(BenchmarkId::new(name, fib_n), &fib_n, |b, &n| {
            b.iter(|| {
                pool.submit(move || fib_runq(black_box(n)))
                    .unwrap()
                    .wait()
                    .unwrap()
            })
        });
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(WORKERS)
        .build()
        .unwrap();
    group.bench_with_input(BenchmarkId::new("rayon", fib_n), &fib_n, |b, &n| {
        b.iter(|| pool.install(|| fib_rayon(black_box(n))))
    });
    group.finish();
}

/// p-th percentile (0..=100) of sorted samples.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let i = (sorted.len() * p / 100).min(sorted.len() - 1);
    sorted[i]
}

fn print_latency(name: &str, engine: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<16} {engine:<13} p50 {:>10.1?}   p99 {:>10.1?}   max {:>10.1?}   ({} probes)",
        percentile(&samples, 50),
        percentile(&samples, 99),
        samples[samples.len() - 1],
        samples.len()
    );
}

/// Submit-to-start of one task into a parked pool.
fn wake_latency() {
    let probes = sized(WAKE_PROBES, 5);
    for name in ENGINES {
        let engine = Engine::new(name);
        spawn_remote(&engine.spawner, 1_000);
        let (tx, rx) = crossbeam_channel::bounded::<Duration>(1);
        let samples = (0..probes)
            .map(|_| {
                thread::sleep(WAKE_GAP);
                let tx = tx.clone();
                let submitted = Instant::now();
                engine
                    .spawner
                    .spawn(move || tx.send(submitted.elapsed()).unwrap());
                rx.recv().expect("probe ran")
            })
            .collect();
        print_latency("wake_latency", name, samples);
    }
}

fn spin_for(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// A backlog of 20 µs tasks, then one High task: its submit-to-start.
fn priority_probe() {
    let rounds = sized(PRIORITY_ROUNDS, 2);
    let backlog = sized(BACKLOG, 20);
    for name in ENGINES {
        let engine = Engine::new(name);
        let (tx, rx) = crossbeam_channel::bounded::<Duration>(1);
        let samples = (0..rounds)
            .map(|_| {
                let cd = Countdown::new(backlog);
                for _ in 0..backlog {
                    let cd = cd.clone();
                    engine.spawner.spawn(move || {
                        spin_for(BACKLOG_TASK);
                        cd.hit();
                    });
                }
                let tx = tx.clone();
                let submitted = Instant::now();
                engine
                    .spawner
                    .spawn_high(move || tx.send(submitted.elapsed()).unwrap());
                let latency = rx.recv().expect("probe ran");
                cd.wait();
                latency
            })
            .collect();
        print_latency("priority_probe", name, samples);
    }
}

/// CPU time of every thread of this process except the caller, in ns, from
/// `/proc/self/task/*/schedstat` (first field: time on a CPU).
fn others_cpu() -> Duration {
    let me = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|f| f.to_os_string()));
    let mut total = 0u64;
    for entry in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let entry = entry.expect("task entry");
        if Some(entry.file_name()) == me {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) {
            total += text
                .split_whitespace()
                .next()
                .and_then(|f| f.parse().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(total)
}

/// CPU used by the engine's threads while one task arrives every
/// millisecond; the submitting thread's own sleep loop is not counted.
fn idle_cost() {
    let window = if test_mode() {
        Duration::from_millis(20)
    } else {
        IDLE_WINDOW
    };
    for name in ENGINES {
        let engine = Engine::new(name);
        spawn_remote(&engine.spawner, 1_000);
        thread::sleep(Duration::from_millis(50));
        let ticks = (window.as_micros() / IDLE_TICK.as_micros()) as usize;
        let cd = Countdown::new(ticks);
        let cpu0 = others_cpu();
        let start = Instant::now();
        for i in 1..=ticks {
            let due = start + IDLE_TICK * i as u32;
            thread::sleep(due.saturating_duration_since(Instant::now()));
            let cd = cd.clone();
            engine.spawner.spawn(move || cd.hit());
        }
        cd.wait();
        let wall = start.elapsed();
        let cpu = others_cpu().saturating_sub(cpu0);
        println!(
            "{:<16} {name:<13} {:>8.2} ms CPU per wall second   ({:.1?} CPU over {:.2?}, {ticks} tasks)",
            "idle_cost",
            cpu.as_secs_f64() * 1e3 / wall.as_secs_f64(),
            cpu,
            wall
        );
    }
}

/// The first free argument, as criterion reads it: a substring filter.
fn filter() -> Option<String> {
    const WITH_VALUE: [&str; 14] = [
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--measurement-time",
        "--warm-up-time",
        "--sample-size",
        "--profile-time",
        "--output-format",
        "--color",
        "--plotting-backend",
        "--significance-level",
        "--noise-threshold",
        "--nresamples",
    ];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if WITH_VALUE.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            return Some(arg);
        }
    }
    None
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    throughput(&mut c);
    c.final_summary();

    let wanted = |name: &str| filter().is_none_or(|f| name.contains(&f));
    type Custom = fn();
    let custom: [(&str, Custom); 3] = [
        ("wake_latency", wake_latency),
        ("priority_probe", priority_probe),
        ("idle_cost", idle_cost),
    ];
    for (name, run) in custom {
        if wanted(name) {
            run();
        }
    }
}
