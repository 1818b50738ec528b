//! The global FIFO queues of the three lanes: a bounded ring, and a locked
//! overflow for the jobs that do not fit.
//!
//! # Why not crossbeam's `Injector`
//!
//! It is an unbounded list of 63-slot blocks. A push is a CAS on the tail
//! and a `fetch_or` on the slot; a take is a CAS on the head and another
//! `fetch_or` (and, near empty, a fence and a read of the tail's line); and
//! every 63rd push mallocs a 1.5 KiB block that a worker later frees. In the
//! spawn_many_remote_idle profile the one outside submitter spent 13% of all
//! samples in that push, most of it on the instruction after the tail CAS,
//! and the workers queued on glibc's arena lock freeing the blocks.
//!
//! # The ring
//!
//! Dmitry Vyukov's bounded MPMC queue. Positions count up forever; the
//! slot of position `pos` is `pos % capacity`, on lap `pos / capacity`.
//! Each slot carries a stamp: `lap * capacity` while it is free for the
//! push of its lap, one more once that push has written it, and
//! `(lap + 1) * capacity` once the take has read it (free for the next
//! lap). A push reserves its position with one CAS on `tail`, writes the
//! job and publishes it with a Release store of the stamp; a take reserves
//! with one CAS on `head`, reads, and frees the slot likewise. Producers
//! touch `tail` and consumers `head` only; the slot line is the one that
//! has to travel anyway.
//!
//! (Vyukov's sequence word is this stamp plus the slot's index. Without the
//! index, a free ring is all zeros: it is allocated zeroed, so its pages are
//! only touched, and resident, once a backlog reaches them. A pool that
//! never queues more than a few hundred jobs pays for a few pages, not for
//! the Normal lane's 4 MiB of slots, `scheduler::lanes::NORMAL_RING`.)
//!
//! The ring is allocated once, with the pool: no allocation per job.
//!
//! A push that has reserved but not yet published blocks the takes behind
//! it (they report the queue empty), as a crossbeam block slot does while
//! its writer is preempted; [`is_empty`](Injector::is_empty) still says
//! "not empty", so a worker keeps searching instead of parking.
//!
//! # The overflow, and FIFO order
//!
//! A push that finds the ring full, or finds `overflowing` set, appends to
//! `overflow` under its lock and sets `overflowing`. So once a job went to
//! the overflow, every later push follows it there until a taker has
//! drained it: a job in the ring is never younger than one in the overflow
//! that a push ordered before it. A taker looks at the ring first (older),
//! and when it is empty and `overflowing` is set it takes the overflow's
//! oldest job and moves up to [`REFILL`] more into the ring, all under the
//! lock (later pushes wait for it, so they land behind), clearing
//! `overflowing` only when the overflow is empty. The lanes module's FIFO
//! promise for outside submissions therefore holds across the overflow.
//!
//! # Emptiness and sleep
//!
//! A worker parks only after it announced itself and then, behind a SeqCst
//! fence, failed to take a job; a submitter pushes and then, behind a
//! SeqCst fence, looks for sleepers (the sleep module). Every store of the
//! push (the tail CAS, the slot, the published stamp, or `overflowing` and
//! the overflow) precedes the submitter's fence, and the worker's take
//! reads the stamp (or `overflowing`) after its own, so one of the two
//! sees the other. A take that finds a slot reserved but not yet
//! published may let its worker park: that push has not reached its fence
//! yet, and will find the sleeper after it.
//!
//! The fence after the push is needed even though the tail CAS is a
//! SeqCst read-modify-write: the worker's take reads the stamp, which the
//! push stores after the CAS with a plain Release store, and a store may
//! pass a later load (x86's store buffer) without a fence between.
//!
//! The loom models of the scheduler run on a mutex twin of this queue (see
//! `sync::deque`); this one has models of its own, and Miri runs the whole
//! scheduler on it.

#[cfg(not(loom))]
use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::collections::VecDeque;
use std::mem::MaybeUninit;
#[cfg(not(loom))]
use std::mem::{align_of, size_of};
#[cfg(not(loom))]
use std::ptr::NonNull;

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicBool, AtomicUsize, Lock, Ordering, UnsafeCell};

/// Jobs moved from the overflow into the ring per lock taken by a taker.
const REFILL: usize = 256;

/// One slot per cache line: with 24-byte slots, two workers taking
/// neighbouring jobs and the submitter writing the next one shared a line.
/// Measured 2026-12-03, `runq-bench --only spawn_many_remote_idle,remote_spawn
/// --engines crossbeam --repeat 15`, the builds alternated twice, runq's
/// ratio to crossbeam, 24-byte then 64-byte slots: spawn_many_remote_idle
/// 1.48, 1.31 then 1.07, 1.20; remote_spawn/2 0.76, 0.80 then 0.66, 0.68;
/// remote_spawn/4 1.10, 1.05 then 0.95, 1.02. Two more alternated runs
/// (with `--only` adding latency_under_load) were within the noise
/// (spawn_many_remote_idle 1.28, 1.29 then 1.29, 1.45; remote_spawn/4
/// 1.12, 1.23 then 1.22, 1.27): a help at best, never a clear loss.
#[repr(align(64))]
struct Slot<T> {
    /// The lap stamp (module docs).
    stamp: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// A multi-producer, multi-consumer FIFO queue (see the module docs).
pub(crate) struct Injector<T> {
    head: CachePadded<AtomicUsize>,
    tail: CachePadded<AtomicUsize>,
    slots: Slots<T>,
    /// The slot count minus one; the count is a power of two.
    mask: usize,
    /// Set while `overflow` may hold jobs; changed under its lock.
    overflowing: CachePadded<AtomicBool>,
    overflow: Lock<VecDeque<T>>,
}

// SAFETY: the queue moves `T`s between threads (needs `T: Send`); a slot's
// value is accessed only by the one push or take that reserved its
// position, ordered by its stamp (module docs).
unsafe impl<T: Send> Send for Injector<T> {}
// SAFETY: as above; every shared access goes through atomics or the lock.
unsafe impl<T: Send> Sync for Injector<T> {}

impl<T> Injector<T> {
    /// A queue whose ring holds `capacity` jobs (rounded up to a power of
    /// two, at least 2) before it overflows.
    pub(crate) fn with_capacity(capacity: usize) -> Injector<T> {
        let capacity = capacity.max(2).next_power_of_two();
        Injector {
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
            slots: Slots::zeroed(capacity),
            mask: capacity - 1,
            overflowing: CachePadded::new(AtomicBool::new(false)),
            overflow: Lock::new(VecDeque::new()),
        }
    }

    /// Appends `value`.
    #[inline]
    pub(crate) fn push(&self, value: T) {
        if self.overflowing.load(Ordering::Acquire) {
            return self.push_overflow(value);
        }
        if let Err(value) = self.push_ring(value) {
            self.push_overflow(value);
        }
    }

    /// Pushes into the ring, or hands `value` back if the ring is full.
    #[inline]
    fn push_ring(&self, value: T) -> Result<(), T> {
        let Some((slot, lap)) = self.reserve(&self.tail, 0) else {
            return Err(value);
        };
        // SAFETY: `reserve` gave us position `tail`, whose slot is free (its
        // last reader released it with the store `reserve` acquired); no one
        // else touches it until we publish.
        slot.value.with_mut(|p| unsafe { (*p).write(value) });
        slot.stamp.store(lap + 1, Ordering::Release);
        Ok(())
    }

    /// Reserves the next position of `cursor` (`tail` for a push, `head`
    /// for a take) with one CAS, once its slot carries the stamp `lap +
    /// ready`: `ready` is 0 for a push (free on this lap), 1 for a take
    /// (published on this lap). Returns the slot and its lap, or `None`
    /// when the slot still waits for the other side: the ring is full (a
    /// push) or empty for now (a take).
    #[inline(always)]
    fn reserve(&self, cursor: &AtomicUsize, ready: usize) -> Option<(&Slot<T>, usize)> {
        let mut pos = cursor.load(Ordering::Relaxed);
        loop {
            let slot = self.slots.get(pos & self.mask);
            let lap = pos & !self.mask;
            let want = lap + ready;
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == want {
                match cursor.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Some((slot, lap)),
                    Err(now) => pos = now,
                }
            } else if (stamp.wrapping_sub(want) as isize) < 0 {
                // The other side has not reached this slot on this lap.
                return None;
            } else {
                // Another push (or take) got `pos`; catch up.
                pos = cursor.load(Ordering::Relaxed);
            }
        }
    }

    #[cold]
    fn push_overflow(&self, value: T) {
        let mut overflow = self.overflow.lock();
        overflow.push_back(value);
        self.overflowing.store(true, Ordering::SeqCst);
    }

    /// Takes the oldest job, or `None` if the queue looks empty (see the
    /// module docs for a push caught between reserving and publishing).
    #[inline]
    pub(crate) fn pop(&self) -> Option<T> {
        if let Some(value) = self.pop_ring() {
            return Some(value);
        }
        if self.overflowing.load(Ordering::Acquire) {
            return self.pop_overflow();
        }
        None
    }

    #[inline]
    fn pop_ring(&self) -> Option<T> {
        let (slot, lap) = self.reserve(&self.head, 1)?;
        // SAFETY: `reserve` gave us position `head`, which its push published
        // (`reserve` acquired that store); we read it once and free the slot.
        let value = slot.value.with(|p| unsafe { (*p).assume_init_read() });
        slot.stamp
            .store(lap.wrapping_add(self.mask + 1), Ordering::Release);
        Some(value)
    }

    /// Takes the overflow's oldest job and refills the ring from it (module
    /// docs).
    #[cold]
    fn pop_overflow(&self) -> Option<T> {
        let mut overflow = self.overflow.lock();
        // A job pushed into the ring before the overflow began is older than
        // every job here; take it first.
        if let Some(value) = self.pop_ring() {
            return Some(value);
        }
        let first = overflow.pop_front();
        for _ in 0..REFILL {
            let Some(value) = overflow.pop_front() else {
                break;
            };
            if let Err(value) = self.push_ring(value) {
                overflow.push_front(value);
                break;
            }
        }
        if overflow.is_empty() {
            self.overflowing.store(false, Ordering::SeqCst);
        }
        first
    }

    /// Is the queue empty? Exact when nothing races it; a push reserved but
    /// not yet published already counts.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.tail.load(Ordering::SeqCst) == self.head.load(Ordering::SeqCst)
            && !self.overflowing.load(Ordering::SeqCst)
    }

    /// Jobs queued (a snapshot that may be off while pushes and takes run).
    /// For `metrics()` only: it takes the overflow's lock when the overflow
    /// is in use.
    // (Under loom the lanes take the twin; only the queue's own models run.)
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        let head = self.head.load(Ordering::SeqCst);
        let tail = self.tail.load(Ordering::SeqCst);
        let ring = tail.wrapping_sub(head).min(self.mask + 1);
        if self.overflowing.load(Ordering::SeqCst) {
            ring + self.overflow.lock().len()
        } else {
            ring
        }
    }
}

/// The ring's slots, all zeros (module docs), each on a cache line of its
/// own.
///
/// `alloc_zeroed` with the slots' own alignment (64) allocates and then
/// clears every byte, touching every page; with the allocator's plain
/// alignment it is `calloc`, which takes a large block zeroed from the
/// system and leaves its pages untouched. So the slots are carved out of a
/// plainly aligned zeroed block one line larger, from its first line
/// boundary.
#[cfg(not(loom))]
struct Slots<T> {
    block: NonNull<u8>,
    layout: Layout,
    first: NonNull<Slot<T>>,
    len: usize,
}

#[cfg(not(loom))]
impl<T> Slots<T> {
    fn zeroed(len: usize) -> Slots<T> {
        let line = align_of::<Slot<T>>();
        let size = size_of::<Slot<T>>()
            .checked_mul(len)
            .and_then(|s| s.checked_add(line))
            .expect("ring size");
        let layout = Layout::from_size_align(size, 16).expect("ring layout");
        // SAFETY: the layout is not zero-sized.
        let block = NonNull::new(unsafe { alloc_zeroed(layout) })
            .unwrap_or_else(|| handle_alloc_error(layout));
        let addr = block.as_ptr().addr();
        let skip = addr.next_multiple_of(line) - addr;
        // SAFETY: `skip < line`, so the `len` slots after it lie inside the
        // block (`size` has the extra line).
        let first = unsafe { block.add(skip) }.cast::<Slot<T>>();
        Slots {
            block,
            layout,
            first,
            len,
        }
    }

    #[inline]
    fn get(&self, i: usize) -> &Slot<T> {
        debug_assert!(i < self.len);
        // SAFETY: callers index with `pos & mask`, below `len`; the slot is
        // inside the block (see `zeroed`), aligned (`first` is on a line
        // boundary and a slot's size is a multiple of its alignment), and
        // initialised: all-zero bytes are a valid slot, an `AtomicUsize` of
        // 0 (the free stamp of lap 0) and a `MaybeUninit`, which any bytes
        // are. The block lives as long as `self`.
        unsafe { &*self.first.as_ptr().add(i) }
    }
}

#[cfg(not(loom))]
impl<T> Drop for Slots<T> {
    fn drop(&mut self) {
        // SAFETY: `block` was allocated in `zeroed` with this layout. A
        // slot owns nothing to drop (the injector takes its jobs out first).
        unsafe { dealloc(self.block.as_ptr(), self.layout) }
    }
}

/// The ring's slots under loom, whose atomics are not plain memory.
#[cfg(loom)]
struct Slots<T>(Box<[Slot<T>]>);

#[cfg(loom)]
impl<T> Slots<T> {
    fn zeroed(len: usize) -> Slots<T> {
        Slots(
            (0..len)
                .map(|_| Slot {
                    stamp: AtomicUsize::new(0),
                    value: UnsafeCell::new(MaybeUninit::uninit()),
                })
                .collect(),
        )
    }

    fn get(&self, i: usize) -> &Slot<T> {
        &self.0[i]
    }
}

impl<T> Drop for Injector<T> {
    fn drop(&mut self) {
        while self.pop_ring().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::Injector;

    #[test]
    fn fifo_through_wraps_and_the_overflow() {
        let q = Injector::with_capacity(4);
        let mut next = 0;
        let mut expect = 0;
        // Interleave bursts larger than the ring with partial drains.
        for burst in [3, 9, 1, 17, 4, 30] {
            for _ in 0..burst {
                q.push(next);
                next += 1;
            }
            assert_eq!(q.len(), next - expect);
            for _ in 0..burst / 2 + 1 {
                match q.pop() {
                    Some(v) => {
                        assert_eq!(v, expect, "taken out of order");
                        expect += 1;
                    }
                    None => assert_eq!(expect, next),
                }
            }
        }
        while let Some(v) = q.pop() {
            assert_eq!(v, expect);
            expect += 1;
        }
        assert_eq!(expect, next);
        assert!(q.is_empty());
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn drop_drops_every_queued_value_once() {
        use std::sync::Arc;
        let token = Arc::new(());
        {
            let q = Injector::with_capacity(2);
            for _ in 0..7 {
                q.push(token.clone());
            }
            drop(q.pop());
            assert_eq!(Arc::strong_count(&token), 7);
        }
        assert_eq!(Arc::strong_count(&token), 1);
    }

    #[test]
    fn every_value_is_taken_once_across_threads() {
        use std::sync::atomic::{
            AtomicU8, AtomicUsize,
            Ordering::{Relaxed, SeqCst},
        };
        let q = Injector::with_capacity(8);
        let per = if cfg!(miri) { 50 } else { 20_000 };
        let taken: Vec<AtomicU8> = (0..2 * per).map(|_| AtomicU8::new(0)).collect();
        let pushed = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for p in 0..2 {
                let (q, pushed) = (&q, &pushed);
                s.spawn(move || {
                    for i in 0..per {
                        q.push(p * per + i);
                        pushed.fetch_add(1, SeqCst);
                    }
                });
            }
            for _ in 0..2 {
                let (q, pushed, taken) = (&q, &pushed, &taken);
                s.spawn(move || {
                    // Each producer's values come out in its order.
                    let mut last = [None::<usize>; 2];
                    loop {
                        let done = pushed.load(SeqCst) == 2 * per;
                        match q.pop() {
                            Some(v) => {
                                taken[v].fetch_add(1, Relaxed);
                                let p = v / per;
                                assert!(last[p] < Some(v), "a producer's values reordered");
                                last[p] = Some(v);
                            }
                            None if done && q.is_empty() => break,
                            None => std::thread::yield_now(),
                        }
                    }
                });
            }
        });
        for (v, t) in taken.iter().enumerate() {
            assert_eq!(t.load(Relaxed), 1, "value {v}");
        }
    }
}
