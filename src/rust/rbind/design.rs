//! Entry points of the model-frame stage (R/frame.R): the fixed-effects matrix of main effects
//! and lme4's checks of it, cheaper in one pass here than as R's vector operations.
use crate::model::fixed_matrix_checks::fixed_matrix_checks;
use crate::model::treatment_matrix::{treatment_matrix, FixedColumn, NumericValues};
use extendr_api::prelude::*;

/// The number of rows of the matrix `x`.
fn matrix_rows(x: &Robj) -> extendr_api::Result<usize> {
    match x
        .dim()
        .map(|d| d.iter().map(Option::<i32>::from).collect::<Vec<_>>())
    {
        Some(d) if d.len() == 2 => Ok(d[0].unwrap_or(0).max(0) as usize),
        _ => Err(Error::Other("'x' must be a matrix".into())),
    }
}

/// lme4's checks of the double matrix `x`: `finite` (logical per column), `crossprod` (`XᵀX`,
/// NaN when some column is not finite), `min_cosine_eigenvalue` (the smallest eigenvalue of the
/// columns' cosine matrix, `NA` when some column is not finite or all zero) and `log_sd` (the
/// log standard deviation of each column that is not a 0/1 indicator, `NA` for the indicator
/// columns).
/// @noRd
#[extendr]
fn fixed_matrix_checks_rs(x: Robj) -> extendr_api::Result<Robj> {
    let n = matrix_rows(&x)?;
    let values = x
        .as_real_slice()
        .ok_or_else(|| Error::Other("'x' must be a double matrix".into()))?;
    let checks = fixed_matrix_checks(values, n);
    let p = checks.finite.len() as i32;
    let mut gram = Robj::from(checks.cross_product);
    gram.set_attrib("dim", [p, p])?;
    Ok(list!(
        finite = checks.finite,
        crossprod = gram,
        min_cosine_eigenvalue = checks.min_cosine_eigenvalue,
        log_sd = checks.log_sd
    )
    .into())
}

/// The `n`-row fixed-effects matrix of main effects (intercept when `intercept`): `columns` a
/// list of numeric vectors (double or integer) and factors, `n_levels` 0 for a numeric variable
/// and the number of levels for a factor (its indicators of levels 2, …, k). `NULL` when a
/// factor has a missing or invalid code. The matrix gets its `dim`, then each of the named
/// list `attributes` in order (`dimnames`, `assign`, ...): R would copy an object made here to
/// add them afterwards.
/// @noRd
#[extendr]
fn treatment_matrix_rs(
    columns: List,
    n_levels: &[i32],
    intercept: bool,
    n: i32,
    attributes: List,
) -> extendr_api::Result<Robj> {
    let n = usize::try_from(n).map_err(|_| Error::Other("'n' must not be negative".into()))?;
    if columns.len() != n_levels.len() {
        return Err(Error::Other(
            "'columns' and 'n_levels' differ in length".into(),
        ));
    }
    let columns: Vec<Robj> = columns.values().collect();
    let mut parts = Vec::with_capacity(columns.len());
    for (column, &levels) in columns.iter().zip(n_levels) {
        let short = || Error::Other("a column is shorter than 'n'".into());
        let part = if levels > 0 {
            let codes = column
                .as_integer_slice()
                .ok_or_else(|| Error::Other("a factor column must hold integer codes".into()))?;
            if codes.len() < n {
                return Err(short());
            }
            FixedColumn::Factor(codes, levels as usize)
        } else if let Some(v) = column.as_real_slice() {
            if v.len() < n {
                return Err(short());
            }
            FixedColumn::Numeric(NumericValues::Double(v))
        } else if let Some(v) = column.as_integer_slice() {
            if v.len() < n {
                return Err(short());
            }
            FixedColumn::Numeric(NumericValues::Integer(v))
        } else {
            return Err(Error::Other(
                "a numeric column must be double or integer".into(),
            ));
        };
        parts.push(part);
    }
    let Some(x) = treatment_matrix(&parts, intercept, n) else {
        return Ok(Robj::from(()));
    };
    let p = i32::try_from(x.len().checked_div(n).unwrap_or(0))
        .map_err(|_| Error::Other("too many columns".into()))?;
    let n = i32::try_from(n).map_err(|_| Error::Other("too many rows".into()))?;
    let mut out = Robj::from(x);
    out.set_attrib("dim", [n, p])?;
    for (name, value) in attributes.iter() {
        out.set_attrib(name, value)?;
    }
    Ok(out)
}

extendr_module! {
    mod design;
    fn fixed_matrix_checks_rs;
    fn treatment_matrix_rs;
}
