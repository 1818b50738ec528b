//! The `runq-bench` binary: help, bad arguments, and a short run that
//! writes JSON and SVG.

use std::process::Command;

use runq_bench::Workload;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_runq-bench"))
}

#[test]
fn help_explains_every_workload_and_flag() {
    let out = bench().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for w in Workload::suite(&[1]) {
        assert!(help.contains(w.group()), "--help lacks {}", w.group());
    }
    for flag in [
        "--full",
        "--workers",
        "--submitters",
        "--only",
        "--repeat",
        "--json",
        "--plot",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn unknown_workload_or_engine_is_refused_with_the_known_names() {
    let out = bench()
        .args(["--only", "no_such_workload"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("no_such_workload") && err.contains("wake_latency"),
        "{err}"
    );

    let out = bench().args(["--engines", "nope"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("tokio-blocking") && err.contains("runq-unpinned"),
        "{err}"
    );

    let out = bench().args(["--workers", "0"]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn a_short_run_prints_tables_and_writes_json_and_svg() {
    let dir = std::env::temp_dir().join(format!("runq-bench-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, svg) = (dir.join("run.json"), dir.join("run.svg"));
    let out = bench()
        .args([
            "--only",
            "chained_spawn,wake_latency",
            "--engines",
            "crossbeam",
        ])
        .args(["--repeat", "2", "--workers", "2"])
        .arg("--json")
        .arg(&json)
        .arg("--plot")
        .arg(&svg)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "chained_spawn",
        "wake_latency",
        "runq",
        "crossbeam",
        "verdict:",
        "vs runq",
    ] {
        assert!(stdout.contains(needle), "output lacks {needle}:\n{stdout}");
    }

    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let samples = record["samples"].as_array().unwrap();
    // 2 workloads x 2 engines x 2 repeats, every one with its work done.
    assert_eq!(samples.len(), 8);
    for s in samples {
        assert_eq!(s["expected"], s["done"]);
        assert!(s["value"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(record["run"]["workers"], 2);

    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(
        picture.starts_with("<svg")
            && picture.contains("wake_latency")
            && picture.contains("chained_spawn")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
