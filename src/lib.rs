//! runq
