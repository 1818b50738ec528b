//! loom models of runq's concurrency protocols live in `tests/`; they only
//! build with `RUSTFLAGS="--cfg loom"`.
