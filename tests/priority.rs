//! Priorities on a busy one-worker pool: High before Normal before Low, with
//! the documented starvation bounds — after 16 consecutive High tasks a
//! waiting Normal task runs, and every 32nd search a worker takes a waiting
//! Low task first. A worker counts its searches from the moment it starts,
//! idle ones included, so where the 32nd falls is not known in advance: the
//! tests assert the bounds, not a phase.

use std::sync::{Arc, Mutex};

use runq::{Pool, Priority, Task};

mod common;

use common::limit_10s::{occupy, wait};
use common::scaled;

/// The documented bound: consecutive High tasks a worker runs while a Normal
/// task waits.
const HIGH_STREAK: usize = 16;

/// The documented aging period: a waiting Low task is taken at least every
/// this many picks.
const LOW_PERIOD: usize = 32;

/// Runs `tasks` (in submission order) on a fresh one-worker pool whose
/// worker is busy while they are queued, and returns the start order as
/// indices into `tasks`.
fn start_order(tasks: &[Priority]) -> Vec<usize> {
    let pool = Pool::builder().workers(1).build().unwrap();
    let (gate, blocker) = occupy(&pool);

    let log: Arc<Mutex<Vec<usize>>> = Arc::default();
    let handles: Vec<_> = tasks
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let log = log.clone();
            pool.submit_task(Task::new(move || log.lock().unwrap().push(i)).priority(p))
                .unwrap()
        })
        .collect();
    assert_eq!(
        pool.metrics().queued_high as usize,
        count(tasks, Priority::High)
    );
    gate.open();
    wait(blocker).unwrap();
    for h in handles {
        wait(h).unwrap();
    }
    let order = log.lock().unwrap().clone();
    assert_eq!(order.len(), tasks.len());
    order
}

fn count(tasks: &[Priority], p: Priority) -> usize {
    tasks.iter().filter(|&&q| q == p).count()
}

#[test]
fn high_runs_before_normal_before_low() {
    use Priority::{High, Low, Normal};
    // Interleaved, few enough that the High bound never applies.
    let tasks = [Low, Normal, High, Low, Normal, High, Low, Normal, High];
    let order = start_order(&tasks);
    let lanes = |keep: fn(Priority) -> bool| -> Vec<usize> {
        order.iter().copied().filter(|&i| keep(tasks[i])).collect()
    };
    // High first, then Normal, each FIFO.
    assert_eq!(
        lanes(|p| p != Low),
        [2, 5, 8, 1, 4, 7],
        "start order {order:?}"
    );
    assert_eq!(lanes(|p| p == Low), [0, 3, 6], "start order {order:?}");
    // Low waits for the others, except that aging may let one Low task in
    // early: at most one aging pick falls in fewer than LOW_PERIOD searches.
    let last_other = order.iter().rposition(|&i| tasks[i] != Low).unwrap();
    let early_lows = order[..last_other]
        .iter()
        .filter(|&&i| tasks[i] == Low)
        .count();
    assert!(early_lows <= 1, "start order {order:?}");
}

#[test]
fn high_submitted_last_overtakes_a_normal_backlog() {
    let mut tasks = vec![Priority::Normal; 10];
    tasks.push(Priority::High);
    let order = start_order(&tasks);
    assert_eq!(order[0], 10, "the High task starts first: {order:?}");
}

#[test]
fn normal_overtakes_a_low_backlog() {
    let mut tasks = vec![Priority::Low; 10];
    tasks.push(Priority::Normal);
    let order = start_order(&tasks);
    // First, unless the very first search was an aging pick for the Low lane.
    let position = order.iter().position(|&i| i == 10).unwrap();
    assert!(
        position <= 1,
        "the Normal task started at {position}: {order:?}"
    );
}

#[test]
fn a_waiting_normal_task_runs_after_sixteen_consecutive_high_tasks() {
    let mut tasks = vec![Priority::Normal];
    tasks.extend(std::iter::repeat_n(Priority::High, 40));
    let order = start_order(&tasks);
    let position = order.iter().position(|&i| i == 0).unwrap();
    assert_eq!(
        position, HIGH_STREAK,
        "the Normal task should start right after {HIGH_STREAK} High ones: {order:?}"
    );
}

#[test]
fn high_streaks_stay_bounded_while_normal_tasks_wait() {
    // 4 Normal tasks against 100 High: every run of consecutive High starts
    // while a Normal one waits is at most HIGH_STREAK long.
    let mut tasks = vec![Priority::Normal; 4];
    tasks.extend(std::iter::repeat_n(Priority::High, 100));
    let order = start_order(&tasks);
    let mut streak = 0;
    let mut normals_left = 4;
    for &i in &order {
        if tasks[i] == Priority::High {
            if normals_left > 0 {
                streak += 1;
                assert!(
                    streak <= HIGH_STREAK,
                    "more than {HIGH_STREAK} High in a row while Normal waited: {order:?}"
                );
            }
        } else {
            streak = 0;
            normals_left -= 1;
        }
    }
    // Normal tasks are FIFO among themselves.
    let normals: Vec<usize> = order.iter().copied().filter(|&i| i < 4).collect();
    assert_eq!(normals, [0, 1, 2, 3]);
}

#[test]
fn a_low_task_ages_into_service_under_a_normal_flood() {
    let mut tasks = vec![Priority::Low];
    tasks.extend(std::iter::repeat_n(Priority::Normal, 100));
    let order = start_order(&tasks);
    let position = order.iter().position(|&i| i == 0).unwrap();
    assert!(
        position < LOW_PERIOD,
        "the Low task waited {position} picks (bound {LOW_PERIOD}): {order:?}"
    );
}

#[test]
fn a_low_task_ages_into_service_under_a_high_flood() {
    let mut tasks = vec![Priority::Low];
    tasks.extend(std::iter::repeat_n(Priority::High, 100));
    let order = start_order(&tasks);
    let position = order.iter().position(|&i| i == 0).unwrap();
    assert!(
        position < LOW_PERIOD,
        "the Low task waited {position} picks (bound {LOW_PERIOD}): {order:?}"
    );
}

#[test]
fn low_tasks_keep_aging_in_during_a_long_flood() {
    // 3 Low tasks behind 200 Normal ones: the gap between consecutive Low
    // starts (while Low tasks wait) never exceeds the aging period.
    let mut tasks = vec![Priority::Low; 3];
    tasks.extend(std::iter::repeat_n(Priority::Normal, 200));
    let order = start_order(&tasks);
    let lows: Vec<usize> = order
        .iter()
        .enumerate()
        .filter(|(_, &i)| i < 3)
        .map(|(pos, _)| pos)
        .collect();
    assert_eq!(lows.len(), 3);
    assert!(lows[0] < LOW_PERIOD, "first Low at pick {}", lows[0]);
    for pair in lows.windows(2) {
        assert!(
            pair[1] - pair[0] <= LOW_PERIOD,
            "Low starts at {lows:?}: a gap exceeds {LOW_PERIOD}"
        );
    }
    let low_order: Vec<usize> = order.iter().copied().filter(|&i| i < 3).collect();
    assert_eq!(low_order, [0, 1, 2], "Low tasks are FIFO among themselves");
}

#[test]
fn everything_queued_eventually_runs_under_mixed_load() {
    use Priority::{High, Low, Normal};
    let count = scaled(300);
    let tasks: Vec<Priority> = (0..count)
        .map(|i| match i % 3 {
            0 => High,
            1 => Normal,
            _ => Low,
        })
        .collect();
    let mut order = start_order(&tasks);
    order.sort_unstable();
    assert_eq!(order, (0..count).collect::<Vec<_>>());
}
