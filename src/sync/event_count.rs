//! An event count over a futex: sleep until something changed since you
//! last looked. The submitters blocked on a bounded pool's capacity wait on
//! one (`scheduler::lanes`); the workers' own idle protocol, which wakes a
//! chosen worker, is `scheduler::sleep`.
//!
//! # States and counters
//!
//! - `epoch`: a futex word. Sleepers sleep while it holds the value they
//!   read; every notification adds one.
//! - `state`: how many threads are between [`prepare`](EventCount::prepare)
//!   and the end of [`park`](EventCount::park) (or [`cancel`](EventCount::cancel)),
//!   in the low half, and wake-ups sent and not yet absorbed, in the high half.
//!
//! # Why no wake-up is lost
//!
//! A sleeper does: `key = epoch`, `sleepers += 1` (SeqCst), a SeqCst fence,
//! then **re-checks its condition**, and only then futex-waits while
//! `epoch == key`. A notifier first makes its condition true, then a SeqCst
//! fence, then loads the state. The two fences are ordered in the single
//! SeqCst order. If the notifier's comes first, the sleeper's re-check sees
//! the condition and it does not sleep. If the sleeper's comes first, the
//! notifier sees `sleepers >= 1` and bumps `epoch`. The sleeper read `key`
//! before it announced itself, so before that bump: its futex wait finds
//! `epoch != key` and returns at once, or it is already asleep and is woken
//! by the futex wake that follows the bump. Spurious returns are harmless:
//! every caller loops back to its condition.
//!
//! # One wake in flight per sleeper
//!
//! `notify_one_fenced` sends no wake-up while every sleeper has one coming.
//! Sleepers and wake-ups live in one word, changed only by read-modify-
//! writes, so no decision is taken on a stale count. A thread leaving the
//! sleeper state (woken, spurious, or cancelling) absorbs one wake-up in
//! flight. Every wake-up counted in flight is absorbed: the sleepers it
//! counted read their keys before the bump, so each either returns from its
//! wait or is asleep in it, and the wake that follows the bump ends one
//! wait. (Reading the key *after* announcing broke this: a sleeper could
//! read the bumped epoch, sleep through its own wake-up and leave it
//! counted, so later notifications sent none. The loom model
//! `sleep_one_worker_a_raced_wake_does_not_swallow_the_next` found that lost
//! wake-up when this was the workers' protocol.)

use crossbeam_utils::CachePadded;

use super::{fence, AtomicU64, Futex, Ordering};

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
