//! Key names of wire format version 1: every key of queue `Q` starts
//! `runq:{Q}:`, so a queue's keys share one Redis Cluster hash slot.

use crate::error::Error;
use runq::Priority;

/// The consumer group every node of every queue reads through.
pub(crate) const GROUP: &str = "runq";

/// The keys of one queue.
#[derive(Debug, Clone)]
pub(crate) struct QueueKeys {
    pub(crate) name: String,
    pub(crate) prefix: String,
}

impl QueueKeys {
    pub(crate) fn new(queue: &str) -> Result<QueueKeys, Error> {
        validate_queue(queue)?;
        Ok(QueueKeys {
            name: queue.to_string(),
            prefix: format!("runq:{{{queue}}}:"),
        })
    }

    pub(crate) fn stream(&self, p: Priority) -> String {
        format!("{}{}", self.prefix, priority_name(p))
    }

    pub(crate) fn streams(&self) -> [String; 3] {
        [
            self.stream(Priority::High),
            self.stream(Priority::Normal),
            self.stream(Priority::Low),
        ]
    }

    pub(crate) fn scheduled(&self) -> String {
        format!("{}scheduled", self.prefix)
    }

    pub(crate) fn dead(&self) -> String {
        format!("{}dead", self.prefix)
    }

    pub(crate) fn job(&self, id: &str) -> String {
        format!("{}job:{id}", self.prefix)
    }

    pub(crate) fn done(&self, id: &str) -> String {
        format!("{}done:{id}", self.prefix)
    }

    pub(crate) fn key(&self, key: &str) -> String {
        format!("{}key:{key}", self.prefix)
    }
}

/// A queue name must be non-empty and free of `{`, `}` (they would break
/// the hash tag) and of control characters.
pub(crate) fn validate_queue(queue: &str) -> Result<(), Error> {
    if queue.is_empty() {
        return Err(Error::InvalidArgument("queue name is empty".into()));
    }
    if queue
        .chars()
        .any(|c| c == '{' || c == '}' || c.is_control())
    {
        return Err(Error::InvalidArgument(format!(
            "queue name {queue:?} contains '{{', '}}' or a control character"
        )));
    }
    Ok(())
}

/// The stream suffix of a priority.
pub(crate) fn priority_name(p: Priority) -> &'static str {
    match p {
        Priority::High => "high",
        Priority::Low => "low",
        Priority::Normal => "normal",
    }
}

/// The priority of a stream suffix.
pub(crate) fn priority_of(name: &str) -> Option<Priority> {
    match name {
        "high" => Some(Priority::High),
        "normal" => Some(Priority::Normal),
        "low" => Some(Priority::Low),
        _ => None,
    }
}
