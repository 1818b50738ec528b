//! Latches: one-shot "done" flags that a worker can wait on while helping,
//! and a thread outside the pool can sleep on.
//!
//! A latch word has three bits: DONE, HELPER (a worker of the pool waits on
//! it while running other jobs, and parks in its slot of the pool's sleep
//! protocol when there are none) and WAITER (a thread outside the pool futex-waits on the
//! word itself). `set` swaps DONE in and learns from the old value whom to
//! wake; a latch nobody waits on costs one atomic RMW.
//!
//! Subtle: once DONE is in, the owner may return and free the latch. `set`
//! therefore touches the latch after the swap only to wake a WAITER, and a
//! WAITER only ever waits on latches kept alive by an `Arc` held by the
//! setter as well (scopes and cold joins). A `join` on a worker waits as a
//! HELPER, whose wake-up goes through the pool, not through the latch.

use crate::scheduler::Shared;
use crate::slot::{self, wait_done};
use crate::sync::{AtomicUsize, Futex, Ordering};
use crate::task::Header;

const DONE: u32 = 1;
const HELPER: u32 = 2;
const WAITER: u32 = 4;

/// Something a worker can wait on while helping.
pub(crate) trait Probe {
    /// True once the awaited event happened (Acquire).
    fn is_done(&self) -> bool;
    /// Announces a helper that is about to park in its sleep slot.
    /// False if the event already happened.
    fn announce_helper(&self) -> bool;
}

#[derive(Debug, Default)]
pub(crate) struct Latch {
    state: Futex,
}

impl Latch {
    pub(crate) fn new() -> Latch {
        Latch {
            state: Futex::new(0),
        }
    }

    /// Sets the latch and wakes whoever announced a wait. See the module's
    /// note on what may be touched afterwards.
    pub(crate) fn set(&self, shared: &Shared) {
        let old = self.state.fetch_or(DONE, Ordering::AcqRel);
        if old & WAITER != 0 {
            self.state.wake_all();
        }
        if old & HELPER != 0 {
            shared.notify_all();
        }
    }

    /// Sleeps until set. Only for latches the setter keeps alive (see above).
    pub(crate) fn wait_blocking(&self) {
        wait_done(&self.state, DONE, WAITER, None);
    }
}

impl Probe for Latch {
    #[inline]
    fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) & DONE != 0
    }

    fn announce_helper(&self) -> bool {
        self.state.fetch_or(HELPER, Ordering::AcqRel) & DONE == 0
    }
}

impl Probe for Header {
    #[inline]
    fn is_done(&self) -> bool {
        Header::is_done(self)
    }

    fn announce_helper(&self) -> bool {
        self.state.fetch_or(slot::HELPER, Ordering::AcqRel) & slot::DONE == 0
    }
}

/// A latch that opens when a count of pending jobs reaches zero.
#[derive(Debug)]
pub(crate) struct CountLatch {
    pending: AtomicUsize,
    pub(crate) latch: Latch,
}

impl CountLatch {
    pub(crate) fn new(initial: usize) -> CountLatch {
        CountLatch {
            pending: AtomicUsize::new(initial),
            latch: Latch::new(),
        }
    }

    pub(crate) fn add(&self, n: usize) {
        self.pending.fetch_add(n, Ordering::Relaxed);
    }

    /// One pending job is done; the last one sets the latch.
    pub(crate) fn done_one(&self, shared: &Shared) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.latch.set(shared);
        }
    }
}
