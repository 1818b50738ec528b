//! The engines, each behind one small adapter.
//!
//! An [`Engine`] owns a pool of `workers` threads; its [`Spawner`] is the
//! cheap handle that tasks clone to submit more work from inside the pool.
//! Every adapter is the plain, documented way to hand a closure to that
//! engine; none is tuned beyond the worker count.

use std::fmt;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};

use runq::{Priority, Task};

/// The elastic runq engine's keep-alive: shorter than the bursty
/// workload's idle gaps, so that its pool goes back to its floor between
/// bursts (the library's default, 10 s, would keep every thread through a
/// benchmark run).
pub const ELASTIC_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_millis(20);

/// A boxed closure, what the channel pools carry.
pub type Job = Box<dyn FnOnce() + Send>;

/// Which engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EngineKind {
    /// `runq::Pool::spawn` (High probes through `submit_task`), in its
    /// default configuration: workers pinned to cores on Linux.
    Runq,
    /// The same with `pin_workers(false)`: the OS places the workers, as it
    /// does every peer's threads.
    RunqUnpinned,
    /// An elastic runq pool: one worker always, up to twice `workers` (the
    /// thread ceiling of the tokio runtime below: `workers` plus as many
    /// blocking threads), a keep-alive of [`ELASTIC_KEEP_ALIVE`]; its
    /// blocking tasks call `runq::block_in_place`. Only in the blocking and
    /// bursty workloads.
    RunqElastic,
    /// `rayon::ThreadPool::spawn`; fork-join through `rayon::join`/`scope`.
    Rayon,
    /// A tokio multi-thread runtime, `Handle::spawn` of an `async move { f() }`.
    Tokio,
    /// The same runtime's `spawn_blocking`, what tokio users reach for with
    /// CPU-bound closures (its blocking pool is capped at `workers` threads).
    TokioBlocking,
    /// `workers` threads reading boxed closures from a crossbeam channel.
    Crossbeam,
    /// `workers` threads sharing one `std::sync::mpsc` receiver behind a mutex.
    Mpsc,
}

impl EngineKind {
    /// Every engine, runq first.
    pub const ALL: [EngineKind; 8] = [
        EngineKind::Runq,
        EngineKind::RunqUnpinned,
        EngineKind::RunqElastic,
        EngineKind::Rayon,
        EngineKind::Tokio,
        EngineKind::TokioBlocking,
        EngineKind::Crossbeam,
        EngineKind::Mpsc,
    ];

    /// The engines of the task-spawning workloads: all but the elastic pool.
    pub const SPAWNING: [EngineKind; 7] = [
        EngineKind::Runq,
        EngineKind::RunqUnpinned,
        EngineKind::Rayon,
        EngineKind::Tokio,
        EngineKind::TokioBlocking,
        EngineKind::Crossbeam,
        EngineKind::Mpsc,
    ];

    /// The engines of the workloads where some tasks block: runq fixed and
    /// elastic, rayon, tokio (whose blocking share goes to `spawn_blocking`)
    /// and a channel pool.
    pub const BLOCKING: [EngineKind; 6] = [
        EngineKind::Runq,
        EngineKind::RunqUnpinned,
        EngineKind::RunqElastic,
        EngineKind::Rayon,
        EngineKind::Tokio,
        EngineKind::Crossbeam,
    ];

    /// The engines with a fork-join API: runq and rayon.
    pub const FORK_JOIN: [EngineKind; 3] = [
        EngineKind::Runq,
        EngineKind::RunqUnpinned,
        EngineKind::Rayon,
    ];

    /// The short name used in tables, `--engines` and JSON.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Runq => "runq",
            EngineKind::RunqUnpinned => "runq-unpinned",
            EngineKind::RunqElastic => "runq-elastic",
            EngineKind::Rayon => "rayon",
            EngineKind::Tokio => "tokio",
            EngineKind::TokioBlocking => "tokio-blocking",
            EngineKind::Crossbeam => "crossbeam",
            EngineKind::Mpsc => "mpsc",
        }
    }

    /// The engine with this short name.
    pub fn from_name(name: &str) -> Option<EngineKind> {
        EngineKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// The handle tasks use to submit work; clone it into a task to spawn from
/// inside the pool.
#[derive(Clone)]
pub enum Spawner {
    /// runq; the flag says whether its workers are unpinned. (The elastic
    /// pool is a runq pool too: the difference is in how it was built.)
    Runq(runq::Pool, bool),
    /// rayon.
    Rayon(Arc<rayon::ThreadPool>),
    /// tokio `spawn`.
    Tokio(tokio::runtime::Handle),
    /// tokio `spawn_blocking`.
    TokioBlocking(tokio::runtime::Handle),
    /// crossbeam-channel pool.
    Crossbeam(crossbeam_channel::Sender<Job>),
    /// std mpsc pool.
    Mpsc(mpsc::Sender<Job>),
}

impl Spawner {
    /// Runs `f` on the engine, fire and forget.
    pub fn spawn<F: FnOnce() + Send + 'static>(&self, f: F) {
        match self {
            Spawner::Runq(pool, _) => pool.spawn(f).expect("runq accepts work while running"),
            Spawner::Rayon(pool) => pool.spawn(f),
            Spawner::Tokio(handle) => drop(handle.spawn(async move { f() })),
            Spawner::TokioBlocking(handle) => drop(handle.spawn_blocking(f)),
            Spawner::Crossbeam(tx) => tx.send(Box::new(f)).expect("crossbeam pool is running"),
            Spawner::Mpsc(tx) => tx.send(Box::new(f)).expect("mpsc pool is running"),
        }
    }

    /// Runs `f`, which blocks (sleeps, waits on I/O), the way each engine
    /// is meant to be told: runq wraps it in `runq::block_in_place` (a
    /// stand-in worker on an elastic pool, a plain call on a fixed one),
    /// tokio sends it to `spawn_blocking`; the others have nothing to say it
    /// with and run it as any task.
    pub fn spawn_blocking<F: FnOnce() + Send + 'static>(&self, f: F) {
        match self {
            Spawner::Runq(pool, _) => pool
                .spawn(move || runq::block_in_place(f))
                .expect("runq accepts work while running"),
            Spawner::Tokio(handle) => drop(handle.spawn_blocking(f)),
            other => other.spawn(f),
        }
    }

    /// Runs `f` at high priority where the engine has a priority lane
    /// (runq); elsewhere this is [`Spawner::spawn`], the only lane there is.
    pub fn spawn_high<F: FnOnce() + Send + 'static>(&self, f: F) {
        match self {
            Spawner::Runq(pool, _) => drop(
                pool.submit_task(Task::new(f).priority(Priority::High))
                    .expect("runq accepts work while running"),
            ),
            other => other.spawn(f),
        }
    }
}

impl fmt::Debug for Spawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Spawner::Runq(_, false) => EngineKind::Runq,
            Spawner::Runq(_, true) => EngineKind::RunqUnpinned,
            Spawner::Rayon(_) => EngineKind::Rayon,
            Spawner::Tokio(_) => EngineKind::Tokio,
            Spawner::TokioBlocking(_) => EngineKind::TokioBlocking,
            Spawner::Crossbeam(_) => EngineKind::Crossbeam,
            Spawner::Mpsc(_) => EngineKind::Mpsc,
        };
        f.debug_tuple("Spawner").field(&kind).finish()
    }
}

/// What keeps an engine's threads alive; dropped after the spawner.
enum Keep {
    Nothing,
    Runtime(Option<tokio::runtime::Runtime>),
    Threads(Vec<JoinHandle<()>>),
}

impl Drop for Keep {
    fn drop(&mut self) {
        match self {
            // Dropping the runtime waits for its workers and blocking threads.
            Keep::Runtime(rt) => drop(rt.take()),
            Keep::Threads(threads) => {
                for t in threads.drain(..) {
                    t.join().expect("a channel worker exits cleanly");
                }
            }
            Keep::Nothing => {}
        }
    }
}

/// One engine with its threads. Dropping it stops them.
pub struct Engine {
    kind: EngineKind,
    workers: usize,
    // Declared before `keep`: the channel pools' last sender must be gone
    // before their threads are joined.
    spawner: Spawner,
    _keep: Keep,
}

impl Engine {
    /// Starts `kind` with `workers` threads.
    pub fn new(kind: EngineKind, workers: usize) -> Engine {
        assert!(workers > 0, "an engine needs at least one worker");
        let (spawner, keep) = match kind {
            EngineKind::Runq | EngineKind::RunqUnpinned | EngineKind::RunqElastic => {
                let unpinned = kind == EngineKind::RunqUnpinned;
                let mut builder = runq::Pool::builder()
                    .workers(workers)
                    .thread_name("runq-bench");
                if unpinned {
                    builder = builder.pin_workers(false);
                }
                if kind == EngineKind::RunqElastic {
                    builder = builder
                        .workers(1)
                        .max_workers(2 * workers)
                        .keep_alive(ELASTIC_KEEP_ALIVE);
                }
                let pool = builder.build().expect("runq pool");
                (Spawner::Runq(pool, unpinned), Keep::Nothing)
            }
            EngineKind::Rayon => {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(workers)
                    .build()
                    .expect("rayon pool");
                (Spawner::Rayon(Arc::new(pool)), Keep::Nothing)
            }
            EngineKind::Tokio | EngineKind::TokioBlocking => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .max_blocking_threads(workers)
                    .build()
                    .expect("tokio runtime");
                let handle = rt.handle().clone();
                let spawner = if kind == EngineKind::Tokio {
                    Spawner::Tokio(handle)
                } else {
                    Spawner::TokioBlocking(handle)
                };
                (spawner, Keep::Runtime(Some(rt)))
            }
            EngineKind::Crossbeam => {
                let (tx, rx) = crossbeam_channel::unbounded::<Job>();
                let threads = (0..workers)
                    .map(|i| {
                        let rx = rx.clone();
                        named(format!("crossbeam-{i}"), move || {
                            rx.iter().for_each(|job| job())
                        })
                    })
                    .collect();
                (Spawner::Crossbeam(tx), Keep::Threads(threads))
            }
            EngineKind::Mpsc => {
                let (tx, rx) = mpsc::channel::<Job>();
                let rx = Arc::new(Mutex::new(rx));
                let threads = (0..workers)
                    .map(|i| {
                        let rx = rx.clone();
                        named(format!("mpsc-{i}"), move || loop {
                            // The guard is a temporary of this statement: the
                            // lock is released before the job runs.
                            let job = rx.lock().expect("mpsc receiver lock").recv();
                            match job {
                                Ok(job) => job(),
                                Err(_) => break,
                            }
                        })
                    })
                    .collect();
                (Spawner::Mpsc(tx), Keep::Threads(threads))
            }
        };
        Engine {
            kind,
            workers,
            spawner,
            _keep: keep,
        }
    }

    /// Which engine this is.
    pub fn kind(&self) -> EngineKind {
        self.kind
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The submission handle.
    pub fn spawner(&self) -> &Spawner {
        &self.spawner
    }

    /// Runs `f` on one of the engine's workers and returns its result: the
    /// entry into fork-join code (`runq::join` and `rayon::join` use the
    /// pool of the worker they run on). Only runq and rayon have one.
    pub fn install<R, F>(&self, f: F) -> R
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        match &self.spawner {
            Spawner::Runq(pool, _) => pool
                .submit(f)
                .expect("runq accepts work while running")
                .wait()
                .expect("fork-join task succeeds"),
            Spawner::Rayon(pool) => pool.install(f),
            _ => panic!("{} has no fork-join API", self.kind),
        }
    }

    /// The rayon pool, for workloads that use rayon's own API (scope).
    pub fn rayon_pool(&self) -> Option<&rayon::ThreadPool> {
        match &self.spawner {
            Spawner::Rayon(pool) => Some(pool),
            _ => None,
        }
    }

    /// The runq pool, for workloads that use runq's own API (scope).
    pub fn runq_pool(&self) -> Option<&runq::Pool> {
        match &self.spawner {
            Spawner::Runq(pool, _) => Some(pool),
            _ => None,
        }
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("kind", &self.kind)
            .field("workers", &self.workers)
            .finish()
    }
}

fn named(name: String, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    thread::Builder::new()
        .name(name)
        .spawn(f)
        .expect("spawn an engine thread")
}
