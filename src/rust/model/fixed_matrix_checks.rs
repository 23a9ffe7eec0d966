//! The checks lme4 makes of the fixed-effects matrix `X` (n × p, column-major), from one pass
//! over its columns:
//!
//! - which columns are finite (no NA, NaN or ±Inf): a model with one is an error naming it;
//! - the cross-product `XᵀX` and the smallest eigenvalue of the columns' cosine matrix
//!   `D^{-1/2} XᵀX D^{-1/2}` (`D` its diagonal), from which the front end decides whether `X` is
//!   clearly of full rank before it would run lme4's pivoted QR (`check.rankX`);
//! - for each column that is not a 0/1 indicator, the logarithm of its sample standard
//!   deviation `log √(Σ (xᵢ − x̄)² / (n − 1))` (`check.scaleX`); indicator columns are left out.
//!
//! R's versions formed an n × p logical matrix (`is.finite`), copied each column for the scale
//! check and ran `crossprod` (together 1.3 ms of a 7,584-row fit's front end).
use faer::linalg::matmul::triangular::{matmul, BlockStructure};
use faer::{Accum, MatMut, MatRef, Par};

/// What [`fixed_matrix_checks`] finds.
#[derive(Debug, Clone, PartialEq)]
pub struct FixedMatrixChecks {
    /// Whether each column is finite.
    pub finite: Vec<bool>,
    /// `XᵀX`, `p × p` column-major (both triangles); NaN everywhere when some column is not
    /// finite.
    pub cross_product: Vec<f64>,
    /// The smallest eigenvalue of the cosine matrix of the columns, `None` when some column is
    /// not finite or all zero (or there are none).
    pub min_cosine_eigenvalue: Option<f64>,
    /// The log standard deviation of each column, `None` for a 0/1 indicator column (NaN for
    /// another column when `n < 2`).
    pub log_sd: Vec<Option<f64>>,
}

/// The checks of the `n`-row column-major `x`.
pub fn fixed_matrix_checks(x: &[f64], n: usize) -> FixedMatrixChecks {
    let p = x.len().checked_div(n).unwrap_or(0);
    let finite: Vec<bool> = x
        .chunks_exact(n.max(1))
        .take(p)
        .map(|col| col.iter().all(|v| v.is_finite()))
        .collect();
    let mut cross_product = vec![f64::NAN; p * p];
    if finite.iter().all(|&f| f) && p > 0 {
        cross_product.fill(0.0);
        let xm = MatRef::from_column_major_slice(&x[..n * p], n, p);
        matmul(
            MatMut::from_column_major_slice_mut(&mut cross_product, p, p),
            BlockStructure::TriangularLower,
            Accum::Replace,
            xm.transpose(),
            BlockStructure::Rectangular,
            xm,
            BlockStructure::Rectangular,
            1.0,
            Par::Seq,
        );
        for c in 0..p {
            for r in 0..c {
                cross_product[c * p + r] = cross_product[r * p + c];
            }
        }
    }
    FixedMatrixChecks {
        min_cosine_eigenvalue: min_cosine_eigenvalue(&cross_product, p),
        finite,
        cross_product,
        log_sd: column_log_sds(&x[..n * p], n),
    }
}

/// The smallest eigenvalue of `D^{-1/2} G D^{-1/2}` for the `p × p` Gram matrix `G` (`D` its
/// diagonal), `None` when `G` is not finite, has a zero diagonal or is empty.
fn min_cosine_eigenvalue(gram: &[f64], p: usize) -> Option<f64> {
    let len: Vec<f64> = (0..p).map(|j| gram[j * p + j].sqrt()).collect();
    if p == 0 || gram.iter().any(|v| !v.is_finite()) || len.contains(&0.0) {
        return None;
    }
    let cosine = faer::Mat::from_fn(p, p, |r, c| gram[c * p + r] / (len[r] * len[c]));
    let values = cosine.self_adjoint_eigenvalues(faer::Side::Lower).ok()?;
    values.first().copied().filter(|v| v.is_finite())
}

/// The log standard deviation of each column of the `n`-row column-major `x`, `None` for a
/// column whose values are all 0 or 1 (NaN for a non-indicator column when `n < 2`).
pub fn column_log_sds(x: &[f64], n: usize) -> Vec<Option<f64>> {
    if n == 0 {
        return Vec::new();
    }
    x.chunks_exact(n)
        .map(|col| {
            if col.iter().all(|&v| v == 0.0 || v == 1.0) {
                return None;
            }
            let mean = col.iter().sum::<f64>() / n as f64;
            let ss: f64 = col.iter().map(|v| (v - mean) * (v - mean)).sum();
            Some((ss / (n as f64 - 1.0)).sqrt().ln())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indicator_columns_are_left_out_and_the_others_match_the_sample_sd() {
        // Columns: all 1 (intercept), a 0/1 indicator, a covariate.
        let x = [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 2.0, 4.0, 4.0, 6.0];
        let out = column_log_sds(&x, 4);
        assert_eq!(out[0], None);
        assert_eq!(out[1], None);
        // mean 4, squares 4 + 0 + 0 + 4 = 8, variance 8 / 3.
        let expected = (8.0f64 / 3.0).sqrt().ln();
        assert!((out[2].unwrap() - expected).abs() < 1e-15);
    }

    #[test]
    fn a_single_row_gives_nan_for_a_covariate() {
        let out = column_log_sds(&[1.0, 3.5], 1);
        assert_eq!(out[0], None);
        assert!(out[1].unwrap().is_nan());
        assert!(column_log_sds(&[], 0).is_empty());
    }

    #[test]
    fn the_cross_product_is_the_full_symmetric_gram_matrix() {
        let x = [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 2.0, 4.0, 4.0, 6.0];
        let checks = fixed_matrix_checks(&x, 4);
        assert_eq!(checks.finite, vec![true; 3]);
        let mut expected = vec![0.0; 9];
        for c in 0..3 {
            for r in 0..3 {
                expected[c * 3 + r] = (0..4).map(|i| x[r * 4 + i] * x[c * 4 + i]).sum();
            }
        }
        assert_eq!(checks.cross_product, expected);
        assert_eq!(checks.log_sd, column_log_sds(&x, 4));
    }

    #[test]
    fn the_smallest_cosine_eigenvalue_detects_collinear_columns() {
        // Two columns at 45 degrees: cosine matrix [1 c; c 1], eigenvalues 1 ± c.
        let x = [1.0, 0.0, 1.0, 1.0];
        let c = 1.0 / 2.0f64.sqrt();
        let got = fixed_matrix_checks(&x, 2).min_cosine_eigenvalue.unwrap();
        assert!((got - (1.0 - c)).abs() < 1e-15, "{got}");
        // A column that is twice another: 0 up to rounding.
        let x = [1.0, 2.0, 3.0, 2.0, 4.0, 6.0];
        assert!(
            fixed_matrix_checks(&x, 3)
                .min_cosine_eigenvalue
                .unwrap()
                .abs()
                < 1e-14
        );
        // An all-zero column, a non-finite one, no columns.
        assert_eq!(
            fixed_matrix_checks(&[1.0, 1.0, 0.0, 0.0], 2).min_cosine_eigenvalue,
            None
        );
        assert_eq!(
            fixed_matrix_checks(&[1.0, f64::NAN], 2).min_cosine_eigenvalue,
            None
        );
        assert_eq!(fixed_matrix_checks(&[], 2).min_cosine_eigenvalue, None);
    }

    #[test]
    fn a_column_with_a_missing_or_infinite_value_is_named_and_no_cross_product_formed() {
        let x = [1.0, 1.0, 1.0, f64::NAN, 0.0, 1.0, 2.0, f64::INFINITY, 4.0];
        let checks = fixed_matrix_checks(&x, 3);
        assert_eq!(checks.finite, vec![true, false, false]);
        assert!(checks.cross_product.iter().all(|v| v.is_nan()));
    }
}
