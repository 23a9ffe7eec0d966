//! R binding of likelihood profiles and parametric-bootstrap refits (`confint()`, `bootmm()`).
use crate::family::Family;
use crate::glmm::GlmmOptions;
use crate::inference::bootstrap::{self, GlmmSetup};
use crate::inference::profile::{
    self, GlmmProfiler, IntervalMethod, LmmProfiler, ProfileOptions, ProfileTrace, Profiler,
};
use crate::lmm::LmmFit;
use crate::rbind::{
    doubles, err, glmm_fit_to_list, glmm_options, optim_options, optional_doubles, other,
    summary_to_list, RInputs, Result,
};
use crate::spec::ModelSpec;
use extendr_api::prelude::*;

/// A thread count from R (0: all cores); the engine turns it into parallelism
/// ([`crate::inference::parallel`]).
pub(crate) fn thread_count(threads: i32) -> Result<usize> {
    usize::try_from(threads).map_err(|_| other("'threads' must be a non-negative whole number"))
}

/// Profiles the ML deviance of a linear mixed model over the parameters `which` (1-based
/// indices into sd/cor, σ, β) from θ `theta` (the fit's estimates; the model is refitted by ML
/// from there). Returns the ML optimum and, per parameter, the points (ζ and all parameters).
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn lmm_profile_rs(
    y: Robj,
    x: Robj,
    p: i32,
    weights: Robj,
    offset: Robj,
    terms: Robj,
    theta: Robj,
    which: Robj,
    threads: i32,
) -> Result<Robj> {
    let inputs = RInputs::new(y, x, p, weights, offset, terms)?;
    let start = optional_doubles(&theta, "theta")?;
    let profiler =
        LmmProfiler::new(inputs.spec()?, start, ProfileOptions::default()).map_err(err)?;
    profile_result(&profiler, &which, threads)
}

/// Profiles the parameters `which` (R's 1-based indices) on `threads` threads; the optimum and
/// the traces as R reads them.
fn profile_result(profiler: &impl Profiler, which: &Robj, threads: i32) -> Result<Robj> {
    let which = profile_indices(which, profiler.n_par())?;
    let traces = profiler
        .profile_many(&which, thread_count(threads)?)
        .map_err(err)?;
    Ok(list!(
        optimum = profiler.optimum().to_vec(),
        theta = profiler.theta().to_vec(),
        base = profiler.base(),
        cutoff = profiler.cutoff(),
        lower = profiler.lower().to_vec(),
        upper = profiler.upper().to_vec(),
        stderr = profiler.stderr().to_vec(),
        traces = traces_to_list(&traces)
    )
    .into())
}

/// 0-based parameter indices from R's 1-based `which`.
fn profile_indices(which: &Robj, npar: usize) -> Result<Vec<usize>> {
    doubles(which, "which")?
        .iter()
        .map(|&w| {
            if w >= 1.0 && w <= npar as f64 && w == w.trunc() {
                Ok(w as usize - 1)
            } else {
                Err(other(format!("parameter index {w} is outside 1..{npar}")))
            }
        })
        .collect()
}

/// Per profile: the 1-based index, ζ, the points by row (npts × npar, row-major flattened)
/// and the warnings met.
fn traces_to_list(traces: &[ProfileTrace]) -> List {
    List::from_values(traces.iter().map(|t| {
        let zeta: Vec<f64> = t.points.iter().map(|pt| pt.zeta).collect();
        let pars: Vec<f64> = t
            .points
            .iter()
            .flat_map(|pt| pt.pars.iter().copied())
            .collect();
        Robj::from(list!(
            index = (t.index + 1) as i32,
            zeta = zeta,
            pars = pars,
            warnings = t.warnings.clone()
        ))
    }))
}

/// Profiles the deviance of a GLMM (Laplace for `n_agq = 1`, adaptive Gauss–Hermite for more
/// points) over the parameters `which` (1-based indices into sd/cor, β), after polishing the
/// fit `(theta, beta)`; data arguments as `glmm_fit_rs`, `eta_start` the fit's linear
/// predictor, PIRLS settings from `control` (a `glmmControl`). Returns as `lmm_profile_rs`.
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn glmm_profile_rs(
    y: Robj,
    x: Robj,
    p: i32,
    weights: Robj,
    offset: Robj,
    terms: Robj,
    family: &str,
    link: &str,
    n_trials: Robj,
    eta_start: Robj,
    n_agq: i32,
    theta: Robj,
    beta: Robj,
    control: Robj,
    which: Robj,
    threads: i32,
) -> Result<Robj> {
    let inputs = RInputs::new(y, x, p, weights, offset, terms)?;
    let spec = inputs.spec()?;
    let (setup, n_agq, opts) =
        glmm_setup(&spec, family, link, &n_trials, &eta_start, n_agq, &control)?;
    let profiler = GlmmProfiler::new(
        setup,
        n_agq,
        opts.pirls,
        doubles(&theta, "theta")?,
        doubles(&beta, "beta")?,
        ProfileOptions::for_glmm(),
    )
    .map_err(err)?;
    profile_result(&profiler, &which, threads)
}

/// Where the profile `zeta(par)` crosses each of `targets` (NA where it does not reach one),
/// how that was read (`"spline"`, `"linear"`, `"failed"`) and whether points with equal
/// `zeta` were averaged (`ties`).
/// @noRd
#[extendr]
fn profile_interval_rs(par: Robj, zeta: Robj, targets: Robj) -> Result<Robj> {
    let par = doubles(&par, "par")?;
    let zeta = doubles(&zeta, "zeta")?;
    let targets = doubles(&targets, "targets")?;
    if par.len() != zeta.len() {
        return Err(other("internal: 'par' and 'zeta' differ in length"));
    }
    let (values, how) = profile::profile_interval(par, zeta, targets);
    let values: Vec<Option<f64>> = values
        .into_iter()
        .map(|v| if v.is_nan() { None } else { Some(v) })
        .collect();
    let (method, ties) = match how {
        IntervalMethod::Spline => ("spline", false),
        IntervalMethod::Linear { ties } => ("linear", ties),
        IntervalMethod::Failed => ("failed", false),
    };
    Ok(list!(values = values, method = method, ties = ties).into())
}

fn lmm_replicate_to_list(r: &LmmFit) -> Robj {
    let b = List::from_values(r.b.iter().map(|v| Robj::from(v.clone())));
    list!(
        theta = r.theta.clone(),
        par = r.par.clone(),
        beta = r.beta.clone(),
        u = r.u.clone(),
        b = b,
        sigma = r.sigma,
        ldL2 = r.ldl2,
        ldRX2 = r.ldrx2,
        wrss = r.wrss,
        ussq = r.ussq,
        pwrss = r.pwrss,
        objective = r.objective,
        deviance_ml = r.deviance_ml,
        reml_crit = r.reml_crit,
        vcov_unscaled = r.vcov_unscaled.clone(),
        optinfo = summary_to_list(&r.opt)
    )
    .into()
}

fn failed(e: &crate::error::MixedError) -> Robj {
    list!(error = e.to_string()).into()
}

/// Refits a linear mixed model to each column of `responses` (n × nsim) from θ `start`, with
/// the settings of `control` (an `lmmControl`), on `threads` threads (0: all cores). Returns
/// one list per replicate (as `lmm_fit_rs` returns, without fitted values), or
/// `list(error = message)` for a replicate that failed.
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn lmm_bootstrap_rs(
    y: Robj,
    x: Robj,
    p: i32,
    weights: Robj,
    offset: Robj,
    terms: Robj,
    reml: bool,
    responses: Robj,
    start: Robj,
    control: Robj,
    threads: i32,
) -> Result<Robj> {
    let inputs = RInputs::new(y, x, p, weights, offset, terms)?;
    let spec = inputs.spec()?;
    let opts = optim_options(&control)?;
    let reps = bootstrap::bootstrap_lmm(
        &spec,
        reml,
        doubles(&responses, "responses")?,
        doubles(&start, "start")?,
        &opts,
        thread_count(threads)?,
    )
    .map_err(err)?;
    Ok(List::from_values(reps.iter().map(|r| match r {
        Ok(rep) => lmm_replicate_to_list(rep),
        Err(e) => failed(e),
    }))
    .into())
}

/// Refits a GLMM to each column of `responses` (the response as fitted: proportions for
/// binomial models) from `(start_theta, start_beta)`; other arguments as `glmm_fit_rs`, with
/// `eta_start` the fit's linear predictor. One list per replicate, as `lmm_bootstrap_rs`.
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn glmm_bootstrap_rs(
    y: Robj,
    x: Robj,
    p: i32,
    weights: Robj,
    offset: Robj,
    terms: Robj,
    family: &str,
    link: &str,
    n_trials: Robj,
    eta_start: Robj,
    n_agq: i32,
    responses: Robj,
    start_theta: Robj,
    start_beta: Robj,
    control: Robj,
    threads: i32,
) -> Result<Robj> {
    let inputs = RInputs::new(y, x, p, weights, offset, terms)?;
    let spec = inputs.spec()?;
    let (setup, _, opts) = glmm_setup(&spec, family, link, &n_trials, &eta_start, n_agq, &control)?;
    let reps = bootstrap::bootstrap_glmm(
        setup,
        doubles(&responses, "responses")?,
        doubles(&start_theta, "start_theta")?,
        doubles(&start_beta, "start_beta")?,
        &opts,
        thread_count(threads)?,
    )
    .map_err(err)?;
    Ok(List::from_values(reps.iter().map(|r| match r {
        Ok(fit) => glmm_fit_to_list(fit, false),
        Err(e) => failed(e),
    }))
    .into())
}

/// The family, quadrature and options of a GLMM that is refitted or profiled from R's inputs.
fn glmm_setup<'s, 'a>(
    spec: &'s ModelSpec<'a>,
    family: &str,
    link: &str,
    n_trials: &'s Robj,
    eta_start: &'s Robj,
    n_agq: i32,
    control: &Robj,
) -> Result<(GlmmSetup<'s, 'a>, usize, GlmmOptions)> {
    let n_agq = usize::try_from(n_agq).map_err(|_| other("internal: nAGQ must be >= 0"))?;
    let setup = GlmmSetup {
        spec,
        family: Family::new(family, link).map_err(err)?,
        n_trials: doubles(n_trials, "n_trials")?,
        eta_start: doubles(eta_start, "eta_start")?,
    };
    Ok((setup, n_agq, glmm_options(control, n_agq)?))
}

extendr_module! {
    mod rbind_resample;
    fn lmm_profile_rs;
    fn glmm_profile_rs;
    fn profile_interval_rs;
    fn lmm_bootstrap_rs;
    fn glmm_bootstrap_rs;
}
