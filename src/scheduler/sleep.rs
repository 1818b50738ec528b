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
//! A sleeper does: `sleepers += 1` (SeqCst), a SeqCst fence, `key = epoch`,
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
//! notifier's load sees `sleepers >= 1` and bumps `epoch`; the sleeper then
//! either read `key` after the bump (its re-check, ordered after the bump,
//! sees the job) or before it, in which case its futex wait finds
//! `epoch != key` and returns at once, or is already asleep and is woken by
//! the futex wake that follows the bump. Spurious returns are harmless:
//! every caller loops back to searching.
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
//! # One wake in flight
//!
//! A woken worker may wait a while for a CPU before it runs again; until
//! then it still counts as a sleeper. So that submitters do not pay a futex
//! syscall per task meanwhile, `Shared::waking` marks a wake-up as in
//! flight, and `notify_one` sends no other until it is cleared. Every
//! thread leaving the sleeper state (woken, spurious, or cancelling its
//! sleep because it found work) clears it and then searches the queues (a
//! helper whose wait ended instead passes the wake on). By the same Dekker
//! argument as above, a submitter that saw the mark set pushed its job
//! before the clearing thread's fence, and so that thread's search finds it.
//!
//! The loom models `sleep_*` in `loom-tests/` check this handshake with one
//! and two workers and with Normal and High tasks.

use crossbeam_utils::CachePadded;

use crate::sync::{fence, AtomicU32, Futex, Ordering};

/// An event count: sleep until something changed since you last looked.
#[derive(Debug, Default)]
pub(crate) struct EventCount {
    epoch: CachePadded<Futex>,
    sleepers: CachePadded<AtomicU32>,
}

/// What a sleeper read in [`EventCount::prepare`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key(u32);

impl EventCount {
    pub(crate) fn new() -> Self {
        EventCount {
            epoch: CachePadded::new(Futex::new(0)),
            sleepers: CachePadded::new(AtomicU32::new(0)),
        }
    }

    /// Announces a sleep. The caller must re-check its condition after this
    /// and then call exactly one of [`park`](Self::park) or [`cancel`](Self::cancel).
    #[inline]
    pub(crate) fn prepare(&self) -> Key {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        Key(self.epoch.load(Ordering::SeqCst))
    }

    /// Withdraws an announced sleep.
    #[inline]
    pub(crate) fn cancel(&self) {
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Sleeps until notified after `key` was read (or spuriously).
    pub(crate) fn park(&self, key: Key) {
        self.epoch.wait(key.0);
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// As [`park`](Self::park), but returns by `deadline` at the latest.
    pub(crate) fn park_until(&self, key: Key, deadline: std::time::Instant) {
        self.epoch.wait_until(key.0, deadline);
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Did any thread announce a sleep? (SeqCst, for the handshake.)
    #[inline]
    pub(crate) fn has_sleepers(&self) -> bool {
        self.sleepers.load(Ordering::SeqCst) != 0
    }

    /// Bumps the epoch and wakes one sleeper. The caller checked
    /// [`has_sleepers`](Self::has_sleepers) after making its condition true
    /// and issuing a SeqCst fence (see the module docs).
    pub(crate) fn wake_one(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.epoch.wake_one();
    }

    /// Wakes every sleeper, if any announced itself. Returns whether a
    /// wake was sent.
    pub(crate) fn notify_all(&self) -> bool {
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) == 0 {
            return false;
        }
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.epoch.wake_all();
        true
    }
}
