//! The Prometheus text is checked by a real parser: `promtool check
//! metrics` (Debian package `prometheus`, installed by `.ci/run`), and by
//! the format's own rules read back here (cumulative buckets, `+Inf` equal
//! to `_count`, one `# TYPE` per family).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use runq::{Metrics, Pool, Priority, Retry, Task};

mod common;

use common::limit_30s::finish;

/// A pool with some of everything: three lanes, a retry, a failure, a
/// dead letter, a panic, a cancel.
fn busy_pool(name: &str) -> Pool {
    common::limit_10s::quiet_intentional_panics();
    let pool = Pool::builder()
        .workers(2)
        .pin_workers(false)
        .thread_name(name)
        .build()
        .unwrap();
    let mut handles = Vec::new();
    for (i, p) in [Priority::High, Priority::Normal, Priority::Low]
        .into_iter()
        .cycle()
        .take(30)
        .enumerate()
    {
        handles.push(
            pool.submit_task(Task::new(move || i).priority(p).name(format!("job-{i}")))
                .unwrap(),
        );
    }
    for h in handles {
        finish(h).unwrap();
    }
    let flaky = pool
        .submit_task(
            Task::fallible(|| Err::<(), _>("always"))
                .retry(Retry::fixed(2, Duration::from_millis(1))),
        )
        .unwrap();
    assert!(finish(flaky).is_err());
    let boom = pool
        .submit(|| panic!("{}", common::limit_10s::INTENTIONAL))
        .unwrap();
    assert!(finish(boom).is_err());
    let later = pool
        .submit_task(Task::new(|| ()).delay(Duration::from_secs(3600)))
        .unwrap();
    assert!(later.cancel());
    pool
}

/// `promtool`, if installed.
fn promtool() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file())
}

#[test]
fn promtool_accepts_the_text_of_one_pool_and_of_two() {
    let a = busy_pool("alpha").metrics();
    let b = busy_pool("beta").metrics();
    let Some(promtool) = promtool() else {
        assert!(
            std::env::var_os("RUNQ_REQUIRE_PROMTOOL").is_none(),
            "promtool is required (RUNQ_REQUIRE_PROMTOOL) but not on PATH"
        );
        eprintln!("promtool not found (Debian package `prometheus`): parser check skipped");
        return;
    };
    for text in [a.to_prometheus(), Metrics::prometheus_of(&[a.clone(), b])] {
        let mut child = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "promtool: {:?}\n{}{}\n--- text ---\n{text}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The samples of a text: `name{labels}` -> value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("a sample line is `name value`");
            (k.to_owned(), v.parse::<f64>().expect("a float value"))
        })
        .collect()
}

#[test]
fn the_text_holds_every_family_with_the_snapshot_values() {
    let pool = busy_pool("gamma");
    pool.shutdown();
    let m = pool.metrics();
    let text = m.to_prometheus();
    let s = samples(&text);
    let get = |k: &str| *s.get(k).unwrap_or_else(|| panic!("no sample {k}\n{text}"));
    assert_eq!(
        get("runq_tasks_submitted_total{pool=\"gamma\"}"),
        m.submitted as f64
    );
    assert_eq!(
        get("runq_tasks_finished_total{pool=\"gamma\",outcome=\"succeeded\"}"),
        30.0
    );
    assert_eq!(
        get("runq_tasks_finished_total{pool=\"gamma\",outcome=\"failed\"}"),
        2.0
    );
    assert_eq!(
        get("runq_tasks_finished_total{pool=\"gamma\",outcome=\"cancelled\"}"),
        1.0
    );
    assert_eq!(
        get("runq_tasks_finished_total{pool=\"gamma\",outcome=\"expired\"}"),
        0.0
    );
    assert_eq!(get("runq_task_panics_total{pool=\"gamma\"}"), 1.0);
    assert_eq!(get("runq_task_retries_total{pool=\"gamma\"}"), 1.0);
    assert_eq!(get("runq_tasks_dead_lettered_total{pool=\"gamma\"}"), 2.0);
    assert_eq!(get("runq_workers{pool=\"gamma\"}"), 2.0);
    assert_eq!(get("runq_tasks_in_flight{pool=\"gamma\"}"), 0.0);
    for k in ["runq_steals_total", "runq_worker_parks_total"] {
        get(&format!("{k}{{pool=\"gamma\"}}"));
    }
    for lane in ["high", "normal", "low", "delayed"] {
        assert_eq!(
            get(&format!(
                "runq_queue_depth{{pool=\"gamma\",lane=\"{lane}\"}}"
            )),
            0.0
        );
    }
    // Histograms: buckets cumulative, +Inf equal to _count, counts as the snapshot.
    let hists = [
        (
            "runq_task_queue_wait_seconds",
            ",lane=\"high\"",
            &m.queue_wait_high,
        ),
        (
            "runq_task_queue_wait_seconds",
            ",lane=\"normal\"",
            &m.queue_wait_normal,
        ),
        (
            "runq_task_queue_wait_seconds",
            ",lane=\"low\"",
            &m.queue_wait_low,
        ),
        ("runq_task_run_seconds", "", &m.run_time),
    ];
    for (name, lane, h) in hists {
        let prefix = format!("{name}_bucket{{pool=\"gamma\"{lane},le=");
        let buckets: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap())
            .collect();
        assert_eq!(buckets.len(), 23, "{name}{lane}: 22 bounds and +Inf");
        assert!(
            buckets.windows(2).all(|w| w[0] <= w[1]),
            "{name}{lane} not cumulative"
        );
        let count = get(&format!("{name}_count{{pool=\"gamma\"{lane}}}"));
        assert_eq!(*buckets.last().unwrap(), count);
        assert_eq!(count, h.count() as f64);
        get(&format!("{name}_sum{{pool=\"gamma\"{lane}}}"));
    }
    // 30 tasks over three lanes, plus the retried task's two attempts and
    // the panic in Normal; every attempt that started has a run time.
    assert_eq!(m.queue_wait_high.count(), 10);
    assert_eq!(m.queue_wait_low.count(), 10);
    assert_eq!(m.queue_wait_normal.count(), 13);
    assert_eq!(m.run_time.count(), 33);
    // Names are never labels.
    assert!(!text.contains("job-"));
}

#[test]
fn pool_names_are_escaped_in_labels() {
    let pool = Pool::builder()
        .workers(1)
        .pin_workers(false)
        .thread_name("a\"b\\c")
        .build()
        .unwrap();
    let text = pool.metrics().to_prometheus();
    assert!(
        text.contains("runq_workers{pool=\"a\\\"b\\\\c\"} 1\n"),
        "{text}"
    );
}
