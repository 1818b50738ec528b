//! What the C ABI adds to a spawn: `runq_spawn` entered through its C
//! function pointer against the Rust `Pool::spawn`, in the same run, on
//! the same pool.
//!
//! Each sample times only the submitting loop; the tasks it queued are
//! then drained (outside the timed part) before the next sample, so the
//! queues start empty every time. The task body is one atomic increment.
//!
//! Run: `cargo bench -p runq-ffi --bench spawn_cost`

use std::ffi::c_void;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use runq::Pool;
use runq_ffi::{runq_pool, runq_spawn, runq_status, RUNQ_OK, RUNQ_PRIORITY_NORMAL};

/// Workers in the measured pool: two, so that the submitting thread and the
/// workers fit on a small CI machine.
const WORKERS: usize = 2;

static DONE: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" fn bump(_arg: *mut c_void) {
    DONE.fetch_add(1, Ordering::Relaxed);
}

type SpawnFn =
    unsafe extern "C" fn(*const runq_pool, runq_ffi::runq_fn, *mut c_void, i32) -> runq_status;

/// Waits until `n` tasks have run since the counter was reset.
fn drain(n: u64) {
    let start = Instant::now();
    while DONE.load(Ordering::Relaxed) < n {
        assert!(start.elapsed() < Duration::from_secs(60), "tasks were lost");
        std::thread::yield_now();
    }
}

fn spawn_cost(c: &mut Criterion) {
    let pool = Pool::builder()
        .workers(WORKERS)
        .build()
        .expect("build the pool");
    // The C side gets its own pool, configured the same way.
    let mut c_pool: *mut runq_pool = std::ptr::null_mut();
    let config = runq_ffi::runq_config {
        workers: WORKERS as u32,
        pin_workers: 1,
        capacity: 0,
        when_full: runq_ffi::RUNQ_WHEN_FULL_BLOCK,
        thread_name: std::ptr::null(),
        dead_letter: None,
        dead_letter_user: std::ptr::null_mut(),
        max_workers: 0,
        keep_alive_ms: 10_000,
    };
    // SAFETY: a valid config and a writable out pointer.
    assert_eq!(
        unsafe { runq_ffi::runq_pool_new(&config, &mut c_pool) },
        RUNQ_OK
    );

    let mut group = c.benchmark_group("spawn_cost");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(3));

    group.bench_function("rust Pool::spawn", |b| {
        b.iter_custom(|iters| {
            DONE.store(0, Ordering::Relaxed);
            let start = Instant::now();
            for _ in 0..iters {
                pool.spawn(|| {
                    DONE.fetch_add(1, Ordering::Relaxed);
                })
                .expect("spawn");
            }
            let took = start.elapsed();
            drain(iters);
            took
        })
    });

    // Called through an opaque function pointer, as a C caller would.
    let spawn: SpawnFn = black_box(runq_spawn);
    group.bench_function("C ABI runq_spawn", |b| {
        b.iter_custom(|iters| {
            DONE.store(0, Ordering::Relaxed);
            let start = Instant::now();
            for _ in 0..iters {
                // SAFETY: a live pool and a task function that ignores its
                // argument.
                let status = unsafe {
                    spawn(
                        c_pool,
                        Some(bump),
                        std::ptr::null_mut(),
                        RUNQ_PRIORITY_NORMAL,
                    )
                };
                debug_assert_eq!(status, RUNQ_OK);
                black_box(status);
            }
            let took = start.elapsed();
            drain(iters);
            took
        })
    });
    group.finish();

    // SAFETY: the pool came from runq_pool_new and is freed once.
    assert_eq!(unsafe { runq_ffi::runq_pool_free(c_pool) }, RUNQ_OK);
}

criterion_group!(benches, spawn_cost);
criterion_main!(benches);
