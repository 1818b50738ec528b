//! [`Metrics::to_prometheus`]: the Prometheus text exposition format
//! (version 0.0.4).
//!
//! Every sample carries `pool="<name>"` (the builder's thread-name prefix),
//! so several pools can share one scrape: [`Metrics::prometheus_of`] writes
//! them under one `# HELP`/`# TYPE` header per family, as the format
//! requires. Task names and keys are never labels: they are unbounded, and
//! every distinct label value is a time series to the server.

use std::fmt::Write;

use crate::histogram::Histogram;
use crate::metrics::Metrics;

/// What a family is, for its `# TYPE` line.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One family: its name, type, help text, and how to read its samples
/// (extra label, value) from one pool's metrics.
struct Family {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    samples: fn(&Metrics) -> Vec<Sample<'_>>,
}

/// A sample: its extra label (beside `pool`), if any, and its value.
type Sample<'a> = (Option<(&'static str, &'static str)>, Value<'a>);

enum Value<'a> {
    Int(u64),
    Hist(&'a Histogram),
}

const FAMILIES: &[Family] = &[
    Family {
        name: "runq_tasks_submitted_total",
        kind: Kind::Counter,
        help: "Tasks accepted by the pool.",
        samples: |m| vec![(None, Value::Int(m.submitted))],
    },
    Family {
        name: "runq_tasks_finished_total",
        kind: Kind::Counter,
        help: "Tasks that reached a terminal state, by outcome.",
        samples: |m| {
            vec![
                (Some(("outcome", "succeeded")), Value::Int(m.completed)),
                (Some(("outcome", "failed")), Value::Int(m.failed)),
                (Some(("outcome", "cancelled")), Value::Int(m.cancelled)),
                (Some(("outcome", "expired")), Value::Int(m.expired)),
            ]
        },
    },
    Family {
        name: "runq_task_panics_total",
        kind: Kind::Counter,
        help: "Panics caught in task bodies, every attempt counted.",
        samples: |m| vec![(None, Value::Int(m.panicked))],
    },
    Family {
        name: "runq_task_retries_total",
        kind: Kind::Counter,
        help: "Re-runs scheduled by retry policies.",
        samples: |m| vec![(None, Value::Int(m.retried))],
    },
    Family {
        name: "runq_tasks_dead_lettered_total",
        kind: Kind::Counter,
        help: "Tasks that failed for good (attempts used up or refused by retry_if).",
        samples: |m| vec![(None, Value::Int(m.dead_lettered))],
    },
    Family {
        name: "runq_steals_total",
        kind: Kind::Counter,
        help: "Jobs a worker took from another worker's deque.",
        samples: |m| vec![(None, Value::Int(m.stolen))],
    },
    Family {
        name: "runq_worker_parks_total",
        kind: Kind::Counter,
        help: "Times a worker went to sleep.",
        samples: |m| vec![(None, Value::Int(m.parks))],
    },
    Family {
        name: "runq_workers",
        kind: Kind::Gauge,
        help: "Worker threads running now (an elastic pool's changes).",
        samples: |m| vec![(None, Value::Int(m.live_workers))],
    },
    Family {
        name: "runq_tasks_in_flight",
        kind: Kind::Gauge,
        help: "Tasks accepted and not yet in a terminal state.",
        samples: |m| vec![(None, Value::Int(m.in_flight))],
    },
    Family {
        name: "runq_queue_depth",
        kind: Kind::Gauge,
        help: "Tasks waiting, by lane (delayed: held by the timer for a delay or a retry backoff).",
        samples: |m| {
            vec![
                (Some(("lane", "high")), Value::Int(m.queued_high)),
                (Some(("lane", "normal")), Value::Int(m.queued_normal)),
                (Some(("lane", "low")), Value::Int(m.queued_low)),
                (Some(("lane", "delayed")), Value::Int(m.delayed)),
            ]
        },
    },
    Family {
        name: "runq_task_queue_wait_seconds",
        kind: Kind::Histogram,
        help: "Time from ready (submitted, or due after a delay or backoff) to the start of an attempt, by lane.",
        samples: |m| {
            vec![
                (Some(("lane", "high")), Value::Hist(&m.queue_wait_high)),
                (Some(("lane", "normal")), Value::Hist(&m.queue_wait_normal)),
                (Some(("lane", "low")), Value::Hist(&m.queue_wait_low)),
            ]
        },
    },
    Family {
        name: "runq_task_run_seconds",
        kind: Kind::Histogram,
        help: "Time from the start to the end of one attempt of a task body.",
        samples: |m| vec![(None, Value::Hist(&m.run_time))],
    },
];

impl Metrics {
    /// This snapshot in the Prometheus text exposition format (0.0.4), to
    /// serve as `text/plain; version=0.0.4` on a `/metrics` endpoint.
    ///
    /// Counters: `runq_tasks_submitted_total`,
    /// `runq_tasks_finished_total{outcome="succeeded|failed|cancelled|expired"}`,
    /// `runq_task_panics_total`, `runq_task_retries_total`,
    /// `runq_tasks_dead_lettered_total`, `runq_steals_total`,
    /// `runq_worker_parks_total`. Gauges: `runq_workers`,
    /// `runq_tasks_in_flight`, `runq_queue_depth{lane="high|normal|low|delayed"}`.
    /// Histograms (buckets from 1 µs to 10 s):
    /// `runq_task_queue_wait_seconds{lane="high|normal|low"}`,
    /// `runq_task_run_seconds`. Every sample is labelled `pool="<name>"`.
    ///
    /// ```
    /// use runq::Pool;
    /// let pool = Pool::builder().workers(1).thread_name("images").build()?;
    /// pool.submit(|| ())?.wait()?;
    /// let text = pool.metrics().to_prometheus();
    /// assert!(text.contains("runq_tasks_submitted_total{pool=\"images\"} 1\n"));
    /// assert!(text.contains("runq_task_run_seconds_bucket{pool=\"images\",le=\"+Inf\"} 1\n"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_prometheus(&self) -> String {
        Metrics::prometheus_of(std::slice::from_ref(self))
    }

    /// Several pools' snapshots in one Prometheus text: each family's
    /// `# HELP` and `# TYPE` once, then every pool's samples (told apart by
    /// their `pool` label; give the pools distinct thread-name prefixes).
    pub fn prometheus_of(pools: &[Metrics]) -> String {
        let mut out = String::with_capacity(4096 * pools.len().max(1));
        for family in FAMILIES {
            // `writeln!` into a String cannot fail.
            let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
            let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind.as_str());
            for m in pools {
                let pool = escape(&m.pool);
                for (label, value) in (family.samples)(m) {
                    let extra = label.map_or(String::new(), |(k, v)| format!(",{k}=\"{v}\""));
                    match value {
                        Value::Int(v) => {
                            let _ = writeln!(out, "{}{{pool=\"{pool}\"{extra}}} {v}", family.name);
                        }
                        Value::Hist(h) => write_histogram(&mut out, family.name, &pool, &extra, h),
                    }
                }
            }
        }
        out
    }
}

fn write_histogram(out: &mut String, name: &str, pool: &str, extra: &str, h: &Histogram) {
    for (le, n) in h.cumulative() {
        let _ = writeln!(
            out,
            "{name}_bucket{{pool=\"{pool}\"{extra},le=\"{le}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "{name}_sum{{pool=\"{pool}\"{extra}}} {}",
        h.sum_seconds()
    );
    let _ = writeln!(out, "{name}_count{{pool=\"{pool}\"{extra}}} {}", h.count());
}

/// A label value as the text format wants it: backslash, double quote and
/// line feed escaped.
fn escape(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn every_family_has_help_and_type_once() {
        let m = Metrics {
            pool: "p".into(),
            ..Metrics::default()
        };
        let text = Metrics::prometheus_of(&[
            m.clone(),
            Metrics {
                pool: "q".into(),
                ..m
            },
        ]);
        for f in FAMILIES {
            assert_eq!(text.matches(&format!("# TYPE {} ", f.name)).count(), 1);
            assert_eq!(text.matches(&format!("# HELP {} ", f.name)).count(), 1);
        }
        assert!(text.contains("runq_workers{pool=\"q\"} 0\n"));
    }
}
