//! Recycled memory for task cells: fixed-size blocks kept on per-thread
//! free lists, so that a steady stream of tasks allocates nothing.
//!
//! # Design
//!
//! Blocks come in two sizes ([`Class`]): [`BLOCK`] bytes for the cells of
//! fire-and-forget tasks (`spawned`), [`LARGE_BLOCK`] bytes for the cells
//! of submitted tasks (`cell`), which also carry a state word, a result
//! slot and reference counts. Each size has its own free lists and global
//! stack, described here for one. Every block is aligned to [`ALIGN`].
//!
//! A thread keeps the addresses of its free blocks in a stack in a
//! thread-local ([`Local`]), so taking and returning a block costs no
//! atomic operation and touches no block. A block is usually freed on
//! another thread than the one that took it (an outside submitter
//! allocates, a worker frees), so the threads are balanced through one
//! global stack of *batches* of [`BATCH`] blocks behind a mutex: a thread
//! whose stack is full ([`LOCAL_MAX`]) hands its oldest batch to it, and a
//! thread whose stack is empty takes a batch from it. The mutex is taken
//! once per [`BATCH`] blocks.
//!
//! Memory kept is bounded: per size, [`LOCAL_MAX`] blocks (16 KiB and
//! 32 KiB) per thread and [`GLOBAL_MAX`] batches (2 MiB and 4 MiB) in the
//! global stack; beyond that, blocks go back to the system allocator. A
//! thread's blocks are handed to the global stack (or freed) when the
//! thread exits.
//!
//! Under loom every block comes from and goes back to the system allocator
//! (loom replays executions, and a block kept across them would carry
//! state from one to the next). Miri runs the recycling code itself.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::Cell;
use std::ptr::{self, NonNull};

use crate::sync::Mutex;

/// Bytes in one block. A cell is two words of header and the closure, so a
/// closure of up to [`MAX_INLINE`] bytes fits; 128 bytes is two cache lines
/// and covers the closures runq-bench's workloads and the tests spawn (an
/// `Arc` or two and a few integers).
pub(crate) const BLOCK: usize = 128;

/// Bytes in one block of the large class: a submitted task's cell holds
/// reference counts, a header, an options pointer and a result slot before
/// its closure (104 bytes in all for an output of 8 bytes on x86-64, see
/// `cell::MAX_INLINE`), so 256 bytes (four cache lines) hold a closure
/// with 64 bytes of captures and room to spare.
pub(crate) const LARGE_BLOCK: usize = 256;

/// The two block sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// [`BLOCK`] bytes: fire-and-forget cells.
    Small = 0,
    /// [`LARGE_BLOCK`] bytes: submitted task cells.
    Large = 1,
}

impl Class {
    /// Bytes in a block of this class.
    pub(crate) const fn size(self) -> usize {
        match self {
            Class::Small => BLOCK,
            Class::Large => LARGE_BLOCK,
        }
    }

    fn layout(self) -> Layout {
        // The sizes and ALIGN are constants that form valid layouts.
        Layout::from_size_align(self.size(), ALIGN).expect("block layout")
    }
}

/// Alignment of every block: a cache line. Enough for any closure made of
/// pointers, integers and `u128`s, and no block shares a line with another:
/// a free block's link is not invalidated by a worker writing the cell
/// next to it (with 16-byte alignment, the submitter's read of that link
/// missed the cache on most takes in spawn_many_remote_idle).
pub(crate) const ALIGN: usize = 64;

/// Blocks a thread keeps before it hands a batch to the global stack.
/// Twice a batch, so a thread that alternates between freeing and
/// allocating around the threshold does not move a batch each time.
const LOCAL_MAX: usize = 2 * BATCH;

/// Blocks moved to or from the global stack at once: the mutex is taken
/// once per this many blocks (64 keeps its cost under 1 ns per task in
/// runq-bench's remote_spawn, where every block crosses threads).
const BATCH: usize = 64;

/// Batches the global stack of each class keeps (2 MiB of small blocks,
/// 4 MiB of large ones); more go back to the
/// system allocator. Enough for a burst of 16,384 tasks in flight from
/// outside submitters: runq-bench's alloc_per_task queues 10,000 in one
/// burst, and with 64 batches (4,096 blocks) a third of its tasks still
/// allocated on the shared 2-core machine, where the submitter runs far
/// ahead of the workers.
const GLOBAL_MAX: usize = 256;

/// Free blocks of one class moved to or from the global stack at once:
/// `len` of them, the first `len` entries of `blocks`.
struct Batch {
    blocks: [*mut u8; BATCH],
    len: usize,
    class: Class,
}

// SAFETY: a `Batch` owns the blocks it lists (nobody else holds a pointer
// to a free block), and blocks are plain memory with no thread affinity.
unsafe impl Send for Batch {}

impl Batch {
    /// Frees every block to the system allocator.
    fn release(self) {
        for &block in &self.blocks[..self.len] {
            // SAFETY: every block of a batch came from `alloc` with its
            // class's layout, and the batch owned it.
            unsafe { dealloc(block, self.class.layout()) };
        }
    }
}

/// The global stacks of batches, one per class.
static GLOBAL: [Mutex<Vec<Batch>>; 2] = [const { Mutex::new(Vec::new()) }; 2];

/// This thread's free blocks of one class: a stack of addresses, the
/// first `len` entries of `blocks`.
///
/// Kept as an array of addresses, not as a list linked through the blocks:
/// taking a block then reads only this thread's own memory. With a linked
/// list, every take read the link inside the block, and the block was
/// usually last written on another core (a worker frees what an outside
/// submitter took), so that read missed the cache on most takes in
/// spawn_many_remote_idle (11% of all samples, 5% with a prefetch of the
/// next link); the array lets the next block be prefetched without that
/// dependent read.
struct Local {
    blocks: [Cell<*mut u8>; LOCAL_MAX],
    len: Cell<usize>,
}

/// This thread's free blocks, one stack per class.
struct Locals([Local; 2]);

impl Drop for Locals {
    fn drop(&mut self) {
        for (local, class) in self.0.iter().zip([Class::Small, Class::Large]) {
            let mut len = local.len.replace(0);
            while len > 0 {
                let n = len.min(BATCH);
                len -= n;
                give_back(local.batch(len, n, class));
            }
        }
    }
}

impl Local {
    /// The `n` entries from `from` on, as a batch.
    fn batch(&self, from: usize, n: usize, class: Class) -> Batch {
        let mut batch = Batch {
            blocks: [ptr::null_mut(); BATCH],
            len: n,
            class,
        };
        for (to, block) in batch.blocks.iter_mut().zip(&self.blocks[from..from + n]) {
            *to = block.get();
        }
        batch
    }
}

std::thread_local! {
    static LOCAL: Locals = const {
        Locals([const {
            Local {
                blocks: [const { Cell::new(ptr::null_mut()) }; LOCAL_MAX],
                len: Cell::new(0),
            }
        }; 2])
    };
}

/// Hands a batch to the global stack, or frees it when the stack is full.
fn give_back(batch: Batch) {
    if batch.len == 0 {
        return;
    }
    let mut global = GLOBAL[batch.class as usize].lock();
    if global.len() < GLOBAL_MAX {
        if global.capacity() == 0 {
            global.reserve_exact(GLOBAL_MAX);
        }
        global.push(batch);
    } else {
        drop(global);
        batch.release();
    }
}

fn system_alloc(class: Class) -> NonNull<u8> {
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { alloc(class.layout()) };
    NonNull::new(p).unwrap_or_else(|| handle_alloc_error(class.layout()))
}

/// A block of [`BLOCK`] bytes aligned to [`ALIGN`], uninitialised.
#[inline]
pub(crate) fn take() -> NonNull<u8> {
    take_of(Class::Small)
}

/// Returns a block of [`BLOCK`] bytes to this thread's free list.
///
/// # Safety
/// `block` came from [`take`], is no longer used, and is returned once.
#[inline]
pub(crate) unsafe fn give(block: NonNull<u8>) {
    // SAFETY: forwarded from the caller; `take` takes Small blocks.
    unsafe { give_of(Class::Small, block) }
}

/// A block of `class.size()` bytes aligned to [`ALIGN`], uninitialised.
#[inline]
pub(crate) fn take_of(class: Class) -> NonNull<u8> {
    if cfg!(loom) {
        return system_alloc(class);
    }
    LOCAL
        .try_with(|locals| {
            let local = &locals.0[class as usize];
            let mut len = local.len.get();
            if len == 0 {
                // Refill from the global stack, if it has a batch.
                let batch = GLOBAL[class as usize].lock().pop()?;
                for (block, &free) in local.blocks.iter().zip(&batch.blocks[..batch.len]) {
                    block.set(free);
                }
                len = batch.len;
            }
            len -= 1;
            local.len.set(len);
            // The next block to hand out was most likely freed on another
            // core: fetch its first line now, so that writing the next cell
            // does not wait on that transfer.
            if let Some(next) = len.checked_sub(1) {
                prefetch(local.blocks[next].get());
            }
            NonNull::new(local.blocks[len].get())
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| system_alloc(class))
}

/// Asks the CPU to bring the cache line at `p` into this core's cache. A
/// hint: it never faults, whatever `p` is (null included), and changes no
/// memory.
#[inline(always)]
fn prefetch(p: *mut u8) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: PREFETCHT0 (part of SSE, which every x86-64 CPU has) only
    // hints the cache; it reads or writes no memory visible to the program
    // and cannot fault on any address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = p;
}

/// Returns a block to this thread's free list of its class.
///
/// # Safety
/// `block` came from [`take_of`] with `class`, is no longer used, and is
/// returned once.
#[inline]
pub(crate) unsafe fn give_of(class: Class, block: NonNull<u8>) {
    let block = block.as_ptr();
    if cfg!(loom) {
        // SAFETY: the block came from `system_alloc` with the class's layout.
        unsafe { dealloc(block, class.layout()) };
        return;
    }
    let kept = LOCAL.try_with(|locals| {
        let local = &locals.0[class as usize];
        let mut len = local.len.get();
        if len == LOCAL_MAX {
            // Full: hand the oldest batch on (the coldest blocks, at the
            // bottom of the stack) and move the rest down.
            give_back(local.batch(0, BATCH, class));
            for i in BATCH..LOCAL_MAX {
                local.blocks[i - BATCH].set(local.blocks[i].get());
            }
            len -= BATCH;
        }
        local.blocks[len].set(block);
        local.len.set(len + 1);
    });
    if kept.is_err() {
        // The thread is exiting and its list is gone.
        // SAFETY: every block of `class` came from `alloc` with its layout.
        unsafe { dealloc(block, class.layout()) };
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_freed_block_is_taken_again_by_the_same_thread() {
        let a = take();
        // SAFETY: `a` came from `take` and is returned once.
        unsafe { give(a) };
        let b = take();
        assert_eq!(a, b);
        // SAFETY: as above.
        unsafe { give(b) };
    }

    #[test]
    fn blocks_freed_on_another_thread_come_back_in_batches() {
        let n = LOCAL_MAX + 2 * BATCH;
        let blocks: Vec<usize> = std::thread::spawn(move || {
            let v: Vec<_> = (0..n).map(|_| take()).collect();
            // Write every byte: a block really is BLOCK bytes of our own.
            for b in &v {
                // SAFETY: a block is BLOCK writable bytes.
                unsafe { b.as_ptr().write_bytes(0xA5, BLOCK) };
            }
            let addrs = v.iter().map(|b| b.as_ptr().addr()).collect();
            // Freed here, on this thread: more than LOCAL_MAX, so batches
            // go to the global stack.
            for b in v {
                // SAFETY: each block came from `take` and is returned once.
                unsafe { give(b) };
            }
            addrs
        })
        .join()
        .unwrap();
        assert_eq!(blocks.len(), n);
        // Another thread, with an empty list, takes recycled blocks (other
        // tests may take some batches meanwhile, so only some).
        let again: Vec<_> = (0..BATCH).map(|_| take()).collect();
        for b in again {
            // SAFETY: each block came from `take` and is returned once.
            unsafe { give(b) };
        }
    }
}
