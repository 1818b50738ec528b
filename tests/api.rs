//! The public surface of runq: builder knobs, the Pool handle, every way to
//! submit, the Handle (wait, status, cancel, Future) and the metrics.
//!
//! Every wait here is bounded: a bug shows up as a failed assertion, never as
//! a hung test binary.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use runq::{
    Builder, Handle, Metrics, Pool, Priority, ShutdownReport, Status, SubmitError, Task, TaskError,
    TaskId, WhenFull, MAX_WORKERS,
};

mod common;

use common::limit_10s::{wait, wait_until, Gate, LIMIT};
use common::scaled;

/// Counts heap allocations per thread, so a test can see what one
/// submission costs on the submitting thread.
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter is a const-initialised thread-local without a destructor, so
// touching it never allocates.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn allocations_on_this_thread() -> u64 {
    ALLOCATIONS.with(std::cell::Cell::get)
}

/// Occupies one worker with a task that blocks on a gate; returns once the
/// task is running.
fn occupy(pool: &Pool) -> (Gate, Handle<()>) {
    let gate = Gate::default();
    let (started_tx, started_rx) = mpsc::channel();
    let inner = gate.clone();
    let handle = pool
        .submit(move || {
            started_tx.send(()).unwrap();
            inner.wait();
        })
        .unwrap();
    started_rx
        .recv_timeout(LIMIT)
        .expect("the blocking task never started");
    (gate, handle)
}

/// A task body that panics without going through the panic hook (no noise).
fn boom<T>() -> T {
    std::panic::resume_unwind(Box::new("runq-test: intentional"))
}

fn one_worker() -> Pool {
    Pool::builder().workers(1).build().unwrap()
}

#[test]
fn builder_sets_worker_count() {
    for n in [1, 2, 3, 7] {
        let pool = Pool::builder().workers(n).build().unwrap();
        assert_eq!(pool.workers(), n);
        assert_eq!(pool.metrics().workers, n as u64);
        pool.shutdown();
    }
}

#[test]
fn default_pool_has_one_worker_per_core() {
    let pool = Pool::new().unwrap();
    assert_eq!(pool.workers(), num_cpus::get().clamp(1, MAX_WORKERS));
    assert_eq!(wait(pool.submit(|| 40 + 2).unwrap()).unwrap(), 42);
}

#[test]
fn builder_is_clone_and_debug() {
    let builder = Builder::new()
        .workers(2)
        .capacity(8)
        .when_full(WhenFull::Reject);
    let copy = builder.clone();
    assert!(!format!("{builder:?}").is_empty());
    let pool = copy.build().unwrap();
    assert_eq!(pool.workers(), 2);
}

#[test]
fn worker_threads_carry_the_name_prefix_and_their_index() {
    let pool = Pool::builder()
        .workers(2)
        .thread_name("calc")
        .build()
        .unwrap();
    let names: Vec<(Option<String>, Option<usize>)> = (0..20)
        .map(|_| {
            pool.submit(|| {
                (
                    thread::current().name().map(str::to_owned),
                    runq::current_worker(),
                )
            })
            .unwrap()
        })
        .map(|h| wait(h).unwrap())
        .collect();
    for (name, index) in names {
        let index = index.expect("a task runs on a worker thread");
        assert!(index < 2, "worker index {index} out of range");
        assert_eq!(name.as_deref(), Some(format!("calc-{index}").as_str()));
    }
}

#[test]
fn default_thread_name_prefix_is_runq() {
    let pool = one_worker();
    let name = wait(
        pool.submit(|| thread::current().name().map(str::to_owned))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(name.as_deref(), Some("runq-0"));
}

#[test]
fn current_worker_is_none_outside_the_pool() {
    assert_eq!(runq::current_worker(), None);
    assert!(!runq::is_cancelled());
}

#[test]
fn pool_is_clone_send_sync_and_debug() {
    fn assert_traits<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    assert_traits::<Pool>();
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Handle<u64>>();
    fn assert_debug<T: std::fmt::Debug>() {}
    assert_debug::<Handle<u64>>();
    assert_debug::<Task<u64>>();
    assert_debug::<Metrics>();
    assert_debug::<ShutdownReport>();
    assert_debug::<Status>();
    assert_debug::<TaskId>();
}

#[test]
fn clones_share_one_pool() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let other = pool.clone();
    let from_thread = thread::spawn(move || wait(other.submit(|| 7).unwrap()).unwrap())
        .join()
        .unwrap();
    assert_eq!(from_thread, 7);
    assert_eq!(wait(pool.submit(|| 8).unwrap()).unwrap(), 8);
    let report = pool.shutdown();
    assert_eq!(report.submitted, 2, "both clones feed the same pool");
}

#[test]
fn shutdown_through_one_clone_stops_the_others() {
    let pool = one_worker();
    let other = pool.clone();
    pool.shutdown();
    assert!(other.is_shut_down());
    assert_eq!(other.spawn(|| ()).unwrap_err(), SubmitError::ShutDown);
    assert_eq!(other.submit(|| 1).unwrap_err(), SubmitError::ShutDown);
}

#[test]
fn spawn_runs_the_closure() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..10 {
        let tx = tx.clone();
        pool.spawn(move || tx.send(i).unwrap()).unwrap();
    }
    let mut seen: Vec<i32> = (0..10).map(|_| rx.recv_timeout(LIMIT).unwrap()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
}

#[test]
fn submit_returns_the_value() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let handles: Vec<_> = (0..scaled(100) as u64)
        .map(|i| pool.submit(move || i * i).unwrap())
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(wait(h).unwrap(), (i * i) as u64);
    }
}

#[test]
fn submit_moves_non_copy_values_out() {
    let pool = one_worker();
    let data = [String::from("a"), String::from("b")];
    let h = pool.submit(move || data.join("+")).unwrap();
    assert_eq!(wait(h).unwrap(), "a+b");
}

#[test]
fn submit_task_runs_at_every_priority() {
    let pool = Pool::builder().workers(2).build().unwrap();
    for p in [Priority::High, Priority::Normal, Priority::Low] {
        let h = pool.submit_task(Task::new(move || p).priority(p)).unwrap();
        assert_eq!(wait(h).unwrap(), p);
    }
    assert_eq!(Priority::default(), Priority::Normal);
}

#[test]
fn try_submit_task_accepts_when_there_is_room() {
    let pool = one_worker();
    let h = pool
        .try_submit_task(Task::new(|| "ok"))
        .expect("an unbounded pool accepts");
    assert_eq!(wait(h).unwrap(), "ok");
}

#[test]
fn submit_batch_returns_handles_in_order() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let tasks: Vec<Task<usize>> = (0..50).map(|i| Task::new(move || i)).collect();
    let handles = pool.submit_batch(tasks).unwrap();
    assert_eq!(handles.len(), 50);
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(wait(h).unwrap(), i);
    }
    assert!(pool
        .submit_batch(Vec::<Task<()>>::new())
        .unwrap()
        .is_empty());
}

#[test]
fn dropping_a_handle_detaches_and_the_task_still_runs() {
    let pool = one_worker();
    let (tx, rx) = mpsc::channel();
    drop(pool.submit(move || tx.send(5).unwrap()).unwrap());
    assert_eq!(rx.recv_timeout(LIMIT).unwrap(), 5);
}

#[test]
fn task_ids_are_unique_and_displayable() {
    const TASKS: usize = scaled(100);
    let pool = one_worker();
    let handles: Vec<_> = (0..TASKS).map(|_| pool.submit(|| ()).unwrap()).collect();
    let mut ids: Vec<TaskId> = handles.iter().map(Handle::id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), TASKS);
    let id = handles[0].id();
    assert!(
        id.to_string().contains(&id.as_u64().to_string()),
        "{id} does not show its number"
    );
    for h in handles {
        wait(h).unwrap();
    }
}

#[test]
fn status_moves_from_queued_to_running_to_succeeded() {
    let pool = one_worker();
    let (gate, running) = occupy(&pool);
    let queued = pool.submit(|| 1).unwrap();
    assert_eq!(running.status(), Status::Running);
    assert_eq!(queued.status(), Status::Queued);
    assert!(!queued.is_finished());
    assert!(!running.is_finished());
    gate.open();
    wait_until("queued task finishes", || queued.is_finished());
    assert_eq!(queued.status(), Status::Succeeded);
    assert!(queued.status().is_terminal());
    assert!(running.is_finished());
    assert_eq!(wait(queued).unwrap(), 1);
}

#[test]
fn status_terminal_states() {
    let pool = one_worker();
    let ok = pool.submit(|| ()).unwrap();
    let bad = pool.submit(boom::<()>).unwrap();
    wait_until("both finish", || ok.is_finished() && bad.is_finished());
    assert_eq!(ok.status(), Status::Succeeded);
    assert_eq!(bad.status(), Status::Failed);
    for s in [
        Status::Succeeded,
        Status::Failed,
        Status::Cancelled,
        Status::Expired,
    ] {
        assert!(s.is_terminal(), "{s:?} is terminal");
    }
    for s in [
        Status::Queued,
        Status::Delayed,
        Status::Running,
        Status::Retrying,
    ] {
        assert!(!s.is_terminal(), "{s:?} is not terminal");
    }
}

#[test]
fn cancel_of_a_queued_task_means_it_never_runs() {
    let pool = one_worker();
    let (gate, _running) = occupy(&pool);
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let h = pool
        .submit(move || flag.store(true, Ordering::SeqCst))
        .unwrap();
    assert!(h.cancel(), "a queued task can be cancelled");
    assert_eq!(h.status(), Status::Cancelled);
    assert!(h.is_finished());
    gate.open();
    // A marker task queued behind the cancelled one proves the worker has
    // moved past it.
    wait(pool.submit(|| ()).unwrap()).unwrap();
    assert!(matches!(wait(h), Err(TaskError::Cancelled)));
    assert!(!ran.load(Ordering::SeqCst), "a cancelled task ran");
}

#[test]
fn cancel_of_a_running_task_returns_false_and_raises_the_flag() {
    let pool = one_worker();
    let gate = Gate::default();
    let (started_tx, started_rx) = mpsc::channel();
    let inner = gate.clone();
    let h = pool
        .submit(move || {
            assert!(!runq::is_cancelled());
            started_tx.send(()).unwrap();
            inner.wait();
            runq::is_cancelled()
        })
        .unwrap();
    started_rx.recv_timeout(LIMIT).unwrap();
    assert!(!h.cancel(), "a running task cannot be stopped");
    gate.open();
    assert!(wait(h).unwrap(), "the task saw is_cancelled() == true");
}

#[test]
fn cancel_of_a_finished_task_returns_false() {
    let pool = one_worker();
    let h = pool.submit(|| 3).unwrap();
    wait_until("task finishes", || h.is_finished());
    assert!(!h.cancel());
    assert_eq!(wait(h).unwrap(), 3);
}

#[test]
fn is_cancelled_is_false_for_tasks_nobody_cancelled() {
    let pool = one_worker();
    assert!(!wait(pool.submit(runq::is_cancelled).unwrap()).unwrap());
}

#[test]
fn wait_timeout_hands_the_handle_back_on_timeout() {
    let pool = one_worker();
    let (gate, _running) = occupy(&pool);
    let h = pool.submit(|| 9).unwrap();
    let start = Instant::now();
    let h = h
        .wait_timeout(Duration::from_millis(50))
        .expect_err("the task is still queued");
    assert!(start.elapsed() >= Duration::from_millis(50));
    gate.open();
    assert_eq!(wait(h).unwrap(), 9);
}

#[test]
fn wait_blocks_until_the_result_is_ready() {
    let pool = one_worker();
    let gate = Gate::default();
    let g = gate.clone();
    let h = pool
        .submit(move || {
            g.wait();
            11
        })
        .unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(h.wait()).unwrap());
    // The task cannot finish before the gate opens, so neither can `wait`.
    assert!(rx.try_recv().is_err(), "wait() returned before the result");
    gate.open();
    let got = rx.recv_timeout(LIMIT).expect("wait() returned");
    assert_eq!(got.unwrap(), 11);
}

// ---- Future -------------------------------------------------------------

/// A waker that unparks the polling thread and remembers it was woken.
struct ThreadWaker {
    thread: thread::Thread,
    woken: AtomicUsize,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.fetch_add(1, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// A minimal executor: polls the future on this thread, parking between
/// polls, and gives up after `LIMIT`.
fn block_on<F: Future + Unpin>(mut fut: F) -> F::Output {
    let waker_state = Arc::new(ThreadWaker {
        thread: thread::current(),
        woken: AtomicUsize::new(0),
    });
    let waker = Waker::from(waker_state);
    let mut cx = Context::from_waker(&waker);
    let start = Instant::now();
    loop {
        if let Poll::Ready(out) = Pin::new(&mut fut).poll(&mut cx) {
            return out;
        }
        assert!(start.elapsed() < LIMIT, "future not ready within {LIMIT:?}");
        thread::park_timeout(Duration::from_millis(100));
    }
}

#[test]
fn handle_is_a_future_of_the_result() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let h = pool.submit(|| 6 * 7).unwrap();
    assert_eq!(block_on(h).unwrap(), 42);
    let bad = pool.submit(boom::<u8>).unwrap();
    assert!(matches!(block_on(bad), Err(TaskError::Panicked(_))));
}

#[test]
fn future_wakes_its_waker_on_completion() {
    let pool = one_worker();
    let (gate, _running) = occupy(&pool);
    let mut h = pool.submit(|| 5).unwrap();
    let state = Arc::new(ThreadWaker {
        thread: thread::current(),
        woken: AtomicUsize::new(0),
    });
    let waker = Waker::from(state.clone());
    let mut cx = Context::from_waker(&waker);
    assert!(Pin::new(&mut h).poll(&mut cx).is_pending());
    assert_eq!(state.woken.load(Ordering::SeqCst), 0);
    gate.open();
    wait_until("the waker is woken", || {
        state.woken.load(Ordering::SeqCst) > 0
    });
    match Pin::new(&mut h).poll(&mut cx) {
        Poll::Ready(r) => assert_eq!(r.unwrap(), 5),
        Poll::Pending => panic!("woken but still pending"),
    }
}

#[test]
fn future_uses_the_latest_waker() {
    let pool = one_worker();
    let (gate, _running) = occupy(&pool);
    let mut h = pool.submit(|| 1).unwrap();
    let first = Arc::new(ThreadWaker {
        thread: thread::current(),
        woken: AtomicUsize::new(0),
    });
    let second = Arc::new(ThreadWaker {
        thread: thread::current(),
        woken: AtomicUsize::new(0),
    });
    let w1 = Waker::from(first.clone());
    let w2 = Waker::from(second.clone());
    assert!(Pin::new(&mut h)
        .poll(&mut Context::from_waker(&w1))
        .is_pending());
    assert!(Pin::new(&mut h)
        .poll(&mut Context::from_waker(&w2))
        .is_pending());
    gate.open();
    wait_until("the second waker is woken", || {
        second.woken.load(Ordering::SeqCst) > 0
    });
    assert!(Pin::new(&mut h)
        .poll(&mut Context::from_waker(&w2))
        .is_ready());
}

#[test]
fn handles_can_be_awaited_on_tokio() {
    let pool = Pool::builder().workers(2).build().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let sum = rt.block_on(async {
        let hs: Vec<_> = (0..10u32)
            .map(|i| pool.submit(move || i).unwrap())
            .collect();
        let mut sum = 0;
        for h in hs {
            sum += tokio::time::timeout(LIMIT, h).await.unwrap().unwrap();
        }
        sum
    });
    assert_eq!(sum, 45);
}

// ---- Metrics ------------------------------------------------------------

#[test]
fn metrics_count_outcomes() {
    let pool = one_worker();
    let (gate, running) = occupy(&pool);
    let ok: Vec<_> = (0..5).map(|_| pool.submit(|| ()).unwrap()).collect();
    let bad: Vec<_> = (0..3).map(|_| pool.submit(boom::<()>).unwrap()).collect();
    let doomed: Vec<_> = (0..2).map(|_| pool.submit(|| ()).unwrap()).collect();
    for h in &doomed {
        assert!(h.cancel());
    }
    pool.spawn(|| ()).unwrap();
    gate.open();
    wait(running).unwrap();
    for h in ok {
        wait(h).unwrap();
    }
    for h in bad {
        assert!(matches!(wait(h), Err(TaskError::Panicked(_))));
    }
    let report = pool.shutdown();
    let m = pool.metrics();
    // 1 blocker + 5 ok + 3 panicking + 2 cancelled + 1 spawned.
    assert_eq!(m.submitted, 12);
    assert_eq!(m.completed, 7);
    assert_eq!(m.failed, 3);
    assert_eq!(m.panicked, 3);
    assert_eq!(m.cancelled, 2);
    assert_eq!(m.expired, 0);
    assert_eq!(m.retried, 0);
    assert_eq!(m.in_flight, 0);
    assert_eq!(report.in_flight, 0);
    assert_eq!(
        m.queued_high + m.queued_normal + m.queued_low + m.delayed,
        0
    );
    assert_eq!(
        m.submitted,
        m.completed + m.failed + m.cancelled + m.expired
    );
    assert_eq!(report.submitted, m.submitted);
    assert_eq!(report.completed, m.completed);
    assert_eq!(report.failed, m.failed);
    assert_eq!(report.panicked, m.panicked);
    assert_eq!(report.cancelled, m.cancelled);
    assert_eq!(report.expired, m.expired);
    assert_eq!(report.retried, m.retried);
}

#[test]
fn metrics_show_queue_depth_per_lane_and_tasks_in_flight() {
    let pool = one_worker();
    let (gate, _running) = occupy(&pool);
    let mut handles = Vec::new();
    for _ in 0..2 {
        handles.push(
            pool.submit_task(Task::new(|| ()).priority(Priority::High))
                .unwrap(),
        );
    }
    for _ in 0..3 {
        handles.push(
            pool.submit_task(Task::new(|| ()).priority(Priority::Normal))
                .unwrap(),
        );
    }
    handles.push(
        pool.submit_task(Task::new(|| ()).priority(Priority::Low))
            .unwrap(),
    );
    // An hour: the count cannot change under the assertions however slow
    // the machine; the task is cancelled below.
    let delayed = pool
        .submit_task(Task::new(|| ()).delay(Duration::from_secs(3600)))
        .unwrap();
    let m = pool.metrics();
    assert_eq!(m.queued_high, 2);
    assert_eq!(m.queued_normal, 3);
    assert_eq!(m.queued_low, 1);
    assert_eq!(m.delayed, 1);
    assert_eq!(m.submitted, 8);
    assert_eq!(
        m.in_flight, 8,
        "accepted and not terminal: blocker, 6 queued, 1 delayed"
    );
    gate.open();
    assert!(delayed.cancel());
    assert!(matches!(wait(delayed), Err(TaskError::Cancelled)));
    for h in handles {
        wait(h).unwrap();
    }
    let start = Instant::now();
    loop {
        let m = pool.metrics();
        if m.queued_high + m.queued_normal + m.queued_low + m.delayed + m.in_flight == 0 {
            break;
        }
        assert!(start.elapsed() < LIMIT, "queues never drained: {m:?}");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn cancelling_a_delayed_task_removes_it_from_the_delayed_count() {
    let pool = one_worker();
    let h = pool
        .submit_task(Task::new(|| ()).delay(Duration::from_secs(3600)))
        .unwrap();
    assert_eq!(pool.metrics().delayed, 1);
    assert!(h.cancel());
    let start = Instant::now();
    loop {
        let m = pool.metrics();
        if m.delayed == 0 && m.in_flight == 0 {
            break;
        }
        assert!(
            start.elapsed() < LIMIT,
            "a cancelled task still counts as delayed: {m:?}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn metrics_default_is_all_zero() {
    let m = Metrics::default();
    assert_eq!(m.submitted + m.completed + m.workers + m.pinned_workers, 0);
    let r = ShutdownReport::default();
    assert_eq!(r.submitted + r.completed + r.failed, 0);
}

#[test]
fn idle_workers_park_and_are_woken() {
    let pool = Pool::builder().workers(2).build().unwrap();
    // Let both workers pass their spin window and park.
    wait_until("workers park", || pool.metrics().parks >= 2);
    wait(pool.submit(|| ()).unwrap()).unwrap();
    assert!(pool.metrics().wakes >= 1, "a parked pool was woken");
}

#[test]
fn work_is_stolen_across_workers() {
    let pool = Pool::builder().workers(2).build().unwrap();
    // Tasks spawned from inside the pool land on the spawner's own worker
    // (its "next task" slot or deque). The spawner then blocks without
    // helping until one of them has run: only the other worker, by
    // stealing, can run it.
    let h = pool
        .submit({
            let pool = pool.clone();
            move || {
                let me = runq::current_worker();
                let (ran_tx, ran_rx) = mpsc::channel();
                let hs: Vec<_> = (0..4)
                    .map(|_| {
                        let ran_tx = ran_tx.clone();
                        pool.submit(move || {
                            let _ = ran_tx.send(());
                            runq::current_worker()
                        })
                        .unwrap()
                    })
                    .collect();
                ran_rx.recv_timeout(LIMIT).expect("nobody stole a task");
                let ran_on: Vec<_> = hs.into_iter().map(|h| wait(h).unwrap()).collect();
                (me, ran_on)
            }
        })
        .unwrap();
    let (spawner, workers) = wait(h).unwrap();
    assert!(workers.iter().all(|w| matches!(w, Some(0 | 1))));
    assert!(
        workers.iter().any(|w| *w != spawner),
        "no task ran on the other worker"
    );
    assert!(pool.metrics().stolen > 0, "the idle worker stole nothing");
}

#[test]
fn a_submission_costs_no_allocation_once_warm() {
    // The cell (closure, header and result slot) comes from a recycled
    // block: on a worker, submitting 64 tasks that hold 64 bytes of
    // captures each allocates nothing once the worker has run such a
    // batch before. The tasks run, and their handles go, on the one
    // worker, so its own free list gets every block back (no other thread
    // of this binary can take them meanwhile). Counted on the submitting
    // thread only.
    const N: usize = 64;
    let pool = one_worker();
    let round = || {
        let inner = pool.clone();
        let h = pool
            .submit(move || {
                let mut handles = Vec::with_capacity(N);
                let before = allocations_on_this_thread();
                for i in 0..N as u64 {
                    let captures = [i; 8];
                    handles.push(inner.submit(move || captures.iter().sum::<u64>()).unwrap());
                }
                let spent = allocations_on_this_thread() - before;
                // Waiting on the worker runs them here.
                let sum: u64 = handles.into_iter().map(|h| h.wait().unwrap()).sum();
                (spent, sum)
            })
            .unwrap();
        let (spent, sum) = wait(h).unwrap();
        assert_eq!(sum, 8 * (N as u64) * (N as u64 - 1) / 2);
        spent
    };
    let first = round();
    assert!(
        first <= N as u64 + 8,
        "{first} allocations for {N} submissions"
    );
    for _ in 0..3 {
        assert_eq!(round(), 0, "allocations for {N} submissions once warm");
    }
}

/// CPU time (user + system, in clock ticks) of this process's threads whose
/// name starts with `prefix`.
#[cfg(target_os = "linux")]
fn cpu_ticks_of_threads(prefix: &str) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 12 {
            total +=
                fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
        }
    }
    total
}

#[cfg(target_os = "linux")]
#[test]
#[cfg_attr(
    miri,
    ignore = "reads per-thread CPU time from /proc, which Miri's isolation forbids; an interpreted thread's CPU time says nothing of a native one's"
)]
fn an_idle_pool_uses_no_cpu_after_its_spin_window() {
    let pool = Pool::builder()
        .workers(2)
        .thread_name("rqidle")
        .build()
        .unwrap();
    wait(pool.submit(|| ()).unwrap()).unwrap();
    // Once past its spin window, a parked pool uses no CPU at all: look for
    // a second in which the workers used (next to) none. A spinning worker
    // would burn about 100 ticks in every such second and never pass; a
    // slow machine only makes the first windows busy.
    let start = Instant::now();
    loop {
        let before = cpu_ticks_of_threads("rqidle");
        thread::sleep(Duration::from_millis(1000));
        let used = cpu_ticks_of_threads("rqidle") - before;
        if used <= 5 {
            break;
        }
        assert!(
            start.elapsed() < LIMIT * 3,
            "idle workers kept using CPU ({used} ticks in the last second)"
        );
    }
}

// ---- Pinning ------------------------------------------------------------

#[test]
fn unpinned_pool_reports_no_pinned_workers() {
    let pool = Pool::builder()
        .workers(2)
        .pin_workers(false)
        .build()
        .unwrap();
    assert_eq!(pool.metrics().pinned_workers, 0);
    assert_eq!(wait(pool.submit(|| 1).unwrap()).unwrap(), 1);
}

#[test]
fn pinned_pool_reports_pinned_workers() {
    let cores = core_affinity::get_core_ids().map_or(0, |ids| ids.len());
    let n = cores.clamp(1, 4);
    let pool = Pool::builder()
        .workers(n)
        .pin_workers(true)
        .build()
        .unwrap();
    let pinned = pool.metrics().pinned_workers;
    assert!(pinned <= n as u64);
    if cfg!(target_os = "linux") && cores >= n {
        assert_eq!(pinned, n as u64, "every worker has a core of its own");
    }
    assert_eq!(wait(pool.submit(|| 1).unwrap()).unwrap(), 1);
}

#[cfg(target_os = "linux")]
fn cpus_allowed_for_this_thread() -> usize {
    // SAFETY: `set` is a plain bit set owned by this frame, and the size we
    // pass is its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let rc = libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
        assert_eq!(rc, 0);
        libc::CPU_COUNT(&set) as usize
    }
}

#[cfg(target_os = "linux")]
#[test]
fn pinned_workers_run_on_a_single_core() {
    let pool = Pool::builder()
        .workers(1)
        .pin_workers(true)
        .build()
        .unwrap();
    if pool.metrics().pinned_workers == 1 {
        let allowed = wait(pool.submit(cpus_allowed_for_this_thread).unwrap()).unwrap();
        assert_eq!(allowed, 1, "a pinned worker may run on one core only");
    }
}

#[test]
fn more_workers_than_cores_still_run() {
    let cores = core_affinity::get_core_ids().map_or(1, |ids| ids.len());
    let n = cores * 2 + 1;
    let pool = Pool::builder()
        .workers(n)
        .pin_workers(true)
        .build()
        .unwrap();
    assert_eq!(pool.workers(), n);
    assert!(pool.metrics().pinned_workers <= n as u64);
    let tasks = scaled(100);
    let hs: Vec<_> = (0..tasks)
        .map(|i| pool.submit(move || i).unwrap())
        .collect();
    let sum: usize = hs.into_iter().map(|h| wait(h).unwrap()).sum();
    assert_eq!(sum, tasks * (tasks - 1) / 2);
}

#[test]
fn in_flight_counts_accepted_tasks_only() {
    // An outside `join` in progress and a submitter blocked on capacity
    // are not tasks: in a quiet moment `in_flight` is exactly the accepted
    // tasks not yet terminal, `submitted - completed - failed - cancelled
    // - expired`.
    let pool = Pool::builder()
        .workers(1)
        .capacity(1)
        .when_full(WhenFull::Block)
        .build()
        .unwrap();
    let gate = Gate::default();
    let (started_tx, started_rx) = mpsc::channel();
    let joiner = {
        let (pool, gate) = (pool.clone(), gate.clone());
        thread::spawn(move || {
            pool.join(
                move || {
                    started_tx.send(()).unwrap();
                    gate.wait();
                },
                || (),
            )
        })
    };
    started_rx.recv_timeout(LIMIT).unwrap();
    let m = pool.metrics();
    assert_eq!((m.submitted, m.in_flight), (0, 0), "{m:?}");
    // The join holds the only worker: one task queued takes the only
    // permit, and a second submitter blocks.
    let queued = pool.submit(|| 1).unwrap();
    let blocked = {
        let pool = pool.clone();
        thread::spawn(move || pool.submit(|| 2).unwrap())
    };
    let m = pool.metrics();
    assert_eq!((m.submitted, m.in_flight), (1, 1), "{m:?}");
    gate.open();
    joiner.join().unwrap();
    let second = blocked.join().unwrap();
    assert_eq!(wait(queued).unwrap() + wait(second).unwrap(), 3);
    let report = pool.shutdown();
    assert_eq!((report.submitted, report.completed), (2, 2), "{report:?}");
    let m = pool.metrics();
    assert_eq!(m.in_flight, 0, "{m:?}");
}
