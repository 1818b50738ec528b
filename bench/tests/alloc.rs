//! `alloc_per_task` on every engine it compares, and the same count for
//! runq's `submit`, alone in their own test binary: the counting allocator
//! counts every thread of the process, so a test running beside them would
//! add its allocations to the engines' count (the two here take turns).

use runq_bench::alloc::CountingAlloc;
use runq_bench::{Engine, EngineKind, Size, Workload};

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// Held by each test while it counts.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn alloc_per_task_sees_each_peers_closure_allocation_and_at_most_one_for_runq() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    assert!(runq_bench::alloc::installed());
    let size = Size::tiny();
    let w = Workload::AllocPerTask;
    for &kind in w.engines() {
        let o = w.run(&Engine::new(kind, 2), &size);
        assert_eq!(o.expected, size.alloc_tasks, "{kind}: expected count");
        assert_eq!(
            o.done, size.alloc_tasks,
            "{kind}: work reported by the tasks"
        );
        assert!(o.verified(), "{kind}");
        match kind {
            // runq recycles its cells: none once warm, and never more than
            // the one cell and its share of the queue's blocks.
            EngineKind::Runq | EngineKind::RunqUnpinned => assert!(
                o.value.is_finite() && (0.0..=1.1).contains(&o.value),
                "{kind}: {} allocations per task",
                o.value
            ),
            _ => assert!(o.value >= 1.0, "{kind}: {} allocations per task", o.value),
        }
    }
}

#[test]
fn runq_submit_with_a_small_closure_allocates_nothing_once_warm() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    assert!(runq_bench::alloc::installed());
    const N: usize = 10_000;
    let pool = runq::Pool::builder().workers(2).build().unwrap();
    let mut handles = Vec::with_capacity(N);
    let mut round = |count: bool| {
        if count {
            runq_bench::alloc::start();
        }
        for i in 0..N as u64 {
            // 64 bytes of captures.
            let captures = [i; 8];
            handles.push(pool.submit(move || captures.iter().sum::<u64>()).unwrap());
        }
        let mut sum = 0;
        for h in handles.drain(..) {
            sum += h.wait().unwrap();
        }
        let spent = if count { runq_bench::alloc::stop() } else { 0 };
        assert_eq!(sum, 8 * (N as u64) * (N as u64 - 1) / 2);
        spent
    };
    // Warm: the first bursts fill the recycler with cells.
    for _ in 0..3 {
        round(false);
    }
    let spent = round(true);
    let per_task = spent as f64 / N as f64;
    println!("runq submit: {per_task:.3} allocations per task ({spent} for {N})");
    // What is left is the injector's: one block per 63 tasks pushed from
    // outside the pool (0.016 per task).
    assert!(per_task < 0.05, "{per_task} allocations per submit");
}
