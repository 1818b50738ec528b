//! runq-bench: runq side by side with the engines its users would
//! otherwise pick, on the standard workloads of the field.
//!
//! The `runq-bench` binary drives this library; the tests in `tests/` run
//! every workload at a tiny size on every engine and check that the work
//! was really done. The pieces:
//!
//! - [`engine`]: one small adapter per engine (runq pinned and unpinned,
//!   rayon, tokio `spawn` and `spawn_blocking`, a crossbeam-channel pool,
//!   an `std::sync::mpsc` pool), all with the same number of workers;
//! - [`workload`]: the workloads, their sizes, and the [`Outcome`] of a run;
//! - [`report`]: medians over repeats, tables, verdicts and JSON;
//! - [`plot`]: the SVG of latency histograms and throughput ratios;
//! - [`alloc`]: the counting global allocator; [`measure`]: countdowns,
//!   histograms, CPU time.
//!
//! [`Outcome`]: workload::Outcome

#![deny(missing_docs, unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations)]

pub mod alloc;
pub mod engine;
pub mod measure;
pub mod plot;
pub mod report;
pub mod workload;

pub use engine::{Engine, EngineKind, Spawner};
pub use workload::{Metric, Outcome, Size, Workload};
