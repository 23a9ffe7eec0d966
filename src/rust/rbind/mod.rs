//! The R binding (feature "r"): the only code that knows R. R hands a fit's model over as one
//! list, which [`convert`] turns into validated inputs once; the entry points ([`fit`],
//! [`inference`]) run the engine; [`results`] turns each plain result into the list R reads.
//! Core errors cross the boundary with `?` (`From<MixedError>` in `crate::error`) and arrive in R
//! as ordinary errors with the same message; a panic does too (extendr catches it, and the quiet
//! hook keeps R's console clean).
use extendr_api::prelude::*;

mod convert;
mod design;
mod devfun;
mod fit;
mod inference;
mod interrupt;
mod results;
mod rlist;

/// Silences Rust's panic message; extendr turns the panic itself into an R error.
#[no_mangle]
pub extern "C" fn mixedrs_quiet_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

/// Test hook: panics on purpose, so that the tests can check that a Rust panic reaches R as an
/// ordinary error and leaves the session usable.
/// @noRd
#[extendr]
fn panic_probe_rs() {
    panic!("deliberate panic (test of the panic boundary)"); // ok: the test hook itself
}

extendr_module! {
    mod mixedrs;
    use fit;
    use design;
    use devfun;
    use inference;
    fn panic_probe_rs;
}
