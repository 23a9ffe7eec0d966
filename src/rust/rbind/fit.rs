//! Entry points of the fits (R/lmm.R, R/glmm.R): the LMM and GLMM fits, the LMM criterion at
//! given parameters, and the covariance layout R sets a fit up with. The optimizer's progress
//! callback (lme4's `verbose` trace, Ctrl-C) lives here too.
use crate::fit::glmm::GeneralizedLinearMixedModel;
use crate::fit::lmm::LinearMixedModel;
use crate::model::family::Family;
use crate::optim::Stop;
use extendr_api::prelude::*;

use super::convert::{
    agq_points, doubles, optional_doubles, optional_field, other, ExtendedFamilyInput, GlmmControl,
    LmmControl, ModelInputs, Result, TermCovariances,
};
use super::interrupt::interrupt_pending;
use super::results::{self, Rows};
use crate::fit::glmm::{GlmmFit, GlmmOptions};
use crate::fit::merged_rows::MergedRows;
use crate::fit::response::ResponseFamily;
use crate::inference::parallel::{run_concurrently, Watched};
use crate::spec::ModelSpec;

/// Time between two checks for a user interrupt during a fit.
const INTERRUPT_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// The optimizer's progress callback: with `verbose > 0` it prints each evaluation as lme4's
/// `verbose` does (the criterion and the parameters, labelled `label`); after every evaluation it
/// stops the optimizer when the user pressed Ctrl-C.
pub(super) fn progress_printer(
    verbose: i32,
    label: &'static str,
) -> impl FnMut(usize, &[f64], f64) -> Stop {
    let mut last_check = std::time::Instant::now();
    move |count: usize, pars: &[f64], value: f64| {
        if verbose > 0 {
            let shown: Vec<String> = pars.iter().map(|v| format!("{v:.6}")).collect();
            rprintln!(
                "iteration: {count}\n\tf(x) = {value:.6}\n\t{label} = {}",
                shown.join(" ")
            );
        }
        // R's check polls the console (a system call): at most every INTERRUPT_POLL, which a
        // fit of a small model, with evaluations of a few microseconds, never reaches.
        if last_check.elapsed() < INTERRUPT_POLL {
            return Stop::Continue;
        }
        last_check = std::time::Instant::now();
        if interrupt_pending() {
            Stop::Interrupt
        } else {
            Stop::Continue
        }
    }
}

/// Prints one line on R's console (the PIRLS trace of `verbose = 2`).
fn print_line(line: &str) {
    rprintln!("{line}");
}

/// Fits a linear mixed model: `model` is `list(y, X, p, weights, offset, terms)` (see
/// `ModelInputs`), `start` the optimizer's start (`NULL`: lme4's), `control` an `lmmControl`.
/// @noRd
#[extendr]
fn lmm_fit_rs(
    model: ModelInputs,
    reml: bool,
    start: Robj,
    control: LmmControl,
    verbose: i32,
) -> Result<Robj> {
    let start = optional_doubles(&start, "start")?;
    let mut lmm = LinearMixedModel::new(model.spec()?, reml, control.par)?;
    let fit = lmm.fit(
        start,
        &control.optim,
        &mut progress_printer(verbose, "theta"),
    )?;
    Ok(results::lmm_fit(&fit, Rows::Fit))
}

/// Evaluates the profiled criterion at parameter vectors (`theta` holds one after another), for
/// tests and profiling; `model` as for `lmm_fit_rs`.
/// @noRd
#[extendr]
fn lmm_deviance_rs(model: ModelInputs, reml: bool, theta: Robj) -> Result<Robj> {
    let mut lmm = LinearMixedModel::new(model.spec()?, reml, faer::Par::rayon(0))?;
    let th = doubles(&theta, "theta")?;
    let k = lmm.re.n_par().max(1);
    let values: Vec<f64> = th.chunks(k).map(|t| lmm.objective_at_par(t)).collect();
    Ok(Robj::from(values))
}

/// The covariance parameterisation of each term, as R needs it to name, check and count the
/// parameters: `terms` is a list of lists with `q` and the optional `cov`, `hom`, `label` (as for
/// the fit). See `results::covariance_layout` for what it returns.
/// @noRd
#[extendr]
fn covariance_layout_rs(terms: TermCovariances) -> Robj {
    results::covariance_layout(&terms.0)
}

/// `θ` of every term (the lower triangles of their relative covariance factors, column-major,
/// one term after another) at the covariance parameters `par` (one term's after another), the
/// map the engine fits through: R differentiates it to carry the covariance of `par` over to
/// what depends on `θ`.
/// @noRd
#[extendr]
fn covariance_theta_rs(terms: TermCovariances, par: &[f64]) -> Result<Vec<f64>> {
    let n_par: usize = terms.0.iter().map(|c| c.n_par()).sum();
    if par.len() != n_par {
        return Err(Error::Other(format!(
            "covariance_theta_rs: {} covariance parameters given, the terms have {n_par}",
            par.len()
        )));
    }
    let mut theta = Vec::new();
    let mut at = 0;
    for c in &terms.0 {
        let mut t = vec![0.0; c.n_theta()];
        c.theta(&par[at..at + c.n_par()], &mut t);
        at += c.n_par();
        theta.extend(t);
    }
    Ok(theta)
}

/// The lag correlations `ρ_1 … ρ_m` of a `toep()` term from its partial autocorrelations
/// `φ_1 … φ_m` (the map its `par` goes through), for R's reports in other parameterisations
/// (glmmTMB's `theta`).
/// @noRd
#[extendr]
fn toep_lag_correlations_rs(pacf: &[f64]) -> Vec<f64> {
    crate::model::covariance::lag_correlations(pacf)[1..].to_vec()
}

/// Fits a generalized linear mixed model. `model` as for `lmm_fit_rs`, with `y` the response as
/// fitted and `weights` the prior weights; `n_trials` is R's binomial `n`, `eta_start` the
/// starting linear predictor, `n_agq` the quadrature points, `start_theta`/`start_beta` the
/// starts (`NULL`: the engine's), `control` a `glmmControl`.
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn glmm_fit_rs(
    model: ModelInputs,
    family: &str,
    link: &str,
    n_trials: Robj,
    eta_start: Robj,
    n_agq: i32,
    start_theta: Robj,
    start_beta: Robj,
    control: GlmmControl,
    verbose: i32,
) -> Result<Robj> {
    let family = ResponseFamily::Glm(Family::new(family, link)?);
    let starts = (&start_theta, &start_beta, &[][..]);
    fit_glmm(
        model, family, &n_trials, &eta_start, n_agq, starts, &control, verbose,
    )
}

/// Fits a GLMM whose family has extra parameters (glmmTMB's families, zero inflation, a
/// dispersion model, or glmer.nb's negative binomial): `family` is the list that
/// `ExtendedFamilyInput` reads, the other arguments as for `glmm_fit_rs`. The result also has
/// `extra`, and its Hessian is over `c(theta, extra, beta)`.
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn glmm_extended_fit_rs(
    model: ModelInputs,
    family: ExtendedFamilyInput,
    n_trials: Robj,
    eta_start: Robj,
    n_agq: i32,
    start_theta: Robj,
    start_beta: Robj,
    control: GlmmControl,
    verbose: i32,
) -> Result<Robj> {
    let ExtendedFamilyInput { family, start } = family;
    let starts = (&start_theta, &start_beta, &start[..]);
    let response = ResponseFamily::Extended(family);
    fit_glmm(
        model, response, &n_trials, &eta_start, n_agq, starts, &control, verbose,
    )
}

/// One start of [`glmm_extended_fit_starts_rs`]: θ's and β's (`None`: the engine's) and the
/// extra parameters' (empty: zeros); with `nested_zi_theta`, these start the fit of the model
/// without the zero-inflation predictor's terms, whose estimates, with `nested_zi_theta` for
/// those terms, start the search.
struct Start {
    theta: Option<Vec<f64>>,
    beta: Option<Vec<f64>>,
    extra: Vec<f64>,
    nested_zi_theta: Option<Vec<f64>>,
}

/// The fits of one GLMM with one of glmmTMB's families (arguments as `glmm_extended_fit_rs`)
/// from several starts, `starts` a list of `list(theta, beta, extra, nested_zi_theta)`
/// (`NULL` theta or beta: the engine's; see [`Start`]; the model without the zero-inflation
/// terms is fitted under `nested_control`). The searches run at once, each on a thread of its
/// own with sequential linear algebra (the operating system shares the cores among them),
/// unless `control$threads` is 1 or `verbose` prints their progress: then one after the
/// other, as separate calls of `glmm_extended_fit_rs` would. Ctrl-C stops them all with an
/// error.
///
/// With `end_control` (not `NULL`), the ends whose deviance is finite then get their
/// derivatives and convergence checks under it, lowest deviance first, until one passes the
/// checks ([`GeneralizedLinearMixedModel::fit_at_search_end`] on the search's own model,
/// whose PIRLS starts from the modes it ended at).
///
/// A list: `fits`, per start the result as `glmm_extended_fit_rs` gives it or the error's
/// message (a string) where that search (or its nested fit) failed; `ends`, per start the
/// result at its end (`NULL` where none was run, a string where it failed).
/// @noRd
#[extendr]
#[allow(clippy::too_many_arguments)]
fn glmm_extended_fit_starts_rs(
    model: ModelInputs,
    family: ExtendedFamilyInput,
    n_trials: Robj,
    eta_start: Robj,
    n_agq: i32,
    starts: List,
    control: GlmmControl,
    nested_control: GlmmControl,
    end_control: Robj,
    verbose: i32,
) -> Result<Robj> {
    let starts = starts
        .values()
        .map(|s| -> Result<Start> {
            let vector = |name: &str| -> Result<Option<Vec<f64>>> {
                match optional_field(&s, name)? {
                    Some(v) => Ok(Some(doubles(&v, name)?.to_vec())),
                    None => Ok(None),
                }
            };
            Ok(Start {
                theta: vector("theta")?,
                beta: vector("beta")?,
                extra: vector("extra")?.unwrap_or_default(),
                nested_zi_theta: vector("nested_zi_theta")?,
            })
        })
        .collect::<Result<Vec<Start>>>()?;
    let model_spec = model.spec()?;
    let n_trials = doubles(&n_trials, "n_trials")?;
    let eta_start = doubles(&eta_start, "eta_start")?;
    let family = ResponseFamily::Extended(family.family);
    let merged = MergedRows::new(&model_spec, &family, n_trials, eta_start);
    let (spec, family, n_trials, eta_start) =
        MergedRows::model_to_fit(merged.as_ref(), &model_spec, &family, n_trials, eta_start)?;
    let nested_spec = if starts.iter().any(|s| s.nested_zi_theta.is_some()) {
        Some(spec.without_zero_inflation_terms()?)
    } else {
        None
    };
    let mut opts = control.options(agq_points(n_agq)?);
    let mut nested_opts = nested_control.options(agq_points(n_agq)?);
    let end_control = if end_control.is_null() {
        None
    } else {
        Some(GlmmControl::try_from(&end_control)?)
    };
    let mut end_opts = match &end_control {
        Some(c) => Some(c.options(agq_points(n_agq)?)),
        None => None,
    };
    if verbose >= 2 {
        opts.pirls.trace = Some(print_line);
        nested_opts.pirls.trace = Some(print_line);
        if let Some(o) = end_opts.as_mut() {
            o.pirls.trace = Some(print_line);
        }
    }
    let fit_one = |spec,
                   opts: &GlmmOptions,
                   starts: (Option<&[f64]>, Option<&[f64]>, &[f64]),
                   par: faer::Par,
                   progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop| {
        let data = (spec, n_trials.to_vec(), eta_start.to_vec());
        fit_keeping_model(data, family.clone(), opts, par, starts, progress)
    };
    let run =
        |start: &Start, par: faer::Par, progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop| {
            let given = (
                start.theta.as_deref(),
                start.beta.as_deref(),
                &start.extra[..],
            );
            match (&start.nested_zi_theta, &nested_spec) {
                (Some(zi_theta), Some(nested_spec)) => {
                    let nested_spec = nested_spec.clone();
                    let (nested, _) = fit_one(nested_spec, &nested_opts, given, par, progress)?;
                    let theta = [&nested.par[..], zi_theta].concat();
                    let from = (Some(&theta[..]), Some(&nested.beta[..]), &nested.extra[..]);
                    fit_one(spec.clone(), &opts, from, par, progress)
                }
                _ => fit_one(spec.clone(), &opts, given, par, progress),
            }
        };
    let mut interrupted = false;
    let concurrent = starts.len() > 1 && verbose == 0 && control.par != faer::Par::Seq;
    let mut fits: Vec<crate::error::Result<Searched<'_>>> = if concurrent {
        let jobs: Vec<_> = starts
            .iter()
            .map(|start| {
                let run = &run;
                move |watched: &Watched| {
                    run(start, faer::Par::Seq, &mut |_, _, _| watched.as_stop())
                }
            })
            .collect();
        run_concurrently(jobs, || {
            interrupted = interrupt_pending();
            interrupted
        })
    } else {
        let mut fits = Vec::with_capacity(starts.len());
        for start in &starts {
            let mut printer = progress_printer(verbose, "pars");
            let mut progress = |count: usize, pars: &[f64], value: f64| {
                let stop = printer(count, pars, value);
                interrupted |= stop == Stop::Interrupt;
                stop
            };
            fits.push(run(start, control.par, &mut progress));
            if interrupted {
                break;
            }
        }
        fits
    };
    if interrupted {
        return Err(other("interrupted by the user"));
    }
    // The ends' derivatives, lowest deviance first, until one passes the checks.
    let mut ends: Vec<Option<crate::error::Result<GlmmFit>>> = fits.iter().map(|_| None).collect();
    if let (Some(end_opts), Some(end_control)) = (&end_opts, &end_control) {
        let deviance = |r: &crate::error::Result<Searched<'_>>| match r {
            Ok((fit, _)) if fit.deviance.is_finite() => Some(fit.deviance),
            _ => None,
        };
        let mut order: Vec<usize> = (0..fits.len())
            .filter(|&i| deviance(&fits[i]).is_some())
            .collect();
        let key = |i: usize| deviance(&fits[i]).unwrap_or(f64::INFINITY);
        order.sort_by(|&a, &b| key(a).total_cmp(&key(b)));
        for i in order {
            let Ok((fit, model)) = &mut fits[i] else {
                continue;
            };
            let mut printer = progress_printer(verbose, "pars");
            let mut progress = |count: usize, pars: &[f64], value: f64| {
                let stop = printer(count, pars, value);
                interrupted |= stop == Stop::Interrupt;
                stop
            };
            let end = model.fit_at_search_end(end_opts, end_control.par, fit, &mut progress);
            let passed = matches!(&end, Ok(e) if e.deviance.is_finite() && e.messages.is_empty());
            ends[i] = Some(end);
            if interrupted {
                return Err(other("interrupted by the user"));
            }
            if passed {
                break;
            }
        }
    }
    let as_robj = |r: crate::error::Result<GlmmFit>| match r {
        Ok(mut fit) => {
            if let Some(m) = &merged {
                m.expand(&mut fit);
            }
            results::glmm_fit(&fit, Rows::Fit)
        }
        Err(e) => e.to_string().into(),
    };
    let fits: Vec<Robj> = fits
        .into_iter()
        .map(|r| as_robj(r.map(|(fit, _)| fit)))
        .collect();
    let ends: Vec<Robj> = ends
        .into_iter()
        .map(|e| e.map_or_else(|| Robj::from(()), as_robj))
        .collect();
    Ok(list!(
        fits = List::from_values(fits),
        ends = List::from_values(ends)
    )
    .into())
}

/// The Laplace deviance of a GLMM with one of glmmTMB's families (arguments as
/// `glmm_extended_fit_rs`) at `pars = (par, extra, beta)` and its exact gradient:
/// `list(deviance, gradient)`.
/// @noRd
#[extendr]
fn glmm_laplace_gradient_rs(
    model: ModelInputs,
    family: ExtendedFamilyInput,
    n_trials: Robj,
    eta_start: Robj,
    pars: Robj,
) -> Result<Robj> {
    let ExtendedFamilyInput { family, start } = family;
    let mut glmm = GeneralizedLinearMixedModel::with_family(
        model.spec()?,
        ResponseFamily::Extended(family),
        doubles(&n_trials, "n_trials")?.to_vec(),
        doubles(&eta_start, "eta_start")?.to_vec(),
        crate::glmm::PirlsOptions::default(),
        faer::Par::Seq,
    )?;
    if !start.is_empty() {
        glmm.set_extra_start(&start)?;
    }
    let (f, g) = glmm.laplace_gradient(doubles(&pars, "pars")?)?;
    Ok(list!(deviance = f, gradient = g).into())
}

/// The fit behind both entry points: `starts` are θ's and β's (`NULL`: the engine's) and the
/// extra parameters' (empty: zeros).
#[allow(clippy::too_many_arguments)]
fn fit_glmm(
    model: ModelInputs,
    family: ResponseFamily,
    n_trials: &Robj,
    eta_start: &Robj,
    n_agq: i32,
    (start_theta, start_beta, start_extra): (&Robj, &Robj, &[f64]),
    control: &GlmmControl,
    verbose: i32,
) -> Result<Robj> {
    let mut opts = control.options(agq_points(n_agq)?);
    if verbose >= 2 {
        opts.pirls.trace = Some(print_line);
    }
    let start_theta = optional_doubles(start_theta, "start theta")?;
    let start_beta = optional_doubles(start_beta, "start beta")?;
    let spec = model.spec()?;
    let n_trials = doubles(n_trials, "n_trials")?;
    let eta_start = doubles(eta_start, "eta_start")?;
    let progress = &mut progress_printer(verbose, "pars");
    let starts = (start_theta, start_beta, start_extra);
    let merged = MergedRows::new(&spec, &family, n_trials, eta_start);
    let (spec, family, n_trials, eta_start) =
        MergedRows::model_to_fit(merged.as_ref(), &spec, &family, n_trials, eta_start)?;
    let data = (spec, n_trials.to_vec(), eta_start.to_vec());
    let mut fit = fit_from(data, family, &opts, control.par, starts, progress)?;
    if let Some(m) = &merged {
        m.expand(&mut fit);
    }
    Ok(results::glmm_fit(&fit, Rows::Fit))
}

/// A fit's result with the model it ran on (left at its estimates).
type Searched<'a> = (GlmmFit, GeneralizedLinearMixedModel<'a>);

/// [`fit_from`], keeping the model it ran on.
fn fit_keeping_model<'a>(
    (spec, n_trials, eta_start): (ModelSpec<'a>, Vec<f64>, Vec<f64>),
    family: ResponseFamily,
    opts: &GlmmOptions,
    par: faer::Par,
    (theta, beta, extra): (Option<&[f64]>, Option<&[f64]>, &[f64]),
    progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
) -> crate::error::Result<Searched<'a>> {
    let mut glmm = GeneralizedLinearMixedModel::with_family(
        spec, family, n_trials, eta_start, opts.pirls, par,
    )?;
    if !extra.is_empty() {
        glmm.set_extra_start(extra)?;
    }
    let fit = glmm.fit(opts, theta, beta, progress)?;
    Ok((fit, glmm))
}

/// One GLMM fit of `(spec, n_trials, eta_start)` with `family` from the starts `(θ, β, extra)`
/// (`None`, empty: the engine's): the engine call behind every fit entry point.
fn fit_from(
    data: (ModelSpec<'_>, Vec<f64>, Vec<f64>),
    family: ResponseFamily,
    opts: &GlmmOptions,
    par: faer::Par,
    starts: (Option<&[f64]>, Option<&[f64]>, &[f64]),
    progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
) -> crate::error::Result<GlmmFit> {
    fit_keeping_model(data, family, opts, par, starts, progress).map(|(fit, _)| fit)
}

extendr_module! {
    mod fit;
    fn lmm_fit_rs;
    fn lmm_deviance_rs;
    fn covariance_layout_rs;
    fn toep_lag_correlations_rs;
    fn covariance_theta_rs;
    fn glmm_fit_rs;
    fn glmm_extended_fit_rs;
    fn glmm_extended_fit_starts_rs;
    fn glmm_laplace_gradient_rs;
}
