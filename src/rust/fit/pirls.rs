//! Penalized iteratively reweighted least squares (PIRLS): the conditional modes of a GLMM.
//!
//! For θ (and, in the second stage, β) the conditional modes of the spherical random effects `u`
//! maximize the penalized likelihood; PIRLS finds them: with working weights
//! `w = a (dμ/dη)²/V(μ)` (prior weights `a`) and working response
//! `z = η − offset + (y − μ)/(dμ/dη)` from the [`Response`], each step solves the penalized
//! weighted least-squares problem of the linear mixed model with the blocked Cholesky factor
//! (the cross-products are refilled for the new weights; their pattern was built once), with step
//! halving whenever the penalized deviance `Σ d(y, μ) + ‖u‖²` grows. For a non-canonical link
//! the steps are Newton steps (observed information as weights). Every run starts from the
//! previous run's modes when they give a valid mean (a warm start), otherwise from a fixed
//! linear predictor (lme4's `lp0`).
//!
//! With random effects in the zero-inflation logit `ρ` as well (glmmTMB's `ziformula = ~ … + (…|g)`)
//! each observation has two linear predictors: the step is the Newton step of the penalized
//! log-likelihood in all the random effects, with each observation's 2 × 2 information
//! `−∂²ℓ/∂(η, ρ)²` in the cross-products ([`PairedWorkingValues`]), and `πᵢ` follows the random
//! effects at every evaluation ([`Response::set_zero_inflation_random`]).
//!
//! With the square-root link (`μ = η²` for any η) every positive count's deviance has a barrier
//! at η = 0, and PIRLS stays in one of the regions these barriers bound (`sqrt_basin`): for the
//! random effects alone, the region of `u = 0`, where it also starts when it has no warm start.
use super::response::{PairedRowDerivatives, Response, ResponseFamily, WeightChoice};
use super::sqrt_basin::{BarrierLines, RowDeviance, SqrtBasin};
use crate::blocks::CrossProducts;
use crate::chol::BlockedCholesky;
use crate::error::{MixedError, Result};
use crate::family::Link;
use crate::linalg::assemble::{self, PairedWorkingValues, RefillPlan};
use crate::linpred;
use crate::spec::{ModelSpec, Predictor};
use crate::terms::ReStructure;
use crate::trailing::TrailingChoice;
use faer::Par;

/// Largest estimated relative error of any fixed or spherical random effect when PIRLS stops.
pub(super) const PIRLS_STEP_TOL: f64 = 1e-9;
/// A run of Newton steps counts as converging quadratically when the ratio of the last two
/// steps is below this fraction of the ratio of the two before ([`Pirls::iterate`]).
const QUADRATIC_RATIO: f64 = 0.5;
/// Relative rounding of the penalized deviance (a sum over the rows) that a PIRLS step may
/// raise it by without being halved.
const PDEV_ROUNDING: f64 = 1e-12;
/// Relative PIRLS steps below this that no longer shrink geometrically are rounding noise.
const PIRLS_NOISE_STEP: f64 = 1e-10;
/// A pair of consecutive Newton steps `(s₁, s₂)` measures the constant `C = s₂ / s₁²` of
/// quadratic convergence only where `s₁` is below this (the modes are near) ...
const QUADRATIC_SAMPLE_FIRST: f64 = 1e-2;
/// ... and `s₂` above this, far above the rounding of the steps (~1e-15).
const QUADRATIC_SAMPLE_SECOND: f64 = 1e-11;
/// A Newton step `s` whose predicted remaining error `C s²`, times this margin, is below the
/// tolerance ends PIRLS without the confirming iteration ([`Pirls::iterate`]) ...
const QUADRATIC_MARGIN: f64 = 10.0;
/// ... where `s` is below this.
const QUADRATIC_LARGEST_STEP: f64 = 1e-3;
/// Settled PIRLS iterations with an indefinite observed information after which the modes
/// count as undetermined (with random effects in both predictors).
const FLAT_INDEFINITE_ITERATIONS: usize = 5;
/// Largest number of doublings of a step taken with stand-in weights ([`Pirls::extend_step`]).
const MAX_STEP_DOUBLINGS: usize = 10;

/// What a PIRLS error at the edge of the family's range suggests. A model whose unrestricted
/// optimum has means outside the range (a Poisson model with the identity link whose linear
/// mean falls below 0 for some rows) has its steps shortened towards that edge until the
/// weights stop being positive definite or the deviance stays infinite; `glm()` stops there
/// with "no valid set of coefficients", glmer with a NaN.
macro_rules! at_the_edge {
    () => {
        "the optimum may lie where some fitted mean is at that edge, which the family's \
         likelihood does not allow; try another link or starting values"
    };
}

/// The error of a PIRLS run whose steps from a cold start each left the family's range and were
/// shortened ([`Pirls::damp_cold_step`]) until the factorization failed.
const SHORTENED_STEPS_AT_EDGE: &str = concat!(
    "PIRLS found no modes inside the family's range: every step left it (a mean outside what \
     the family allows, such as a negative mean with the identity link) and was shortened, \
     and the means approached its edge; ",
    at_the_edge!()
);
/// The largest relative PIRLS step after which a non-canonical link of lme4's families takes
/// the observed information where it is negative (see [`Pirls::guard_negative_information`]).
const NEGATIVE_INFORMATION_STEP: f64 = 0.1;
/// Observations from which the pass over them (η, μ, deviance) is split over threads.
const PARALLEL_ROWS: usize = 1 << 17;

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

/// Which unknowns PIRLS solves for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// β and u (stage 1, `nAGQ = 0`).
    Joint,
    /// u only, β fixed (stage 2).
    UOnly,
}

/// The modes PIRLS starts from.
pub(super) struct WarmStart {
    u1: Vec<f64>,
    u2: Vec<f64>,
    warm: bool,
}

/// One pass over a range of observations: `η = offset + Xβ + Zb`, then μ, dμ/dη and (optionally)
/// the deviance residuals from the response, each observation computed as in a single pass over
/// all of them.
struct RowPass<'p, 'a> {
    spec: &'p ModelSpec<'a>,
    re: &'p ReStructure,
    effects: &'p [Vec<f64>],
    response: &'p Response<'a>,
    deviance: bool,
}

/// The rows `first..first + eta.len()` of the pass's inputs (`fixed`, `offset + Xβ`) and
/// outputs (with random effects in the zero-inflation logit, also the rows' derivatives).
struct RowChunk<'c> {
    first: usize,
    eta: &'c mut [f64],
    fixed: &'c [f64],
    mu: &'c mut [f64],
    mu_eta: &'c mut [f64],
    dev: &'c mut [f64],
    paired_derivs: Option<&'c mut [PairedRowDerivatives]>,
}

impl RowPass<'_, '_> {
    /// Fills the rows of `c`; false if some η or μ is invalid.
    fn run(&self, c: RowChunk<'_>) -> bool {
        c.eta.copy_from_slice(c.fixed);
        linpred::add_zb_rows(self.spec, self.re, self.effects, c.first, c.eta);
        match c.paired_derivs {
            Some(derivs) => self
                .response
                .evaluate_rows_paired(c.first, c.eta, c.mu, c.mu_eta, c.dev, derivs),
            None => {
                self.response
                    .evaluate_rows(c.first, c.eta, c.mu, c.mu_eta, c.dev, self.deviance)
            }
        }
    }
}

/// PIRLS and the state it works on (the predictor side, lme4's `merPredD`): the cross-products
/// and blocked Cholesky factors of the joint (β, u) and the u-only systems, Λ(θ), the current
/// (β, u) with η, μ and dμ/dη, and the scratch of the iterations. The data, the random-effects
/// structure and the [`Response`] are passed in by the model that owns them.
pub(super) struct Pirls {
    /// Cross-products of the joint system (`F = [X, z]`).
    pub(super) joint_cp: CrossProducts,
    pub(super) joint_chol: BlockedCholesky,
    /// Cross-products of the u-only system (`F = [z − Xβ]`).
    pub(super) u_cp: CrossProducts,
    pub(super) u_chol: BlockedCholesky,
    pub(super) lambda: Vec<Vec<f64>>,
    pub(super) opts: PirlsOptions,
    /// Current state.
    pub(super) beta: Vec<f64>,
    pub(super) u1: Vec<f64>,
    pub(super) u2: Vec<f64>,
    pub(super) eta: Vec<f64>,
    pub(super) mu: Vec<f64>,
    /// `dμ/dη` at the current η (computed with μ, which shares its exponential).
    mu_eta: Vec<f64>,
    /// `offset + Xβ` for the current β (valid unless `fixed_stale`).
    eta_fixed: Vec<f64>,
    /// `Xβ` alone for the current β (valid unless `fixed_stale`).
    xb: Vec<f64>,
    /// Whether β changed since `eta_fixed` and `xb` were formed.
    pub(super) fixed_stale: bool,
    /// (β, u₁, u₂) before the last PIRLS step (for step halving and the step size).
    old_beta: Vec<f64>,
    old_u1: Vec<f64>,
    old_u2: Vec<f64>,
    /// The rows' maps into the cross-products (both patterns) and the refill's scratch.
    refill_plan: RefillPlan,
    /// `log|L|²` at the modes of the last successful PIRLS run.
    ldl2_value: f64,
    /// Linear predictor every PIRLS run starts from (lme4's `lp0`).
    pub(super) eta_start: Vec<f64>,
    work_w: Vec<f64>,
    work_z: Vec<f64>,
    /// Whether the current (β, u) are the modes of a successful PIRLS run (a warm start).
    pub(super) warm: bool,
    /// `Σ d(y, μ)` at the current state (set with the penalized deviance).
    pub(super) drsum: f64,
    /// `b = Λu` per block, refilled with the linear predictor.
    effects: Vec<Vec<f64>>,
    /// The largest constant `C` of quadratic convergence (`s₂ ≈ C s₁²` for consecutive Newton
    /// steps) measured in this model's runs so far; `None` before a first measurement.
    quadratic_constant: Option<f64>,
    /// PIRLS iterations so far.
    pub(super) iterations: usize,
    /// Parallelism of the fit (the factor's kernels and the pass over the observations).
    pub(super) par: Par,
    /// PIRLS stops when the estimated relative error of the modes is below this.
    pub(super) step_tol: f64,
    /// Whether steps far from the modes take the expected information where the observed is
    /// negative (lme4's families with a non-canonical link; near the modes every step is a
    /// Newton step, negative observed information included).
    guard_negative_information: bool,
    /// Deviance residual of each observation (summed in order after a parallel pass).
    dev_terms: Vec<f64>,
    /// With random effects in the zero-inflation logit: the working values of the two
    /// predictors (used instead of `work_w` and `work_z`) and the random part `Z_z b_z` of the
    /// logit at the current modes.
    paired: Option<PairedWorkingValues>,
    zb_zi: Vec<f64>,
    /// With random effects in the zero-inflation logit ([`fused_paired_pass`]): each row's
    /// derivatives in both predictors, formed by the last pass over the rows (with the
    /// deviance terms, which share their pieces) for the next working values, and the
    /// family's extra parameters they were formed at; `paired_derivs_valid` says whether they
    /// are those of the current state. Empty where the pass does not form them.
    paired_derivs: Vec<PairedRowDerivatives>,
    paired_derivs_extra: Vec<f64>,
    paired_derivs_valid: bool,
    /// With the square-root link, the region of the penalized deviance PIRLS stays in
    /// ([`SqrtBasin`]); `None` for the other links.
    sqrt_basin: Option<SqrtBasin>,
    /// With the square-root link (random effects in the mean alone): the rows each coordinate
    /// of `u` reaches, for moves across barriers after PIRLS over `u`
    /// ([`BarrierLines::escape`]).
    sqrt_lines: Option<BarrierLines>,
}

/// Sweeps of moves across the square-root link's barriers after one PIRLS run at most (each
/// lowers the penalized deviance; a handful is the rule).
const MAX_SQRT_ESCAPES: usize = 100;

/// The family's deviance terms (`−2aℓ` for glmmTMB's families) as [`BarrierLines`] reads them.
struct FamilyRowDeviance<'r, 'a>(&'r Response<'a>);

impl RowDeviance for FamilyRowDeviance<'_, '_> {
    fn jet(&self, i: usize, eta: f64) -> Option<(f64, f64, f64)> {
        let mean = self.0.mean_and_mu_eta(eta);
        let jet = self.0.row_jet(i, eta, mean)?;
        Some((self.0.dev_resid(i, mean.0), -2.0 * jet.s, 2.0 * jet.w))
    }

    fn at_mean(&self, i: usize, mu: f64) -> f64 {
        self.0.dev_resid(i, mu)
    }
}

impl Pirls {
    /// Builds the cross-product patterns and factor storage; PIRLS starts from `eta_start`.
    pub(super) fn new(
        spec: &ModelSpec<'_>,
        re: &ReStructure,
        response: &Response<'_>,
        eta_start: Vec<f64>,
        opts: PirlsOptions,
        par: Par,
    ) -> Result<Self> {
        let n = spec.n;
        let joint_cp = assemble::pattern(spec, re, spec.p)?;
        let joint_chol = BlockedCholesky::new(&joint_cp, re, par, TrailingChoice::Auto)?;
        let u_cp = assemble::pattern(spec, re, 0)?;
        let u_chol = BlockedCholesky::new(&u_cp, re, par, TrailingChoice::Auto)?;
        let lambda = re.lambda_buffers();
        let effects = re
            .blocks
            .iter()
            .map(|b| vec![0.0; b.n_levels * b.q])
            .collect();
        let (mut joint_chol, mut u_chol) = (joint_chol, u_chol);
        // Working weights may be negative where a Newton step takes the observed information:
        // for the families with extra parameters, and for a non-canonical link (with the log
        // link, an inverse Gaussian row below half its mean, a Gaussian one above twice its
        // mean). The system for β and u is then positive definite as a rule, but the
        // response's own pivot (the penalized weighted residual sum of squares, which the step
        // does not need) need not be; refusing it had every such step fall back to the
        // expected information, which converges only linearly (rate 0.45 on a 2,000-row
        // inverse Gaussian fit, 386 PIRLS iterations instead of 102).
        let negative_weights = match response.family() {
            super::response::ResponseFamily::Extended(_) => true,
            super::response::ResponseFamily::Glm(f) => !f.is_canonical(),
        };
        joint_chol.response_pivot_optional = negative_weights;
        u_chol.response_pivot_optional = negative_weights;
        let guard_negative_information = matches!(
            response.family(),
            super::response::ResponseFamily::Glm(f) if !f.is_canonical()
        );
        let q0 = joint_cp.q0 * joint_cp.l0;
        let m = joint_cp.layout.m;
        let paired = re.has_zero_inflation_terms();
        if paired {
            match response.family() {
                super::response::ResponseFamily::Extended(fam) if fam.zi.is_some() => {
                    if fam.laplace != super::response::LaplaceWeights::Observed {
                        return Err(MixedError::InvalidInput(
                            "random effects in the zero-inflation model need the observed \
                             information in the Laplace approximation"
                                .into(),
                        ));
                    }
                }
                _ => {
                    return Err(MixedError::InvalidInput(
                        "random effects in the zero-inflation predictor need a zero-inflated \
                         family"
                            .into(),
                    ))
                }
            }
        }
        let mu = eta_start.iter().map(|&e| response.mean(e)).collect();
        let mu_eta = eta_start.iter().map(|&e| response.mu_eta(e)).collect();
        let refill_plan = RefillPlan::new(spec, re, &joint_cp)?;
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
            joint_cp,
            joint_chol,
            u_cp,
            u_chol,
            lambda,
            opts,
            warm: false,
            iterations: 0,
            quadratic_constant: None,
            guard_negative_information,
            drsum: f64::NAN,
            effects,
            par,
            step_tol: PIRLS_STEP_TOL,
            dev_terms: vec![0.0; n],
            paired: paired.then(|| PairedWorkingValues::new(n)),
            zb_zi: if paired { vec![0.0; n] } else { Vec::new() },
            paired_derivs: if paired && fused_paired_pass(response) {
                vec![PairedRowDerivatives::default(); n]
            } else {
                Vec::new()
            },
            paired_derivs_extra: Vec::new(),
            paired_derivs_valid: false,
            sqrt_basin: (response.family().link() == Link::Sqrt).then(|| SqrtBasin::new(spec.y)),
            sqrt_lines: (response.family().link() == Link::Sqrt
                && spec.has_rows()
                && spec.terms.iter().all(|t| t.predictor == Predictor::Mean))
            .then(|| BarrierLines::new(spec, re)),
        })
    }

    /// Λ(θ).
    pub(super) fn set_theta(&mut self, re: &ReStructure, theta: &[f64]) -> Result<()> {
        self.paired_derivs_valid = false;
        re.set_lambda(theta, &mut self.lambda)
    }

    /// Before a run at `theta` (unstructured terms: θ itself) whose `T`'s differ from the
    /// current Λ in the sign of some columns (a search that ended at a negative diagonal
    /// element, whose signs are then normalized: the same model), negates the modes of those
    /// columns, so that the run starts from the same `b = Λu` instead of its mirror image
    /// (which took several PIRLS iterations).
    pub(super) fn align_mode_signs(&mut self, re: &ReStructure, theta: &[f64]) {
        self.paired_derivs_valid = false;
        let layout = &self.joint_cp.layout;
        for (pos, &value) in re.theta_pos.iter().zip(theta) {
            let block = &re.blocks[pos.block];
            let q = block.q;
            if pos.row != pos.col || self.lambda[pos.block][pos.col * q + pos.col] * value >= 0.0 {
                continue;
            }
            let u = if pos.block == 0 {
                &mut self.u1[..]
            } else {
                let start = layout.node_offset[layout.block_node_base[pos.block]];
                &mut self.u2[start..start + block.n_levels * q]
            };
            for level in 0..block.n_levels {
                u[level * q + pos.col] = -u[level * q + pos.col];
            }
        }
    }

    /// η, μ and dμ/dη from the current (β, u); false if some μ or η is invalid for the family.
    /// `offset + Xβ` is kept between calls and formed again only after β changed (PIRLS over
    /// `u` alone evaluates η many times for one β).
    pub(super) fn update_eta(
        &mut self,
        spec: &ModelSpec<'_>,
        re: &ReStructure,
        response: &mut Response<'_>,
    ) -> bool {
        self.eta_pass(spec, re, response, false).0
    }

    /// `offset + Xβ` and `Xβ` for the current β.
    fn form_fixed(&mut self, spec: &ModelSpec<'_>, response: &Response<'_>) {
        let n = spec.n;
        self.eta_fixed.copy_from_slice(response.offset());
        linpred::add_xb(spec.x, n, &self.beta, &mut self.eta_fixed);
        self.xb.iter_mut().for_each(|v| *v = 0.0);
        linpred::add_xb(spec.x, n, &self.beta, &mut self.xb);
        self.fixed_stale = false;
    }

    /// [`Self::update_eta`], and with `deviance` also `Σ d(y, μ)` in the same pass over the
    /// observations (PIRLS needs both after every step; one pass reads y, η and μ once).
    fn eta_pass(
        &mut self,
        spec: &ModelSpec<'_>,
        re: &ReStructure,
        response: &mut Response<'_>,
        deviance: bool,
    ) -> (bool, f64) {
        self.paired_derivs_valid = false;
        if self.fixed_stale {
            self.form_fixed(spec, response);
        }
        linpred::block_effects_into(
            re,
            &self.joint_cp.layout,
            &self.lambda,
            &self.u1,
            &self.u2,
            &mut self.effects,
        );
        if self.paired.is_some() {
            self.zb_zi.fill(0.0);
            linpred::add_predictor_zb_rows(
                spec,
                re,
                &self.effects,
                Predictor::ZeroInflation,
                0,
                &mut self.zb_zi,
            );
            if !response.set_zero_inflation_random(&self.zb_zi) {
                return (false, 0.0);
            }
        }
        let response = &*response;
        let n = spec.n;
        let threads = match self.par {
            Par::Rayon(k) if n >= PARALLEL_ROWS => k.get(),
            _ => 1,
        };
        let rows = n.div_ceil(threads);
        let pass = RowPass {
            spec,
            re,
            effects: &self.effects,
            response,
            deviance,
        };
        // With random effects in the zero-inflation logit the pass also forms the rows'
        // derivatives for the next working values (no chunks, so `None`, otherwise).
        let paired = !self.paired_derivs.is_empty();
        let derivs = self
            .paired_derivs
            .chunks_mut(rows)
            .map(Some)
            .chain(std::iter::repeat_with(|| None));
        let pieces = self
            .eta
            .chunks_mut(rows)
            .zip(self.eta_fixed.chunks(rows))
            .zip(self.mu.chunks_mut(rows))
            .zip(self.mu_eta.chunks_mut(rows))
            .zip(self.dev_terms.chunks_mut(rows))
            .zip(derivs)
            .enumerate()
            .map(
                |(k, (((((eta, fixed), mu), mu_eta), dev), paired_derivs))| RowChunk {
                    first: k * rows,
                    eta,
                    fixed,
                    mu,
                    mu_eta,
                    dev,
                    paired_derivs,
                },
            );
        let ok = if threads > 1 {
            use rayon::prelude::*;
            pieces
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(|c| pass.run(c))
                .reduce(|| true, |a, b| a & b)
        } else {
            pieces.fold(true, |ok, c| ok & pass.run(c))
        };
        self.paired_derivs_valid = paired && ok;
        if self.paired_derivs_valid {
            self.paired_derivs_extra.clear();
            self.paired_derivs_extra
                .extend_from_slice(response.extra().values());
        }
        // With the square-root link a linear predictor outside the region PIRLS stays in is
        // invalid as well.
        let ok = ok
            && self
                .sqrt_basin
                .as_ref()
                .is_none_or(|b| b.contains(&self.eta));
        // Summed in observation order whatever the number of threads.
        let dev = if deviance {
            self.dev_terms.iter().fold(0.0, |acc, d| acc + d)
        } else {
            0.0
        };
        (ok, dev)
    }

    /// `dμ/dη` at the current η.
    pub(super) fn mu_eta(&self) -> &[f64] {
        &self.mu_eta
    }

    /// `‖u‖²`.
    pub(super) fn ussq(&self) -> f64 {
        self.u1.iter().chain(&self.u2).map(|v| v * v).sum()
    }

    /// Penalized deviance `Σ d(y, μ) + ‖u‖²` (∞ for an invalid μ); keeps `Σ d(y, μ)`.
    fn penalized_deviance(
        &mut self,
        spec: &ModelSpec<'_>,
        re: &ReStructure,
        response: &mut Response<'_>,
    ) -> f64 {
        let (ok, dev) = self.eta_pass(spec, re, response, true);
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
    /// [`Self::update_eta`]), from [`Response::working_values`]. For `Joint` the response is
    /// `z = η − offset + (y − μ)/(dμ/dη)`; for `UOnly` it is `z − Xβ` (with `Xβ` kept from
    /// [`Self::update_eta`], formed in this order so that the finite-difference derivatives see
    /// the same rounding as before).
    ///
    /// With a Newton `choice` (a non-canonical link, during the iterations) the weights are the observed
    /// information `−∂²ℓ/∂η²` and the response `η − offset + (∂ℓ/∂η)/w`, so that a step is a
    /// Newton step on the penalized deviance: Fisher scoring converges only linearly there, at
    /// a rate set by the gap between observed and expected information (a probit model took
    /// dozens of iterations per evaluation to reach the tight tolerance the Laplace criterion
    /// needs). Where the observed information is not positive (possible for, e.g., a Gamma
    /// identity link far from the data) that observation keeps its Fisher weight, which keeps
    /// the system positive definite; step halving guards the rest. The modes are the same
    /// either way; the Laplace determinant always uses the expected weights (as lme4 does).
    /// Returns whether the expected information stood in for a negative observed one (see
    /// [`Response::working_values`]).
    pub(super) fn working_values(
        &mut self,
        response: &Response<'_>,
        mode: Mode,
        choice: WeightChoice,
    ) -> bool {
        debug_assert!(mode == Mode::Joint || !self.fixed_stale);
        if let Some(paired) = self.paired.as_mut() {
            // The rows' derivatives from the last pass, where they are those of this state.
            let current = self.paired_derivs_valid
                && self.paired_derivs_extra.as_slice() == response.extra().values();
            response.paired_working_values(
                &self.eta,
                &self.mu,
                &self.mu_eta,
                &self.xb,
                &self.zb_zi,
                mode == Mode::UOnly,
                choice,
                current.then_some(&self.paired_derivs[..]),
                paired,
            );
            // The mean's own weights stand for the pair where one weight is asked for.
            self.work_w.copy_from_slice(&paired.w_mean);
            return false;
        }
        response.working_values(
            &self.eta,
            &self.mu,
            &self.mu_eta,
            &self.xb,
            mode == Mode::UOnly,
            choice,
            &mut self.work_w,
            &mut self.work_z,
        )
    }

    /// The working weights last formed.
    pub(super) fn weights(&self) -> &[f64] {
        &self.work_w
    }

    /// With random effects in the zero-inflation logit, the last formed `W[η, ρ]` and `W[ρ, ρ]`
    /// (the mean's `W[η, η]` is [`Self::weights`]); empty otherwise.
    pub(super) fn paired_weights(&self) -> [Vec<f64>; 2] {
        match &self.paired {
            Some(p) => [p.w_cross.clone(), p.w_zi.clone()],
            None => [Vec::new(), Vec::new()],
        }
    }

    /// Refills the joint cross-products (`F = [X, z]`) with the working values and refactors.
    pub(super) fn refactor_joint(&mut self, spec: &ModelSpec<'_>, re: &ReStructure) -> Result<()> {
        if let Some(paired) = &self.paired {
            self.refill_plan
                .refill_paired(&mut self.joint_cp, spec, re, spec.x, paired);
            return self.joint_chol.update(&self.joint_cp, &self.lambda);
        }
        self.refill_plan.refill(
            &mut self.joint_cp,
            spec,
            re,
            spec.x,
            &self.work_z,
            &self.work_w,
        );
        self.joint_chol.update(&self.joint_cp, &self.lambda)
    }

    /// Refills the cross-products for the current working values and refactors. For `UOnly` the
    /// response column is `z − Xβ`.
    fn refactor(&mut self, spec: &ModelSpec<'_>, re: &ReStructure, mode: Mode) -> Result<()> {
        match mode {
            Mode::Joint => self.refactor_joint(spec, re),
            Mode::UOnly => {
                match &self.paired {
                    Some(paired) => {
                        self.refill_plan
                            .refill_paired(&mut self.u_cp, spec, re, &[], paired)
                    }
                    None => self.refill_plan.refill(
                        &mut self.u_cp,
                        spec,
                        re,
                        &[],
                        &self.work_z,
                        &self.work_w,
                    ),
                }
                self.u_chol.update(&self.u_cp, &self.lambda)
            }
        }
    }

    /// Runs PIRLS from `eta_start` at the current θ (and β for `UOnly`); on success the factor
    /// of the mode (`u_chol` for `UOnly`, `joint_chol` for `Joint`) holds the weights at the
    /// modes.
    pub(super) fn run(
        &mut self,
        spec: &ModelSpec<'_>,
        re: &ReStructure,
        response: &mut Response<'_>,
        mode: Mode,
    ) -> Result<f64> {
        let result = self.iterate(spec, re, response, mode).and_then(|pdev| {
            self.factor_at_modes(spec, re, response, mode)
                .map(|()| pdev)
        });
        self.warm = result.is_ok();
        result
    }

    /// [`Self::run`] for `UOnly` without the factor at the modes' weights: for a caller that
    /// factors the same random-effects system itself and supplies `log|L|²`
    /// ([`Self::set_ldl2`]). Until then [`Self::ldl2`] is NaN, and `u_chol` holds the weights of
    /// the last iteration.
    pub(super) fn run_to_modes(
        &mut self,
        spec: &ModelSpec<'_>,
        re: &ReStructure,
        response: &mut Response<'_>,
    ) -> Result<f64> {
        let result = self.iterate(spec, re, response, Mode::UOnly);
        self.ldl2_value = f64::NAN;
        self.warm = result.is_ok();
        result
    }

    /// `log|L|²` at the modes of the last run, from a factor of the same system made
    /// elsewhere (after [`Self::run_to_modes`]).
    pub(super) fn set_ldl2(&mut self, value: f64) {
        self.ldl2_value = value;
    }

    /// With the square-root link, the region ([`SqrtBasin`]) of this run: for `UOnly` the one
    /// of `u = 0` (the signs of `offset + Xβ` at the positive counts; an error where that is 0
    /// at one of them); for `Joint` it is set from the warm start or from a cold start's first
    /// step, and forgotten until then.
    fn enter_sqrt_basin(
        &mut self,
        spec: &ModelSpec<'_>,
        response: &Response<'_>,
        mode: Mode,
    ) -> Result<()> {
        if self.sqrt_basin.is_none() {
            return Ok(());
        }
        if mode == Mode::UOnly && self.fixed_stale {
            self.form_fixed(spec, response);
        }
        let Some(basin) = self.sqrt_basin.as_mut() else {
            return Ok(());
        };
        match mode {
            Mode::UOnly => basin.set_from(&self.eta_fixed),
            Mode::Joint => {
                basin.clear();
                Ok(())
            }
        }
    }

    /// After a step from a cold start left the family's range, where there is no earlier
    /// (β, u) to halve back to (lme4 and `glm()` stop there): moves the linear predictor from
    /// `before`, where the step's working values were formed, towards the step's by halves
    /// until its means are valid, and leaves it there for the next working values (a Gamma
    /// GLMM with the inverse link, whose first step at θ = 1 took some η below 0). False if 30
    /// halvings do not get there.
    fn damp_cold_step(&mut self, response: &Response<'_>, before: &[f64]) -> bool {
        let target = self.eta.clone();
        let mut share = 0.5;
        for _ in 0..30 {
            for ((e, &b), &t) in self.eta.iter_mut().zip(before).zip(&target) {
                *e = b + share * (t - b);
            }
            if response.evaluate_rows(
                0,
                &self.eta,
                &mut self.mu,
                &mut self.mu_eta,
                &mut self.dev_terms,
                false,
            ) {
                return true;
            }
            share *= 0.5;
        }
        false
    }

    /// Keeps (β, u) as the state before the next step.
    fn save_state(&mut self) {
        self.old_beta.copy_from_slice(&self.beta);
        self.old_u1.copy_from_slice(&self.u1);
        self.old_u2.copy_from_slice(&self.u2);
    }

    /// PIRLS proper ([`Self::iterate_in_region`]), and with the square-root link over `u` alone
    /// the moves across barriers that follow ([`Self::escape_sqrt_region`]).
    fn iterate(
        &mut self,
        spec: &ModelSpec<'_>,
        re: &ReStructure,
        response: &mut Response<'_>,
        mode: Mode,
    ) -> Result<f64> {
        let pdev = self.iterate_in_region(spec, re, response, mode, true)?;
        if mode == Mode::UOnly && self.sqrt_lines.is_some() {
            return self.escape_sqrt_region(spec, re, response, pdev);
        }
        Ok(pdev)
    }

    /// The modes of `u` (square-root link) after those of the region of `u = 0`,
    /// whose penalized deviance is `pdev`: while a sweep of [`BarrierLines::escape`] moves some
    /// coordinate across a barrier, PIRLS runs again in the region it reached, from there. A
    /// region where PIRLS fails or does not end lower is left for the last one's modes.
    fn escape_sqrt_region(
        &mut self,
        spec: &ModelSpec<'_>,
        re: &ReStructure,
        response: &mut Response<'_>,
        mut pdev: f64,
    ) -> Result<f64> {
        let Some(lines) = self.sqrt_lines.take() else {
            return Ok(pdev);
        };
        let threads = match self.par {
            Par::Rayon(k) => k.get(),
            _ => 1,
        };
        for _ in 0..MAX_SQRT_ESCAPES {
            let layout = &self.joint_cp.layout;
            let mut u = linpred::split_blocks(re, layout, &self.u1, &self.u2);
            let mut eta = self.eta.clone();
            let dev = FamilyRowDeviance(response);
            if !lines.escape(spec.y, &self.lambda, &mut eta, &mut u, &dev, threads) {
                break;
            }
            let kept = (self.u1.clone(), self.u2.clone(), self.sqrt_basin.clone());
            linpred::join_blocks(
                re,
                &self.joint_cp.layout,
                &u.concat(),
                &mut self.u1,
                &mut self.u2,
            );
            let entered = match self.sqrt_basin.as_mut() {
                Some(basin) => basin.set_from(&eta).is_ok(),
                None => false,
            };
            self.warm = true;
            let next = if entered {
                self.iterate_in_region(spec, re, response, Mode::UOnly, false)
                    .ok()
            } else {
                None
            };
            match next {
                Some(value) if value < pdev => pdev = value,
                _ => {
                    (self.u1, self.u2, self.sqrt_basin) = kept;
                    pdev = self.penalized_deviance(spec, re, response);
                    break;
                }
            }
        }
        self.sqrt_lines = Some(lines);
        Ok(pdev)
    }

    /// PIRLS in one region. It starts from the previous evaluation's modes (with the new θ, β)
    /// when they give a valid mean, which usually leaves two or three iterations; otherwise from
    /// `eta_start`. The tight convergence rule makes the result independent of the start. With
    /// `enter`, the square-root link's region is chosen afresh ([`Self::enter_sqrt_basin`]);
    /// without, the current one (and state) is kept.
    fn iterate_in_region(
        &mut self,
        spec: &ModelSpec<'_>,
        re: &ReStructure,
        response: &mut Response<'_>,
        mode: Mode,
        enter: bool,
    ) -> Result<f64> {
        let mut old_pdev = f64::INFINITY;
        let mut have_old = false;
        self.paired_derivs_valid = false;
        if enter {
            self.enter_sqrt_basin(spec, response, mode)?;
        }
        let warm_pdev = if self.warm {
            self.penalized_deviance(spec, re, response)
        } else {
            f64::INFINITY
        };
        if warm_pdev.is_finite() {
            old_pdev = warm_pdev;
            have_old = true;
            self.save_state();
            if mode == Mode::Joint {
                // (β, u) together stay in the region of their warm start.
                if let Some(basin) = self.sqrt_basin.as_mut() {
                    basin.set_from(&self.eta)?;
                }
            }
        } else if self.sqrt_basin.is_some() && mode == Mode::UOnly {
            // The square-root link: a cold start at u = 0, inside the region by its definition,
            // with step halving back towards it from the first step on.
            self.u1.fill(0.0);
            self.u2.fill(0.0);
            old_pdev = self.penalized_deviance(spec, re, response);
            if !old_pdev.is_finite() {
                return Err(MixedError::Pirls(
                    "with the square-root link the random effects at 0 give a mean outside what \
                     the family allows"
                        .into(),
                ));
            }
            have_old = true;
            self.save_state();
        } else {
            // A cold start: the rows' derivatives of the pass above are not those of this state.
            self.paired_derivs_valid = false;
            self.eta.copy_from_slice(&self.eta_start);
            for ((m, d), &e) in self.mu.iter_mut().zip(&mut self.mu_eta).zip(&self.eta) {
                (*m, *d) = response.mean_and_mu_eta(e);
            }
            if mode == Mode::UOnly && self.fixed_stale {
                // The working response of `UOnly` subtracts `Xβ`.
                self.form_fixed(spec, response);
            }
            if self.paired.is_some() {
                // The zero-inflation logit starts at its fixed part (its random effects at 0).
                self.zb_zi.fill(0.0);
                if !response.set_zero_inflation_random(&self.zb_zi) {
                    return Err(MixedError::Pirls(
                        "the zero-inflation model gives an undefined probability".into(),
                    ));
                }
            }
        }
        let mut converged = false;
        let mut pdev = f64::INFINITY;
        let mut prev_step = f64::INFINITY;
        // The step before `prev_step`, and how many of the last iterations in a row were plain
        // Newton steps (no stand-in weights, not halved).
        let mut prev_prev_step = f64::INFINITY;
        let mut newton_run = 0usize;
        // Consecutive settled iterations that needed stand-in weights (see below).
        let mut flat_indefinite = 0usize;
        // Whether the last step left the family's range and was shortened (`damp_cold_step`).
        let mut damped = false;
        for iteration in 1..=self.opts.max_iter {
            self.iterations += 1;
            // Before a step from a cold start: the linear predictor it leaves, for
            // `damp_cold_step`.
            let cold_eta = (!have_old && self.sqrt_basin.is_none() && self.paired.is_none())
                .then(|| self.eta.clone());
            // Far from the modes (a first step, or the last step above
            // `NEGATIVE_INFORMATION_STEP`) a non-canonical link of lme4's families takes the
            // expected information where the observed is not positive: a Newton step through a
            // nearly singular observed information overshot there (inverse Gaussian bootstrap
            // refits from the original fit's predictor, whose fixed-effects block then became
            // singular). Where every row's observed information is positive the two choices are
            // the same step.
            let choice = if self.guard_negative_information
                && (prev_step.is_nan() || prev_step >= NEGATIVE_INFORMATION_STEP)
            {
                WeightChoice::NewtonPositive
            } else {
                WeightChoice::Newton
            };
            // A guarded step that stood in the expected information is not a Newton step.
            let mut fell_back = self.working_values(response, mode, choice);
            if self.refactor(spec, re, mode).is_err() {
                // Some observed information is negative and the system is not positive
                // definite: a step with the expected information where the observed is not
                // positive.
                fell_back = true;
                self.working_values(response, mode, WeightChoice::NewtonPositive);
                if let Err(e) = self.refactor(spec, re, mode) {
                    // With the square-root link, weights that are not numbers at a count of 0
                    // whose η is 0: name that cause.
                    if let Some(basin) = &self.sqrt_basin {
                        basin.check_zero_count_mode(spec.y, &self.eta)?;
                    }
                    // Shortened steps that crept towards the edge of the family's range, whose
                    // weights then lost their definiteness: name that, not the factorization.
                    if damped {
                        return Err(MixedError::Pirls(SHORTENED_STEPS_AT_EDGE.into()));
                    }
                    return Err(e);
                }
            }
            match mode {
                Mode::Joint => {
                    let (beta, u1, u2) = self.joint_chol.solve(&self.joint_cp);
                    self.beta = beta;
                    self.fixed_stale = true;
                    self.u1 = u1;
                    self.u2 = u2;
                    if !have_old && self.sqrt_basin.is_some() {
                        // A cold start with the square-root link: the first step's region is
                        // the one (β, u) stay in.
                        self.eta_pass(spec, re, response, false);
                        if let Some(basin) = self.sqrt_basin.as_mut() {
                            basin.set_from(&self.eta)?;
                        }
                    }
                }
                Mode::UOnly => {
                    let (_, u1, u2) = self.u_chol.solve(&self.u_cp);
                    self.u1 = u1;
                    self.u2 = u2;
                }
            }
            pdev = self.penalized_deviance(spec, re, response);
            if !pdev.is_finite() {
                if let Some(before) = &cold_eta {
                    if self.damp_cold_step(response, before) {
                        damped = true;
                        continue;
                    }
                }
            }
            damped = false;
            if fell_back && have_old && self.paired.is_some() && pdev < old_pdev {
                pdev = self.extend_step(spec, re, response, mode, pdev);
            }
            // Converged when the penalized deviance has settled *and* the modes are accurate.
            // The Laplace criterion is not stationary at the modes (log|L|² depends on them
            // through the weights, and for families with a dispersion the aic part uses
            // dev/n), so an error in the modes enters it to first order, and Fisher scoring
            // on a non-canonical link converges only linearly: a settled deviance alone can
            // leave the modes inexact. The error of the current iterate is estimated from the
            // last two steps (geometric extrapolation, which also covers quadratic
            // convergence, where it is tiny).
            let settled = ((old_pdev - pdev) / pdev).abs() < self.opts.tol;
            // With random effects in both predictors, a penalized deviance that has settled
            // while its curvature stays indefinite is flat along some direction: the modes are
            // not determined there (nor is the Laplace approximation, whose H is not positive
            // definite). PIRLS stops instead of crawling along it to `max_iter`, and the
            // optimizer treats the point as invalid.
            flat_indefinite = if fell_back && settled && self.paired.is_some() {
                flat_indefinite + 1
            } else {
                0
            };
            if flat_indefinite >= FLAT_INDEFINITE_ITERATIONS {
                return Err(MixedError::Pirls(
                    "the penalized deviance is flat along a direction where its curvature is \
                     not positive: the conditional modes are not determined"
                        .into(),
                ));
            }
            let step = if have_old {
                self.step_size()
            } else {
                f64::INFINITY
            };
            newton_run = if fell_back { 0 } else { newton_run + 1 };
            // Two plain Newton steps in a row near the modes measure the constant of quadratic
            // convergence; the largest measured is kept for the model's later runs.
            if newton_run >= 2
                && prev_step < QUADRATIC_SAMPLE_FIRST
                && step.is_finite()
                && step >= QUADRATIC_SAMPLE_SECOND
            {
                let c = step / (prev_step * prev_step);
                self.quadratic_constant = Some(self.quadratic_constant.map_or(c, |q| q.max(c)));
            }
            let error = if prev_step.is_finite() && step < prev_step {
                let r = step / prev_step;
                let geometric = step * r / (1.0 - r);
                // Three Newton steps in a row whose ratio shrinks converge quadratically:
                // the error after the step is about `C step²` with `C ≈ step / prev_step²`.
                let accelerating = newton_run >= 3
                    && prev_prev_step.is_finite()
                    && r < QUADRATIC_RATIO * (prev_step / prev_prev_step);
                if accelerating {
                    geometric.min(step * r * r)
                } else {
                    geometric
                }
            } else {
                step
            };
            // Newton converges quadratically near the modes (the observed information is the
            // Hessian of the penalized deviance): after a plain Newton step `s` the error is
            // about `C s²`, with `C` measured in earlier runs of this model. Where that is far
            // below the tolerance the confirming iteration (a pass over the rows, a factor and
            // a solve, a third of a warm run) is skipped: from warm modes one step usually
            // suffices (VerbAgg: steps of 2e-6 followed by 1e-12, C ≈ 0.2). Not with random
            // effects in the zero-inflation logit or the square-root link, whose steps are
            // not always plain Newton steps.
            let error = match self.quadratic_constant {
                Some(c)
                    if !fell_back
                        && step < prev_step
                        && step < QUADRATIC_LARGEST_STEP
                        && self.paired.is_none()
                        && self.sqrt_basin.is_none() =>
                {
                    error.min(QUADRATIC_MARGIN * c * step * step)
                }
                _ => error,
            };
            // Below the ordinary tolerance, steps that stop shrinking are rounding noise; so
            // are steps below `PIRLS_NOISE_STEP` that shrink by less than half (Fisher scoring
            // on a probit link crawled there at a rate of 0.998 until `maxit`).
            let stalled = (error < PIRLS_STEP_TOL && step >= prev_step)
                || (step < PIRLS_NOISE_STEP && step >= 0.5 * prev_step);
            prev_prev_step = prev_step;
            prev_step = step;
            if let Some(trace) = self.opts.trace {
                let shown = if step.is_finite() {
                    format!("{step:.3e}")
                } else {
                    "(first step)".to_string()
                };
                trace(&format!(
                    "  PIRLS {iteration}: penalized deviance {pdev:.8}, largest relative step \
                     {shown}{}",
                    if fell_back {
                        " (expected information where the observed is not positive)"
                    } else {
                        ""
                    }
                ));
            }
            if settled && (error < self.step_tol || stalled) {
                converged = true;
                break;
            }
            // A rise within the penalized deviance's rounding is no rise: near the modes a
            // Newton step lowers it by less than its rounding, and halving such a step (ten
            // times, each with a pass over the rows) threw away the step that converges. Not
            // with the square-root link, whose halved steps creep towards a mode at η = 0
            // that the caller then names.
            let rounding = if self.sqrt_basin.is_some() {
                0.0
            } else {
                PDEV_ROUNDING * old_pdev.abs().max(1.0)
            };
            if pdev > old_pdev + rounding {
                if have_old {
                    for _ in 0..10 {
                        if pdev <= old_pdev + rounding {
                            break;
                        }
                        halve(&mut self.u1, &self.old_u1);
                        halve(&mut self.u2, &self.old_u2);
                        if mode == Mode::Joint {
                            halve(&mut self.beta, &self.old_beta);
                            self.fixed_stale = true;
                        }
                        pdev = self.penalized_deviance(spec, re, response);
                    }
                }
                // A halved step breaks the run of Newton steps.
                newton_run = 0;
                if !pdev.is_finite() {
                    return Err(MixedError::Pirls(format!(
                        "PIRLS step-halving found no step from the penalized deviance \
                         {old_pdev:.6} inside the family's range: every shortened step gives a \
                         mean outside what the family allows, such as a negative mean with the \
                         identity link; {}",
                        at_the_edge!()
                    )));
                }
                if pdev - old_pdev > self.opts.tol {
                    return Err(MixedError::Pirls(format!(
                        "PIRLS step-halving failed to reduce the penalized deviance (from {old_pdev:.6} it stays at {pdev:.6})"
                    )));
                }
            }
            old_pdev = pdev;
            have_old = true;
            self.save_state();
        }
        if !converged {
            // The square-root link's mean is 0 at η = 0, outside the family's range: PIRLS
            // creeps (by halved steps) towards a mode that lies there.
            if let Some(basin) = &self.sqrt_basin {
                basin.check_zero_count_mode(spec.y, &self.eta)?;
            }
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
                self.opts.max_iter
            )));
        }
        Ok(pdev)
    }

    /// The factor at the modes' own weights, which the Laplace approximation needs, and its
    /// `log|L|²`. The random-effects part of the joint factor is the factor of the `UOnly`
    /// system (it does not depend on F), so one refactor serves either mode.
    fn factor_at_modes(
        &mut self,
        spec: &ModelSpec<'_>,
        re: &ReStructure,
        response: &mut Response<'_>,
        mode: Mode,
    ) -> Result<()> {
        self.working_values(response, mode, WeightChoice::Final);
        self.refactor(spec, re, mode)?;
        self.ldl2_value = match mode {
            Mode::Joint => self.joint_chol.logdet_l11 + self.joint_chol.logdet_l22,
            Mode::UOnly => self.u_chol.logdet_l11 + self.u_chol.logdet_l22,
        };
        Ok(())
    }

    /// After a step with stand-in weights (the observed information not positive definite:
    /// the penalized deviance curves downwards along some direction there) that lowered the
    /// penalized deviance to `pdev`: the step doubled while that lowers it further, at most
    /// [`MAX_STEP_DOUBLINGS`] times; returns the penalized deviance where it stops. With
    /// random effects in both predictors the stand-in's curvature along such a direction is
    /// its absolute value, so its steps there are short, and PIRLS crawled (steps of 1e-3 of
    /// the modes for 100 iterations, Salamanders nbinom1 with zero-inflation random effects).
    fn extend_step(
        &mut self,
        spec: &ModelSpec<'_>,
        re: &ReStructure,
        response: &mut Response<'_>,
        mode: Mode,
        mut pdev: f64,
    ) -> f64 {
        for _ in 0..MAX_STEP_DOUBLINGS {
            let kept = (self.u1.clone(), self.u2.clone(), self.beta.clone());
            extend(&mut self.u1, &self.old_u1);
            extend(&mut self.u2, &self.old_u2);
            if mode == Mode::Joint {
                extend(&mut self.beta, &self.old_beta);
                self.fixed_stale = true;
            }
            let longer = self.penalized_deviance(spec, re, response);
            if longer < pdev {
                pdev = longer;
                continue;
            }
            (self.u1, self.u2, self.beta) = kept;
            if mode == Mode::Joint {
                self.fixed_stale = true;
            }
            return self.penalized_deviance(spec, re, response);
        }
        pdev
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

    /// `log|L|²` at the modes of the last successful run.
    pub(super) fn ldl2(&self) -> f64 {
        self.ldl2_value
    }

    /// The current modes and whether they are a warm start, to start later runs from.
    pub(super) fn warm_start(&self) -> WarmStart {
        WarmStart {
            u1: self.u1.clone(),
            u2: self.u2.clone(),
            warm: self.warm,
        }
    }

    /// Makes `start` the modes the next run starts from.
    pub(super) fn restore(&mut self, start: &WarmStart) {
        self.paired_derivs_valid = false;
        self.u1.copy_from_slice(&start.u1);
        self.u2.copy_from_slice(&start.u2);
        self.warm = start.warm;
    }
}

/// Whether the pass over the rows of a model with random effects in the zero-inflation logit
/// also forms the rows' derivatives for the next working values. It saves the working values'
/// own pass over the rows and, at a zero, an exponential (the count part's share of `p(0)`
/// comes with `log p(0)`), but it runs at every pass, also those of halved or extended steps
/// whose derivatives are never used: worth it only where the derivatives in `μ` are cheap
/// (not the digammas and trigammas of nbinom1, measured 40% slower on Owls).
fn fused_paired_pass(response: &Response<'_>) -> bool {
    match response.family() {
        ResponseFamily::Extended(fam) => fam.density.mean_derivatives_are_rational(),
        ResponseFamily::Glm(_) => false,
    }
}

/// `x ← x + (x − old)`: the step from `old` doubled.
fn extend(x: &mut [f64], old: &[f64]) {
    for (a, b) in x.iter_mut().zip(old) {
        *a = 2.0 * *a - b;
    }
}

fn halve(x: &mut [f64], old: &[f64]) {
    for (a, b) in x.iter_mut().zip(old) {
        *a = 0.5 * (*a + b);
    }
}
