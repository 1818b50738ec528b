//! Helpers shared by the integration tests.
//!
//! The tests come in two families that differ in how long a single wait may
//! take before it counts as a hang, so the helpers are grouped by that limit:
//! [`limit_10s`] (gates and `wait`) and [`limit_30s`] (a pool that stops
//! itself when a test panics, `finish`, `occupy_worker`, `wait_until`).
//! Every test file uses only some of them.

#![allow(dead_code)]

/// A loop count sized for the interpreter the tests run in: `n` natively;
/// under Miri, which interprets every step and runs a test thousands of
/// times slower, a twentieth of it (but at least 2, or `n` itself if that is
/// smaller), so that each loop still repeats.
pub const fn scaled(n: usize) -> usize {
    if !cfg!(miri) {
        n
    } else if n / 20 > 2 {
        n / 20
    } else if n < 2 {
        n
    } else {
        2
    }
}

/// Threads of this process whose name starts with `prefix` (Linux only;
/// elsewhere nothing is counted). Under Miri, whose isolation forbids
/// reading /proc, it is always 0: tests that assert a count skip that
/// assertion there.
pub fn threads_named(prefix: &str) -> usize {
    if cfg!(miri) {
        return 0;
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm"))
                .map(|c| c.starts_with(prefix))
                .unwrap_or(false)
        })
        .count()
}

/// Waits until no thread of this process has a name starting with `prefix`.
/// A joined thread can stay listed in /proc for a moment after `join`
/// returns, so a count taken right after a join or drop can see it.
pub fn wait_threads_gone(prefix: &str) {
    limit_30s::wait_until(&format!("threads named {prefix}* to exit"), || {
        threads_named(prefix) == 0
    });
}

/// Helpers for tests in which any single wait may take 10 seconds.
pub mod limit_10s {
    #[allow(unused_imports)]
    pub use super::limit_30s::wait_until;

    use std::panic::{self, AssertUnwindSafe};
    use std::sync::{mpsc, Arc, Condvar, Mutex, Once};
    use std::thread;
    use std::time::Duration;

    use runq::{Handle, Pool, TaskError};

    /// How long any single wait in these tests may take before it counts as a hang.
    pub const LIMIT: Duration = Duration::from_secs(10);

    /// Marker in the message of every panic these tests raise on purpose.
    pub const INTENTIONAL: &str = "runq-test: intentional";

    pub fn wait<T: Send + 'static>(handle: Handle<T>) -> Result<T, TaskError> {
        match handle.wait_timeout(LIMIT) {
            Ok(result) => result,
            Err(handle) => panic!("task {} did not finish within {LIMIT:?}", handle.id()),
        }
    }

    /// A latch a task blocks on until the test opens it (or `LIMIT` passes).
    #[derive(Clone, Default)]
    pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

    impl Gate {
        pub fn open(&self) {
            *self.0 .0.lock().unwrap() = true;
            self.0 .1.notify_all();
        }

        pub fn wait(&self) {
            let (lock, cvar) = &*self.0;
            let guard = lock.lock().unwrap();
            let _unused = cvar
                .wait_timeout_while(guard, LIMIT, |open| !*open)
                .unwrap();
        }
    }

    /// Opens `gate` once `pool` is shut down (or after `LIMIT`): an order
    /// made certain by the state itself, not by a time window.
    pub fn open_when_shut_down(gate: &Gate, pool: &Pool) {
        let (gate, pool) = (gate.clone(), pool.clone());
        thread::spawn(move || {
            let start = std::time::Instant::now();
            while !pool.is_shut_down() && start.elapsed() < LIMIT {
                thread::sleep(Duration::from_millis(1));
            }
            gate.open();
            // After opening: were this the last clone, its drop would wait
            // for the gated task.
            drop(pool);
        });
    }

    /// Occupies one worker with a task that blocks on a gate; returns once it runs.
    pub fn occupy(pool: &Pool) -> (Gate, Handle<()>) {
        let gate = Gate::default();
        let (started_tx, started_rx) = mpsc::channel();
        let inner = gate.clone();
        let handle = pool
            .submit(move || {
                started_tx.send(()).unwrap();
                inner.wait();
            })
            .unwrap();
        started_rx.recv_timeout(LIMIT).unwrap();
        (gate, handle)
    }

    /// Runs `f` on a helper thread and fails the test if it does not return
    /// within `LIMIT`; a panic in `f` is passed on to the caller.
    pub fn bounded<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(panic::catch_unwind(AssertUnwindSafe(f)));
        });
        match rx.recv_timeout(LIMIT) {
            Ok(Ok(r)) => r,
            Ok(Err(payload)) => panic::resume_unwind(payload),
            Err(_) => panic!("{what} did not return within {LIMIT:?}"),
        }
    }

    /// Runs `f` on a helper thread and fails the test if it panics or does not
    /// return within `LIMIT`.
    pub fn bounded_no_panic<R: Send + 'static>(
        what: &str,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> R {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(panic::catch_unwind(AssertUnwindSafe(f)));
        });
        match rx.recv_timeout(LIMIT) {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => panic!("{what} panicked instead of returning a typed error"),
            Err(_) => panic!("{what} did not return within {LIMIT:?}"),
        }
    }

    /// Keeps intentional panics out of the test output; every other panic is
    /// reported as usual.
    pub fn quiet_intentional_panics() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let default = panic::take_hook();
            panic::set_hook(Box::new(move |info| {
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                if !msg.contains(INTENTIONAL) {
                    default(info);
                }
            }));
        });
    }
}

/// Helpers for tests in which any single wait may take 30 seconds.
pub mod limit_30s {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use runq::{Handle, Pool, TaskError};

    /// How long any single wait may take before the test calls it a hang.
    pub const LIMIT: Duration = Duration::from_secs(30);

    pub fn pool(workers: usize) -> TestPool {
        TestPool(
            Pool::builder()
                .workers(workers)
                .pin_workers(false)
                .build()
                .expect("build pool"),
        )
    }

    /// A pool that is stopped with `shutdown_now` when a test panics, so that a
    /// failing test never waits out the long delays it set up.
    pub struct TestPool(pub Pool);

    impl std::ops::Deref for TestPool {
        type Target = Pool;
        fn deref(&self) -> &Pool {
            &self.0
        }
    }

    impl Drop for TestPool {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.shutdown_now();
            }
        }
    }

    pub fn finish<T: Send + 'static>(h: Handle<T>) -> Result<T, TaskError> {
        match h.wait_timeout(LIMIT) {
            Ok(r) => r,
            Err(h) => panic!("task {} still {:?} after {LIMIT:?}", h.id(), h.status()),
        }
    }

    /// Occupies one worker until the returned sender is dropped.
    pub fn occupy_worker(pool: &Pool) -> (Handle<()>, mpsc::Sender<()>) {
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let h = pool
            .submit(move || {
                started_tx.send(()).unwrap();
                let _ = release_rx.recv_timeout(LIMIT);
            })
            .unwrap();
        started_rx
            .recv_timeout(LIMIT)
            .expect("the blocker never started");
        (h, release_tx)
    }

    /// Polls `cond` until it holds, panicking after `LIMIT`.
    pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(start.elapsed() < LIMIT, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
