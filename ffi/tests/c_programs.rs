//! Builds the example programs in `ffi/examples/` with the system's C and
//! C++ compilers against `librunq_ffi.a`, runs them, and checks every line
//! they print. This is the proof that the header and the static library
//! work together for a program that is not Rust.
//!
//! The compilers are `cc` and `c++`, or `$CC` and `$CXX` when set.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a program may run before the test calls it hung. Generous:
/// the programs finish in milliseconds, but CI machines are noisy.
const RUN_LIMIT: Duration = Duration::from_secs(120);

const PIPELINE_C_OUTPUT: &str = "\
fan-out: 10 squares, sum 385
priorities: high-1 high-2 normal-1 normal-2 low-1 low-2
retry: RUNQ_OK after 3 attempts, result \"payload\", callback saw RUNQ_OK \"payload\" (1 call)
give up: RUNQ_FAILED after 2 attempts, last code 42, result NULL, callback saw RUNQ_FAILED
timeout: RUNQ_TIMEOUT, status RUNQ_QUEUED, result NULL
cancel: RUNQ_CANCELLED, callback saw RUNQ_CANCELLED (1 call)
key: second submission RUNQ_DUPLICATE
delay: status RUNQ_DELAYED
bad arguments: RUNQ_INVALID_ARGUMENT
late result: forty-two
deadline: RUNQ_EXPIRED
delayed result: forty-two
shutdown: submitted 7, completed 5, cancelled 1, failed 0, expired 1
metrics: every task ended once: yes
dead letters: 1, charge-card (key order-17) after 2 attempts: task function returned 42
prometheus: dead letter and both attempts counted
metrics: dead_lettered 1
done
";

const PIPELINE_CPP_OUTPUT: &str = "\
queued 5 lines behind a busy worker
line 1: 6 words, first \"the\"
line 2: 4 words, first \"HEADLINE\"
line 3: 6 words, first \"appendix\"
line 4: 5 words, first \"second\"
line 5: 4 words, first \"BREAKING\"
total: 25 words, callbacks agree: yes
run order: HEADLINE BREAKING the second appendix
shutdown: submitted 6, completed 6
after shutdown: RUNQ_SHUT_DOWN
";

/// The static library cargo built for this test run.
///
/// The test executable lives in `<target>/<profile>/deps/`. Cargo writes
/// the library there too when it builds it for tests (and copies it up to
/// `<target>/<profile>/` only for `cargo build`), so `deps/` is searched
/// first, then the profile directory, then `$CARGO_TARGET_DIR/debug`.
fn static_library() -> PathBuf {
    let name = "librunq_ffi.a";
    let exe = std::env::current_exe().expect("path of the test executable");
    let mut candidates = Vec::new();
    if let Some(deps) = exe.parent() {
        candidates.push(deps.join(name));
        if let Some(profile) = deps.parent() {
            candidates.push(profile.join(name));
        }
    }
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        candidates.push(Path::new(&dir).join("debug").join(name));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| panic!("{name} not found; looked at {candidates:?}"))
}

/// Compiles one example into the test's scratch directory.
fn build(compiler_var: &str, default: &str, std: &str, source: &str, output: &str) -> PathBuf {
    let compiler = std::env::var(compiler_var).unwrap_or_else(|_| default.to_owned());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join(output);
    let status = Command::new(&compiler)
        .arg(std)
        .args(["-Wall", "-Wextra", "-g", "-I"])
        .arg(manifest.join("include"))
        .arg(manifest.join("examples").join(source))
        .arg(static_library())
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe)
        .status()
        .unwrap_or_else(|e| panic!("could not start the compiler `{compiler}`: {e}"));
    assert!(
        status.success(),
        "`{compiler}` failed to build {source}: {status}"
    );
    exe
}

/// Runs a program to its end (or kills it after `RUN_LIMIT`) and returns
/// its standard output; fails the test on a nonzero exit.
fn run(exe: &Path) -> String {
    let mut child = Command::new(exe)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {}: {e}", exe.display()));
    let started = Instant::now();
    while child.try_wait().expect("poll the child").is_none() {
        if started.elapsed() > RUN_LIMIT {
            child.kill().expect("kill the hung program");
            panic!("{} did not finish within {RUN_LIMIT:?}", exe.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child
        .wait_with_output()
        .expect("collect the program's output");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    assert!(
        out.status.success(),
        "{} exited with {}\nstdout:\n{stdout}\nstderr:\n{}",
        exe.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn c_pipeline_links_against_the_static_library_and_prints_the_expected_lines() {
    let exe = build("CC", "cc", "-std=c11", "pipeline.c", "pipeline_c");
    assert_eq!(run(&exe), PIPELINE_C_OUTPUT);
}

#[test]
fn cpp_pipeline_links_against_the_static_library_and_prints_the_expected_lines() {
    let exe = build("CXX", "c++", "-std=c++17", "pipeline.cpp", "pipeline_cpp");
    assert_eq!(run(&exe), PIPELINE_CPP_OUTPUT);
}
