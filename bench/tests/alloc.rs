//! `alloc_per_task` on every engine it compares, alone in its own test
//! binary: the counting allocator counts every thread of the process, so a
//! test running beside it in the same binary would add its allocations to
//! the engines' count.

use runq_bench::alloc::CountingAlloc;
use runq_bench::{Engine, EngineKind, Size, Workload};

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

#[test]
fn alloc_per_task_sees_each_peers_closure_allocation_and_at_most_one_for_runq() {
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
