//! R binding of Satterthwaite and Kenward–Roger degrees of freedom (`summary()`, `anova()`).
use crate::ddf;
use crate::inference::parallel;
use crate::lmm::LinearMixedModel;
use crate::rbind::{doubles, err, other, RInputs, Result};
use crate::rbind_resample::thread_count;
use extendr_api::prelude::*;

fn matrices(ms: &[Vec<f64>]) -> Robj {
    List::from_values(ms.iter().map(|m| Robj::from(m.clone()))).into()
}

/// The ingredients of `method` ("Satterthwaite" or "Kenward-Roger") degrees of freedom of a
/// linear mixed model at its estimates `theta`, `sigma`, on `threads` threads (the fit's
/// `control$threads`; 0: all cores). The model arguments are those of `lmm_fit_rs`.
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn lmm_ddf_rs(
    y: Robj,
    x: Robj,
    p: i32,
    weights: Robj,
    offset: Robj,
    terms: Robj,
    reml: bool,
    theta: Robj,
    sigma: f64,
    method: &str,
    threads: i32,
) -> Result<Robj> {
    let inputs = RInputs::new(y, x, p, weights, offset, terms)?;
    let term_sizes: Vec<(usize, usize)> = inputs.terms.iter().map(|t| (t.3, t.1)).collect();
    let theta = doubles(&theta, "theta")?.to_vec();
    let par = parallel::par(thread_count(threads)?);
    let mut model = LinearMixedModel::new(inputs.spec()?, reml, par).map_err(err)?;
    match method {
        "Satterthwaite" => {
            let s = ddf::satterthwaite(&mut model, &theta, sigma).map_err(err)?;
            Ok(list!(
                k = s.k as i32,
                vcov_beta = s.vcov_beta,
                jacobian = matrices(&s.jacobian),
                vcov_varpar = s.vcov_varpar,
                hessian_eigenvalues = s.hessian_eigenvalues
            )
            .into())
        }
        "Kenward-Roger" => {
            let kr = ddf::kenward_roger(&mut model, &theta, sigma, &term_sizes).map_err(err)?;
            Ok(list!(
                k = kr.k as i32,
                phi = kr.phi,
                P = matrices(&kr.p),
                Q = matrices(&kr.q),
                R = matrices(&kr.r),
                ktrace = kr.ktrace
            )
            .into())
        }
        m => Err(other(format!("unknown degrees-of-freedom method '{m}'"))),
    }
}

extendr_module! {
    mod rbind_ddf;
    fn lmm_ddf_rs;
}
