//! The reader: takes new entries, strictly by priority, within the node's
//! in-flight bound.

use super::dispatch::{dispatch, Delivered};
use super::Shared;
use crate::keys::GROUP;
use crate::scripts::{evalsha, Scripts};
use crate::value;
use crate::wire::now_ms;
use runq::Priority;
use std::sync::Arc;
use std::time::Duration;

/// How long one blocking XREADGROUP waits when every stream is empty: the
/// most a shutdown waits for the reader.
const BLOCK: Duration = Duration::from_millis(200);
/// Reply time allowed beyond the block before the connection counts as lost.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A reader with jobs in flight reads again once 1/REFILL_DIVISOR of
/// `max_in_flight` is free: a quarter keeps three quarters queued for the
/// workers while the next batch comes.
const REFILL_DIVISOR: usize = 4;
/// How often a reader at its in-flight bound looks whether to stop.
const FULL_TICK: Duration = Duration::from_millis(50);

pub(crate) fn run(sh: &Arc<Shared>) {
    let mut conn = sh.conn("reader", READ_TIMEOUT + BLOCK);
    // Every high stream, then every normal, then every low: take.lua reads
    // them in this order, so a lower one is read only when the higher ones
    // are empty.
    let mut order: Vec<(usize, String)> = Vec::new();
    for p in [Priority::High, Priority::Normal, Priority::Low] {
        for (i, q) in sh.queues.iter().enumerate() {
            order.push((i, q.stream(p)));
        }
    }
    let keys: Vec<&str> = order.iter().map(|(_, s)| s.as_str()).collect();
    while !sh.stopping() {
        let want = {
            let mut n = sh.lock_in_flight();
            // Refill in batches: with jobs still in flight, wait until a
            // quarter of the bound is free, so one read brings many jobs
            // (not one round trip per finished job).
            let refill_at = sh.max_in_flight - (sh.max_in_flight / REFILL_DIVISOR).max(1);
            while *n > 0 && *n > refill_at && !sh.stopping() {
                n = sh
                    .in_flight_changed
                    .wait_timeout(n, FULL_TICK)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            sh.max_in_flight.saturating_sub(*n)
        };
        if sh.stopping() {
            return;
        }
        if want == 0 {
            continue;
        }
        let now = now_ms();
        let Some(reply) = conn.run(&|| sh.stopping(), |con| {
            let mut cmd = evalsha(&Scripts::get().take, &keys);
            cmd.arg(GROUP)
                .arg(&sh.consumer)
                .arg(now)
                .arg(want)
                .arg(&sh.consumer);
            cmd.query::<redis::Value>(con)
        }) else {
            return;
        };
        let batch: Vec<Delivered> = value::array(&reply)
            .iter()
            .filter_map(|row| match value::array(row) {
                [idx, eid, fields, decision, attempt] => {
                    let (queue, stream) = order.get(value::int(idx)? as usize - 1)?;
                    Delivered::from_reply(
                        *queue,
                        stream,
                        &redis::Value::Array(vec![
                            eid.clone(),
                            fields.clone(),
                            decision.clone(),
                            attempt.clone(),
                        ]),
                    )
                }
                _ => None,
            })
            .collect();
        if !batch.is_empty() {
            dispatch(sh, &mut conn, batch);
            continue;
        }
        // Everything empty: block until an entry arrives anywhere.
        let Some(reply) = conn.run(&|| sh.stopping(), |con| {
            let mut cmd = redis::cmd("XREADGROUP");
            cmd.arg("GROUP")
                .arg(GROUP)
                .arg(&sh.consumer)
                .arg("COUNT")
                .arg(want)
                .arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("STREAMS");
            for k in &keys {
                cmd.arg(*k);
            }
            for _ in &keys {
                cmd.arg(">");
            }
            cmd.query::<redis::Value>(con)
        }) else {
            return;
        };
        // Reply: [[stream, [[id, fields], ...]], ...] (or a RESP3 map).
        let mut per_stream: Vec<(usize, String, Vec<String>)> = Vec::new();
        let streams: Vec<(redis::Value, redis::Value)> = match &reply {
            redis::Value::Map(m) => m.clone(),
            other => value::array(other)
                .iter()
                .filter_map(|s| match value::array(s) {
                    [k, v] => Some((k.clone(), v.clone())),
                    _ => None,
                })
                .collect(),
        };
        for (name, entries) in &streams {
            let Some(name) = value::string(name) else {
                continue;
            };
            let Some((queue, _)) = order.iter().find(|(_, s)| *s == name) else {
                continue;
            };
            let ids: Vec<String> = value::array(entries)
                .iter()
                .filter_map(|e| value::array(e).first().and_then(value::string))
                .collect();
            if !ids.is_empty() {
                per_stream.push((*queue, name, ids));
            }
        }
        if per_stream.is_empty() {
            continue;
        }
        let now = now_ms();
        let Some(replies) = conn.run(&|| sh.stopping(), |con| {
            let mut pipe = redis::pipe();
            for (_, stream, ids) in &per_stream {
                let mut cmd = evalsha(&Scripts::get().start, &[stream]);
                cmd.arg(GROUP).arg(now).arg(&sh.consumer);
                for id in ids {
                    cmd.arg(id);
                }
                pipe.add_command(cmd);
            }
            pipe.query::<Vec<redis::Value>>(con)
        }) else {
            return;
        };
        let mut batch = Vec::new();
        for ((queue, stream, _), reply) in per_stream.iter().zip(&replies) {
            for row in value::array(reply) {
                if let Some(d) = Delivered::from_reply(*queue, stream, row) {
                    batch.push(d);
                }
            }
        }
        dispatch(sh, &mut conn, batch);
    }
}
