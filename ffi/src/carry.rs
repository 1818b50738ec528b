//! [`Carried`]: a C pointer that runq moves between threads without ever
//! looking at what it points to.

use std::ffi::c_void;

/// A `void*` from C (a task's `arg`, its result, a callback's `user`) on its
/// way to another thread.
///
/// Raw pointers are not `Send` because Rust cannot know whether the data
/// behind them may be touched from another thread. runq never dereferences
/// a carried pointer: it copies the address from the thread that submitted
/// the task to the thread that runs it, and from there to the callback and
/// the waiter. Whether the pointee may be used on those threads is the C
/// program's promise, made when it hands the pointer over (the same promise
/// `pthread_create` asks for its `arg`); the header states it on every
/// function that takes one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Carried(pub(crate) *mut c_void);

// SAFETY: This is safe because: [1] runq code only copies the address and
// passes it back to C, it never reads or writes through it (no method of
// `Carried` dereferences it); [2] the C functions that do dereference it
// run on pool threads only after the caller handed the pointer to
// `runq_spawn`/`runq_submit*`, whose header contract requires that the
// pointee may be used from another thread.
unsafe impl Send for Carried {}

impl Carried {
    /// The null pointer, handed back for tasks that produced no result.
    pub(crate) const NULL: Carried = Carried(std::ptr::null_mut());

    /// The address. A method, not a field access, so that a `move` closure
    /// captures the whole `Carried` (which is `Send`) and not its raw
    /// pointer field (which is not).
    pub(crate) fn get(self) -> *mut c_void {
        self.0
    }
}
