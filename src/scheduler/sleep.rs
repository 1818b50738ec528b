//! The workers' idle/wake protocol: a futex word per worker, and one idle
//! bit per worker that a notifier claims before it wakes that worker.
//!
//! # Whom to wake
//!
//! Each worker sleeps on its own futex word, so a notifier chooses whom it
//! wakes. It prefers a worker that announced its sleep on the CPU the
//! notifier runs on ([`current_cpu`]), then any. That is what the kernel
//! does for unpinned threads on a virtual machine (it treats a halted vCPU
//! as busy, since waking one costs an IPI and a host wake-up), and what a
//! pinned pool loses when the futex picks the sleeper: a worker pinned to
//! the other core. Measured with a probe that submits one task from an
//! outside thread every 1 ms into a 2-worker pinned pool on the 2-vCPU KVM
//! development machine (1,000 probes, two runs, the machine shared with
//! other builds): started on the submitter's CPU, p50 11-13 µs and p99
//! 31-36 µs; on the other CPU, p50 26 µs and p99 0.2-0.4 ms. The wakee on
//! the submitter's CPU runs as soon as the submitter blocks or is
//! preempted; the next notification, if the submitter keeps going, finds
//! that worker claimed and wakes one on another CPU.
//!
//! # States (per worker `i`)
//!
//! - *awake*: bit `i` of `idle` clear, the worker between a
//!   [`leave`](Sleep::cancel) and its next [`prepare`](Sleep::prepare);
//! - *announced*: bit `i` set: the worker is between `prepare` and its
//!   leave, and nobody has claimed a wake-up for it;
//! - *claimed*: bit `i` cleared by a notifier before the worker left: a
//!   wake-up is on its way (or arrived).
//!
//! Moves: awake → announced by the worker (`prepare`: read its `epoch`,
//! then set the bit, SeqCst, then a SeqCst fence, then re-check the
//! queues); announced → claimed by a notifier whose `fetch_and` read the bit
//! set (the bits of one word change only by read-modify-writes, so exactly
//! one notifier claims each announcement), which then bumps the worker's
//! `epoch` and futex-wakes it; announced → awake and claimed → awake by the
//! worker when it leaves (cancel, or the end of `park`), learning from the
//! bit whether it absorbed a wake-up. Only the worker sets its bit.
//!
//! Besides the bits, an elastic pool's `asleep` counts the workers between
//! `prepare` and their leave, claimed or not (a fixed-size pool keeps no
//! such count, and pays no read-modify-write for it): an elastic pool starts a worker only when
//! no worker is announced and unclaimed and `asleep` is zero (nobody is
//! parked to take the job; see `elastic`). A worker above an elastic
//! pool's floor parks with a deadline ([`park_until`](Sleep::park_until)),
//! so that it can retire after its keep-alive.
//!
//! # Why no wake-up is lost
//!
//! A notifier first makes its condition true (pushes a job, sets a latch),
//! then issues a SeqCst fence, then loads the `idle` words. All bits clear:
//! nothing more to pay. The sleeper's fence and the notifier's are ordered
//! in the single SeqCst order. If the notifier's comes first, the sleeper's
//! re-check sees the job and it does not sleep. If the sleeper's comes
//! first, the notifier's load sees its bit set (or a later value): it claims
//! that worker or another announced one, or finds every announced worker
//! already claimed. A claimed worker's wait ends: it read its `epoch` before
//! it set its bit, the claim read the set bit, and the bump follows the
//! claim, so the futex wait finds `epoch != key` or is asleep when the wake
//! comes. So when a notifier wakes nobody, every worker is awake or about to
//! be, and each re-checks the queues behind a fresh fence before it sleeps
//! again: the job waits only while every worker is busy.
//!
//! # One wake-up in flight per sleeper
//!
//! A notifier only wakes a worker whose bit it cleared, and the bit is set
//! again only by that worker's next `prepare`; so a woken worker still
//! waiting for a CPU is not sent a second wake-up, and submitters do not pay
//! a futex syscall per task meanwhile. A bump can land after its worker left
//! (it saw its bit cleared and went on); its next sleep then returns at once
//! (`epoch != key`), finds its bit still set, and loops back to searching:
//! a spurious return, which every caller handles.
//!
//! # Searching workers
//!
//! Workers also count themselves as *searching* while they spin for work
//! after running dry (`Shared::searching`). A submitter that sees a
//! searching worker wakes nobody: that is what keeps a busy pool free of
//! wake-up syscalls. The same Dekker argument covers it: the submitter does
//! push, fence, load `searching`; a searcher that gives up announces its
//! sleep, does `searching -= 1`, a fence, and re-checks the queues before
//! it parks. A searcher that instead finds a job and was the last one
//! searching wakes another itself, passing on a wake-up a submitter may
//! have skipped. So a woken worker that finds work wakes the next, and a
//! burst ramps the pool up one worker at a time.
//!
//! # Helpers
//!
//! A worker waiting on a handle or a join while helping parks here too, in
//! its own slot (a worker is in at most one sleep at a time). A helper whose
//! wait ends without searching passes on a wake-up it absorbed if work is
//! visible (`WorkerThread::pass_on_wake`).
//!
//! The loom models `sleep_*` in `loom-tests/` check the protocol through the
//! pool: a submit racing a park, a raced wake-up that must not swallow the
//! next, two workers and two submitters.

use std::time::Instant;

use crossbeam_utils::CachePadded;

use crate::sync::{current_cpu, fence, AtomicU32, AtomicU64, AtomicUsize, Futex, Ordering};

/// Workers per `idle` word.
const BITS: usize = 64;

/// One worker's futex word and where it announced its sleep.
#[derive(Debug)]
struct Slot {
    /// The worker sleeps while this holds the value it read in `prepare`;
    /// the notifier that claims it adds one.
    epoch: Futex,
    /// The CPU the worker announced its sleep from (a hint, Relaxed).
    cpu: AtomicU32,
}

/// The pool's sleeping workers; see the module docs.
#[derive(Debug)]
pub(crate) struct Sleep {
    /// Bit `i % 64` of word `i / 64`: worker `i` is announced and unclaimed.
    idle: Box<[CachePadded<AtomicU64>]>,
    /// Workers between `prepare` and their leave, claimed or not (for an
    /// elastic pool's growth signal: nobody parked to wake).
    /// `None` for a fixed-size pool.
    asleep: Option<CachePadded<AtomicUsize>>,
    slots: Box<[CachePadded<Slot>]>,
}

/// What a worker read in [`Sleep::prepare`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    index: usize,
    epoch: u32,
}

#[inline]
fn locate(index: usize) -> (usize, u64) {
    (index / BITS, 1 << (index % BITS))
}

impl Sleep {
    /// Slots for workers `0..workers`; `elastic`: count the workers asleep
    /// (see [`is_empty`](Self::is_empty)).
    pub(crate) fn new(workers: usize, elastic: bool) -> Self {
        Sleep {
            idle: (0..workers.div_ceil(BITS))
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            asleep: elastic.then(|| CachePadded::new(AtomicUsize::new(0))),
            slots: (0..workers)
                .map(|_| {
                    CachePadded::new(Slot {
                        epoch: Futex::new(0),
                        cpu: AtomicU32::new(0),
                    })
                })
                .collect(),
        }
    }

    /// Announces worker `index`'s sleep. The caller must re-check its
    /// condition after this and then call exactly one of
    /// [`park`](Self::park), [`park_until`](Self::park_until) or
    /// [`cancel`](Self::cancel).
    #[inline]
    pub(crate) fn prepare(&self, index: usize) -> Key {
        let slot = &self.slots[index];
        slot.cpu.store(current_cpu(), Ordering::Relaxed);
        // The key is read before the announcement: a notifier that claims
        // this announcement bumps the epoch after the key was read.
        let epoch = slot.epoch.load(Ordering::SeqCst);
        let (word, bit) = locate(index);
        if let Some(asleep) = &self.asleep {
            asleep.fetch_add(1, Ordering::SeqCst);
        }
        self.idle[word].fetch_or(bit, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        Key { index, epoch }
    }

    /// Leaves the sleep; true if a notifier had claimed it (the caller
    /// absorbed a wake-up).
    #[inline]
    fn leave(&self, key: Key) -> bool {
        let (word, bit) = locate(key.index);
        let idle = &self.idle[word];
        // Only this worker sets its bit, so once seen clear it stays clear
        // (a load after our own set cannot return a value older than it).
        let claimed = idle.load(Ordering::Acquire) & bit == 0
            || idle.fetch_and(!bit, Ordering::AcqRel) & bit == 0;
        if let Some(asleep) = &self.asleep {
            asleep.fetch_sub(1, Ordering::SeqCst);
        }
        claimed
    }

    /// Whether no worker is between `prepare` and its leave, claimed or
    /// not (an elastic pool's growth signal: nobody parked to wake).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.asleep
            .as_ref()
            .is_none_or(|a| a.load(Ordering::SeqCst) == 0)
    }

    /// Withdraws an announced sleep; true if a wake-up was absorbed.
    #[inline]
    pub(crate) fn cancel(&self, key: Key) -> bool {
        self.leave(key)
    }

    /// Sleeps until claimed after `key` was read (or spuriously); true if
    /// woken by a notifier.
    pub(crate) fn park(&self, key: Key) -> bool {
        self.slots[key.index].epoch.wait(key.epoch);
        self.leave(key)
    }

    /// As [`park`](Self::park), but returns by `deadline` at the latest.
    pub(crate) fn park_until(&self, key: Key, deadline: Instant) -> bool {
        self.slots[key.index].epoch.wait_until(key.epoch, deadline);
        self.leave(key)
    }

    /// Wakes worker `index`, whose announcement the caller claimed.
    fn wake(&self, index: usize) {
        let epoch = &self.slots[index].epoch;
        epoch.fetch_add(1, Ordering::SeqCst);
        epoch.wake_one();
    }

    /// Claims and wakes one announced worker, preferring one that announced
    /// from the caller's CPU. The caller has made its condition true and
    /// then issued a SeqCst fence (see the module docs). Returns whether a
    /// wake was sent: false when no worker is announced and unclaimed.
    #[inline]
    pub(crate) fn notify_one_fenced(&self) -> bool {
        let mut here = None;
        loop {
            let mut chosen = None;
            let mut fallback = None;
            for (i, word) in self.idle.iter().enumerate() {
                let w = word.load(Ordering::SeqCst);
                if w == 0 {
                    continue;
                }
                let here = *here.get_or_insert_with(current_cpu);
                if let Some(bit) = self.on_cpu(i, w, here) {
                    chosen = Some((i, bit));
                    break;
                }
                fallback.get_or_insert((i, w & w.wrapping_neg()));
            }
            let Some((i, bit)) = chosen.or(fallback) else {
                return false;
            };
            if self.idle[i].fetch_and(!bit, Ordering::SeqCst) & bit != 0 {
                self.wake(i * BITS + bit.trailing_zeros() as usize);
                return true;
            }
            // Claimed by another notifier, or the worker left: look again.
        }
    }

    /// A bit of `w` (word `i` of `idle`) whose worker announced from `cpu`.
    #[inline]
    fn on_cpu(&self, i: usize, mut w: u64, cpu: u32) -> Option<u64> {
        while w != 0 {
            let bit = w & w.wrapping_neg();
            let slot = &self.slots[i * BITS + bit.trailing_zeros() as usize];
            if slot.cpu.load(Ordering::Relaxed) == cpu {
                return Some(bit);
            }
            w &= !bit;
        }
        None
    }

    /// Whether some worker is announced and unclaimed, as a plain load sees
    /// it (no ordering: for wake-ups that only speed things up, never for
    /// one a protocol relies on).
    #[inline]
    pub(crate) fn may_need_wake(&self) -> bool {
        self.idle.iter().any(|w| w.load(Ordering::Relaxed) != 0)
    }

    /// Claims and wakes every announced worker. Returns whether a wake was
    /// sent.
    pub(crate) fn notify_all(&self) -> bool {
        fence(Ordering::SeqCst);
        let mut any = false;
        for (i, word) in self.idle.iter().enumerate() {
            if word.load(Ordering::SeqCst) == 0 {
                continue;
            }
            let mut w = word.swap(0, Ordering::SeqCst);
            while w != 0 {
                let bit = w & w.wrapping_neg();
                self.wake(i * BITS + bit.trailing_zeros() as usize);
                w &= !bit;
                any = true;
            }
        }
        any
    }
}
