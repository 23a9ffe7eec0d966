//! Entry points of inference after a fit: conditional variances of the random effects
//! (R/condvar.R), Satterthwaite and Kenward–Roger ingredients (R/ddf.R), likelihood profiles and
//! their intervals (R/confint.R) and parametric-bootstrap refits (R/bootstrap.R). Each takes the
//! fit's `model` list as `fit_engine_inputs()` rebuilds it; `threads` is a thread count (0: all
//! cores).
use crate::fit::lmm::LinearMixedModel;
use crate::fit::merged_rows::MergedRows;
use crate::fit::response::ResponseFamily;
use crate::inference::bootstrap::{self, GlmmSetup};
use crate::inference::condvar::{glmm_conditional_variances, lmm_conditional_variances};
use crate::inference::ddf;
use crate::inference::influence::{self, DeletionFit};
use crate::inference::parallel;
use crate::inference::profile::glmm::ExtraAtFit;
use crate::inference::profile::{self, GlmmProfiler, LmmProfiler, ProfileOptions, Profiler};
use crate::model::family::Family;
use crate::model::spec::ModelSpec;
use extendr_api::prelude::*;

use super::convert::{
    agq_points, count, doubles, optional_doubles, optional_field, optional_real, other,
    parameter_indices, real, ExtendedFamilyInput, GlmmControl, LmmControl, ModelInputs, Result,
    Threads,
};
use super::interrupt::interrupt_pending;
use super::results::{self, Rows};
use crate::inference::parallel::Watched;
use std::sync::Arc;
use std::time::Duration;

/// Conditional covariance arrays (lme4's `postVar`, one per term) of a linear mixed model at
/// `theta`, scaled by its `σ²` (REML or ML as `reml` says).
/// @noRd
#[extendr]
fn lmm_condvar_rs(model: ModelInputs, reml: bool, theta: Robj, threads: Threads) -> Result<Robj> {
    let par = threads.par();
    let mut lmm = LinearMixedModel::new(model.spec()?, reml, par)?;
    results::condvar(lmm_conditional_variances(
        &mut lmm,
        doubles(&theta, "theta")?,
        par,
    )?)
}

/// Conditional covariance arrays of a fitted GLMM: at `theta` and the fitted linear predictor
/// `eta` (the conditional modes; the PIRLS weights come from it), scaled by `sigma²`. `model` as
/// `glmm_fit_rs` takes it (response as fitted, prior weights).
/// @noRd
#[extendr]
fn glmm_condvar_rs(
    model: ModelInputs,
    family: &str,
    link: &str,
    theta: Robj,
    eta: Robj,
    sigma: Robj,
    threads: Threads,
) -> Result<Robj> {
    let family = Family::new(family, link)?;
    let sigma = real(&sigma, "sigma")?;
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(other("'sigma' must be a positive number"));
    }
    results::condvar(glmm_conditional_variances(
        &model.spec()?,
        family,
        doubles(&theta, "theta")?,
        doubles(&eta, "eta")?,
        sigma * sigma,
        threads.par(),
    )?)
}

/// The conditional variances of a GLMM whose family has extra parameters, from the working
/// weights of its factor at the modes (the fit's `working_weights`); `model` as for
/// `glmm_condvar_rs`.
/// @noRd
#[extendr]
fn glmm_condvar_weights_rs(
    model: ModelInputs,
    theta: Robj,
    weights: Robj,
    threads: Threads,
) -> Result<Robj> {
    results::condvar(crate::condvar::conditional_variances_at_weights(
        &model.spec()?,
        doubles(&theta, "theta")?,
        doubles(&weights, "weights")?,
        1.0,
        threads.par(),
    )?)
}

/// The ingredients of `method` ("Satterthwaite" or "Kenward-Roger") degrees of freedom of a
/// linear mixed model at its estimates `theta` (the optimizer's parameters), `sigma`.
/// @noRd
#[extendr]
fn lmm_ddf_rs(
    model: ModelInputs,
    reml: bool,
    theta: Robj,
    sigma: f64,
    method: &str,
    threads: Threads,
) -> Result<Robj> {
    let theta = doubles(&theta, "theta")?;
    let mut lmm = LinearMixedModel::new(model.spec()?, reml, threads.par())?;
    match method {
        "Satterthwaite" => Ok(results::satterthwaite(ddf::satterthwaite(
            &mut lmm, theta, sigma,
        )?)),
        "Kenward-Roger" => {
            // Its dense steps take seconds on a large model: Ctrl-C is polled meanwhile.
            let terms = model.term_sizes();
            let state = Watched::default();
            let kr = watched(&state, "Kenward-Roger: dense steps", None, || {
                ddf::kenward_roger(&mut lmm, theta, sigma, &terms, &state)
            })?;
            Ok(results::kenward_roger(kr))
        }
        m => Err(other(format!("unknown degrees-of-freedom method '{m}'"))),
    }
}

/// Profiles the ML deviance of a linear mixed model over the parameters `which` (1-based
/// indices into the variance parameters, σ, β) from `theta` (the fit's optimizer parameters
/// `par`; the model is refitted by ML from there). Returns the ML optimum and, per parameter, the points (ζ and all parameters).
/// @noRd
#[extendr]
fn lmm_profile_rs(
    model: ModelInputs,
    theta: Robj,
    which: Robj,
    settings: Robj,
    threads: Threads,
) -> Result<Robj> {
    let start = optional_doubles(&theta, "theta")?;
    let (opts, state) = watchable(profile_options(&settings)?);
    let profiler = LmmProfiler::new(model.spec()?, start, opts)?;
    profile_result(&profiler, &state, &which, threads)
}

/// Profiles the parameters `which` (R's 1-based indices) on `threads` threads, watched (see
/// [`watched`]; `state` is the profiler's [`ProfileOptions::watched`]): Ctrl-C ends the walks
/// at their next point and the call in an R error.
fn profile_result(
    profiler: &impl Profiler,
    state: &Watched,
    which: &Robj,
    threads: Threads,
) -> Result<Robj> {
    let which = parameter_indices(which, profiler.n_par())?;
    let traces = watched(state, "profile: points", None, || {
        profiler.profile_many(&which, threads.0)
    })?;
    Ok(results::profile(profiler, &traces))
}

/// lme4's `profile()` settings given from R (a list of `alphamax`, `maxpts`, `delta` (`NULL`:
/// `delta_cutoff` × the cutoff), `delta_cutoff`, `maxmult` and `devtol`, each optional) over
/// [`ProfileOptions::default`]; R has checked them.
fn profile_options(settings: &Robj) -> Result<ProfileOptions> {
    let mut opts = ProfileOptions::default();
    if let Some(v) = optional_real(settings, "alphamax")? {
        opts.alphamax = v;
    }
    if let Some(v) = optional_field(settings, "maxpts")? {
        opts.maxpts = count(&v, "maxpts")?;
    }
    opts.delta = optional_real(settings, "delta")?;
    if let Some(v) = optional_real(settings, "delta_cutoff")? {
        opts.delta_cutoff = v;
    }
    if let Some(v) = optional_real(settings, "maxmult")? {
        opts.maxmult = v;
    }
    if let Some(v) = optional_real(settings, "devtol")? {
        opts.devtol = v;
    }
    Ok(opts)
}

/// [`ProfileOptions`] `base` with a fresh [`Watched`] state, and that state.
fn watchable(base: ProfileOptions) -> (ProfileOptions, Arc<Watched>) {
    let state = Arc::new(Watched::default());
    (
        ProfileOptions {
            watched: state.clone(),
            ..base
        },
        state,
    )
}

/// Profiles the deviance of a GLMM (Laplace for `n_agq = 1`, adaptive Gauss–Hermite for more
/// points) over the parameters `which` (1-based indices into the variance parameters, β), after
/// polishing the fit `(theta, beta)` (`theta`: the fit's optimizer parameters `par`); arguments
/// as `glmm_fit_rs`, `eta_start` the fit's linear predictor, PIRLS settings from `control` (a
/// `glmmControl`). Returns as `lmm_profile_rs`.
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn glmm_profile_rs(
    model: ModelInputs,
    family: &str,
    link: &str,
    n_trials: Robj,
    eta_start: Robj,
    n_agq: i32,
    theta: Robj,
    beta: Robj,
    control: GlmmControl,
    which: Robj,
    settings: Robj,
    threads: Threads,
) -> Result<Robj> {
    let spec = model.spec()?;
    let family = Family::new(family, link)?;
    let (n_trials, eta_start) = (
        doubles(&n_trials, "n_trials")?,
        doubles(&eta_start, "eta_start")?,
    );
    // Every point of the profile refits the same rows: held once where they repeat.
    let glm = ResponseFamily::Glm(family);
    let merged = MergedRows::new(&spec, &glm, n_trials, eta_start);
    let (spec, _, n_trials, eta_start) =
        MergedRows::model_to_fit(merged.as_ref(), &spec, &glm, n_trials, eta_start)?;
    let setup = GlmmSetup {
        spec: &spec,
        family,
        n_trials,
        eta_start,
    };
    let n_agq = agq_points(n_agq)?;
    let (opts, state) = watchable(profile_options(&settings)?);
    let profiler = GlmmProfiler::new(
        setup,
        n_agq,
        control.options(n_agq).pirls,
        doubles(&theta, "theta")?,
        doubles(&beta, "beta")?,
        opts,
    )?;
    profile_result(&profiler, &state, &which, threads)
}

/// As `glmm_profile_rs` for a fit by `glmm_extended_fit_rs`: `family` as there, with `start`
/// the family's own parameters at the fit, `extra_se` their standard errors. The parameters
/// are the variance parameters, the family's own (dispersion then zero-inflation
/// coefficients), then β.
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn glmm_extended_profile_rs(
    model: ModelInputs,
    family: ExtendedFamilyInput,
    n_trials: Robj,
    eta_start: Robj,
    n_agq: i32,
    theta: Robj,
    beta: Robj,
    extra_se: Robj,
    control: GlmmControl,
    which: Robj,
    settings: Robj,
    threads: Threads,
) -> Result<Robj> {
    let spec = model.spec()?;
    let ExtendedFamilyInput { family, start } = family;
    let family = ResponseFamily::Extended(family);
    let (n_trials, eta_start) = (
        doubles(&n_trials, "n_trials")?,
        doubles(&eta_start, "eta_start")?,
    );
    // Every point of the profile refits the same rows: held once where they repeat.
    let merged = MergedRows::new(&spec, &family, n_trials, eta_start);
    let (spec, family, n_trials, eta_start) =
        MergedRows::model_to_fit(merged.as_ref(), &spec, &family, n_trials, eta_start)?;
    let data = (&spec, n_trials, eta_start);
    let n_agq = agq_points(n_agq)?;
    let extra = ExtraAtFit {
        values: &start,
        stderr: doubles(&extra_se, "extra_se")?,
    };
    let (opts, state) = watchable(profile_options(&settings)?);
    let profiler = GlmmProfiler::with_family(
        data,
        family,
        extra,
        n_agq,
        control.options(n_agq).pirls,
        (doubles(&theta, "theta")?, doubles(&beta, "beta")?),
        opts,
    )?;
    profile_result(&profiler, &state, &which, threads)
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
    Ok(results::profile_interval(values, how))
}

/// A watched run shows its progress line once it has run this long.
const PROGRESS_AFTER: Duration = Duration::from_secs(2);

/// Time between two updates of a progress line.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Whether long runs show a progress line: R's `getOption("mixedrs.progress", interactive())`,
/// which must be `TRUE` or `FALSE` (anything else is an error naming the option).
fn progress_wanted() -> Result<bool> {
    let value = R!("getOption('mixedrs.progress', interactive())")?;
    match value.as_logical_slice() {
        Some([v]) if !v.is_na() => Ok(v.is_true()),
        _ => Err(other(
            "options(mixedrs.progress = ) must be TRUE or FALSE (whether long runs of \
             bootmm(), profile() and Kenward-Roger show a progress line)",
        )),
    }
}

/// `work` (a bootstrap on a rayon pool, a profile, Kenward-Roger's dense steps) on a thread of
/// its own, watched from R's thread (see [`parallel::watch`]): Ctrl-C raises the stop flag of
/// `state`, which the work checks between its pieces, and the run ends in an R error; after
/// [`PROGRESS_AFTER`], where [`progress_wanted`], a line on stderr counts the pieces done
/// (`label: k [of total] (t s)`), rewritten in place and closed when the run ends.
fn watched<T: Send>(
    state: &Watched,
    label: &str,
    total: Option<usize>,
    work: impl FnOnce() -> crate::error::Result<T> + Send,
) -> Result<T> {
    let show = progress_wanted()?;
    let mut shown: Option<Duration> = None;
    let (out, interrupted) = parallel::watch(state, work, |state, elapsed| {
        let due = shown.map_or(elapsed >= PROGRESS_AFTER, |last| {
            elapsed >= last + PROGRESS_EVERY
        });
        if show && due {
            shown = Some(elapsed);
            let of = total.map_or(String::new(), |t| format!(" of {t}"));
            reprint!(
                "\r{label}: {}{of} ({:.0} s)",
                state.done(),
                elapsed.as_secs_f64()
            );
        }
        interrupt_pending()
    });
    if shown.is_some() {
        reprintln!();
    }
    if interrupted {
        return Err(other("interrupted by the user"));
    }
    Ok(out?)
}

/// Refits a linear mixed model to each column of `responses` (n × nsim) from `start` (the fit's
/// optimizer parameters `par`), with the settings of `control` (an `lmmControl`). Returns one
/// list per replicate (as `lmm_fit_rs` returns, without fitted values), or
/// `list(error = message)` for a replicate that failed.
/// @noRd
#[extendr]
fn lmm_bootstrap_rs(
    model: ModelInputs,
    reml: bool,
    responses: Robj,
    start: Robj,
    control: LmmControl,
    threads: Threads,
) -> Result<Robj> {
    let spec = model.spec()?;
    let (responses, start) = (doubles(&responses, "responses")?, doubles(&start, "start")?);
    let state = Watched::default();
    let n_sim = responses.len() / spec.n.max(1);
    let reps = watched(&state, "bootstrap: refits", Some(n_sim), || {
        bootstrap::bootstrap_lmm(
            &spec,
            reml,
            responses,
            start,
            &control.optim,
            threads.0,
            &state,
        )
    })?;
    Ok(results::replicates(&reps, |r| {
        results::lmm_fit(r, Rows::Replicate)
    }))
}

/// Refits a GLMM to each column of `responses` (the response as fitted: proportions for
/// binomial models) from `(start_theta, start_beta)` (the fit's `par` and β); other arguments
/// as `glmm_fit_rs`, with
/// `eta_start` the fit's linear predictor. One list per replicate, as `lmm_bootstrap_rs`.
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn glmm_bootstrap_rs(
    model: ModelInputs,
    family: &str,
    link: &str,
    n_trials: Robj,
    eta_start: Robj,
    n_agq: i32,
    responses: Robj,
    start_theta: Robj,
    start_beta: Robj,
    control: GlmmControl,
    threads: Threads,
) -> Result<Robj> {
    let spec = model.spec()?;
    let setup = glmm_setup(&spec, family, link, &n_trials, &eta_start)?;
    let responses = doubles(&responses, "responses")?;
    let start = (
        doubles(&start_theta, "start_theta")?,
        doubles(&start_beta, "start_beta")?,
    );
    let opts = control.options(agq_points(n_agq)?);
    let state = Watched::default();
    let n_sim = responses.len() / spec.n.max(1);
    let reps = watched(&state, "bootstrap: refits", Some(n_sim), || {
        bootstrap::bootstrap_glmm(setup, responses, start.0, start.1, &opts, threads.0, &state)
    })?;
    Ok(results::replicates(&reps, |r| {
        results::glmm_fit(r, Rows::Replicate)
    }))
}

/// Refits a linear mixed model without each set of observations: `sets` gives each
/// observation's deletion set (1-based, at most `n_sets`); each refit starts from `start` (the
/// fit's optimizer parameters `par`) with the settings of `control` (an `lmmControl`). One list
/// per set (`theta`, `par`, `beta`, `sigma`, `vcov_unscaled`, `objective`, `n_obs`, `optinfo`), or
/// `list(error = message)` for a refit that failed.
/// @noRd
#[extendr]
fn lmm_deletion_rs(
    model: ModelInputs,
    reml: bool,
    sets: Robj,
    n_sets: i32,
    start: Robj,
    control: LmmControl,
    threads: Threads,
) -> Result<Robj> {
    let codes = sets
        .as_integer_slice()
        .ok_or_else(|| other("'sets' must be an integer vector"))?;
    let n_sets = usize::try_from(n_sets).map_err(|_| other("'n_sets' must be non-negative"))?;
    let spec = model.spec()?;
    if codes.len() != spec.n {
        return Err(other(format!(
            "'sets' has {} codes for {} observations",
            codes.len(),
            spec.n
        )));
    }
    let sets = influence::deletion_sets(codes, n_sets)?;
    let fits = influence::deletion_refits_lmm(
        &spec,
        reml,
        &sets,
        doubles(&start, "start")?,
        &control.optim,
        threads.0,
    )?;
    Ok(results::replicates(&fits, deletion_fit))
}

/// One deletion refit as R reads it.
fn deletion_fit(fit: &DeletionFit) -> Robj {
    list!(
        theta = fit.theta.clone(),
        par = fit.par.clone(),
        beta = fit.beta.clone(),
        sigma = fit.sigma,
        vcov_unscaled = fit.vcov_unscaled.clone(),
        objective = fit.objective,
        n_obs = fit.n_obs as i32,
        optinfo = results::opt_summary(&fit.opt)
    )
    .into()
}

/// The family and starting values of a GLMM that is refitted or profiled.
fn glmm_setup<'s, 'a>(
    spec: &'s ModelSpec<'a>,
    family: &str,
    link: &str,
    n_trials: &'s Robj,
    eta_start: &'s Robj,
) -> Result<GlmmSetup<'s, 'a>> {
    Ok(GlmmSetup {
        spec,
        family: Family::new(family, link)?,
        n_trials: doubles(n_trials, "n_trials")?,
        eta_start: doubles(eta_start, "eta_start")?,
    })
}

extendr_module! {
    mod inference;
    fn lmm_condvar_rs;
    fn glmm_condvar_rs;
    fn glmm_condvar_weights_rs;
    fn lmm_ddf_rs;
    fn lmm_profile_rs;
    fn glmm_profile_rs;
    fn glmm_extended_profile_rs;
    fn profile_interval_rs;
    fn lmm_bootstrap_rs;
    fn glmm_bootstrap_rs;
    fn lmm_deletion_rs;
}
