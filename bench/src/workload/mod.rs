//! The workloads: what each one does, at which size, and what counts as
//! done.
//!
//! Every run returns an [`Outcome`]: the measured value (lower is better
//! for every metric) and two counts, what the workload expected to happen
//! and what the tasks report happened. A run whose counts differ is a
//! broken adapter, never a number.

mod blocking;
mod cost;
mod fork;
mod latency;
mod spawn;

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::engine::{Engine, EngineKind};

pub use fork::{fib, nqueens_serial, uts, uts_serial, Fork, RayonFork, RunqFork, Serial, UtsNode};

/// How big each workload is.
#[derive(Debug, Clone)]
pub struct Size {
    /// Empty tasks in spawn_many_local and spawn_many_remote_idle.
    pub tasks: u64,
    /// Empty tasks in spawn_many_remote_busy.
    pub busy_tasks: u64,
    /// Links in chained_spawn.
    pub chain: u64,
    /// Concurrent pings per round, and rounds, in ping_pong.
    pub pings: u64,
    /// Rounds of ping_pong.
    pub ping_rounds: u64,
    /// Tasks in yield_many, and how often each resubmits itself.
    pub yielders: u64,
    /// Resubmissions per yield_many task.
    pub yields: u64,
    /// Tasks in remote_spawn, split across the submitters.
    pub remote_total: u64,
    /// fib(n).
    pub fib: u64,
    /// n of n-queens.
    pub queens: u32,
    /// Depth limit of the unbalanced tree.
    pub uts_depth: u32,
    /// Wake-latency probes, and the idle gap before each.
    pub probes: u64,
    /// Idle gap before each wake probe.
    pub probe_gap: Duration,
    /// How long latency_under_load runs, one probe per `load_probe_gap`.
    pub load: Duration,
    /// Gap between probes under load.
    pub load_probe_gap: Duration,
    /// Normal tasks kept queued per worker under load.
    pub backlog_per_worker: u64,
    /// Length of one task of load.
    pub work: Duration,
    /// idle_cost: one task per `idle_tick` for this long.
    pub idle_window: Duration,
    /// Gap between tasks in idle_cost.
    pub idle_tick: Duration,
    /// Tasks counted in alloc_per_task.
    pub alloc_tasks: u64,
    /// How long spawn_many_remote_busy waits before it calls the remote
    /// tasks starved and stops the busy ones.
    pub stall_limit: Duration,
    /// Tasks in blocking_mix.
    pub mix_tasks: u64,
    /// Every this many tasks of blocking_mix and bursty, one blocks (sleeps
    /// 1 ms); the others spin for `work`.
    pub block_every: u64,
    /// Bursts in bursty.
    pub bursts: u64,
    /// Tasks per burst.
    pub burst_tasks: u64,
    /// Idle time after each burst.
    pub burst_gap: Duration,
}

impl Size {
    /// The default suite: about a minute on a 2-core machine.
    pub fn default_suite() -> Size {
        Size {
            tasks: 50_000,
            busy_tasks: 10_000,
            chain: 10_000,
            pings: 1_000,
            ping_rounds: 20,
            yielders: 200,
            yields: 200,
            remote_total: 12_800,
            fib: 30,
            queens: 12,
            uts_depth: 13,
            probes: 200,
            probe_gap: Duration::from_millis(1),
            load: Duration::from_millis(300),
            load_probe_gap: Duration::from_millis(2),
            backlog_per_worker: 100,
            work: Duration::from_micros(20),
            idle_window: Duration::from_millis(500),
            idle_tick: Duration::from_millis(1),
            alloc_tasks: 10_000,
            stall_limit: Duration::from_secs(1),
            mix_tasks: 2_000,
            block_every: 5,
            bursts: 3,
            burst_tasks: 300,
            burst_gap: Duration::from_millis(200),
        }
    }

    /// `--full`: larger and longer, several minutes.
    pub fn full() -> Size {
        Size {
            tasks: 500_000,
            busy_tasks: 100_000,
            chain: 100_000,
            pings: 1_000,
            ping_rounds: 50,
            yielders: 200,
            yields: 1_000,
            remote_total: 128_000,
            fib: 35,
            queens: 13,
            uts_depth: 15,
            probes: 1_000,
            probe_gap: Duration::from_millis(2),
            load: Duration::from_secs(2),
            load_probe_gap: Duration::from_millis(2),
            backlog_per_worker: 100,
            work: Duration::from_micros(20),
            idle_window: Duration::from_secs(3),
            idle_tick: Duration::from_millis(1),
            alloc_tasks: 100_000,
            stall_limit: Duration::from_secs(5),
            mix_tasks: 20_000,
            block_every: 5,
            bursts: 10,
            burst_tasks: 2_000,
            burst_gap: Duration::from_millis(500),
        }
    }

    /// A few milliseconds per workload: for tests of the adapters.
    pub fn tiny() -> Size {
        Size {
            tasks: 200,
            busy_tasks: 100,
            chain: 50,
            pings: 10,
            ping_rounds: 2,
            yielders: 4,
            yields: 5,
            remote_total: 64,
            fib: 12,
            queens: 6,
            uts_depth: 3,
            probes: 5,
            probe_gap: Duration::from_micros(200),
            load: Duration::from_millis(20),
            load_probe_gap: Duration::from_millis(2),
            backlog_per_worker: 4,
            work: Duration::from_micros(20),
            idle_window: Duration::from_millis(20),
            idle_tick: Duration::from_millis(1),
            alloc_tasks: 100,
            stall_limit: Duration::from_millis(300),
            mix_tasks: 20,
            block_every: 5,
            bursts: 2,
            burst_tasks: 10,
            burst_gap: Duration::from_millis(5),
        }
    }
}

/// What a workload measures. Lower is better for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Wall time until all tasks ran (seconds).
    Time,
    /// Submit-to-start latency; the value is the p50 (seconds).
    Latency,
    /// CPU seconds of the engine's threads per wall second.
    CpuShare,
    /// Heap allocations per task.
    Allocations,
    /// Threads alive integrated over the run (thread-seconds).
    ThreadSeconds,
}

impl Metric {
    /// Unit of the JSON value.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Time | Metric::Latency => "s",
            Metric::CpuShare => "cpu-s/s",
            Metric::Allocations => "allocs/task",
            Metric::ThreadSeconds => "thread-s",
        }
    }
}

/// One workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// One task inside the pool spawns `tasks` empty tasks.
    SpawnManyLocal,
    /// `tasks` empty tasks from one outside thread into an idle pool.
    SpawnManyRemoteIdle,
    /// The same while every worker runs a task that keeps resubmitting itself.
    SpawnManyRemoteBusy,
    /// Rounds of concurrent pings, each a ping, a pong and a reply task.
    PingPong,
    /// One chain of tasks, each spawning the next.
    ChainedSpawn,
    /// Tasks that resubmit themselves, a closure's way to yield.
    YieldMany,
    /// `remote_total` tasks split across this many submitter threads.
    RemoteSpawn(usize),
    /// fib(n), no cutoff.
    Fib,
    /// n-queens through scoped spawns.
    NQueens,
    /// Unbalanced tree search.
    Uts,
    /// Submit-to-start into an idle pool.
    WakeLatency,
    /// Submit-to-start of High probes into a saturated pool.
    LatencyUnderLoad,
    /// CPU used while one task arrives every millisecond.
    IdleCost,
    /// Heap allocations per task.
    AllocPerTask,
    /// CPU tasks with a share of blocking ones.
    BlockingMix,
    /// Bursts of the blocking mix with idle gaps: completion time.
    Bursty,
    /// The same: thread-seconds over the run, gaps included.
    BurstyThreads,
}

impl Workload {
    /// The suite, in the order it runs; remote_spawn once per submitter count.
    pub fn suite(submitters: &[usize]) -> Vec<Workload> {
        let mut all = vec![
            Workload::SpawnManyLocal,
            Workload::SpawnManyRemoteIdle,
            Workload::SpawnManyRemoteBusy,
            Workload::PingPong,
            Workload::ChainedSpawn,
            Workload::YieldMany,
        ];
        all.extend(submitters.iter().map(|&k| Workload::RemoteSpawn(k)));
        all.extend([
            Workload::Fib,
            Workload::NQueens,
            Workload::Uts,
            Workload::WakeLatency,
            Workload::LatencyUnderLoad,
            Workload::IdleCost,
            Workload::AllocPerTask,
            Workload::BlockingMix,
            Workload::Bursty,
            Workload::BurstyThreads,
        ]);
        all
    }

    /// The name `--only` matches (remote_spawn also matches all its rows).
    pub fn name(self) -> String {
        match self {
            Workload::RemoteSpawn(k) => format!("remote_spawn/{k}"),
            other => other.group().to_string(),
        }
    }

    /// The name without the submitter count.
    pub fn group(self) -> &'static str {
        match self {
            Workload::SpawnManyLocal => "spawn_many_local",
            Workload::SpawnManyRemoteIdle => "spawn_many_remote_idle",
            Workload::SpawnManyRemoteBusy => "spawn_many_remote_busy",
            Workload::PingPong => "ping_pong",
            Workload::ChainedSpawn => "chained_spawn",
            Workload::YieldMany => "yield_many",
            Workload::RemoteSpawn(_) => "remote_spawn",
            Workload::Fib => "fib",
            Workload::NQueens => "nqueens",
            Workload::Uts => "uts",
            Workload::WakeLatency => "wake_latency",
            Workload::LatencyUnderLoad => "latency_under_load",
            Workload::IdleCost => "idle_cost",
            Workload::AllocPerTask => "alloc_per_task",
            Workload::BlockingMix => "blocking_mix",
            Workload::Bursty => "bursty",
            Workload::BurstyThreads => "bursty_threads",
        }
    }

    /// One line: what the workload does at `size`.
    pub fn about(self, size: &Size) -> String {
        let n = thousands;
        match self {
            Workload::SpawnManyLocal => format!(
                "one task inside the pool spawns {} empty tasks; time until all ran",
                n(size.tasks)
            ),
            Workload::SpawnManyRemoteIdle => format!(
                "{} empty tasks submitted from one outside thread into an idle pool",
                n(size.tasks)
            ),
            Workload::SpawnManyRemoteBusy => format!(
                "{} empty tasks from outside while every worker runs a task that keeps \
                 resubmitting itself (stalled: not done in {:?})",
                n(size.busy_tasks),
                size.stall_limit
            ),
            Workload::PingPong => format!(
                "{} rounds of {} concurrent pings; a ping spawns a pong, the pong spawns the reply",
                n(size.ping_rounds),
                n(size.pings)
            ),
            Workload::ChainedSpawn => {
                format!("a chain of {} tasks, each spawning the next", n(size.chain))
            }
            Workload::YieldMany => format!(
                "{} tasks, each resubmitting itself {} times (a closure's yield)",
                n(size.yielders),
                n(size.yields)
            ),
            Workload::RemoteSpawn(k) => format!(
                "{} empty tasks split across {k} submitter thread(s) released together",
                n(size.remote_total)
            ),
            Workload::Fib => format!("fib({}) with no cutoff, through runq::join / rayon::join", size.fib),
            Workload::NQueens => format!(
                "count the {}-queens solutions, one scoped spawn per legal square in the top rows",
                size.queens
            ),
            Workload::Uts => format!(
                "unbalanced tree search: geometric fan-out (mean 4), depth {}, join over children",
                size.uts_depth
            ),
            Workload::WakeLatency => format!(
                "submit-to-start of one task into an idle pool ({:?} gaps), {} probes: p50/p99/p99.9/max",
                size.probe_gap,
                n(size.probes)
            ),
            Workload::LatencyUnderLoad => format!(
                "submit-to-start of a High probe every {:?} while {} Normal tasks of {:?} stay queued \
                 per worker (peers: their only lane)",
                size.load_probe_gap,
                n(size.backlog_per_worker),
                size.work
            ),
            Workload::IdleCost => format!(
                "CPU seconds of the engine's threads per wall second, one task every {:?} for {:?}",
                size.idle_tick,
                size.idle_window
            ),
            Workload::AllocPerTask => format!(
                "heap allocations per task over {} empty tasks (counting global allocator)",
                n(size.alloc_tasks)
            ),
            Workload::BlockingMix => format!(
                "{} tasks from outside, one in {} sleeps 1 ms (block_in_place / spawn_blocking), \
                 the rest spin {:?}; time until all ran",
                n(size.mix_tasks),
                size.block_every,
                size.work
            ),
            Workload::Bursty => format!(
                "{} bursts of {} tasks (the blocking_mix share), {:?} idle after each; \
                 the bursts' completion times summed",
                n(size.bursts),
                n(size.burst_tasks),
                size.burst_gap
            ),
            Workload::BurstyThreads => "the bursty run's footprint: engine threads alive \
                                         integrated over the run, gaps included \
                                         (thread-seconds, sampled every 1 ms)"
                .to_owned(),
        }
    }

    /// What the value measures.
    pub fn metric(self) -> Metric {
        match self {
            Workload::WakeLatency | Workload::LatencyUnderLoad => Metric::Latency,
            Workload::IdleCost => Metric::CpuShare,
            Workload::AllocPerTask => Metric::Allocations,
            Workload::BurstyThreads => Metric::ThreadSeconds,
            _ => Metric::Time,
        }
    }

    /// The engines this workload compares.
    pub fn engines(self) -> &'static [EngineKind] {
        match self {
            Workload::Fib | Workload::NQueens | Workload::Uts => &EngineKind::FORK_JOIN,
            Workload::BlockingMix | Workload::Bursty | Workload::BurstyThreads => {
                &EngineKind::BLOCKING
            }
            _ => &EngineKind::SPAWNING,
        }
    }

    /// True when every repeat gives the same value (no need to repeat).
    pub fn deterministic(self) -> bool {
        self == Workload::AllocPerTask
    }

    /// Runs the workload once on `engine` (after a short warm-up).
    pub fn run(self, engine: &Engine, size: &Size) -> Outcome {
        assert!(
            self.engines().contains(&engine.kind()),
            "{} does not run on {}",
            self.name(),
            engine.kind()
        );
        match self {
            Workload::SpawnManyLocal => spawn::many_local(engine, size.tasks),
            Workload::SpawnManyRemoteIdle => spawn::many_remote_idle(engine, size.tasks),
            Workload::SpawnManyRemoteBusy => {
                spawn::many_remote_busy(engine, size.busy_tasks, size.stall_limit)
            }
            Workload::PingPong => spawn::ping_pong(engine, size.pings, size.ping_rounds),
            Workload::ChainedSpawn => spawn::chained(engine, size.chain),
            Workload::YieldMany => spawn::yield_many(engine, size.yielders, size.yields),
            Workload::RemoteSpawn(k) => spawn::remote_contended(engine, size.remote_total, k),
            Workload::Fib => fork::fib_run(engine, size.fib),
            Workload::NQueens => fork::nqueens_run(engine, size.queens),
            Workload::Uts => fork::uts_run(engine, size.uts_depth),
            Workload::WakeLatency => latency::wake(engine, size.probes, size.probe_gap),
            Workload::LatencyUnderLoad => latency::under_load(engine, size),
            Workload::IdleCost => cost::idle(engine, size.idle_window, size.idle_tick),
            Workload::AllocPerTask => cost::allocations(engine, size.alloc_tasks),
            Workload::BlockingMix => blocking::blocking_mix(engine, size),
            Workload::Bursty => blocking::bursty(engine, size, blocking::Bursty::Time),
            Workload::BurstyThreads => blocking::bursty(engine, size, blocking::Bursty::Footprint),
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.name())
    }
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The measured value in the workload's [`Metric`]; lower is better.
    /// `NaN` where the engine could not be measured (see `note`).
    pub value: f64,
    /// Set when the run hit its time limit (remote work starved): the
    /// share of the work done by then, 0.0 to 1.0.
    pub stalled: Option<f64>,
    /// Latency workloads: every probe's submit-to-start, in nanoseconds.
    pub latency: Option<Histogram<u64>>,
    /// What the workload expected to happen (tasks run, or the answer).
    pub expected: u64,
    /// What the tasks report happened.
    pub done: u64,
    /// Why there is no value, when there is none.
    pub note: Option<&'static str>,
    /// runq only: the pool's own queue-wait histogram (all lanes) at the
    /// end of the run, from `Pool::metrics`.
    pub pool_wait: Option<runq::Histogram>,
}

impl Outcome {
    fn new(value: f64, expected: u64, done: u64) -> Outcome {
        Outcome {
            value,
            stalled: None,
            latency: None,
            expected,
            done,
            note: None,
            pool_wait: None,
        }
    }

    fn time(elapsed: Duration, expected: u64, done: u64) -> Outcome {
        Outcome::new(elapsed.as_secs_f64(), expected, done)
    }

    /// True when the tasks did exactly the expected work.
    pub fn verified(&self) -> bool {
        self.expected == self.done
    }

    /// True when the value can be ranked.
    pub fn measured(&self) -> bool {
        self.stalled.is_none() && self.value.is_finite()
    }
}

/// runq's queue-wait histogram (all lanes) as the last warm-up left it,
/// so that the report shows the measured part of the run only. Engines run
/// one at a time: `main` takes it after each run.
pub static WARM_UP_WAIT: std::sync::Mutex<Option<runq::Histogram>> = std::sync::Mutex::new(None);

/// A runq pool's queue-wait histogram over every lane.
pub fn pool_wait(pool: &runq::Pool) -> runq::Histogram {
    let m = pool.metrics();
    let mut wait = m.queue_wait_high;
    wait.merge(&m.queue_wait_normal);
    wait.merge(&m.queue_wait_low);
    wait
}

/// 12800 -> "12,800".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|g| std::str::from_utf8(g).expect("ASCII digits"))
        .collect();
    groups.join(",")
}
