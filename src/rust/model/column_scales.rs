//! lme4's scale check of the fixed-effects matrix `X` (`check.scaleX`): for each column that is
//! not a 0/1 indicator (some value other than 0 and 1), the logarithm of its sample standard
//! deviation `log √(Σ (xᵢ − x̄)² / (n − 1))`; indicator columns are left out of the check.
//!
//! One pass per column over the column-major matrix: R's version copied each column and formed
//! four vectors of its length (0.5 ms of a 7,584-row fit's 4 ms front end).

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
}
