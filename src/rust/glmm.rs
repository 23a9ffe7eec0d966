//! Generalized linear mixed models: PIRLS, the Laplace and adaptive Gauss–Hermite deviance, and
//! glmer's two-stage fit.
//!
//! For θ (and, in the second stage, β) the conditional modes of the spherical random effects `u`
//! maximize the penalized likelihood; penalized iteratively reweighted least squares finds them:
//! with working weights `w = a (dμ/dη)²/V(μ)` (prior weights `a`) and working response
//! `z = η − offset + (y − μ)/(dμ/dη)`, each step solves the penalized weighted least-squares
//! problem of the linear mixed model with the blocked Cholesky factor (the cross-products are
//! refilled for the new weights; their pattern was built once), with step halving whenever the
//! penalized deviance `Σ d(y, μ) + ‖u‖²` grows.
//!
//! At the modes, with `L` the factor at the modes' weights,
//!
//! ```text
//!   Laplace:  −2 log L ≈ log|L|² + ‖u‖² + aic(y, μ)          (R's family aic: −2 log p(y | μ))
//!   AGQ (one scalar term): Σⱼ devⱼ(û) + log|L|² − 2 Σⱼ log Σₖ wₖ exp(zₖ²/2 − (devⱼ(ûⱼ + zₖ/Lⱼⱼ) − devⱼ(û))/2)
//! ```
//!
//! with `devⱼ(u) = uⱼ² + Σ_{i∈j} d(yᵢ, μᵢ)`, as lme4 defines both. Stage 1 optimizes θ with β
//! inside PIRLS (the `nAGQ = 0` criterion); stage 2 optimizes (θ, β) jointly with PIRLS over `u`
//! only, starting from stage 1.
use crate::blocks::{CrossProducts, RefillPlan};
use crate::chol::BlockedCholesky;
use crate::error::{invalid, MixedError, Result};
use crate::family::Family;
use crate::linpred;
use crate::optim::{self, Objective, OptSummary, OptimOptions, Stop};
use crate::quadrature::GaussHermite;
use crate::spec::ModelSpec;
use crate::start;
use crate::terms::ReStructure;
use crate::trailing::TrailingChoice;
use faer::Par;

/// Initial trust-region radius of stage 1 relative to the largest element of the moment start:
/// larger than for an LMM, as a one-step estimate from the working response is biased (low, for
/// binary data). Measured on cbpp, VerbAgg, grouseticks and a crossed binomial model: stage 1
/// took 89 evaluations in all with 0.3, 96–99 with 0.1, 0.2 or 0.5, and 123 from lme4's start.
const GLMM_START_RADIUS_FACTOR: f64 = 0.3;
/// Final trust-region radius of the coarse stage-1 run from lme4's start that guards the fit
/// from the moment start ([`GeneralizedLinearMixedModel::fit`]).
const LME4_START_COARSE_RHOEND: f64 = 2e-2;
/// How much lower (in deviance) the coarse run from lme4's start must end before it is
/// polished: the same basin gives coarse values a hair below a converged one's only by noise.
const LME4_START_MARGIN: f64 = 1e-4;
/// Step of the curvature probes along θ relative to |θ| (at least 0.1).
const THETA_PROBE_STEP: f64 = 0.05;
/// Step of the curvature probe along β, in whitened units (about one standard error).
const BETA_PROBE_STEP: f64 = 0.5;
/// Largest estimated relative error of any fixed or spherical random effect when PIRLS stops.
const PIRLS_STEP_TOL: f64 = 1e-9;
/// Relative PIRLS steps below this that no longer shrink geometrically are rounding noise.
const PIRLS_NOISE_STEP: f64 = 1e-10;
/// The same for the evaluations of the finite-difference derivatives: their errors are divided
/// by the squared step (1e-8), so the modes are made as exact as rounding allows (PIRLS also
/// stops once it is within `PIRLS_STEP_TOL` and the steps no longer shrink).
const FD_STEP_TOL: f64 = 1e-12;
/// Step of the finite-difference derivatives in the whitened coordinates of the stage-2 metric
/// (about one standard error per unit). One central difference: its truncation error at
/// `h = 0.01`, about `h² f''''/12`, is far below the accuracy SEs need, so Richardson
/// extrapolation over `h` and `2h` (measured: the same SEs) is not worth twice the evaluations.
const FD_WHITENED_STEP: f64 = 1e-2;
/// How often the step is reduced when PIRLS fails at some difference point, and by how much.
const FD_RETRIES: usize = 3;
const FD_RETRY_FACTOR: f64 = 4.0;

/// PIRLS settings.
#[derive(Debug, Clone, Copy)]
pub struct PirlsOptions {
    /// Convergence: relative change of the penalized deviance below this.
    pub tol: f64,
    /// Largest number of iterations.
    pub max_iter: usize,
    /// Receives a line per PIRLS iteration (the caller prints it: `verbose = 2` in R).
    pub trace: Option<fn(&str)>,
}

impl Default for PirlsOptions {
    fn default() -> Self {
        Self {
            tol: 1e-7,
            max_iter: 100,
            trace: None,
        }
    }
}

/// The optimizer of a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageOptimizer {
    /// BOBYQA (bounds on θ).
    Bobyqa,
    /// Nelder–Mead (argmin), unconstrained with signs of θ normalized afterwards.
    NelderMead,
}

/// Settings of a GLMM fit.
#[derive(Debug, Clone)]
pub struct GlmmOptions {
    /// 0 (θ only), 1 (Laplace) or the number of adaptive Gauss–Hermite points.
    pub n_agq: usize,
    /// Run the `nAGQ = 0` stage first (glmer's `nAGQ0initStep`).
    pub init_step: bool,
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
    /// Fixed effects.
    pub beta: Vec<f64>,
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
    /// Finite-difference gradient of the criterion over (θ, β) (stage 2), or empty.
    pub gradient: Vec<f64>,
    /// Finite-difference Hessian over (θ, β), column-major, or empty.
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

/// Observations from which the pass over them (η, μ, deviance) is split over threads.
const PARALLEL_ROWS: usize = 1 << 17;

/// One pass over a range of observations: `η = offset + Xβ + Zb`, μ, dμ/dη and (optionally)
/// the deviance residuals, each observation computed as in a single pass over all of them.
struct RowPass<'p, 'a> {
    spec: &'p ModelSpec<'a>,
    re: &'p ReStructure,
    effects: &'p [Vec<f64>],
    family: Family,
    prior_w: &'p [f64],
    deviance: bool,
}

impl RowPass<'_, '_> {
    /// Fills the rows `first..first + eta.len()`; false if some η or μ is invalid.
    fn run(
        &self,
        first: usize,
        eta: &mut [f64],
        fixed: &[f64],
        mu: &mut [f64],
        mu_eta: &mut [f64],
        dev: &mut [f64],
    ) -> bool {
        eta.copy_from_slice(fixed);
        linpred::add_zb_rows(self.spec, self.re, self.effects, first, eta);
        let family = self.family;
        let link = family.link;
        let rows = first..first + eta.len();
        let y = &self.spec.y[rows.clone()];
        let pw = &self.prior_w[rows];
        let mut ok = true;
        let values = mu.iter_mut().zip(mu_eta.iter_mut()).zip(dev.iter_mut());
        for (((m, d), dv), ((&e, &yi), &w)) in values.zip(eta.iter().zip(y).zip(pw)) {
            (*m, *d) = link.linkinv_mu_eta(e);
            ok &= link.valid_eta(e) && family.valid_mu(*m);
            if self.deviance {
                *dv = family.dev_resid(yi, *m, w);
            }
        }
        ok
    }
}

/// The modes PIRLS starts from.
struct WarmStart {
    u1: Vec<f64>,
    u2: Vec<f64>,
    warm: bool,
}

/// Finite-difference derivatives of the stage-2 criterion in the original parameters.
struct Derivatives {
    gradient: Vec<f64>,
    /// Column-major.
    hessian: Vec<f64>,
    /// Why they could not be computed (then both are NaN).
    problem: Option<String>,
}

/// Which unknowns PIRLS solves for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// β and u (stage 1, `nAGQ = 0`).
    Joint,
    /// u only, β fixed (stage 2).
    UOnly,
}

/// A GLMM ready to be evaluated at any θ (and β).
pub struct GeneralizedLinearMixedModel<'a> {
    /// Data: `y` is the response as fitted (proportions for binomial), weights are the prior
    /// weights (number of trials for binomial proportions).
    pub spec: ModelSpec<'a>,
    /// Distribution and link.
    pub family: Family,
    /// Grouping-factor blocks and the θ layout.
    pub re: ReStructure,
    n_trials: Vec<f64>,
    prior_w: Vec<f64>,
    offset: Vec<f64>,
    joint_cp: CrossProducts,
    joint_chol: BlockedCholesky,
    u_cp: CrossProducts,
    u_chol: BlockedCholesky,
    lambda: Vec<Vec<f64>>,
    pirls: PirlsOptions,
    /// Current state.
    beta: Vec<f64>,
    u1: Vec<f64>,
    u2: Vec<f64>,
    eta: Vec<f64>,
    mu: Vec<f64>,
    /// `dμ/dη` at the current η (computed with μ, which shares its exponential).
    mu_eta: Vec<f64>,
    /// `offset + Xβ` for the current β (valid unless `fixed_stale`).
    eta_fixed: Vec<f64>,
    /// `Xβ` alone for the current β (valid unless `fixed_stale`).
    xb: Vec<f64>,
    /// Whether β changed since `eta_fixed` and `xb` were formed.
    fixed_stale: bool,
    /// (β, u₁, u₂) before the last PIRLS step (for step halving and the step size).
    old_beta: Vec<f64>,
    old_u1: Vec<f64>,
    old_u2: Vec<f64>,
    /// Facts and scratch of the fast cross-product refill.
    refill_plan: RefillPlan,
    /// `log|L|²` at the modes of the last successful PIRLS run.
    ldl2_value: f64,
    /// Linear predictor every PIRLS run starts from (lme4's `lp0`).
    eta_start: Vec<f64>,
    work_w: Vec<f64>,
    work_z: Vec<f64>,
    last_error: Option<String>,
    failures: usize,
    /// Whether the current (β, u) are the modes of a successful PIRLS run (a warm start).
    warm: bool,
    /// `Σ d(y, μ)` at the current state (set with the penalized deviance).
    drsum: f64,
    /// The family's aic is `Σ d(y, μ)` plus this, for binomial and Poisson.
    saturated_aic: Option<f64>,
    /// `b = Λu` per block, refilled with the linear predictor.
    effects: Vec<Vec<f64>>,
    iterations: usize,
    /// Parallelism of the fit (the factor's kernels and the finite-difference derivatives).
    par: Par,
    /// PIRLS stops when the estimated relative error of the modes is below this.
    step_tol: f64,
    /// Deviance residual of each observation (summed in order after a parallel pass).
    dev_terms: Vec<f64>,
}

impl std::fmt::Debug for GeneralizedLinearMixedModel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneralizedLinearMixedModel")
            .field("n", &self.spec.n)
            .field("p", &self.spec.p)
            .field("family", &self.family)
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
        let n = spec.n;
        if n_trials.len() != n || eta_start.len() != n {
            return invalid("n_trials and eta_start must have one value per observation");
        }
        if let Some(i) = eta_start.iter().position(|e| !family.link.valid_eta(*e)) {
            return invalid(format!(
                "the starting linear predictor is invalid at observation {}",
                i + 1
            ));
        }
        if let Some(i) = eta_start
            .iter()
            .position(|&e| !family.valid_mu(family.link.linkinv(e)))
        {
            return invalid(format!(
                "the starting mean is invalid at observation {}",
                i + 1
            ));
        }
        let re = ReStructure::new(&spec);
        let joint_cp = CrossProducts::pattern(&spec, &re, spec.p)?;
        let joint_chol = BlockedCholesky::new(&joint_cp, &re, par, TrailingChoice::Auto)?;
        let u_cp = CrossProducts::pattern(&spec, &re, 0)?;
        let u_chol = BlockedCholesky::new(&u_cp, &re, par, TrailingChoice::Auto)?;
        let prior_w: Vec<f64> = (0..n).map(|i| spec.weight(i)).collect();
        let saturated_aic = family.saturated_aic(spec.y, &n_trials, &prior_w);
        let offset: Vec<f64> = spec.offset.map_or_else(|| vec![0.0; n], <[f64]>::to_vec);
        let lambda = re.lambda_buffers();
        let effects = re
            .blocks
            .iter()
            .map(|b| vec![0.0; b.n_levels * b.q])
            .collect();
        let q0 = joint_cp.q0 * joint_cp.l0;
        let m = joint_cp.layout.m;
        let mu = eta_start.iter().map(|&e| family.link.linkinv(e)).collect();
        let mu_eta = eta_start.iter().map(|&e| family.link.mu_eta(e)).collect();
        let refill_plan = joint_cp.refill_plan(&spec, &re);
        Ok(Self {
            beta: vec![0.0; spec.p],
            u1: vec![0.0; q0],
            u2: vec![0.0; m],
            eta: eta_start.clone(),
            mu,
            mu_eta,
            eta_fixed: vec![0.0; n],
            xb: vec![0.0; n],
            fixed_stale: true,
            old_beta: vec![0.0; spec.p],
            old_u1: vec![0.0; q0],
            old_u2: vec![0.0; m],
            refill_plan,
            ldl2_value: f64::NAN,
            eta_start,
            work_w: vec![0.0; n],
            work_z: vec![0.0; n],
            spec,
            family,
            re,
            n_trials,
            prior_w,
            offset,
            joint_cp,
            joint_chol,
            u_cp,
            u_chol,
            lambda,
            pirls,
            last_error: None,
            failures: 0,
            warm: false,
            iterations: 0,
            drsum: f64::NAN,
            saturated_aic,
            effects,
            par,
            step_tol: PIRLS_STEP_TOL,
            dev_terms: vec![0.0; n],
        })
    }

    fn set_theta(&mut self, theta: &[f64]) -> Result<()> {
        self.re.set_lambda(theta, &mut self.lambda)
    }

    /// η, μ and dμ/dη from the current (β, u); false if some μ or η is invalid for the family.
    /// `offset + Xβ` is kept between calls and formed again only after β changed (PIRLS over
    /// `u` alone evaluates η many times for one β).
    fn update_eta(&mut self) -> bool {
        self.eta_pass(false).0
    }

    /// `offset + Xβ` and `Xβ` for the current β.
    fn form_fixed(&mut self) {
        let n = self.spec.n;
        self.eta_fixed.copy_from_slice(&self.offset);
        linpred::add_xb(self.spec.x, n, &self.beta, &mut self.eta_fixed);
        self.xb.iter_mut().for_each(|v| *v = 0.0);
        linpred::add_xb(self.spec.x, n, &self.beta, &mut self.xb);
        self.fixed_stale = false;
    }

    /// [`Self::update_eta`], and with `deviance` also `Σ d(y, μ)` in the same pass over the
    /// observations (PIRLS needs both after every step; one pass reads y, η and μ once).
    fn eta_pass(&mut self, deviance: bool) -> (bool, f64) {
        if self.fixed_stale {
            self.form_fixed();
        }
        linpred::block_effects_into(
            &self.re,
            &self.joint_cp.layout,
            &self.lambda,
            &self.u1,
            &self.u2,
            &mut self.effects,
        );
        let n = self.spec.n;
        let threads = match self.par {
            Par::Rayon(k) if n >= PARALLEL_ROWS => k.get(),
            _ => 1,
        };
        let rows = n.div_ceil(threads);
        let pass = RowPass {
            spec: &self.spec,
            re: &self.re,
            effects: &self.effects,
            family: self.family,
            prior_w: &self.prior_w,
            deviance,
        };
        let pieces = self
            .eta
            .chunks_mut(rows)
            .zip(self.eta_fixed.chunks(rows))
            .zip(self.mu.chunks_mut(rows))
            .zip(self.mu_eta.chunks_mut(rows))
            .zip(self.dev_terms.chunks_mut(rows))
            .enumerate()
            .map(|(k, ((((eta, fixed), mu), mu_eta), dev))| {
                (k * rows, eta, fixed, mu, mu_eta, dev)
            });
        let ok = if threads > 1 {
            use rayon::prelude::*;
            pieces
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(|(first, eta, fixed, mu, mu_eta, dev)| {
                    pass.run(first, eta, fixed, mu, mu_eta, dev)
                })
                .reduce(|| true, |a, b| a & b)
        } else {
            pieces.fold(true, |ok, (first, eta, fixed, mu, mu_eta, dev)| {
                ok & pass.run(first, eta, fixed, mu, mu_eta, dev)
            })
        };
        // Summed in observation order whatever the number of threads.
        let dev = if deviance {
            self.dev_terms.iter().fold(0.0, |acc, d| acc + d)
        } else {
            0.0
        };
        (ok, dev)
    }

    fn deviance_residual_sum(&self) -> f64 {
        (0..self.spec.n)
            .map(|i| {
                self.family
                    .dev_resid(self.spec.y[i], self.mu[i], self.prior_w[i])
            })
            .sum()
    }

    fn ussq(&self) -> f64 {
        self.u1.iter().chain(&self.u2).map(|v| v * v).sum()
    }

    /// Penalized deviance `Σ d(y, μ) + ‖u‖²` (∞ for an invalid μ); keeps `Σ d(y, μ)`.
    fn penalized_deviance(&mut self) -> f64 {
        let (ok, dev) = self.eta_pass(true);
        if !ok {
            return f64::INFINITY;
        }
        self.drsum = dev;
        let v = self.drsum + self.ussq();
        if v.is_finite() {
            v
        } else {
            f64::INFINITY
        }
    }

    /// Working weights `w` and working response at the current η (with μ and dμ/dη from
    /// [`Self::update_eta`]). For `Joint` the response is `z = η − offset + (y − μ)/(dμ/dη)`;
    /// for `UOnly` it is `z − Xβ` (with `Xβ` kept from [`Self::update_eta`], formed in this
    /// order so that the finite-difference derivatives see the same rounding as before).
    ///
    /// With `newton` (a non-canonical link, during the iterations) the weights are the observed
    /// information `−∂²ℓ/∂η²` and the response `η − offset + (∂ℓ/∂η)/w`, so that a step is a
    /// Newton step on the penalized deviance: Fisher scoring converges only linearly there, at
    /// a rate set by the gap between observed and expected information (a probit model took
    /// dozens of iterations per evaluation to reach the tight tolerance the Laplace criterion
    /// needs). Where the observed information is not positive (possible for, e.g., a Gamma
    /// identity link far from the data) that observation keeps its Fisher weight, which keeps
    /// the system positive definite; step halving guards the rest. The modes are the same
    /// either way; the Laplace determinant always uses the expected weights (as lme4 does).
    fn working_values(&mut self, mode: Mode, newton: bool) {
        let family = self.family;
        let y = self.spec.y;
        debug_assert!(mode == Mode::Joint || !self.fixed_stale);
        let uonly = mode == Mode::UOnly;
        let newton = newton && !family.is_canonical();
        let out = self.work_w.iter_mut().zip(&mut self.work_z);
        let state = self.mu.iter().zip(&self.mu_eta).zip(&self.eta);
        let data = y.iter().zip(&self.prior_w).zip(&self.offset).zip(&self.xb);
        for ((w, z), (((&mu, &me), &eta), (((&yi, &pw), &off), &xb))) in out.zip(state.zip(data)) {
            let expected = pw * me * me / family.variance(mu);
            let mut wi = expected;
            let mut zi = eta - off + (yi - mu) / me;
            if newton {
                let observed = family.observed_weight(yi, eta, mu, me, pw);
                if observed.is_finite() && observed > 0.0 {
                    // ∂ℓ/∂η = w_expected (y − μ)/μ'.
                    let newton_z = eta - off + expected * ((yi - mu) / me) / observed;
                    if newton_z.is_finite() {
                        wi = observed;
                        zi = newton_z;
                    }
                }
            }
            *w = wi;
            *z = if uonly { zi - xb } else { zi };
        }
    }

    /// Refills the joint cross-products (`F = [X, z]`) with the working values and refactors.
    fn refactor_joint(&mut self) -> Result<()> {
        self.joint_cp.refill(
            &self.spec,
            &self.re,
            &mut self.refill_plan,
            self.spec.x,
            &self.work_z,
            &self.work_w,
        );
        self.joint_chol.update(&self.joint_cp, &self.lambda)
    }

    /// Refills the cross-products for the current working values and refactors. For `UOnly` the
    /// response column is `z − Xβ`.
    fn refactor(&mut self, mode: Mode) -> Result<()> {
        match mode {
            Mode::Joint => self.refactor_joint(),
            Mode::UOnly => {
                self.u_cp.refill(
                    &self.spec,
                    &self.re,
                    &mut self.refill_plan,
                    &[],
                    &self.work_z,
                    &self.work_w,
                );
                self.u_chol.update(&self.u_cp, &self.lambda)
            }
        }
    }

    /// Runs PIRLS from `eta_start` at the current θ (and β for `UOnly`); on success the factor
    /// of the mode (`u_chol` for `UOnly`, `joint_chol` for `Joint`) holds the weights at the
    /// modes.
    fn run_pirls(&mut self, mode: Mode) -> Result<f64> {
        let result = self.pirls_iterations(mode);
        self.warm = result.is_ok();
        result
    }

    /// Keeps (β, u) as the state before the next step.
    fn save_state(&mut self) {
        self.old_beta.copy_from_slice(&self.beta);
        self.old_u1.copy_from_slice(&self.u1);
        self.old_u2.copy_from_slice(&self.u2);
    }

    /// PIRLS proper. It starts from the previous evaluation's modes (with the new θ, β) when
    /// they give a valid mean, which usually leaves two or three iterations; otherwise from
    /// `eta_start`. The tight convergence rule makes the result independent of the start.
    fn pirls_iterations(&mut self, mode: Mode) -> Result<f64> {
        let mut old_pdev = f64::INFINITY;
        let mut have_old = false;
        let warm_pdev = if self.warm {
            self.penalized_deviance()
        } else {
            f64::INFINITY
        };
        if warm_pdev.is_finite() {
            old_pdev = warm_pdev;
            have_old = true;
            self.save_state();
        } else {
            self.eta.copy_from_slice(&self.eta_start);
            let link = self.family.link;
            for ((m, d), &e) in self.mu.iter_mut().zip(&mut self.mu_eta).zip(&self.eta) {
                (*m, *d) = link.linkinv_mu_eta(e);
            }
            if mode == Mode::UOnly && self.fixed_stale {
                // The working response of `UOnly` subtracts `Xβ`.
                self.form_fixed();
            }
        }
        let mut converged = false;
        let mut pdev = f64::INFINITY;
        let mut prev_step = f64::INFINITY;
        for iteration in 1..=self.pirls.max_iter {
            self.iterations += 1;
            self.working_values(mode, true);
            self.refactor(mode)?;
            match mode {
                Mode::Joint => {
                    let (beta, u1, u2) = self.joint_chol.solve(&self.joint_cp);
                    self.beta = beta;
                    self.fixed_stale = true;
                    self.u1 = u1;
                    self.u2 = u2;
                }
                Mode::UOnly => {
                    let (_, u1, u2) = self.u_chol.solve(&self.u_cp);
                    self.u1 = u1;
                    self.u2 = u2;
                }
            }
            pdev = self.penalized_deviance();
            // Converged when the penalized deviance has settled *and* the modes are accurate.
            // The Laplace criterion is not stationary at the modes (log|L|² depends on them
            // through the weights, and for families with a dispersion the aic part uses
            // dev/n), so an error in the modes enters it to first order, and Fisher scoring
            // on a non-canonical link converges only linearly: a settled deviance alone can
            // leave the modes inexact. The error of the current iterate is estimated from the
            // last two steps (geometric extrapolation, which also covers quadratic
            // convergence, where it is tiny).
            let settled = ((old_pdev - pdev) / pdev).abs() < self.pirls.tol;
            let step = if have_old {
                self.step_size()
            } else {
                f64::INFINITY
            };
            let error = if prev_step.is_finite() && step < prev_step {
                let r = step / prev_step;
                step * r / (1.0 - r)
            } else {
                step
            };
            // Below the ordinary tolerance, steps that stop shrinking are rounding noise; so
            // are steps below `PIRLS_NOISE_STEP` that shrink by less than half (Fisher scoring
            // on a probit link crawled there at a rate of 0.998 until `maxit`).
            let stalled = (error < PIRLS_STEP_TOL && step >= prev_step)
                || (step < PIRLS_NOISE_STEP && step >= 0.5 * prev_step);
            prev_step = step;
            if let Some(trace) = self.pirls.trace {
                let shown = if step.is_finite() {
                    format!("{step:.3e}")
                } else {
                    "(first step)".to_string()
                };
                trace(&format!(
                    "  PIRLS {iteration}: penalized deviance {pdev:.8}, largest relative step \
                     {shown}"
                ));
            }
            if settled && (error < self.step_tol || stalled) {
                converged = true;
                break;
            }
            if pdev > old_pdev {
                if have_old {
                    for _ in 0..10 {
                        if pdev <= old_pdev {
                            break;
                        }
                        halve(&mut self.u1, &self.old_u1);
                        halve(&mut self.u2, &self.old_u2);
                        if mode == Mode::Joint {
                            halve(&mut self.beta, &self.old_beta);
                            self.fixed_stale = true;
                        }
                        pdev = self.penalized_deviance();
                    }
                }
                if !pdev.is_finite() || pdev - old_pdev > self.pirls.tol {
                    return Err(MixedError::Pirls(format!(
                        "PIRLS step-halving failed to reduce the penalized deviance (from {old_pdev:.6} it stays at {pdev:.6})"
                    )));
                }
            }
            old_pdev = pdev;
            have_old = true;
            self.save_state();
        }
        if !pdev.is_finite() {
            return Err(MixedError::Pirls(
                "PIRLS diverged: the linear predictor left the range of the link (means outside \
                 what the family allows, e.g. a negative mean with an inverse or identity link); \
                 try another link or starting values"
                    .into(),
            ));
        }
        if !converged {
            return Err(MixedError::Pirls(format!(
                "PIRLS did not converge in {} iterations (penalized deviance {pdev:.6}); \
                 increase glmmControl(maxit = ) or simplify the model",
                self.pirls.max_iter
            )));
        }
        // The Laplace approximation needs the factor at the modes' own weights. The random-
        // effects part of the joint factor is the factor of the `UOnly` system (it does not
        // depend on F), so one refactor serves either mode.
        self.working_values(mode, false);
        self.refactor(mode)?;
        self.ldl2_value = match mode {
            Mode::Joint => self.joint_chol.logdet_l11 + self.joint_chol.logdet_l22,
            Mode::UOnly => self.u_chol.logdet_l11 + self.u_chol.logdet_l22,
        };
        Ok(pdev)
    }

    /// The largest change of an element of (β, u) in the last PIRLS step, relative to
    /// `1 + |element|`.
    fn step_size(&self) -> f64 {
        let largest = |new: &[f64], old: &[f64]| {
            new.iter()
                .zip(old)
                .map(|(a, b)| (a - b).abs() / (1.0 + a.abs()))
                .fold(0.0f64, f64::max)
        };
        largest(&self.beta, &self.old_beta)
            .max(largest(&self.u1, &self.old_u1))
            .max(largest(&self.u2, &self.old_u2))
    }

    fn ldl2(&self) -> f64 {
        self.ldl2_value
    }

    /// Laplace deviance at the current modes.
    fn laplace(&self) -> f64 {
        let dev = self.drsum;
        let aic = match self.saturated_aic {
            Some(c) => dev + c,
            None => self
                .family
                .aic(self.spec.y, &self.n_trials, &self.mu, &self.prior_w, dev),
        };
        self.ldl2() + self.ussq() + aic
    }

    /// Adaptive Gauss–Hermite deviance at the current modes (one scalar random-effects term).
    fn agq(&mut self, rule: &GaussHermite) -> f64 {
        let n = self.spec.n;
        let levels: Vec<u32> = self.spec.terms[0].levels.clone();
        let nl = self.u1.len();
        let devc = |model: &Self| -> Vec<f64> {
            let mut d: Vec<f64> = model.u1.iter().map(|u| u * u).collect();
            for i in 0..n {
                d[levels[i] as usize] +=
                    model
                        .family
                        .dev_resid(model.spec.y[i], model.mu[i], model.prior_w[i]);
            }
            d
        };
        let devc0 = devc(self);
        let mode_u = self.u1.clone();
        // L11 is 1×1 per level: the conditional standard deviation of uⱼ is 1/Lⱼⱼ.
        let sd: Vec<f64> = self.u_chol.l11.iter().map(|l| 1.0 / l).collect();
        let mut log_mult = vec![0.0; nl];
        let mut mult = vec![0.0; nl];
        for (&z, &w) in rule.nodes.iter().zip(&rule.weights) {
            if z == 0.0 {
                mult.iter_mut().for_each(|m| *m += w);
                continue;
            }
            for j in 0..nl {
                self.u1[j] = mode_u[j] + z * sd[j];
            }
            self.update_eta();
            let d = devc(self);
            for j in 0..nl {
                mult[j] += w * (-0.5 * (d[j] - devc0[j]) + 0.5 * z * z).exp();
            }
        }
        self.u1.copy_from_slice(&mode_u);
        self.update_eta();
        for j in 0..nl {
            log_mult[j] = mult[j].ln();
        }
        devc0.iter().sum::<f64>() + self.ldl2() - 2.0 * log_mult.iter().sum::<f64>()
    }

    /// The stage-1 (`nAGQ = 0`) criterion at θ: β and u both inside PIRLS.
    pub fn objective_theta(&mut self, theta: &[f64]) -> Result<f64> {
        self.set_theta(theta)?;
        self.run_pirls(Mode::Joint)?;
        Ok(self.laplace())
    }

    /// The stage-2 criterion at (θ, β): Laplace for `n_agq ≤ 1`, adaptive Gauss–Hermite
    /// otherwise.
    pub fn objective_theta_beta(
        &mut self,
        pars: &[f64],
        rule: Option<&GaussHermite>,
    ) -> Result<f64> {
        let nth = self.re.n_theta();
        if pars.len() != nth + self.spec.p {
            return invalid("parameter vector has the wrong length");
        }
        self.set_theta(&pars[..nth])?;
        self.beta.copy_from_slice(&pars[nth..]);
        self.fixed_stale = true;
        self.run_pirls(Mode::UOnly)?;
        Ok(match rule {
            Some(r) => self.agq(r),
            None => self.laplace(),
        })
    }

    fn record_failure(&mut self, e: &MixedError) {
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
        let nth = self.re.n_theta();
        let p = self.spec.p;
        let single_scalar =
            self.re.blocks.len() == 1 && self.spec.terms.len() == 1 && self.spec.terms[0].q == 1;
        if opts.n_agq > 1 && !single_scalar {
            return invalid(
                "nAGQ > 1 is only available for models with a single, scalar random-effects term",
            );
        }
        let rule = if opts.n_agq > 1 {
            Some(GaussHermite::new(opts.n_agq)?)
        } else {
            None
        };
        let mut theta0 = match start_theta {
            Some(t) if t.len() != nth => {
                return invalid(format!(
                    "'start' has {} values for theta, the model has {nth}",
                    t.len()
                ))
            }
            Some(t) => t.to_vec(),
            None => self.re.default_theta(),
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
        self.objective_theta(&theta0)
            .map_err(|e| MixedError::Pirls(format!("at the starting values: {e}")))?;
        self.eta_start.copy_from_slice(&self.eta);
        let mut rhobeg = opts.optim.rhobeg;
        let mut from_moments = false;
        if start_theta.is_none() {
            if let Some((theta, radius)) = self.moment_start(rhobeg) {
                theta0 = theta;
                rhobeg = radius;
                from_moments = true;
            }
        }

        let mut out = GlmmFit::default();
        let mut theta = theta0.clone();
        if opts.init_step || opts.n_agq == 0 {
            let mut stage_opts = opts.optim.clone();
            stage_opts.rhobeg = rhobeg;
            stage_opts.rhoend = stage_opts.rhoend.min(rhobeg);
            stage_opts.calc_derivs = false;
            if opts.n_agq > 0 {
                stage_opts.boundary_tol = 0.0;
            }
            let lower = self.re.lower_bounds();
            let mut obj = Stage1 {
                model: &mut *self,
                progress: &mut *progress,
            };
            let mut summary =
                run_stage(&mut obj, &theta0, &lower, &stage_opts, opts.optimizers[0])?;
            if from_moments {
                summary = self.check_lme4_start(summary, opts, &stage_opts, progress)?;
            }
            theta = summary.theta.clone();
            normalize_theta_signs(&self.re, &mut theta);
            out.stage1 = Some(summary);
        }
        let f1 = self
            .objective_theta(&theta)
            .map_err(|e| MixedError::Pirls(format!("after the first stage: {e}")))?;
        if opts.n_agq == 0 {
            out.deviance = f1;
        } else {
            let mut pars = theta.clone();
            pars.extend_from_slice(start_beta.unwrap_or(&self.beta));
            self.eta_start.copy_from_slice(&self.eta);
            let (mut pars, mut summary) =
                self.stage2(opts, rule.as_ref(), pars, &mut out, progress)?;
            if let Some(restart) = start::singular_face_restart(&self.re, &pars[..nth]) {
                (pars, summary) = self.restart_stage2(
                    opts,
                    rule.as_ref(),
                    (pars, summary),
                    restart,
                    &mut out,
                    progress,
                )?;
            }
            theta = pars[..nth].to_vec();
            out.deviance = summary.fmin;
            out.stage2 = Some(summary);
        }
        self.finish(theta, &mut out)?;
        Ok(out)
    }

    /// Stage 2 again from `restart` (θ) and the fixed effects found, after a first stage 2 that
    /// ended with a vector-valued term singular: that optimum lies on a face of the boundary
    /// where the Laplace deviance does not depend on all of the term's parameters, and another
    /// face can hold a lower minimum (as for an LMM: [`start::singular_face_restart`]). The
    /// better optimum is kept, with its derivatives and messages; the evaluations of both count.
    fn restart_stage2(
        &mut self,
        opts: &GlmmOptions,
        rule: Option<&GaussHermite>,
        first: (Vec<f64>, OptSummary),
        restart: Vec<f64>,
        out: &mut GlmmFit,
        progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
    ) -> Result<(Vec<f64>, OptSummary)> {
        let nth = self.re.n_theta();
        let (first_pars, mut first_summary) = first;
        if self.objective_theta(&restart).is_err() {
            // No usable modes at the restart point: the first optimum stands.
            self.objective_theta_beta(&first_pars, rule)?;
            return Ok((first_pars, first_summary));
        }
        self.eta_start.copy_from_slice(&self.eta);
        let mut center = restart;
        center.extend_from_slice(&first_pars[nth..]);
        let mut second_out = GlmmFit::default();
        let second = self.stage2(opts, rule, center, &mut second_out, progress);
        let (pars, mut summary) = match second {
            Ok(r) if r.1.fmin < first_summary.fmin - 1e-8 * first_summary.fmin.abs().max(1.0) => r,
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

    /// Stage 1 from lme4's start as well, so that a fit never ends worse than glmer's would: the
    /// moment start can lead BOBYQA into another basin, or to a flat stretch where it stops
    /// early. A coarse run from lme4's start (θ = identity, radius `rhobeg`, ending at radius
    /// [`LME4_START_COARSE_RHOEND`]) is polished to full precision only when it ends lower
    /// than the fit from the moment start; otherwise it costs only its coarse evaluations.
    fn check_lme4_start(
        &mut self,
        best: OptSummary,
        opts: &GlmmOptions,
        stage_opts: &OptimOptions,
        progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
    ) -> Result<OptSummary> {
        let lower = self.re.lower_bounds();
        let start = self.re.default_theta();
        let mut coarse = stage_opts.clone();
        coarse.rhobeg = opts.optim.rhobeg;
        coarse.rhoend = LME4_START_COARSE_RHOEND.min(coarse.rhobeg);
        coarse.boundary_tol = 0.0;
        let mut obj = Stage1 {
            model: &mut *self,
            progress: &mut *progress,
        };
        let alt = run_stage(&mut obj, &start, &lower, &coarse, opts.optimizers[0])?;
        let mut out = best;
        out.feval += alt.feval;
        if alt.fmin < out.fmin - LME4_START_MARGIN {
            let mut polish = stage_opts.clone();
            polish.rhobeg = (10.0 * coarse.rhoend).min(opts.optim.rhobeg);
            polish.rhoend = stage_opts.rhoend.min(polish.rhobeg);
            let polished = run_stage(&mut obj, &alt.theta, &lower, &polish, opts.optimizers[0])?;
            let feval = out.feval + polished.feval;
            if polished.fmin < out.fmin {
                out = polished;
                out.start = start;
            }
            out.feval = feval;
        }
        Ok(out)
    }

    /// A moment estimate of θ ([`crate::start`]) from the working response and weights of the
    /// PIRLS just run at lme4's start (one PQL-like step; the working residuals have variance
    /// `1 / w` for families without a dispersion), with the trust-region radius for it. The
    /// model is left at the new start, whose modes become the common starting point; `None`
    /// (and the model unchanged in what matters) when the estimate or PIRLS there fails.
    fn moment_start(&mut self, rhobeg: f64) -> Option<(Vec<f64>, f64)> {
        let known = (!self.family.has_scale()).then_some(1.0);
        let (theta, radius) = start::moment_start(
            &self.joint_cp,
            &self.re,
            rhobeg,
            GLMM_START_RADIUS_FACTOR,
            known,
        )?;
        if self.objective_theta(&theta).is_err() {
            // PIRLS starts again from `eta_start`, still the linear predictor at lme4's start.
            self.warm = false;
            return None;
        }
        self.eta_start.copy_from_slice(&self.eta);
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
        let nth = self.re.n_theta();
        let p = self.spec.p;
        let vc = self.joint_chol.vcov_unscaled(&self.joint_cp);
        let mut metric = Stage2Metric::from_vcov(&vc, nth, p);
        let probes = self.calibrate(&center, rule, &mut metric);
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
        let mut pars = summary.theta.clone();
        let mut f0 = self.objective_theta_beta(&pars, rule)?;
        if opts.optim.calc_derivs {
            let lower = self.re.lower_bounds();
            let singular =
                (0..nth).any(|k| lower[k].is_finite() && pars[k] < opts.optim.singular_tol);
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
                    &Stage2Metric::identity(nth, p),
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
            let (stat, component) = optim::gradient_statistic(&derivs.gradient, &derivs.hessian);
            if let Some(problem) = &derivs.problem {
                out.messages
                    .push(format!("convergence could not be checked: {problem}"));
            } else if !singular && (stat.is_nan() || stat >= opts.optim.grad_tol) {
                out.messages.push(format!(
                    "Model failed to converge with max|grad| = {stat:.6} (tol = {}, component {})",
                    opts.optim.grad_tol,
                    component + 1
                ));
            }
            out.hessian_problem = derivs.problem;
            out.gradient = derivs.gradient;
            out.hessian = derivs.hessian;
        }
        summary.theta = pars.clone();
        summary.fmin = f0;
        Ok((pars, summary))
    }

    /// Calibrates `metric` at `center` so that a unit step in any coordinate raises the
    /// deviance by about one, as a unit step of the whitened β does for families without a
    /// dispersion. Each θ element gets the scale `√(2 / H_kk)`, with `H_kk` the curvature of the
    /// stage-2 criterion along θ_k alone (a central second difference, or a forward one next to
    /// a bound): the standard error that curvature implies. Without it a trust region that
    /// suits β is far too large for θ or the other way round (VerbAgg: a step of 0.1 in θ costs
    /// 2 in deviance, in whitened β 0.01), and BOBYQA spends most of its evaluations rescaling.
    /// β's covariance is unscaled, so for families with a dispersion φ a whitened unit step
    /// raises the deviance by about 1/φ: one probe along the last fixed effect (whose column
    /// of `M` has a single entry) measures that factor for all of them. Returns the number of
    /// evaluations used; a failed probe leaves its scale as it was.
    fn calibrate(
        &mut self,
        center: &[f64],
        rule: Option<&GaussHermite>,
        metric: &mut Stage2Metric,
    ) -> usize {
        let nth = self.re.n_theta();
        let lower = self.re.lower_bounds();
        let mut evals = 1;
        let Ok(f0) = self.objective_theta_beta(center, rule) else {
            return evals;
        };
        let mut x = center.to_vec();
        for k in 0..nth {
            let h = THETA_PROBE_STEP * center[k].abs().max(0.1);
            let (a, b) = if center[k] - h >= lower[k] {
                (-h, h)
            } else {
                (h, 2.0 * h)
            };
            evals += 2;
            let (Ok(fa), Ok(fb)) = (
                self.probe(&mut x, k, center[k] + a, rule),
                self.probe(&mut x, k, center[k] + b, rule),
            ) else {
                continue;
            };
            // Second difference through (0, f0), (a, fa), (b, fb) for a = −h or h, b = h or 2h.
            let curvature = if a < 0.0 {
                (fa - 2.0 * f0 + fb) / (h * h)
            } else {
                (fb - 2.0 * fa + f0) / (h * h)
            };
            let scale = (2.0 / curvature).sqrt();
            if scale.is_finite() && scale > 0.0 {
                metric.theta_scale[k] = scale.clamp(1e-3, 1.0);
            }
        }
        if let Some(j) = (0..metric.p).last() {
            let step = BETA_PROBE_STEP * metric.m[j * metric.p + j];
            let k = nth + j;
            evals += 2;
            if let (Ok(fp), Ok(fm)) = (
                self.probe(&mut x, k, center[k] + step, rule),
                self.probe(&mut x, k, center[k] - step, rule),
            ) {
                let h = BETA_PROBE_STEP;
                let factor = (2.0 * h * h / (fp - 2.0 * f0 + fm)).sqrt();
                if factor.is_finite() && factor > 0.0 {
                    let factor = factor.clamp(1e-3, 1e3);
                    metric.m.iter_mut().for_each(|v| *v *= factor);
                }
            }
        }
        evals
    }

    /// The stage-2 criterion at `x` with element `k` set to `value` (restored afterwards).
    fn probe(
        &mut self,
        x: &mut [f64],
        k: usize,
        value: f64,
        rule: Option<&GaussHermite>,
    ) -> Result<f64> {
        let saved = x[k];
        x[k] = value;
        let f = self.objective_theta_beta(x, rule);
        x[k] = saved;
        f
    }

    /// Minimizes the stage-2 criterion over `(θ, β) = center + (y_θ, M y_β)` from `y = 0` (`M` is
    /// `metric`); returns the summary with the optimum in the original parameters.
    fn search(
        &mut self,
        rule: Option<&GaussHermite>,
        center: &[f64],
        metric: &Stage2Metric,
        opts: &OptimOptions,
        optimizer: StageOptimizer,
        progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
    ) -> Result<OptSummary> {
        let nth = self.re.n_theta();
        let lower_theta = self.re.lower_bounds();
        let lower: Vec<f64> = (0..center.len())
            .map(|k| {
                if k < nth {
                    (lower_theta[k] - center[k]) / metric.theta_scale[k]
                } else {
                    f64::NEG_INFINITY
                }
            })
            .collect();
        let zero = vec![0.0; center.len()];
        let mut summary = {
            let mut obj = Stage2 {
                model: &mut *self,
                rule,
                center,
                metric,
                progress,
                x: zero.clone(),
            };
            run_stage(&mut obj, &zero, &lower, opts, optimizer)?
        };
        let mut pars = vec![0.0; center.len()];
        metric.apply(center, &summary.theta, &mut pars);
        normalize_theta_signs(&self.re, &mut pars[..nth]);
        summary.theta = pars;
        summary.start = center.to_vec();
        summary.lower = lower_theta;
        Ok(summary)
    }

    /// Leaves the model at the estimates and reads off everything reported.
    fn finish(&mut self, theta: Vec<f64>, out: &mut GlmmFit) -> Result<()> {
        let n = self.spec.n;
        self.working_values(Mode::Joint, false);
        self.refactor_joint()?;
        let u_blocks = linpred::split_blocks(&self.re, &self.joint_cp.layout, &self.u1, &self.u2);
        let b_blocks = linpred::block_effects(&self.re, &self.lambda, &u_blocks);
        out.u = linpred::term_values(&self.spec, &self.re, &u_blocks).concat();
        out.b = linpred::term_values(&self.spec, &self.re, &b_blocks);
        out.theta = theta;
        out.beta = self.beta.clone();
        out.eta = self.eta.clone();
        out.mu = self.mu.clone();
        out.ldl2 = self.ldl2();
        out.ldrx2 = self.joint_chol.logdet_rx(&self.joint_cp);
        out.ussq = self.ussq();
        out.drsum = self.deviance_residual_sum();
        out.wrss = (0..n)
            .map(|i| {
                let r = self.spec.y[i] - self.mu[i];
                self.prior_w[i] * r * r / self.family.variance(self.mu[i])
            })
            .sum();
        out.vcov_unscaled = self.joint_chol.vcov_unscaled(&self.joint_cp);
        out.pirls_failures = self.failures;
        out.pirls_iterations = self.iterations;
        Ok(())
    }

    /// Finite-difference gradient and Hessian of the stage-2 criterion at `pars` (where the
    /// model is: its modes start every evaluation, so that each value depends only on its
    /// point), taken in the whitened coordinates of `metric` and mapped back.
    ///
    /// A fixed step in the original parameters suits no model: a coefficient of a covariate
    /// on a large scale moves the deviance by hundreds over 1e-4, a near-collinear pair of
    /// columns leaves an ill-conditioned Hessian whose smallest eigenvalue drowns in the
    /// differencing error (a slightly negative eigenvalue, so no usable covariance). In the
    /// coordinates `y` with `(θ, β) = pars + T y` (`T` = diag(θ scales) ⊕ `M`, about one
    /// standard error per unit, uncorrelated), the Hessian is near `2 I`, one step fits every
    /// coordinate, and `H = T⁻ᵀ H_y T⁻¹` is then exact linear algebra. Central differences at
    /// steps `h` and `2h` are combined by Richardson extrapolation (error `O(h⁴)`), which lets
    /// `h` be large enough that PIRLS's remaining error is negligible against `h²`.
    ///
    /// A point where PIRLS fails is tried again from a cold start; if some point still fails
    /// the whole stencil is repeated with a smaller step. Never a NaN entry: when no step
    /// works the result carries `problem` and the caller reports it.
    fn derivatives(
        &mut self,
        pars: &[f64],
        f0: f64,
        rule: Option<&GaussHermite>,
        metric: &Stage2Metric,
    ) -> Derivatives {
        let k = pars.len();
        let start = WarmStart {
            u1: self.u1.clone(),
            u2: self.u2.clone(),
            warm: self.warm,
        };
        let saved_tol = self.step_tol;
        self.step_tol = FD_STEP_TOL;
        // The centre with the same accuracy as the points (an error δ in it would shift every
        // diagonal entry by −2δ/h²).
        let centre = self.evaluate_points(&start, &[pars.to_vec()], rule)[0];
        let f0 = if centre.is_finite() { centre } else { f0 };
        let zero = vec![0.0; k];
        let mut result = None;
        let mut failed = 0;
        for attempt in 0..=FD_RETRIES {
            let h = FD_WHITENED_STEP / FD_RETRY_FACTOR.powi(attempt as i32);
            let mut points = optim::fd_points(&zero, h);
            for y in points.iter_mut() {
                let mut x = vec![0.0; k];
                metric.apply(pars, y, &mut x);
                *y = x;
            }
            let values = self.evaluate_points(&start, &points, rule);
            failed = values.iter().filter(|v| !v.is_finite()).count();
            if failed == 0 {
                result = Some(optim::fd_derivatives_from(&values, k, f0, h));
                break;
            }
        }
        self.step_tol = saved_tol;
        // Leave the model at the optimum.
        self.restore(&start);
        let _ = self.objective_theta_beta(pars, rule);
        match result {
            Some((gy, hy)) => {
                let (gradient, hessian) = metric.to_original(&gy, &hy);
                Derivatives {
                    gradient,
                    hessian,
                    problem: None,
                }
            }
            None => Derivatives {
                gradient: vec![f64::NAN; k],
                hessian: vec![f64::NAN; k * k],
                problem: Some(format!(
                    "the finite-difference Hessian of the deviance could not be computed: PIRLS \
                     failed at {failed} of the difference points even after {FD_RETRIES} \
                     reductions of the step{}",
                    self.last_error
                        .as_deref()
                        .map_or(String::new(), |e| format!(" ({e})"))
                )),
            },
        }
    }

    /// The stage-2 criterion at each of `points` (NaN where PIRLS fails), each PIRLS run
    /// starting from `start`. With more than one thread the points are shared out over copies
    /// of the model, which give the same values as `self` would.
    fn evaluate_points(
        &mut self,
        start: &WarmStart,
        points: &[Vec<f64>],
        rule: Option<&GaussHermite>,
    ) -> Vec<f64> {
        let threads = match self.par {
            Par::Seq => 1,
            Par::Rayon(k) => k.get(),
        };
        // With a PIRLS trace (which prints through R) everything stays on this thread.
        if threads <= 1 || points.len() <= threads || self.pirls.trace.is_some() {
            return self.evaluate_from(start, points, rule);
        }
        let chunk = points.len().div_ceil(threads);
        let step_tol = self.step_tol;
        let batches: Vec<&[Vec<f64>]> = points.chunks(chunk).collect();
        let (first, rest) = batches
            .split_first()
            .map_or((&[][..], &[][..]), |(f, r)| (*f, r));
        let spec = self.spec.clone();
        let family = self.family;
        let n_trials = self.n_trials.clone();
        let eta_start = self.eta_start.clone();
        let pirls = self.pirls;
        // This thread evaluates the first batch on `self`; each other batch gets a copy of
        // the model on a thread of its own (scoped: the copies borrow the data).
        let (mine, others) = std::thread::scope(|scope| {
            let handles: Vec<_> = rest
                .iter()
                .map(|batch| {
                    let (spec, n_trials, eta_start) =
                        (spec.clone(), n_trials.clone(), eta_start.clone());
                    scope.spawn(move || {
                        let copy = GeneralizedLinearMixedModel::new(
                            spec,
                            family,
                            n_trials,
                            eta_start,
                            pirls,
                            Par::Seq,
                        );
                        match copy {
                            Ok(mut m) => {
                                m.step_tol = step_tol;
                                let v = m.evaluate_from(start, batch, rule);
                                (v, m.iterations, m.failures, m.last_error)
                            }
                            Err(e) => (
                                vec![f64::NAN; batch.len()],
                                0,
                                batch.len(),
                                Some(e.to_string()),
                            ),
                        }
                    })
                })
                .collect();
            let mine = self.evaluate_from(start, first, rule);
            let others: Vec<_> = handles
                .into_iter()
                .zip(rest)
                .map(|(h, batch)| {
                    h.join().unwrap_or_else(|_| {
                        (
                            vec![f64::NAN; batch.len()],
                            0,
                            batch.len(),
                            Some("a finite-difference evaluation failed".to_string()),
                        )
                    })
                })
                .collect();
            (mine, others)
        });
        let mut values = mine;
        for (v, iterations, failures, last_error) in others {
            values.extend(v);
            self.iterations += iterations;
            self.failures += failures;
            if last_error.is_some() {
                self.last_error = last_error;
            }
        }
        values
    }

    /// The stage-2 criterion at each of `points`, every PIRLS run starting from `start`; a run
    /// that fails from there is tried once more from `eta_start` (NaN if that fails too).
    fn evaluate_from(
        &mut self,
        start: &WarmStart,
        points: &[Vec<f64>],
        rule: Option<&GaussHermite>,
    ) -> Vec<f64> {
        points
            .iter()
            .map(|x| {
                self.restore(start);
                match self.objective_theta_beta(x, rule) {
                    Ok(v) => v,
                    Err(e) => {
                        self.record_failure(&e);
                        self.warm = false;
                        match self.objective_theta_beta(x, rule) {
                            Ok(v) => v,
                            Err(e) => {
                                self.record_failure(&e);
                                f64::NAN
                            }
                        }
                    }
                }
            })
            .collect()
    }

    fn restore(&mut self, start: &WarmStart) {
        self.u1.copy_from_slice(&start.u1);
        self.u2.copy_from_slice(&start.u2);
        self.warm = start.warm;
    }

    /// The last PIRLS failure seen during the optimization, if any.
    pub fn last_pirls_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
}

fn halve(x: &mut [f64], old: &[f64]) {
    for (a, b) in x.iter_mut().zip(old) {
        *a = 0.5 * (*a + b);
    }
}

/// Makes every diagonal element of each relative covariance factor non-negative by negating
/// the whole column (which leaves `T T'` unchanged).
pub fn normalize_theta_signs(re: &ReStructure, theta: &mut [f64]) {
    let cols: Vec<(usize, usize)> = re
        .theta_pos
        .iter()
        .enumerate()
        .filter(|(_, p)| p.row == p.col)
        .map(|(k, p)| (k, p.col))
        .collect();
    for (k, col) in cols {
        if theta[k] < 0.0 {
            let block = re.theta_pos[k].block;
            for (i, p) in re.theta_pos.iter().enumerate() {
                if p.block == block && p.col == col {
                    theta[i] = -theta[i];
                }
            }
        }
    }
}

fn run_stage<O: Objective>(
    obj: &mut O,
    start: &[f64],
    lower: &[f64],
    opts: &OptimOptions,
    optimizer: StageOptimizer,
) -> Result<OptSummary> {
    match optimizer {
        StageOptimizer::Bobyqa => optim::minimize(obj, start, lower, opts),
        StageOptimizer::NelderMead => crate::nelder_mead::minimize(obj, start, lower, opts),
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

struct Stage2<'m, 'a, 'r> {
    model: &'m mut GeneralizedLinearMixedModel<'a>,
    rule: Option<&'r GaussHermite>,
    center: &'r [f64],
    metric: &'r Stage2Metric,
    progress: &'m mut dyn FnMut(usize, &[f64], f64) -> Stop,
    x: Vec<f64>,
}

/// The coordinates stage 2 searches in: θ_k scaled by `theta_scale[k]` (see
/// `calibrate`), β through a lower-triangular `M` with `M M'` = the stage-1 covariance of
/// β̂ (unscaled), so that `β = β₀ + M y` has uncorrelated, unit-variance coordinates. Dividing by
/// the standard errors alone leaves correlated fixed effects (an intercept against the levels of
/// a factor) as a long, thin valley in which BOBYQA's quadratic model, which starts with no
/// cross terms, needs many evaluations.
struct Stage2Metric {
    /// Scale of each θ element.
    theta_scale: Vec<f64>,
    p: usize,
    /// `M`, `p × p` column-major, lower triangular.
    m: Vec<f64>,
}

impl Stage2Metric {
    /// `M = I`, θ unscaled.
    fn identity(nth: usize, p: usize) -> Self {
        let mut m = vec![0.0; p * p];
        for k in 0..p {
            m[k * p + k] = 1.0;
        }
        Self {
            theta_scale: vec![1.0; nth],
            p,
            m,
        }
    }

    /// The Cholesky factor of `vcov` (`p × p`), or the standard errors on the diagonal when the
    /// factorization fails, or `I` where even those are not positive.
    fn from_vcov(vcov: &[f64], nth: usize, p: usize) -> Self {
        let mut m = vcov.to_vec();
        if crate::small::chol_lower(&mut m, p).is_some() && m.iter().all(|v| v.is_finite()) {
            return Self {
                theta_scale: vec![1.0; nth],
                p,
                m,
            };
        }
        let mut metric = Self::identity(nth, p);
        for k in 0..p {
            let s = vcov[k * p + k].sqrt();
            if s.is_finite() && s > 0.0 {
                metric.m[k * p + k] = s;
            }
        }
        metric
    }

    /// Gradient and Hessian (column-major) over `x` from those over `y` (see [`Self::apply`]):
    /// with `T = dx/dy`, `g = T⁻ᵀ g_y` and `H = T⁻ᵀ H_y T⁻¹` (symmetrized).
    fn to_original(&self, gy: &[f64], hy: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let k = gy.len();
        let nth = k - self.p;
        // T⁻¹, column-major: 1/scale for θ, M⁻¹ for β.
        let mut tinv = vec![0.0; k * k];
        for i in 0..nth {
            tinv[i * k + i] = 1.0 / self.theta_scale[i];
        }
        for j in 0..self.p {
            let mut e = vec![0.0; self.p];
            e[j] = 1.0;
            crate::small::solve_lower(&self.m, self.p, &mut e);
            for (i, v) in e.iter().enumerate() {
                tinv[(nth + j) * k + nth + i] = *v;
            }
        }
        let gradient = (0..k)
            .map(|a| (0..k).map(|r| tinv[a * k + r] * gy[r]).sum())
            .collect();
        // A = H_y T⁻¹, then H = T⁻ᵀ A.
        let mut a = vec![0.0; k * k];
        for b in 0..k {
            for r in 0..k {
                a[b * k + r] = (0..k).map(|s| hy[s * k + r] * tinv[b * k + s]).sum();
            }
        }
        let mut hess = vec![0.0; k * k];
        for b in 0..k {
            for c in 0..k {
                hess[b * k + c] = (0..k).map(|r| tinv[c * k + r] * a[b * k + r]).sum();
            }
        }
        for b in 0..k {
            for c in 0..b {
                let v = 0.5 * (hess[b * k + c] + hess[c * k + b]);
                hess[b * k + c] = v;
                hess[c * k + b] = v;
            }
        }
        (gradient, hess)
    }

    /// `x = center + (y_θ, M y_β)`; the last `p` elements are β.
    fn apply(&self, center: &[f64], y: &[f64], x: &mut [f64]) {
        let nth = center.len() - self.p;
        for k in 0..nth {
            x[k] = center[k] + self.theta_scale[k] * y[k];
        }
        let (yb, xb) = (&y[nth..], &mut x[nth..]);
        xb.copy_from_slice(&center[nth..]);
        for (j, &v) in yb.iter().enumerate() {
            let col = &self.m[j * self.p..(j + 1) * self.p];
            for i in j..self.p {
                xb[i] += col[i] * v;
            }
        }
    }
}

impl Objective for Stage2<'_, '_, '_> {
    fn eval(&mut self, y: &[f64]) -> f64 {
        let mut x = std::mem::take(&mut self.x);
        self.metric.apply(self.center, y, &mut x);
        let v = match self.model.objective_theta_beta(&x, self.rule) {
            Ok(v) => v,
            Err(e) => {
                self.model.record_failure(&e);
                f64::INFINITY
            }
        };
        self.x = x;
        v
    }

    fn after_eval(&mut self, count: usize, _y: &[f64], value: f64) -> Stop {
        let x = self.x.clone();
        (self.progress)(count, &x, value)
    }
}
