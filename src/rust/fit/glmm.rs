//! Generalized linear mixed models: the Laplace and adaptive Gauss–Hermite deviance, and
//! glmer's two-stage fit that minimizes it.
//!
//! A model is a [`Response`] (data, family, extra parameters) and the PIRLS state ([`Pirls`]:
//! cross-products, factors, modes). For θ (and, in the second stage, β) PIRLS finds the
//! conditional modes `û` of the spherical random effects; at the modes, with `L` the factor at
//! the modes' weights,
//!
//! ```text
//!   Laplace:  −2 log L ≈ log|L|² + ‖u‖² + aic(y, μ)          (R's family aic: −2 log p(y | μ))
//!   AGQ (one scalar term): Σⱼ devⱼ(û) + log|L|² − 2 Σⱼ log Σₖ wₖ exp(zₖ²/2 − (devⱼ(ûⱼ + zₖ/Lⱼⱼ) − devⱼ(û))/2)
//! ```
//!
//! with `devⱼ(u) = uⱼ² + Σ_{i∈j} d(yᵢ, μᵢ)`, as lme4 defines both. Stage 1 optimizes θ with β
//! inside PIRLS (the `nAGQ = 0` criterion); stage 2 optimizes (θ, β) jointly with PIRLS over `u`
//! only, starting from stage 1, in the coordinates and with the derivatives of [`super::stage2`].
use super::laplace_gradient::DesignRows;
use super::mode_prediction::ModeLinearization;
use super::par_scale::ColumnScales;
pub use super::pirls::PirlsOptions;
use super::pirls::{Mode, Pirls};
use super::quadrature::GaussHermite;
use super::random_effects_system::RandomEffectsSystem;
use super::response::{Response, ResponseFamily, WeightChoice};
use super::stage2::{Derivatives, Stage2Metric, QN_CONVERGED};
use crate::error::{invalid, MixedError, Result};
use crate::family::Family;
use crate::linalg::spd_inverse::spd_inverse;
use crate::linpred;
use crate::optim::{self, Objective, OptSummary, OptimOptions, Stop};
use crate::small;
use crate::spec::ModelSpec;
use crate::start;
use crate::terms::ReStructure;
use faer::{Mat, Par};
use std::sync::Arc;

/// Initial trust-region radius of stage 1 relative to the largest element of the moment start:
/// larger than for an LMM, as a one-step estimate from the working response is biased (low, for
/// binary data). Measured on cbpp, VerbAgg, grouseticks and a crossed binomial model: stage 1
/// took 89 evaluations in all with 0.3, 96–99 with 0.1, 0.2 or 0.5, and 123 from lme4's start.
const GLMM_START_RADIUS_FACTOR: f64 = 0.3;
/// Stage 1's final trust-region radius, relative to its first, before the quasi-Newton stage
/// (BOBYQA's own stage 2 needs the usual `rhoend`). Measured on the glmmTMB catalogue: the same
/// optima, 1–5 fewer stage-1 evaluations and as many or fewer quasi-Newton ones (epil: 100 → 46;
/// nbinom1 with zero inflation: 59 → 38).
const QN_STAGE1_RHOEND: f64 = 1e-2;
/// PIRLS's step tolerance in that coarse stage 1: its criterion is stationary in the modes and
/// the fixed effects it solves for, so an error `δ` in them moves it by about `δ²` (1e-10 here),
/// far below what the coarse search resolves, and each evaluation takes fewer iterations.
const QN_STAGE1_STEP_TOL: f64 = 1e-5;
/// PIRLS's tolerance on the modes' relative error for lme4's families with a dispersion (see
/// [`GeneralizedLinearMixedModel::with_family`]); `PIRLS_STEP_TOL` otherwise.
const SCALE_FAMILY_STEP_TOL: f64 = 1e-12;
/// The initial PIRLS at the starting values may take this many times `maxit` iterations.
const STARTING_PIRLS_ITER_FACTOR: usize = 5;
/// Final trust-region radius of the coarse stage-1 run from lme4's start that guards the fit
/// from the moment start ([`GeneralizedLinearMixedModel::fit`]).
const LME4_START_COARSE_RHOEND: f64 = 2e-2;
/// How much lower (in deviance) the coarse run from lme4's start must end before it is
/// polished: the same basin gives coarse values a hair below a converged one's only by noise.
const LME4_START_MARGIN: f64 = 1e-4;

/// Initial and final trust-region radii of the search over the family's extra parameters (log
/// dispersion, logit zero-inflation coefficients) between the stages: coarse, as stage 2 polishes.
const EXTRA_STAGE_RHOBEG: f64 = 0.5;
const EXTRA_STAGE_RHOEND: f64 = 1e-3;
/// [`GeneralizedLinearMixedModel::evaluation_work`] below which a fit's points are evaluated
/// on one thread: starting a thread and building a copy of the model there costs about 0.1 ms,
/// more than it saves (measured with threads 1 and 2: cbpp, 295, 0.37 against 0.66 ms; a
/// 200-row binomial, 620, 0.53 against 0.77 ms; grouseticks, 2,600, 2.49 against 2.47 ms; a
/// 1,000-row binomial with two crossed factors, 4,066, 4.6 against 4.2 ms).
const PARALLEL_MIN_WORK: usize = 3000;

/// The optimizer of a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageOptimizer {
    /// BOBYQA (bounds on θ).
    Bobyqa,
    /// Nelder–Mead (argmin), unconstrained with signs of θ normalized afterwards.
    NelderMead,
}

/// What the calibration of stage 2's metric leaves for the quasi-Newton search
/// ([`GeneralizedLinearMixedModel::calibrate`]): the centre, the criterion and its gradient
/// (over the original parameters) there, and the Hessian over the whitened coordinates
/// (row-major) with the columns the probes measured.
pub(super) struct SearchStart {
    pub(super) center: Vec<f64>,
    pub(super) f: f64,
    pub(super) gradient: Vec<f64>,
    pub(super) hessian: Vec<f64>,
}

/// Settings of a GLMM fit.
#[derive(Debug, Clone)]
pub struct GlmmOptions {
    /// 0 (θ only), 1 (Laplace) or the number of adaptive Gauss–Hermite points.
    pub n_agq: usize,
    /// Run the `nAGQ = 0` stage first (glmer's `nAGQ0initStep`): `Some` as given, `None` to
    /// choose ([`GeneralizedLinearMixedModel::runs_first_stage`]).
    pub init_step: Option<bool>,
    /// Where stage 2 is the quasi-Newton search, `Some(m)`: an error when it does not converge
    /// within `m` evaluations, instead of BOBYQA from the start (for a fit that is one of
    /// several starts, whose caller keeps the best and runs the full search only if none
    /// converges). `None`: the full search.
    pub quasi_newton_only: Option<usize>,
    /// The start is the converged end of an earlier quasi-Newton search of this model (a
    /// caller that compares several searches' ends asks for the derivatives of the one it
    /// keeps): stage 2 evaluates it and takes the derivatives there, without calibrating the
    /// metric or searching again. The derivative check still polishes a start that turns out
    /// not to be converged. Ignored where stage 2 is not the quasi-Newton search.
    pub start_at_optimum: bool,
    /// The gradient tolerance of the quasi-Newton stage 2 (per standard error); `None`: the
    /// engine's (1e-6). A fit that is only the start of another search can stop sooner.
    pub quasi_newton_gtol: Option<f64>,
    /// Optimizer settings (tolerances, evaluation limit, checks).
    pub optim: OptimOptions,
    /// Optimizers of the two stages.
    pub optimizers: [StageOptimizer; 2],
    /// PIRLS settings.
    pub pirls: PirlsOptions,
}

/// Everything a fitted GLMM reports.
#[derive(Debug, Clone, Default)]
pub struct GlmmFit {
    /// Covariance parameters (lme4's layout).
    pub theta: Vec<f64>,
    /// The optimizer's covariance parameters (`par`; `= theta` for unstructured terms).
    pub par: Vec<f64>,
    /// Fixed effects.
    pub beta: Vec<f64>,
    /// Extra parameters of the family (dispersion then zero-inflation coefficients), or empty.
    pub extra: Vec<f64>,
    /// Spherical random effects, terms in input order, each level-major.
    pub u: Vec<f64>,
    /// Conditional modes per term, level-major.
    pub b: Vec<Vec<f64>>,
    /// Linear predictor (with offset).
    pub eta: Vec<f64>,
    /// Fitted means.
    pub mu: Vec<f64>,
    /// `log|L_Z|²` at the modes.
    pub ldl2: f64,
    /// `log|R_X|²` at the modes' weights.
    pub ldrx2: f64,
    /// `‖u‖²`.
    pub ussq: f64,
    /// Σ of squared weighted Pearson residuals.
    pub wrss: f64,
    /// Σ of deviance residuals.
    pub drsum: f64,
    /// The criterion that was minimized (Laplace or AGQ deviance, `−2 log L`).
    pub deviance: f64,
    /// `(R_X R_X')⁻¹` at the modes' weights.
    pub vcov_unscaled: Vec<f64>,
    /// For a family with extra parameters: the working weights of the Laplace determinant at
    /// the modes (its factor's), for the conditional variances; empty otherwise. With random
    /// effects in the zero-inflation logit, the mean's diagonal of the 2 × 2 weights.
    pub working_weights: Vec<f64>,
    /// With random effects in the zero-inflation logit: the logit at the modes, with its
    /// random part (empty otherwise).
    pub zi_logit: Vec<f64>,
    /// With random effects in the zero-inflation logit: the other two of the 2 × 2 weights of
    /// the Laplace determinant at the modes, `W[η, ρ]` and `W[ρ, ρ]` (empty otherwise).
    pub zi_working_weights: [Vec<f64>; 2],
    /// Finite-difference gradient of the criterion over (θ, extra, β) (stage 2), or empty.
    pub gradient: Vec<f64>,
    /// Finite-difference Hessian over (θ, extra, β), column-major, or empty.
    pub hessian: Vec<f64>,
    /// Stage-1 optimizer record.
    pub stage1: Option<OptSummary>,
    /// Stage-2 optimizer record.
    pub stage2: Option<OptSummary>,
    /// Convergence problems found by the checks.
    pub messages: Vec<String>,
    /// Why the finite-difference Hessian could not be computed, if it could not.
    pub hessian_problem: Option<String>,
    /// Objective evaluations where PIRLS failed (the optimizer stepped away from them).
    pub pirls_failures: usize,
    /// PIRLS iterations over the whole fit.
    pub pirls_iterations: usize,
}

/// The data, family and PIRLS options of a model, from which a thread builds a copy of it that
/// evaluates points there ([`GeneralizedLinearMixedModel::share_points`]).
pub(super) struct WorkerParts<'a> {
    spec: ModelSpec<'a>,
    family: ResponseFamily,
    n_trials: Vec<f64>,
    eta_start: Vec<f64>,
    pirls: PirlsOptions,
}

impl<'a> WorkerParts<'a> {
    /// The copy, single-threaded (its thread is one of the fit's).
    pub(super) fn build(self) -> Result<GeneralizedLinearMixedModel<'a>> {
        GeneralizedLinearMixedModel::with_family(
            self.spec,
            self.family,
            self.n_trials,
            self.eta_start,
            self.pirls,
            Par::Seq,
        )
    }
}

/// A GLMM ready to be evaluated at any θ (and β).
pub struct GeneralizedLinearMixedModel<'a> {
    /// Data: `y` is the response as fitted (proportions for binomial), weights are the prior
    /// weights (number of trials for binomial proportions).
    pub spec: ModelSpec<'a>,
    /// Grouping-factor blocks and the θ layout.
    pub re: ReStructure,
    /// Response: data, family and extra parameters.
    pub(super) response: Response<'a>,
    /// PIRLS and its state (modes, factors).
    pub(super) pirls: Pirls,
    /// The last PIRLS failure.
    pub(super) last_error: Option<String>,
    /// The point the next quasi-Newton search starts from with the criterion and its gradient
    /// there, where the calibration before it computed them ([`Self::calibrate`]); the
    /// search takes them as its first evaluation, and the curvature its probes measured as
    /// its first Hessian.
    pub(super) search_start: Option<SearchStart>,
    /// Objective evaluations where PIRLS failed.
    pub(super) failures: usize,
    /// Where the extra parameters of the family start (zeros unless set).
    extra_start: Vec<f64>,
    /// [`GlmmOptions::quasi_newton_only`] of the fit being run.
    pub(super) quasi_newton_only: Option<usize>,
    /// [`GlmmOptions::quasi_newton_gtol`] of the fit being run.
    pub(super) quasi_newton_gtol: Option<f64>,
    /// The sparse pattern of the Laplace gradient's random-effects system, once built.
    pub(super) laplace_system: Option<Arc<RandomEffectsSystem>>,
    /// The rows of `A = ZΛ` and `Z` the Laplace gradient last read (the indices and `Z` are
    /// kept, `A` is refreshed for each θ).
    pub(super) design_rows: Option<DesignRows>,
    /// What the last Laplace gradient left to predict the modes of the next point from
    /// ([`super::mode_prediction`]).
    pub(super) mode_linearization: Option<ModeLinearization>,
    /// Copies of the model that evaluate points on other threads, kept between calls of
    /// [`Self::share_points`] within a fit.
    pub(super) workers: Vec<GeneralizedLinearMixedModel<'a>>,
}

impl std::fmt::Debug for GeneralizedLinearMixedModel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneralizedLinearMixedModel")
            .field("n", &self.spec.n)
            .field("p", &self.spec.p)
            .field("family", &self.response.family())
            .finish()
    }
}

impl<'a> GeneralizedLinearMixedModel<'a> {
    /// Builds the cross-product patterns and factor storage. `n_trials` is R's binomial `n`
    /// (1s otherwise), `eta_start` the linear predictor to start PIRLS from (from `mustart`).
    pub fn new(
        spec: ModelSpec<'a>,
        family: Family,
        n_trials: Vec<f64>,
        eta_start: Vec<f64>,
        pirls: PirlsOptions,
        par: Par,
    ) -> Result<Self> {
        Self::with_family(
            spec,
            ResponseFamily::Glm(family),
            n_trials,
            eta_start,
            pirls,
            par,
        )
    }

    /// As [`Self::new`] for any [`ResponseFamily`]: a family with extra parameters adds them to
    /// the parameters of stage 2, which are then `(θ, extra, β)`.
    pub fn with_family(
        spec: ModelSpec<'a>,
        family: ResponseFamily,
        n_trials: Vec<f64>,
        eta_start: Vec<f64>,
        pirls: PirlsOptions,
        par: Par,
    ) -> Result<Self> {
        let n = spec.n;
        if n_trials.len() != n || eta_start.len() != n {
            return invalid("n_trials and eta_start must have one value per observation");
        }
        let response = Response::new(&spec, family, n_trials)?;
        response.check_start(&eta_start, &spec)?;
        let re = ReStructure::new(&spec);
        let mut pirls = Pirls::new(&spec, &re, &response, eta_start, pirls, par)?;
        if response.has_scale() {
            // lme4's families with a dispersion: the criterion's aic is a function of the
            // deviance at the modes, which they do not make stationary, so the modes' error
            // enters it to first order (an inverse Gaussian fit at the default tolerance: values
            // differing by 4e-8 at the same point, and a search that could not verify the last
            // 1e-7 of its descent). Newton steps converge quadratically there, so this costs
            // about one more PIRLS iteration per evaluation.
            pirls.step_tol = SCALE_FAMILY_STEP_TOL;
        }
        Ok(Self {
            spec,
            re,
            response,
            pirls,
            last_error: None,
            search_start: None,
            failures: 0,
            extra_start: Vec::new(),
            quasi_newton_only: None,
            quasi_newton_gtol: None,
            laplace_system: None,
            design_rows: None,
            mode_linearization: None,
            workers: Vec::new(),
        })
    }

    /// The family.
    pub fn family(&self) -> &ResponseFamily {
        self.response.family()
    }

    /// Number of extra parameters of the family.
    pub fn n_extra(&self) -> usize {
        self.response.n_extra()
    }

    /// Where the fit starts the extra parameters (dispersion then zero-inflation
    /// coefficients); zeros unless set.
    pub fn set_extra_start(&mut self, values: &[f64]) -> Result<()> {
        self.response.set_extra(values)?;
        self.extra_start = values.to_vec();
        Ok(())
    }

    /// The derivatives and convergence checks at `end`, the end of a quasi-Newton search that
    /// this model ran without them (with [`GlmmOptions::quasi_newton_only`], no derivatives): a
    /// fit under `opts` with [`GlmmOptions::start_at_optimum`] from `end`'s estimates, with the
    /// fit's parallelism `par`. PIRLS starts from the modes the search left (a new model would
    /// start cold); the counts of PIRLS iterations and failures start again, as for a new
    /// model's fit.
    pub fn fit_at_search_end(
        &mut self,
        opts: &GlmmOptions,
        par: Par,
        end: &GlmmFit,
        progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
    ) -> Result<GlmmFit> {
        let mut opts = opts.clone();
        opts.start_at_optimum = true;
        self.pirls.par = par;
        self.pirls.iterations = 0;
        self.failures = 0;
        self.last_error = None;
        self.search_start = None;
        if !end.extra.is_empty() {
            self.set_extra_start(&end.extra)?;
        }
        self.fit(&opts, Some(&end.par), Some(&end.beta), progress)
    }

    /// The response (data, family, extra parameters).
    pub fn response(&self) -> &Response<'a> {
        &self.response
    }

    /// Laplace deviance at the current modes.
    fn laplace(&self) -> f64 {
        let aic = self
            .response
            .minus_two_log_lik(&self.pirls.mu, self.pirls.drsum);
        self.pirls.ldl2() + self.pirls.ussq() + aic
    }

    /// Adaptive Gauss–Hermite deviance at the current modes (one scalar random-effects term).
    fn agq(&mut self, rule: &GaussHermite) -> f64 {
        let n = self.spec.n;
        let levels: Vec<u32> = self.spec.terms[0].levels.clone();
        let nl = self.pirls.u1.len();
        let devc = |model: &Self| -> Vec<f64> {
            let mut d: Vec<f64> = model.pirls.u1.iter().map(|u| u * u).collect();
            for i in 0..n {
                d[levels[i] as usize] += model.response.dev_resid(i, model.pirls.mu[i]);
            }
            d
        };
        let devc0 = devc(self);
        let mode_u = self.pirls.u1.clone();
        // L11 is 1×1 per level: the conditional standard deviation of uⱼ is 1/Lⱼⱼ.
        let sd: Vec<f64> = self.pirls.u_chol.l11.iter().map(|l| 1.0 / l).collect();
        let mut log_mult = vec![0.0; nl];
        let mut mult = vec![0.0; nl];
        for (&z, &w) in rule.nodes.iter().zip(&rule.weights) {
            if z == 0.0 {
                mult.iter_mut().for_each(|m| *m += w);
                continue;
            }
            for j in 0..nl {
                self.pirls.u1[j] = mode_u[j] + z * sd[j];
            }
            self.update_eta();
            let d = devc(self);
            for j in 0..nl {
                mult[j] += w * (-0.5 * (d[j] - devc0[j]) + 0.5 * z * z).exp();
            }
        }
        self.pirls.u1.copy_from_slice(&mode_u);
        self.update_eta();
        for j in 0..nl {
            log_mult[j] = mult[j].ln();
        }
        devc0.iter().sum::<f64>() + self.pirls.ldl2() - 2.0 * log_mult.iter().sum::<f64>()
    }

    /// η, μ and dμ/dη from the current (β, u) (see [`Pirls::update_eta`]).
    fn update_eta(&mut self) -> bool {
        self.pirls
            .update_eta(&self.spec, &self.re, &mut self.response)
    }

    /// Runs PIRLS at the current θ (and β for `UOnly`).
    fn run_pirls(&mut self, mode: Mode) -> Result<f64> {
        let warm = self.pirls.warm;
        match self
            .pirls
            .run(&self.spec, &self.re, &mut self.response, mode)
        {
            // A warm start from the modes at parameters far from these can fail where a cold
            // start from lme4's `lp0` (where lme4 starts every evaluation) does not, e.g. θ from
            // 1 to 60 in one step of a derivative-free optimizer: once more, cold (a failed run
            // leaves no warm start).
            Err(MixedError::Pirls(_)) if warm => {
                self.pirls
                    .run(&self.spec, &self.re, &mut self.response, mode)
            }
            result => result,
        }
    }

    /// Sets the relative covariance factors from the covariance parameters `par` (θ itself for
    /// unstructured terms; see [`crate::model::covariance`]).
    fn set_par(&mut self, par: &[f64]) -> Result<()> {
        if self.re.all_unstructured() {
            self.pirls.set_theta(&self.re, par)
        } else {
            let theta = self.re.theta_of(par);
            self.pirls.set_theta(&self.re, &theta)
        }
    }

    /// The stage-1 (`nAGQ = 0`) criterion at the covariance parameters `theta` (`par`): β and u
    /// both inside PIRLS.
    pub fn objective_theta(&mut self, theta: &[f64]) -> Result<f64> {
        self.set_par(theta)?;
        self.run_pirls(Mode::Joint)?;
        Ok(self.laplace())
    }

    /// The stage-2 criterion at (θ, extra, β) (no extra parameters for lme4's families):
    /// Laplace for `n_agq ≤ 1`, adaptive Gauss–Hermite otherwise.
    pub fn objective_theta_beta(
        &mut self,
        pars: &[f64],
        rule: Option<&GaussHermite>,
    ) -> Result<f64> {
        let nth = self.re.n_par();
        let ne = self.n_extra();
        if pars.len() != nth + ne + self.spec.p {
            return invalid("parameter vector has the wrong length");
        }
        self.set_par(&pars[..nth])?;
        self.response.set_extra(&pars[nth..nth + ne])?;
        self.pirls.beta.copy_from_slice(&pars[nth + ne..]);
        self.pirls.fixed_stale = true;
        self.run_pirls(Mode::UOnly)?;
        Ok(match rule {
            Some(r) => self.agq(r),
            None => self.laplace(),
        })
    }

    /// The modes at `pars = (par, β)` of one of lme4's families, without the factor at their
    /// weights ([`Pirls::run_to_modes`]); the Laplace deviance follows from
    /// [`Self::laplace_with_logdet`] once the caller has factored that system.
    pub(super) fn modes_theta_beta(&mut self, pars: &[f64]) -> Result<()> {
        let nth = self.re.n_par();
        if self.n_extra() > 0 {
            return invalid("the modes without their factor are for lme4's families only");
        }
        if pars.len() != nth + self.spec.p {
            return invalid("parameter vector has the wrong length");
        }
        self.set_par(&pars[..nth])?;
        self.pirls.beta.copy_from_slice(&pars[nth..]);
        self.pirls.fixed_stale = true;
        self.pirls
            .run_to_modes(&self.spec, &self.re, &mut self.response)?;
        Ok(())
    }

    /// The Laplace deviance at the current modes with `log|L|² = ldl2` (from a factor of the
    /// random-effects system at the modes' weights made by the caller).
    pub(super) fn laplace_with_logdet(&mut self, ldl2: f64) -> f64 {
        self.pirls.set_ldl2(ldl2);
        self.laplace()
    }

    pub(super) fn record_failure(&mut self, e: &MixedError) {
        self.failures += 1;
        self.last_error = Some(e.to_string());
    }

    /// Fits the model as glmer does. `start_theta`/`start_beta` override the default start.
    pub fn fit(
        &mut self,
        opts: &GlmmOptions,
        start_theta: Option<&[f64]>,
        start_beta: Option<&[f64]>,
        progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
    ) -> Result<GlmmFit> {
        self.quasi_newton_only = opts.quasi_newton_only;
        self.quasi_newton_gtol = opts.quasi_newton_gtol;
        let nth = self.re.n_par();
        let p = self.spec.p;
        let single_scalar =
            self.re.blocks.len() == 1 && self.spec.terms.len() == 1 && self.spec.terms[0].q == 1;
        if opts.n_agq > 1 && !single_scalar {
            return invalid(
                "nAGQ > 1 is only available for models with a single, scalar random-effects term",
            );
        }
        let ne = self.n_extra();
        if ne > 0 && opts.n_agq == 0 {
            return invalid(
                "nAGQ = 0 estimates the fixed effects inside PIRLS and has no criterion for the \
                 family's own parameters (dispersion, zero inflation); use nAGQ = 1 (Laplace)",
            );
        }
        if ne > 0 {
            let extra = if self.extra_start.len() == ne {
                self.extra_start.clone()
            } else {
                vec![0.0; ne]
            };
            self.response.set_extra(&extra)?;
        }
        let rule = self.rule(opts.n_agq)?;
        let mut theta0 = match start_theta {
            Some(t) if t.len() != nth => {
                return invalid(format!(
                    "'start' has {} values for theta, the model has {nth}",
                    t.len()
                ))
            }
            Some(t) => t.to_vec(),
            None => self.scaled_default_par(),
        };
        if let Some(b) = start_beta {
            if b.len() != p {
                return invalid(format!(
                    "'start' has {} fixed effects, the model has {p}",
                    b.len()
                ));
            }
        }
        // Initial PIRLS at the starting θ sets the common starting point of every evaluation.
        // It starts cold, from lme4's `lp0`, where every later run starts warm from the modes
        // before it, so it gets more iterations: a zero-inflated Poisson with two crossed terms
        // (simulated, 96 observations) crept along a flat direction for 100 iterations and
        // then converged within 10 more; glmmTMB fits that model.
        let mut rhobeg = opts.optim.rhobeg;
        let mut from_moments = false;
        self.with_worker_built(|model| {
            let max_iter = model.pirls.opts.max_iter;
            model.pirls.opts.max_iter = max_iter.saturating_mul(STARTING_PIRLS_ITER_FACTOR);
            let at_start = model.objective_theta(&theta0);
            model.pirls.opts.max_iter = max_iter;
            at_start.map_err(|e| MixedError::Pirls(format!("at the starting values: {e}")))?;
            model.pirls.eta_start.copy_from_slice(&model.pirls.eta);
            // The moment start reads the working response off the cross-products, which hold
            // the right-hand sides instead with random effects in the zero-inflation logit.
            if start_theta.is_none() && !model.re.has_zero_inflation_terms() {
                if let Some((theta, radius)) = model.moment_start(rhobeg) {
                    theta0 = theta;
                    rhobeg = radius;
                    from_moments = true;
                }
            }
            Ok(())
        })?;

        let mut out = GlmmFit::default();
        let mut theta = theta0.clone();
        let stage1_ran = self.runs_first_stage(opts);
        if stage1_ran {
            let mut stage_opts = opts.optim.clone();
            stage_opts.rhobeg = rhobeg;
            stage_opts.rhoend = stage_opts.rhoend.min(rhobeg);
            if self.quasi_newton_stage(opts) {
                // Only a start for the quasi-Newton stage, which refines θ with everything else:
                // a coarse stage 1 is enough.
                stage_opts.rhoend = (QN_STAGE1_RHOEND * rhobeg).max(stage_opts.rhoend);
            }
            stage_opts.calc_derivs = false;
            if opts.n_agq > 0 {
                stage_opts.boundary_tol = 0.0;
            }
            let bounds = (self.re.par_lower(), self.re.par_upper());
            let mut obj = Stage1 {
                model: &mut *self,
                progress: &mut *progress,
            };
            let saved_tol = obj.model.pirls.step_tol;
            if obj.model.quasi_newton_stage(opts) {
                obj.model.pirls.step_tol = QN_STAGE1_STEP_TOL;
            }
            let summary = run_stage(&mut obj, &theta0, &bounds, &stage_opts, opts.optimizers[0]);
            obj.model.pirls.step_tol = saved_tol;
            let mut summary = summary?;
            // The quasi-Newton stage moves θ with everything else (and checks a θ that ends at
            // 0 from lme4's start θ = 1), so stage 1's θ is only its start there.
            if from_moments && !self.quasi_newton_stage(opts) {
                summary = self.check_lme4_start(summary, opts, &stage_opts, progress)?;
            }
            theta = summary.theta.clone();
            self.re.normalize_par_signs(&mut theta);
            out.stage1 = Some(summary);
        }
        // Without a first stage the model is still at the modes of the starting θ (lme4's or
        // the moment start's), unless PIRLS failed at the moment start: no evaluation again.
        if stage1_ran || !self.pirls.warm {
            let f1 = self
                .objective_theta(&theta)
                .map_err(|e| MixedError::Pirls(format!("after the first stage: {e}")))?;
            // nAGQ = 0 always runs stage 1: its criterion is this.
            out.deviance = f1;
        }
        if opts.n_agq != 0 {
            let beta0 = start_beta.map_or_else(|| self.pirls.beta.clone(), <[f64]>::to_vec);
            self.pirls.eta_start.copy_from_slice(&self.pirls.eta);
            let mut pars = theta.clone();
            if ne > 0 {
                // The quasi-Newton stage with the exact gradient moves the extra parameters
                // well from their start; BOBYQA needs them searched first.
                let extra = if self.quasi_newton_stage(opts) {
                    self.response.extra().values().to_vec()
                } else {
                    self.optimize_extra(&theta, &beta0, progress)?
                };
                pars.extend_from_slice(&extra);
            }
            pars.extend_from_slice(&beta0);
            let (mut pars, mut summary) =
                self.stage2(opts, rule.as_ref(), pars, &mut out, progress)?;
            if let Some(mut center) = self.scaled_face_restart(&pars[..nth]) {
                center.extend_from_slice(&pars[nth..]);
                (pars, summary) = self.restart_stage2(
                    opts,
                    rule.as_ref(),
                    (pars, summary),
                    center,
                    &mut out,
                    progress,
                )?;
            }
            // (a fit that ended with a convergence problem is fitted again on lme4's path
            // instead, by the R side: `with_first_stage_if_unconverged`)
            let converged = out.messages.is_empty();
            let zeroed = if converged {
                let at_optimum = (pars.as_slice(), summary.fmin, out.hessian.as_slice());
                self.zeroed_term_start(at_optimum, rule.as_ref())?
            } else {
                None
            };
            if let Some(center) = zeroed {
                (pars, summary) = self.restart_stage2(
                    opts,
                    rule.as_ref(),
                    (pars, summary),
                    center,
                    &mut out,
                    progress,
                )?;
            }
            theta = pars[..nth].to_vec();
            out.deviance = summary.fmin;
            out.stage2 = Some(summary);
        }
        self.clear_workers();
        self.finish(theta, &mut out)?;
        Ok(out)
    }

    /// Runs `start` (the fit's first PIRLS runs) on this thread while, with more than one
    /// thread, the copy of the model that [`Self::share_points`] evaluates points on is built on
    /// another, with the sparse system of the Laplace gradient ([`Self::prepare_glm_gradient`]),
    /// which both then share (VerbAgg: 2.4 ms off the critical thread). With one thread (or a
    /// PIRLS trace, which prints through R, or a copy already kept) the system is built here
    /// first.
    fn with_worker_built(&mut self, start: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        if self.worker_threads() <= 1 || !self.workers.is_empty() {
            self.prepare_glm_gradient()?;
            return start(self);
        }
        let parts = self.worker_parts();
        let (started, built) = std::thread::scope(|scope| {
            let handle = scope.spawn(move || -> Result<Self> {
                let mut copy = parts.build()?;
                copy.prepare_glm_gradient()?;
                Ok(copy)
            });
            let started = start(self);
            (started, handle.join())
        });
        match built {
            Ok(Ok(copy)) => {
                if self.laplace_system.is_none() {
                    self.laplace_system = copy.laplace_system.clone();
                }
                self.workers.push(copy);
            }
            // The same error (or, after a panic, the system) from this thread.
            _ => self.prepare_glm_gradient()?,
        }
        started
    }

    /// How many threads may evaluate points at once: the fit's `threads`, or 1 with a PIRLS
    /// trace (which prints through R, from this thread only) or for a model whose evaluations
    /// cost less than handing them to another thread ([`Self::evaluation_work`] below
    /// [`PARALLEL_MIN_WORK`]).
    pub(super) fn worker_threads(&self) -> usize {
        match self.pirls.par {
            _ if self.pirls.opts.trace.is_some() => 1,
            _ if self.evaluation_work() < PARALLEL_MIN_WORK => 1,
            Par::Seq => 1,
            Par::Rayon(k) => k.get(),
        }
    }

    /// A measure of one PIRLS iteration's work: each row's pass over its fixed-effects and
    /// random-effects columns, and each level's block of the random-effects system.
    fn evaluation_work(&self) -> usize {
        let columns = self.spec.p + self.spec.terms.iter().map(|t| t.q).sum::<usize>();
        let levels: usize = self.re.blocks.iter().map(|b| b.n_levels * b.q * b.q).sum();
        self.spec.n * columns + levels
    }

    /// What another thread needs to build a sequential copy of this model
    /// ([`WorkerParts::build`]).
    pub(super) fn worker_parts(&self) -> WorkerParts<'a> {
        WorkerParts {
            spec: self.spec.clone(),
            family: self.response.family().clone(),
            n_trials: self.response.n_trials().to_vec(),
            eta_start: self.pirls.eta_start.clone(),
            pirls: self.pirls.opts,
        }
    }

    /// Whether [`Self::fit`] runs stage 1 (the `nAGQ = 0` fit of θ): always for `nAGQ = 0`,
    /// else as `init_step` says, and by default except before the quasi-Newton stage 2. That
    /// search moves θ with everything else, from the moment start, and needs no first stage:
    /// with the same optimum (log-likelihoods within 1.3e-10) VerbAgg took 17 evaluations
    /// instead of 25 (17 + 8), cbpp 8 instead of 18, grouseticks with two crossed terms 12
    /// instead of 26, a binomial with a random slope and a crossed term 17 instead of 40, and
    /// the fits 5-25% less time.
    fn runs_first_stage(&self, opts: &GlmmOptions) -> bool {
        opts.n_agq == 0
            || opts
                .init_step
                .unwrap_or_else(|| !self.quasi_newton_stage(opts))
    }

    /// Stage 2 again from `center` (θ, the extra parameters, β) after a first stage 2 whose
    /// optimum another start can improve on: one that ended with a vector-valued term singular,
    /// on a face of the boundary where the Laplace deviance does not depend on all of the
    /// term's parameters, and another face can hold a lower minimum (as for an LMM:
    /// [`start::singular_face_restart`]), or one below which a term's covariance at 0 lies
    /// ([`Self::zeroed_term_start`]). The better optimum is kept, with its derivatives and
    /// messages; the evaluations of both count.
    fn restart_stage2(
        &mut self,
        opts: &GlmmOptions,
        rule: Option<&GaussHermite>,
        first: (Vec<f64>, OptSummary),
        center: Vec<f64>,
        out: &mut GlmmFit,
        progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
    ) -> Result<(Vec<f64>, OptSummary)> {
        let nth = self.re.n_par();
        let (first_pars, mut first_summary) = first;
        if self.objective_theta(&center[..nth]).is_err() {
            // No usable modes at the restart point: the first optimum stands.
            self.objective_theta_beta(&first_pars, rule)?;
            return Ok((first_pars, first_summary));
        }
        self.pirls.eta_start.copy_from_slice(&self.pirls.eta);
        let mut second_out = GlmmFit::default();
        let second = self.stage2(opts, rule, center, &mut second_out, progress);
        let (pars, mut summary) = match second {
            Ok(r)
                if r.1.fmin
                    < first_summary.fmin - RESTART_TOL * first_summary.fmin.abs().max(1.0) =>
            {
                r
            }
            other => {
                let extra = other.map_or(0, |r| r.1.feval);
                first_summary.feval += extra;
                first_summary.starts_tried += 1;
                // The model's state (modes, factor) must be the first optimum's again.
                self.objective_theta_beta(&first_pars, rule)?;
                return Ok((first_pars, first_summary));
            }
        };
        summary.feval += first_summary.feval;
        summary.starts_tried += first_summary.starts_tried;
        out.messages = second_out.messages;
        out.hessian_problem = second_out.hessian_problem;
        out.gradient = second_out.gradient;
        out.hessian = second_out.hessian;
        Ok((pars, summary))
    }

    /// The start of stage 2 again where one random-effects term's covariance at 0 (the other
    /// parameters as at the optimum `pars`, β from PIRLS there) gives a lower criterion than
    /// that optimum's `fmin`, for a fit that passed its convergence checks: a search from the
    /// moment start can end at a shallow interior optimum while the likelihood is higher with
    /// that variance at 0, where lme4's path from θ = 1 down passes (a random Poisson model with
    /// an observation-level random effect and 76% zeros: its variance at a stationary point,
    /// 0.0100 in log-likelihood below the Poisson GLM, which glmer found). The lowest such
    /// point is returned, `None` when there is none (or its PIRLS fails). Costs one PIRLS run
    /// per term probed, and one from the optimum's own modes to return the model there. Not
    /// probed: a term whose covariance is 0 already, and one whose zero the curvature at the
    /// optimum (`hessian`, the stage-2 Hessian over `pars`, column-major) puts more than
    /// [`ZEROED_TERM_SCREEN`] deviance units above it ([`quadratic_rise`]): a lower point there
    /// would need the criterion to fall that far against its curvature (VerbAgg's two terms,
    /// grouseticks' two larger ones).
    fn zeroed_term_start(
        &mut self,
        (pars, fmin, hessian): (&[f64], f64, &[f64]),
        rule: Option<&GaussHermite>,
    ) -> Result<Option<Vec<f64>>> {
        let nth = self.re.n_par();
        let ne = self.n_extra();
        let hessian_inverse = (hessian.len() == pars.len() * pars.len())
            .then(|| {
                let m = pars.len();
                spd_inverse(Mat::from_fn(m, m, |i, j| hessian[j * m + i]), Par::Seq)
            })
            .flatten();
        let zeroed: Vec<(usize, Vec<f64>)> = self
            .re
            .covariances
            .iter()
            .zip(&self.re.term_par_offset)
            .filter_map(|(cov, &off)| {
                let term = &pars[off..off + cov.n_par()];
                let zero = cov.scaled(term, 0.0);
                let moved: Vec<usize> = (0..term.len()).filter(|&k| zero[k] != term[k]).collect();
                let rise = hessian_inverse.as_ref().and_then(|v| {
                    let (idx, step): (Vec<usize>, Vec<f64>) =
                        moved.iter().map(|&k| (off + k, term[k])).unzip();
                    quadratic_rise(v, &idx, &step)
                });
                let probe = !moved.is_empty() && rise.is_none_or(|r| r <= ZEROED_TERM_SCREEN);
                probe.then_some((off, zero))
            })
            .collect();
        if zeroed.is_empty() {
            return Ok(None);
        }
        let at_optimum = self.pirls.warm_start();
        let lower_than = fmin - RESTART_TOL * fmin.abs().max(1.0);
        let mut best: Option<(f64, Vec<f64>)> = None;
        for (off, term) in zeroed {
            self.pirls.restore(&at_optimum);
            let mut center = pars.to_vec();
            center[off..off + term.len()].copy_from_slice(&term);
            if ne > 0 {
                self.response.set_extra(&pars[nth..nth + ne])?;
            }
            let Ok(laplace) = self.objective_theta(&center[..nth]) else {
                continue;
            };
            center[nth + ne..].copy_from_slice(&self.pirls.beta);
            let f = match rule {
                None => laplace,
                Some(_) => match self.objective_theta_beta(&center, rule) {
                    Ok(f) => f,
                    Err(_) => continue,
                },
            };
            if f < lower_than && best.as_ref().is_none_or(|(b, _)| f < *b) {
                best = Some((f, center));
            }
        }
        // The model's state (modes, factor) is the optimum's again, from its modes.
        self.pirls.restore(&at_optimum);
        self.objective_theta_beta(pars, rule)?;
        Ok(best.map(|(_, center)| center))
    }

    /// Stage 1 from lme4's start as well, so that a fit never ends worse than glmer's would: the
    /// moment start can lead BOBYQA into another basin, or to a flat stretch where it stops
    /// early. A coarse run from lme4's start (θ = identity, radius `rhobeg`, ending at radius
    /// [`LME4_START_COARSE_RHOEND`]) is polished to full precision only when it ends lower
    /// than the fit from the moment start; otherwise it costs only its coarse evaluations. Not
    /// run before the quasi-Newton stage 2, which moves θ itself.
    fn check_lme4_start(
        &mut self,
        best: OptSummary,
        opts: &GlmmOptions,
        stage_opts: &OptimOptions,
        progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
    ) -> Result<OptSummary> {
        let bounds = (self.re.par_lower(), self.re.par_upper());
        let start = self.scaled_default_par();
        let mut coarse = stage_opts.clone();
        coarse.rhobeg = opts.optim.rhobeg;
        coarse.rhoend = LME4_START_COARSE_RHOEND.min(coarse.rhobeg);
        coarse.boundary_tol = 0.0;
        let mut obj = Stage1 {
            model: &mut *self,
            progress: &mut *progress,
        };
        let alt = run_stage(&mut obj, &start, &bounds, &coarse, opts.optimizers[0])?;
        let mut out = best;
        out.feval += alt.feval;
        if alt.fmin < out.fmin - LME4_START_MARGIN {
            let mut polish = stage_opts.clone();
            polish.rhobeg = (10.0 * coarse.rhoend).min(opts.optim.rhobeg);
            polish.rhoend = stage_opts.rhoend.min(polish.rhobeg);
            let polished = run_stage(&mut obj, &alt.theta, &bounds, &polish, opts.optimizers[0])?;
            let feval = out.feval + polished.feval;
            if polished.fmin < out.fmin {
                out = polished;
                out.start = start;
            }
            out.feval = feval;
        }
        Ok(out)
    }

    /// The family's extra parameters with θ and β held at the end of stage 1, by BOBYQA on the
    /// stage-2 criterion over them alone (PIRLS over `u`): the start of stage 2, which then
    /// moves everything together. Their own start is the one set (zeros by default), so stage 1
    /// ran with, e.g., a dispersion of 1; this puts them near their optimum first, so that the
    /// joint search starts close in every coordinate.
    fn optimize_extra(
        &mut self,
        theta: &[f64],
        beta: &[f64],
        progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
    ) -> Result<Vec<f64>> {
        let start = self.response.extra().values().to_vec();
        let ne = start.len();
        let mut opts = OptimOptions {
            rhobeg: EXTRA_STAGE_RHOBEG,
            rhoend: EXTRA_STAGE_RHOEND,
            calc_derivs: false,
            ..OptimOptions::default()
        };
        opts.boundary_tol = 0.0;
        let bounds = (vec![f64::NEG_INFINITY; ne], vec![f64::INFINITY; ne]);
        let mut obj = ExtraStage {
            model: &mut *self,
            theta,
            beta,
            progress,
        };
        let summary = run_stage(&mut obj, &start, &bounds, &opts, StageOptimizer::Bobyqa)?;
        // Leave the model at the chosen point.
        let mut pars = theta.to_vec();
        pars.extend_from_slice(&summary.theta);
        pars.extend_from_slice(beta);
        self.objective_theta_beta(&pars, None)
            .map_err(|e| MixedError::Pirls(format!("after the dispersion stage: {e}")))?;
        Ok(summary.theta)
    }

    /// [`start::singular_face_restart`] judged and made in the scale of the columns
    /// ([`super::par_scale`]: a standard deviation of 5e-4 per unit of `x × 1000` is no zero).
    fn scaled_face_restart(&self, par: &[f64]) -> Option<Vec<f64>> {
        let scale = ColumnScales::of_rows(&self.re, &self.spec).par_scale(&self.re);
        let x: Vec<f64> = par.iter().zip(&scale).map(|(p, s)| p / s).collect();
        let restart = start::singular_face_restart(&self.re, &x)?;
        Some(restart.iter().zip(&scale).map(|(x, s)| x * s).collect())
    }

    /// lme4's start (θ = identity) in the scale of the columns ([`super::par_scale`]: the same
    /// for columns of moderate size; a random slope of `x × 1000` starts at a standard deviation
    /// of 1/1000 per unit of `x`, where 1 put it 2,000 times its optimum out).
    fn scaled_default_par(&self) -> Vec<f64> {
        let scale = ColumnScales::of_rows(&self.re, &self.spec).par_scale(&self.re);
        self.re
            .default_par()
            .iter()
            .zip(&scale)
            .map(|(p, s)| p * s)
            .collect()
    }

    /// A moment estimate of θ ([`crate::start`]) from the working response and weights of the
    /// PIRLS just run at lme4's start (one PQL-like step; the working residuals have variance
    /// `1 / w` for families without a dispersion; with one, θ is taken where lme4's deviance
    /// has its minimum for the estimated variances, [`start::ResidualScale`]), with the
    /// trust-region radius for it. The
    /// model is left at the new start, whose modes become the common starting point; `None`
    /// (and the model unchanged in what matters) when the estimate or PIRLS there fails.
    fn moment_start(&mut self, rhobeg: f64) -> Option<(Vec<f64>, f64)> {
        let scale = if self.response.has_scale() {
            start::ResidualScale::Lme4Dispersion
        } else {
            start::ResidualScale::Unit
        };
        // (the floors and radius in the scale of the columns: `super::par_scale`)
        let theta_scale = ColumnScales::of_rows(&self.re, &self.spec).theta_scale(&self.re);
        let (mut theta, mut radius) = start::moment_start(
            &self.pirls.joint_cp,
            &self.re,
            rhobeg,
            GLMM_START_RADIUS_FACTOR,
            scale,
            &theta_scale,
        )?;
        if scale == start::ResidualScale::Unit {
            let cp = &self.pirls.joint_cp;
            if let Some(refined) = start::working_lmm_theta(&self.spec, &self.re, cp, &theta) {
                (theta, radius) = start::with_start_radius(
                    refined,
                    &self.re,
                    rhobeg,
                    GLMM_START_RADIUS_FACTOR,
                    &theta_scale,
                );
            }
        }
        let theta = self.re.par_from_theta(&theta);
        if self.objective_theta(&theta).is_err() {
            // PIRLS starts again from `eta_start`, still the linear predictor at lme4's start.
            self.pirls.warm = false;
            return None;
        }
        self.pirls.eta_start.copy_from_slice(&self.pirls.eta);
        Some((theta, radius))
    }

    /// Stage 2: (θ, β) jointly, from `pars`, every coordinate measured in units of about one
    /// standard error ([`Stage2Metric`]) so that one trust region fits every parameter; then the
    /// derivative check.
    fn stage2(
        &mut self,
        opts: &GlmmOptions,
        rule: Option<&GaussHermite>,
        center: Vec<f64>,
        out: &mut GlmmFit,
        progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
    ) -> Result<(Vec<f64>, OptSummary)> {
        let nth = self.re.n_par();
        let nsc = nth + self.n_extra();
        let p = self.spec.p;
        let vc = self.pirls.joint_chol.vcov_unscaled(&self.pirls.joint_cp);
        let mut metric = Stage2Metric::from_vcov(&vc, nsc, p);
        let quasi_newton = self.quasi_newton_searches(rule, opts.optimizers[1]);
        let (mut summary, mut f0) = if opts.start_at_optimum && quasi_newton {
            // The end of an earlier search: its derivatives alone. The difference steps of the
            // exact gradient need no calibrated metric (see below).
            let mut pars = center.clone();
            self.re.normalize_par_signs(&mut pars[..nth]);
            let f = self.objective_theta_beta(&pars, rule)?;
            let summary = OptSummary {
                start: center.clone(),
                lower: self.re.par_lower(),
                upper: self.re.par_upper(),
                theta: pars,
                fmin: f,
                feval: 1,
                code: 0,
                message: QN_CONVERGED.into(),
                starts_tried: 1,
                ..OptSummary::default()
            };
            (summary, f)
        } else {
            let probes = self.calibrate(&center, rule, &mut metric, quasi_newton);
            // Every coordinate is now in units of about one standard error.
            let mut stage_opts = opts.optim.clone();
            stage_opts.calc_derivs = false;
            stage_opts.rhoend = opts.optim.rhoend.min(stage_opts.rhobeg);
            let mut summary = self.search(
                rule,
                &center,
                &metric,
                &stage_opts,
                opts.optimizers[1],
                progress,
            )?;
            summary.feval += probes;
            let f = self.objective_theta_beta(&summary.theta, rule)?;
            (summary, f)
        };
        let mut pars = summary.theta.clone();
        if opts.optim.calc_derivs {
            let singular = self.re.par_singular(&pars[..nth], opts.optim.singular_tol);
            // With a family's extra parameters the curvature at the start of stage 2 can be far
            // from the curvature at the optimum (a dispersion moves the random effects' scale),
            // and a difference step that is about one standard error there can be many here:
            // the steps are calibrated again at the optimum (epil's glmer.nb: a central
            // difference along θ biased by its third derivative, max|grad| 0.0025 where the
            // optimum is exact). Differences of the exact gradient do not need it: their error
            // is h²/6 of the third derivative (h = 1e-3 whitened units), tiny even for a scale
            // several times off, and skipping it saves 2k + 3 evaluations.
            let exact_gradient = rule.is_none() && self.has_laplace_gradient();
            let metric = if self.n_extra() > 0 && !exact_gradient {
                let mut at_optimum = metric.clone();
                summary.feval += self.calibrate(&pars, rule, &mut at_optimum, false);
                f0 = self.objective_theta_beta(&pars, rule)?;
                at_optimum
            } else {
                metric
            };
            let mut derivs = self.derivatives(&pars, f0, rule, &metric);
            let (stat, _) = optim::gradient_statistic(&derivs.gradient, &derivs.hessian);
            if !singular
                && derivs.problem.is_none()
                && (stat.is_nan() || stat >= opts.optim.grad_tol)
            {
                // Polish once from here with a small trust region before reporting anything.
                let mut polish_opts = opts.optim.clone();
                polish_opts.calc_derivs = false;
                polish_opts.rhobeg = 1e-3;
                let polished = self.search(
                    rule,
                    &pars,
                    &Stage2Metric::identity(nsc, p),
                    &polish_opts,
                    StageOptimizer::Bobyqa,
                    progress,
                )?;
                summary.feval += polished.feval;
                if polished.fmin < f0 {
                    pars = polished.theta;
                    f0 = self.objective_theta_beta(&pars, rule)?;
                    derivs = self.derivatives(&pars, f0, rule, &metric);
                }
            }
            record_derivatives(out, derivs, singular, opts.optim.grad_tol);
        }
        summary.theta = pars.clone();
        summary.fmin = f0;
        Ok((pars, summary))
    }

    /// Leaves the model at the estimates and reads off everything reported.
    fn finish(&mut self, theta: Vec<f64>, out: &mut GlmmFit) -> Result<()> {
        let pirls = &mut self.pirls;
        if matches!(self.response.family(), ResponseFamily::Extended(_)) {
            pirls.working_values(&self.response, Mode::UOnly, WeightChoice::Final);
            out.working_weights = pirls.weights().to_vec();
        }
        if self.re.has_zero_inflation_terms() {
            out.zi_logit = self.response.zero_inflation_logits();
            out.zi_working_weights = pirls.paired_weights();
        }
        pirls.working_values(&self.response, Mode::Joint, WeightChoice::Final);
        pirls.refactor_joint(&self.spec, &self.re)?;
        let u_blocks =
            linpred::split_blocks(&self.re, &pirls.joint_cp.layout, &pirls.u1, &pirls.u2);
        let b_blocks = linpred::block_effects(&self.re, &pirls.lambda, &u_blocks);
        out.u = linpred::term_values(&self.spec, &self.re, &u_blocks).concat();
        out.b = linpred::term_values(&self.spec, &self.re, &b_blocks);
        out.theta = self.re.theta_of(&theta);
        out.par = theta;
        out.beta = pirls.beta.clone();
        out.extra = self.response.extra().values().to_vec();
        out.eta = pirls.eta.clone();
        out.mu = pirls.mu.clone();
        out.ldl2 = pirls.ldl2();
        out.ldrx2 = pirls.joint_chol.logdet_rx(&pirls.joint_cp);
        out.ussq = pirls.ussq();
        out.drsum = self.response.deviance_residual_sum(&pirls.mu);
        out.wrss = self.response.pearson_sum(&pirls.mu);
        out.vcov_unscaled = pirls.joint_chol.vcov_unscaled(&pirls.joint_cp);
        out.pirls_failures = self.failures;
        out.pirls_iterations = pirls.iterations;
        Ok(())
    }

    /// PIRLS at the covariance parameters `theta` (`par`) with β estimated inside it (the
    /// stage-1 solution there); its linear predictor becomes the start of every later
    /// evaluation, as the fit's own start does. Returns β̂(θ), the start of stage 2.
    pub fn anchor_at(&mut self, theta: &[f64]) -> Result<Vec<f64>> {
        self.objective_theta(theta)?;
        self.pirls.eta_start.copy_from_slice(&self.pirls.eta);
        Ok(self.pirls.beta.clone())
    }

    /// One stage of the fit run by the engine's own optimizer, for a fit whose other stage runs
    /// elsewhere (a user's optimizer function, or none): stage 1 searches θ from `start` as the
    /// fit does; stage 2 searches `c(θ, β)` from `start` in the stage-2 metric. No derivatives:
    /// [`Self::fit_at`] checks the end point.
    pub fn optimize_stage(
        &mut self,
        opts: &GlmmOptions,
        stage: usize,
        optimizer: StageOptimizer,
        start: &[f64],
        progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
    ) -> Result<OptSummary> {
        let mut stage_opts = opts.optim.clone();
        stage_opts.calc_derivs = false;
        if stage == 1 {
            let bounds = (self.re.par_lower(), self.re.par_upper());
            let mut obj = Stage1 {
                model: &mut *self,
                progress,
            };
            let mut summary = run_stage(&mut obj, start, &bounds, &stage_opts, optimizer)?;
            self.re.normalize_par_signs(&mut summary.theta);
            return Ok(summary);
        }
        let rule = self.rule(opts.n_agq)?;
        let nth = self.re.n_par();
        let nsc = nth + self.n_extra();
        let p = self.spec.p;
        if start.len() != nsc + p {
            return invalid(format!(
                "stage 2 starts from {} parameters, the model has {}",
                start.len(),
                nsc + p
            ));
        }
        // The metric from β's covariance at the stage-1 solution for θ, as the fit's stage 2.
        self.response.set_extra(&start[nth..nsc])?;
        self.objective_theta(&start[..nth])?;
        let vc = self.pirls.joint_chol.vcov_unscaled(&self.pirls.joint_cp);
        let mut metric = Stage2Metric::from_vcov(&vc, nsc, p);
        let by_information = self.quasi_newton_searches(rule.as_ref(), optimizer);
        let probes = self.calibrate(start, rule.as_ref(), &mut metric, by_information);
        stage_opts.rhoend = stage_opts.rhoend.min(stage_opts.rhobeg);
        let mut summary = self.search(
            rule.as_ref(),
            start,
            &metric,
            &stage_opts,
            optimizer,
            progress,
        )?;
        summary.feval += probes;
        self.re.normalize_par_signs(&mut summary.theta[..nth]);
        Ok(summary)
    }

    /// The fit at parameters found outside the engine (a user's optimizer function) or given
    /// (no optimization): θ for `nAGQ = 0`, else `c(θ, β)`. Nothing is searched or polished:
    /// the point is the caller's. With `opts.optim.calc_derivs` the stage-2 derivatives are
    /// computed there (they give the fixed effects' standard errors, as after the engine's own
    /// search); `check_gradient` says whether their gradient is judged (not after no
    /// optimization, which claims no optimum). The stage records are the caller's.
    pub fn fit_at(
        &mut self,
        opts: &GlmmOptions,
        pars: &[f64],
        check_gradient: bool,
    ) -> Result<GlmmFit> {
        let nth = self.re.n_par();
        let nsc = nth + self.n_extra();
        let p = self.spec.p;
        let want = if opts.n_agq == 0 { nth } else { nsc + p };
        if pars.len() != want {
            return invalid(format!(
                "the fit takes {want} parameters, not {}",
                pars.len()
            ));
        }
        let rule = self.rule(opts.n_agq)?;
        let mut pars = pars.to_vec();
        self.re.normalize_par_signs(&mut pars[..nth]);
        let mut out = GlmmFit::default();
        if opts.n_agq == 0 {
            out.deviance = self.objective_theta(&pars)?;
        } else {
            let f0 = self.objective_theta_beta(&pars, rule.as_ref())?;
            out.deviance = f0;
            if opts.optim.calc_derivs {
                // The metric of the derivatives as after the engine's stage 2.
                self.objective_theta(&pars[..nth])?;
                let vc = self.pirls.joint_chol.vcov_unscaled(&self.pirls.joint_cp);
                let mut metric = Stage2Metric::from_vcov(&vc, nsc, p);
                self.calibrate(&pars, rule.as_ref(), &mut metric, false);
                self.objective_theta_beta(&pars, rule.as_ref())?;
                let derivs = self.derivatives(&pars, f0, rule.as_ref(), &metric);
                let singular =
                    !check_gradient || self.re.par_singular(&pars[..nth], opts.optim.singular_tol);
                record_derivatives(&mut out, derivs, singular, opts.optim.grad_tol);
            }
        }
        self.finish(pars[..nth].to_vec(), &mut out)?;
        Ok(out)
    }

    /// The adaptive Gauss–Hermite rule of `n_agq > 1` points (`None`: Laplace or stage 1).
    fn rule(&self, n_agq: usize) -> Result<Option<GaussHermite>> {
        if n_agq > 1 {
            Ok(Some(GaussHermite::new(n_agq)?))
        } else {
            Ok(None)
        }
    }

    /// The last PIRLS failure seen during the optimization, if any.
    pub fn last_pirls_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
}

/// The rise of the deviance, by the quadratic model at the optimum with inverse Hessian `v`, when
/// the coordinates `idx` move by `−step` (to 0) and all others follow to their best values:
/// `½ sᵀ (V_ss)⁻¹ s`. `None` where `V_ss` is not positive definite.
fn quadratic_rise(v: &Mat<f64>, idx: &[usize], step: &[f64]) -> Option<f64> {
    let k = idx.len();
    let mut vss: Vec<f64> = (0..k * k).map(|e| v[(idx[e % k], idx[e / k])]).collect();
    small::chol_lower(&mut vss, k)?;
    let mut z = step.to_vec();
    small::solve_lower(&vss, k, &mut z);
    Some(0.5 * z.iter().map(|x| x * x).sum::<f64>())
}

/// Deviance units above the optimum beyond which the quadratic model's value at a term's zero
/// covariance ([`quadratic_rise`]) spares that term the probe of
/// [`GeneralizedLinearMixedModel::zeroed_term_start`]: a likelihood-ratio statistic of 20
/// (cbpp's herd term predicts 12.9, its actual statistic is 14.0).
const ZEROED_TERM_SCREEN: f64 = 20.0;

/// Relative margin by which a second optimum of stage 2 must lower the criterion to replace the
/// first ([`GeneralizedLinearMixedModel::restart_stage2`]), and a term's covariance at 0 to
/// restart from there ([`GeneralizedLinearMixedModel::zeroed_term_start`]).
const RESTART_TOL: f64 = 1e-8;

/// Stores the stage-2 derivatives at the estimates in `out` with lme4's verdict on them: the
/// gradient check (not for a singular fit, whose optimum is on the boundary) or why the
/// derivatives could not be computed.
fn record_derivatives(out: &mut GlmmFit, derivs: Derivatives, singular: bool, grad_tol: f64) {
    let (stat, component) = optim::gradient_statistic(&derivs.gradient, &derivs.hessian);
    if let Some(problem) = &derivs.problem {
        out.messages
            .push(format!("convergence could not be checked: {problem}"));
    } else if !singular && (stat.is_nan() || stat >= grad_tol) {
        out.messages.push(format!(
            "Model failed to converge with max|grad| = {stat:.6} (tol = {grad_tol}, component {})",
            component + 1
        ));
    }
    out.hessian_problem = derivs.problem;
    out.gradient = derivs.gradient;
    out.hessian = derivs.hessian;
}

/// One optimizer run within `(lower, upper)`. Nelder–Mead ignores the bounds (as lme4's does
/// for θ); points outside a structured term's bounds evaluate to `+∞`, which it steps away from.
pub(super) fn run_stage<O: Objective>(
    obj: &mut O,
    start: &[f64],
    (lower, upper): &(Vec<f64>, Vec<f64>),
    opts: &OptimOptions,
    optimizer: StageOptimizer,
) -> Result<OptSummary> {
    match optimizer {
        StageOptimizer::Bobyqa => optim::minimize_within(obj, start, lower, upper, opts),
        StageOptimizer::NelderMead => crate::nelder_mead::minimize(obj, start, lower, opts),
    }
}

/// The stage-2 criterion as a function of the extra parameters alone.
struct ExtraStage<'m, 'a, 'p> {
    model: &'m mut GeneralizedLinearMixedModel<'a>,
    theta: &'p [f64],
    beta: &'p [f64],
    progress: &'m mut dyn FnMut(usize, &[f64], f64) -> Stop,
}

impl Objective for ExtraStage<'_, '_, '_> {
    fn eval(&mut self, extra: &[f64]) -> f64 {
        let mut pars = self.theta.to_vec();
        pars.extend_from_slice(extra);
        pars.extend_from_slice(self.beta);
        match self.model.objective_theta_beta(&pars, None) {
            Ok(v) => v,
            Err(e) => {
                self.model.record_failure(&e);
                f64::INFINITY
            }
        }
    }

    fn after_eval(&mut self, count: usize, extra: &[f64], value: f64) -> Stop {
        (self.progress)(count, extra, value)
    }
}

struct Stage1<'m, 'a> {
    model: &'m mut GeneralizedLinearMixedModel<'a>,
    progress: &'m mut dyn FnMut(usize, &[f64], f64) -> Stop,
}

impl Objective for Stage1<'_, '_> {
    fn eval(&mut self, theta: &[f64]) -> f64 {
        match self.model.objective_theta(theta) {
            Ok(v) => v,
            Err(e) => {
                self.model.record_failure(&e);
                f64::INFINITY
            }
        }
    }

    fn after_eval(&mut self, count: usize, theta: &[f64], value: f64) -> Stop {
        (self.progress)(count, theta, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::RandomTerm;

    /// A binomial model of `n` rows with one random intercept of `levels` levels, on `par`.
    fn intercept_model<'a>(
        y: &'a [f64],
        x: &'a [f64],
        ones: &'a [f64],
        levels: usize,
        par: Par,
    ) -> GeneralizedLinearMixedModel<'a> {
        let n = y.len();
        let term = RandomTerm {
            levels: (0..n).map(|i| (i % levels) as u32).collect(),
            n_levels: levels,
            z: ones,
            q: 1,
            factor_id: 0,
            predictor: Default::default(),
        };
        let spec = ModelSpec::new(y, x, 1, None, None, vec![term]).expect("spec");
        let family = Family::new("binomial", "logit").expect("family");
        GeneralizedLinearMixedModel::new(
            spec,
            family,
            vec![1.0; n],
            vec![0.0; n],
            PirlsOptions::default(),
            par,
        )
        .expect("model")
    }

    /// Points go to other threads only where an evaluation is worth more than handing it over:
    /// a small model keeps one thread whatever the fit's `threads`, a large one takes them all.
    #[test]
    fn small_models_evaluate_points_on_one_thread() {
        for (n, levels, threads) in [(100, 10, 1), (1490, 19, 1), (1490, 20, 2), (5000, 50, 2)] {
            let y: Vec<f64> = (0..n).map(|i| (i % 3 == 0) as u8 as f64).collect();
            let ones = vec![1.0; n];
            let two = intercept_model(&y, &ones, &ones, levels, Par::rayon(2));
            let work = two.evaluation_work();
            assert_eq!(work, 2 * n + levels);
            assert_eq!(two.worker_threads(), threads, "n = {n}");
            let one = intercept_model(&y, &ones, &ones, levels, Par::Seq);
            assert_eq!(one.worker_threads(), 1);
        }
    }
}
