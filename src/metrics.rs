//! Counters and the [`Metrics`] snapshot.
//!
//! Each worker owns a cache-padded block of counters that only it writes
//! (so the hot path never shares a cache line with another core); work done
//! off the pool (a submission or a cancel from a user thread, the timer, a
//! task run in the caller) lands in one of a few extra shared blocks, one
//! per outside thread as far as they go. A snapshot sums the blocks with
//! relaxed loads: while the pool runs the sums are a moment's estimate, and
//! after shutdown they are exact.

use crossbeam_utils::CachePadded;

use crate::histogram::{Buckets, Histogram, Recorder};
use crate::stamp::Calibration;
use crate::sync::stat::AtomicU64;
use crate::sync::Ordering;
use crate::task::Priority;

/// A snapshot of a pool's counters. All counts are since the pool was built.
///
/// Once a pool is shut down, `submitted == completed + failed + cancelled + expired`.
/// While it runs, each counter is read at its own moment (a snapshot is not
/// one instant of the pool); every count only grows, and `in_flight` is
/// `submitted` minus the four terminal counts of the same snapshot.
///
/// [`Metrics::to_prometheus`] writes it in the Prometheus text format.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    /// The pool's name: its [`thread_name`](crate::Builder::thread_name)
    /// prefix (default `runq`); the `pool` label in the Prometheus text.
    pub pool: String,
    /// The pool's floor: worker threads that always run
    /// ([`Builder::workers`](crate::Builder::workers)).
    pub workers: u64,
    /// Worker threads running now, blocked ones included: `workers` on a
    /// fixed-size pool, between `workers` and `max_workers` on an elastic
    /// one. Workers that exit at shutdown are not taken off (so a snapshot
    /// after shutdown shows the pool's last size, as `workers` does).
    pub live_workers: u64,
    /// The most worker threads that ran at once.
    pub peak_workers: u64,
    /// Worker threads started, the floor's included.
    pub workers_started: u64,
    /// Worker threads that retired after their keep-alive without work
    /// (not counting those that exited at shutdown).
    pub workers_retired: u64,
    /// Workers pinned to a core (a retired worker no longer counts).
    pub pinned_workers: u64,
    /// Tasks accepted (`spawn`, `submit`, `submit_task`, batch members).
    pub submitted: u64,
    /// Tasks that ended `Succeeded`.
    pub completed: u64,
    /// Tasks that ended `Failed` (an `Err` or a panic on their last attempt).
    pub failed: u64,
    /// Panics caught in task bodies, every attempt counted.
    pub panicked: u64,
    /// Re-runs scheduled by retry policies.
    pub retried: u64,
    /// Tasks that ended `Cancelled`.
    pub cancelled: u64,
    /// Tasks that ended `Expired`.
    pub expired: u64,
    /// Callbacks (`on_complete`) and wakers that panicked; the panic was caught.
    pub callback_panics: u64,
    /// Panics caught while the pool dropped a task's values (its output
    /// with no handle left, the closure of a task that never ran, a
    /// callback, guard or waker, an error or panic payload).
    pub drop_panics: u64,
    /// Jobs a worker took from another worker's deque.
    pub stolen: u64,
    /// Times a worker went to sleep.
    pub parks: u64,
    /// Wake-ups sent to sleeping workers.
    pub wakes: u64,
    /// Tasks waiting in the High lane.
    pub queued_high: u64,
    /// Jobs waiting in the Normal lane (injector and worker deques).
    pub queued_normal: u64,
    /// Tasks waiting in the Low lane.
    pub queued_low: u64,
    /// Tasks held by the timer (delayed, or waiting for a retry). One
    /// cancelled meanwhile counts until its entry comes due or is cleaned up.
    pub delayed: u64,
    /// Entries the timer holds: delays, retry backoffs and deadlines,
    /// including stale ones of tasks that ended, which are cleaned up in
    /// bulk (the heap stays within about twice its live entries).
    pub timer_entries: u64,
    /// Tasks accepted and not yet in a terminal state: `submitted` minus
    /// the four terminal counts of this snapshot. A submitter still blocked
    /// on capacity and a `join` or `scope` called from outside the pool are
    /// not tasks and do not count.
    pub in_flight: u64,
    /// Tasks handed to the dead-letter hook (or that would have been, had
    /// one been set): see [`Builder::on_dead_letter`](crate::Builder::on_dead_letter).
    pub dead_lettered: u64,
    /// High tasks: from ready (submitted, or due after a delay or retry
    /// backoff) to the start of the attempt, one value per attempt.
    pub queue_wait_high: Histogram,
    /// Normal tasks: ready to start, as `queue_wait_high`.
    pub queue_wait_normal: Histogram,
    /// Low tasks: ready to start, as `queue_wait_high`.
    pub queue_wait_low: Histogram,
    /// Every attempt of every task: start to end of the body.
    pub run_time: Histogram,
}

/// What a shutdown saw: the pool's final counts.
///
/// `submitted == completed + failed + cancelled + expired` whenever the
/// shutdown joined the workers (it does unless called on a worker thread).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Tasks ever accepted.
    pub submitted: u64,
    /// Tasks that ended `Succeeded`.
    pub completed: u64,
    /// Tasks that ended `Failed`.
    pub failed: u64,
    /// Panics caught in task bodies.
    pub panicked: u64,
    /// Tasks that ended `Cancelled` (including those cancelled by `shutdown_now`).
    pub cancelled: u64,
    /// Tasks that ended `Expired`.
    pub expired: u64,
    /// Re-runs scheduled by retry policies.
    pub retried: u64,
    /// Tasks not yet terminal when the report was taken (0 unless the
    /// shutdown was called on one of the pool's own workers).
    pub in_flight: u64,
}

/// The kinds of event a counter block records.
///
/// The first five are the pool's *flow*: a task is counted `Submitted` when
/// accepted and once more under its terminal event. Their difference is the
/// number of tasks in flight, which `shutdown` waits to reach zero (see the
/// scheduler's lifecycle docs); so they are SeqCst atomics of the sync
/// facade, visible to loom. The rest are plain statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Submitted,
    Completed,
    Failed,
    Cancelled,
    Expired,
    Panicked,
    Retried,
    CallbackPanic,
    DropPanic,
    /// Tasks accepted, counted once each where the submission succeeds
    /// (the flow's `Submitted` also holds refused ones until taken back).
    Accepted,
    Stolen,
    Park,
    Wake,
    DeadLettered,
}

const FLOW: usize = 5;
/// Every event after the flow ones (the last variant sets the count).
const STATS: usize = Event::DeadLettered as usize + 1 - FLOW;

/// The latency histograms a block records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Latency {
    /// Queue wait of a High task.
    WaitHigh,
    WaitNormal,
    WaitLow,
    /// Run time of an attempt.
    Run,
}

impl Latency {
    #[inline]
    pub(crate) fn wait(priority: Priority) -> Latency {
        match priority {
            Priority::High => Latency::WaitHigh,
            Priority::Normal => Latency::WaitNormal,
            Priority::Low => Latency::WaitLow,
        }
    }
}

const LATENCIES: usize = 4;

/// One block of counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    flow: [crate::sync::AtomicU64; FLOW],
    stats: [AtomicU64; STATS],
    latency: [Recorder; LATENCIES],
}

impl Counters {
    #[inline]
    pub(crate) fn add(&self, event: Event, n: u64) {
        let i = event as usize;
        if i < FLOW {
            self.flow[i].fetch_add(n, Ordering::SeqCst);
        } else {
            self.stats[i - FLOW].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Takes back a `Submitted` count made by this thread (a refused submission).
    #[inline]
    pub(crate) fn unsubmit(&self, n: u64) {
        self.flow[Event::Submitted as usize].fetch_sub(n, Ordering::SeqCst);
    }

    #[inline]
    pub(crate) fn get(&self, event: Event) -> u64 {
        let i = event as usize;
        if i < FLOW {
            self.flow[i].load(Ordering::SeqCst)
        } else {
            self.stats[i - FLOW].load(Ordering::Relaxed)
        }
    }
}

/// An attempt under way: what [`Stats::end_attempt`] needs.
#[derive(Debug)]
pub(crate) struct Attempt<'a> {
    /// The start stamp.
    start: u64,
    /// The counter block of the thread running it.
    block: &'a Counters,
    /// It runs on one of the pool's workers (the block's only writer).
    on_worker: bool,
}

/// All counter blocks of a pool: one per worker slot (see `elastic`), then [`OUTSIDE_STRIPES`]
/// shared by the threads outside the pool.
#[derive(Debug)]
pub(crate) struct Stats {
    blocks: Box<[CachePadded<Counters>]>,
    /// The stamp clock and the histogram bounds in its units.
    clock: &'static Calibration,
    buckets: Buckets,
    workers: usize,
}

/// Counter blocks for threads outside the pool, each thread keeping to one:
/// with a single block, two outside submitters bounced its cache line on
/// every submission (runq-bench's remote_spawn/2 and /4). Four covers the
/// submitter counts runq-bench measures; a snapshot sums them all.
const OUTSIDE_STRIPES: usize = 4;

/// The outside block this thread uses, chosen round-robin at its first use.
fn outside_stripe() -> usize {
    if cfg!(loom) {
        // Models replay executions on threads that share std's thread-locals.
        return 0;
    }
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    std::thread_local!(static STRIPE: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) });
    STRIPE.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % OUTSIDE_STRIPES;
            s.set(i);
        }
        i
    })
}

impl Stats {
    pub(crate) fn new(workers: usize) -> Stats {
        let clock = crate::stamp::calibrate();
        Stats {
            blocks: (0..workers + OUTSIDE_STRIPES)
                .map(|_| CachePadded::new(Counters::default()))
                .collect(),
            clock,
            buckets: Buckets::new(clock),
            workers,
        }
    }

    /// The clock the latency stamps come from.
    #[inline]
    pub(crate) fn clock(&self) -> &'static Calibration {
        self.clock
    }

    /// Records `ticks` (stamp units) in histogram `which` of `block`;
    /// `exclusive`: the caller is the block's only writer (its worker).
    #[inline]
    fn record(&self, block: &Counters, exclusive: bool, which: Latency, ticks: u64) {
        let bucket = self.buckets.index(ticks);
        block.latency[which as usize].record(bucket, ticks, exclusive);
    }

    /// An attempt starts on this thread (`worker`: the pool's worker index
    /// of this thread, if it is one): records its queue wait (`ready` ->
    /// start; none when `ready` is 0, the "never stamped" mark) in `wait`'s
    /// histogram. The start stamp is a worker's last end stamp when it ran
    /// nothing unstamped since (see `stamp`), else a fresh one. Pair it with
    /// [`end_attempt`](Self::end_attempt) right after the attempt's code:
    /// the two stay apart, rather than wrapping the attempt in a closure,
    /// so the task's body is not moved through one more stack frame.
    #[inline(always)]
    pub(crate) fn start_attempt(
        &self,
        worker: Option<usize>,
        wait: Latency,
        ready: u64,
    ) -> Attempt<'_> {
        // The block is looked up once for both records: on a worker, its
        // own (it is the only writer).
        let (on_worker, block, start) = match worker {
            Some(i) if i < self.workers => (
                true,
                &*self.blocks[i],
                crate::stamp::take_boundary(self.clock),
            ),
            _ => (false, self.block(None), self.clock.now()),
        };
        let waited = if ready == 0 {
            0
        } else {
            start.saturating_sub(ready)
        };
        self.record(block, on_worker, wait, waited);
        Attempt {
            start,
            block,
            on_worker,
        }
    }

    /// The attempt begun with [`start_attempt`](Self::start_attempt)
    /// ended: records its run time, and on a worker leaves the end stamp
    /// as the next attempt's start.
    #[inline(always)]
    pub(crate) fn end_attempt(&self, attempt: Attempt<'_>) {
        let end = self.clock.now();
        let run = end.saturating_sub(attempt.start);
        self.record(attempt.block, attempt.on_worker, Latency::Run, run);
        if attempt.on_worker {
            crate::stamp::set_boundary(end);
        }
    }

    /// Histogram `which`, merged over all blocks, in nanoseconds.
    pub(crate) fn histogram(&self, which: Latency) -> Histogram {
        let mut h = Histogram::default();
        for b in self.blocks.iter() {
            b.latency[which as usize].add_to(&mut h, self.clock);
        }
        h
    }

    /// The block for worker `index`, or this thread's outside block for `None`.
    #[inline]
    pub(crate) fn block(&self, index: Option<usize>) -> &Counters {
        let i = match index {
            Some(i) if i < self.workers => i,
            _ => self.workers + outside_stripe(),
        };
        &self.blocks[i]
    }

    pub(crate) fn sum(&self, event: Event) -> u64 {
        self.blocks
            .iter()
            .map(|b| b.get(event))
            .fold(0u64, u64::wrapping_add)
    }

    /// Tasks that reached a terminal state, summed over all blocks.
    pub(crate) fn terminal(&self) -> u64 {
        [
            Event::Completed,
            Event::Failed,
            Event::Cancelled,
            Event::Expired,
        ]
        .iter()
        .map(|e| self.sum(*e))
        .fold(0u64, u64::wrapping_add)
    }
}
