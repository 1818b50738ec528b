//! A real redis-server for the tests, on a free loopback port, in a
//! temporary directory. Without redis-server on PATH a test prints why it
//! is skipped and passes, unless RUNQ_REDIS_REQUIRED=1 (CI), where it fails.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    pub dir: PathBuf,
    appendonly: bool,
    child: Option<Child>,
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

/// A fresh server, or `None` (after printing why) when this machine has no
/// redis-server and the run does not require one.
pub fn server() -> Option<RedisServer> {
    server_with(false)
}

/// As [`server`], with an append-only file (fsync on every write), so a
/// restart keeps everything acknowledged.
pub fn server_with(appendonly: bool) -> Option<RedisServer> {
    if !on_path("redis-server") {
        if std::env::var("RUNQ_REDIS_REQUIRED").as_deref() == Ok("1") {
            panic!("redis-server is not on PATH and RUNQ_REDIS_REQUIRED=1");
        }
        // Straight to the process's stderr, past the test harness's output
        // capture, once per test binary: a skip must be seen.
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "runq-redis tests skipped: redis-server is not on PATH (install the Debian \
                 package redis-server; RUNQ_REDIS_REQUIRED=1 makes this a failure)"
            );
        });
        return None;
    }
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "runq-redis-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .unwrap()
        .port();
    let mut s = RedisServer {
        port,
        dir,
        appendonly,
        child: None,
    };
    s.start();
    Some(s)
}

impl RedisServer {
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn start(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--save")
            .arg("")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--appendonly")
            .arg(if self.appendonly { "yes" } else { "no" })
            .arg("--appendfsync")
            .arg("always")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(cmd.spawn().expect("start redis-server"));
        let t0 = Instant::now();
        loop {
            if let Ok(mut c) = self.con_once() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return;
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "redis-server did not answer on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server as SIGTERM does (an append-only file is flushed).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }

    fn con_once(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection()
    }

    pub fn con(&self) -> redis::Connection {
        self.con_once().expect("connect to the test redis")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `f` until it is true; panics with `what` after a generous limit
/// (the limit is a hang guard, not a timing assertion).
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "gave up waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The example node binary (built by `cargo test` beside the test binaries;
/// built here if missing).
pub fn example_node() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    let path = dir.join("examples").join("node");
    if !path.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "runq-redis", "--example", "node"]);
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("cargo build --example node");
        assert!(st.success(), "building the example node failed");
    }
    path
}

/// Fields of a stream entry or hash, as strings (lossy).
pub fn fields_of(v: &redis::Value) -> Vec<(String, String)> {
    let items: Vec<redis::Value> = match v {
        redis::Value::Array(a) => a.clone(),
        redis::Value::Map(m) => m.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect(),
        _ => Vec::new(),
    };
    items
        .chunks(2)
        .filter_map(|c| match c {
            [k, v] => Some((text(k), text(v))),
            _ => None,
        })
        .collect()
}

pub fn text(v: &redis::Value) -> String {
    match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Int(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

pub fn get<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The entries of a stream: (entry id, fields).
pub fn xrange(con: &mut redis::Connection, key: &str) -> Vec<(String, Vec<(String, String)>)> {
    let v: redis::Value = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query(con)
        .unwrap();
    match v {
        redis::Value::Array(entries) => entries
            .iter()
            .filter_map(|e| match e {
                redis::Value::Array(p) if p.len() == 2 => Some((text(&p[0]), fields_of(&p[1]))),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}
