//! The acker: records finished jobs in pipelined batches, one `finish.lua`
//! call per job (terminal state or retry, and the ack, in one step).
//!
//! A batch that fails (Redis restarted, connection cut) is sent again whole
//! after the reconnect: a job whose step already ran finds its entry no
//! longer pending and changes nothing (`stale`), so no job is recorded
//! twice.

use super::{Completion, Outcome, Shared};
use crate::keys::GROUP;
use crate::scripts::{evalsha, Scripts};
use crate::value;
use crate::wire::now_ms;
use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most outcomes recorded in one pipeline: big enough that a no-op flood
/// costs a round trip per few hundred jobs, small enough that one batch's
/// scripts hold Redis for about a millisecond.
const ACK_BATCH: usize = 256;
/// How long a shutting-down node keeps trying to ack while Redis is
/// unreachable before it leaves the entries to other nodes' claims: long
/// enough to ride out a Redis restart, short enough that a shutdown ends.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Longest an outcome waits for others to share its round trip: small
/// beside a round trip's cost to Redis, and a bound on the latency it adds.
const ACK_LINGER: Duration = Duration::from_micros(500);
/// How often an idle acker looks whether the node closed.
const IDLE_TICK: Duration = Duration::from_millis(50);
/// Reply time allowed to one pipeline before the connection counts as lost.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn run(sh: &Arc<Shared>, rx: Receiver<Completion>) {
    let mut conn = sh.conn("acker", READ_TIMEOUT);
    let mut batch: Vec<Completion> = Vec::with_capacity(ACK_BATCH);
    loop {
        match rx.recv_timeout(IDLE_TICK) {
            Ok(c) => batch.push(c),
            Err(RecvTimeoutError::Timeout) => {
                if sh.closed() {
                    return;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // Take what has finished; while more jobs run than the batch
        // holds, linger a moment for them, so short jobs share a round trip.
        let linger_until = Instant::now() + ACK_LINGER;
        while batch.len() < ACK_BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => {
                    let running = *sh.lock_in_flight() > batch.len();
                    if !running || Instant::now() >= linger_until {
                        break;
                    }
                    match rx.recv_timeout(linger_until - Instant::now()) {
                        Ok(c) => batch.push(c),
                        Err(_) => break,
                    }
                }
            }
        }
        let now = now_ms();
        // Redis unreachable while the node shuts down: after a grace period
        // give up on this batch; its entries stay pending and another node
        // claims them when their lease ends (at least once, not lost).
        let failing_since: Cell<Option<Instant>> = Cell::new(None);
        let give_up = || {
            if sh.closed() {
                return true;
            }
            if !sh.stopping() {
                return false;
            }
            let since = failing_since.get().unwrap_or_else(Instant::now);
            failing_since.set(Some(since));
            since.elapsed() >= SHUTDOWN_GRACE
        };
        let replies = conn.run(&give_up, |con| {
            let mut pipe = redis::pipe();
            for c in &batch {
                let q = &sh.queues[c.queue];
                let (sched, dead) = (q.scheduled(), q.dead());
                let mut cmd = evalsha(&Scripts::get().finish, &[&c.stream, &sched, &dead]);
                cmd.arg(GROUP).arg(&c.entry).arg(&c.id);
                match &c.outcome {
                    Outcome::Ok(bytes) => cmd.arg("ok").arg(&bytes[..]),
                    Outcome::Err(e) => cmd.arg("err").arg(e),
                    Outcome::Release => cmd.arg("release").arg(""),
                };
                cmd.arg(now)
                    .arg(&sh.consumer)
                    .arg(c.result_ttl_s)
                    .arg(c.attempts)
                    .arg(c.backoff_ms)
                    .arg(c.attempt);
                pipe.add_command(cmd);
            }
            pipe.query::<Vec<redis::Value>>(con)
        });
        let counters = &sh.counters;
        if let Some(replies) = &replies {
            for r in replies {
                let counter = match value::string(r).as_deref() {
                    Some("succeeded") => &counters.succeeded,
                    Some("retrying") => &counters.retried,
                    Some("failed") => &counters.failed,
                    Some("released") => &counters.released,
                    _ => continue,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Acked (or, when the node closed with Redis gone, left pending for
        // another node to claim after the lease): no longer ours.
        {
            let mut held = sh.lock_held();
            for c in &batch {
                if let Some(set) = held.get_mut(&c.stream) {
                    set.remove(&c.entry);
                }
            }
        }
        *sh.lock_in_flight() -= batch.len();
        sh.in_flight_changed.notify_all();
        batch.clear();
    }
}
