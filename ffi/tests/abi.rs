//! The C ABI's promises, checked by calling the exported functions the way
//! a C program does: raw pointers, status codes, C callbacks.

use std::ffi::{c_void, CStr};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use runq_ffi::*;

/// Longest any test waits for something that should happen at once.
const PATIENCE: Duration = Duration::from_secs(30);

fn config(workers: u32) -> runq_config {
    let mut c = std::mem::MaybeUninit::<runq_config>::uninit();
    // SAFETY: `c` is writable memory for one config.
    assert_eq!(unsafe { runq_config_default(c.as_mut_ptr()) }, RUNQ_OK);
    // SAFETY: runq_config_default wrote every field.
    let mut c = unsafe { c.assume_init() };
    c.workers = workers;
    c.pin_workers = 0;
    c
}

fn pool(workers: u32) -> *mut runq_pool {
    let mut p = null_mut();
    // SAFETY: a valid config and a writable out pointer.
    assert_eq!(unsafe { runq_pool_new(&config(workers), &mut p) }, RUNQ_OK);
    assert!(!p.is_null());
    p
}

fn free_pool(p: *mut runq_pool) {
    // SAFETY: `p` came from runq_pool_new and is freed once.
    assert_eq!(unsafe { runq_pool_free(p) }, RUNQ_OK);
}

fn opts() -> runq_task_opts {
    let mut o = std::mem::MaybeUninit::<runq_task_opts>::uninit();
    // SAFETY: writable memory for one options struct.
    assert_eq!(unsafe { runq_task_opts_default(o.as_mut_ptr()) }, RUNQ_OK);
    // SAFETY: every field was written.
    unsafe { o.assume_init() }
}

/// Holds a worker until opened.
#[derive(Default)]
struct Gate {
    state: Mutex<(bool, bool)>, // (started, open)
    cv: Condvar,
}

impl Gate {
    fn as_arg(&self) -> *mut c_void {
        self as *const Gate as *mut c_void
    }
    fn wait_started(&self) {
        let g = self.state.lock().unwrap();
        let (g, t) = self.cv.wait_timeout_while(g, PATIENCE, |s| !s.0).unwrap();
        assert!(!t.timed_out() && g.0, "the gate task never started");
    }
    fn open(&self) {
        self.state.lock().unwrap().1 = true;
        self.cv.notify_all();
    }
}

unsafe extern "C" fn hold(arg: *mut c_void) {
    // SAFETY: every test passes a live `Gate` that outlives the pool.
    let gate = unsafe { &*(arg as *const Gate) };
    let mut g = gate.state.lock().unwrap();
    g.0 = true;
    gate.cv.notify_all();
    let (_g, _) = gate.cv.wait_timeout_while(g, PATIENCE, |s| !s.1).unwrap();
}

/// A 1-worker pool whose worker is held by `gate`.
fn held_pool(gate: &Gate) -> *mut runq_pool {
    let p = pool(1);
    // SAFETY: live pool; `hold` takes a `Gate` that outlives the pool.
    assert_eq!(
        unsafe { runq_spawn(p, Some(hold), gate.as_arg(), RUNQ_PRIORITY_NORMAL) },
        RUNQ_OK
    );
    gate.wait_started();
    p
}

unsafe extern "C" fn echo(arg: *mut c_void) -> *mut c_void {
    arg
}

unsafe extern "C" fn count_call(arg: *mut c_void) {
    // SAFETY: tests pass a live AtomicU32.
    unsafe { &*(arg as *const AtomicU32) }.fetch_add(1, Ordering::SeqCst);
}

unsafe extern "C" fn count_and_echo(arg: *mut c_void) -> *mut c_void {
    // SAFETY: tests pass a live AtomicU32.
    unsafe { count_call(arg) };
    arg
}

fn submit(
    p: *const runq_pool,
    f: runq_task_fn,
    arg: *mut c_void,
    o: &runq_task_opts,
) -> *mut runq_handle {
    let mut h = null_mut();
    // SAFETY: live pool, valid options, writable out pointer.
    assert_eq!(unsafe { runq_submit(p, f, arg, o, &mut h) }, RUNQ_OK);
    h
}

fn wait(h: *const runq_handle, timeout_ns: u64) -> (runq_status, *mut c_void) {
    let mut result = std::ptr::dangling_mut::<c_void>(); // not NULL, to see it written
                                                         // SAFETY: a live handle and a writable result pointer.
    let status = unsafe { runq_handle_wait(h, timeout_ns, &mut result) };
    (status, result)
}

fn free_handle(h: *mut runq_handle) {
    // SAFETY: `h` came from runq_submit* and is freed once.
    assert_eq!(unsafe { runq_handle_free(h) }, RUNQ_OK);
}

#[test]
fn null_pointers_and_bad_values_are_invalid_argument_not_a_crash() {
    let mut p = std::ptr::dangling_mut::<runq_pool>();
    let mut h = null_mut();
    let mut m = runq_pool_metrics::default();
    // SAFETY: every pointer is NULL or valid; NULLs are what is tested.
    unsafe {
        assert_eq!(runq_config_default(null_mut()), RUNQ_INVALID_ARGUMENT);
        assert_eq!(runq_task_opts_default(null_mut()), RUNQ_INVALID_ARGUMENT);
        assert_eq!(runq_pool_new(null(), null_mut()), RUNQ_INVALID_ARGUMENT);
        assert_eq!(
            runq_pool_shutdown(null(), null_mut()),
            RUNQ_INVALID_ARGUMENT
        );
        assert_eq!(
            runq_pool_shutdown_now(null(), null_mut()),
            RUNQ_INVALID_ARGUMENT
        );
        assert_eq!(runq_pool_free(null_mut()), RUNQ_INVALID_ARGUMENT);
        assert_eq!(runq_metrics(null(), &mut m), RUNQ_INVALID_ARGUMENT);
        assert_eq!(
            runq_spawn(null(), Some(count_call), null_mut(), 0),
            RUNQ_INVALID_ARGUMENT
        );
        assert_eq!(
            runq_submit(null(), Some(echo), null_mut(), null(), &mut h),
            RUNQ_INVALID_ARGUMENT
        );
        assert_eq!(
            runq_handle_wait(null(), 0, null_mut()),
            RUNQ_INVALID_ARGUMENT
        );
        assert_eq!(runq_handle_status(null()), RUNQ_INVALID_ARGUMENT);
        assert_eq!(runq_handle_cancel(null()), RUNQ_INVALID_ARGUMENT);
        assert_eq!(
            runq_handle_failure(null(), null_mut(), null_mut()),
            RUNQ_INVALID_ARGUMENT
        );
        assert_eq!(runq_handle_free(null_mut()), RUNQ_INVALID_ARGUMENT);

        // A config with one bad field makes no pool and clears `*out`.
        let bad: [fn(&mut runq_config); 6] = [
            |c| c.workers = RUNQ_MAX_WORKERS + 1,
            |c| c.max_workers = RUNQ_MAX_WORKERS + 1,
            |c| {
                c.workers = 2;
                c.max_workers = 1;
            },
            |c| c.pin_workers = 2,
            |c| c.when_full = 3,
            |c| c.thread_name = c"\xff\xfe".as_ptr(),
        ];
        for (i, spoil) in bad.iter().enumerate() {
            let mut c = config(1);
            spoil(&mut c);
            assert_eq!(
                runq_pool_new(&c, &mut p),
                RUNQ_INVALID_ARGUMENT,
                "bad field {i}"
            );
            assert!(p.is_null());
        }

        let pool = pool(1);
        let calls = AtomicU32::new(0);
        let arg = &calls as *const AtomicU32 as *mut c_void;
        assert_eq!(runq_spawn(pool, None, arg, 0), RUNQ_INVALID_ARGUMENT);
        assert_eq!(
            runq_spawn(pool, Some(count_call), arg, 2),
            RUNQ_INVALID_ARGUMENT
        );
        assert_eq!(runq_metrics(pool, null_mut()), RUNQ_INVALID_ARGUMENT);
        assert_eq!(
            runq_submit(pool, None, arg, null(), &mut h),
            RUNQ_INVALID_ARGUMENT
        );
        assert_eq!(
            runq_submit_fallible(pool, None, arg, null(), &mut h),
            RUNQ_INVALID_ARGUMENT
        );
        let mut o = opts();
        o.priority = -2;
        assert_eq!(
            runq_submit(pool, Some(count_and_echo), arg, &o, &mut h),
            RUNQ_INVALID_ARGUMENT
        );
        // A plain task function cannot fail, so a retry policy is a mistake.
        let mut o = opts();
        o.retry_attempts = 3;
        assert_eq!(
            runq_submit(pool, Some(count_and_echo), arg, &o, &mut h),
            RUNQ_INVALID_ARGUMENT
        );
        let mut o = opts();
        o.key = c"\xc3".as_ptr();
        assert_eq!(
            runq_submit(pool, Some(count_and_echo), arg, &o, &mut h),
            RUNQ_INVALID_ARGUMENT
        );
        assert!(h.is_null(), "no handle is written on failure");
        assert_eq!(runq_pool_shutdown(pool, null_mut()), RUNQ_OK);
        assert_eq!(calls.load(Ordering::SeqCst), 0, "no refused task ran");
        free_pool(pool);
    }
}

#[test]
fn a_timed_out_wait_keeps_the_handle_and_a_later_wait_gets_the_result() {
    let gate = Gate::default();
    let p = held_pool(&gate);
    let h = submit(p, Some(echo), 0xfeed as *mut c_void, &opts());
    let before = Instant::now();
    assert_eq!(wait(h, 2_000_000), (RUNQ_TIMEOUT, null_mut()));
    assert!(
        before.elapsed() >= Duration::from_millis(2),
        "waited its timeout"
    );
    assert_eq!(wait(h, 0), (RUNQ_TIMEOUT, null_mut()));
    // SAFETY: live handle.
    assert_eq!(unsafe { runq_handle_status(h) }, RUNQ_QUEUED);
    gate.open();
    assert_eq!(wait(h, RUNQ_WAIT_FOREVER), (RUNQ_OK, 0xfeed as *mut c_void));
    // Waiting again reports the same outcome; so does the status.
    assert_eq!(wait(h, 0), (RUNQ_OK, 0xfeed as *mut c_void));
    // SAFETY: live handle.
    assert_eq!(unsafe { runq_handle_status(h) }, RUNQ_OK);
    free_handle(h);
    free_pool(p);
}

#[test]
fn an_overlapping_call_on_one_handle_returns_busy() {
    let gate = Gate::default();
    let p = held_pool(&gate);
    let h = submit(p, Some(echo), null_mut(), &opts());
    let h_addr = h as usize;
    std::thread::scope(|s| {
        // The poller below may hold the handle at the instant the waiter
        // starts: the waiter then gets BUSY itself and tries again.
        let waiter = s.spawn(move || loop {
            let r = wait(h_addr as *const runq_handle, PATIENCE.as_nanos() as u64).0;
            if r != RUNQ_BUSY {
                break r;
            }
            std::thread::yield_now();
        });
        // The waiter holds the handle for as long as it waits; poll until
        // its call has begun.
        let start = Instant::now();
        loop {
            // SAFETY: live handle; the waiter's overlapping call is what
            // is tested.
            match unsafe { runq_handle_status(h) } {
                RUNQ_BUSY => break,
                RUNQ_QUEUED => {}
                other => panic!("unexpected status {other}"),
            }
            assert!(
                start.elapsed() < PATIENCE,
                "the waiter never started waiting"
            );
            std::thread::yield_now();
        }
        // SAFETY: as above.
        assert_eq!(unsafe { runq_handle_cancel(h) }, RUNQ_BUSY);
        gate.open();
        assert_eq!(waiter.join().unwrap(), RUNQ_OK);
    });
    free_handle(h);
    free_pool(p);
}

#[derive(Default)]
struct Seen {
    calls: AtomicU32,
    last: Mutex<Option<(runq_status, usize)>>,
}

unsafe extern "C" fn note(status: runq_status, result: *mut c_void, user: *mut c_void) {
    // SAFETY: tests pass a live `Seen`.
    let seen = unsafe { &*(user as *const Seen) };
    seen.calls.fetch_add(1, Ordering::SeqCst);
    *seen.last.lock().unwrap() = Some((status, result as usize));
}

fn with_note(seen: &Seen) -> runq_task_opts {
    let mut o = opts();
    o.on_complete = Some(note);
    o.user = seen as *const Seen as *mut c_void;
    o
}

#[test]
fn a_queued_task_cancels_never_runs_and_its_callback_runs_once() {
    let gate = Gate::default();
    let p = held_pool(&gate);
    let calls = AtomicU32::new(0);
    let seen = Seen::default();
    let arg = &calls as *const AtomicU32 as *mut c_void;
    let h = submit(p, Some(count_and_echo), arg, &with_note(&seen));
    // SAFETY: live handle.
    assert_eq!(unsafe { runq_handle_cancel(h) }, RUNQ_CANCELLED);
    // SAFETY: live handle; cancelling twice is harmless.
    assert_eq!(unsafe { runq_handle_cancel(h) }, RUNQ_CANCELLED);
    assert_eq!(
        wait(h, PATIENCE.as_nanos() as u64),
        (RUNQ_CANCELLED, null_mut())
    );
    gate.open();
    // SAFETY: live pool; the shutdown drains whatever is left.
    assert_eq!(unsafe { runq_pool_shutdown(p, null_mut()) }, RUNQ_OK);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the cancelled task ran");
    assert_eq!(seen.calls.load(Ordering::SeqCst), 1);
    assert_eq!(*seen.last.lock().unwrap(), Some((RUNQ_CANCELLED, 0)));
    free_handle(h);
    free_pool(p);
}

#[test]
fn the_completion_callback_runs_once_before_the_wait_returns() {
    let p = pool(2);
    for i in 1..=50usize {
        let seen = Seen::default();
        let h = submit(p, Some(echo), i as *mut c_void, &with_note(&seen));
        assert_eq!(wait(h, RUNQ_WAIT_FOREVER), (RUNQ_OK, i as *mut c_void));
        assert_eq!(seen.calls.load(Ordering::SeqCst), 1, "task {i}");
        assert_eq!(*seen.last.lock().unwrap(), Some((RUNQ_OK, i)));
        free_handle(h);
    }
    free_pool(p);
}

/// Fails with code 100 + attempt until attempt `arg.1`; 0 means never.
unsafe extern "C" fn flaky(arg: *mut c_void, result: *mut *mut c_void) -> i32 {
    // SAFETY: tests pass a live (AtomicU32, u32).
    let (calls, succeed_on) = unsafe { &*(arg as *const (AtomicU32, u32)) };
    let attempt = calls.fetch_add(1, Ordering::SeqCst) + 1;
    // SAFETY: runq passes a valid place for the result.
    unsafe {
        if !(*result).is_null() {
            return -1; // each attempt must start with a NULL result
        }
        if attempt == *succeed_on {
            *result = 0xabc as *mut c_void;
            return 0;
        }
        *result = 0xbad as *mut c_void; // ignored after a failure
    }
    100 + attempt as i32
}

fn submit_fallible(
    p: *const runq_pool,
    arg: &(AtomicU32, u32),
    o: &runq_task_opts,
) -> *mut runq_handle {
    let mut h = null_mut();
    let arg = arg as *const (AtomicU32, u32) as *mut c_void;
    // SAFETY: live pool, valid options, an arg that outlives the task.
    assert_eq!(
        unsafe { runq_submit_fallible(p, Some(flaky), arg, o, &mut h) },
        RUNQ_OK
    );
    h
}

#[test]
fn a_failing_fallible_task_is_retried_until_it_succeeds() {
    let p = pool(2);
    let arg = (AtomicU32::new(0), 3);
    let mut o = opts();
    o.retry_attempts = 5;
    o.retry_base_ns = 1_000_000;
    let h = submit_fallible(p, &arg, &o);
    assert_eq!(wait(h, RUNQ_WAIT_FOREVER), (RUNQ_OK, 0xabc as *mut c_void));
    assert_eq!(arg.0.load(Ordering::SeqCst), 3);
    // SAFETY: live handle; it did not fail, so there are no details.
    assert_eq!(
        unsafe { runq_handle_failure(h, null_mut(), null_mut()) },
        RUNQ_INVALID_ARGUMENT
    );
    free_handle(h);
    let mut m = runq_pool_metrics::default();
    // SAFETY: live pool, writable metrics.
    assert_eq!(unsafe { runq_metrics(p, &mut m) }, RUNQ_OK);
    assert_eq!(m.retried, 2);
    free_pool(p);
}

#[test]
fn a_task_that_fails_every_attempt_reports_its_last_code_and_attempts() {
    let p = pool(1);
    let arg = (AtomicU32::new(0), 0);
    let mut o = opts();
    o.retry_attempts = 3;
    let h = submit_fallible(p, &arg, &o);
    assert_eq!(wait(h, RUNQ_WAIT_FOREVER), (RUNQ_FAILED, null_mut()));
    let (mut code, mut attempts) = (0, 0);
    // SAFETY: live handle, writable outputs.
    assert_eq!(
        unsafe { runq_handle_failure(h, &mut code, &mut attempts) },
        RUNQ_OK
    );
    assert_eq!((code, attempts), (103, 3));
    // SAFETY: live handle.
    assert_eq!(unsafe { runq_handle_status(h) }, RUNQ_FAILED);
    free_handle(h);
    free_pool(p);
}

#[test]
fn submissions_after_shutdown_and_past_capacity_are_refused_with_their_codes() {
    let gate = Gate::default();
    let mut c = config(1);
    c.capacity = 1;
    c.when_full = RUNQ_WHEN_FULL_REJECT;
    let mut p = null_mut();
    let calls = AtomicU32::new(0);
    let arg = &calls as *const AtomicU32 as *mut c_void;
    // SAFETY: valid config and out pointer; live pool below; args outlive it.
    unsafe {
        assert_eq!(runq_pool_new(&c, &mut p), RUNQ_OK);
        assert_eq!(
            runq_spawn(p, Some(hold), gate.as_arg(), RUNQ_PRIORITY_NORMAL),
            RUNQ_OK
        );
        gate.wait_started();
        assert_eq!(
            runq_spawn(p, Some(count_call), arg, RUNQ_PRIORITY_LOW),
            RUNQ_OK
        );
        assert_eq!(
            runq_spawn(p, Some(count_call), arg, RUNQ_PRIORITY_HIGH),
            RUNQ_FULL
        );
        let mut h = null_mut();
        assert_eq!(
            runq_submit(p, Some(count_and_echo), arg, null(), &mut h),
            RUNQ_FULL
        );
        gate.open();
        let mut report = runq_shutdown_report::default();
        assert_eq!(runq_pool_shutdown(p, &mut report), RUNQ_OK);
        assert_eq!((report.submitted, report.completed), (2, 2));
        assert_eq!(runq_spawn(p, Some(count_call), arg, 0), RUNQ_SHUT_DOWN);
        assert_eq!(
            runq_submit(p, Some(count_and_echo), arg, null(), &mut h),
            RUNQ_SHUT_DOWN
        );
        assert!(h.is_null());
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "only the accepted task ran"
    );
    free_pool(p);
}

#[test]
fn shutdown_now_cancels_waiting_tasks_and_every_task_ends_once() {
    let gate = Gate::default();
    let p = held_pool(&gate);
    let seen = Seen::default();
    let handles: Vec<_> = (0..5)
        .map(|i| submit(p, Some(echo), i as *mut c_void, &with_note(&seen)))
        .collect();
    let probes = AtomicU32::new(0);
    let pool_addr = p as usize;
    std::thread::scope(|s| {
        // The worker stays held until shutdown_now has stopped intake (seen
        // as a refused spawn), so no queued task can start; then the gate
        // opens and the held task finishes. Probes accepted before that
        // queue up behind the gate and are cancelled like the others.
        s.spawn(|| {
            let probe = &probes as *const AtomicU32 as *mut c_void;
            let start = Instant::now();
            // SAFETY: the pool is live until the scope ends; `probes`
            // outlives it.
            while unsafe { runq_spawn(pool_addr as *const runq_pool, Some(count_call), probe, 0) }
                == RUNQ_OK
                && start.elapsed() < PATIENCE
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            gate.open();
        });
        let mut report = runq_shutdown_report::default();
        // SAFETY: live pool, writable report.
        assert_eq!(unsafe { runq_pool_shutdown_now(p, &mut report) }, RUNQ_OK);
        assert_eq!(report.completed, 1, "only the held task ran");
        assert_eq!(
            report.cancelled,
            report.submitted - 1,
            "every queued task was cancelled"
        );
        assert_eq!(
            report.submitted,
            report.completed + report.failed + report.cancelled + report.expired
        );
    });
    assert_eq!(probes.load(Ordering::SeqCst), 0, "a probe ran");
    for h in handles {
        assert_eq!(wait(h, 0), (RUNQ_CANCELLED, null_mut()));
        free_handle(h);
    }
    assert_eq!(seen.calls.load(Ordering::SeqCst), 5);
    free_pool(p);
}

unsafe extern "C" fn spin_until_cancelled(arg: *mut c_void) -> *mut c_void {
    // SAFETY: the test passes a live Gate.
    let gate = unsafe { &*(arg as *const Gate) };
    {
        let mut g = gate.state.lock().unwrap();
        g.0 = true;
        gate.cv.notify_all();
    }
    let start = Instant::now();
    while runq_cancel_requested() == RUNQ_OK {
        if start.elapsed() > PATIENCE {
            return 0x6 as *mut c_void; // the cancel request never arrived
        }
        std::thread::yield_now();
    }
    0x5 as *mut c_void
}

#[test]
fn cancelling_a_running_task_reports_running_and_the_task_can_see_it() {
    assert_eq!(runq_cancel_requested(), RUNQ_OK, "outside any task");
    let p = pool(1);
    let gate = Gate::default();
    let h = submit(p, Some(spin_until_cancelled), gate.as_arg(), &opts());
    gate.wait_started();
    // SAFETY: live handle.
    assert_eq!(unsafe { runq_handle_cancel(h) }, RUNQ_RUNNING);
    assert_eq!(wait(h, RUNQ_WAIT_FOREVER), (RUNQ_OK, 0x5 as *mut c_void));
    // SAFETY: live handle; the task already ended.
    assert_eq!(unsafe { runq_handle_cancel(h) }, RUNQ_OK);
    free_handle(h);
    free_pool(p);
}

#[test]
fn a_freed_handle_detaches_and_its_task_still_runs() {
    let p = pool(1);
    let calls = AtomicU32::new(0);
    let seen = Seen::default();
    let h = submit(
        p,
        Some(count_and_echo),
        &calls as *const AtomicU32 as *mut c_void,
        &with_note(&seen),
    );
    free_handle(h);
    let mut h = std::ptr::dangling_mut::<runq_handle>();
    // SAFETY: a NULL out pointer detaches at once; live pool.
    unsafe {
        let arg = &calls as *const AtomicU32 as *mut c_void;
        assert_eq!(
            runq_submit(p, Some(count_and_echo), arg, null(), null_mut()),
            RUNQ_OK
        );
        assert_eq!(runq_pool_shutdown(p, null_mut()), RUNQ_OK);
        assert_eq!(
            runq_submit(p, Some(count_and_echo), arg, null(), &mut h),
            RUNQ_SHUT_DOWN
        );
    }
    assert_eq!(
        h,
        std::ptr::dangling_mut::<runq_handle>(),
        "a refused submission leaves *out alone"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(seen.calls.load(Ordering::SeqCst), 1);
    free_pool(p);
}

#[test]
fn status_strings_name_the_codes() {
    // SAFETY: runq_status_str returns static C strings.
    let name = |s| {
        unsafe { CStr::from_ptr(runq_status_str(s)) }
            .to_str()
            .unwrap()
    };
    assert_eq!(name(RUNQ_OK), "RUNQ_OK");
    assert_eq!(name(RUNQ_TIMEOUT), "RUNQ_TIMEOUT");
    assert_eq!(name(RUNQ_INVALID_ARGUMENT), "RUNQ_INVALID_ARGUMENT");
    assert_eq!(name(1000), "RUNQ_UNKNOWN_STATUS");
}

/// Submits `echo(0x77)` to the pool in `arg` and waits for it, from inside
/// a task; returns what the wait produced, or NULL on any failure.
unsafe extern "C" fn submit_and_wait(arg: *mut c_void) -> *mut c_void {
    let pool = arg as *const runq_pool;
    let mut inner = null_mut();
    let mut result = null_mut();
    // SAFETY: the test passes a live pool; `inner` and `result` are
    // writable, and `inner` is freed once.
    unsafe {
        if runq_submit(pool, Some(echo), 0x77 as *mut c_void, null(), &mut inner) != RUNQ_OK {
            return null_mut();
        }
        let status = runq_handle_wait(inner, PATIENCE.as_nanos() as u64, &mut result);
        runq_handle_free(inner);
        if status != RUNQ_OK {
            return null_mut();
        }
    }
    result
}

#[test]
fn a_task_may_wait_on_a_task_it_submitted_even_with_one_worker() {
    let p = pool(1);
    let h = submit(p, Some(submit_and_wait), p as *mut c_void, &opts());
    assert_eq!(
        wait(h, PATIENCE.as_nanos() as u64),
        (RUNQ_OK, 0x77 as *mut c_void)
    );
    free_handle(h);
    free_pool(p);
}

/// Dead letters a C callback saw: (task id, name, key, attempts, error).
type DeadSeen = Mutex<Vec<(u64, Option<String>, Option<String>, u32, String)>>;

unsafe extern "C" fn record_dead(letter: *const runq_dead_letter, user: *mut c_void) {
    // SAFETY: runq passes a live letter whose strings live for this call;
    // `user` is the test's `DeadSeen`, which outlives the pool.
    let (d, seen) = unsafe { (&*letter, &*(user as *const DeadSeen)) };
    let text = |p: *const std::ffi::c_char| {
        // SAFETY: NULL or a NUL-terminated string borrowed for this call.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned())
    };
    seen.lock().unwrap().push((
        d.task_id,
        text(d.name),
        text(d.key),
        d.attempts,
        text(d.error).expect("error is never NULL"),
    ));
}

#[test]
fn a_task_that_fails_for_good_reaches_the_dead_letter_callback_once_with_its_name() {
    let seen = DeadSeen::default();
    let mut c = config(2);
    c.dead_letter = Some(record_dead);
    c.dead_letter_user = &seen as *const DeadSeen as *mut c_void;
    let mut p = null_mut();
    // SAFETY: a valid config and a writable out pointer.
    assert_eq!(unsafe { runq_pool_new(&c, &mut p) }, RUNQ_OK);
    let arg = (AtomicU32::new(0), 0);
    let mut o = opts();
    o.retry_attempts = 2;
    o.name = c"resize-image".as_ptr();
    o.key = c"img-7".as_ptr();
    let h = submit_fallible(p, &arg, &o);
    assert_eq!(wait(h, RUNQ_WAIT_FOREVER), (RUNQ_FAILED, null_mut()));
    free_handle(h);
    // A success is no dead letter.
    let ok = (AtomicU32::new(0), 1);
    let h = submit_fallible(p, &ok, &opts());
    assert_eq!(wait(h, RUNQ_WAIT_FOREVER).0, RUNQ_OK);
    free_handle(h);
    // SAFETY: live pool; no report wanted.
    assert_eq!(unsafe { runq_pool_shutdown(p, null_mut()) }, RUNQ_OK);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let (_, name, key, attempts, error) = &seen[0];
    assert_eq!(name.as_deref(), Some("resize-image"));
    assert_eq!(key.as_deref(), Some("img-7"));
    assert_eq!(*attempts, 2);
    assert_eq!(error, "task function returned 102");
    let mut m = runq_pool_metrics::default();
    // SAFETY: live pool, writable metrics.
    assert_eq!(unsafe { runq_metrics(p, &mut m) }, RUNQ_OK);
    assert_eq!(m.dead_lettered, 1);
    free_pool(p);
}

#[test]
fn a_name_that_is_not_utf8_is_invalid_argument_and_the_task_never_runs() {
    let p = pool(1);
    let arg = (AtomicU32::new(0), 1u32);
    let mut o = opts();
    let bad = [0xffu8, 0xfe, 0];
    o.name = bad.as_ptr().cast();
    let mut h = null_mut();
    let argp = &arg as *const (AtomicU32, u32) as *mut c_void;
    // SAFETY: live pool, valid options (a NUL-terminated name), an arg that
    // outlives the call.
    assert_eq!(
        unsafe { runq_submit_fallible(p, Some(flaky), argp, &o, &mut h) },
        RUNQ_INVALID_ARGUMENT
    );
    assert!(h.is_null());
    free_pool(p);
    assert_eq!(arg.0.load(Ordering::SeqCst), 0);
}

#[test]
fn the_prometheus_text_is_a_runq_string_freed_by_runq_string_free() {
    let mut c = config(1);
    c.thread_name = c"cpool".as_ptr();
    let mut p = null_mut();
    // SAFETY: a valid config and a writable out pointer.
    assert_eq!(unsafe { runq_pool_new(&c, &mut p) }, RUNQ_OK);
    let h = submit_fallible(p, &(AtomicU32::new(0), 1), &opts());
    assert_eq!(wait(h, RUNQ_WAIT_FOREVER).0, RUNQ_OK);
    free_handle(h);
    let mut text = null_mut();
    // SAFETY: live pool, writable out pointer.
    assert_eq!(unsafe { runq_metrics_prometheus(p, &mut text) }, RUNQ_OK);
    // SAFETY: runq wrote a NUL-terminated string.
    let s = unsafe { CStr::from_ptr(text) }.to_str().unwrap().to_owned();
    assert!(
        s.contains("runq_tasks_submitted_total{pool=\"cpool\"} 1\n"),
        "{s}"
    );
    assert!(
        s.contains("runq_task_run_seconds_count{pool=\"cpool\"} 1\n"),
        "{s}"
    );
    // SAFETY: the string came from runq and is freed once.
    assert_eq!(unsafe { runq_string_free(text) }, RUNQ_OK);
    // SAFETY: NULL arguments are refused before anything is touched.
    unsafe {
        assert_eq!(runq_string_free(null_mut()), RUNQ_INVALID_ARGUMENT);
        let mut out = std::ptr::dangling_mut::<std::ffi::c_char>();
        assert_eq!(
            runq_metrics_prometheus(null(), &mut out),
            RUNQ_INVALID_ARGUMENT
        );
        assert!(out.is_null(), "the out pointer is cleared on failure");
        assert_eq!(
            runq_metrics_prometheus(p, null_mut()),
            RUNQ_INVALID_ARGUMENT
        );
    }
    free_pool(p);
}

#[test]
fn metrics_report_timer_entries_and_drop_panics() {
    let p = pool(1);
    let calls = AtomicU32::new(0);
    let arg = &calls as *const AtomicU32 as *mut c_void;
    let mut o = opts();
    o.delay_ns = 3600 * 1_000_000_000; // an hour: it stays in the timer
    let h = submit(p, Some(count_and_echo), arg, &o);
    let mut m = runq_pool_metrics::default();
    // SAFETY: live pool, writable metrics.
    assert_eq!(unsafe { runq_metrics(p, &mut m) }, RUNQ_OK);
    assert_eq!(m.delayed, 1);
    assert_eq!(m.timer_entries, 1, "the delay is one timer entry");
    assert_eq!(
        m.drop_panics, 0,
        "a C task has no value that panics on drop"
    );
    // SAFETY: live handle.
    assert_eq!(unsafe { runq_handle_cancel(h) }, RUNQ_CANCELLED);
    free_handle(h);
    let mut r = runq_shutdown_report::default();
    // SAFETY: live pool, writable report.
    assert_eq!(unsafe { runq_pool_shutdown(p, &mut r) }, RUNQ_OK);
    assert_eq!(r.cancelled, 1);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    free_pool(p);
}

#[test]
fn an_elastic_config_builds_a_pool_that_reports_its_worker_counts() {
    let mut c = config(1);
    c.max_workers = 2;
    c.keep_alive_ms = 3_600_000;
    let mut p = null_mut();
    // SAFETY: a valid config, writable `p`.
    assert_eq!(unsafe { runq_pool_new(&c, &mut p) }, RUNQ_OK);
    let mut m = runq_pool_metrics::default();
    // SAFETY: live pool, writable metrics.
    assert_eq!(unsafe { runq_metrics(p, &mut m) }, RUNQ_OK);
    assert_eq!((m.workers, m.live_workers, m.workers_started), (1, 1, 1));
    assert_eq!((m.peak_workers, m.workers_retired), (1, 0));
    free_pool(p);
}
