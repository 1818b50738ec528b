//! `runq-bench`: runs the standard workloads on runq and its peers, side by
//! side, and prints a table per workload.
//!
//! ```text
//! cargo run --release -p runq-bench                 # default suite, about a minute on 2 cores
//! cargo run --release -p runq-bench -- --help       # every workload in one line
//! cargo run --release -p runq-bench -- --only fib,wake_latency --repeat 5 --plot bench.svg
//! ```

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};
use indicatif::{ProgressBar, ProgressStyle};

use runq_bench::alloc::CountingAlloc;
use runq_bench::report::{self, RunInfo, Series, WorkloadResult};
use runq_bench::{plot, workload, Engine, EngineKind, Size, Workload};

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// Side-by-side benchmark of runq (pinned, its default, and unpinned)
/// against rayon, tokio (spawn and spawn_blocking), a crossbeam-channel pool
/// and an std mpsc pool, with the same number of workers each. Engines run interleaved (A B A B ...), one
/// fresh engine per run, and every run checks that all its tasks ran.
#[derive(Debug, Parser)]
#[command(name = "runq-bench", version)]
struct Cli {
    /// Larger and longer workloads (several minutes)
    #[arg(long)]
    full: bool,
    /// Worker threads per engine [default: number of cores]
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Submitter thread counts for remote_spawn, comma-separated
    #[arg(long, value_name = "N,..", value_delimiter = ',', default_values_t = [1usize, 2, 4])]
    submitters: Vec<usize>,
    /// Run only these workloads (names as listed below, or a group such as
    /// remote_spawn), comma-separated or repeated
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    only: Vec<String>,
    /// Run only these engines: runq, runq-unpinned, rayon, tokio,
    /// tokio-blocking, crossbeam, mpsc (runq is always kept, as the
    /// reference)
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    engines: Vec<String>,
    /// Measured runs per engine and workload [default: 5]
    #[arg(long, value_name = "N")]
    repeat: Option<usize>,
    /// Write every sample, the summaries and the verdicts as JSON
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Write an SVG with the latency histograms and throughput ratios
    #[arg(long, value_name = "PATH")]
    plot: Option<PathBuf>,
}

fn workload_help() -> String {
    let size = Size::default_suite();
    let mut out = String::from("Workloads (default sizes; --full makes them larger):\n");
    for w in Workload::suite(&[1, 2, 4]) {
        if matches!(w, Workload::RemoteSpawn(k) if k != 1) {
            continue;
        }
        let name = if w.group() == "remote_spawn" {
            "remote_spawn/K".to_string()
        } else {
            w.name()
        };
        let about = match w {
            Workload::RemoteSpawn(_) => format!(
                "{} empty tasks split across K submitter threads (--submitters) released together",
                runq_bench::workload::thousands(size.remote_total)
            ),
            other => other.about(&size),
        };
        out.push_str(&format!("  {name:<24} {about}\n"));
    }
    out.push_str(
        "\nfib, nqueens and uts run on runq, runq-unpinned and rayon only (fork-join); all others on every engine.\n\
         runq-unpinned is runq with pin_workers(false): the OS places its workers, as it does every peer's.\n\
         Every value is lower-is-better; 'vs runq' is an engine's median over runq's.",
    );
    out
}

fn select_workloads(cli: &Cli) -> Result<Vec<Workload>, String> {
    let all = Workload::suite(&cli.submitters);
    if cli.only.is_empty() {
        return Ok(all);
    }
    let mut chosen = BTreeSet::new();
    for name in &cli.only {
        let hits: Vec<usize> = all
            .iter()
            .enumerate()
            .filter(|(_, w)| w.name() == *name || w.group() == name)
            .map(|(i, _)| i)
            .collect();
        if hits.is_empty() {
            let names: Vec<String> = all.iter().map(|w| w.name()).collect();
            return Err(format!(
                "unknown workload '{name}'; known: {}",
                names.join(", ")
            ));
        }
        chosen.extend(hits);
    }
    Ok(chosen.into_iter().map(|i| all[i]).collect())
}

fn select_engines(cli: &Cli) -> Result<Vec<EngineKind>, String> {
    if cli.engines.is_empty() {
        return Ok(EngineKind::ALL.to_vec());
    }
    let mut chosen = BTreeSet::from([EngineKind::Runq]);
    for name in &cli.engines {
        let kind = EngineKind::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = EngineKind::ALL.iter().map(|e| e.name()).collect();
            format!("unknown engine '{name}'; known: {}", names.join(", "))
        })?;
        chosen.insert(kind);
    }
    Ok(chosen.into_iter().collect())
}

fn main() -> ExitCode {
    let matches = Cli::command().after_help(workload_help()).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("runq-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the selected suite; Ok(false) when some run did not do its work.
fn run(cli: &Cli) -> Result<bool, String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = cli.workers.unwrap_or(cores);
    if workers == 0 || workers > runq::MAX_WORKERS {
        return Err(format!("--workers must be 1..={}", runq::MAX_WORKERS));
    }
    if cli.submitters.contains(&0) {
        return Err("--submitters counts must be at least 1".into());
    }
    let repeat = cli.repeat.unwrap_or(5);
    if repeat == 0 {
        return Err("--repeat must be at least 1".into());
    }
    let size = if cli.full {
        Size::full()
    } else {
        Size::default_suite()
    };
    let workloads = select_workloads(cli)?;
    let engines = select_engines(cli)?;
    let info = RunInfo {
        date: report::utc_date(),
        cores,
        workers,
        full: cli.full,
        repeat,
    };
    println!(
        "runq-bench {}: {} suite, {workers} worker(s) per engine on {cores} core(s), \
         {repeat} run(s) per engine, engines interleaved\n",
        info.date,
        if cli.full { "full" } else { "default" },
    );

    let style = ProgressStyle::with_template("{prefix:>24} [{bar:32}] {pos}/{len} {msg}")
        .expect("valid progress template")
        .progress_chars("=> ");
    let mut results = Vec::new();
    let mut all_done = true;
    for workload in workloads {
        let kinds: Vec<EngineKind> = workload
            .engines()
            .iter()
            .copied()
            .filter(|e| engines.contains(e))
            .collect();
        let repeats = if workload.deterministic() { 1 } else { repeat };
        let bar = ProgressBar::new((kinds.len() * repeats) as u64)
            .with_style(style.clone())
            .with_prefix(workload.name());
        let mut series: Vec<Series> = kinds.iter().map(|&k| Series::new(k)).collect();
        for r in 0..repeats {
            // Rotate the order each repeat: A B C, B C A, ... so no engine
            // always runs first or right after the same neighbour.
            for j in 0..kinds.len() {
                let idx = (j + r) % kinds.len();
                bar.set_message(kinds[idx].name());
                let engine = Engine::new(kinds[idx], workers);
                let mut outcome = workload.run(&engine, &size);
                // The pool's own view of the same run: its queue-wait
                // histogram over every lane, less the warm-up.
                let warm = workload::WARM_UP_WAIT.lock().expect("baseline lock").take();
                outcome.pool_wait = engine.runq_pool().map(|pool| {
                    let wait = workload::pool_wait(pool);
                    warm.map_or(wait.clone(), |w| wait.since(&w))
                });
                drop(engine);
                if !outcome.verified() {
                    all_done = false;
                    bar.println(format!(
                        "  {} on {}: the tasks did {} of {} expected: this run is excluded",
                        workload, kinds[idx], outcome.done, outcome.expected
                    ));
                }
                series[idx].outcomes.push(outcome);
                bar.inc(1);
            }
        }
        bar.finish_and_clear();
        let result = WorkloadResult {
            workload,
            about: workload.about(&size),
            series,
        };
        println!("{}", result.table());
        results.push(result);
    }

    if let Some(path) = &cli.json {
        std::fs::write(path, report::to_json(&info, &results))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &cli.plot {
        let title = format!(
            "runq-bench {} - {workers} workers per engine, {cores} cores, median of {repeat}",
            info.date
        );
        plot::write_svg(path, &results, &title)
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(all_done)
}
