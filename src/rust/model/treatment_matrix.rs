//! The fixed-effects matrix of a model whose fixed part is main effects only, each a plain
//! numeric variable or an unordered factor coded by treatment contrasts (with an intercept):
//! `[1, x₁, …, I(f = level₂), …, I(f = level_k), …]`, the columns `model.matrix()` forms for
//! such a formula, in its order (the front end names them and checks when this applies).
//!
//! Hand-rolled rather than `model.matrix()` on the front end's hot path: R's version (and our
//! earlier one in R) allocates index vectors and matrices of the rows' length per factor, 0.5 ms
//! of a 7,584-row fit.

/// One variable of the fixed part.
pub enum FixedColumn<'a> {
    /// A numeric variable: one column (NA, as NaN, kept: the checks name it).
    Numeric(NumericValues<'a>),
    /// A factor's 1-based codes and its number of levels: the indicators of levels 2, …, k.
    Factor(&'a [i32], usize),
}

/// The values of a numeric variable as R stores them.
pub enum NumericValues<'a> {
    Double(&'a [f64]),
    /// `i32::MIN` is R's NA.
    Integer(&'a [i32]),
}

/// The `n × p` column-major matrix (`p` = intercept + the columns of every variable), or `None`
/// when some factor code is missing or out of range (the caller then uses `model.matrix()`).
pub fn treatment_matrix(
    columns: &[FixedColumn<'_>],
    intercept: bool,
    n: usize,
) -> Option<Vec<f64>> {
    let width = |c: &FixedColumn<'_>| match c {
        FixedColumn::Numeric(_) => 1,
        FixedColumn::Factor(_, levels) => levels.saturating_sub(1),
    };
    let p = usize::from(intercept) + columns.iter().map(width).sum::<usize>();
    let mut x = vec![0.0; n * p];
    let mut at = 0;
    if intercept {
        x[..n].fill(1.0);
        at = 1;
    }
    for column in columns {
        match column {
            FixedColumn::Numeric(values) => {
                let out = &mut x[at * n..(at + 1) * n];
                match values {
                    NumericValues::Double(v) => out.copy_from_slice(&v[..n]),
                    NumericValues::Integer(v) => {
                        for (o, &k) in out.iter_mut().zip(v.iter()) {
                            *o = if k == i32::MIN {
                                f64::NAN
                            } else {
                                f64::from(k)
                            };
                        }
                    }
                }
            }
            &FixedColumn::Factor(codes, levels) => {
                for (i, &code) in codes[..n].iter().enumerate() {
                    let code = usize::try_from(code)
                        .ok()
                        .filter(|&c| c >= 1 && c <= levels)?;
                    if code > 1 {
                        x[(at + code - 2) * n + i] = 1.0;
                    }
                }
            }
        }
        at += width(column);
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intercept_numeric_and_factor_columns_in_model_matrix_order() {
        let z = [0.5, 1.5, 2.5];
        let k = [3, i32::MIN, 7];
        let f = [1, 3, 2];
        let cols = [
            FixedColumn::Numeric(NumericValues::Double(&z)),
            FixedColumn::Factor(&f, 3),
            FixedColumn::Numeric(NumericValues::Integer(&k)),
        ];
        let x = treatment_matrix(&cols, true, 3).unwrap();
        let expected = [
            1.0,
            1.0,
            1.0, // intercept
            0.5,
            1.5,
            2.5, // z
            0.0,
            0.0,
            1.0, // f level 2
            0.0,
            1.0,
            0.0, // f level 3
            3.0,
            f64::NAN,
            7.0, // k
        ];
        assert_eq!(x.len(), expected.len());
        for (a, b) in x.iter().zip(expected) {
            assert!(a == &b || (a.is_nan() && b.is_nan()));
        }
    }

    #[test]
    fn a_code_out_of_range_or_missing_gives_none() {
        let bad = [1, 4];
        assert!(treatment_matrix(&[FixedColumn::Factor(&bad, 3)], true, 2).is_none());
        let na = [1, i32::MIN];
        assert!(treatment_matrix(&[FixedColumn::Factor(&na, 3)], true, 2).is_none());
        assert_eq!(treatment_matrix(&[], true, 2).unwrap(), vec![1.0, 1.0]);
    }
}
