//! The crate's one error type.

use crate::wire::JobId;
use std::fmt;

/// What went wrong with a call on a [`Client`](crate::Client) or while
/// starting a [`Node`](crate::Node).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Redis could not be reached, or answered with an error.
    Redis(redis::RedisError),
    /// A bad argument: an empty queue or type, zero attempts, a zero lease,
    /// no queue or no handler for a node, ...
    InvalidArgument(String),
    /// A job with this id is already queued, scheduled or running.
    DuplicateId(JobId),
    /// The idempotency key is held by another job that is not terminal yet.
    DuplicateKey {
        /// The key.
        key: String,
        /// The job holding it.
        holder: JobId,
    },
    /// Redis answered something this version of the wire format does not
    /// expect (a newer or foreign writer).
    Protocol(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Redis(e) => write!(f, "redis: {e}"),
            Error::InvalidArgument(s) => write!(f, "invalid argument: {s}"),
            Error::DuplicateId(id) => write!(f, "job {id} is already queued or running"),
            Error::DuplicateKey { key, holder } => {
                write!(f, "key {key:?} is held by job {holder}, not finished yet")
            }
            Error::Protocol(s) => write!(f, "unexpected reply from redis: {s}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Redis(e) => Some(e),
            _ => None,
        }
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Error {
        Error::Redis(e)
    }
}
