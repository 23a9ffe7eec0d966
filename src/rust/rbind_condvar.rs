//! R binding of the conditional variances of the random effects (`ranef(condVar = TRUE)`).
//!
//! Both functions take the engine inputs of a fitted object (as `fit_engine_inputs()` rebuilds
//! them) and return, per random-effects term in input order, lme4's `postVar` array
//! (`q × q × n_levels`, a double array with its `dim`).
use crate::condvar::{glmm_conditional_variances, lmm_conditional_variances, TermCondVar};
use crate::family::Family;
use crate::inference::parallel;
use crate::lmm::LinearMixedModel;
use crate::rbind::{doubles, err, other, real, RInputs, Result};
use crate::rbind_resample::thread_count;
use extendr_api::prelude::*;

fn arrays(blocks: Vec<TermCondVar>) -> Result<Robj> {
    let mut out = Vec::with_capacity(blocks.len());
    for b in blocks {
        let dim = [b.q, b.q, b.n_levels]
            .iter()
            .map(|&d| i32::try_from(d).map_err(|_| other("internal: dimension too large")))
            .collect::<Result<Vec<i32>>>()?;
        let mut a = Robj::from(b.values);
        a.set_attrib("dim", dim)?;
        out.push(a);
    }
    Ok(List::from_values(out).into())
}

/// Conditional covariance arrays of a linear mixed model at `theta`, scaled by its `σ²` (REML
/// or ML as `reml` says), on `threads` threads (the fit's `control$threads`; 0: all cores).
/// Other arguments as `lmm_fit_rs`.
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn lmm_condvar_rs(
    y: Robj,
    x: Robj,
    p: i32,
    weights: Robj,
    offset: Robj,
    terms: Robj,
    reml: bool,
    theta: Robj,
    threads: i32,
) -> Result<Robj> {
    let inputs = RInputs::new(y, x, p, weights, offset, terms)?;
    let par = parallel::par(thread_count(threads)?);
    let mut model = LinearMixedModel::new(inputs.spec()?, reml, par).map_err(err)?;
    let blocks =
        lmm_conditional_variances(&mut model, doubles(&theta, "theta")?, par).map_err(err)?;
    arrays(blocks)
}

/// Conditional covariance arrays of a fitted GLMM: at `theta` and the fitted linear predictor
/// `eta` (the conditional modes; the PIRLS weights come from it), scaled by `sigma²`. `y` and
/// `weights` as `glmm_fit_rs` takes them (response as fitted, prior weights); `threads` as
/// `lmm_condvar_rs`.
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn glmm_condvar_rs(
    y: Robj,
    x: Robj,
    p: i32,
    weights: Robj,
    offset: Robj,
    terms: Robj,
    family: &str,
    link: &str,
    theta: Robj,
    eta: Robj,
    sigma: Robj,
    threads: i32,
) -> Result<Robj> {
    let inputs = RInputs::new(y, x, p, weights, offset, terms)?;
    let fam = Family::new(family, link).map_err(err)?;
    let sigma = real(&sigma, "sigma")?;
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(other("'sigma' must be a positive number"));
    }
    let blocks = glmm_conditional_variances(
        &inputs.spec()?,
        fam,
        doubles(&theta, "theta")?,
        doubles(&eta, "eta")?,
        sigma * sigma,
        parallel::par(thread_count(threads)?),
    )
    .map_err(err)?;
    arrays(blocks)
}

extendr_module! {
    mod rbind_condvar;
    fn lmm_condvar_rs;
    fn glmm_condvar_rs;
}
