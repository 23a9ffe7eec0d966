//! Ctrl-C during a long fit. R notes a SIGINT as a pending interrupt and acts on it only when
//! its own code next checks; `R_CheckUserInterrupt()` would act on it by a long jump, which must
//! never cross Rust frames. Run inside `R_ToplevelExec`, the jump ends at that boundary, which
//! then reports that it happened: the interrupt is consumed and the caller stops the optimizer
//! and returns an ordinary error.
use std::ffi::{c_int, c_void};

extern "C" {
    fn R_ToplevelExec(fun: Option<unsafe extern "C" fn(*mut c_void)>, data: *mut c_void) -> c_int;
    fn R_CheckUserInterrupt();
}

unsafe extern "C" fn check_interrupt(_: *mut c_void) {
    // SAFETY: called by R_ToplevelExec on R's main thread; a jump ends inside it.
    unsafe { R_CheckUserInterrupt() }
}

/// Whether the user asked to interrupt (the interrupt is consumed). Call only from R's main
/// thread, which is where the optimizer's progress callback runs.
pub(super) fn interrupt_pending() -> bool {
    // SAFETY: R_ToplevelExec returns FALSE (0) when the function it ran was cut short by an
    // error or an interrupt; nothing else is touched.
    unsafe { R_ToplevelExec(Some(check_interrupt), std::ptr::null_mut()) == 0 }
}
