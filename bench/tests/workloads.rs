//! Every workload at a tiny size on every engine it compares: the tasks
//! must report exactly the work the workload asked for, so a broken
//! adapter cannot produce a flattering number.

use runq::Pool;
use runq_bench::alloc::CountingAlloc;
use runq_bench::workload::{fib, nqueens_serial, uts, uts_serial, RunqFork, Serial, UtsNode};
use runq_bench::{Engine, EngineKind, Outcome, Size, Workload};

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// Runs `w` once on each of its engines, two workers each.
fn run_everywhere(w: Workload) -> Vec<(EngineKind, Outcome)> {
    let size = Size::tiny();
    w.engines()
        .iter()
        .map(|&kind| {
            let engine = Engine::new(kind, 2);
            (kind, w.run(&engine, &size))
        })
        .collect()
}

/// Asserts that every engine did exactly `expected` units of work.
fn assert_work(w: Workload, expected: u64) -> Vec<(EngineKind, Outcome)> {
    let outcomes = run_everywhere(w);
    assert_eq!(outcomes.len(), w.engines().len());
    for (kind, o) in &outcomes {
        assert_eq!(o.expected, expected, "{w} on {kind}: expected count");
        assert_eq!(
            o.done, expected,
            "{w} on {kind}: work reported by the tasks"
        );
        assert!(o.verified(), "{w} on {kind}");
    }
    outcomes
}

fn assert_timed(outcomes: &[(EngineKind, Outcome)]) {
    for (kind, o) in outcomes {
        assert!(
            o.value.is_finite() && o.value > 0.0,
            "{kind}: a positive time, got {}",
            o.value
        );
    }
}

#[test]
fn spawn_many_local_runs_every_task_on_every_engine() {
    let outcomes = assert_work(Workload::SpawnManyLocal, Size::tiny().tasks);
    assert_timed(&outcomes);
}

#[test]
fn spawn_many_remote_idle_runs_every_task_on_every_engine() {
    let outcomes = assert_work(Workload::SpawnManyRemoteIdle, Size::tiny().tasks);
    assert_timed(&outcomes);
}

#[test]
fn spawn_many_remote_busy_runs_every_remote_task_even_where_busy_tasks_starve_them() {
    // Engines that never look at remote work while local work exists stall
    // here; the workload then stops the busy tasks, and the remote tasks
    // must still all run.
    assert_work(Workload::SpawnManyRemoteBusy, Size::tiny().busy_tasks);
}

#[test]
fn ping_pong_runs_a_ping_a_pong_and_a_reply_per_ping() {
    let size = Size::tiny();
    let outcomes = assert_work(Workload::PingPong, size.pings * size.ping_rounds * 3);
    assert_timed(&outcomes);
}

#[test]
fn chained_spawn_runs_every_link_of_the_chain() {
    let outcomes = assert_work(Workload::ChainedSpawn, Size::tiny().chain);
    assert_timed(&outcomes);
}

#[test]
fn yield_many_runs_each_task_once_more_than_it_yields() {
    let size = Size::tiny();
    let outcomes = assert_work(Workload::YieldMany, size.yielders * (size.yields + 1));
    assert_timed(&outcomes);
}

#[test]
fn remote_spawn_runs_all_tasks_whatever_the_split_across_submitters() {
    let size = Size::tiny();
    // 64 tasks over 3 submitters does not divide evenly.
    for k in [1, 3, 4] {
        let outcomes = assert_work(Workload::RemoteSpawn(k), size.remote_total);
        assert_timed(&outcomes);
    }
}

#[test]
fn fib_returns_the_fibonacci_number_on_every_fork_join_engine() {
    let outcomes = assert_work(Workload::Fib, 144);
    assert_eq!(
        Workload::Fib.engines(),
        &[
            EngineKind::Runq,
            EngineKind::RunqUnpinned,
            EngineKind::Rayon
        ]
    );
    assert_timed(&outcomes);
    assert_eq!(fib::<Serial>(20), 6_765);
}

#[test]
fn nqueens_counts_the_known_number_of_solutions() {
    assert_eq!(nqueens_serial(6), 4);
    assert_eq!(nqueens_serial(8), 92);
    let outcomes = assert_work(Workload::NQueens, 4);
    assert_timed(&outcomes);
}

#[test]
fn uts_visits_the_same_nodes_in_parallel_as_the_serial_walk() {
    let depth = Size::tiny().uts_depth;
    let serial = uts_serial(depth);
    assert!(
        serial > u64::from(depth) + 1,
        "the tree branches: {serial} nodes"
    );
    assert_work(Workload::Uts, serial);
    let pool = Pool::builder().workers(2).build().unwrap();
    let deeper = pool
        .submit(|| uts::<RunqFork>(UtsNode::root(6)))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(deeper, uts_serial(6));
}

#[test]
fn wake_latency_records_one_positive_sample_per_probe() {
    let probes = Size::tiny().probes;
    for (kind, o) in assert_work(Workload::WakeLatency, probes) {
        let hist = o.latency.expect("a latency workload keeps its histogram");
        assert_eq!(hist.len(), probes, "{kind}: one sample per probe");
        assert!(o.value > 0.0, "{kind}: p50 is positive");
    }
}

#[test]
fn latency_under_load_runs_every_probe_and_every_task_of_load() {
    let size = Size::tiny();
    let probes = (size.load.as_nanos() / size.load_probe_gap.as_nanos()) as u64;
    for (kind, o) in run_everywhere(Workload::LatencyUnderLoad) {
        assert!(o.verified(), "{kind}: did {} of {}", o.done, o.expected);
        let hist = o.latency.expect("a latency workload keeps its histogram");
        assert_eq!(hist.len(), probes, "{kind}: one sample per probe");
        let load = o.expected - probes;
        assert!(
            load >= size.backlog_per_worker * 2,
            "{kind}: the feeder filled the backlog at least once ({load} tasks)"
        );
    }
}

#[test]
fn idle_cost_runs_one_task_per_tick_and_measures_cpu() {
    let size = Size::tiny();
    let ticks = (size.idle_window.as_nanos() / size.idle_tick.as_nanos()) as u64;
    for (kind, o) in assert_work(Workload::IdleCost, ticks) {
        assert!(
            o.value.is_finite() && o.value >= 0.0,
            "{kind}: CPU share {}",
            o.value
        );
    }
}

#[test]
fn the_suite_lists_every_workload_once_and_remote_spawn_per_submitter_count() {
    let names: Vec<String> = Workload::suite(&[1, 2, 4])
        .iter()
        .map(|w| w.name())
        .collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len());
    assert_eq!(names.len(), 6 + 3 + 3 + 4 + 3);
    for k in ["remote_spawn/1", "remote_spawn/2", "remote_spawn/4"] {
        assert!(names.iter().any(|n| n == k), "{k} missing");
    }
}

#[test]
fn every_workload_runs_runq_unpinned_next_to_the_runq_reference() {
    assert_eq!(
        EngineKind::ALL[..2],
        [EngineKind::Runq, EngineKind::RunqUnpinned]
    );
    for w in Workload::suite(&[1, 2]) {
        let engines = w.engines();
        assert_eq!(engines[0], EngineKind::Runq, "{w}: runq is the reference");
        assert!(engines.contains(&EngineKind::RunqUnpinned), "{w}");
    }
    assert_eq!(
        EngineKind::from_name("runq-unpinned"),
        Some(EngineKind::RunqUnpinned)
    );
}

#[test]
fn runq_unpinned_pins_no_worker_and_runq_pins_as_the_default_pool_does() {
    let unpinned = Engine::new(EngineKind::RunqUnpinned, 2);
    let pool = unpinned.runq_pool().expect("a runq engine has a runq pool");
    assert_eq!(pool.metrics().pinned_workers, 0);

    let default = Pool::builder().workers(2).build().unwrap();
    let pinned = Engine::new(EngineKind::Runq, 2);
    let pool = pinned.runq_pool().expect("a runq engine has a runq pool");
    assert_eq!(
        pool.metrics().pinned_workers,
        default.metrics().pinned_workers
    );
    assert_eq!(format!("{:?}", unpinned.spawner()), "Spawner(RunqUnpinned)");
    assert_eq!(format!("{:?}", pinned.spawner()), "Spawner(Runq)");
}

#[test]
fn blocking_mix_runs_every_task_on_every_engine_that_compares_it() {
    let outcomes = assert_work(Workload::BlockingMix, Size::tiny().mix_tasks);
    assert_timed(&outcomes);
    assert!(outcomes.iter().any(|(k, _)| *k == EngineKind::RunqElastic));
}

#[test]
fn bursty_runs_every_burst_and_measures_time_and_thread_seconds() {
    let size = Size::tiny();
    assert_timed(&assert_work(
        Workload::Bursty,
        size.bursts * size.burst_tasks,
    ));
    for (kind, o) in assert_work(Workload::BurstyThreads, size.bursts * size.burst_tasks) {
        assert!(
            o.value.is_finite() && o.value >= 0.0,
            "{kind}: thread-seconds, got {}",
            o.value
        );
    }
}
