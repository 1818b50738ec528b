//! Wire format version 1: the fields of a ready-stream entry, the job
//! states, and the parsing a node does before it runs an entry.
//!
//! An entry is a flat list of fields. Required: `id` (unique, chosen by the
//! producer), `type` (handler name), `payload` (bytes, may be empty).
//! Optional: `attempts` (runs in all, default 1), `backoff_ms` (exponential
//! base, default 1000), `deadline_ms` (Unix ms: not started by then means
//! expired), `result_ttl_s` (default 86400). Unknown fields are kept (they
//! travel into retries and dead letters) and ignored.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Default number of runs in all (wire format v1).
pub(crate) const DEFAULT_ATTEMPTS: u32 = 1;
/// Default exponential backoff base in ms (wire format v1).
pub(crate) const DEFAULT_BACKOFF_MS: u64 = 1000;
/// Default time a terminal record is kept, in seconds (wire format v1: a day).
pub(crate) const DEFAULT_RESULT_TTL_S: u64 = 86_400;

/// Where a job stands, as its record's `state` field says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// In a ready stream, waiting for a node.
    Queued,
    /// Delayed: in the scheduled set until its due time.
    Scheduled,
    /// Delivered to a node and started (or about to).
    Running,
    /// Failed an attempt; waits in the scheduled set for the next one.
    Retrying,
    /// Terminal: the handler returned a result.
    Succeeded,
    /// Terminal: the handler failed its last attempt (also a dead letter).
    Failed,
    /// Terminal: dead-lettered without a verdict from a handler: delivered
    /// more than `max_deliveries` times (it kept killing its node), or
    /// malformed (missing fields, unknown type, bad numbers).
    Dead,
    /// Terminal: its deadline passed before it started.
    Expired,
    /// Terminal: cancelled before it started.
    Cancelled,
}

impl JobState {
    /// The state's name in the record (`queued`, `running`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Scheduled => "scheduled",
            JobState::Running => "running",
            JobState::Retrying => "retrying",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
            JobState::Expired => "expired",
            JobState::Cancelled => "cancelled",
        }
    }

    /// The state named `s` in a record, if it is one.
    pub fn parse(s: &str) -> Option<JobState> {
        Some(match s {
            "queued" => JobState::Queued,
            "scheduled" => JobState::Scheduled,
            "running" => JobState::Running,
            "retrying" => JobState::Retrying,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            "dead" => JobState::Dead,
            "expired" => JobState::Expired,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }

    /// True for the states a job never leaves.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobState::Succeeded
                | JobState::Failed
                | JobState::Dead
                | JobState::Expired
                | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job's identity: its queue and its id (unique within the queue).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobId {
    queue: String,
    id: String,
}

impl JobId {
    /// The job `id` of `queue` (for a job another producer enqueued).
    pub fn new(queue: impl Into<String>, id: impl Into<String>) -> JobId {
        JobId {
            queue: queue.into(),
            id: id.into(),
        }
    }

    /// The queue.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The id, as in the entry's `id` field.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.queue, self.id)
    }
}

/// The milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A ready-stream entry a node has parsed and may run.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) attempts: u32,
    pub(crate) backoff_ms: u64,
    pub(crate) result_ttl_s: u64,
}

fn find<'a>(fields: &'a [(Vec<u8>, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(k, _)| k.as_slice() == name.as_bytes())
        .map(|(_, v)| v.as_slice())
}

fn text<'a>(fields: &'a [(Vec<u8>, Vec<u8>)], name: &str) -> Result<Option<&'a str>, String> {
    match find(fields, name) {
        None => Ok(None),
        Some(v) => std::str::from_utf8(v)
            .map(Some)
            .map_err(|_| format!("field `{name}` is not UTF-8")),
    }
}

fn number(
    fields: &[(Vec<u8>, Vec<u8>)],
    name: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, String> {
    match text(fields, name)? {
        None => Ok(None),
        Some(s) => match s.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(format!(
                "field `{name}` is {s:?}, not a whole number from {min} to {max}"
            )),
        },
    }
}

/// Largest `attempts` a producer may ask for: a bound against typos, not a
/// tuning value (a job retried a million times is a bug).
pub(crate) const MAX_ATTEMPTS: u64 = 1_000_000;
/// Largest `result_ttl_s`: ten years, far above any use; the bound keeps
/// EXPIRE's argument in range.
pub(crate) const MAX_RESULT_TTL_S: u64 = 10 * 365 * 86_400;

/// Parses an entry's fields; the error text goes into the dead letter.
/// `deadline_ms` is checked here for form only (the pickup step in Redis
/// already compared it with the clock).
pub(crate) fn parse_entry(fields: &[(Vec<u8>, Vec<u8>)]) -> Result<Entry, String> {
    let id = match text(fields, "id")? {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => return Err("missing field `id`".into()),
    };
    let kind = match text(fields, "type")? {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => return Err("missing field `type`".into()),
    };
    let payload = match find(fields, "payload") {
        Some(p) => p.to_vec(),
        None => return Err("missing field `payload`".into()),
    };
    let attempts = number(fields, "attempts", 1, MAX_ATTEMPTS)?.unwrap_or(DEFAULT_ATTEMPTS as u64);
    let backoff_ms =
        number(fields, "backoff_ms", 0, u32::MAX as u64)?.unwrap_or(DEFAULT_BACKOFF_MS);
    number(fields, "deadline_ms", 0, i64::MAX as u64)?;
    let result_ttl_s =
        number(fields, "result_ttl_s", 1, MAX_RESULT_TTL_S)?.unwrap_or(DEFAULT_RESULT_TTL_S);
    Ok(Entry {
        id,
        kind,
        payload,
        attempts: attempts as u32,
        backoff_ms,
        result_ttl_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn a_minimal_entry_takes_the_defaults() {
        let e = parse_entry(&f(&[("id", "j1"), ("type", "echo"), ("payload", "")])).unwrap();
        assert_eq!(e.attempts, 1);
        assert_eq!(e.backoff_ms, 1000);
        assert_eq!(e.result_ttl_s, 86_400);
        assert!(e.payload.is_empty());
    }

    #[test]
    fn bad_entries_get_a_clear_error() {
        let base = [("id", "j1"), ("type", "echo"), ("payload", "x")];
        assert!(parse_entry(&f(&base[1..])).unwrap_err().contains("`id`"));
        assert!(parse_entry(&f(&[base[0], base[2]]))
            .unwrap_err()
            .contains("`type`"));
        assert!(parse_entry(&f(&base[..2]))
            .unwrap_err()
            .contains("`payload`"));
        for (name, bad) in [
            ("attempts", "0"),
            ("attempts", "many"),
            ("backoff_ms", "-1"),
            ("deadline_ms", "soon"),
            ("result_ttl_s", "0"),
        ] {
            let mut fs = f(&base);
            fs.extend(f(&[(name, bad)]));
            let err = parse_entry(&fs).unwrap_err();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for s in [
            JobState::Queued,
            JobState::Scheduled,
            JobState::Running,
            JobState::Retrying,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Dead,
            JobState::Expired,
            JobState::Cancelled,
        ] {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
        assert_eq!(JobState::parse("bogus"), None);
    }
}
