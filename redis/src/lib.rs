//! # runq-redis
//!
//! runq nodes on many machines sharing durable queues held in Redis (7.0
//! or later) Streams: at least once, nothing lost when a node dies.
//!
//! A [`Client`] enqueues jobs (priority, attempts, backoff, delay, deadline,
//! idempotency key, result TTL), asks their [`JobState`], waits for their
//! end without polling, cancels them. A [`Node`] consumes the three
//! priority streams of one or more queues into a runq [`Pool`](runq::Pool),
//! strictly high before normal before low, running the handler registered
//! for each job's type.
//!
//! ```no_run
//! use runq::{Pool, Priority};
//! use runq_redis::{Client, Enqueue, Job, Node};
//! use std::time::Duration;
//!
//! let url = "redis://127.0.0.1:6379/";
//! let pool = Pool::builder().workers(4).build()?;
//! let node = Node::builder(url, pool)
//!     .queue("default")
//!     .handler("echo", |job: &Job| -> Result<Vec<u8>, String> { Ok(job.payload.clone()) })
//!     .lease(Duration::from_secs(30))
//!     .start()?;
//!
//! let client = Client::open(url)?;
//! let id = client.enqueue(Enqueue::new("default", "echo", "hi").priority(Priority::High).attempts(3))?;
//! assert_eq!(client.wait(&id, Duration::from_secs(5))?, Some(Ok(b"hi".to_vec())));
//! node.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Guarantees
//!
//! - **At least once, nothing lost.** An entry is acked (XACK and XDEL)
//!   only in the same Lua step that writes its terminal state, parks it for
//!   a retry, or puts a fresh copy back. A node renews the leases of the
//!   entries it holds; any node claims entries idle longer than the lease
//!   and runs them; one delivered `max_deliveries` times goes to the dead
//!   letters instead. A redelivered job whose record is terminal is acked
//!   without running. Acked entries are deleted: streams hold only what is
//!   waiting or running.
//! - **Retries, delays, deadlines, keys live in Redis**: a retry or a
//!   delayed job waits in the scheduled set and any node promotes it when
//!   due, once; a deadline past at pickup ends the job `expired`; a key is
//!   refused while its job is not terminal.
//! - **Faults**: a node reconnects by itself (bounded backoff) after Redis
//!   restarts or drops it; a batch of outcomes cut off mid-way is replayed
//!   and the steps already done change nothing. A malformed entry is
//!   dead-lettered with a clear error.
//!
//! The wire format (version 1) is in the README ("Beyond one machine") and
//! in the `wire` and `keys` modules; the Lua scripts, each with what it
//! changes atomically and why, are under `src/scripts/`.
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]

mod client;
mod conn;
mod error;
mod keys;
mod node;
mod scripts;
mod value;
mod wire;

pub use client::{Client, ConsumerStats, DeadLetter, Enqueue, JobRecord, QueueStats};
pub use error::Error;
pub use node::{Job, Node, NodeBuilder, NodeStats};
pub use wire::{JobId, JobState};
