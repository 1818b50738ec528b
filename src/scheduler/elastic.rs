//! The crew: which worker threads run, how an elastic pool grows and
//! shrinks, and [`block_in_place`].
//!
//! Every pool with workers keeps a *registry* of its threads: their join
//! handles, and the worker *slots* not in use. A slot is a worker index with
//! everything indexed by it, made once at build time for `max_workers`
//! slots: a deque and its stealer, a block of counters and histograms. A
//! slot is **vacant** (in the registry, its deque empty) or **live** (owned
//! by one running worker thread). A thread takes a vacant slot to start and
//! gives it back when it ends, so a later worker reuses it: counts and
//! histograms carry over, and nothing is allocated per start. A fixed-size
//! pool (`max_workers == workers`, the default) has exactly `workers` slots,
//! all live until shutdown.
//!
//! # The elastic rule
//!
//! An elastic pool (`max_workers > workers`) has a *floor*, `workers`
//! threads that always run, and a *ceiling*, `max_workers` threads at most,
//! counting those blocked in [`block_in_place`].
//!
//! - **Growth signal**: a job was queued where other workers could take it
//!   (an injector or a deque) and no worker is free to take it: none is
//!   searching and none is parked (`Shared::notify_one` found nobody to
//!   wake). The scheduler meets that moment where it already looks for a
//!   worker to wake: a push, a worker that takes a job and sees more
//!   waiting (the ramp-up wake), and `block_in_place` handing its work off.
//!   So the check costs a fixed-size pool nothing: it sits on the branch
//!   where no wake-up was sent, behind a test of an immutable field.
//! - **Rate limit**: one start in flight at a time (`starting`). The new
//!   worker clears it once it runs, takes its first job, and, seeing more
//!   waiting with nobody free, starts the next: under a burst the pool
//!   grows by one thread per thread start (tens of microseconds each), so
//!   a flood of submissions starts threads one after the other instead of
//!   all at once, and stops growing as soon as a worker comes free.
//! - **Shrinking, and no oscillation**: a worker retires only after
//!   `keep_alive` (default 10 s) without any job, and only while the
//!   running workers (live minus blocked) exceed the floor. A pool that
//!   sees bursts more often than every `keep_alive` keeps its threads, so it
//!   does not pay a start and a retirement per burst; one idle for longer
//!   goes back to the floor. A zero `keep_alive` means a worker above the
//!   floor retires as soon as it runs out of work.
//!
//! Once the pool is shut down it starts no more workers: the live ones
//! finish the accepted work.
//!
//! A task that blocks without telling the pool looks busy: the pool grows
//! only at the next push or ramp-up wake, never because time passed. That
//! is what [`block_in_place`] is for.
//!
//! # States of a worker thread
//!
//! `starting` (slot taken, `live` counted, thread spawning) → `running`
//! (searching, running jobs, parked) → `retiring` (the `live` count
//! dropped) → `gone` (slot vacant); or `running` → `exiting` (the pool is
//! finished) → `gone`. A running worker may be `blocked` in
//! `block_in_place` meanwhile. Who moves it: the starter (any thread whose
//! push saw the growth signal) from nothing to `starting`; the worker
//! itself for every later step.
//!
//! # Retiring without losing a wake-up
//!
//! A worker retires from the point where it would park: it has announced
//! itself a sleeper (`Sleep::prepare`, a SeqCst fence), searched again
//! and found nothing. It then (1) drops the `live` count with a
//! compare-exchange that keeps it at or above the floor (so the floor never
//! retires), (2) withdraws its sleep, which may absorb a wake-up sent to it,
//! (3) moves its "next task" slot and its deque to the Normal injector (an
//! idle worker's are empty; this is for the rule's sake), (4) gives its
//! slot back, (5) issues a SeqCst fence and looks at the queues again, and
//! passes a wake-up on (`notify_one`) if anything waits.
//!
//! Why no task is stranded: a submitter pushes, fences, then looks for an
//! announced sleeper to claim (see `sleep`). If the worker's withdrawal (2)
//! comes first in the SeqCst order, the submitter does not see it: it claims
//! another sleeper, or, with nobody parked, starts a worker (the growth
//! signal) or leaves the job to the busy ones, which search after every
//! job. If the submitter's fence comes first, it may claim the retiring
//! worker itself (a wake-up goes to one worker's own futex word): the
//! worker absorbs that claim in (2), and its look in (5), whose fence
//! follows the submitter's claim, sees the job and passes the wake-up on,
//! to a parked worker, or, with all of them busy, by starting a worker in
//! the slot just given back. The loom model
//! `elastic_retiring_worker_racing_a_submission_runs_the_task` checks it.
//!
//! # Starting without leaving a thread behind
//!
//! Starting takes the registry lock to reserve a slot and to count the start
//! as `pending`, spawns the thread outside the lock, then records its handle
//! under the lock. `shutdown` first takes away the registry's reference to
//! the pool (`me`), so no start begins after it, then joins handles until it
//! finds none left *and* no start pending. A start that reserved before that
//! is joined on a later round; one that comes after finds no `me` and
//! starts nothing. Concurrent shutdowns join one after the other (the
//! `joining` lock), so none returns while another still joins a thread.
//! The loom model `elastic_start_racing_shutdown_leaves_no_thread` checks
//! it.
//!
//! # Blocking compensation
//!
//! [`block_in_place`] on a worker of an elastic pool hands the worker's
//! queued work (its "next task" slot and deque) to the Normal injector,
//! counts the worker `blocked`, detaches the thread from the pool for the
//! duration of `f` (so work `f` submits goes to the injector, and a wait in
//! `f` blocks rather than helps), and, if work waits, wakes a parked worker
//! or starts a stand-in through the growth rule above. A guard undoes the
//! count and re-attaches the thread when `f` returns or unwinds. The
//! stand-in is an ordinary worker above the floor: once the blocked worker
//! is back, the first of them to go `keep_alive` without work retires, so the
//! pool returns to its size; meanwhile the next `block_in_place` reuses the
//! idle one instead of starting a thread. The loom model
//! `elastic_block_in_place_racing_completion_runs_every_task` checks it.
//!
//! # Pinning
//!
//! With pinning on, the worker in slot `i` is pinned to core `i` of the
//! cores the system reports, whichever thread holds the slot; slots beyond
//! the core count run unpinned, as for a fixed pool.

use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::worker::{run_worker, WorkerThread};
use super::{JobRef, Shared};
use crate::latch::CountLatch;
use crate::sync::deque::Worker;
use crate::sync::stat::AtomicU64;
use crate::sync::{thread, Arc, AtomicBool, AtomicUsize, Lock, Ordering};

/// A worker index and its deque, vacant or held by one worker thread.
pub(crate) struct Slot {
    pub(crate) index: usize,
    pub(crate) local: Worker<JobRef>,
}

/// What the registry lock guards.
#[derive(Default)]
struct Registry {
    /// Threads started and not yet joined (workers and the timer).
    handles: Vec<thread::JoinHandle<()>>,
    /// Vacant slots, highest index first (`pop` takes the lowest).
    vacant: Vec<Slot>,
    /// Starts that reserved a slot and have not recorded their handle yet.
    pending: usize,
    /// The pool, for starting workers: only an elastic pool holds it, and
    /// only until shutdown (that breaks the cycle it makes).
    me: Option<Arc<Shared>>,
}

/// The settings of an elastic pool and its growth state.
pub(crate) struct Elastic {
    floor: usize,
    max: usize,
    keep_alive: Duration,
    /// Workers inside `block_in_place`.
    blocked: CachePadded<AtomicUsize>,
    /// A start is in flight (the rate limit).
    starting: AtomicBool,
}

/// The pool's worker threads: the registry, the counts, the elastic rule.
pub(crate) struct Crew {
    registry: Lock<Registry>,
    /// Held by a shutdown for the whole of its joining, so that a second,
    /// concurrent shutdown returns only once every thread is joined.
    joining: Lock<()>,
    /// Worker threads running (blocked ones included; see `vacate`).
    live: CachePadded<AtomicUsize>,
    peak: AtomicU64,
    started: AtomicU64,
    retired: AtomicU64,
    /// Cores to pin slot `i` to (empty: no pinning).
    cores: Vec<core_affinity::CoreId>,
    /// Thread name prefix.
    name: String,
    /// `None` for a fixed-size pool.
    pub(crate) elastic: Option<Elastic>,
}

/// The counts [`Metrics`](crate::Metrics) reports.
pub(crate) struct Census {
    pub(crate) live: u64,
    pub(crate) peak: u64,
    pub(crate) started: u64,
    pub(crate) retired: u64,
}

impl Crew {
    /// A crew of vacant slots, one per deque of `locals`. Elastic when
    /// `floor < locals.len()`.
    pub(crate) fn new(
        locals: Vec<Worker<JobRef>>,
        floor: usize,
        keep_alive: Duration,
        cores: Vec<core_affinity::CoreId>,
        name: String,
    ) -> Crew {
        let max = locals.len();
        let mut vacant: Vec<Slot> = locals
            .into_iter()
            .enumerate()
            .map(|(index, local)| Slot { index, local })
            .collect();
        vacant.reverse();
        Crew {
            registry: Lock::new(Registry {
                vacant,
                ..Registry::default()
            }),
            joining: Lock::new(()),
            live: CachePadded::new(AtomicUsize::new(0)),
            peak: AtomicU64::new(0),
            started: AtomicU64::new(0),
            retired: AtomicU64::new(0),
            cores,
            name,
            elastic: (max > floor).then(|| Elastic {
                floor,
                max,
                keep_alive,
                blocked: CachePadded::new(AtomicUsize::new(0)),
                starting: AtomicBool::new(false),
            }),
        }
    }

    /// Starts the floor: `n` workers in the lowest slots, counting down
    /// `started` as each runs. An elastic pool also keeps `shared` to start
    /// more. On error the caller abandons the pool.
    pub(crate) fn start_floor(
        &self,
        shared: &Arc<Shared>,
        n: usize,
        started: &Arc<CountLatch>,
    ) -> std::io::Result<()> {
        // One hold of the lock for all of them, and one more to record
        // them: the loom models, which all start a pool, explore fewer
        // interleavings that way.
        let slots: Vec<Slot> = {
            let mut reg = self.registry.lock();
            if self.elastic.is_some() {
                reg.me = Some(shared.clone());
            }
            reg.pending += n;
            (0..n)
                .map(|_| reg.vacant.pop().expect("a slot per floor worker"))
                .collect()
        };
        self.live.fetch_add(n, Ordering::SeqCst);
        let mut handles = Vec::with_capacity(n);
        let mut failed = None;
        for slot in slots {
            if failed.is_none() {
                match self.spawn(shared.clone(), slot, Some(started.clone()), false) {
                    Ok(h) => handles.push(h),
                    Err(e) => failed = Some(e),
                }
            } else {
                // Never started: not live.
                self.live.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let mut reg = self.registry.lock();
        reg.pending -= n;
        reg.handles.extend(handles);
        drop(reg);
        failed.map_or(Ok(()), Err)
    }

    /// Records a thread that is not a worker (the timer), to be joined at
    /// shutdown. (Under loom there is no timer thread.)
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn adopt(&self, handle: thread::JoinHandle<()>) {
        self.registry.lock().handles.push(handle);
    }

    /// Counts a start live, then, in one hold of the registry lock, takes
    /// the lowest vacant slot and counts the start pending (and, with
    /// `need_me`, takes a reference to the pool, which shutdown takes
    /// away first). Gives up if the pool is at its ceiling, shut down, or a
    /// retiring worker has not given its slot back yet. Doing it all under
    /// one lock is what lets `join_all` see every start that got past
    /// shutdown's `close` (the loom model
    /// `elastic_start_racing_shutdown_leaves_no_thread` finds a thread left
    /// behind when the reference is taken in a hold of its own).
    fn reserve(&self, need_me: bool) -> Option<(Slot, Option<Arc<Shared>>)> {
        let max = self.elastic.as_ref().map_or(usize::MAX, |e| e.max);
        let mut live = self.live.load(Ordering::Relaxed);
        loop {
            if live >= max {
                return None;
            }
            match self.live.compare_exchange_weak(
                live,
                live + 1,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(l) => live = l,
            }
        }
        let mut reg = self.registry.lock();
        let me = if need_me { reg.me.clone() } else { None };
        let slot = if need_me && me.is_none() {
            None
        } else {
            reg.vacant.pop()
        };
        if slot.is_some() {
            reg.pending += 1;
        }
        drop(reg);
        match slot {
            Some(slot) => Some((slot, me)),
            None => {
                drop(me);
                self.live.fetch_sub(1, Ordering::SeqCst);
                None
            }
        }
    }

    /// Spawns the worker thread for `slot` (already counted live and
    /// pending by [`reserve`](Self::reserve)) and records its handle.
    /// `elastic_start`: the thread clears `starting` once it runs.
    fn launch(
        &self,
        shared: Arc<Shared>,
        slot: Slot,
        started: Option<Arc<CountLatch>>,
        elastic_start: bool,
    ) -> std::io::Result<()> {
        let spawned = self.spawn(shared, slot, started, elastic_start);
        let mut reg = self.registry.lock();
        reg.pending -= 1;
        let h = spawned?;
        reap(&mut reg.handles);
        reg.handles.push(h);
        Ok(())
    }

    /// Spawns the worker thread for `slot`, counted live. If the OS refuses,
    /// the closure, and the slot with it, is dropped unrun: the slot is lost
    /// for good (the ceiling shrinks by one), and the start uncounted.
    fn spawn(
        &self,
        shared: Arc<Shared>,
        slot: Slot,
        started: Option<Arc<CountLatch>>,
        elastic_start: bool,
    ) -> std::io::Result<thread::JoinHandle<()>> {
        let index = slot.index;
        let core = self.cores.get(index).copied();
        shared.lanes.widen(index);
        let now = self.live.load(Ordering::Relaxed) as u64;
        self.peak.fetch_max(now, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
        let spawned = thread::Builder::new()
            .name(format!("{}-{index}", self.name))
            .spawn(move || run_worker(shared, slot, core, started, elastic_start));
        if spawned.is_err() {
            self.live.fetch_sub(1, Ordering::SeqCst);
            self.started.fetch_sub(1, Ordering::Relaxed);
        }
        spawned
    }

    /// Work waits and no worker is free: start one, if the pool is elastic,
    /// below its ceiling, open, and no other start is in flight.
    #[cold]
    pub(crate) fn grow(&self) {
        let Some(e) = &self.elastic else { return };
        if e.starting.load(Ordering::Relaxed) || self.live.load(Ordering::Relaxed) >= e.max {
            return;
        }
        if e.starting
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let Some((slot, Some(shared))) = self.reserve(true) else {
            e.starting.store(false, Ordering::Release);
            return;
        };
        if self.launch(shared, slot, None, true).is_err() {
            e.starting.store(false, Ordering::Release);
        }
    }

    /// Called by a worker started by [`grow`](Self::grow) once it runs: the
    /// next start may go.
    pub(crate) fn started_one(&self) {
        if let Some(e) = &self.elastic {
            e.starting.store(false, Ordering::Release);
        }
    }

    /// The deadline-free part of the retire decision: may an idle worker
    /// retire now (are more workers running than the floor)?
    #[inline]
    pub(crate) fn above_floor(&self) -> bool {
        self.elastic.as_ref().is_some_and(|e| {
            let live = self.live.load(Ordering::Relaxed);
            live.saturating_sub(e.blocked.load(Ordering::Relaxed)) > e.floor
        })
    }

    /// The keep-alive of an elastic pool.
    pub(crate) fn keep_alive(&self) -> Option<Duration> {
        self.elastic.as_ref().map(|e| e.keep_alive)
    }

    /// Step (1) of retiring: drops the live count unless that would take
    /// the running workers to the floor or below. True: the caller retires.
    pub(crate) fn leave_live(&self) -> bool {
        let Some(e) = &self.elastic else { return false };
        let mut live = self.live.load(Ordering::Relaxed);
        loop {
            let running = live.saturating_sub(e.blocked.load(Ordering::Relaxed));
            if running <= e.floor {
                return false;
            }
            match self.live.compare_exchange_weak(
                live,
                live - 1,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.retired.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                Err(l) => live = l,
            }
        }
    }

    /// A retired worker's slot is vacant again. (A worker that exits
    /// because the pool finished keeps its slot and stays counted live,
    /// see `Metrics::live_workers`: no start follows a shutdown.)
    pub(crate) fn vacate(&self, slot: Slot) {
        let mut reg = self.registry.lock();
        let at = reg.vacant.partition_point(|s| s.index > slot.index);
        reg.vacant.insert(at, slot);
    }

    /// Shutdown, step one: no start begins from now on. Returns the pool
    /// reference the registry held, for the caller to drop.
    pub(crate) fn close(&self) -> Option<Arc<Shared>> {
        self.registry.lock().me.take()
    }

    /// Shutdown, step two: joins every thread, including ones that started
    /// meanwhile, until none is left and no start is pending. Skips the
    /// calling thread (the timer, shutting the pool down from a callback).
    pub(crate) fn join_all(&self) {
        let me = thread::current().id();
        let _joining = self.joining.lock();
        loop {
            let (handles, pending) = {
                let mut reg = self.registry.lock();
                (std::mem::take(&mut reg.handles), reg.pending)
            };
            if handles.is_empty() && pending == 0 {
                return;
            }
            if handles.is_empty() {
                // A start is between its reservation and its handle.
                thread::yield_now();
                continue;
            }
            for h in handles {
                if h.thread().id() != me {
                    let _ = h.join();
                }
            }
        }
    }

    /// Threads not joined and starts pending (for the loom models).
    #[cfg(loom)]
    pub(crate) fn unjoined(&self) -> usize {
        let reg = self.registry.lock();
        reg.handles.len() + reg.pending
    }

    /// Worker counts for [`Metrics`](crate::Metrics).
    pub(crate) fn census(&self) -> Census {
        Census {
            live: self.live.load(Ordering::Relaxed) as u64,
            peak: self.peak.load(Ordering::Relaxed),
            started: self.started.load(Ordering::Relaxed),
            retired: self.retired.load(Ordering::Relaxed),
        }
    }
}

/// Joins the handles of workers that already retired (outside loom, whose
/// handles cannot say whether their thread ended), so that many grow and
/// shrink cycles do not pile up handles.
fn reap(handles: &mut Vec<thread::JoinHandle<()>>) {
    #[cfg(not(loom))]
    {
        let mut i = 0;
        while i < handles.len() {
            if handles[i].is_finished() {
                let _ = handles.swap_remove(i).join();
            } else {
                i += 1;
            }
        }
    }
    #[cfg(loom)]
    let _ = handles;
}

impl Elastic {
    /// Counts a worker in or out of `block_in_place`.
    fn block(&self, delta: isize) {
        if delta > 0 {
            self.blocked.fetch_add(1, Ordering::SeqCst);
        } else {
            self.blocked.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Runs `f`, which may block (a file read, a lock, a call into a slow
/// library), letting the pool keep its other work moving meanwhile.
///
/// On a worker of an elastic pool (one built with
/// [`max_workers`](crate::Builder::max_workers) above
/// [`workers`](crate::Builder::workers)), the worker first hands its queued
/// work to the other workers, then counts itself blocked; if work waits, the
/// pool wakes an idle worker or starts a stand-in (up to `max_workers`
/// threads in all). While `f` runs the thread is not one of the pool's
/// workers: tasks `f` submits go to the pool's queue,
/// [`current_worker`](crate::current_worker) is `None`, and a
/// [`Handle::wait`](crate::Handle::wait) inside `f` blocks instead of
/// running other tasks. When `f` returns (or panics: the panic goes on to
/// the caller) the worker is counted back; the stand-in retires after the
/// pool's [`keep_alive`](crate::Builder::keep_alive) without work.
///
/// Anywhere else (outside a pool, on a fixed-size pool, on an inline or
/// manual pool, or nested inside another `block_in_place`) it just runs
/// `f`.
///
/// ```
/// use runq::Pool;
/// use std::sync::mpsc;
/// // One worker always, two at most: while the first task blocks, a
/// // stand-in runs the second.
/// let pool = Pool::builder().workers(1).max_workers(2).build()?;
/// let (tx, rx) = mpsc::channel::<()>();
/// let blocked = pool.submit(move || runq::block_in_place(|| rx.recv().ok()))?;
/// let other = pool.submit(|| 2 + 2)?;
/// assert_eq!(other.wait()?, 4); // ran although the only floor worker blocks
/// tx.send(())?;
/// blocked.wait()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn block_in_place<R>(f: impl FnOnce() -> R) -> R {
    let Some(worker) = WorkerThread::current() else {
        return f();
    };
    let shared = &*worker.shared;
    let Some(elastic) = &shared.crew.elastic else {
        return f();
    };
    let moved = worker.hand_off();
    elastic.block(1);
    worker.detach();
    let _back = Blocked { worker, elastic };
    if moved || shared.lanes.has_work() {
        shared.notify_one();
    }
    f()
}

/// Undoes [`block_in_place`]'s count and re-attaches the worker, on return
/// or unwind.
struct Blocked<'a> {
    worker: &'a WorkerThread,
    elastic: &'a Elastic,
}

impl Drop for Blocked<'_> {
    fn drop(&mut self) {
        self.worker.reattach();
        self.elastic.block(-1);
    }
}
