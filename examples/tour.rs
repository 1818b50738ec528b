//! A tour of runq: each step does one thing and prints what happened.
//!
//! Run it with `cargo run --release --example tour`.

use std::error::Error;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use runq::{Pool, Priority, Retry, SubmitError, Task, TaskError, WhenFull};

fn step(title: &str) {
    println!("\n== {title}");
}

/// Occupies the single worker of `pool` until the returned sender is used
/// (or dropped), so the next tasks stay queued.
fn occupy(pool: &Pool) -> mpsc::Sender<()> {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel();
    pool.spawn(move || {
        started_tx.send(()).unwrap();
        let _ = release_rx.recv();
    })
    .unwrap();
    started_rx.recv().unwrap();
    release_tx
}

fn fib(n: u64) -> u64 {
    if n < 20 {
        return (1..=n).fold((0, 1), |(a, b), _| (b, a + b)).0;
    }
    let (a, b) = runq::join(|| fib(n - 1), || fib(n - 2));
    a + b
}

fn main() -> Result<(), Box<dyn Error>> {
    step("build a pool");
    let pool = Pool::builder().workers(2).thread_name("tour").build()?;
    let m = pool.metrics();
    println!(
        "{} workers, {} pinned to a core",
        pool.workers(),
        m.pinned_workers
    );

    step("submit and wait");
    let h = pool.submit(|| 40 + 2)?;
    println!("{} returned {}", h.id(), h.wait()?);
    let (tx, rx) = mpsc::channel();
    pool.spawn(move || tx.send(runq::current_worker()).unwrap())?;
    println!("a spawned task ran on worker {:?}", rx.recv()?);

    step("priorities on a busy one-worker pool");
    let single = Pool::builder().workers(1).build()?;
    let release = occupy(&single);
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for (name, p) in [
        ("low", Priority::Low),
        ("normal", Priority::Normal),
        ("high", Priority::High),
    ] {
        let order = order.clone();
        handles.push(
            single.submit_task(Task::new(move || order.lock().unwrap().push(name)).priority(p))?,
        );
    }
    println!("queued low, normal, high while the worker was busy");
    release.send(())?;
    for h in handles {
        h.wait()?;
    }
    println!("they started in this order: {:?}", order.lock().unwrap());

    step("fork-join");
    let (a, b) = pool.join(|| (1..=1000u64).sum::<u64>(), || fib(25));
    println!("pool.join: sum 1..=1000 = {a}, fib(25) = {b}");
    let h = pool.submit(|| fib(30))?;
    println!("fib(30) through runq::join inside a task = {}", h.wait()?);

    step("scope: tasks that borrow the caller's stack");
    let mut squares = vec![0u64; 8];
    pool.scope(|s| {
        for (i, slot) in squares.iter_mut().enumerate() {
            s.spawn(move |_| *slot = (i * i) as u64);
        }
    });
    println!("filled in place: {squares:?}");

    step("a panic is caught");
    std::panic::set_hook(Box::new(|_| {}));
    let h = pool.submit(|| -> u32 { panic!("a bug in one task") })?;
    match h.wait() {
        Err(TaskError::Panicked(msg)) => println!("the handle says: panicked with {msg:?}"),
        other => println!("unexpected: {other:?}"),
    }
    let _ = std::panic::take_hook();
    println!("the pool still works: {}", pool.submit(|| "yes")?.wait()?);

    step("cancellation");
    let release = occupy(&single);
    let h = single.submit(|| println!("this never prints"))?;
    println!("status while queued: {:?}", h.status());
    println!("cancel() -> {} (it will never run)", h.cancel());
    println!("status now: {:?}", h.status());
    release.send(())?;
    println!("wait() -> {:?}", h.wait());

    step("backpressure");
    let bounded = Pool::builder()
        .workers(1)
        .capacity(2)
        .when_full(WhenFull::Reject)
        .build()?;
    let release = occupy(&bounded);
    let queued: Vec<_> = (0..2)
        .map(|i| bounded.submit(move || i))
        .collect::<Result<_, _>>()?;
    println!("capacity 2, two tasks queued behind a busy worker");
    match bounded.submit(|| 3) {
        Err(SubmitError::Full) => println!("a third submit is refused: {}", SubmitError::Full),
        other => println!("unexpected: {other:?}"),
    }
    let refused = bounded.try_submit_task(Task::new(|| 4)).unwrap_err();
    println!(
        "try_submit_task never blocks and hands the task back ({})",
        refused.error
    );
    release.send(())?;
    for h in queued {
        h.wait()?;
    }
    let back = bounded.submit_task(refused.into_task())?;
    println!("resubmitted once there was room: {}", back.wait()?);

    step("retries with backoff");
    let tries = Arc::new(AtomicU32::new(0));
    let t = tries.clone();
    let h = pool.submit_task(
        Task::fallible(move || {
            let n = t.fetch_add(1, Ordering::SeqCst) + 1;
            println!("  attempt {n}");
            if n < 3 {
                Err(format!("flaky service, attempt {n}"))
            } else {
                Ok(n)
            }
        })
        .retry(Retry::exponential(5, Duration::from_millis(10))),
    )?;
    println!("succeeded on attempt {}", h.wait()?);

    step("a delayed task");
    let start = Instant::now();
    let h =
        pool.submit_task(Task::new(move || start.elapsed()).delay(Duration::from_millis(50)))?;
    println!("status right after submit: {:?}", h.status());
    println!("asked for 50ms, started after {:?}", h.wait()?);

    step("a deadline");
    let release = occupy(&single);
    let h = single.submit_task(
        Task::new(|| println!("this never prints either")).deadline(Duration::from_millis(20)),
    )?;
    thread::sleep(Duration::from_millis(40));
    release.send(())?;
    println!("not started within 20ms: {:?}", h.wait());

    step("an idempotency key");
    let release = occupy(&single);
    let first = single.submit_task(Task::new(|| "first").key("order-17"))?;
    match single.submit_task(Task::new(|| "second").key("order-17")) {
        Err(e) => println!("the second submit with key order-17 is refused: {e}"),
        Ok(_) => println!("unexpected: the duplicate was accepted"),
    }
    release.send(())?;
    println!("the first one ran: {}", first.wait()?);

    step("a completion callback");
    let (tx, rx) = mpsc::channel();
    let h = pool.submit_task(Task::new(|| 6 * 7).on_complete(move |r| {
        tx.send(format!("callback saw {r:?}")).unwrap();
    }))?;
    h.wait()?;
    println!("{}", rx.recv()?);

    step("metrics");
    let m = pool.metrics();
    println!(
        "submitted {}, completed {}, failed {}, panicked {}, retried {}, stolen {}, parks {}",
        m.submitted, m.completed, m.failed, m.panicked, m.retried, m.stolen, m.parks
    );

    step("shutdown");
    let count = Arc::new(AtomicUsize::new(0));
    for _ in 0..100 {
        let count = count.clone();
        pool.spawn(move || {
            count.fetch_add(1, Ordering::SeqCst);
        })?;
    }
    let report = pool.shutdown();
    println!(
        "shutdown drained the queue ({} of 100 ran): {report:?}",
        count.load(Ordering::SeqCst)
    );
    println!(
        "submit after shutdown -> {:?}",
        pool.submit(|| ()).map(|_| ())
    );
    let report = single.shutdown_now();
    println!("the one-worker pool: {report:?}");
    drop(bounded);
    println!("\ndone");
    Ok(())
}
