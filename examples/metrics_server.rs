//! Serves a pool's metrics at `http://127.0.0.1:9898/metrics` in the
//! Prometheus text format, while a little workload keeps the pool busy:
//! tasks in all three lanes, some that fail and are retried, some that end
//! up as dead letters. Plain `std::net`, one request at a time: a scrape
//! endpoint needs nothing more.
//!
//! ```text
//! cargo run --release --example metrics_server              # serve until Ctrl-C
//! cargo run --example metrics_server -- 127.0.0.1:0 1       # any free port, exit after one scrape
//! curl -s http://127.0.0.1:9898/metrics | promtool check metrics
//! ```
//!
//! The first argument is the address to listen on (loopback only), the
//! second how many requests to answer before exiting (default: no limit).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use runq::{Pool, Priority, Retry, Task};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:9898").parse()?;
    if !addr.ip().is_loopback() {
        return Err(format!("{addr}: this example only listens on a loopback address").into());
    }
    let limit: Option<u64> = args.next().map(|n| n.parse()).transpose()?;

    let pool = Pool::builder()
        .thread_name("demo")
        .on_dead_letter(|d| eprintln!("dead letter: {} ({:?}): {}", d.id, d.name, d.error))
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (pool, stop) = (pool.clone(), stop.clone());
        thread::spawn(move || workload(&pool, &stop))
    };

    let listener = TcpListener::bind(addr)?;
    // Scripts read the address from this line (the port may be chosen by the OS).
    println!("serving http://{}/metrics", listener.local_addr()?);
    for (i, stream) in listener.incoming().enumerate() {
        if let Err(e) = stream.and_then(|s| answer(s, &pool)) {
            eprintln!("request failed: {e}");
        }
        if limit.is_some_and(|n| i as u64 + 1 >= n) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    load.join().expect("the workload thread does not panic");
    pool.shutdown();
    Ok(())
}

/// Answers one HTTP/1.x request: `GET /metrics` gets the text, anything
/// else a 404.
fn answer(stream: TcpStream, pool: &Pool) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Skip the headers: the request has no body we care about.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut stream = reader.into_inner();
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let (status, kind, body) = if request.starts_with("GET ") && path == "/metrics" {
        let text = pool.metrics().to_prometheus();
        ("200 OK", "text/plain; version=0.0.4; charset=utf-8", text)
    } else {
        ("404 Not Found", "text/plain", "try /metrics\n".to_owned())
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// Keeps the pool busy until `stop`: bursts of short tasks in all lanes,
/// a few slower ones, and flaky tasks that are retried or dead-lettered.
fn workload(pool: &Pool, stop: &AtomicBool) {
    let round = AtomicU64::new(0);
    while !stop.load(Ordering::Relaxed) {
        let n = round.fetch_add(1, Ordering::Relaxed);
        for i in 0..200u64 {
            let priority = match i % 10 {
                0 => Priority::High,
                1..=6 => Priority::Normal,
                _ => Priority::Low,
            };
            let spin = 1 + (i * 37 + n) % 50; // 1 to 50 µs of work
            let _ = pool.submit_task(
                Task::new(move || busy(Duration::from_micros(spin))).priority(priority),
            );
        }
        let _ = pool.spawn(|| busy(Duration::from_millis(3)));
        let _ = pool.submit_task(
            Task::fallible(move || {
                if n % 3 == 0 {
                    Err::<(), _>(format!("upstream timeout in round {n}"))
                } else {
                    Ok(())
                }
            })
            .name("sync-inventory")
            .retry(Retry::fixed(2, Duration::from_millis(5))),
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// CPU work for about `d`.
fn busy(d: Duration) {
    let start = std::time::Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}
