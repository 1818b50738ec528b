//! C ABI for runq.
