//! The keeper: promotes due delayed jobs and retries, renews the leases of
//! the entries this node holds, claims entries whose lease ran out, and
//! forgets consumers (dead nodes) that hold nothing and stay idle.

use super::dispatch::{dispatch, Delivered};
use super::Shared;
use crate::keys::GROUP;
use crate::scripts::{evalsha, Scripts};
use crate::value;
use crate::wire::now_ms;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Most due jobs one promote call moves, per queue: bounds one script's
/// time in Redis (a backlog moves over successive ticks).
const PROMOTE_BATCH: usize = 1000;
/// Most idle entries one reclaim call looks at, per stream.
const RECLAIM_BATCH: usize = 100;
/// A consumer that holds nothing and has not read for this many leases
/// (and at least [`MIN_FORGET_IDLE`]) is removed from its group.
const FORGET_AFTER_LEASES: u32 = 10;
/// Floor of the idle time after which an empty consumer is forgotten.
/// Forgetting a live node that holds nothing is harmless (its next read
/// creates it again), so this only keeps the churn down: live nodes read
/// every 200 ms when idle.
const MIN_FORGET_IDLE: Duration = Duration::from_secs(1);
/// Reply time allowed before the connection counts as lost.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn run(sh: &Arc<Shared>) {
    let mut conn = sh.conn("keeper", READ_TIMEOUT);
    let lease_ms = sh.lease.as_millis() as u64;
    // Renew three times per lease: a renewal may be late by a whole
    // interval (a slow pipeline, a reconnect) and still land in time.
    let renew_every = sh.lease / 3;
    // Look for expired leases twice per lease, at most every poll: a dead
    // node's jobs resume between one and one and a half leases after it died.
    let reclaim_every = (sh.lease / 2).max(sh.poll);
    let mut next_renew = Instant::now() + renew_every;
    let mut next_reclaim = Instant::now();
    let forget_idle = (sh.lease * FORGET_AFTER_LEASES).max(MIN_FORGET_IDLE);
    let mut next_forget = Instant::now() + forget_idle / 2;
    let streams: Vec<(usize, String)> = sh
        .queues
        .iter()
        .enumerate()
        .flat_map(|(i, q)| q.streams().into_iter().map(move |s| (i, s)))
        .collect();
    while !sh.closed() {
        let give_up = || sh.closed();
        if !sh.stopping() {
            let now = now_ms();
            if let Some(moved) = conn.run(&give_up, |con| {
                let mut pipe = redis::pipe();
                for q in &sh.queues {
                    let sched = q.scheduled();
                    let mut cmd = evalsha(&Scripts::get().promote, &[&sched]);
                    cmd.arg(now).arg(PROMOTE_BATCH);
                    pipe.add_command(cmd);
                }
                pipe.query::<Vec<i64>>(con)
            }) {
                let n: i64 = moved.iter().sum();
                sh.counters
                    .promoted
                    .fetch_add(n.max(0) as u64, Ordering::Relaxed);
            }
        }
        if Instant::now() >= next_renew {
            next_renew = Instant::now() + renew_every;
            let held: Vec<(String, Vec<String>)> = sh
                .lock_held()
                .iter()
                .filter(|(_, ids)| !ids.is_empty())
                .map(|(s, ids)| (s.clone(), ids.iter().cloned().collect()))
                .collect();
            if !held.is_empty() {
                // XCLAIM with min-idle 0 and JUSTID: resets the idle time of
                // each held entry without counting a delivery.
                conn.run(&give_up, |con| {
                    let mut pipe = redis::pipe();
                    for (stream, ids) in &held {
                        let mut cmd = redis::cmd("XCLAIM");
                        cmd.arg(stream).arg(GROUP).arg(&sh.consumer).arg(0);
                        for id in ids {
                            cmd.arg(id);
                        }
                        cmd.arg("JUSTID");
                        pipe.add_command(cmd).ignore();
                    }
                    pipe.query::<()>(con)
                });
            }
        }
        if !sh.stopping() && Instant::now() >= next_reclaim {
            next_reclaim = Instant::now() + reclaim_every;
            let now = now_ms();
            if let Some(replies) = conn.run(&give_up, |con| {
                let mut pipe = redis::pipe();
                for (q, stream) in &streams {
                    let dead = sh.queues[*q].dead();
                    let mut cmd = evalsha(&Scripts::get().reclaim, &[stream, &dead]);
                    cmd.arg(GROUP)
                        .arg(&sh.consumer)
                        .arg(lease_ms)
                        .arg(RECLAIM_BATCH)
                        .arg(sh.max_deliveries)
                        .arg(now)
                        .arg(&sh.consumer);
                    pipe.add_command(cmd);
                }
                pipe.query::<Vec<redis::Value>>(con)
            }) {
                let mut batch = Vec::new();
                for ((q, stream), reply) in streams.iter().zip(&replies) {
                    for row in value::array(reply) {
                        if let Some(d) = Delivered::from_reply(*q, stream, row) {
                            batch.push(d);
                        }
                    }
                }
                if !batch.is_empty() {
                    sh.counters
                        .reclaimed
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    dispatch(sh, &mut conn, batch);
                }
            }
        }
        if !sh.stopping() && Instant::now() >= next_forget {
            next_forget = Instant::now() + forget_idle / 2;
            conn.run(&give_up, |con| {
                let mut pipe = redis::pipe();
                for (_, stream) in &streams {
                    let mut cmd = evalsha(&Scripts::get().forget_consumers, &[stream]);
                    cmd.arg(GROUP).arg(forget_idle.as_millis() as u64);
                    pipe.add_command(cmd).ignore();
                }
                pipe.query::<()>(con)
            });
        }
        let until = Instant::now() + sh.poll;
        while Instant::now() < until && !sh.closed() {
            thread::sleep((until - Instant::now()).min(Duration::from_millis(20)));
        }
    }
}
