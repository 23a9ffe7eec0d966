//! Parametric-bootstrap refits: the model refitted to many simulated responses, in parallel.
//!
//! The caller simulates the responses (R does, with R's random numbers, so results follow
//! `set.seed` and do not depend on the number of threads) and hands them over as an `n × nsim`
//! column-major matrix. Each replicate is an independent, fresh optimization started from the
//! original estimates:
//!
//! * linear mixed models reuse the sparsity pattern of the cross-products, which depends only on
//!   the grouping factors: each worker clones it once and refills the values for each response
//!   (one pass over the observations), then optimizes the profiled criterion as the fit does;
//! * generalized linear mixed models are refitted with glmer's two stages.
//!
//! Replicates run on a rayon pool of the requested size; each uses sequential linear algebra,
//! so a replicate's result is the same whichever thread computes it. A replicate that fails is
//! reported as an error in its slot and the others go on (lme4's `bootMer` records such a
//! replicate as `NA`); each counts itself done in `watched` (a progress line). Once its stop
//! flag is raised (a user interrupt, see [`parallel::watch`]) the replicates not yet started, and a GLMM refit between two
//! evaluations, end as interrupted; the caller then discards the run.
use crate::blocks::CrossProducts;
use crate::error::{invalid, Result};
use crate::family::Family;
use crate::glmm::{GeneralizedLinearMixedModel, GlmmFit, GlmmOptions};
use crate::inference::parallel;
use crate::lmm::{LinearMixedModel, LmmFit};
use crate::optim::OptimOptions;
use crate::spec::ModelSpec;
use crate::terms::ReStructure;
use crate::trailing::TrailingChoice;
use faer::Par;
use rayon::prelude::*;

/// A replicate that did not run because the user interrupted the bootstrap.
fn interrupted<T>() -> Result<T> {
    Err(crate::error::MixedError::Optimizer(
        "interrupted by the user".into(),
    ))
}

fn check_responses(spec: &ModelSpec<'_>, responses: &[f64]) -> Result<usize> {
    let n = spec.n;
    if responses.is_empty() || !responses.len().is_multiple_of(n) {
        return invalid(format!(
            "the simulated responses have {} values, not a multiple of the {n} observations",
            responses.len()
        ));
    }
    Ok(responses.len() / n)
}

/// Refits the linear mixed model `spec` (REML or ML) to each column of `responses`
/// (`n × nsim`, column-major, offset included as in `spec.y`), starting from `start`, on
/// `threads` threads (0: all cores).
pub fn bootstrap_lmm(
    spec: &ModelSpec<'_>,
    reml: bool,
    responses: &[f64],
    start: &[f64],
    opts: &OptimOptions,
    threads: usize,
    watched: &parallel::Watched,
) -> Result<Vec<Result<LmmFit>>> {
    let nsim = check_responses(spec, responses)?;
    let re = ReStructure::new(spec);
    re.check_par(start, "start")?;
    if reml && spec.n <= spec.p {
        return invalid("REML needs more observations than fixed effects");
    }
    let pattern = CrossProducts::pattern(spec, &re, spec.p)?;
    let n = spec.n;
    let pool = parallel::pool(threads)?;
    let out = pool.install(|| {
        (0..nsim)
            .into_par_iter()
            .map_init(
                || None::<LinearMixedModel<'_>>,
                |state, k| {
                    if watched.stopped() {
                        return interrupted();
                    }
                    let y = &responses[k * n..(k + 1) * n];
                    if state.is_none() {
                        *state = Some(LinearMixedModel::from_cross_products(
                            spec.clone(),
                            re.clone(),
                            pattern.clone(),
                            reml,
                            Par::Seq,
                            TrailingChoice::Auto,
                        )?);
                    }
                    let out = match state.as_mut() {
                        Some(model) => refit_lmm(model, y, start, opts),
                        None => invalid("internal: no workspace"),
                    };
                    watched.tick();
                    out
                },
            )
            .collect()
    });
    Ok(out)
}

/// One replicate: the model's response replaced by `y`, one optimizer run from `start`, the
/// estimates there (without the fitted values).
fn refit_lmm<'r>(
    model: &mut LinearMixedModel<'r>,
    y: &'r [f64],
    start: &[f64],
    opts: &OptimOptions,
) -> Result<LmmFit> {
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        return invalid(format!("simulated response {} is not finite", i + 1));
    }
    model.set_response(y)?;
    let opt = model.optimize(start, opts)?;
    let mut fit = model.estimates_at_par(&opt.theta)?;
    fit.fitted = Vec::new();
    fit.opt = opt;
    Ok(fit)
}

/// The GLMM's data and family that every replicate shares.
#[derive(Debug, Clone, Copy)]
pub struct GlmmSetup<'s, 'a> {
    /// The model's data (`y` is replaced by each simulated response).
    pub spec: &'s ModelSpec<'a>,
    /// Distribution and link.
    pub family: Family,
    /// R's binomial `n` (ones otherwise).
    pub n_trials: &'s [f64],
    /// The original fit's linear predictor: where profiles start PIRLS, and where a bootstrap
    /// refit starts it for an observation whose response has no starting mean on the link's
    /// scale (see [`refit_eta_start`]).
    pub eta_start: &'s [f64],
}

/// Refits the GLMM to each column of `responses` (the response as the engine fits it:
/// proportions for binomial models) from the estimates `(start_theta, start_beta)` with the
/// fit's settings, on `threads` threads. The linear predictor and means are left empty in the
/// results (the caller recomputes them when needed).
pub fn bootstrap_glmm(
    setup: GlmmSetup<'_, '_>,
    responses: &[f64],
    start_theta: &[f64],
    start_beta: &[f64],
    opts: &GlmmOptions,
    threads: usize,
    watched: &parallel::Watched,
) -> Result<Vec<Result<GlmmFit>>> {
    let spec = setup.spec;
    let nsim = check_responses(spec, responses)?;
    let n = spec.n;
    if setup.n_trials.len() != n || setup.eta_start.len() != n {
        return invalid("n_trials and eta_start must have one value per observation");
    }
    if start_beta.len() != spec.p {
        return invalid(format!(
            "'start_beta' has length {}, the model has {} fixed effects",
            start_beta.len(),
            spec.p
        ));
    }
    let pool = parallel::pool(threads)?;
    let out = pool.install(|| {
        (0..nsim)
            .into_par_iter()
            .map(|k| {
                if watched.stopped() {
                    return interrupted();
                }
                let y = &responses[k * n..(k + 1) * n];
                let out = refit_glmm(setup, y, start_theta, start_beta, opts, watched);
                watched.tick();
                out
            })
            .collect()
    });
    Ok(out)
}

/// Where a refit to the simulated response `y` starts PIRLS: the link of glm()'s starting mean
/// of `y` ([`Family::initial_mean`]), as a fresh fit or `refit()` starts, or the original fit's
/// linear predictor where that is not finite (a Gaussian log link at `y <= 0`). Starting from
/// the original fit's predictor instead, whose random effects belong to another response, the
/// first Newton step overshot: a Poisson refit of grouseticks reached a penalized deviance of
/// 2e22 and failed (2 refits of 3; glmer fails the same way from that start).
fn refit_eta_start(setup: GlmmSetup<'_, '_>, y: &[f64]) -> Vec<f64> {
    let spec = setup.spec;
    y.iter()
        .zip(setup.eta_start)
        .enumerate()
        .map(|(i, (&yi, &fitted))| {
            let eta = setup
                .family
                .link
                .linkfun(setup.family.initial_mean(yi, spec.weight(i)));
            if eta.is_finite() {
                eta
            } else {
                fitted
            }
        })
        .collect()
}

fn refit_glmm(
    setup: GlmmSetup<'_, '_>,
    y: &[f64],
    start_theta: &[f64],
    start_beta: &[f64],
    opts: &GlmmOptions,
    watched: &parallel::Watched,
) -> Result<GlmmFit> {
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        return invalid(format!("simulated response {} is not finite", i + 1));
    }
    let eta_start = refit_eta_start(setup, y);
    let mut spec = setup.spec.clone();
    spec.y = y;
    let mut model = GeneralizedLinearMixedModel::new(
        spec,
        setup.family,
        setup.n_trials.to_vec(),
        eta_start,
        opts.pirls,
        Par::Seq,
    )?;
    let beta = if opts.n_agq > 0 {
        Some(start_beta)
    } else {
        None
    };
    let mut fit = model.fit(opts, Some(start_theta), beta, &mut |_, _, _| {
        watched.as_stop()
    })?;
    fit.eta = Vec::new();
    fit.mu = Vec::new();
    Ok(fit)
}
