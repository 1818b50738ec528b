//! The idle/wake protocol: an event count over a futex.
//!
//! # States and counters
//!
//! - `epoch`: a futex word. Sleepers sleep while it holds the value they
//!   read; every notification adds one.
//! - `sleepers`: how many threads are between [`prepare`](EventCount::prepare)
//!   and the end of [`park`](EventCount::park) (or [`cancel`](EventCount::cancel)).
//!
//! # The handshake
//!
//! A sleeper does: `key = epoch`, `sleepers += 1` (SeqCst), a SeqCst fence,
//! then **re-checks its condition** (the queues, a latch), and only then
//! futex-waits while `epoch == key`.
//!
//! A notifier first makes its condition true (pushes a job, sets a latch),
//! then a SeqCst fence, then loads `sleepers`. Zero: nothing more to pay, a
//! fence, a load and a branch. Otherwise it bumps `epoch` and wakes one (or
//! all) sleepers.
//!
//! # Why no wake-up is lost
//!
//! The two fences are ordered in the single SeqCst order. If the notifier's
//! fence comes first, the sleeper's re-check (after its own fence) sees the
//! pushed job and does not sleep. If the sleeper's fence comes first, the
//! notifier sees `sleepers >= 1` and bumps `epoch`. The sleeper read `key`
//! before it announced itself, so before that bump (the notifier's
//! read-modify-write of the word read the announcement): its futex wait
//! finds `epoch != key` and returns at once, or it is already asleep and is
//! woken by the futex wake that follows the bump. Spurious returns are
//! harmless: every caller loops back to searching.
//!
//! # Searching workers
//!
//! Workers also count themselves as *searching* while they spin for work
//! after running dry. A submitter that sees a searching worker wakes nobody:
//! that is what keeps a busy pool free of wake-up syscalls. The same
//! Dekker argument covers it: the submitter does push, fence, load
//! `searching`; a searcher that gives up does `searching -= 1`, fence, and
//! re-checks the queues before it parks. A searcher that instead finds a job
//! and was the last one searching calls `notify_one` itself, passing on a
//! wake-up a submitter may have skipped. So a woken worker that finds work
//! wakes the next, and a burst ramps the pool up one worker at a time.
//!
//! # One wake in flight per sleeper
//!
//! A woken worker may wait a while for a CPU before it runs again; until
//! then it still counts as a sleeper. So that submitters do not pay a futex
//! syscall per task meanwhile, the state word also counts wake-ups in
//! flight, and `notify_one` sends none while every sleeper has one coming.
//! Sleepers and wake-ups live in one word, changed only by read-modify-
//! writes, so no decision is taken on a stale count. A thread leaving the
//! sleeper state (woken, spurious, or cancelling because it found work)
//! absorbs one wake-up in flight; it then searches the queues, or, for a
//! helper whose wait ended, passes the wake on if work is visible.
//!
//! Every wake-up counted in flight is absorbed: the sleepers it counted
//! read their keys before the bump, so each either returns from its wait
//! or is asleep in it, and the wake that follows the bump ends one wait.
//! (Reading the key *after* announcing, as an earlier version did, broke
//! this: a sleeper could read the bumped epoch, sleep through its own
//! wake-up, and leave it counted, so that later notifications, seeing every
//! sleeper with a wake-up coming, sent none. The loom model
//! `sleep_one_worker_a_raced_wake_does_not_swallow_the_next` finds that lost wake-up.)

use crossbeam_utils::CachePadded;

use crate::sync::{fence, AtomicU64, Futex, Ordering};

/// One sleeper, in the low half of the state word.
const SLEEPER: u64 = 1;
/// One wake-up sent and not yet absorbed, in the high half.
const PENDING: u64 = 1 << 32;

#[inline]
fn sleepers(w: u64) -> u64 {
    w & (PENDING - 1)
}

#[inline]
fn pending(w: u64) -> u64 {
    w >> 32
}

/// An event count: sleep until something changed since you last looked.
#[derive(Debug)]
pub(crate) struct EventCount {
    epoch: CachePadded<Futex>,
    /// Sleepers (low half) and wake-ups in flight (high half), in one word
    /// so that every decision about them is one read-modify-write.
    state: CachePadded<AtomicU64>,
}

/// What a sleeper read in [`EventCount::prepare`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key(u32);

impl EventCount {
    pub(crate) fn new() -> Self {
        EventCount {
            epoch: CachePadded::new(Futex::new(0)),
            state: CachePadded::new(AtomicU64::new(0)),
        }
    }

    /// Announces a sleep. The caller must re-check its condition after this
    /// and then call exactly one of [`park`](Self::park) or [`cancel`](Self::cancel).
    #[inline]
    pub(crate) fn prepare(&self) -> Key {
        // The key is read before the announcement: a notifier that counts
        // this sleeper (its read-modify-write reads the increment) bumps the
        // epoch after the key was read, so the wait below cannot sleep
        // through the bump that counted it (see "One wake in flight").
        let key = Key(self.epoch.load(Ordering::SeqCst));
        self.state.fetch_add(SLEEPER, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        key
    }

    /// Leaves the sleeper state. A leaving thread absorbs one wake-up in
    /// flight, if any: it may be the one that wake was for, and if it was
    /// not, the sleeper it was for still counts, so the next notification
    /// sees a sleeper without a wake-up and sends one.
    fn leave(&self) {
        let mut w = self.state.load(Ordering::Relaxed);
        loop {
            let s = sleepers(w).saturating_sub(1);
            let p = pending(w).saturating_sub(1).min(s);
            match self.state.compare_exchange_weak(
                w,
                (p << 32) | s,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(x) => w = x,
            }
        }
    }

    /// Withdraws an announced sleep.
    #[inline]
    pub(crate) fn cancel(&self) {
        self.leave();
    }

    /// Sleeps until notified after `key` was read (or spuriously).
    pub(crate) fn park(&self, key: Key) {
        self.epoch.wait(key.0);
        self.leave();
    }

    /// As [`park`](Self::park), but returns by `deadline` at the latest.
    pub(crate) fn park_until(&self, key: Key, deadline: std::time::Instant) {
        self.epoch.wait_until(key.0, deadline);
        self.leave();
    }

    /// Wakes one sleeper, unless every sleeper already has a wake-up in
    /// flight. The caller has made its condition true and then issued a
    /// SeqCst fence (see the module docs). Returns whether a wake was sent.
    #[inline]
    pub(crate) fn notify_one_fenced(&self) -> bool {
        let mut w = self.state.load(Ordering::SeqCst);
        loop {
            if sleepers(w) == 0 || pending(w) >= sleepers(w) {
                return false;
            }
            match self.state.compare_exchange_weak(
                w,
                w + PENDING,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break,
                Err(x) => w = x,
            }
        }
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.epoch.wake_one();
        true
    }

    /// Whether some sleeper has no wake-up coming, as a plain load sees it
    /// (no ordering: for wake-ups that only speed things up, never for one
    /// a protocol relies on).
    #[inline]
    pub(crate) fn may_need_wake(&self) -> bool {
        let w = self.state.load(Ordering::Relaxed);
        sleepers(w) > pending(w)
    }

    /// Whether no thread is between `prepare` and the end of its wait
    /// (for an elastic pool's growth signal: nobody parked to wake).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        sleepers(self.state.load(Ordering::SeqCst)) == 0
    }

    /// Wakes every sleeper, if any announced itself. Returns whether a
    /// wake was sent.
    pub(crate) fn notify_all(&self) -> bool {
        fence(Ordering::SeqCst);
        if sleepers(self.state.load(Ordering::SeqCst)) == 0 {
            return false;
        }
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.epoch.wake_all();
        true
    }
}

impl Default for EventCount {
    fn default() -> Self {
        EventCount::new()
    }
}
