//! [`CellArc`]: the reference-counted pointer to a submitted task's cell,
//! whose memory comes from [`recycle`](crate::recycle)d blocks.
//!
//! A submitted task's cell is shared by its handle, the queue entry that
//! will run it and, with a deadline, the timer (a weak reference). It was
//! a `std::sync::Arc`, one heap allocation per task; `Arc` cannot take
//! memory from anywhere but the global allocator on stable Rust. So this
//! is a small `Arc` of our own: the counts and a free function sit in
//! front of the cell (`Inner`), and a cell that fits in a
//! [`LARGE_BLOCK`](crate::recycle::LARGE_BLOCK) lives in one, taken from
//! and returned to the recycler's per-thread free lists. A steady stream
//! of `submit`s with small closures then allocates nothing.
//!
//! # Fallback
//!
//! A cell larger than a block (over [`MAX_INLINE`] bytes: a closure with
//! more than 144 bytes of captures for an output of 8 bytes, less
//! for a larger output type), or aligned
//! to more than [`ALIGN`](crate::recycle::ALIGN), gets its own allocation
//! from the global allocator, exactly as with `Arc`: one per task. Options
//! set on a [`Task`](crate::Task) (retry, delay, deadline, key, name,
//! callback, guard) live in a box beside the cell, as before: one more.
//!
//! # Counts
//!
//! As in `std::sync::Arc`: `strong` counts the [`CellArc`]s, `weak` the
//! [`CellWeak`]s plus one held by all the strong references together.
//! The last strong reference drops the cell in place and gives up that
//! weak one; the last weak reference frees the memory. Increments are
//! Relaxed (a new reference is made from an existing one); decrements are
//! Release, and the thread that takes a count to zero then loads it with
//! Acquire before it drops or frees: the load reads the end of the release
//! sequence every earlier decrement heads, so every use of the cell
//! through other references happens before. (`Arc` uses an Acquire fence
//! there; ThreadSanitizer, run in CI, does not model fences, and `Arc`
//! itself switches to this load under it.) `get_mut` locks the weak count (1 to
//! `u32::MAX`) while it reads the strong one, so no weak reference can be
//! made or upgraded in between, as `Arc::get_mut` does. A count past
//! [`MAX_REFS`] aborts the process, as `Arc` does past `isize::MAX`.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ops::Deref;
use std::ptr::NonNull;

use crate::recycle::{self, Class};
use crate::sync::refs::AtomicU32;
use crate::sync::Ordering;
use crate::task::Job;

/// Most references of either kind to one cell (a handle, a queue entry
/// and a timer entry or two are the usual ones).
const MAX_REFS: u32 = i32::MAX as u32;

/// The weak count while `get_mut` reads the strong one.
const LOCKED: u32 = u32::MAX;

/// Bytes in front of the cell: the two counts and the free function.
const PREFIX: usize = size_of::<Inner<()>>();

/// Cell bytes that fit in a block (240 on 64-bit targets).
pub(crate) const MAX_INLINE: usize = recycle::LARGE_BLOCK - PREFIX;

/// The counts, then the cell.
#[repr(C)]
pub(crate) struct Inner<C: ?Sized> {
    strong: AtomicU32,
    weak: AtomicU32,
    /// What depends on the cell's type: how to free it, how to widen a
    /// [`ThinJob`] back.
    ops: &'static Ops,
    cell: C,
}

/// The functions of one cell type.
struct Ops {
    /// Gives the memory back where it came from (a block, or the global
    /// allocator with this cell type's layout).
    free: unsafe fn(NonNull<u8>),
    /// Rebuilds a `CellArc<dyn Job>` from the cell's address. `None` only
    /// for the plain cells the unit tests make (`CellArc::new`): every
    /// cell of the library is a task's, made by [`CellArc::new_job`].
    widen: Option<Widen>,
}

/// See [`Ops::widen`].
type Widen = unsafe fn(NonNull<u8>) -> CellArc<dyn Job>;

/// The [`Ops`] of cell type `C`, as constants the references point to.
struct OpsOf<C>(PhantomData<C>);

#[cfg(test)]
impl<C> OpsOf<C> {
    const PLAIN: Ops = Ops {
        free: free::<C>,
        widen: None,
    };
}

impl<C: Job> OpsOf<C> {
    const JOB: Ops = Ops {
        free: free::<C>,
        widen: Some(widen::<C>),
    };
}

/// The strong reference `p` stands for, as the queues' `dyn Job`.
///
/// # Safety
/// `p` is the address of a live `Inner<C>` and carries one strong count.
unsafe fn widen<C: Job>(p: NonNull<u8>) -> CellArc<dyn Job> {
    let ptr: NonNull<Inner<dyn Job>> = p.cast::<Inner<C>>();
    CellArc {
        ptr,
        _owns: PhantomData,
    }
}

/// Does an `Inner<C>` fit in a large block?
const fn fits<C>() -> bool {
    size_of::<Inner<C>>() <= PREFIX + MAX_INLINE && align_of::<Inner<C>>() <= recycle::ALIGN
}

/// Frees the memory of an `Inner<C>`.
///
/// # Safety
/// `p` came from `CellArc::with_ops` for this `C`, its cell was dropped, and
/// no reference to it is left.
unsafe fn free<C>(p: NonNull<u8>) {
    if fits::<C>() {
        // SAFETY: `with_ops` took this block from the large class (`fits`), and
        // the caller gives it up once.
        unsafe { recycle::give_of(Class::Large, p) };
    } else {
        // SAFETY: `with_ops` allocated it with this layout.
        unsafe { dealloc(p.as_ptr(), Layout::new::<Inner<C>>()) };
    }
}

/// A strong reference to a task cell: `Arc`'s role, recycled memory.
pub(crate) struct CellArc<C: ?Sized> {
    ptr: NonNull<Inner<C>>,
    _owns: PhantomData<Inner<C>>,
}

/// A weak reference to a task cell: keeps its memory, not the cell, alive.
pub(crate) struct CellWeak<C: ?Sized> {
    ptr: NonNull<Inner<C>>,
}

// SAFETY: as for `Arc<C>`: the cell is shared between the threads holding
// references, so it must be `Send + Sync` for the references to move or be
// shared; the counts are atomics.
unsafe impl<C: ?Sized + Send + Sync> Send for CellArc<C> {}
// SAFETY: as above.
unsafe impl<C: ?Sized + Send + Sync> Sync for CellArc<C> {}
// SAFETY: as above; a weak reference only touches the counts, and a strong
// one made from it needs `Send + Sync` as well.
unsafe impl<C: ?Sized + Send + Sync> Send for CellWeak<C> {}
// SAFETY: as above.
unsafe impl<C: ?Sized + Send + Sync> Sync for CellWeak<C> {}

// A reference moves freely whatever the cell is (as `Arc<C>` does): the
// cell never moves.
impl<C: ?Sized> Unpin for CellArc<C> {}

impl<C> CellArc<C> {
    /// Moves `cell` into a recycled block (or its own allocation when it
    /// does not fit; see the module docs). A cell that is no task, for the
    /// tests of the counts.
    #[cfg(test)]
    pub(crate) fn new(cell: C) -> CellArc<C> {
        Self::with_ops(cell, &OpsOf::<C>::PLAIN)
    }

    /// Moves `cell` into a recycled block (or its own allocation when it
    /// does not fit; see the module docs), with its type's `ops`.
    #[inline]
    fn with_ops(cell: C, ops: &'static Ops) -> CellArc<C> {
        let p = if fits::<C>() {
            recycle::take_of(Class::Large)
        } else {
            let layout = Layout::new::<Inner<C>>();
            // SAFETY: `Inner` has a non-zero size (two counts).
            let p = unsafe { alloc(layout) };
            NonNull::new(p).unwrap_or_else(|| handle_alloc_error(layout))
        };
        let ptr = p.cast::<Inner<C>>();
        // SAFETY: `p` is uninitialised memory of our own, large and aligned
        // enough for an `Inner<C>`: a block holds one when `fits`, and the
        // other branch allocated exactly its layout.
        unsafe {
            ptr.as_ptr().write(Inner {
                strong: AtomicU32::new(1),
                weak: AtomicU32::new(1),
                ops,
                cell,
            })
        };
        CellArc {
            ptr,
            _owns: PhantomData,
        }
    }
}

impl<C: Job> CellArc<C> {
    /// Moves a task's cell into a recycled block (or its own allocation;
    /// see the module docs). Its queue entries can then be [`ThinJob`]s.
    #[inline]
    pub(crate) fn new_job(cell: C) -> CellArc<C> {
        Self::with_ops(cell, &OpsOf::<C>::JOB)
    }
}

impl<C: ?Sized> CellArc<C> {
    #[inline]
    fn inner(&self) -> &Inner<C> {
        // SAFETY: a strong reference keeps the cell alive and initialised.
        unsafe { self.ptr.as_ref() }
    }

    /// The same reference to a wider type (`dyn Trait` of the cell).
    ///
    /// # Safety
    /// `f` returns its argument, unsized by a coercion; nothing else.
    #[inline]
    pub(crate) unsafe fn coerce<U: ?Sized>(
        self,
        f: impl FnOnce(*mut Inner<C>) -> *mut Inner<U>,
    ) -> CellArc<U> {
        let p = f(self.ptr.as_ptr());
        std::mem::forget(self);
        CellArc {
            // SAFETY: the caller returns the (non-null) pointer it was given.
            ptr: unsafe { NonNull::new_unchecked(p) },
            _owns: PhantomData,
        }
    }

    /// The cell, mutably, when this is its only reference of either kind.
    pub(crate) fn get_mut(&mut self) -> Option<&mut C> {
        let inner = self.inner();
        // Lock the weak count: no weak reference is made meanwhile (only
        // `downgrade` makes one, and it waits for the lock).
        if inner
            .weak
            .compare_exchange(1, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        let unique = inner.strong.load(Ordering::Acquire) == 1;
        inner.weak.store(1, Ordering::Release);
        // SAFETY: ours is the only reference (strong 1, no weak), and
        // `&mut self` keeps it from being cloned while the borrow lasts.
        unique.then(|| unsafe { &mut (*self.ptr.as_ptr()).cell })
    }

    /// A weak reference to the same cell.
    pub(crate) fn downgrade(&self) -> CellWeak<C> {
        let weak = &self.inner().weak;
        let mut n = weak.load(Ordering::Relaxed);
        loop {
            if n == LOCKED {
                // `get_mut` runs on another reference: it is brief.
                std::hint::spin_loop();
                n = weak.load(Ordering::Relaxed);
                continue;
            }
            if n > MAX_REFS {
                std::process::abort();
            }
            match weak.compare_exchange_weak(n, n + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return CellWeak { ptr: self.ptr },
                Err(x) => n = x,
            }
        }
    }

    /// The last strong reference went: drop the cell, give up the weak
    /// count the strong ones held.
    #[inline(never)]
    fn drop_slow(&mut self) {
        // SAFETY: the strong count reached zero with the Acquire load
        // behind us: no other strong reference exists or can be made
        // (`upgrade` does not revive a zero count), so the cell is ours
        // to drop, once.
        unsafe { std::ptr::drop_in_place(&mut (*self.ptr.as_ptr()).cell) };
        drop(CellWeak { ptr: self.ptr });
    }
}

impl<C: ?Sized> Deref for CellArc<C> {
    type Target = C;

    #[inline]
    fn deref(&self) -> &C {
        &self.inner().cell
    }
}

impl<C: ?Sized> Clone for CellArc<C> {
    #[inline]
    fn clone(&self) -> Self {
        if self.inner().strong.fetch_add(1, Ordering::Relaxed) > MAX_REFS {
            std::process::abort();
        }
        CellArc {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<C: ?Sized> Drop for CellArc<C> {
    #[inline]
    fn drop(&mut self) {
        let strong = &self.inner().strong;
        if strong.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Acquire every other reference's uses (module docs).
        strong.load(Ordering::Acquire);
        self.drop_slow();
    }
}

impl<C: ?Sized> CellWeak<C> {
    /// The counts; the cell itself may be dropped already.
    #[inline]
    fn counts(&self) -> (&AtomicU32, &AtomicU32) {
        let p = self.ptr.as_ptr();
        // SAFETY: a weak reference keeps the memory, so the counts, alive;
        // the references are to the count fields only, never to the cell.
        unsafe { (&(*p).strong, &(*p).weak) }
    }

    /// A strong reference, if the cell is still alive.
    pub(crate) fn upgrade(&self) -> Option<CellArc<C>> {
        let strong = self.counts().0;
        let mut n = strong.load(Ordering::Relaxed);
        loop {
            if n == 0 {
                return None;
            }
            if n > MAX_REFS {
                std::process::abort();
            }
            // Acquire: the cell's state as the other strong holders left it.
            match strong.compare_exchange_weak(n, n + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => {
                    return Some(CellArc {
                        ptr: self.ptr,
                        _owns: PhantomData,
                    })
                }
                Err(x) => n = x,
            }
        }
    }
}

impl<C: ?Sized> Drop for CellWeak<C> {
    fn drop(&mut self) {
        let weak = self.counts().1;
        if weak.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Acquire every other reference's uses (module docs).
        weak.load(Ordering::Acquire);
        let p = self.ptr.as_ptr();
        // SAFETY: the memory lives while a weak count is held, and `ops`
        // is a plain field written once by `with_ops`.
        let free = unsafe { (*p).ops.free };
        // SAFETY: the weak count reached zero (Acquire load above), so the
        // strong one did before and the cell was dropped; no reference to
        // the memory is left, and `free` is the function `with_ops` was given for
        // this cell's type.
        unsafe { free(self.ptr.cast()) };
    }
}

/// A `CellArc<dyn Job>` as one pointer: what the queues carry for a
/// submitted task. A fat `dyn` reference made every queue entry three
/// words; with one word the entries are two (the kind and the pointer),
/// which the deques move in registers (fib(30) through `join` took 1.5x
/// rayon with three-word entries, about 1.05x with two, on the 2-core
/// machine). The cell's [`Ops`] widen it back.
pub(crate) struct ThinJob(NonNull<u8>);

// SAFETY: a `ThinJob` is a `CellArc<dyn Job>` (which is `Send`, `Job` being
// `Send + Sync`) in another form.
unsafe impl Send for ThinJob {}

impl CellArc<dyn Job> {
    /// This reference as one pointer. The cell comes from
    /// [`CellArc::new_job`], as every task cell does (else widening it
    /// back aborts).
    #[inline]
    pub(crate) fn into_thin(self) -> ThinJob {
        debug_assert!(self.inner().ops.widen.is_some());
        let p = self.ptr.cast::<u8>();
        std::mem::forget(self);
        ThinJob(p)
    }
}

impl ThinJob {
    /// The reference this stands for.
    #[inline]
    pub(crate) fn widen(self) -> CellArc<dyn Job> {
        let p = self.0;
        std::mem::forget(self);
        // SAFETY: `p` is the address of a live cell (we hold a strong
        // count) whose prefix, laid out alike for every cell type (repr C),
        // starts with the counts and `ops`.
        let ops = unsafe { (*p.cast::<Inner<()>>().as_ptr()).ops };
        match ops.widen {
            // SAFETY: `ops` is this cell's own, so `widen` is for its type,
            // and the strong count we held moves into the result.
            Some(widen) => unsafe { widen(p) },
            None => std::process::abort(),
        }
    }
}

impl Drop for ThinJob {
    fn drop(&mut self) {
        drop(ThinJob(self.0).widen());
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    /// Counts its drops.
    struct Probe(Arc<AtomicUsize>);

    impl Drop for Probe {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    trait Named: Send + Sync {
        fn name(&self) -> usize;
    }

    impl Named for Probe {
        fn name(&self) -> usize {
            7
        }
    }

    #[test]
    fn the_last_strong_reference_drops_the_cell_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let a = CellArc::new(Probe(drops.clone()));
        let b = a.clone();
        let w = a.downgrade();
        drop(a);
        assert_eq!(drops.load(Ordering::Relaxed), 0);
        assert!(w.upgrade().is_some());
        drop(b);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        assert!(w.upgrade().is_none());
        drop(w);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn get_mut_needs_the_only_reference_of_either_kind() {
        let mut a = CellArc::new(5u64);
        *a.get_mut().unwrap() += 1;
        let b = a.clone();
        assert!(a.get_mut().is_none());
        drop(b);
        let w = a.downgrade();
        assert!(a.get_mut().is_none());
        drop(w);
        assert_eq!(a.get_mut().copied(), Some(6));
    }

    #[test]
    fn a_coerced_reference_reaches_the_same_cell_and_frees_it() {
        let drops = Arc::new(AtomicUsize::new(0));
        let a = CellArc::new(Probe(drops.clone()));
        // SAFETY: the closure only unsizes the pointer.
        let d: CellArc<dyn Named> = unsafe { a.coerce(|p| p as *mut Inner<dyn Named>) };
        let w = d.downgrade();
        assert_eq!(d.name(), 7);
        drop(d);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        assert!(w.upgrade().is_none());
    }

    #[test]
    fn a_submitted_task_with_64_bytes_of_captures_fits_in_a_block() {
        use crate::task::{Once, TaskCell};
        let captures = [7u64; 8];
        let f = move || captures.iter().sum::<u64>();
        fn size_of_cell<F: FnOnce() -> u64 + Send + 'static>(_: &F) -> usize {
            size_of::<TaskCell<u64, Once<F>>>()
        }
        assert_eq!(size_of_val(&f), 64);
        let size = size_of_cell(&f);
        assert!(size <= MAX_INLINE, "{size} > {MAX_INLINE}");
        let cell = TaskCell::new(Once(Some(f))).into_cell();
        assert!(recycle::LARGE_BLOCK >= PREFIX + size);
        drop(cell);
    }

    #[test]
    fn small_cells_reuse_blocks_and_large_ones_get_their_own() {
        let a = CellArc::new([1u8; 64]);
        let addr = a.ptr.cast::<u8>();
        drop(a);
        let b = CellArc::new([2u8; 64]);
        assert_eq!(b.ptr.cast::<u8>(), addr, "a freed block is taken again");
        assert_eq!(*b, [2u8; 64]);
        let big = CellArc::new([3u8; 1000]);
        assert!(!fits::<[u8; 1000]>());
        assert_eq!(big.iter().map(|&x| x as usize).sum::<usize>(), 3000);
        let sent = std::thread::spawn(move || big.len()).join().unwrap();
        assert_eq!(sent, 1000);
    }

    #[test]
    fn references_dropped_on_several_threads_drop_the_cell_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let n = if cfg!(miri) { 2 } else { 8 };
        for _ in 0..if cfg!(miri) { 2 } else { 100 } {
            let a = CellArc::new(Probe(drops.clone()));
            let threads: Vec<_> = (0..n)
                .map(|i| {
                    let c = a.clone();
                    let w = a.downgrade();
                    std::thread::spawn(move || {
                        if i % 2 == 0 {
                            drop(w.upgrade());
                        }
                        drop(c);
                        drop(w);
                    })
                })
                .collect();
            drop(a);
            for t in threads {
                t.join().unwrap();
            }
        }
        let rounds = if cfg!(miri) { 2 } else { 100 };
        assert_eq!(drops.load(Ordering::Relaxed), rounds);
    }
}
