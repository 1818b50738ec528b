//! The worker loop, the thread-local "current worker", pinning, helping
//! waits and `join` on a worker.

use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::sync::deque::{Steal, Worker};

use super::elastic::Slot;
use super::lanes::{HIGH_BURST, LIFO_BURST, LOW_EVERY};
use super::{random_u64, JobRef, Shared};
use crate::latch::{CountLatch, Latch, Probe};
use crate::metrics::Event;
use crate::sync::{fence, thread_local, Arc, Ordering, UnsafeCell};
use crate::task::Abort;
use crate::unwind::{drop_payload, drop_quietly, AbortOnUnwind};

thread_local! {
    // loom's `thread_local!` takes no `const` initializer.
    #[allow(clippy::missing_const_for_thread_local)]
    static CURRENT: Cell<*const WorkerThread> = Cell::new(std::ptr::null());
}

/// A spin window: `spins` steps of doubling spin hints (1, 2, 4, ...),
/// then `yields` yields, re-searching after each step.
#[derive(Clone, Copy)]
struct SpinWindow {
    spins: u32,
    yields: u32,
}

/// How long a worker that ran out of work spins before it parks: not at
/// all, unless its last sleep was short ([`STREAM_SPIN`]). An idle worker
/// waits for submissions whose arrival it cannot predict, and since a
/// notifier wakes the worker on its own CPU (see the sleep module), a
/// spinning worker mostly holds the core its submitter needs.
///
/// Measured 2026-12-02 with `cargo run --release -p runq-bench -- --only
/// idle_cost,wake_latency,spawn_many_remote_idle,remote_spawn,ping_pong
/// --engines tokio-blocking,crossbeam,mpsc --repeat 5`, twice per window,
/// pinned, 2 workers, the machine shared with other builds (load average
/// 10 to 13). idle_cost as CPU per wall second and its ratio to
/// tokio-blocking (the best peer) in the same run, for (spin steps,
/// yields): (7, 4), crossbeam's `Backoff`, the window before: 1.56% and
/// 1.51% (1.63x, 1.29x); the same with at most one spinning worker: 1.38%,
/// 1.56% (1.44x, 1.56x: with one task at a time only one worker spins
/// anyway); (4, 1): 1.10%, 1.04% (1.03x, 1.02x); (7, 0): 0.93%, 1.06%
/// (1.04x, 1.12x); (0, 0): 0.68%, 0.74% (0.92x, 0.84x). The throughput
/// workloads of the same runs differed between windows by less than between
/// two runs of one window (no window was consistently faster), and
/// wake_latency p50 stayed 9 to 13 µs for all.
const IDLE_SPIN: SpinWindow = SpinWindow {
    spins: 0,
    yields: 0,
};

/// The spin window of a worker whose last sleep was short (under
/// [`STREAM_GAP`]): submissions are arriving in a stream, and the next one
/// is likely microseconds away. A spinning worker counts as searching, so
/// the submitter skips the futex wake-up it would otherwise pay per task;
/// crossbeam's `Backoff` window (about a hundred spin hints, then four
/// yields: some 10 µs of CPU) catches the next task without one.
///
/// Measured 2026-12-03 on the idle 2-core machine, `cargo run --release -p
/// runq-bench -- --only spawn_many_remote_idle,remote_spawn,idle_cost,wake_latency
/// --engines crossbeam,mpsc,tokio-blocking`, 2 workers, the build before
/// (no spin at all) and this one alternated, two runs each, runq's medians:
/// spawn_many_remote_idle 17.2, 14.5 ms before, 10.2, 9.39 ms after;
/// remote_spawn/1 11.9, 4.01 ms before, 1.84, 1.71 ms after; wake_latency
/// p50 within noise (3.8 to 8.5 µs both). idle_cost, three runs of seven
/// each with [`STREAM_GAP`] at zero (never spinning) and at its value:
/// 0.45%, 0.54%, 0.60% and 0.55%, 0.47%, 0.70% (tokio-blocking 0.81% to
/// 1.34% in the same runs), so no measurable cost while idle.
const STREAM_SPIN: SpinWindow = SpinWindow {
    spins: 7,
    yields: 4,
};

/// A sleep shorter than this means a stream (see [`STREAM_SPIN`]). A wake-up
/// takes 10 to 50 µs here, so a worker woken by a submitter that keeps
/// submitting sleeps well under it, while one woken by a task a
/// millisecond after the last (idle_cost) sleeps far longer and does not
/// spin. The window costs about 10 µs of CPU per idle spell, so at this gap
/// a stream of the slowest kind costs at most 5% of a core per worker.
const STREAM_GAP: Duration = Duration::from_micros(200);

/// How long a helping waiter (a `join` or a handle waited on inside a task)
/// spins before it parks: crossbeam's `Backoff` window, about a hundred
/// spin hints and then four yields. The event it waits for (a stolen half
/// finishing) is usually microseconds away, and parking costs a futex
/// wake-up round trip when it comes.
const HELP_SPIN: SpinWindow = SpinWindow {
    spins: 7,
    yields: 4,
};

/// One worker thread's private state. Lives on the worker's stack.
pub(crate) struct WorkerThread {
    pub(crate) index: usize,
    local: Worker<JobRef>,
    pub(crate) shared: Arc<Shared>,
    /// High tasks taken in a row (for the starvation bound).
    high_streak: Cell<u32>,
    /// Searches so far (for Low-lane aging).
    ticks: Cell<u32>,
    /// The "next task" slot: the task most recently spawned by a task
    /// running on this worker. It runs before the deque, and filling it
    /// wakes nobody (see [`push_task`](Self::push_task)).
    next: Cell<Option<JobRef>>,
    /// Jobs taken from `next` in a row (for the [`LIFO_BURST`] bound).
    next_streak: Cell<u32>,
    /// The last job came from this worker's own queues (slot, deque, or a
    /// steal): the Normal injector gets the next turn (fair intake).
    owed_to_injector: Cell<bool>,
}

impl WorkerThread {
    /// The worker running on this thread, if any.
    #[inline]
    pub(crate) fn current<'a>() -> Option<&'a WorkerThread> {
        let p = CURRENT.with(Cell::get);
        // SAFETY: `run_worker` points CURRENT at a `WorkerThread` on its own
        // stack for exactly as long as the worker loop runs, and clears it
        // before that value is dropped (`reattach`, the only other writer,
        // restores that same pointer from inside the loop). Only this thread reads it, and crate
        // code uses the reference within the call that obtained it.
        unsafe { p.as_ref() }
    }

    /// The worker running on this thread, if it belongs to `shared`'s pool.
    #[inline]
    pub(crate) fn current_of<'a>(shared: &Shared) -> Option<&'a WorkerThread> {
        Self::current().filter(|w| std::ptr::eq(&*w.shared, shared))
    }

    /// Moves this worker's queued work (its "next task" slot and its
    /// deque) to the Normal injector, where any worker takes it. Returns
    /// whether anything moved. (Before it blocks or retires: see `elastic`.)
    pub(crate) fn hand_off(&self) -> bool {
        let normal = &self.shared.lanes.normal;
        let mut moved = false;
        if let Some(job) = self.next.take() {
            normal.push(job);
            moved = true;
        }
        while let Some(job) = self.local.pop() {
            normal.push(job);
            moved = true;
        }
        moved
    }

    /// The thread stops counting as this pool's worker (for the length of
    /// a `block_in_place`): `current` returns `None` until [`reattach`](Self::reattach).
    pub(crate) fn detach(&self) {
        CURRENT.with(|c| c.set(std::ptr::null()));
    }

    /// Undoes [`detach`](Self::detach), on the same thread, while the
    /// worker loop that owns `self` still runs.
    pub(crate) fn reattach(&self) {
        CURRENT.with(|c| c.set(self));
    }

    #[inline]
    pub(crate) fn push_local(&self, job: JobRef) {
        self.local.push(job);
    }

    /// Queues a Normal task spawned on this worker: it goes into the
    /// "next task" slot, and the task it displaces (if any) into the deque,
    /// where thieves can see it. Returns whether the deque grew, i.e.
    /// whether a sleeper should be told.
    ///
    /// A task in the slot is not visible to other workers: it runs when the
    /// task that spawned it returns (or waits on a handle, which helps). So
    /// the pattern of chains, ping-pong and actors, one task spawning the
    /// next, costs no wake-up and no deque operation; the price is that a
    /// task which spawns one child and then runs for long keeps that child
    /// to itself meanwhile (tokio's LIFO slot makes the same trade).
    #[inline]
    pub(crate) fn push_task(&self, job: JobRef) -> bool {
        match self.next.replace(Some(job)) {
            None => false,
            Some(older) => {
                self.local.push(older);
                true
            }
        }
    }

    /// The next job of this worker's own: the slot, unless it ran
    /// [`LIFO_BURST`] times in a row and the deque has a job; else the deque.
    #[inline]
    fn take_own(&self) -> Option<JobRef> {
        let streak = self.next_streak.get();
        if streak < LIFO_BURST {
            if let Some(job) = self.next.take() {
                self.next_streak.set(streak + 1);
                return Some(job);
            }
        }
        self.next_streak.set(0);
        self.local.pop().or_else(|| self.next.take())
    }

    /// Finds the next job, in the order the scheduler module describes.
    pub(crate) fn find_work(&self) -> Option<JobRef> {
        let lanes = &self.shared.lanes;
        let tick = self.ticks.get().wrapping_add(1);
        self.ticks.set(tick);
        if tick % LOW_EVERY == 0 {
            if let Some(job) = lanes.low.pop() {
                return Some(job);
            }
        }
        let streak = self.high_streak.get();
        if streak < HIGH_BURST {
            if let Some(job) = lanes.high.pop() {
                self.high_streak.set(streak + 1);
                return Some(job);
            }
        }
        self.high_streak.set(0);
        if self.owed_to_injector.get() {
            // Fair intake: after a job of its own, a worker takes a waiting
            // outside submission before its next own job, so tasks that
            // keep spawning cannot starve the injector (they get half of
            // the worker at most while it has work).
            if let Some(job) = self.steal_injector() {
                self.owed_to_injector.set(false);
                return Some(job);
            }
        }
        if let Some(job) = self.take_own() {
            self.owed_to_injector.set(true);
            return Some(job);
        }
        if let Some(job) = self.steal_injector() {
            self.owed_to_injector.set(false);
            return Some(job);
        }
        if let Some(job) = self.steal_from_others() {
            self.owed_to_injector.set(true);
            return Some(job);
        }
        if streak >= HIGH_BURST {
            if let Some(job) = lanes.high.pop() {
                self.high_streak.set(1);
                return Some(job);
            }
        }
        lanes.low.pop()
    }

    /// Takes the oldest job of the Normal injector. One at a time, not a
    /// batch: jobs moved into this worker's LIFO deque would start in
    /// reverse order relative to the ones left behind, and outside
    /// submissions are promised FIFO starts.
    fn steal_injector(&self) -> Option<JobRef> {
        let injector = &self.shared.lanes.normal;
        let job = injector.pop()?;
        // More than we can run right now: let a sleeper help. (The queue's
        // tail is the submitters' line: look at it only if a sleeper
        // could be woken.)
        if self.shared.may_nudge() && !injector.is_empty() {
            self.shared.notify_one();
        }
        Some(job)
    }

    fn steal_from_others(&self) -> Option<JobRef> {
        let stealers = self.shared.lanes.live_stealers();
        let n = stealers.len();
        if n <= 1 {
            return None;
        }
        let start = random_u64() as usize % n;
        loop {
            let mut retry = false;
            for i in 0..n {
                let victim = (start + i) % n;
                if victim == self.index || stealers[victim].is_empty() {
                    continue;
                }
                match stealers[victim].steal_batch_and_pop(&self.local) {
                    Steal::Success(job) => {
                        let moved = 1 + self.local.len() as u64;
                        self.shared
                            .stats
                            .block(Some(self.index))
                            .add(Event::Stolen, moved);
                        return Some(job);
                    }
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    }

    /// Runs one job. Under `shutdown_now`, a task is resolved Cancelled
    /// instead; scope and join jobs still run (a caller waits on them).
    pub(crate) fn execute(&self, job: JobRef) {
        match job {
            JobRef::Task(task) => {
                let task = task.widen();
                if self.shared.stopping_now() {
                    task.abort(&self.shared, Abort::Cancelled);
                } else {
                    task.run(&self.shared, Some(self.index));
                }
            }
            JobRef::Spawned(task) => {
                if self.shared.stopping_now() {
                    task.cancel(&self.shared);
                } else {
                    task.run(&self.shared, Some(self.index));
                }
            }
            JobRef::Heap(f) => {
                f.run(&self.shared);
                crate::stamp::forget_boundary();
            }
            JobRef::Stack(r) => {
                // SAFETY: a StackRef is only created by `join` below, which
                // keeps the job alive until it is executed or popped back.
                unsafe { r.execute(&self.shared) };
                crate::stamp::forget_boundary();
            }
        }
    }

    /// Spins for `window`, re-searching after each step; stops early when
    /// `done` turns true.
    fn spin(&self, window: SpinWindow, done: impl Fn() -> bool) -> Option<JobRef> {
        if cfg!(loom) {
            // The models explore parking directly: a spin only multiplies
            // the interleavings without adding a protocol step.
            return None;
        }
        // Time passes unstamped: the next attempt takes a fresh start stamp.
        crate::stamp::forget_boundary();
        for step in 0..window.spins + window.yields {
            if step < window.spins {
                for _ in 0..1u32 << step {
                    std::hint::spin_loop();
                }
            } else {
                crate::sync::thread::yield_now();
            }
            if done() {
                return None;
            }
            if let Some(job) = self.find_work() {
                return Some(job);
            }
        }
        None
    }

    /// The worker's life. `fresh`: an elastic pool started it, and it
    /// lets the next start go after its first search (see `elastic`).
    /// Returns true if the worker retired (false: the pool finished).
    fn main_loop(&self, fresh: bool) -> bool {
        let shared = &*self.shared;
        let mut woken = false;
        if fresh {
            // A started worker lets the next start go once it has looked
            // for work, then ramps up like a woken one.
            let found = self.find_work();
            shared.crew.started_one();
            if let Some(job) = found {
                if shared.lanes.has_work() {
                    shared.notify_one();
                }
                self.execute(job);
            }
        }
        // Since when this worker found no work (elastic pools only).
        let mut idle_since: Option<Instant> = None;
        // The last sleep was short: spin before the next (`STREAM_SPIN`).
        let mut streaming = false;
        loop {
            if let Some(job) = self.find_work() {
                if woken && shared.lanes.has_work() {
                    // Ramp up: a woken worker that sees more work wakes the
                    // next (or, on an elastic pool with nobody to wake,
                    // starts one).
                    shared.notify_one();
                }
                woken = false;
                idle_since = None;
                self.execute(job);
                continue;
            }
            // Out of work: search for a while (`IDLE_SPIN`, no time at
            // all, unless submissions stream in: `STREAM_SPIN`). A searching
            // worker is counted, so submitters need not wake anyone
            // meanwhile.
            shared.searching.fetch_add(1, Ordering::SeqCst);
            let window = if streaming { STREAM_SPIN } else { IDLE_SPIN };
            if let Some(job) = self.spin(window, || false) {
                if shared.searching.fetch_sub(1, Ordering::SeqCst) == 1 {
                    // The last searcher found work: a push may have skipped
                    // its wake-up because we searched, so pass it on.
                    shared.notify_one();
                }
                woken = false;
                idle_since = None;
                self.execute(job);
                continue;
            }
            let key = shared.sleep.prepare(self.index);
            shared.searching.fetch_sub(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if let Some(job) = self.find_work() {
                shared.sleep.cancel(key);
                if shared.lanes.has_work() {
                    shared.notify_one();
                }
                woken = false;
                idle_since = None;
                self.execute(job);
                continue;
            }
            if shared.is_finished() {
                shared.sleep.cancel(key);
                return false;
            }
            // An elastic pool above its floor: retire after `keep_alive`
            // without work (the protocol is in the `elastic` module docs).
            let mut until = None;
            if let Some(keep_alive) = shared.crew.keep_alive() {
                if shared.crew.above_floor() {
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    until = since.checked_add(keep_alive);
                    if until.is_some_and(|d| Instant::now() >= d) {
                        until = None;
                        if shared.crew.leave_live() {
                            shared.sleep.cancel(key);
                            return true;
                        }
                    }
                }
            }
            shared.stats.block(Some(self.index)).add(Event::Park, 1);
            let parked_at = Instant::now();
            woken = match until {
                None => shared.sleep.park(key),
                Some(d) => shared.sleep.park_until(key, d),
            };
            streaming = woken && parked_at.elapsed() < STREAM_GAP;
        }
    }

    /// Runs other jobs until `probe` is done; parks on the pool's event
    /// count (as a HELPER of the probe) when there are none. Returns false
    /// if `deadline` passed first.
    pub(crate) fn wait_until(&self, probe: &impl Probe, deadline: Option<Instant>) -> bool {
        let shared = &*self.shared;
        loop {
            if probe.is_done() {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            if let Some(job) = self
                .find_work()
                .or_else(|| self.spin(HELP_SPIN, || probe.is_done()))
            {
                self.execute(job);
                continue;
            }
            if !probe.announce_helper() {
                return true;
            }
            let key = shared.sleep.prepare(self.index);
            if probe.is_done() {
                if shared.sleep.cancel(key) {
                    self.pass_on_wake();
                }
                return true;
            }
            if let Some(job) = self.find_work() {
                shared.sleep.cancel(key);
                self.execute(job);
                continue;
            }
            shared.stats.block(Some(self.index)).add(Event::Park, 1);
            let woken = match deadline {
                None => shared.sleep.park(key),
                Some(d) => shared.sleep.park_until(key, d),
            };
            if woken && (probe.is_done() || deadline.is_some_and(|d| Instant::now() >= d)) {
                self.pass_on_wake();
            }
        }
    }

    /// A helper left the sleeper state without searching: hand a wake-up it
    /// may have absorbed to another worker.
    fn pass_on_wake(&self) {
        let shared = &*self.shared;
        if shared.lanes.has_work() {
            shared.notify_one();
        }
    }

    /// `join` on a worker: push `b`, run `a`, then take `b` back if nobody
    /// stole it, or help until the thief is done.
    pub(crate) fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        let job_b = StackJob::new(b);
        // SAFETY: `job_b` stays on this frame until its latch is set (a thief
        // ran it) or we popped its reference back: we return only after one
        // of the two. `a` cannot unwind past us (caught below), and nothing
        // else can: the jobs we help with catch their panics (user values
        // are dropped quietly, see `unwind`), and should anything unwind
        // anyway, `guard` aborts before this frame is left.
        let job_ref = unsafe { job_b.as_ref() };
        let ptr = job_ref.0;
        let guard = AbortOnUnwind;
        self.local.push(JobRef::Stack(job_ref));
        // A nudge, not a fenced notify (see `Shared::nudge`): a sleeper
        // that misses it costs parallelism, never progress, and a fence per
        // join was most of the gap to rayon on fib (rayon makes the same
        // trade).
        self.shared.nudge();
        let ra = catch_unwind(AssertUnwindSafe(a));
        let rb = loop {
            if job_b.latch.is_done() {
                break job_b.take_result();
            }
            match self.local.pop() {
                Some(JobRef::Stack(r)) if r.0 == ptr => break job_b.run_inline(),
                Some(other) => self.execute(other),
                None => {
                    self.wait_until(&job_b.latch, None);
                    break job_b.take_result();
                }
            }
        };
        guard.disarm();
        match (ra, rb) {
            (Ok(ra), Ok(rb)) => (ra, rb),
            (Err(p), other) => {
                match other {
                    Ok(v) => drop_quietly(v),
                    Err(q) => drop_payload(q),
                }
                resume_unwind(p)
            }
            (Ok(other), Err(p)) => {
                drop_quietly(other);
                resume_unwind(p)
            }
        }
    }
}

/// The second half of a `join`, on the joining worker's stack. Its first
/// field is the function that runs it, so that a [`StackRef`] is one word.
#[repr(C)]
struct StackJob<F, R> {
    exec: StackFn,
    func: UnsafeCell<Option<F>>,
    result: UnsafeCell<Option<std::thread::Result<R>>>,
    latch: Latch,
}

/// What runs a [`StackJob`] whose address it is given.
type StackFn = unsafe fn(*const (), &Shared);

/// A type-erased pointer to a [`StackJob`].
pub(crate) struct StackRef(*const ());

impl StackRef {
    /// Runs the job and sets its latch.
    ///
    /// # Safety
    /// The job is alive, and this reference was taken out of the deque
    /// exactly once (see `StackJob::execute`).
    unsafe fn execute(self, shared: &Shared) {
        // SAFETY: a live `StackJob` starts with its `exec` (repr C).
        let exec = unsafe { *(self.0 as *const StackFn) };
        // SAFETY: by our contract.
        unsafe { exec(self.0, shared) }
    }
}

// SAFETY: a StackRef is moved to the thief's thread together with the right
// to run the job once; `StackJob` only holds `Send` closures and results.
unsafe impl Send for StackRef {}

impl<F: FnOnce() -> R + Send, R: Send> StackJob<F, R> {
    fn new(f: F) -> Self {
        StackJob {
            exec: Self::execute,
            func: UnsafeCell::new(Some(f)),
            result: UnsafeCell::new(None),
            latch: Latch::new(),
        }
    }

    /// # Safety
    /// The job must outlive every use of the returned reference.
    unsafe fn as_ref(&self) -> StackRef {
        StackRef(self as *const Self as *const ())
    }

    /// # Safety
    /// `this` comes from [`as_ref`](Self::as_ref) on a live job, and the
    /// reference was taken out of the deque exactly once.
    unsafe fn execute(this: *const (), shared: &Shared) {
        // SAFETY: live by the contract.
        let this = unsafe { &*(this as *const Self) };
        let result = this.run_inline();
        // SAFETY: we hold the only reference that runs the job, and the
        // owner reads the result only after the latch is set.
        this.result.with_mut(|p| unsafe { *p = Some(result) });
        // NOTE: after `set`, the owner may return and free `this`.
        this.latch.set(shared);
    }

    fn run_inline(&self) -> std::thread::Result<R> {
        // SAFETY: the closure is taken exactly once: by the thief that
        // popped the reference, or by the owner that popped it back.
        let f = self.func.with_mut(|p| unsafe { (*p).take() });
        match f {
            Some(f) => catch_unwind(AssertUnwindSafe(f)),
            None => Err(Box::new("join job ran twice")),
        }
    }

    fn take_result(&self) -> std::thread::Result<R> {
        // SAFETY: called after the latch was seen set (Acquire): the thief's
        // write is visible and it no longer touches the job.
        let r = self.result.with_mut(|p| unsafe { (*p).take() });
        r.unwrap_or_else(|| Err(Box::new("join result missing")))
    }
}

/// The body of a worker thread, in `slot`. `started` counts the floor's
/// starts down; `fresh`: started by an elastic pool's growth rule.
pub(crate) fn run_worker(
    shared: Arc<Shared>,
    slot: Slot,
    core: Option<core_affinity::CoreId>,
    started: Option<Arc<CountLatch>>,
    fresh: bool,
) {
    let pinned = core.is_some_and(pin);
    if pinned {
        shared.pinned.fetch_add(1, Ordering::Relaxed);
    }
    let worker = WorkerThread {
        index: slot.index,
        local: slot.local,
        shared,
        high_streak: Cell::new(0),
        ticks: Cell::new(0),
        next: Cell::new(None),
        next_streak: Cell::new(0),
        owed_to_injector: Cell::new(false),
    };
    CURRENT.with(|c| c.set(&worker));
    crate::stamp::enter_worker();
    if let Some(started) = started {
        started.done_one(&worker.shared);
    }
    let retired = worker.main_loop(fresh);
    CURRENT.with(|c| c.set(std::ptr::null()));
    // Nothing stays behind in a vacant slot (an idle worker's queues are
    // empty already; this is the rule, not a rescue).
    worker.hand_off();
    if retired && pinned {
        worker.shared.pinned.fetch_sub(1, Ordering::Relaxed);
    }
    let WorkerThread {
        index,
        local,
        shared,
        ..
    } = worker;
    if !retired {
        // The pool finished: no worker will take the slot again.
        return;
    }
    shared.crew.vacate(Slot { index, local });
    // Step (5) of retiring (`elastic` module docs): look again, behind a
    // fence, and pass on a wake-up this worker may have absorbed.
    fence(Ordering::SeqCst);
    if shared.lanes.has_work() {
        shared.notify_one();
    }
}

#[cfg(not(loom))]
fn pin(core: core_affinity::CoreId) -> bool {
    core_affinity::set_for_current(core)
}

#[cfg(loom)]
fn pin(_core: core_affinity::CoreId) -> bool {
    false
}
