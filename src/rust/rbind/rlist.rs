//! Named R lists of plain values (numeric, integer, logical and character vectors, nested lists)
//! built on R's C API, for the results a fit returns on every call.
//!
//! Hand-rolled on a hot path, and why: extendr registers every object it makes in a global hash
//! map behind a lock, and a fit's result holds some thirty vectors. `perf` put that at a quarter
//! of sleepstudy's engine call (about 20 µs of 90). Here only the list being filled is protected,
//! on R's own protect stack; each element is stored in it as soon as it is made, so it is
//! reachable from a protected object before anything else is allocated. The values are those
//! extendr's conversions give (`Vec<f64>` a double vector, `i32` an integer, `bool` a logical,
//! `String` a UTF-8 string, `Option<String>` `NA` when `None`).
use extendr_api::prelude::*;
use extendr_api::{single_threaded, SEXP};
use extendr_ffi::{
    cetype_t, R_NaString, R_NamesSymbol, R_NilValue, Rf_allocVector, Rf_mkCharLenCE, Rf_protect,
    Rf_setAttrib, Rf_unprotect, INTEGER, LOGICAL, REAL, SET_STRING_ELT, SET_VECTOR_ELT, SEXPTYPE,
};

/// One element of a list.
pub(crate) enum Value<'a> {
    /// A double vector.
    Doubles(&'a [f64]),
    /// A double scalar.
    Double(f64),
    /// An integer scalar.
    Int(i32),
    /// A logical scalar.
    Logical(bool),
    /// A character scalar.
    Str(&'a str),
    /// A character scalar, `NA` for `None`.
    OptStr(Option<&'a str>),
    /// A character vector.
    Strs(&'a [String]),
    /// An unnamed list of double vectors.
    DoubleVectors(&'a [Vec<f64>]),
    /// `NULL`.
    Null,
    /// A named list.
    List(Vec<(&'a str, Value<'a>)>),
}

/// The named list of `items`, in their order.
pub(crate) fn named_list(items: Vec<(&str, Value)>) -> Robj {
    single_threaded(|| unsafe { Robj::from_sexp(list_sexp(&items)) })
}

/// A CHARSXP of `s` (UTF-8).
unsafe fn mk_char(s: &str) -> SEXP {
    Rf_mkCharLenCE(s.as_ptr().cast(), s.len() as i32, cetype_t::CE_UTF8)
}

/// A new, unprotected list of `items` with their names.
unsafe fn list_sexp(items: &[(&str, Value)]) -> SEXP {
    let n = items.len() as isize;
    let list = Rf_protect(Rf_allocVector(SEXPTYPE::VECSXP, n));
    let names = Rf_protect(Rf_allocVector(SEXPTYPE::STRSXP, n));
    for (i, (name, value)) in items.iter().enumerate() {
        SET_VECTOR_ELT(list, i as isize, value_sexp(value));
        SET_STRING_ELT(names, i as isize, mk_char(name));
    }
    Rf_setAttrib(list, R_NamesSymbol, names);
    Rf_unprotect(2);
    list
}

/// A new, unprotected R object of `value`; the caller stores it before allocating again.
unsafe fn value_sexp(value: &Value) -> SEXP {
    match value {
        Value::Doubles(v) => doubles_sexp(v),
        Value::Double(x) => doubles_sexp(&[*x]),
        Value::Int(x) => {
            let s = Rf_allocVector(SEXPTYPE::INTSXP, 1);
            *INTEGER(s) = *x;
            s
        }
        Value::Logical(x) => {
            let s = Rf_allocVector(SEXPTYPE::LGLSXP, 1);
            *LOGICAL(s) = i32::from(*x);
            s
        }
        Value::Str(x) => strings_sexp(std::iter::once(Some(*x)), 1),
        Value::OptStr(x) => strings_sexp(std::iter::once(*x), 1),
        Value::Strs(v) => strings_sexp(v.iter().map(|s| Some(s.as_str())), v.len()),
        Value::DoubleVectors(vs) => {
            let list = Rf_protect(Rf_allocVector(SEXPTYPE::VECSXP, vs.len() as isize));
            for (i, v) in vs.iter().enumerate() {
                SET_VECTOR_ELT(list, i as isize, doubles_sexp(v));
            }
            Rf_unprotect(1);
            list
        }
        Value::Null => R_NilValue,
        Value::List(items) => list_sexp(items),
    }
}

/// A new, unprotected double vector holding `v`.
unsafe fn doubles_sexp(v: &[f64]) -> SEXP {
    let s = Rf_allocVector(SEXPTYPE::REALSXP, v.len() as isize);
    if !v.is_empty() {
        std::slice::from_raw_parts_mut(REAL(s), v.len()).copy_from_slice(v);
    }
    s
}

/// A new, unprotected character vector of the `n` strings of `values` (`None`: `NA`).
unsafe fn strings_sexp<'a>(values: impl Iterator<Item = Option<&'a str>>, n: usize) -> SEXP {
    let s = Rf_protect(Rf_allocVector(SEXPTYPE::STRSXP, n as isize));
    for (i, value) in values.enumerate() {
        let c = match value {
            Some(x) => mk_char(x),
            None => R_NaString,
        };
        SET_STRING_ELT(s, i as isize, c);
    }
    Rf_unprotect(1);
    s
}
