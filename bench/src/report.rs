//! Medians over repeats, the per-workload table, the verdict line, and the
//! JSON record of every sample.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::engine::EngineKind;
use crate::measure::latency_histogram;
use crate::workload::{Metric, Outcome, Workload};

/// Every run of one engine on one workload, in the order they ran.
#[derive(Debug, Clone)]
pub struct Series {
    /// The engine.
    pub engine: EngineKind,
    /// One outcome per repeat.
    pub outcomes: Vec<Outcome>,
}

impl Series {
    /// An empty series for `engine`.
    pub fn new(engine: EngineKind) -> Series {
        Series {
            engine,
            outcomes: Vec::new(),
        }
    }

    /// Values of the runs that can be ranked (not stalled, not NaN, work
    /// verified), sorted.
    fn values(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .outcomes
            .iter()
            .filter(|o| o.measured() && o.verified())
            .map(|o| o.value)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    /// Median over the measured runs (mean of the middle two when even).
    pub fn median(&self) -> Option<f64> {
        let v = self.values();
        match v.len() {
            0 => None,
            n if n % 2 == 1 => Some(v[n / 2]),
            n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }

    /// Smallest and largest measured value.
    pub fn range(&self) -> Option<(f64, f64)> {
        let v = self.values();
        Some((*v.first()?, *v.last()?))
    }

    /// Runs that hit their time limit.
    pub fn stalled(&self) -> usize {
        self.outcomes.iter().filter(|o| o.stalled.is_some()).count()
    }

    /// Runs whose counts did not match.
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| !o.verified()).count()
    }

    /// runq: the pool's own queue-wait histograms of all runs, merged.
    pub fn merged_pool_wait(&self) -> Option<runq::Histogram> {
        let mut merged = runq::Histogram::default();
        let mut any = false;
        for h in self.outcomes.iter().filter_map(|o| o.pool_wait.as_ref()) {
            merged.merge(h);
            any = true;
        }
        any.then_some(merged)
    }

    /// All probes of all runs in one histogram (latency workloads).
    pub fn merged_latency(&self) -> Option<Histogram<u64>> {
        let mut merged = latency_histogram();
        let mut any = false;
        for h in self.outcomes.iter().filter_map(|o| o.latency.as_ref()) {
            merged.add(h).expect("histograms share their bounds");
            any = true;
        }
        any.then_some(merged)
    }
}

/// One workload's results across engines.
#[derive(Debug, Clone)]
pub struct WorkloadResult {
    /// The workload.
    pub workload: Workload,
    /// What it did, at the size it ran.
    pub about: String,
    /// One series per engine, runq first.
    pub series: Vec<Series>,
}

impl WorkloadResult {
    fn runq_median(&self) -> Option<f64> {
        self.series
            .iter()
            .find(|s| s.engine == EngineKind::Runq)
            .and_then(Series::median)
    }

    /// `engine`'s median over runq's: above 1, runq does better.
    pub fn ratio_to_runq(&self, series: &Series) -> Option<f64> {
        Some(series.median()? / self.runq_median()?)
    }

    /// The engine with the lowest median, and that median.
    pub fn best(&self) -> Option<(EngineKind, f64)> {
        self.series
            .iter()
            .filter_map(|s| Some((s.engine, s.median()?)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// The one-line verdict naming the best engine.
    pub fn verdict(&self) -> String {
        let metric = self.workload.metric();
        let word = match metric {
            Metric::Time => "fastest",
            Metric::Latency => "lowest p50",
            Metric::CpuShare => "least CPU",
            Metric::Allocations => "fewest allocations",
            Metric::ThreadSeconds => "fewest thread-seconds",
        };
        let Some((best, best_value)) = self.best() else {
            return "verdict: no engine produced a measurement".to_string();
        };
        if best == EngineKind::Runq {
            let peer = self
                .series
                .iter()
                .filter(|s| s.engine != EngineKind::Runq)
                .filter_map(|s| Some((s.engine, s.median()?)))
                .min_by(|a, b| a.1.total_cmp(&b.1));
            match peer {
                Some((peer, v)) if best_value > 0.0 => {
                    format!(
                        "verdict: runq {word}; best peer {peer} at {:.2}x runq",
                        v / best_value
                    )
                }
                Some((peer, _)) => format!("verdict: runq {word}, tied with {peer}"),
                None => format!("verdict: runq {word} (no peer measured)"),
            }
        } else {
            match self.runq_median() {
                Some(r) if best_value > 0.0 => {
                    format!(
                        "verdict: {best} {word}; runq at {:.2}x {best}",
                        r / best_value
                    )
                }
                Some(_) => format!("verdict: {best} {word}"),
                None => format!("verdict: {best} {word}; runq has no measurement"),
            }
        }
    }

    /// The table: median, min–max, (latency percentiles,) ratio to runq.
    pub fn table(&self) -> String {
        let metric = self.workload.metric();
        let mut out = String::new();
        let _ = writeln!(out, "{} - {}", self.workload, self.about);
        let latency = metric == Metric::Latency;
        let _ = write!(
            out,
            "  {:<15} {:>11} {:>25}",
            "engine",
            head(metric),
            "min - max"
        );
        if latency {
            let _ = write!(out, " {:>10} {:>10} {:>10}", "p99", "p99.9", "max");
        }
        let _ = writeln!(out, " {:>9}", "vs runq");
        for s in &self.series {
            let _ = write!(out, "  {:<15}", s.engine.name());
            match (s.median(), s.range()) {
                (Some(m), Some((lo, hi))) => {
                    let range = format!("{} - {}", show(metric, lo), show(metric, hi));
                    let _ = write!(out, " {:>11} {:>25}", show(metric, m), range);
                }
                _ => {
                    let why = if s.failed() > 0 {
                        format!("WORK NOT DONE in {}/{} runs", s.failed(), s.outcomes.len())
                    } else if s.stalled() > 0 {
                        let most = s
                            .outcomes
                            .iter()
                            .filter_map(|o| o.stalled)
                            .fold(0.0, f64::max);
                        format!(
                            "stalled in {}/{} runs ({:.0}% done)",
                            s.stalled(),
                            s.outcomes.len(),
                            most * 100.0
                        )
                    } else {
                        s.outcomes
                            .iter()
                            .find_map(|o| o.note)
                            .unwrap_or("no measurement")
                            .to_string()
                    };
                    let _ = write!(out, " {why:>37}");
                }
            }
            if latency {
                match s.merged_latency().filter(|h| !h.is_empty()) {
                    Some(h) => {
                        let q = |q: f64| show(metric, h.value_at_quantile(q) as f64 * 1e-9);
                        let max = show(metric, h.max() as f64 * 1e-9);
                        let _ = write!(out, " {:>10} {:>10} {:>10}", q(0.99), q(0.999), max);
                    }
                    None => {
                        let _ = write!(out, " {:>10} {:>10} {:>10}", "-", "-", "-");
                    }
                }
            }
            let ratio = self
                .ratio_to_runq(s)
                .map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"));
            let _ = write!(out, " {ratio:>9}");
            if s.stalled() > 0 && s.median().is_some() {
                let _ = write!(
                    out,
                    "  ({} of {} runs stalled)",
                    s.stalled(),
                    s.outcomes.len()
                );
            }
            let _ = writeln!(out);
            if let Some(h) = s.merged_pool_wait().filter(|h| h.count() > 0) {
                // Bucket upper bounds (1-2-5 steps): the quantile is at most this.
                let q = |q: f64| seconds(h.quantile(q).as_secs_f64());
                let _ = writeln!(
                    out,
                    "  {:<15} queue wait (all lanes) from the pool's metrics: p50 <= {}, p99 <= {} over {} task starts",
                    "",
                    q(0.5),
                    q(0.99),
                    crate::workload::thousands(h.count())
                );
            }
        }
        let _ = writeln!(out, "  {}", self.verdict());
        out
    }
}

fn head(metric: Metric) -> &'static str {
    match metric {
        Metric::Time => "median",
        Metric::Latency => "p50",
        Metric::CpuShare => "CPU/wall",
        Metric::Allocations => "allocs/task",
        Metric::ThreadSeconds => "thread-s",
    }
}

/// A value in the metric's natural unit, three significant digits.
pub fn show(metric: Metric, v: f64) -> String {
    match metric {
        Metric::Time | Metric::Latency => seconds(v),
        Metric::CpuShare => format!("{:.2}%", v * 100.0),
        Metric::Allocations => format!("{v:.2}"),
        Metric::ThreadSeconds => format!("{v:.3}"),
    }
}

fn seconds(s: f64) -> String {
    let (v, unit) = if s >= 1.0 {
        (s, "s")
    } else if s >= 1e-3 {
        (s * 1e3, "ms")
    } else if s >= 1e-6 {
        (s * 1e6, "us")
    } else {
        (s * 1e9, "ns")
    };
    if v >= 100.0 {
        format!("{v:.0} {unit}")
    } else if v >= 10.0 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.2} {unit}")
    }
}

/// Today's date in UTC, `YYYY-MM-DD`.
pub fn utc_date() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (the well-known
/// era-based conversion: 400-year eras of 146,097 days).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// How the run was set up, for the JSON record.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    /// Logical cores of the machine.
    pub cores: usize,
    /// Workers per engine.
    pub workers: usize,
    /// `--full` or not.
    pub full: bool,
    /// Repeats per engine and workload.
    pub repeat: usize,
}

#[derive(Serialize)]
struct JsonSample<'a> {
    workload: String,
    engine: &'a str,
    repeat: usize,
    value: Option<f64>,
    unit: &'a str,
    stalled_at: Option<f64>,
    expected: u64,
    done: u64,
    p50_ns: Option<u64>,
    p99_ns: Option<u64>,
    p999_ns: Option<u64>,
    max_ns: Option<u64>,
    /// runq: the pool's own queue-wait quantiles (bucket upper bounds).
    pool_wait_p50_ns: Option<u64>,
    pool_wait_p99_ns: Option<u64>,
}

#[derive(Serialize)]
struct JsonSummary<'a> {
    workload: String,
    about: &'a str,
    engine: &'a str,
    median: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    unit: &'a str,
    ratio_to_runq: Option<f64>,
}

#[derive(Serialize)]
struct JsonRun<'a> {
    run: &'a RunInfo,
    samples: Vec<JsonSample<'a>>,
    summary: Vec<JsonSummary<'a>>,
    verdicts: Vec<String>,
}

/// A quantile of the pool's own queue-wait histogram of one run, in ns.
fn pool_q(o: &Outcome, q: f64) -> Option<u64> {
    o.pool_wait
        .as_ref()
        .filter(|h| h.count() > 0)
        .map(|h| h.quantile(q).as_nanos() as u64)
}

/// Every sample, the summaries and verdicts, as pretty JSON.
pub fn to_json(info: &RunInfo, results: &[WorkloadResult]) -> String {
    let mut samples = Vec::new();
    let mut summary = Vec::new();
    for r in results {
        let unit = r.workload.metric().unit();
        for s in &r.series {
            for (i, o) in s.outcomes.iter().enumerate() {
                let q = |q: f64| {
                    o.latency
                        .as_ref()
                        .filter(|h| !h.is_empty())
                        .map(|h| h.value_at_quantile(q))
                };
                samples.push(JsonSample {
                    workload: r.workload.name(),
                    engine: s.engine.name(),
                    repeat: i,
                    value: o.value.is_finite().then_some(o.value),
                    unit,
                    stalled_at: o.stalled,
                    expected: o.expected,
                    done: o.done,
                    p50_ns: q(0.5),
                    p99_ns: q(0.99),
                    p999_ns: q(0.999),
                    max_ns: o
                        .latency
                        .as_ref()
                        .filter(|h| !h.is_empty())
                        .map(|h| h.max()),
                    pool_wait_p50_ns: pool_q(o, 0.5),
                    pool_wait_p99_ns: pool_q(o, 0.99),
                });
            }
            summary.push(JsonSummary {
                workload: r.workload.name(),
                about: &r.about,
                engine: s.engine.name(),
                median: s.median(),
                min: s.range().map(|r| r.0),
                max: s.range().map(|r| r.1),
                unit,
                ratio_to_runq: r.ratio_to_runq(s),
            });
        }
    }
    let run = JsonRun {
        run: info,
        samples,
        summary,
        verdicts: results
            .iter()
            .map(|r| format!("{}: {}", r.workload, r.verdict()))
            .collect(),
    };
    serde_json::to_string_pretty(&run).expect("plain data serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    }

    fn outcome(v: f64) -> Outcome {
        Outcome {
            value: v,
            stalled: None,
            latency: None,
            expected: 1,
            done: 1,
            note: None,
            pool_wait: None,
        }
    }

    #[test]
    fn runq_rows_show_the_pools_own_queue_wait() {
        let mut series = Series::new(EngineKind::Runq);
        let pool = runq::Pool::builder().workers(1).build().unwrap();
        for _ in 0..10 {
            pool.submit(|| ()).unwrap().wait().unwrap();
        }
        let mut o = outcome(1e-3);
        o.pool_wait = Some(crate::workload::pool_wait(&pool));
        series.outcomes.push(o);
        let result = WorkloadResult {
            workload: Workload::ChainedSpawn,
            about: String::new(),
            series: vec![series],
        };
        let table = result.table();
        assert!(
            table.contains("queue wait (all lanes) from the pool's metrics: p50 <= "),
            "{table}"
        );
        assert!(table.contains("over 10 task starts"), "{table}");
    }

    #[test]
    fn median_ignores_unverified_and_stalled_runs() {
        let mut s = Series::new(EngineKind::Rayon);
        s.outcomes.push(outcome(3.0));
        s.outcomes.push(outcome(1.0));
        s.outcomes.push(outcome(2.0));
        let mut bad = outcome(0.1);
        bad.done = 0;
        s.outcomes.push(bad);
        let mut stalled = outcome(0.2);
        stalled.stalled = Some(0.0);
        s.outcomes.push(stalled);
        assert_eq!(s.median(), Some(2.0));
        assert_eq!(s.range(), Some((1.0, 3.0)));
        assert_eq!(s.failed(), 1);
        assert_eq!(s.stalled(), 1);
    }

    #[test]
    fn verdict_names_the_engine_with_the_lowest_median() {
        let mut runq = Series::new(EngineKind::Runq);
        runq.outcomes.push(outcome(2.0));
        let mut rayon = Series::new(EngineKind::Rayon);
        rayon.outcomes.push(outcome(1.0));
        let r = WorkloadResult {
            workload: Workload::Fib,
            about: String::new(),
            series: vec![runq, rayon],
        };
        assert_eq!(r.best().map(|b| b.0), Some(EngineKind::Rayon));
        assert_eq!(r.verdict(), "verdict: rayon fastest; runq at 2.00x rayon");
        assert_eq!(r.ratio_to_runq(&r.series[1]), Some(0.5));
    }
}
