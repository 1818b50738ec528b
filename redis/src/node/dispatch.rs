//! From a delivered entry to a job on the pool: shared by the reader (new
//! entries) and the keeper (entries claimed after a lease ran out).

use super::{Completion, Job, Outcome, Shared};
use crate::conn::Conn;
use crate::keys::{priority_of, GROUP};
use crate::scripts::{evalsha, Scripts};
use crate::value;
use crate::wire::{now_ms, parse_entry};
use runq::{Priority, Task};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// One entry after its pickup step in Redis (take/start/reclaim.lua).
#[derive(Debug)]
pub(crate) struct Delivered {
    pub(crate) queue: usize,
    pub(crate) stream: String,
    pub(crate) entry: String,
    pub(crate) fields: Vec<(Vec<u8>, Vec<u8>)>,
    /// `run`, `skip` (record already terminal: acked) or `expired` (acked).
    pub(crate) decision: String,
    pub(crate) attempt: u32,
}

impl Delivered {
    /// Reads `{entry_id, fields, decision, attempt}` (the shape of
    /// start.lua's and reclaim.lua's replies).
    pub(crate) fn from_reply(queue: usize, stream: &str, v: &redis::Value) -> Option<Delivered> {
        match value::array(v) {
            [eid, fields, decision, attempt] => Some(Delivered {
                queue,
                stream: stream.to_string(),
                entry: value::string(eid)?,
                fields: value::pairs(fields),
                decision: value::string(decision)?,
                attempt: value::int(attempt).unwrap_or(1).clamp(1, u32::MAX as i64) as u32,
            }),
            _ => None,
        }
    }
}

fn priority_of_stream(stream: &str) -> Priority {
    stream
        .rsplit(':')
        .next()
        .and_then(priority_of)
        .unwrap_or(Priority::Normal)
}

/// Runs each `run` entry on the pool; dead-letters malformed ones; counts
/// the skipped and expired ones (already acked in Redis).
pub(crate) fn dispatch(sh: &Arc<Shared>, conn: &mut Conn, batch: Vec<Delivered>) {
    let mut bad: Vec<(String, String, usize, String)> = Vec::new();
    for d in batch {
        match d.decision.as_str() {
            "skip" => {
                sh.counters.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            "expired" => {
                sh.counters.expired.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            _ => {}
        }
        let entry = match parse_entry(&d.fields) {
            Ok(e) => e,
            Err(msg) => {
                bad.push((d.stream, d.entry, d.queue, msg));
                continue;
            }
        };
        let Some(handler) = sh.handlers.get(&entry.kind).cloned() else {
            let msg = format!("unknown type {:?}: no handler on this node", entry.kind);
            bad.push((d.stream, d.entry, d.queue, msg));
            continue;
        };
        let priority = priority_of_stream(&d.stream);
        let job = Job {
            id: entry.id.clone(),
            queue: sh.queues[d.queue].name.clone(),
            kind: entry.kind,
            payload: entry.payload,
            attempt: d.attempt,
            attempts: entry.attempts,
            priority,
        };
        let mut done = Completion {
            queue: d.queue,
            stream: d.stream.clone(),
            entry: d.entry.clone(),
            id: entry.id,
            outcome: Outcome::Release,
            attempt: d.attempt,
            attempts: entry.attempts,
            backoff_ms: entry.backoff_ms,
            result_ttl_s: entry.result_ttl_s,
        };
        *sh.lock_in_flight() += 1;
        sh.lock_held().entry(d.stream).or_default().insert(d.entry);
        let tx = sh.done.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let fallback = (done.clone(), tx.clone());
        let sh2 = sh.clone();
        let task = Task::new(move || {
            done.outcome = if sh2.stopping() {
                Outcome::Release
            } else {
                match catch_unwind(AssertUnwindSafe(|| handler(&job))) {
                    Ok(Ok(bytes)) => Outcome::Ok(bytes),
                    Ok(Err(e)) => Outcome::Err(e),
                    Err(p) => Outcome::Err(format!("handler panicked: {}", panic_text(&p))),
                }
            };
            let _ = tx.send(done);
        })
        .priority(priority);
        if let Err(e) = sh.pool.submit_task(task) {
            // The pool refused (shut down, or full under the reject policy):
            // the task came back unrun, so put the job back for any node.
            eprintln!("runq-redis: pool refused a job ({e}); releasing it");
            let (done, tx) = fallback;
            let _ = tx.send(done);
        }
    }
    if !bad.is_empty() {
        dead_letter(sh, conn, bad);
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(not a string)".to_string()
    }
}

/// Moves malformed entries to the dead letters (dead_letter.lua), in one
/// pipeline.
fn dead_letter(sh: &Arc<Shared>, conn: &mut Conn, bad: Vec<(String, String, usize, String)>) {
    let now = now_ms();
    let n = bad.len() as u64;
    let done = conn.run(&|| sh.closed(), |con| {
        let mut pipe = redis::pipe();
        for (stream, eid, q, msg) in &bad {
            let dead = sh.queues[*q].dead();
            let mut cmd = evalsha(&Scripts::get().dead_letter, &[stream, &dead]);
            cmd.arg(GROUP).arg(eid).arg(msg).arg(now).arg(&sh.consumer);
            pipe.add_command(cmd);
        }
        pipe.query::<Vec<redis::Value>>(con)
    });
    if done.is_some() {
        sh.counters.dead_lettered.fetch_add(n, Ordering::Relaxed);
    }
}
