//! One Redis connection that comes back by itself: after Redis restarts or
//! drops the connection, the next call reconnects with a bounded backoff
//! (never a busy loop), loads the scripts again and re-creates the consumer
//! groups (gone when Redis restarted without persistence).

use crate::keys::GROUP;
use crate::scripts::{is_noscript, Scripts};
use redis::{Connection, RedisResult};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// First wait after a failed call; doubles up to [`MAX_BACKOFF`]. Short
/// enough that a restart of a local Redis costs a fraction of a second.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Longest wait between tries: a node notices Redis is back within this.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Time to open a TCP connection before the try counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Slice in which a backoff sleep checks whether to give up.
const SLEEP_SLICE: Duration = Duration::from_millis(20);

pub(crate) struct Conn {
    client: redis::Client,
    con: Option<Connection>,
    read_timeout: Duration,
    streams: Vec<String>,
    name: &'static str,
    round_trips: Arc<AtomicU64>,
    reconnects: Arc<AtomicU64>,
}

impl Conn {
    /// A connection for `name` (used in log lines) that, on each connect,
    /// creates the consumer group on `streams` and waits at most
    /// `read_timeout` for a reply.
    pub(crate) fn new(
        client: redis::Client,
        name: &'static str,
        streams: Vec<String>,
        read_timeout: Duration,
        round_trips: Arc<AtomicU64>,
        reconnects: Arc<AtomicU64>,
    ) -> Conn {
        Conn {
            client,
            con: None,
            read_timeout,
            streams,
            name,
            round_trips,
            reconnects,
        }
    }

    fn connect(&mut self) -> RedisResult<&mut Connection> {
        if self.con.is_none() {
            let mut con = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
            con.set_read_timeout(Some(self.read_timeout))?;
            con.set_write_timeout(Some(self.read_timeout))?;
            Scripts::get().load(&mut con)?;
            create_groups(&mut con, &self.streams)?;
            self.con = Some(con);
        }
        Ok(self.con.as_mut().expect("connected just above"))
    }

    /// Runs `f` (one command or one pipeline: one round trip) until it
    /// succeeds, reconnecting with backoff in between; gives up and returns
    /// `None` only when `give_up()` says so.
    pub(crate) fn run<T>(
        &mut self,
        give_up: &dyn Fn() -> bool,
        mut f: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Option<T> {
        let mut backoff = MIN_BACKOFF;
        let mut failing_since: Option<Instant> = None;
        loop {
            let r = self.connect().and_then(&mut f);
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            match r {
                Ok(v) => {
                    if let Some(t) = failing_since {
                        eprintln!(
                            "runq-redis: {}: redis is back after {:.1} s",
                            self.name,
                            t.elapsed().as_secs_f64()
                        );
                    }
                    return Some(v);
                }
                Err(e) if is_noscript(&e) => {
                    // Restarted or flushed: load the scripts and retry now.
                    if let Some(c) = self.con.as_mut() {
                        let _ = Scripts::get().load(c);
                    }
                    continue;
                }
                Err(e) => {
                    if e.code() == Some("NOGROUP") {
                        if let Some(c) = self.con.as_mut() {
                            let _ = create_groups(c, &self.streams);
                        }
                    } else if failing_since.is_none() {
                        eprintln!("runq-redis: {}: {e}; retrying", self.name);
                    }
                    let lost = e.is_io_error()
                        || e.is_connection_dropped()
                        || e.is_connection_refusal()
                        || e.is_timeout()
                        || e.is_unrecoverable_error();
                    if lost && self.con.take().is_some() {
                        self.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    failing_since.get_or_insert_with(Instant::now);
                    let until = Instant::now() + backoff;
                    while Instant::now() < until {
                        if give_up() {
                            return None;
                        }
                        thread::sleep(SLEEP_SLICE.min(until - Instant::now()));
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    if give_up() {
                        return None;
                    }
                }
            }
        }
    }
}

/// `XGROUP CREATE <stream> runq 0 MKSTREAM` on each stream; an existing
/// group is fine. From `0`, not `$`: entries a producer added before any
/// node created the group are delivered too (acked entries are deleted, so
/// nothing old comes back).
pub(crate) fn create_groups(con: &mut Connection, streams: &[String]) -> RedisResult<()> {
    for s in streams {
        let r: RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(s)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query(con);
        match r {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
