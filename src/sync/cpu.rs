//! Which CPU the calling thread runs on: a hint for choosing whom to wake.
//!
//! On Linux this is `sched_getcpu` (a vDSO call, `rdpid` where the CPU has
//! it: a few nanoseconds). The answer may be stale as soon as it returns,
//! so no protocol may depend on it for correctness. Under loom and Miri,
//! and off Linux, every thread reports CPU 0.

/// The CPU the calling thread is running on (a hint; see the module docs).
#[cfg(all(target_os = "linux", not(loom), not(miri)))]
#[inline]
pub(crate) fn current_cpu() -> u32 {
    // SAFETY: `sched_getcpu` takes no arguments and touches no memory of
    // ours; it returns -1 on failure, mapped to CPU 0 below.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).unwrap_or(0)
}

/// The CPU the calling thread is running on (a hint; see the module docs).
#[cfg(not(all(target_os = "linux", not(loom), not(miri))))]
#[inline]
pub(crate) fn current_cpu() -> u32 {
    0
}
