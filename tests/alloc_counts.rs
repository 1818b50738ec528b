//! Heap allocations per task for each way of submitting one, counted on
//! every thread of the process (so this file holds one test, and nothing
//! runs beside it). Each kind is warmed up first: the counts are what a
//! pool that has been running pays per task, which is what the README's
//! table states.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use runq::{Pool, Retry, Task};

struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters are plain atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const N: u64 = if cfg!(miri) { 20 } else { 2_000 };

/// Allocations per task for `N` tasks made by `one`, after a warm-up of
/// `N` more; each task is waited for before the next is submitted.
fn per_task(pool: &Pool, mut one: impl FnMut(&Pool, u64)) -> f64 {
    for i in 0..N {
        one(pool, i);
    }
    COUNT.store(0, Ordering::SeqCst);
    ON.store(true, Ordering::SeqCst);
    for i in 0..N {
        one(pool, i);
    }
    ON.store(false, Ordering::SeqCst);
    COUNT.load(Ordering::SeqCst) as f64 / N as f64
}

#[test]
fn allocations_per_task_for_each_option() {
    let pool = Pool::builder()
        .workers(1)
        .pin_workers(false)
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
    let rows: Vec<(&str, f64)> = vec![
        (
            "spawn",
            per_task(&pool, |p, _| {
                let tx = tx.clone();
                p.spawn(move || tx.send(()).unwrap()).unwrap();
                rx.recv().unwrap();
            }),
        ),
        (
            "submit",
            per_task(&pool, |p, i| {
                p.submit(move || i).unwrap().wait().unwrap();
            }),
        ),
        (
            "submit_task plain",
            per_task(&pool, |p, i| {
                p.submit_task(Task::new(move || i)).unwrap().wait().unwrap();
            }),
        ),
        (
            "key",
            per_task(&pool, |p, i| {
                p.submit_task(Task::new(move || i).key("k"))
                    .unwrap()
                    .wait()
                    .unwrap();
            }),
        ),
        (
            "on_complete",
            per_task(&pool, |p, i| {
                p.submit_task(Task::new(move || i).on_complete(|_| ()))
                    .unwrap()
                    .wait()
                    .unwrap();
            }),
        ),
        (
            "guard",
            per_task(&pool, |p, i| {
                p.submit_task(Task::new(move || i).guard(|| true))
                    .unwrap()
                    .wait()
                    .unwrap();
            }),
        ),
        (
            "retry",
            per_task(&pool, |p, i| {
                p.submit_task(
                    Task::fallible(move || Ok::<_, String>(i))
                        .retry(Retry::fixed(3, Duration::from_millis(1))),
                )
                .unwrap()
                .wait()
                .unwrap();
            }),
        ),
        (
            "deadline",
            per_task(&pool, |p, i| {
                p.submit_task(Task::new(move || i).deadline(Duration::from_secs(60)))
                    .unwrap()
                    .wait()
                    .unwrap();
            }),
        ),
        (
            "name",
            per_task(&pool, |p, i| {
                p.submit_task(Task::new(move || i).name("n"))
                    .unwrap()
                    .wait()
                    .unwrap();
            }),
        ),
        (
            "delay",
            per_task(&pool, |p, i| {
                p.submit_task(Task::new(move || i).delay(Duration::from_micros(1)))
                    .unwrap()
                    .wait()
                    .unwrap();
            }),
        ),
    ];
    // The README's table ("What a task costs"): at most this many per task.
    let most = [
        ("spawn", 0.0),
        ("submit", 0.0),
        ("submit_task plain", 0.0),
        ("key", 3.0),
        ("on_complete", 1.0),
        ("guard", 1.0),
        ("retry", 1.0),
        ("deadline", 1.0),
        ("name", 2.0),
        ("delay", 1.0),
    ];
    for ((what, n), (row, max)) in rows.iter().zip(most) {
        println!("{what:20} {n:.3}");
        assert_eq!(*what, row);
        // A tenth of an allocation per task for the queues' blocks and the
        // recycled cells' occasional refill.
        assert!(
            *n <= max + 0.1,
            "{what}: {n:.3} allocations per task, the README says at most {max}"
        );
    }
}
