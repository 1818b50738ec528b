//! Admission wake-ups: a released permit wakes one blocked submitter.

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::Admission;

const LIMIT: Duration = Duration::from_secs(30);

/// Whether thread `tid` of this process sleeps (or has exited). Each waiter
/// below does nothing between announcing itself and parking that could put
/// it to sleep, so a sleeping waiter is parked on the admission's futex.
fn asleep(tid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")) else {
        return true;
    };
    let state = stat.rsplit_once(')').map(|(_, r)| r.trim_start());
    matches!(state.and_then(|r| r.chars().next()), Some('S' | 'D'))
}

fn wait_all_asleep(tids: &[i32]) {
    let start = Instant::now();
    while !tids.iter().all(|&t| asleep(t)) {
        assert!(start.elapsed() < LIMIT, "the waiters never went to sleep");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn each_released_permit_wakes_exactly_one_blocked_submitter() {
    const WAITERS: usize = 4;
    let admission = Arc::new(Admission::new(Some(1)));
    admission.acquire(1, false, || false).unwrap(); // full
    let (tid_tx, tid_rx) = mpsc::channel();
    let (in_tx, in_rx) = mpsc::channel();
    let threads: Vec<_> = (0..WAITERS)
        .map(|_| {
            let (admission, tid_tx, in_tx) = (admission.clone(), tid_tx.clone(), in_tx.clone());
            std::thread::spawn(move || {
                // SAFETY: gettid has no preconditions.
                tid_tx.send(unsafe { libc::gettid() }).unwrap();
                admission.acquire(1, true, || false).unwrap();
                in_tx.send(()).unwrap();
            })
        })
        .collect();
    let tids: Vec<i32> = (0..WAITERS)
        .map(|_| tid_rx.recv_timeout(LIMIT).unwrap())
        .collect();
    wait_all_asleep(&tids);
    assert_eq!(admission.wakeups.load(Ordering::SeqCst), 0);
    for round in 1..=WAITERS {
        // One permit: exactly one waiter gets in, and it is the only one
        // woken (the others stay asleep rather than wake to find no room).
        admission.release(1);
        in_rx
            .recv_timeout(LIMIT)
            .expect("a released permit let nobody in");
        wait_all_asleep(&tids);
        assert!(
            in_rx.try_recv().is_err(),
            "round {round}: two got one permit"
        );
        assert_eq!(
            admission.wakeups.load(Ordering::SeqCst),
            round,
            "round {round}: one release woke more than one blocked submitter"
        );
    }
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_batch_waiting_for_two_permits_does_not_swallow_a_single_submitters_wake() {
    let admission = Arc::new(Admission::new(Some(2)));
    admission.acquire(2, false, || false).unwrap(); // full
    let (tid_tx, tid_rx) = mpsc::channel();
    let (in_tx, in_rx) = mpsc::channel();
    let spawn = |n: usize| {
        let (admission, tid_tx, in_tx) = (admission.clone(), tid_tx.clone(), in_tx.clone());
        std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tid_tx.send(unsafe { libc::gettid() }).unwrap();
            admission.acquire(n, true, || false).unwrap();
            in_tx.send(n).unwrap();
        })
    };
    let batch = spawn(2);
    let single = spawn(1);
    let tids: Vec<i32> = (0..2)
        .map(|_| tid_rx.recv_timeout(LIMIT).unwrap())
        .collect();
    wait_all_asleep(&tids);
    // One permit back: only the single submitter can use it.
    admission.release(1);
    assert_eq!(
        in_rx.recv_timeout(LIMIT),
        Ok(1),
        "the single submitter stayed blocked"
    );
    single.join().unwrap();
    // Both permits back: the batch gets in.
    admission.release(2);
    assert_eq!(in_rx.recv_timeout(LIMIT), Ok(2));
    batch.join().unwrap();
}
