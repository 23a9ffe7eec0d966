//! The response of a generalized linear mixed model: the observations `y`, their prior weights,
//! the binomial numbers of trials, the offset, the family and the family's extra parameters.
//!
//! PIRLS and the Laplace/AGQ criterion ask this module everything that depends on the
//! distribution, observation by observation: the mean `μ = g⁻¹(η)` and `dμ/dη`, whether `η` and
//! `μ` are valid, the working weights and working response, the deviance terms, and the
//! conditional `−2 log p(y | μ)` that enters the Laplace and AGQ deviances.
//!
//! Two kinds of family ([`ResponseFamily`]):
//! - lme4's exponential families ([`Family`]): working weights `a μ′²/V(μ)`, deviance residuals,
//!   and R's family `aic` as `−2 log p(y | μ)`, as glmer computes them;
//! - families with parameters of their own ([`ExtendedFamily`], glmmTMB's models): a density
//!   from [`crate::model::density`] with a dispersion `φᵢ = exp(X_d β_d + o_d)ᵢ`, optionally
//!   zero-inflated with probability `πᵢ = logit⁻¹(X_z β_z + o_z)ᵢ`:
//!   `p(0) = π + (1 − π) f(0)`, `p(y) = (1 − π) f(y)` for `y > 0`. The coefficients `(β_d, β_z)`
//!   are the model's *extra parameters*, set by [`Response::set_extra`] and estimated by the fit
//!   along with (θ, β). Here the deviance term of an observation is `−2 aᵢ ℓᵢ` (the full
//!   log-likelihood, so the Laplace deviance is `log|L|² + ‖u‖² + Σ −2 aᵢ ℓᵢ`), the working
//!   weight the observed information `−∂²ℓ/∂η²` (the expected one where that is not positive),
//!   and the weights of the factor at the modes are the observed information (glmmTMB's Laplace,
//!   TMB's Hessian) or the expected one (lme4's, for `glmer.nb`), as [`LaplaceWeights`] says.
use crate::error::{invalid, Result};
use crate::family::{AicDataSums, Family, Link};
use crate::linalg::assemble::PairedWorkingValues;
use crate::model::density::{beta_logs, Density, DensityDerivatives};
use crate::spec::ModelSpec;

/// A linear predictor of a distribution parameter: `X b + offset`, `X` `n × k` column-major.
#[derive(Debug, Clone, Default)]
pub struct ParameterModel {
    /// The design, column-major.
    pub x: Vec<f64>,
    /// Number of columns.
    pub k: usize,
    /// Offset (none: zeros).
    pub offset: Option<Vec<f64>>,
}

impl ParameterModel {
    /// `X b + offset` for `n` observations.
    fn predictor(&self, n: usize, b: &[f64]) -> Vec<f64> {
        let mut eta = self.offset.clone().unwrap_or_else(|| vec![0.0; n]);
        crate::linpred::add_xb(&self.x, n, b, &mut eta);
        eta
    }
}

/// The working weights PIRLS asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightChoice {
    /// A Newton step: the observed information, for an extended family even where it is
    /// negative (a zero-inflated zero: the system as a whole stays positive definite as a rule,
    /// and only exact Newton steps converge fast there).
    Newton,
    /// A Newton step where the observed information is positive, the expected one elsewhere
    /// (always a positive definite system).
    NewtonPositive,
    /// The weights of the factor at the modes (the Laplace determinant and `R_X`).
    Final,
}

/// Which information weighs the factor at the modes (the Laplace determinant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaplaceWeights {
    /// The observed information `−∂²ℓ/∂η²` (glmmTMB).
    Observed,
    /// The expected information `μ′²/Var(y)` (lme4's glmer, so glmer.nb).
    Expected,
}

/// A family with extra parameters: density, link, dispersion and zero-inflation models.
#[derive(Debug, Clone)]
pub struct ExtendedFamily {
    /// The distribution.
    pub density: Density,
    /// The link of the mean.
    pub link: Link,
    /// The model of `log φ` (present exactly when the density has a dispersion).
    pub disp: Option<ParameterModel>,
    /// The model of `logit π` (zero inflation), if any.
    pub zi: Option<ParameterModel>,
    /// The weights of the Laplace determinant.
    pub laplace: LaplaceWeights,
}

impl ExtendedFamily {
    /// Checks the pieces against each other and the number of observations.
    pub fn validate(&self, n: usize) -> Result<()> {
        if self.density.has_dispersion() != self.disp.is_some() {
            return invalid(format!(
                "family {:?}: a dispersion model is needed exactly when the family has a \
                 dispersion parameter",
                self.density
            ));
        }
        for (what, m) in [("dispersion", &self.disp), ("zero-inflation", &self.zi)] {
            if let Some(m) = m {
                if m.x.len() != n * m.k || m.offset.as_ref().is_some_and(|o| o.len() != n) {
                    return invalid(format!(
                        "the {what} model's design does not have one row per observation"
                    ));
                }
            }
        }
        if self.zi.is_some()
            && !matches!(
                self.density,
                Density::Poisson | Density::NegBinomial1 | Density::NegBinomial2
            )
        {
            return invalid("zero inflation is only available for count families");
        }
        Ok(())
    }

    /// Number of extra parameters: dispersion then zero-inflation coefficients.
    pub fn n_extra(&self) -> usize {
        self.disp.as_ref().map_or(0, |m| m.k) + self.zi.as_ref().map_or(0, |m| m.k)
    }
}

/// The family of a response.
#[derive(Debug, Clone)]
pub enum ResponseFamily {
    /// lme4's exponential families.
    Glm(Family),
    /// Families with extra parameters.
    Extended(ExtendedFamily),
}

impl ResponseFamily {
    /// The link of the mean.
    pub fn link(&self) -> Link {
        match self {
            ResponseFamily::Glm(f) => f.link,
            ResponseFamily::Extended(e) => e.link,
        }
    }

    /// Number of extra parameters (0 for lme4's families).
    pub fn n_extra(&self) -> usize {
        match self {
            ResponseFamily::Glm(_) => 0,
            ResponseFamily::Extended(e) => e.n_extra(),
        }
    }
}

/// The values of the extra parameters and what they give per observation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FamilyParameters {
    /// `(β_d, β_z)`.
    values: Vec<f64>,
    /// `φᵢ` (empty without a dispersion).
    phi: Vec<f64>,
    /// `log πᵢ` and `log(1 − πᵢ)` (empty without zero inflation).
    log_zi: Vec<f64>,
    log_not_zi: Vec<f64>,
    /// `1 − πᵢ` and `πᵢ` (formed with them: the expected information and the derivatives in
    /// the zero-inflation logit carry them at every PIRLS step).
    not_zi: Vec<f64>,
    zi: Vec<f64>,
    /// The fixed part of each zero-inflation logit, `X_z β_z + o_z` (empty without zero
    /// inflation). With random effects in the zero-inflation predictor, `πᵢ` is formed from it
    /// and their part by [`Response::set_zero_inflation_random`].
    zi_fixed: Vec<f64>,
    /// The part of each `ℓᵢ` that does not depend on `μᵢ` at the current `φᵢ`
    /// ([`Density::constant`]).
    constant: Vec<f64>,
    /// Its part that depends on neither (formed once).
    fixed_constant: Vec<f64>,
    /// `(log yᵢ, log(1 − yᵢ))` of a beta response (formed once; empty for other families).
    beta_logs: Vec<(f64, f64)>,
}

impl FamilyParameters {
    /// No extra parameters (lme4's families).
    pub fn none() -> Self {
        Self::default()
    }

    /// Number of extra parameters.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The values: dispersion then zero-inflation coefficients.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// `φᵢ` per observation (empty without a dispersion).
    pub fn phi(&self) -> &[f64] {
        &self.phi
    }

    /// `πᵢ` per observation (empty without zero inflation).
    pub fn zero_prob(&self) -> Vec<f64> {
        self.zi.clone()
    }
}

/// `log(eᵃ + eᵇ)` without overflow.
fn log_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    if hi == f64::NEG_INFINITY {
        hi
    } else {
        hi + (lo - hi).exp().ln_1p()
    }
}

/// `log(eᵃ + eᵇ)` and the share `eᵇ / (eᵃ + eᵇ)` of its second term, from one exponential
/// (NaN share where both terms are 0).
fn log_add_exp_with_share(a: f64, b: f64) -> (f64, f64) {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    if hi == f64::NEG_INFINITY {
        return (hi, f64::NAN);
    }
    let t = (lo - hi).exp();
    let share = if b >= a {
        1.0 / (1.0 + t)
    } else {
        t / (1.0 + t)
    };
    (hi + t.ln_1p(), share)
}

/// The η-derivatives of an observation's log-likelihood: `∂ℓ/∂η`, the observed information
/// `−∂²ℓ/∂η²` and the expected one (all times the prior weight).
#[derive(Debug, Clone, Copy, Default)]
struct EtaDerivatives {
    gradient: f64,
    observed: f64,
    expected: f64,
}

/// The derivatives of an observation's log-likelihood in its zero-inflation logit `ρ`:
/// `∂ℓ/∂ρ`, `−∂²ℓ/∂η∂ρ` and `−∂²ℓ/∂ρ²` (all times the prior weight; zero without zero
/// inflation).
#[derive(Debug, Clone, Copy, Default)]
struct ZiDerivatives {
    gradient: f64,
    cross: f64,
    observed: f64,
}

/// A row's derivatives in both linear predictors (the mean's and the zero-inflation logit's)
/// at its current η, φ and π, as [`Response::evaluate_rows_paired`] forms them in the pass
/// that also gives its deviance term, for the working values of the next PIRLS step.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PairedRowDerivatives {
    eta: EtaDerivatives,
    zi: ZiDerivatives,
}

/// What the exact Laplace gradient needs of one row of an extended family, at the response's
/// current dispersion and zero inflation: the η-derivatives of `aℓ` up to the third (through
/// the Laplace weight) and the derivatives in the zero-inflation logit `ρ`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RowJet {
    /// `∂(aℓ)/∂η`.
    pub s: f64,
    /// `−∂²(aℓ)/∂η²`, the observed information (how the mode moves).
    pub w: f64,
    /// The row's weight in the Laplace determinant (`w`, or the expected information).
    pub wl: f64,
    /// `∂wl/∂η`.
    pub wl_eta: f64,
    /// `∂(aℓ)/∂ρ`, `∂s/∂ρ` and `∂wl/∂ρ` (zeros without zero inflation).
    pub l_zi: f64,
    pub s_zi: f64,
    pub wl_zi: f64,
    /// With a dispersion, where written out ([`Density::dispersion_slopes`]): `∂(aℓ)/∂log φ`,
    /// `∂s/∂log φ` and `∂wl/∂log φ`.
    pub dispersion: Option<[f64; 3]>,
}

/// What [`Response::row_jet`] and [`Response::paired_row_jet`] need of a row's count part (its
/// density without zero inflation) at η: `μ`, `φ`, the link's `μ′, μ″`, the density's
/// μ-derivatives `ℓ′, ℓ″` (and value, when asked for) and `ℓ‴`, and the η-derivatives of
/// `log f`: `g = ℓ′μ′`, `l₂ = ℓ″μ′² + ℓ′μ″`, `l₃ = ℓ‴μ′³ + 3ℓ″μ′μ″ + ℓ′μ‴`.
struct CountJet {
    mu: f64,
    phi: f64,
    m1: f64,
    m2: f64,
    g: f64,
    l2: f64,
    l3: f64,
    d: DensityDerivatives,
    d3: f64,
}

/// The derivatives of a zero-inflated row's `ℓ(η, ρ)` (ρ the zero-inflation logit) up to the
/// third order, from the count part's `(g, l₂, l₃)` in η, π and, for a zero, the count part's
/// share `r` of `p(0)` (`q = r(1 − r)`; `∂r/∂η = q g`, `∂r/∂ρ = −q`, `∂π/∂ρ = π(1 − π)`):
///
/// ```text
///   zero:     ℓ_η = r g            ℓ_ρ = 1 − r − π
///             ℓ_ηη = r l₂ + q g²   ℓ_ηρ = −q g           ℓ_ρρ = q − π(1 − π)
///             ℓ_ηηη = r l₃ + 3q g l₂ + q(1 − 2r) g³      ℓ_ηηρ = −q l₂ − q(1 − 2r) g²
///             ℓ_ηρρ = q(1 − 2r) g                         ℓ_ρρρ = −q(1 − 2r) − π(1 − π)(1 − 2π)
///   positive: ℓ_η = g, ℓ_ηη = l₂, ℓ_ηηη = l₃, ℓ_ρ = −π, ℓ_ρρ = −π(1 − π),
///             ℓ_ρρρ = −π(1 − π)(1 − 2π), the mixed ones 0.
/// ```
struct ZeroInflatedRow {
    /// `(ℓ_η, ℓ_ρ)`.
    d1: [f64; 2],
    /// `(ℓ_ηη, ℓ_ηρ, ℓ_ρρ)`.
    d2: [f64; 3],
    /// `(ℓ_ηηη, ℓ_ηηρ, ℓ_ηρρ, ℓ_ρρρ)`.
    d3: [f64; 4],
}

impl ZeroInflatedRow {
    #[inline]
    fn new(zero: bool, c: &CountJet, r: f64, pi: f64, keep: f64) -> Self {
        let (g0, l2_0, l3_0) = (c.g, c.l2, c.l3);
        let pi_keep = pi * keep;
        let pi_rho3 = -pi_keep * (1.0 - 2.0 * pi);
        if zero {
            let q = r * (1.0 - r);
            let skew = q * (1.0 - 2.0 * r);
            Self {
                d1: [r * g0, 1.0 - r - pi],
                d2: [r * l2_0 + q * g0 * g0, -q * g0, q - pi_keep],
                d3: [
                    r * l3_0 + 3.0 * q * g0 * l2_0 + q * (1.0 - 2.0 * r) * g0 * g0 * g0,
                    -q * l2_0 - q * (1.0 - 2.0 * r) * g0 * g0,
                    skew * g0,
                    -skew + pi_rho3,
                ],
            }
        } else {
            Self {
                d1: [g0, -pi],
                d2: [l2_0, 0.0, -pi_keep],
                d3: [l3_0, 0.0, 0.0, pi_rho3],
            }
        }
    }
}

/// Row `i`'s derivatives in its two linear predictors `(η, ρ)` when both carry random effects
/// ([`Response::paired_row_jet`]): the score, the observed information `W = −∂²(aℓ)/∂(η, ρ)²` as
/// `(ηη, ηρ, ρρ)`, and its derivatives in η and in ρ.
#[derive(Debug, Clone, Copy)]
pub(super) struct PairedRowJet {
    pub s: [f64; 2],
    pub w: [f64; 3],
    pub w_eta: [f64; 3],
    pub w_rho: [f64; 3],
    /// With a dispersion whose density has [`Density::dispersion_slopes`]: the derivatives in
    /// `log φ` of `aℓ`, the score and `W`.
    pub dispersion: Option<PairedDispersion>,
}

/// The derivatives in `log φ` of a row's `aℓ` (`l`), score (`s`) and observed information
/// (`w`, as `(ηη, ηρ, ρρ)`) with two predictors ([`dispersion_row`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct PairedDispersion {
    pub l: f64,
    pub s: [f64; 2],
    pub w: [f64; 3],
}

/// The derivatives in `log φ` of a row's `ℓ`, `(ℓ_η, ℓ_ρ)` and `(ℓ_ηη, ℓ_ηρ, ℓ_ρρ)` from the
/// count part's [`CountJet`] and the density's slopes `(c_φ, ℓ′_φ, ℓ″_φ)`
/// ([`Density::dispersion_slopes`]), which give `g_φ = ℓ′_φ μ′` and
/// `l₂,φ = ℓ″_φ μ′² + ℓ′_φ μ″`. A row that is not a zero-inflated zero has
/// `(c_φ; g_φ, 0; l₂,φ, 0, 0)`; a zero, whose count share `r` moves as
/// `∂r/∂log φ = q c_φ` (`q = r(1 − r)`), has `ℓ_φ = r c_φ`,
/// `(ℓ_η, ℓ_ρ)_φ = (q c_φ g + r g_φ, −q c_φ)` and
/// `(ℓ_ηη, ℓ_ηρ, ℓ_ρρ)_φ = (q c_φ l₂ + r l₂,φ + q(1 − 2r) c_φ g² + 2q g g_φ,
/// −q(1 − 2r) c_φ g − q g_φ, q(1 − 2r) c_φ)`.
fn dispersion_row(
    zero: bool,
    c: &CountJet,
    r: f64,
    (lc, d1p, d2p): (f64, f64, f64),
) -> (f64, [f64; 2], [f64; 3]) {
    let gp = d1p * c.m1;
    let l2p = d2p * c.m1 * c.m1 + d1p * c.m2;
    if zero {
        let q = r * (1.0 - r);
        let skew = q * (1.0 - 2.0 * r);
        (
            r * lc,
            [q * lc * c.g + r * gp, -q * lc],
            [
                q * lc * c.l2 + r * l2p + skew * lc * c.g * c.g + 2.0 * q * c.g * gp,
                -skew * lc * c.g - q * gp,
                skew * lc,
            ],
        )
    } else {
        (lc, [gp, 0.0], [l2p, 0.0, 0.0])
    }
}

/// The symmetric 2 × 2 matrix `(a, b, c)` = `[a b; b c]` with its eigenvalues replaced by their
/// absolute values (positive semi-definite, the same curvature where it was positive): the
/// stand-in for an indefinite observed information in a Newton step, which keeps the step's
/// curvature where the likelihood has one (a diagonal of expected informations loses the
/// coupling of the two predictors, and PIRLS then crawled).
fn absolute_eigenvalues((a, b, c): (f64, f64, f64)) -> (f64, f64, f64) {
    let mean = 0.5 * (a + c);
    let half_gap = (0.25 * (a - c) * (a - c) + b * b).sqrt();
    let (l1, l2) = (mean + half_gap, mean - half_gap);
    if half_gap == 0.0 {
        return (a.abs(), 0.0, c.abs());
    }
    // Unit eigenvector of l1: (b, l1 − a) or (l1 − c, b), whichever is larger.
    let (mut x, mut y) = if (l1 - a).abs() > (l1 - c).abs() {
        (b, l1 - a)
    } else {
        (l1 - c, b)
    };
    let norm = (x * x + y * y).sqrt();
    x /= norm;
    y /= norm;
    let (p1, p2) = (l1.abs(), l2.abs());
    // V diag(p1, p2) V' with V = [x −y; y x].
    (
        p1 * x * x + p2 * y * y,
        (p1 - p2) * x * y,
        p1 * y * y + p2 * x * x,
    )
}

/// The response side of a GLMM (lme4's `glmResp`): data, family and extra parameters.
#[derive(Debug, Clone)]
pub struct Response<'a> {
    /// The response as fitted (proportions for binomial, successes for beta-binomial).
    y: &'a [f64],
    /// Prior weights (the number of trials for binomial proportions).
    prior_w: Vec<f64>,
    /// R's binomial `n`, the beta-binomial trials (1s otherwise).
    n_trials: Vec<f64>,
    /// Offset of the linear predictor (zeros without one).
    offset: Vec<f64>,
    /// The family.
    family: ResponseFamily,
    /// The link of the mean.
    link: Link,
    /// Extra parameters of the distribution and what they give per observation.
    extra: FamilyParameters,
    /// For binomial and Poisson the family's aic is `Σ d(y, μ)` plus this.
    saturated_aic: Option<f64>,
    /// For the other families of lme4 the sums of the data in their aic.
    aic_sums: AicDataSums,
}

impl<'a> Response<'a> {
    /// The response of `spec` (its `y`, weights and offset) under `family`; `n_trials` is R's
    /// binomial `n` or the beta-binomial trials (1s for other families), one per observation.
    /// The extra parameters of an extended family start at zero.
    pub fn new(spec: &ModelSpec<'a>, family: ResponseFamily, n_trials: Vec<f64>) -> Result<Self> {
        let n = spec.n;
        if n_trials.len() != n {
            return invalid("n_trials must have one value per observation");
        }
        let prior_w: Vec<f64> = (0..n).map(|i| spec.weight(i)).collect();
        let saturated_aic = match &family {
            ResponseFamily::Glm(f) => f.saturated_aic(spec.y, &n_trials, &prior_w),
            ResponseFamily::Extended(e) => {
                e.validate(n)?;
                None
            }
        };
        let aic_sums = match &family {
            ResponseFamily::Glm(f) => f.aic_data_sums(spec.y, &prior_w),
            ResponseFamily::Extended(_) => AicDataSums::default(),
        };
        let offset: Vec<f64> = spec.offset.map_or_else(|| vec![0.0; n], <[f64]>::to_vec);
        let link = family.link();
        let n_extra = family.n_extra();
        let mut response = Self {
            y: spec.y,
            prior_w,
            n_trials,
            offset,
            family,
            link,
            extra: FamilyParameters::none(),
            saturated_aic,
            aic_sums,
        };
        if matches!(response.family, ResponseFamily::Extended(_)) {
            // Also for a family without extra parameters (zero-inflated Poisson has some, a
            // plain Poisson none): the constants of the log-density are formed here.
            response.set_extra(&vec![0.0; n_extra])?;
        }
        Ok(response)
    }

    /// The family.
    pub fn family(&self) -> &ResponseFamily {
        &self.family
    }

    /// Extra parameters of the distribution.
    pub fn extra(&self) -> &FamilyParameters {
        &self.extra
    }

    /// Number of extra parameters.
    pub fn n_extra(&self) -> usize {
        self.family.n_extra()
    }

    /// Sets the extra parameters (dispersion then zero-inflation coefficients) and the `φᵢ`
    /// and `πᵢ` they give; an error when some `φᵢ` is not a positive finite number.
    pub fn set_extra(&mut self, values: &[f64]) -> Result<()> {
        let ResponseFamily::Extended(fam) = &self.family else {
            if values.is_empty() {
                return Ok(());
            }
            return invalid("this family has no extra parameters");
        };
        if values.len() != fam.n_extra() {
            return invalid(format!(
                "the family has {} extra parameters, not {}",
                fam.n_extra(),
                values.len()
            ));
        }
        if self.extra.values == values && !self.extra.constant.is_empty() {
            return Ok(());
        }
        let n = self.y.len();
        let kd = fam.disp.as_ref().map_or(0, |m| m.k);
        if self.extra.fixed_constant.is_empty() {
            self.extra.fixed_constant = (0..n)
                .map(|i| fam.density.fixed_constant(self.y[i], self.n_trials[i]))
                .collect();
            if fam.density == Density::Beta {
                self.extra.beta_logs = self.y.iter().map(|&y| beta_logs(y)).collect();
            }
        }
        // Only the part whose coefficients changed is formed again (a search often moves one
        // coordinate at a time, and the dispersion's gamma functions are the costly part).
        // Nothing is changed before every new part is known to be valid.
        let formed = self.extra.constant.len() == n;
        let same_disp = formed && self.extra.values.get(..kd) == Some(&values[..kd]);
        let same_zi = formed && self.extra.values.get(kd..) == Some(&values[kd..]);
        let new_phi = match &fam.disp {
            Some(m) if !same_disp => {
                let mut phi = m.predictor(n, &values[..kd]);
                for v in phi.iter_mut() {
                    *v = v.exp();
                }
                if phi.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                    return invalid("the dispersion model gives a dispersion of 0 or infinity");
                }
                Some(phi)
            }
            _ => None,
        };
        let new_zi = match &fam.zi {
            Some(m) if !same_zi => {
                let eta = m.predictor(n, &values[kd..]);
                // log π = −log(1 + e^−η) and log(1 − π) = log π − η (one logarithm each).
                let log_zi: Vec<f64> = eta.iter().map(|&e| -log_add_exp(0.0, -e)).collect();
                let log_not_zi: Vec<f64> = log_zi.iter().zip(&eta).map(|(l, e)| l - e).collect();
                if log_zi.iter().chain(&log_not_zi).any(|v| v.is_nan()) {
                    return invalid("the zero-inflation model gives an undefined probability");
                }
                Some((log_zi, log_not_zi, eta))
            }
            _ => None,
        };
        if let Some(phi) = new_phi {
            self.extra.phi = phi;
        }
        if let Some((log_zi, log_not_zi, eta)) = new_zi {
            self.extra.zi = log_zi.iter().map(|l| l.exp()).collect();
            self.extra.log_zi = log_zi;
            self.extra.not_zi = log_not_zi.iter().map(|l| l.exp()).collect();
            self.extra.log_not_zi = log_not_zi;
            self.extra.zi_fixed = eta;
        }
        if !same_disp {
            let extra = &self.extra;
            let constant: Vec<f64> = (0..n)
                .map(|i| {
                    let p = extra.phi.get(i).copied().unwrap_or(1.0);
                    extra.fixed_constant[i]
                        + fam
                            .density
                            .dispersion_constant(self.y[i], p, self.n_trials[i])
                })
                .collect();
            self.extra.constant = constant;
        }
        self.extra.values = values.to_vec();
        Ok(())
    }

    /// With random effects in the zero-inflation predictor: sets each `πᵢ` from the logit
    /// `X_z β_z + o_z + (Z_z b_z)ᵢ`, `zb` the random part (PIRLS calls this whenever the random
    /// effects move). False if some logit is not a number (the probabilities are then unchanged
    /// only in part; the caller treats the point as invalid).
    pub(super) fn set_zero_inflation_random(&mut self, zb: &[f64]) -> bool {
        let extra = &mut self.extra;
        if extra.zi_fixed.len() != zb.len() {
            return false;
        }
        let mut ok = true;
        for (i, (&f, &r)) in extra.zi_fixed.iter().zip(zb).enumerate() {
            // With t = e^−|ρ|: log(1 + e^−ρ) = max(−ρ, 0) + log(1 + t), and 1 − π is
            // t/(1 + t) for ρ > 0, 1/(1 + t) otherwise (one exponential and one logarithm per
            // row; this runs at every pass of PIRLS over the rows).
            let rho = f + r;
            let t = (-rho.abs()).exp();
            let l = t.ln_1p();
            let lz = -(l + (-rho).max(0.0));
            let lnz = lz - rho;
            ok &= !(lz.is_nan() || lnz.is_nan());
            extra.log_zi[i] = lz;
            extra.log_not_zi[i] = lnz;
            (extra.not_zi[i], extra.zi[i]) = if rho > 0.0 {
                (t / (1.0 + t), 1.0 / (1.0 + t))
            } else {
                (1.0 / (1.0 + t), t / (1.0 + t))
            };
        }
        ok
    }

    /// The zero-inflation logit of each observation as the response holds it (with random
    /// effects in that predictor: at the last [`Self::set_zero_inflation_random`]); empty
    /// without zero inflation.
    pub fn zero_inflation_logits(&self) -> Vec<f64> {
        self.extra
            .log_zi
            .iter()
            .zip(&self.extra.log_not_zi)
            .map(|(lz, lnz)| lz - lnz)
            .collect()
    }

    /// The response as fitted.
    pub fn y(&self) -> &'a [f64] {
        self.y
    }

    /// Prior weights.
    pub fn prior_weights(&self) -> &[f64] {
        &self.prior_w
    }

    /// Binomial numbers of trials (1s for other families).
    pub fn n_trials(&self) -> &[f64] {
        &self.n_trials
    }

    /// Offset of the linear predictor (zeros without one).
    pub fn offset(&self) -> &[f64] {
        &self.offset
    }

    /// Whether the working residuals have a free scale (lme4's families with a dispersion;
    /// an extended family's weights carry its dispersion).
    pub fn has_scale(&self) -> bool {
        match &self.family {
            ResponseFamily::Glm(f) => f.has_scale(),
            ResponseFamily::Extended(_) => false,
        }
    }

    /// Whether `μ` is a valid mean for the family.
    #[inline]
    fn valid_mu(&self, mu: f64) -> bool {
        match &self.family {
            ResponseFamily::Glm(f) => f.valid_mu(mu),
            ResponseFamily::Extended(e) => e.density.valid_mu(mu),
        }
    }

    /// Checks that a starting linear predictor and the means it gives are valid for the family
    /// (an error names the row as `spec`, this response's model, numbers it).
    pub fn check_start(&self, eta: &[f64], spec: &ModelSpec<'_>) -> Result<()> {
        let link = self.link;
        if let Some(i) = eta.iter().position(|e| !link.valid_eta(*e)) {
            return invalid(format!(
                "the starting linear predictor is invalid at observation {}",
                spec.observation(i)
            ));
        }
        if let Some(i) = eta.iter().position(|&e| !self.valid_mu(link.linkinv(e))) {
            return invalid(format!(
                "the starting mean is invalid at observation {}",
                spec.observation(i)
            ));
        }
        Ok(())
    }

    /// `μ = g⁻¹(η)`.
    #[inline]
    pub fn mean(&self, eta: f64) -> f64 {
        self.link.linkinv(eta)
    }

    /// `dμ/dη`.
    #[inline]
    pub fn mu_eta(&self, eta: f64) -> f64 {
        self.link.mu_eta(eta)
    }

    /// `(μ, dμ/dη)` together (one exponential for the logit and log links).
    #[inline]
    pub fn mean_and_mu_eta(&self, eta: f64) -> (f64, f64) {
        self.link.linkinv_mu_eta(eta)
    }

    /// The η-derivatives of an extended family's `aᵢ ℓᵢ` at observation `i` (PIRLS's working
    /// values), at the response's current dispersion and zero inflation, with its derivatives
    /// in the zero-inflation logit (see [`Self::row_core`]).
    #[inline]
    fn eta_derivatives(
        &self,
        fam: &ExtendedFamily,
        i: usize,
        eta: f64,
        mu: f64,
        mu_eta: f64,
    ) -> (EtaDerivatives, ZiDerivatives) {
        let (_, d, z) = self.eta_derivatives_and_value(fam, i, eta, mu, mu_eta, false);
        (d, z)
    }

    /// [`Self::eta_derivatives`] and, with `need_value`, the row's `aᵢℓᵢ`.
    #[inline]
    fn eta_derivatives_and_value(
        &self,
        fam: &ExtendedFamily,
        i: usize,
        eta: f64,
        mu: f64,
        mu_eta: f64,
        need_value: bool,
    ) -> (f64, EtaDerivatives, ZiDerivatives) {
        let phi = self.extra.phi.get(i).copied().unwrap_or(1.0);
        let zi = (!self.extra.log_zi.is_empty()).then(|| {
            (
                self.extra.log_zi[i],
                self.extra.log_not_zi[i],
                self.extra.not_zi[i],
                self.extra.zi[i],
            )
        });
        let mean = (mu, mu_eta, self.link.mu_eta_deriv_at(eta, (mu, mu_eta)));
        self.row_core(fam, i, mean, phi, self.extra.constant[i], zi, need_value)
    }

    /// Observation `i`'s `aᵢℓᵢ` (only with `need_value`, or for a zero-inflated zero, which
    /// needs it; else not meaningful), its η-derivatives and, with zero inflation, its
    /// derivatives in the zero-inflation logit `ρ`, at mean pieces `(μ, dμ/dη, d²μ/dη²)`,
    /// dispersion `phi`, the part `constant` of `ℓᵢ` that does not depend on `μ`, and
    /// `(log π, log(1 − π), 1 − π, π)` with zero inflation: the one formula behind PIRLS's
    /// weights ([`Self::eta_derivatives`]) and the gradient's row differences
    /// ([`Self::row_terms`], [`Self::paired_row_terms`]).
    ///
    /// In `ρ`: a positive count has `ℓ = log(1 − π) + ℓ_count`, so `(∂ℓ/∂ρ, −∂²ℓ/∂η∂ρ,
    /// −∂²ℓ/∂ρ²) = (−π, 0, π(1 − π))`. A zero has `ℓ = log(π + (1 − π) f₀)`; with the count
    /// part's share `r = (1 − π) f₀ / p(0)` (`∂r/∂ρ = −r(1 − r)`, `∂r/∂η = r(1 − r) g`, `g` the
    /// count part's `∂ log f₀/∂η`): `(1 − r − π, r(1 − r) g, π(1 − π) − r(1 − r))`.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn row_core(
        &self,
        fam: &ExtendedFamily,
        i: usize,
        (mu, mu_eta, d2mu): (f64, f64, f64),
        phi: f64,
        constant: f64,
        zi: Option<(f64, f64, f64, f64)>,
        need_value: bool,
    ) -> (f64, EtaDerivatives, ZiDerivatives) {
        let n = self.n_trials[i];
        let y = self.y[i];
        let is_zi_zero = y == 0.0 && zi.is_some();
        let logs = self.extra.beta_logs.get(i).copied().unwrap_or((0.0, 0.0));
        let mut d = fam
            .density
            .varying_with(y, logs, mu, phi, n, need_value || is_zi_zero);
        d.value += constant;
        let mut g = d.d1 * mu_eta;
        let mut l2 = d.d2 * mu_eta * mu_eta + d.d1 * d2mu;
        // The beta's information in μ does not depend on y: observed and expected agree (and
        // the trigammas are not formed twice).
        let info_mu = if fam.density == Density::Beta {
            -d.d2
        } else {
            fam.density.expected_information(mu, phi, n)
        };
        let mut expected = info_mu * mu_eta * mu_eta;
        let mut value = d.value;
        let mut in_zi = ZiDerivatives::default();
        let a = self.prior_w[i];
        if let Some((lz, lnz, keep, pi)) = zi {
            expected *= keep;
            if y == 0.0 {
                // p(0) = π + (1 − π) f(0); r = (1 − π) f(0) / p(0) = 1/(1 + π/((1 − π) f(0))) is
                // the weight of the count part (one exponential, no logarithm; with the value
                // log p(0), the same exponential gives both).
                let r = if need_value {
                    let (log_p0, r) = log_add_exp_with_share(lz, lnz + d.value);
                    value = log_p0;
                    r
                } else {
                    1.0 / (1.0 + (lz - lnz - d.value).exp())
                };
                let q = r * (1.0 - r);
                let g0 = g;
                g = r * g0;
                l2 = r * (g0 * g0 + l2) - g * g;
                in_zi = ZiDerivatives {
                    gradient: a * (1.0 - r - pi),
                    cross: a * q * g0,
                    observed: a * (pi * keep - q),
                };
            } else {
                value += lnz;
                in_zi = ZiDerivatives {
                    gradient: -a * pi,
                    cross: 0.0,
                    observed: a * pi * keep,
                };
            }
        }
        (
            a * value,
            EtaDerivatives {
                gradient: a * g,
                observed: -a * l2,
                expected: a * expected,
            },
            in_zi,
        )
    }

    /// For an extended family, observation `i`'s current `(log φᵢ, logit πᵢ)` (0 for a part the
    /// family does not have).
    pub(super) fn row_parts(&self, i: usize) -> (f64, f64) {
        let log_phi = self.extra.phi.get(i).map_or(0.0, |p| p.ln());
        let zi_logit = match (self.extra.log_zi.get(i), self.extra.log_not_zi.get(i)) {
            (Some(lz), Some(lnz)) => lz - lnz,
            _ => 0.0,
        };
        (log_phi, zi_logit)
    }

    /// The mean-side pieces of a row at linear predictor `eta`: `(μ, dμ/dη, d²μ/dη²)`, or
    /// `None` where η or μ is invalid for the family.
    pub(super) fn row_mean(&self, eta: f64) -> Option<(f64, f64, f64)> {
        let ResponseFamily::Extended(fam) = &self.family else {
            return None;
        };
        let (mu, mu_eta) = self.link.linkinv_mu_eta(eta);
        (self.link.valid_eta(eta) && fam.density.valid_mu(mu))
            .then(|| (mu, mu_eta, self.link.mu_eta_deriv_at(eta, (mu, mu_eta))))
    }

    /// The dispersion-side pieces of row `i` at `log φ`: `(φ, the part of ℓᵢ that depends on φ
    /// alone)` (`(1, 0)` without a dispersion).
    pub(super) fn row_dispersion(&self, i: usize, log_phi: f64) -> (f64, f64) {
        match &self.family {
            ResponseFamily::Extended(fam) if fam.disp.is_some() => {
                let phi = log_phi.exp();
                let c = fam
                    .density
                    .dispersion_constant(self.y[i], phi, self.n_trials[i]);
                (phi, c)
            }
            _ => (1.0, 0.0),
        }
    }

    /// `(log π, log(1 − π))` at the zero-inflation logit `zi_logit`.
    pub(super) fn zero_inflation_logs(zi_logit: f64) -> (f64, f64) {
        let lz = -log_add_exp(0.0, -zi_logit);
        (lz, lz - zi_logit)
    }

    /// For an extended family, observation `i`'s `aᵢℓᵢ`, its η-derivative, its observed
    /// information `−∂²(aᵢℓᵢ)/∂η²` and the weight of its row in the Laplace determinant (the
    /// observed information, or the expected one for [`LaplaceWeights::Expected`]) from the
    /// pieces of its three predictors ([`Self::row_mean`],
    /// [`Self::row_dispersion`], [`Self::zero_inflation_logs`], read only when the family has
    /// that part): the row's likelihood as a function of η, log φ and logit π, formed from
    /// scratch (the gradient of the Laplace criterion differentiates it). Without `need_value`
    /// the first element is not meaningful.
    pub(super) fn row_terms(
        &self,
        i: usize,
        mean: (f64, f64, f64),
        (phi, phi_constant): (f64, f64),
        (lz, lnz): (f64, f64),
        need_value: bool,
    ) -> Option<(f64, f64, f64, f64)> {
        let ResponseFamily::Extended(fam) = &self.family else {
            return None;
        };
        let constant = self.extra.fixed_constant.get(i).copied()? + phi_constant;
        // π only enters the derivatives in ρ, which are not used here: 1 − (1 − π) saves an
        // exponential per row of the gradient's differences.
        let zi = fam.zi.is_some().then(|| {
            let keep = lnz.exp();
            (lz, lnz, keep, 1.0 - keep)
        });
        let (value, d, _) = self.row_core(fam, i, mean, phi, constant, zi, need_value);
        let laplace = match fam.laplace {
            LaplaceWeights::Observed => d.observed,
            LaplaceWeights::Expected => d.expected,
        };
        Some((value, d.gradient, d.observed, laplace))
    }

    /// Row `i`'s [`RowJet`] at linear predictor `eta`, whose mean and its slope `mean`
    /// (`(μ, dμ/dη)` from [`Link::linkinv_mu_eta`], as PIRLS keeps them) are known (`None`
    /// for a GLM family with a scale or where η or μ is invalid). With `ℓ′, ℓ″, ℓ‴` the μ-derivatives of the density and `μ′, μ″, μ‴` the
    /// link's, the count part has `g = ℓ′μ′`, `l₂ = ℓ″μ′² + ℓ′μ″`, `l₃ = ℓ‴μ′³ + 3ℓ″μ′μ″ + ℓ′μ‴`.
    /// A zero-inflated zero has `ℓ = log(π + (1 − π) f₀)`; with the count part's share
    /// `r = (1 − π) f₀ / p(0)` (which moves as `∂r/∂η = r(1 − r) g`, `∂r/∂ρ = −r(1 − r)`):
    /// `s = r g`, `l₂ = r l₂ + r(1 − r) g²`, `l₃ = r l₃ + 3r(1 − r) g l₂ + r(1 − r)(1 − 2r) g³`,
    /// `∂ℓ/∂ρ = 1 − r − π`; a positive count has `ℓ = log(1 − π) + ℓ_count`, so `∂ℓ/∂ρ = −π`
    /// and nothing else moves with `ρ`. The expected information carries the factor `1 − π`.
    pub(super) fn row_jet(&self, i: usize, eta: f64, mean: (f64, f64)) -> Option<RowJet> {
        let fam = match &self.family {
            ResponseFamily::Extended(fam) => fam,
            ResponseFamily::Glm(family) => return self.glm_row_jet(*family, i, eta, mean),
        };
        let y = self.y[i];
        let zi = (!self.extra.log_zi.is_empty()).then(|| {
            (
                self.extra.log_zi[i],
                self.extra.log_not_zi[i],
                self.extra.not_zi[i],
            )
        });
        let c = self.count_jet(fam, i, eta, mean, y == 0.0 && zi.is_some())?;
        let (mut s, mut l2, mut l3) = (c.g, c.l2, c.l3);
        let (mut l_zi, mut s_zi, mut l2_zi) = (0.0, 0.0, 0.0);
        // 1 − π and its derivative in ρ, −π(1 − π).
        let (mut keep, mut keep_zi) = (1.0, 0.0);
        // The count part's share of a zero-inflated zero (1 elsewhere).
        let mut share = 1.0;
        if let Some((lz, lnz, not_zi)) = zi {
            let pi = lz.exp();
            keep = not_zi;
            keep_zi = -pi * keep;
            let r = self.count_share(i, &c, lz, lnz);
            share = r;
            let z = ZeroInflatedRow::new(y == 0.0, &c, r, pi, keep);
            (s, l2, l3) = (z.d1[0], z.d2[0], z.d3[0]);
            (l_zi, s_zi, l2_zi) = (z.d1[1], z.d2[1], z.d3[1]);
        }
        let a = self.prior_w[i];
        let w = -a * l2;
        let (density, mu, phi, n) = (fam.density, c.mu, c.phi, self.n_trials[i]);
        let (m1, m2) = (c.m1, c.m2);
        let (wl, wl_eta, wl_zi) = match fam.laplace {
            LaplaceWeights::Observed => (w, -a * l3, -a * l2_zi),
            LaplaceWeights::Expected => {
                // The beta's observed and expected information in μ agree.
                let (info, slope) = if density == Density::Beta {
                    (-c.d.d2, -c.d3)
                } else {
                    (
                        density.expected_information(mu, phi, n),
                        density.expected_information_slope(mu, phi, n),
                    )
                };
                let e = info * m1 * m1;
                let e_eta = slope * m1 * m1 * m1 + 2.0 * info * m1 * m2;
                (a * e * keep, a * e_eta * keep, a * e * keep_zi)
            }
        };
        let dispersion = fam
            .disp
            .as_ref()
            .and_then(|_| density.dispersion_slopes(y, mu, phi, n))
            .and_then(|slopes| {
                let zero = y == 0.0 && zi.is_some();
                let (l, sp, d2) = dispersion_row(zero, &c, share, slopes);
                let wl_phi = match fam.laplace {
                    LaplaceWeights::Observed => -a * d2[0],
                    LaplaceWeights::Expected => {
                        let slope = density.expected_information_dispersion_slope(mu, phi)?;
                        a * slope * m1 * m1 * keep
                    }
                };
                Some([a * l, a * sp[0], wl_phi])
            });
        Some(RowJet {
            s: a * s,
            w,
            wl,
            wl_eta,
            l_zi: a * l_zi,
            s_zi: a * s_zi,
            wl_zi,
            dispersion,
        })
    }

    /// Row `i`'s [`RowJet`] for one of lme4's families (`None` where η or μ is invalid); for
    /// those with a dispersion the derivatives of `−d/2` (the unit deviance at dispersion 1,
    /// what PIRLS minimizes). With `a` the prior weight (the trials for a binomial
    /// proportion), `V` the variance function and `μ′, μ″` the link's derivatives:
    /// `s = a(y − μ)μ′/V`; `w` the observed information
    /// ([`Family::observed_weight`]); the Laplace determinant takes the expected information
    /// `wl = aμ′²/V`, as lme4 does, with `∂wl/∂η = a(2μ′μ″/V − μ′³V′/V²)`.
    fn glm_row_jet(
        &self,
        family: Family,
        i: usize,
        eta: f64,
        (mu, m1): (f64, f64),
    ) -> Option<RowJet> {
        let link = self.link;
        if !(link.valid_eta(eta) && family.valid_mu(mu)) {
            return None;
        }
        let m2 = link.mu_eta_deriv_at(eta, (mu, m1));
        let (y, a) = (self.y[i], self.prior_w[i]);
        let (v, dv) = (family.variance(mu), family.variance_deriv(mu));
        let wl = a * m1 * m1 / v;
        Some(RowJet {
            s: a * (y - mu) * m1 / v,
            w: family.observed_weight_at(y, mu, m1, m2, a),
            wl,
            wl_eta: a * (2.0 * m1 * m2 / v - m1 * m1 * m1 * dv / (v * v)),
            ..RowJet::default()
        })
    }

    /// The count part's [`CountJet`] of row `i` at linear predictor `eta`, at the response's
    /// current dispersion (its value only with `need_value`); `None` where η or μ is invalid.
    #[inline]
    fn count_jet(
        &self,
        fam: &ExtendedFamily,
        i: usize,
        eta: f64,
        (mu, m1): (f64, f64),
        need_value: bool,
    ) -> Option<CountJet> {
        let link = self.link;
        if !(link.valid_eta(eta) && fam.density.valid_mu(mu)) {
            return None;
        }
        let (m2, m3) = (
            link.mu_eta_deriv_at(eta, (mu, m1)),
            link.mu_eta_deriv2_at(eta, (mu, m1)),
        );
        let (y, n) = (self.y[i], self.n_trials[i]);
        let phi = self.extra.phi.get(i).copied().unwrap_or(1.0);
        let logs = self.extra.beta_logs.get(i).copied().unwrap_or((0.0, 0.0));
        let density = fam.density;
        let d = density.varying_with(y, logs, mu, phi, n, need_value);
        let d3 = density.third_derivative(y, mu, phi, n);
        Some(CountJet {
            mu,
            phi,
            m1,
            m2,
            g: d.d1 * m1,
            l2: d.d2 * m1 * m1 + d.d1 * m2,
            l3: d3 * m1 * m1 * m1 + 3.0 * d.d2 * m1 * m2 + d.d1 * m3,
            d,
            d3,
        })
    }

    /// For a zero at `(log π, log(1 − π)) = (lz, lnz)`, the count part's share of its
    /// probability, `r = (1 − π) f₀ / p(0)` (1 for a positive count, which has no such mixture).
    #[inline]
    fn count_share(&self, i: usize, c: &CountJet, lz: f64, lnz: f64) -> f64 {
        if self.y[i] == 0.0 {
            let value = c.d.value + self.extra.constant[i];
            1.0 / (1.0 + (lz - lnz - value).exp())
        } else {
            1.0
        }
    }

    /// For a zero-inflated family, row `i`'s [`PairedRowJet`] at linear predictor `eta` and the
    /// response's current φᵢ and πᵢ (`None` for another family or where η or μ is invalid):
    /// the closed form of what central differences of [`Self::paired_row_terms`] in η and ρ
    /// would give, from the count part's jet and [`ZeroInflatedRow`].
    pub(super) fn paired_row_jet(&self, i: usize, eta: f64) -> Option<PairedRowJet> {
        let ResponseFamily::Extended(fam) = &self.family else {
            return None;
        };
        fam.zi.as_ref()?;
        let y = self.y[i];
        let c = self.count_jet(fam, i, eta, self.link.linkinv_mu_eta(eta), y == 0.0)?;
        let (lz, lnz) = (self.extra.log_zi[i], self.extra.log_not_zi[i]);
        let r = self.count_share(i, &c, lz, lnz);
        let z = ZeroInflatedRow::new(y == 0.0, &c, r, self.extra.zi[i], self.extra.not_zi[i]);
        let a = self.prior_w[i];
        let info = |v: [f64; 3]| v.map(|x| -a * x);
        let dispersion = fam
            .disp
            .as_ref()
            .and_then(|_| {
                fam.density
                    .dispersion_slopes(y, c.mu, c.phi, self.n_trials[i])
            })
            .map(|slopes| {
                let (l, sp, d2) = dispersion_row(y == 0.0, &c, r, slopes);
                PairedDispersion {
                    l: a * l,
                    s: sp.map(|x| a * x),
                    w: info(d2),
                }
            });
        Some(PairedRowJet {
            s: z.d1.map(|x| a * x),
            w: info(z.d2),
            w_eta: info([z.d3[0], z.d3[1], z.d3[2]]),
            w_rho: info([z.d3[1], z.d3[2], z.d3[3]]),
            dispersion,
        })
    }

    /// The deviance term of observation `i` at mean `mu` (linear predictor `eta`): lme4's
    /// `wᵢ d(yᵢ, μ)`, or `−2 aᵢ ℓᵢ` for an extended family.
    #[inline]
    fn deviance_term(&self, i: usize, mu: f64) -> f64 {
        match &self.family {
            ResponseFamily::Glm(f) => f.dev_resid(self.y[i], mu, self.prior_w[i]),
            ResponseFamily::Extended(fam) => {
                let phi = self.extra.phi.get(i).copied().unwrap_or(1.0);
                let logs = self.extra.beta_logs.get(i).copied().unwrap_or((0.0, 0.0));
                let mut l = fam
                    .density
                    .varying_value(self.y[i], logs, mu, phi, self.n_trials[i])
                    + self.extra.constant[i];
                if !self.extra.log_zi.is_empty() {
                    let (lz, lnz) = (self.extra.log_zi[i], self.extra.log_not_zi[i]);
                    l = if self.y[i] > 0.0 {
                        lnz + l
                    } else {
                        log_add_exp(lz, lnz + l)
                    };
                }
                -2.0 * self.prior_w[i] * l
            }
        }
    }

    /// The deviance term of observation `i` at mean `mu` (see [`Self::evaluate_rows`]).
    #[inline]
    pub fn dev_resid(&self, i: usize, mu: f64) -> f64 {
        self.deviance_term(i, mu)
    }

    /// For the observations `first..first + eta.len()` at linear predictor `eta`: μ and dμ/dη,
    /// and with `deviance` also the deviance terms into `dev` (lme4's deviance residuals, or
    /// `−2 aᵢ ℓᵢ` for an extended family). False if some η or μ is invalid for the family.
    #[inline]
    pub fn evaluate_rows(
        &self,
        first: usize,
        eta: &[f64],
        mu: &mut [f64],
        mu_eta: &mut [f64],
        dev: &mut [f64],
        deviance: bool,
    ) -> bool {
        let link = self.link;
        let mut ok = true;
        match &self.family {
            ResponseFamily::Glm(family) => {
                let rows = first..first + eta.len();
                let y = &self.y[rows.clone()];
                let pw = &self.prior_w[rows];
                let values = mu.iter_mut().zip(mu_eta.iter_mut()).zip(dev.iter_mut());
                for (((m, d), dv), ((&e, &yi), &w)) in values.zip(eta.iter().zip(y).zip(pw)) {
                    (*m, *d) = link.linkinv_mu_eta(e);
                    ok &= link.valid_eta(e) && family.valid_mu(*m);
                    if deviance {
                        *dv = family.dev_resid(yi, *m, w);
                    }
                }
            }
            ResponseFamily::Extended(fam) => {
                for (k, &e) in eta.iter().enumerate() {
                    let (m, d) = link.linkinv_mu_eta(e);
                    mu[k] = m;
                    mu_eta[k] = d;
                    let valid = link.valid_eta(e) && fam.density.valid_mu(m);
                    ok &= valid;
                    if deviance && valid {
                        dev[k] = self.deviance_term(first + k, m);
                    }
                }
            }
        }
        ok
    }

    /// [`Self::evaluate_rows`] with `deviance` for a zero-inflated family with random effects
    /// in its zero-inflation logit, in the same pass also each row's [`PairedRowDerivatives`]
    /// into `derivs` (what [`Self::paired_working_values`] needs next; its deviance term is
    /// `−2` times the value that comes with them). False if some η or μ is invalid.
    pub(super) fn evaluate_rows_paired(
        &self,
        first: usize,
        eta: &[f64],
        mu: &mut [f64],
        mu_eta: &mut [f64],
        dev: &mut [f64],
        derivs: &mut [PairedRowDerivatives],
    ) -> bool {
        let ResponseFamily::Extended(fam) = &self.family else {
            return false;
        };
        let link = self.link;
        let mut ok = true;
        for (k, &e) in eta.iter().enumerate() {
            let (m, d) = link.linkinv_mu_eta(e);
            mu[k] = m;
            mu_eta[k] = d;
            let valid = link.valid_eta(e) && fam.density.valid_mu(m);
            ok &= valid;
            if valid {
                let (value, de, dz) = self.eta_derivatives_and_value(fam, first + k, e, m, d, true);
                dev[k] = -2.0 * value;
                derivs[k] = PairedRowDerivatives { eta: de, zi: dz };
            }
        }
        ok
    }

    /// Working weights `w` and working response `z` at `(η, μ, dμ/dη)`:
    /// `w = a (dμ/dη)²/V(μ)` and `z = η − offset + (y − μ)/(dμ/dη)`, minus `xb` with `uonly`
    /// (PIRLS over the random effects alone, β fixed). With `newton` the weights are the
    /// observed information `−∂²ℓ/∂η²` and the response `η − offset + (∂ℓ/∂η)/w` wherever that
    /// information is finite and not 0 ([`WeightChoice::Newton`]) or positive and finite
    /// ([`WeightChoice::NewtonPositive`]), the expected, Fisher, values elsewhere, so that a
    /// PIRLS step is a Newton step; for a canonical link the two agree and `newton` is ignored.
    /// (`newton` is any `choice` but [`WeightChoice::Final`].)
    ///
    /// For an extended family the response is always `η − offset + (∂ℓ/∂η)/w`; during the
    /// iterations `w` is the observed information (see [`WeightChoice`]; the expected one where
    /// it is not usable); at the modes (`Final`, the factor of the Laplace determinant) `w` is the
    /// information [`LaplaceWeights`] names for the random effects alone (`uonly`, stage 2),
    /// and the expected one for the joint system of stage 1 and the fit's `R_X`: the observed
    /// information of a zero-inflated zero can be negative, which the random effects' block
    /// (with its identity) absorbs but the fixed effects' block need not.
    ///
    /// Returns whether some row of lme4's families had a negative observed information that
    /// [`WeightChoice::NewtonPositive`] replaced by the expected one (the step is then not a
    /// Newton step); `false` for the extended families.
    #[allow(clippy::too_many_arguments)]
    pub fn working_values(
        &self,
        eta: &[f64],
        mu: &[f64],
        mu_eta: &[f64],
        xb: &[f64],
        uonly: bool,
        choice: WeightChoice,
        work_w: &mut [f64],
        work_z: &mut [f64],
    ) -> bool {
        let newton = choice != WeightChoice::Final;
        let family = match &self.family {
            ResponseFamily::Glm(f) => *f,
            ResponseFamily::Extended(fam) => {
                for i in 0..eta.len() {
                    let (d, _) = self.eta_derivatives(fam, i, eta[i], mu[i], mu_eta[i]);
                    // A Newton step takes the observed information even where it is 0 or
                    // tiny: a zero-inflated zero with a large mean is all but surely a
                    // structural zero, with `∂ℓ/∂η` and `∂²ℓ/∂η²` both near 0, and standing
                    // in the expected information `μ′²(1 − π)/V` there damped its group's
                    // step, so that PIRLS converged only linearly (rate 0.88: 100 iterations
                    // per evaluation on a simulated zero-inflated Poisson with crossed terms,
                    // whose fit then stopped 5 log-likelihood units below glmmTMB's).
                    let usable = |v: f64| {
                        v.is_finite()
                            && match choice {
                                WeightChoice::Newton => true,
                                _ => v > 0.0,
                            }
                    };
                    let w = if newton {
                        if usable(d.observed) {
                            d.observed
                        } else {
                            d.expected
                        }
                    } else if fam.laplace == LaplaceWeights::Observed && uonly {
                        d.observed
                    } else {
                        d.expected
                    };
                    let step = if w != 0.0 && w.is_finite() {
                        d.gradient / w
                    } else {
                        0.0
                    };
                    let z = eta[i] - self.offset[i] + step;
                    work_w[i] = w;
                    work_z[i] = if uonly { z - xb[i] } else { z };
                }
                return false;
            }
        };
        let y = self.y;
        let newton = newton && !family.is_canonical();
        // A plain Newton step takes the observed information wherever it is finite and not 0,
        // negative ones included (the system as a whole, with the random effects' identity,
        // stays positive definite as a rule; where it does not, PIRLS takes the
        // `NewtonPositive` step): standing in the expected information for the rows whose
        // observed one is negative (a probit or cloglog row far from its mean, an inverse
        // Gaussian y < μ/2 with the log link) made the steps converge only linearly, at a rate
        // of 0.13 on an inverse Gaussian fit, and for the families with a dispersion the
        // criterion takes the modes' error to first order.
        let any_sign = choice == WeightChoice::Newton;
        let mut stood_in = false;
        let out = work_w.iter_mut().zip(work_z);
        let state = mu.iter().zip(mu_eta).zip(eta);
        let data = y.iter().zip(&self.prior_w).zip(&self.offset).zip(xb);
        for ((w, z), (((&mu, &me), &eta), (((&yi, &pw), &off), &xb))) in out.zip(state.zip(data)) {
            let expected = pw * me * me / family.variance(mu);
            let mut wi = expected;
            let mut zi = eta - off + (yi - mu) / me;
            if newton {
                let d2 = family.link.mu_eta_deriv_at(eta, (mu, me));
                let observed = family.observed_weight_at(yi, mu, me, d2, pw);
                if observed.is_finite() && (observed > 0.0 || (any_sign && observed != 0.0)) {
                    // ∂ℓ/∂η = w_expected (y − μ)/μ'.
                    let newton_z = eta - off + expected * ((yi - mu) / me) / observed;
                    if newton_z.is_finite() {
                        wi = observed;
                        zi = newton_z;
                    }
                } else if observed < 0.0 {
                    stood_in = true;
                }
            }
            *w = wi;
            *z = if uonly { zi - xb } else { zi };
        }
        stood_in
    }

    /// For a zero-inflated family, row `i`'s `aᵢℓᵢ` at linear predictor `eta`, log dispersion
    /// `log_phi` (ignored without a dispersion) and zero-inflation logit `rho`, formed from
    /// scratch, with its gradient in `(η, ρ)` and its observed information
    /// `−∂²(aᵢℓᵢ)/∂(η, ρ)²` as `(ηη, ηρ, ρρ)`: what the gradient of the Laplace deviance with
    /// random effects in both predictors differentiates. `None` for another family or where η
    /// or μ is invalid.
    pub(super) fn paired_row_terms(
        &self,
        i: usize,
        eta: f64,
        log_phi: f64,
        rho: f64,
    ) -> Option<(f64, [f64; 2], [f64; 3])> {
        let ResponseFamily::Extended(fam) = &self.family else {
            return None;
        };
        fam.zi.as_ref()?;
        let mean = self.row_mean(eta)?;
        let (phi, phi_constant) = self.row_dispersion(i, log_phi);
        let (lz, lnz) = Self::zero_inflation_logs(rho);
        let constant = self.extra.fixed_constant.get(i).copied()? + phi_constant;
        let zi = Some((lz, lnz, lnz.exp(), lz.exp()));
        let (value, d, z) = self.row_core(fam, i, mean, phi, constant, zi, true);
        Some((
            value,
            [d.gradient, z.gradient],
            [d.observed, z.cross, z.observed],
        ))
    }

    /// [`Self::working_values`] for a model with random effects in both the mean's predictor and
    /// the zero-inflation logit ([`PairedWorkingValues`]): per observation the 2 × 2 weight and the
    /// right-hand side `W η̃ + ∂ℓ/∂(η, ρ)`, with `η̃ = (η − offset [− Xβ with uonly], zb)` and `zb`
    /// the random part of the logit; `derivs`, where given, are the rows' derivatives at this
    /// state from [`Self::evaluate_rows_paired`] (else they are formed here). The weight is the
    /// observed information
    /// `−∂²ℓ/∂(η, ρ)²` for the Newton steps and for the Laplace determinant of the random effects
    /// (glmmTMB's), and for [`WeightChoice::NewtonPositive`] where that is not positive definite
    /// (a zero can make it indefinite), and for the joint system's `Final` weights, the diagonal
    /// of expected informations `(E[−∂²ℓ/∂η²], π(1 − π))`, which is.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn paired_working_values(
        &self,
        eta: &[f64],
        mu: &[f64],
        mu_eta: &[f64],
        xb: &[f64],
        zb: &[f64],
        uonly: bool,
        choice: WeightChoice,
        derivs: Option<&[PairedRowDerivatives]>,
        out: &mut PairedWorkingValues,
    ) {
        let ResponseFamily::Extended(fam) = &self.family else {
            return;
        };
        for i in 0..eta.len() {
            let (d, z) = match derivs {
                Some(c) => (c[i].eta, c[i].zi),
                None => self.eta_derivatives(fam, i, eta[i], mu[i], mu_eta[i]),
            };
            let observed = (d.observed, z.cross, z.observed);
            let positive = observed.0 > 0.0 && observed.2 > 0.0 && {
                observed.0 * observed.2 - observed.1 * observed.1 > 0.0
            };
            let finite = observed.0.is_finite() && observed.1.is_finite() && observed.2.is_finite();
            let a = self.prior_w[i];
            let expected = (d.expected, 0.0, a * self.extra.zi[i] * self.extra.not_zi[i]);
            let (wm, wc, wz) = match choice {
                WeightChoice::Newton if finite => observed,
                WeightChoice::NewtonPositive if positive => observed,
                WeightChoice::NewtonPositive if finite => absolute_eigenvalues(observed),
                WeightChoice::Final if uonly && finite => observed,
                _ => expected,
            };
            let tm = eta[i] - self.offset[i] - if uonly { xb[i] } else { 0.0 };
            let tz = zb[i];
            out.w_mean[i] = wm;
            out.w_cross[i] = wc;
            out.w_zi[i] = wz;
            out.r_mean[i] = wm * tm + wc * tz + d.gradient;
            out.r_zi[i] = wc * tm + wz * tz + z.gradient;
        }
    }

    /// `−2 log p(y | μ)` (R's family aic for lme4's families) at the means `mu`, given the sum
    /// of the deviance terms `dev` there (for an extended family that sum is the answer).
    pub fn minus_two_log_lik(&self, mu: &[f64], dev: f64) -> f64 {
        match (&self.family, self.saturated_aic) {
            (ResponseFamily::Extended(_), _) => dev,
            (ResponseFamily::Glm(_), Some(c)) => dev + c,
            (ResponseFamily::Glm(f), None) => f.aic_with(
                &self.aic_sums,
                self.y,
                &self.n_trials,
                mu,
                &self.prior_w,
                dev,
            ),
        }
    }

    /// The sum of the deviance terms, observation by observation in order.
    pub fn deviance_residual_sum(&self, mu: &[f64]) -> f64 {
        (0..self.prior_w.len())
            .map(|i| self.dev_resid(i, mu[i]))
            .sum()
    }

    /// Σ of squared weighted Pearson residuals `a (y − E y)²/Var(y)` (for a zero-inflated
    /// family with the mixture's mean and variance).
    pub fn pearson_sum(&self, mu: &[f64]) -> f64 {
        (0..self.prior_w.len())
            .map(|i| {
                let (mean, var) = match &self.family {
                    ResponseFamily::Glm(f) => (mu[i], f.variance(mu[i])),
                    ResponseFamily::Extended(fam) => {
                        let phi = self.extra.phi.get(i).copied().unwrap_or(1.0);
                        let n = self.n_trials[i];
                        let scale = if fam.density == Density::BetaBinomial {
                            n
                        } else {
                            1.0
                        };
                        let m = scale * mu[i];
                        let v = fam.density.variance(mu[i], phi, n);
                        match self.extra.log_not_zi.get(i) {
                            Some(l) => {
                                let keep = l.exp();
                                let mean = keep * m;
                                (mean, keep * (v + m * m) - mean * mean)
                            }
                            None => (m, v),
                        }
                    }
                };
                let r = self.y[i] - mean;
                self.prior_w[i] * r * r / var
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A random intercept over two groups of two observations (`z` the four 1s).
    fn two_groups(z: &[f64]) -> crate::spec::RandomTerm<'_> {
        crate::spec::RandomTerm {
            levels: vec![0, 0, 1, 1],
            n_levels: 2,
            z,
            q: 1,
            factor_id: 0,
            predictor: crate::spec::Predictor::Mean,
        }
    }

    /// The observed information and gradient of an extended family, zero-inflated, against
    /// central differences of its log-likelihood in η.
    #[test]
    fn zero_inflated_derivatives_match_differences() {
        let n = 4;
        let y = [0.0, 3.0, 0.0, 1.0];
        let x: Vec<f64> = vec![1.0; n];
        let spec_x = vec![1.0; n];
        let z = vec![1.0; n];
        let spec = ModelSpec::new(&y, &spec_x, 1, None, None, vec![two_groups(&z)]).expect("spec");
        for density in [
            Density::Poisson,
            Density::NegBinomial2,
            Density::NegBinomial1,
        ] {
            let fam = ExtendedFamily {
                density,
                link: Link::Log,
                disp: density.has_dispersion().then(|| ParameterModel {
                    x: x.clone(),
                    k: 1,
                    offset: None,
                }),
                zi: Some(ParameterModel {
                    x: x.clone(),
                    k: 1,
                    offset: None,
                }),
                laplace: LaplaceWeights::Observed,
            };
            let nx = fam.n_extra();
            let fam_copy = fam.clone();
            let mut r = Response::new(&spec, ResponseFamily::Extended(fam), vec![1.0; n])
                .expect("response");
            let extra: Vec<f64> = if nx == 2 { vec![0.4, -0.8] } else { vec![-0.8] };
            r.set_extra(&extra).expect("extra");
            for i in 0..n {
                let l = |e: f64| -0.5 * r.deviance_term(i, Link::Log.linkinv(e));
                let eta = 0.7;
                let h = 1e-4;
                let (d, _) = r.eta_derivatives(&fam_copy, i, eta, eta.exp(), eta.exp());
                let g = (l(eta + h) - l(eta - h)) / (2.0 * h);
                let h2 = -(l(eta + h) - 2.0 * l(eta) + l(eta - h)) / (h * h);
                assert!((d.gradient - g).abs() < 1e-6, "{density:?} {i} gradient");
                assert!((d.observed - h2).abs() < 1e-5, "{density:?} {i} hessian");
            }
        }
    }

    /// lme4's inverse Gaussian with the log link, whose observed information `1/μ + 2(y − μ)/μ²`
    /// is negative where `y < μ/2`: a Newton step takes it as it is, with the working response
    /// `η + s/w` (`s` the score), `NewtonPositive` and the final factor take the expected
    /// information `1/μ` and the Fisher response there; rows with positive observed
    /// information get it from both Newton choices.
    #[test]
    fn glm_newton_weights_keep_negative_observed_information() {
        let y = [0.2, 3.0, 0.5, 1.0];
        let x = vec![1.0; 4];
        let z = vec![1.0; 4];
        let spec = ModelSpec::new(&y, &x, 1, None, None, vec![two_groups(&z)]).expect("spec");
        let family = crate::model::family::Family::new("inverse.gaussian", "log").expect("family");
        let r = Response::new(&spec, ResponseFamily::Glm(family), vec![1.0; 4]).expect("response");
        let eta = [0.3_f64; 4];
        let mu: Vec<f64> = eta.iter().map(|e| e.exp()).collect();
        let xb = [0.0; 4];
        let values = |choice| {
            let (mut w, mut z) = (vec![0.0; 4], vec![0.0; 4]);
            r.working_values(&eta, &mu, &mu, &xb, false, choice, &mut w, &mut z);
            (w, z)
        };
        let (newton, positive, fisher) = (
            values(WeightChoice::Newton),
            values(WeightChoice::NewtonPositive),
            values(WeightChoice::Final),
        );
        for i in 0..4 {
            let m = mu[i];
            let (observed, expected) = (1.0 / m + 2.0 * (y[i] - m) / (m * m), 1.0 / m);
            let score = (y[i] - m) / (m * m);
            assert!((newton.0[i] - observed).abs() < 1e-12, "row {i}");
            assert!(
                (newton.0[i] * (newton.1[i] - eta[i]) - score).abs() < 1e-12,
                "row {i}"
            );
            assert!((fisher.0[i] - expected).abs() < 1e-12, "row {i}");
            let want = if observed > 0.0 { observed } else { expected };
            assert!((positive.0[i] - want).abs() < 1e-12, "row {i}");
        }
        assert!(newton.0[0] < 0.0 && newton.0[2] < 0.0 && newton.0[1] > 0.0);
    }

    /// Every field of [`Response::row_jet`] against central differences of
    /// [`Response::row_terms`] in η and in the zero-inflation logit, for every density, with and
    /// without zero inflation, with both Laplace weights and several links.
    /// The absolute-eigenvalue stand-in of an indefinite 2 × 2 information.
    #[test]
    fn absolute_eigenvalues_of_two_by_two() {
        // [2 3; 3 −1] has eigenvalues (1 ± √45)/2; the result has their absolute values and the
        // same eigenvectors.
        let (a, b, c) = absolute_eigenvalues((2.0, 3.0, -1.0));
        let trace = a + c;
        let det = a * c - b * b;
        let (l1, l2) = ((1.0 + 45f64.sqrt()) / 2.0, (1.0 - 45f64.sqrt()) / 2.0);
        assert!((trace - (l1.abs() + l2.abs())).abs() < 1e-12);
        assert!((det - l1.abs() * l2.abs()).abs() < 1e-12);
        // An eigenvector of the input is one of the output.
        let v = (3.0, l1 - 2.0);
        let (w0, w1) = (a * v.0 + b * v.1, b * v.0 + c * v.1);
        assert!((w0 * v.1 - w1 * v.0).abs() < 1e-12);
        // Positive definite input unchanged.
        let (a, b, c) = absolute_eigenvalues((2.0, 0.5, 1.0));
        assert!((a - 2.0).abs() < 1e-12 && (b - 0.5).abs() < 1e-12 && (c - 1.0).abs() < 1e-12);
    }

    /// A zero-inflated count response on `spec` (intercept-only dispersion and zero-inflation
    /// models, log φ = 0.4 where the density has one, zero-inflation intercept −0.8) with the
    /// random part `zb` of the zero-inflation logit.
    fn zero_inflated_response<'a>(
        spec: &'a ModelSpec<'a>,
        density: Density,
        link: Link,
        zb: &[f64],
    ) -> Response<'a> {
        let model = || ParameterModel {
            x: vec![1.0; spec.n],
            k: 1,
            offset: None,
        };
        let fam = ExtendedFamily {
            density,
            link,
            disp: density.has_dispersion().then(model),
            zi: Some(model()),
            laplace: LaplaceWeights::Observed,
        };
        let mut r = Response::new(spec, ResponseFamily::Extended(fam), vec![1.0; spec.n])
            .expect("response");
        let extra: &[f64] = if density.has_dispersion() {
            &[0.4, -0.8]
        } else {
            &[-0.8]
        };
        r.set_extra(extra).expect("extra");
        assert!(r.set_zero_inflation_random(zb));
        r
    }

    /// The paired working values of a zero-inflated count family (2 × 2 weights and scores in
    /// η and the zero-inflation logit ρ) against central differences of the row's
    /// log-likelihood, [`Response::row_terms`].
    #[test]
    fn paired_working_values_match_differences_of_the_row_terms() {
        let n = 4;
        let ones = vec![1.0; n];
        let z = vec![1.0; n];
        let y = [0.0, 3.0, 0.0, 1.0];
        for density in [
            Density::Poisson,
            Density::NegBinomial1,
            Density::NegBinomial2,
        ] {
            let spec =
                ModelSpec::new(&y, &ones, 1, None, None, vec![two_groups(&z)]).expect("spec");
            let zb = [0.3, -0.2, 1.1, 0.0];
            let r = zero_inflated_response(&spec, density, Link::Log, &zb);
            let eta = [0.7, 0.2, -0.5, 1.4];
            let (mu, mu_eta): (Vec<f64>, Vec<f64>) =
                eta.iter().map(|&e| r.mean_and_mu_eta(e)).unzip();
            let working_values = |derivs: Option<&[PairedRowDerivatives]>| {
                let mut out = PairedWorkingValues::new(n);
                r.paired_working_values(
                    &eta,
                    &mu,
                    &mu_eta,
                    &[0.0; 4],
                    &zb,
                    true,
                    WeightChoice::Newton,
                    derivs,
                    &mut out,
                );
                out
            };
            let out = working_values(None);
            // The same from the derivatives of the pass that gives the deviance terms.
            let (mut mu2, mut mu_eta2, mut dev) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            let mut derivs = vec![PairedRowDerivatives::default(); n];
            assert!(r.evaluate_rows_paired(0, &eta, &mut mu2, &mut mu_eta2, &mut dev, &mut derivs));
            let fused = working_values(Some(&derivs));
            for i in 0..n {
                let same = |a: f64, b: f64| (a - b).abs() <= 1e-13 * (1.0 + b.abs());
                assert!(same(mu2[i], mu[i]) && same(mu_eta2[i], mu_eta[i]));
                assert!(
                    same(dev[i], r.dev_resid(i, mu[i])),
                    "{density:?} row {i} deviance"
                );
                for (a, b) in [
                    (fused.w_mean[i], out.w_mean[i]),
                    (fused.w_cross[i], out.w_cross[i]),
                    (fused.w_zi[i], out.w_zi[i]),
                    (fused.r_mean[i], out.r_mean[i]),
                    (fused.r_zi[i], out.r_zi[i]),
                ] {
                    assert!(same(a, b), "{density:?} row {i}: fused {a} vs {b}");
                }
            }
            for i in 0..n {
                let (log_phi, rho) = r.row_parts(i);
                assert!((rho - (-0.8 + zb[i])).abs() < 1e-12);
                let disp = r.row_dispersion(i, log_phi);
                let value = |e: f64, rho: f64| {
                    let mean = r.row_mean(e).expect("mean");
                    r.row_terms(i, mean, disp, Response::zero_inflation_logs(rho), true)
                        .expect("terms")
                        .0
                };
                let h = 1e-4;
                let l = |de: f64, dr: f64| value(eta[i] + de, rho + dr);
                let l_r = (l(0.0, h) - l(0.0, -h)) / (2.0 * h);
                let l_rr = (l(0.0, h) - 2.0 * l(0.0, 0.0) + l(0.0, -h)) / (h * h);
                let l_ee = (l(h, 0.0) - 2.0 * l(0.0, 0.0) + l(-h, 0.0)) / (h * h);
                let l_er = (l(h, h) - l(h, -h) - l(-h, h) + l(-h, -h)) / (4.0 * h * h);
                let l_e = (l(h, 0.0) - l(-h, 0.0)) / (2.0 * h);
                let close = |a: f64, b: f64, what: &str| {
                    assert!(
                        (a - b).abs() < 1e-5 * (1.0 + b.abs()),
                        "{density:?} row {i} {what}: {a} vs {b}"
                    )
                };
                close(out.w_mean[i], -l_ee, "w_mean");
                close(out.w_cross[i], -l_er, "w_cross");
                close(out.w_zi[i], -l_rr, "w_zi");
                let tm = eta[i];
                let tz = zb[i];
                close(out.r_mean[i], -l_ee * tm - l_er * tz + l_e, "r_mean");
                close(out.r_zi[i], -l_er * tm - l_rr * tz + l_r, "r_zi");
            }
        }
    }

    /// The closed-form paired jet (score, information and its derivatives in η and ρ) against
    /// central differences of [`Response::paired_row_terms`], zeros and positive counts.
    #[test]
    fn paired_row_jet_matches_differences_of_the_paired_row_terms() {
        let n = 4;
        let ones = vec![1.0; n];
        let z = vec![1.0; n];
        let y = [0.0, 3.0, 0.0, 1.0];
        for (density, link) in [
            (Density::Poisson, Link::Log),
            (Density::NegBinomial1, Link::Log),
            (Density::NegBinomial2, Link::Log),
            (Density::NegBinomial2, Link::Sqrt),
        ] {
            let spec =
                ModelSpec::new(&y, &ones, 1, None, None, vec![two_groups(&z)]).expect("spec");
            let r = zero_inflated_response(&spec, density, link, &[0.3, -0.2, 1.1, 0.0]);
            for (i, eta) in [0.7, 0.2, -0.5, 1.4].into_iter().enumerate() {
                let jet = r.paired_row_jet(i, eta).expect("jet");
                let (log_phi, rho) = r.row_parts(i);
                let at = |e: f64, p: f64| r.paired_row_terms(i, e, log_phi, p).expect("terms");
                let (_, s, w) = at(eta, rho);
                let h = 1e-5;
                let close = |a: f64, b: f64, what: &str| {
                    assert!(
                        (a - b).abs() < 1e-7 * (1.0 + b.abs()),
                        "{density:?} {link:?} row {i} {what}: {a} vs {b}"
                    )
                };
                for (a, b) in jet.s.into_iter().zip(s) {
                    close(a, b, "score");
                }
                for k in 0..3 {
                    close(jet.w[k], w[k], "information");
                    let (up, dn) = (at(eta + h, rho).2, at(eta - h, rho).2);
                    close(jet.w_eta[k], (up[k] - dn[k]) / (2.0 * h), "∂W/∂η");
                    let (up, dn) = (at(eta, rho + h).2, at(eta, rho - h).2);
                    close(jet.w_rho[k], (up[k] - dn[k]) / (2.0 * h), "∂W/∂ρ");
                }
                assert_eq!(jet.dispersion.is_some(), density.has_dispersion());
                if let Some(d) = jet.dispersion {
                    let at = |lp: f64| r.paired_row_terms(i, eta, lp, rho).expect("terms");
                    let (up, dn) = (at(log_phi + h), at(log_phi - h));
                    let diff = |a: f64, b: f64| (a - b) / (2.0 * h);
                    close(d.l, diff(up.0, dn.0), "∂(aℓ)/∂log φ");
                    for k in 0..2 {
                        close(d.s[k], diff(up.1[k], dn.1[k]), "∂s/∂log φ");
                    }
                    for k in 0..3 {
                        close(d.w[k], diff(up.2[k], dn.2[k]), "∂W/∂log φ");
                    }
                }
            }
        }
    }

    #[test]
    fn row_jet_matches_differences_of_the_row_terms() {
        let n = 4;
        let ones = vec![1.0; n];
        let z = vec![1.0; n];
        let counts = [0.0, 3.0, 0.0, 1.0];
        let cases: Vec<(Density, Link, [f64; 4], f64, f64)> = vec![
            (Density::Poisson, Link::Log, counts, 1.0, 0.7),
            (Density::NegBinomial2, Link::Log, counts, 1.0, 0.7),
            (Density::NegBinomial2, Link::Sqrt, counts, 1.0, 1.3),
            (Density::NegBinomial1, Link::Log, counts, 1.0, 0.7),
            (Density::Beta, Link::Logit, [0.2, 0.7, 0.45, 0.9], 1.0, 0.3),
            (
                Density::Beta,
                Link::Probit,
                [0.2, 0.7, 0.45, 0.9],
                1.0,
                -0.4,
            ),
            (
                Density::Beta,
                Link::Cloglog,
                [0.2, 0.7, 0.45, 0.9],
                1.0,
                -0.4,
            ),
            (
                Density::BetaBinomial,
                Link::Logit,
                [0.0, 3.0, 5.0, 6.0],
                6.0,
                0.3,
            ),
            (
                Density::Gaussian,
                Link::Identity,
                [1.2, -0.3, 0.5, 2.0],
                1.0,
                0.4,
            ),
            (Density::Gaussian, Link::Log, [1.2, 0.3, 0.5, 2.0], 1.0, 0.4),
            (Density::Gamma, Link::Log, [0.5, 2.1, 1.3, 0.8], 1.0, 0.2),
            (
                Density::Gamma,
                Link::Inverse,
                [0.5, 2.1, 1.3, 0.8],
                1.0,
                0.9,
            ),
        ];
        for (density, link, y, trials, eta) in cases {
            let spec =
                ModelSpec::new(&y, &ones, 1, None, None, vec![two_groups(&z)]).expect("spec");
            let counts_family = matches!(
                density,
                Density::Poisson | Density::NegBinomial2 | Density::NegBinomial1
            );
            for (with_zi, laplace) in [
                (false, LaplaceWeights::Observed),
                (false, LaplaceWeights::Expected),
                (true, LaplaceWeights::Observed),
                (true, LaplaceWeights::Expected),
            ] {
                if with_zi && !counts_family {
                    continue;
                }
                let model = || ParameterModel {
                    x: ones.clone(),
                    k: 1,
                    offset: None,
                };
                let fam = ExtendedFamily {
                    density,
                    link,
                    disp: density.has_dispersion().then(model),
                    zi: with_zi.then(model),
                    laplace,
                };
                let nx = fam.n_extra();
                let mut r = Response::new(&spec, ResponseFamily::Extended(fam), vec![trials; n])
                    .expect("response");
                let extra = [0.4, -0.8];
                let extra = if density.has_dispersion() {
                    &extra[..nx]
                } else {
                    &extra[1..1 + nx]
                };
                r.set_extra(extra).expect("extra");
                for i in 0..n {
                    let jet = r.row_jet(i, eta, r.link.linkinv_mu_eta(eta)).expect("jet");
                    let (log_phi, zi_logit) = r.row_parts(i);
                    let disp = r.row_dispersion(i, log_phi);
                    let terms = |e: f64, rho: f64| {
                        let mean = r.row_mean(e).expect("mean");
                        r.row_terms(i, mean, disp, Response::zero_inflation_logs(rho), true)
                            .expect("terms")
                    };
                    let h = 1e-4;
                    let diff = |k: usize, along_eta: bool| {
                        let at = |d: f64| {
                            let t = if along_eta {
                                terms(eta + d, zi_logit)
                            } else {
                                terms(eta, zi_logit + d)
                            };
                            [t.0, t.1, t.2, t.3][k]
                        };
                        (at(h) - at(-h)) / (2.0 * h)
                    };
                    let base = terms(eta, zi_logit);
                    let close = |got: f64, want: f64, what: &str| {
                        assert!(
                            (got - want).abs() < 1e-6 * want.abs().max(1.0),
                            "{density:?} {link:?} zi={with_zi} {laplace:?} row {i} {what}: \
                             {got} vs {want}"
                        );
                    };
                    close(jet.s, base.1, "s");
                    close(jet.w, base.2, "w");
                    close(jet.wl, base.3, "wl");
                    close(jet.s, diff(0, true), "s by differences");
                    close(jet.w, -diff(1, true), "w by differences");
                    close(jet.wl_eta, diff(3, true), "wl_eta");
                    if with_zi {
                        close(jet.l_zi, diff(0, false), "l_zi");
                        close(jet.s_zi, diff(1, false), "s_zi");
                        close(jet.wl_zi, diff(3, false), "wl_zi");
                    } else {
                        assert_eq!((jet.l_zi, jet.s_zi, jet.wl_zi), (0.0, 0.0, 0.0));
                    }
                    // The closed-form dispersion slopes exist for the negative binomials, and
                    // with the observed information (glmmTMB's Laplace weights; the expected
                    // ones are glmer.nb's) for the beta and the beta-binomial.
                    let negative_binomial =
                        matches!(density, Density::NegBinomial2 | Density::NegBinomial1);
                    let closed_form = negative_binomial
                        || (laplace == LaplaceWeights::Observed
                            && matches!(density, Density::Beta | Density::BetaBinomial));
                    assert_eq!(jet.dispersion.is_some(), closed_form);
                    if let Some(d) = jet.dispersion {
                        let mean = r.row_mean(eta).expect("mean");
                        let zi = Response::zero_inflation_logs(zi_logit);
                        let at = |lp: f64| {
                            let t = r
                                .row_terms(i, mean, r.row_dispersion(i, lp), zi, true)
                                .expect("terms");
                            [t.0, t.1, t.3]
                        };
                        let (up, dn) = (at(log_phi + h), at(log_phi - h));
                        for (k, what) in ["l_phi", "s_phi", "wl_phi"].into_iter().enumerate() {
                            close(d[k], (up[k] - dn[k]) / (2.0 * h), what);
                        }
                    }
                }
            }
        }
    }
}
