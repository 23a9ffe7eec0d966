//! The inverse of a dense symmetric positive-definite matrix, `A⁻¹ = L⁻ᵀ L⁻¹` from its Cholesky
//! factor `A = L Lᵀ`, with the parallelism chosen by the caller.
//!
//! faer's high-level `Mat::llt().inverse()` runs with the global parallelism (every core): on
//! the small matrices of the Laplace gradient (tens of random effects, evaluated hundreds of
//! times per fit) waking the thread pool costs more than the arithmetic.
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{cholesky_in_place, cholesky_in_place_scratch};
use faer::linalg::cholesky::llt::inverse::{inverse, inverse_scratch};
use faer::{Mat, Par};

/// Size from which the dense inverse is worth running on more than one thread.
pub const PARALLEL_DIM: usize = 256;

/// The parallelism for a dense `dim × dim` factorization: sequential below [`PARALLEL_DIM`].
pub fn par_for(dim: usize, par: Par) -> Par {
    if dim >= PARALLEL_DIM {
        par
    } else {
        Par::Seq
    }
}

/// `A⁻¹` for the symmetric positive-definite `a` (its lower triangle is read), or `None` when
/// `a` is not positive definite.
pub fn spd_inverse(mut a: Mat<f64>, par: Par) -> Option<Mat<f64>> {
    let n = a.nrows();
    let req = cholesky_in_place_scratch::<f64>(n, par, Default::default())
        .or(inverse_scratch::<f64>(n, par));
    let mut mem = MemBuffer::new(req);
    let stack = MemStack::new(&mut mem);
    cholesky_in_place(
        a.as_mut(),
        Default::default(),
        par,
        stack,
        Default::default(),
    )
    .ok()?;
    let mut out = Mat::<f64>::zeros(n, n);
    inverse(out.as_mut(), a.as_ref(), par, stack);
    // `inverse` fills the lower triangle.
    for c in 0..n {
        for r in 0..c {
            out[(r, c)] = out[(c, r)];
        }
    }
    let finite = out.col_iter().all(|col| col.iter().all(|v| v.is_finite()));
    finite.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_times_matrix_is_identity() {
        let n = 5;
        // A = B Bᵀ + I with a fixed B.
        let b = Mat::<f64>::from_fn(n, n, |r, c| ((r * 7 + c * 3) % 5) as f64 - 2.0);
        let a = Mat::<f64>::from_fn(n, n, |r, c| {
            (0..n).map(|k| b[(r, k)] * b[(c, k)]).sum::<f64>() + if r == c { 1.0 } else { 0.0 }
        });
        for par in [Par::Seq, Par::rayon(2)] {
            let inv = spd_inverse(a.clone(), par).expect("positive definite");
            for r in 0..n {
                for c in 0..n {
                    let v: f64 = (0..n).map(|k| a[(r, k)] * inv[(k, c)]).sum();
                    let want = if r == c { 1.0 } else { 0.0 };
                    assert!((v - want).abs() < 1e-10, "({r}, {c}): {v}");
                }
            }
        }
    }

    #[test]
    fn not_positive_definite_is_none() {
        let a = Mat::<f64>::from_fn(2, 2, |r, c| if r == c { 1.0 } else { 2.0 });
        assert!(spd_inverse(a, Par::Seq).is_none());
    }
}
