//! The deviance function of a linear mixed model kept alive in R (lme4's `devFunOnly = TRUE`):
//! an engine built once from the model (cross-products, the symbolic factorization) and held in
//! an external pointer, so that each evaluation of the profiled criterion at θ only refactors.
//! The same object runs the optimizers that are not the fit's own BOBYQA (Nelder–Mead, a user's
//! R function, none at all) and finishes such a fit at the parameters they return: estimates and
//! the convergence checks, exactly as after the engine's own optimization.
use crate::fit::glmm::GeneralizedLinearMixedModel;
use crate::fit::lmm::LinearMixedModel;
use crate::fit::quadrature::GaussHermite;
use crate::model::family::Family;
use crate::model::spec::ModelSpec;
use crate::optim::{self, nelder_mead, Objective, OptSummary, Stop};
use extendr_api::prelude::*;

use super::convert::{agq_points, doubles, other, GlmmControl, LmmControl, ModelInputs, Result};
use super::results::{self, Rows};

/// An LMM engine that owns the R vectors it reads.
pub(crate) struct LmmDevfun {
    /// The engine; its [`ModelSpec`] borrows the vectors `inputs` holds. Declared first, so it
    /// is dropped before them.
    model: LinearMixedModel<'static>,
    /// The model's R vectors, kept alive (protected) as long as the engine exists.
    _inputs: ModelInputs,
}

impl LmmDevfun {
    fn new(inputs: ModelInputs, reml: bool, par: faer::Par) -> Result<Self> {
        let spec = inputs.spec()?;
        // SAFETY: the slices of `spec` point into the data of R vectors, not into `inputs`
        // itself; those vectors do not move, and they stay protected by the `Robj`s in
        // `inputs`, which lives in the same struct and is dropped after the engine.
        let spec: ModelSpec<'static> = unsafe { std::mem::transmute(spec) };
        let model = LinearMixedModel::new(spec, reml, par)?;
        Ok(Self {
            model,
            _inputs: inputs,
        })
    }

    /// Checks that `par` has one value per covariance parameter.
    fn check_len(&self, par: &[f64]) -> Result<()> {
        let k = self.model.re.n_par();
        if par.len() != k {
            return Err(other(format!(
                "the deviance function takes {k} covariance parameters, not {}",
                par.len()
            )));
        }
        Ok(())
    }
}

/// The criterion as the optimizers see it, with the progress callback (lme4's `verbose` trace,
/// Ctrl-C).
struct Criterion<'m> {
    model: &'m mut LinearMixedModel<'static>,
    progress: &'m mut dyn FnMut(usize, &[f64], f64) -> Stop,
}

impl Objective for Criterion<'_> {
    fn eval(&mut self, par: &[f64]) -> f64 {
        self.model.objective_at_par(par)
    }

    fn after_eval(&mut self, count: usize, par: &[f64], value: f64) -> Stop {
        (self.progress)(count, par, value)
    }
}

/// Builds the deviance function's engine for `model` (as for `lmm_fit_rs`): the REML criterion
/// when `reml`, else the ML deviance; `threads` as `control$threads` (0: all).
/// @noRd
#[extendr]
fn lmm_devfun_rs(model: ModelInputs, reml: bool, threads: i32) -> Result<Robj> {
    let threads = usize::try_from(threads).map_err(|_| other("'threads' must be >= 0"))?;
    let engine = LmmDevfun::new(model, reml, crate::inference::parallel::par(threads))?;
    Ok(ExternalPtr::new(engine).into())
}

/// The criterion at `par` (θ for unstructured models): lme4's devfun value; `+Inf` where the
/// factorization fails.
/// @noRd
#[extendr]
fn lmm_devfun_eval_rs(mut engine: ExternalPtr<LmmDevfun>, par: Robj) -> Result<f64> {
    let par = doubles(&par, "theta")?;
    let engine = engine.try_addr_mut()?;
    engine.check_len(par)?;
    Ok(engine.model.objective_at_par(par))
}

/// Runs `optimizer` (`"Nelder_Mead"` from `start`, or `"none"`: `start` is the point, found by
/// an optimizer in R or given) and returns the fit at its end point, with the convergence
/// checks; `record` is `list(code, message, feval)`, the record of an optimizer run in R (for
/// `"none"`). Nelder–Mead searches without bounds; a negative diagonal element of a factor is
/// then made positive with its column (the same covariance). `verbose` prints the evaluations of
/// the search as `lmm(verbose = )` does.
/// @noRd
#[extendr]
fn lmm_devfun_fit_rs(
    mut engine: ExternalPtr<LmmDevfun>,
    optimizer: &str,
    start: Robj,
    control: LmmControl,
    record: List,
    verbose: i32,
) -> Result<Robj> {
    let item = |name: &str| -> Result<Robj> {
        super::convert::element(record.as_robj(), name)
            .map_err(|_| other(format!("internal: record lacks '{name}'")))
    };
    let code: i32 = item("code")?.try_into()?;
    let feval: i32 = item("feval")?.try_into()?;
    let message = item("message")?
        .as_str()
        .ok_or_else(|| other("internal: record's 'message' must be a string"))?
        .to_string();
    let start = doubles(&start, "start")?.to_vec();
    let progress = &mut super::fit::progress_printer(verbose, "theta");
    let engine = engine.try_addr_mut()?;
    engine.check_len(&start)?;
    let model = &mut engine.model;
    let lower = model.re.par_lower();
    let upper = model.re.par_upper();
    let opts = &control.optim;
    let (par, summary) = match optimizer {
        "Nelder_Mead" => {
            let mut crit = Criterion { model, progress };
            let mut run = nelder_mead::minimize(&mut crit, &start, &lower, opts)?;
            let mut par = std::mem::take(&mut run.theta);
            model.re.normalize_par_signs(&mut par);
            // Within the bounds up to rounding: a structured term's correlation parameter
            // beyond its bound evaluates to +Inf, so the search ends inside.
            (par, run)
        }
        "none" => {
            let record = OptSummary {
                start: start.clone(),
                code,
                message,
                feval: usize::try_from(feval).unwrap_or(0),
                ..Default::default()
            };
            // An optimizer in R may ignore the bounds, as Nelder-Mead does here.
            let mut par = start;
            model.re.normalize_par_signs(&mut par);
            (par, record)
        }
        other_name => {
            return Err(other(format!(
                "internal: optimizer '{other_name}' is not run by the deviance function"
            )))
        }
    };
    // The checks are not part of the search: no trace for them.
    let quiet = &mut super::fit::progress_printer(0, "theta");
    let mut crit = Criterion {
        model,
        progress: quiet,
    };
    let summary = optim::assess_at(&mut crit, &par, (&lower, &upper), opts, summary);
    let mut fit = crit.model.estimates_at_par(&par)?;
    fit.opt = summary;
    Ok(results::lmm_fit(&fit, Rows::Fit))
}

/// A GLMM engine that owns the R vectors it reads (see [`LmmDevfun`]), with the quadrature rule
/// of its `nAGQ`: the stage-1 criterion of θ for `nAGQ = 0`, else the stage-2 criterion of
/// `c(θ, β)` (Laplace for `nAGQ = 1`), as lme4's `glmer(devFunOnly = TRUE)`.
pub(crate) struct GlmmDevfun {
    /// The engine; borrows the vectors of `inputs`. Declared first, so it is dropped first.
    model: GeneralizedLinearMixedModel<'static>,
    /// `None` for the Laplace approximation.
    rule: Option<GaussHermite>,
    /// Whether the function takes `c(θ, β)` (`nAGQ > 0`) rather than θ: the stage whose
    /// criterion it evaluates (a fit driven from R switches from stage 1 to 2).
    stage2: bool,
    /// The quadrature points of the model (R's `nAGQ`).
    n_agq: usize,
    /// Number of covariance parameters and of fixed effects.
    sizes: (usize, usize),
    /// The model's R vectors, kept alive as long as the engine exists.
    _inputs: ModelInputs,
}

/// Builds the GLMM deviance function's engine; the arguments are those of `glmm_fit_rs`.
/// @noRd
#[extendr]
fn glmm_devfun_rs(
    model: ModelInputs,
    family: &str,
    link: &str,
    n_trials: Robj,
    eta_start: Robj,
    n_agq: i32,
    control: GlmmControl,
) -> Result<Robj> {
    let n_agq = agq_points(n_agq)?;
    let family = Family::new(family, link)?;
    let spec = model.spec()?;
    // SAFETY: as in `LmmDevfun::new`: the slices point into protected R vectors that `model`
    // keeps alive and that never move; the engine is dropped before `model`.
    let spec: ModelSpec<'static> = unsafe { std::mem::transmute(spec) };
    let p = spec.p;
    let engine = GeneralizedLinearMixedModel::new(
        spec,
        family,
        doubles(&n_trials, "n_trials")?.to_vec(),
        doubles(&eta_start, "eta_start")?.to_vec(),
        control.options(n_agq).pirls,
        control.par,
    )?;
    let rule = if n_agq > 1 {
        Some(GaussHermite::new(n_agq)?)
    } else {
        None
    };
    let nth = engine.re.n_par();
    Ok(ExternalPtr::new(GlmmDevfun {
        model: engine,
        rule,
        stage2: n_agq > 0,
        n_agq,
        sizes: (nth, p),
        _inputs: model,
    })
    .into())
}

/// The GLMM criterion at `pars` (θ, or `c(θ, β)` for `nAGQ > 0`); a PIRLS failure is an error.
/// @noRd
#[extendr]
fn glmm_devfun_eval_rs(mut engine: ExternalPtr<GlmmDevfun>, pars: Robj) -> Result<f64> {
    let pars = doubles(&pars, "pars")?;
    let engine = engine.try_addr_mut()?;
    let (nth, p) = engine.sizes;
    let want = if engine.stage2 { nth + p } else { nth };
    if pars.len() != want {
        return Err(other(format!(
            "the deviance function takes {want} parameters ({}), not {}",
            if engine.stage2 {
                format!("{nth} covariance parameters and {p} fixed effects")
            } else {
                format!("{nth} covariance parameters")
            },
            pars.len()
        )));
    }
    let value = if engine.stage2 {
        engine
            .model
            .objective_theta_beta(pars, engine.rule.as_ref())?
    } else {
        engine.model.objective_theta(pars)?
    };
    Ok(value)
}

/// Sets the stage whose criterion the function evaluates (1: θ, 2: `c(θ, β)`, only for
/// `nAGQ > 0`) and anchors PIRLS at the covariance parameters `theta`: the stage-1 solution there
/// is the start of every later evaluation. Returns its fixed effects, stage 2's start.
/// @noRd
#[extendr]
fn glmm_devfun_stage_rs(
    mut engine: ExternalPtr<GlmmDevfun>,
    stage: i32,
    theta: Robj,
) -> Result<Robj> {
    let theta = doubles(&theta, "theta")?;
    let engine = engine.try_addr_mut()?;
    if !(stage == 1 || stage == 2 && engine.n_agq > 0) {
        return Err(other(format!(
            "internal: stage {stage} of a model with nAGQ = {}",
            engine.n_agq
        )));
    }
    if theta.len() != engine.sizes.0 {
        return Err(other(format!(
            "'theta' has {} values; the model has {} covariance parameters",
            theta.len(),
            engine.sizes.0
        )));
    }
    engine.stage2 = stage == 2;
    let beta = engine
        .model
        .anchor_at(theta)
        .map_err(|e| other(format!("PIRLS failed at the starting values: {e}")))?;
    Ok(beta.into())
}

/// Runs the engine's own optimizer `optimizer` on the current stage's criterion from `start`,
/// for a fit whose other stage runs in R; returns the optimizer's record (`opt_summary`).
/// @noRd
#[extendr]
fn glmm_devfun_optimize_rs(
    mut engine: ExternalPtr<GlmmDevfun>,
    optimizer: &str,
    start: Robj,
    control: GlmmControl,
    verbose: i32,
) -> Result<Robj> {
    let optimizer = super::convert::stage_optimizer(optimizer)?;
    let start = doubles(&start, "start")?;
    let engine = engine.try_addr_mut()?;
    let opts = control.options(engine.n_agq);
    let stage = if engine.stage2 { 2 } else { 1 };
    let label = if engine.stage2 { "pars" } else { "theta" };
    let progress = &mut super::fit::progress_printer(verbose, label);
    let summary = engine
        .model
        .optimize_stage(&opts, stage, optimizer, start, progress)?;
    Ok(results::opt_summary(&summary))
}

/// The fit at `pars` (θ for `nAGQ = 0`, else `c(θ, β)`), found by an optimizer in R or given:
/// the estimates there and, for `nAGQ > 0` with `calc.derivs`, the derivatives and (with
/// `check_gradient`) the gradient check. The stage records are R's.
/// @noRd
#[extendr]
fn glmm_devfun_fit_rs(
    mut engine: ExternalPtr<GlmmDevfun>,
    pars: Robj,
    control: GlmmControl,
    check_gradient: bool,
) -> Result<Robj> {
    let pars = doubles(&pars, "pars")?;
    let engine = engine.try_addr_mut()?;
    let opts = control.options(engine.n_agq);
    let fit = engine.model.fit_at(&opts, pars, check_gradient)?;
    Ok(results::glmm_fit(&fit, Rows::Fit))
}

extendr_module! {
    mod devfun;
    fn lmm_devfun_rs;
    fn lmm_devfun_eval_rs;
    fn lmm_devfun_fit_rs;
    fn glmm_devfun_rs;
    fn glmm_devfun_eval_rs;
    fn glmm_devfun_stage_rs;
    fn glmm_devfun_optimize_rs;
    fn glmm_devfun_fit_rs;
}
