//! The same lifecycle scenarios on a pool with workers, an inline pool and
//! a manual pool give the same outcomes: the test modes run the engine's own
//! code, not a simulation of it.
//!
//! Each scenario submits its tasks, lets the pool bring every one of them
//! to its end (`settle`: on workers, waiting; on a manual pool, running and
//! advancing the clock), and describes what happened: each handle's
//! outcome, the callbacks' log (sorted: workers finish in any order) and
//! the pool's final counts. The three descriptions must be equal.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runq::{DeadLetter, Handle, Jitter, ManualDriver, Pool, Retry, SubmitError, Task, TaskError};

const MS: Duration = Duration::from_millis(1);
/// Long enough that nothing with this delay runs during a test.
const NEVER: Duration = Duration::from_secs(3600);
/// How long settling a pool with workers may take before it counts as a hang.
const LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
enum Mode {
    Workers,
    Inline,
    Manual,
}

const MODES: [Mode; 3] = [Mode::Workers, Mode::Inline, Mode::Manual];

struct Harness {
    pool: Pool,
    driver: Option<ManualDriver>,
    log: Arc<Mutex<Vec<String>>>,
    outcomes: Vec<String>,
}

impl Harness {
    fn new(mode: Mode) -> Harness {
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let dead = log.clone();
        let builder = Pool::builder().on_dead_letter(move |d: &DeadLetter| {
            dead.lock().unwrap().push(format!(
                "dead letter: {:?} after {} attempt(s): {}",
                d.name, d.attempts, d.error
            ))
        });
        let (pool, driver) = match mode {
            Mode::Workers => (builder.workers(2).pin_workers(false).build().unwrap(), None),
            Mode::Inline => (builder.inline().build().unwrap(), None),
            Mode::Manual => {
                let (pool, driver) = builder.build_manual().unwrap();
                (pool, Some(driver))
            }
        };
        Harness {
            pool,
            driver,
            log,
            outcomes: Vec::new(),
        }
    }

    /// A callback that logs `name` and the outcome's shape.
    fn logger<T: std::fmt::Debug>(
        &self,
        name: &str,
    ) -> impl FnOnce(&Result<T, TaskError>) + Send + 'static {
        let (log, name) = (self.log.clone(), name.to_owned());
        move |r| log.lock().unwrap().push(format!("{name}: {}", shape(r)))
    }

    /// Brings every accepted task to a terminal state.
    fn settle(&self) {
        match &self.driver {
            Some(driver) => loop {
                driver.run_until_idle();
                if self.pool.metrics().in_flight == 0 {
                    return;
                }
                driver.advance(MS);
            },
            None => {
                let start = Instant::now();
                while self.pool.metrics().in_flight != 0 {
                    assert!(start.elapsed() < LIMIT, "the pool did not settle");
                    std::thread::sleep(MS);
                }
            }
        }
    }

    fn record<T: Send + std::fmt::Debug + 'static>(&mut self, name: &str, h: Handle<T>) {
        let r = h.wait();
        self.outcomes.push(format!("{name}: {}", shape(&r)));
    }

    /// What happened, in a form the three modes can be compared by.
    fn describe(self) -> (Vec<String>, Vec<String>, [u64; 8]) {
        self.settle();
        let mut log = self.log.lock().unwrap().clone();
        log.sort();
        let m = self.pool.metrics();
        let counts = [
            m.dead_lettered,
            m.submitted,
            m.completed,
            m.failed,
            m.cancelled,
            m.expired,
            m.retried,
            m.panicked,
        ];
        (self.outcomes, log, counts)
    }
}

fn shape<T: std::fmt::Debug>(r: &Result<T, TaskError>) -> String {
    match r {
        Ok(v) => format!("Ok({v:?})"),
        Err(TaskError::Failed { attempts, error }) => format!("Failed({attempts}, {error})"),
        Err(e) => format!("{e:?}"),
    }
}

/// Runs `scenario` in every mode and checks that all agree.
fn agree(scenario: impl Fn(&mut Harness)) {
    agree_in(&MODES, scenario);
}

/// Scenarios that act on a task while it still waits (cancel it, collide
/// with its key, shut down around it) cannot run on an inline pool, where
/// no task is left waiting once `submit` returns: they compare workers and
/// a manual pool.
const WAITING_MODES: [Mode; 2] = [Mode::Workers, Mode::Manual];

fn agree_in(modes: &[Mode], scenario: impl Fn(&mut Harness)) {
    let results: Vec<_> = modes
        .iter()
        .map(|&mode| {
            let mut h = Harness::new(mode);
            scenario(&mut h);
            (mode, h.describe())
        })
        .collect();
    for (mode, r) in &results[1..] {
        assert_eq!(
            r, &results[0].1,
            "{mode:?} disagrees with {:?}",
            results[0].0
        );
    }
}

fn flaky(failures: u32) -> impl FnMut() -> Result<u32, String> + Send {
    let runs = Arc::new(AtomicU32::new(0));
    move || {
        let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= failures {
            Err(format!("attempt {n}"))
        } else {
            Ok(n)
        }
    }
}

#[test]
fn retries_with_backoff_agree() {
    agree(|h| {
        let ok = h
            .pool
            .submit_task(
                Task::fallible(flaky(2))
                    .retry(Retry::exponential(3, 2 * MS).jitter(Jitter::None))
                    .on_complete(h.logger("ok")),
            )
            .unwrap();
        let bad = h
            .pool
            .submit_task(
                Task::fallible(flaky(u32::MAX))
                    .retry(Retry::fixed(3, MS))
                    .on_complete(h.logger("bad")),
            )
            .unwrap();
        h.settle();
        h.record("ok", ok);
        h.record("bad", bad);
    });
}

#[test]
fn dead_letters_and_retry_predicates_agree() {
    agree(|h| {
        let used_up = h
            .pool
            .submit_task(
                Task::fallible(flaky(u32::MAX))
                    .name("used up")
                    .retry(Retry::fixed(3, MS)),
            )
            .unwrap();
        let permanent = h
            .pool
            .submit_task(
                Task::fallible(|| -> Result<u32, String> { Err("permanent".into()) })
                    .name("permanent")
                    .retry(Retry::fixed(5, MS).retry_if(|e| e.to_string() != "permanent")),
            )
            .unwrap();
        let recovered = h
            .pool
            .submit_task(
                Task::fallible(flaky(1))
                    .name("recovered")
                    .retry(Retry::fixed(2, MS)),
            )
            .unwrap();
        h.settle();
        h.record("used up", used_up);
        h.record("permanent", permanent);
        h.record("recovered", recovered);
    });
}

#[test]
fn delays_and_deadlines_agree() {
    agree(|h| {
        let delayed = h
            .pool
            .submit_task(
                Task::new(|| 1)
                    .delay(3 * MS)
                    .on_complete(h.logger("delayed")),
            )
            .unwrap();
        let in_time = h.pool.submit_task(Task::new(|| 2).deadline(NEVER)).unwrap();
        let too_late = h
            .pool
            .submit_task(
                Task::new(|| 3)
                    .delay(NEVER)
                    .deadline(5 * MS)
                    .on_complete(h.logger("too late")),
            )
            .unwrap();
        h.settle();
        h.record("delayed", delayed);
        h.record("in time", in_time);
        h.record("too late", too_late);
    });
}

#[test]
fn keys_agree() {
    agree_in(&WAITING_MODES, |h| {
        let first = h
            .pool
            .submit_task(Task::new(|| 1).key("k").delay(2 * MS))
            .unwrap();
        let dup = h.pool.submit_task(Task::new(|| 2).key("k"));
        h.outcomes.push(format!("dup: {:?}", dup.err()));
        h.settle();
        h.record("first", first);
        let again = h.pool.submit_task(Task::new(|| 3).key("k")).unwrap();
        h.settle();
        h.record("again", again);
    });
}

#[test]
fn cancel_agrees() {
    agree_in(&WAITING_MODES, |h| {
        let delayed = h
            .pool
            .submit_task(
                Task::new(|| 1)
                    .delay(NEVER)
                    .on_complete(h.logger("delayed")),
            )
            .unwrap();
        h.outcomes.push(format!("cancel: {}", delayed.cancel()));
        h.outcomes.push(format!("again: {}", delayed.cancel()));
        let done = h.pool.submit(|| 2).unwrap();
        h.settle();
        h.outcomes.push(format!("after the end: {}", done.cancel()));
        h.record("delayed", delayed);
        h.record("done", done);
    });
}

#[test]
fn guards_batches_and_panics_agree() {
    agree(|h| {
        let refused = h
            .pool
            .submit_task(
                Task::new(|| 1)
                    .guard(|| false)
                    .on_complete(h.logger("refused")),
            )
            .unwrap();
        let allowed = h.pool.submit_task(Task::new(|| 2).guard(|| true)).unwrap();
        let batch = h
            .pool
            .submit_batch(
                (0..3)
                    .map(|i| Task::new(move || i * 10).on_complete(h.logger("batch")))
                    .collect(),
            )
            .unwrap();
        let bad_batch = h
            .pool
            .submit_batch(vec![Task::new(|| 0).key("x"), Task::new(|| 0).key("x")]);
        h.outcomes.push(format!("bad batch: {:?}", bad_batch.err()));
        let boom = h.pool.submit(|| -> u32 { panic!("boom") }).unwrap();
        h.settle();
        h.record("refused", refused);
        h.record("allowed", allowed);
        for (i, b) in batch.into_iter().enumerate() {
            h.record(&format!("batch {i}"), b);
        }
        h.record("boom", boom);
    });
}

#[test]
fn shutdown_agrees() {
    agree(|h| {
        let delayed = h
            .pool
            .submit_task(
                Task::new(|| 1)
                    .delay(2 * MS)
                    .on_complete(h.logger("delayed")),
            )
            .unwrap();
        // On workers this waits for the delayed task; on a manual pool it
        // only closes intake, and `settle` drives the rest.
        h.pool.shutdown();
        let refused = h.pool.submit(|| 2);
        h.outcomes
            .push(format!("after shutdown: {:?}", refused.err()));
        h.settle();
        h.record("delayed", delayed);
    });
    agree_in(&WAITING_MODES, |h| {
        let never = h
            .pool
            .submit_task(Task::new(|| 1).delay(NEVER).on_complete(h.logger("never")))
            .unwrap();
        let report = h.pool.shutdown_now();
        h.outcomes.push(format!(
            "report: cancelled {} in flight {}",
            report.cancelled, report.in_flight
        ));
        h.outcomes.push(format!(
            "after shutdown: {:?}",
            h.pool
                .submit(|| 2)
                .err()
                .map(|e| e == SubmitError::ShutDown)
        ));
        h.record("never", never);
    });
}
