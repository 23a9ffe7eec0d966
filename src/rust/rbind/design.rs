//! Entry points of the model-frame stage (R/frame.R): checks of the fixed-effects matrix that
//! are cheaper in one pass here than as R's vector operations.
use crate::model::column_scales::column_log_sds;
use extendr_api::prelude::*;

/// The log standard deviation of each column of the double matrix `x` that is not a 0/1
/// indicator, `NA` for the indicator columns (lme4's `check.scaleX`).
/// @noRd
#[extendr]
fn column_log_sds_rs(x: Robj) -> extendr_api::Result<Robj> {
    let n = match x
        .dim()
        .map(|d| d.iter().map(Option::<i32>::from).collect::<Vec<_>>())
    {
        Some(d) if d.len() == 2 => d[0].unwrap_or(0).max(0) as usize,
        _ => return Err(Error::Other("'x' must be a matrix".into())),
    };
    let values = x
        .as_real_slice()
        .ok_or_else(|| Error::Other("'x' must be a double matrix".into()))?;
    Ok(column_log_sds(values, n).into())
}

extendr_module! {
    mod design;
    fn column_log_sds_rs;
}
