//! The response of a generalized linear mixed model: the observations `y`, their prior weights,
//! the binomial numbers of trials, the offset, the family (distribution and link, from
//! [`crate::family`]) and the family's extra parameters.
//!
//! PIRLS and the Laplace/AGQ criterion ask this module everything that depends on the
//! distribution, observation by observation: the mean `μ = g⁻¹(η)` and `dμ/dη`, whether `η` and
//! `μ` are valid, the working weights and working response, the deviance residuals `d(yᵢ, μᵢ)`,
//! and the conditional `−2 log p(y | μ)` that enters the Laplace and AGQ deviances. A family with
//! parameters of its own (see [`FamilyParameters`]) changes these answers, not the algorithms
//! that use them.
use crate::error::{invalid, Result};
use crate::family::Family;
use crate::spec::ModelSpec;

/// Parameters of the response distribution besides its mean, such as a negative-binomial `θ` or
/// a zero-inflation probability: values that the fit would estimate along with `(θ, β)` and that
/// the methods of [`Response`] would read.
///
/// No supported family has any: binomial and Poisson have none, and the dispersion of the
/// Gamma, inverse Gaussian and Gaussian families is not a parameter of the criterion (the
/// Laplace deviance uses R's family `aic`, which estimates it from the deviance). So this is
/// always empty today, and there is no way to set values: a family that needs them adds its
/// constructor here and its use in [`Response`]'s methods, and PIRLS stays as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FamilyParameters {
    values: Vec<f64>,
}

impl FamilyParameters {
    /// No extra parameters (every supported family).
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

    /// The values, in the family's order.
    pub fn values(&self) -> &[f64] {
        &self.values
    }
}

/// The response side of a GLMM (lme4's `glmResp`): data, family and extra parameters.
#[derive(Debug, Clone)]
pub struct Response<'a> {
    /// The response as fitted (proportions for binomial).
    y: &'a [f64],
    /// Prior weights (the number of trials for binomial proportions).
    prior_w: Vec<f64>,
    /// R's binomial `n` (1s otherwise), for the binomial log-likelihood.
    n_trials: Vec<f64>,
    /// Offset of the linear predictor (zeros without one).
    offset: Vec<f64>,
    /// Distribution and link.
    family: Family,
    /// Extra parameters of the distribution (none today).
    extra: FamilyParameters,
    /// For binomial and Poisson the family's aic is `Σ d(y, μ)` plus this.
    saturated_aic: Option<f64>,
}

impl<'a> Response<'a> {
    /// The response of `spec` (its `y`, weights and offset) under `family`; `n_trials` is R's
    /// binomial `n` (1s for other families), one value per observation.
    pub fn new(spec: &ModelSpec<'a>, family: Family, n_trials: Vec<f64>) -> Result<Self> {
        let n = spec.n;
        if n_trials.len() != n {
            return invalid("n_trials must have one value per observation");
        }
        let prior_w: Vec<f64> = (0..n).map(|i| spec.weight(i)).collect();
        let saturated_aic = family.saturated_aic(spec.y, &n_trials, &prior_w);
        let offset: Vec<f64> = spec.offset.map_or_else(|| vec![0.0; n], <[f64]>::to_vec);
        Ok(Self {
            y: spec.y,
            prior_w,
            n_trials,
            offset,
            family,
            extra: FamilyParameters::none(),
            saturated_aic,
        })
    }

    /// Distribution and link.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Extra parameters of the distribution.
    pub fn extra(&self) -> &FamilyParameters {
        &self.extra
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

    /// Whether the family has a free dispersion parameter (scale).
    pub fn has_scale(&self) -> bool {
        self.family.has_scale()
    }

    /// Checks that a starting linear predictor and the means it gives are valid for the family.
    pub fn check_start(&self, eta: &[f64]) -> Result<()> {
        let family = self.family;
        if let Some(i) = eta.iter().position(|e| !family.link.valid_eta(*e)) {
            return invalid(format!(
                "the starting linear predictor is invalid at observation {}",
                i + 1
            ));
        }
        if let Some(i) = eta
            .iter()
            .position(|&e| !family.valid_mu(family.link.linkinv(e)))
        {
            return invalid(format!(
                "the starting mean is invalid at observation {}",
                i + 1
            ));
        }
        Ok(())
    }

    /// `μ = g⁻¹(η)`.
    #[inline]
    pub fn mean(&self, eta: f64) -> f64 {
        self.family.link.linkinv(eta)
    }

    /// `dμ/dη`.
    #[inline]
    pub fn mu_eta(&self, eta: f64) -> f64 {
        self.family.link.mu_eta(eta)
    }

    /// `(μ, dμ/dη)` together (one exponential for the logit and log links).
    #[inline]
    pub fn mean_and_mu_eta(&self, eta: f64) -> (f64, f64) {
        self.family.link.linkinv_mu_eta(eta)
    }

    /// Deviance residual `wᵢ d(yᵢ, μ)` of observation `i` at mean `mu`.
    #[inline]
    pub fn dev_resid(&self, i: usize, mu: f64) -> f64 {
        self.family.dev_resid(self.y[i], mu, self.prior_w[i])
    }

    /// For the observations `first..first + eta.len()` at linear predictor `eta`: μ and dμ/dη,
    /// and with `deviance` also the deviance residuals into `dev`. False if some η or μ is
    /// invalid for the family.
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
        let family = self.family;
        let link = family.link;
        let rows = first..first + eta.len();
        let y = &self.y[rows.clone()];
        let pw = &self.prior_w[rows];
        let mut ok = true;
        let values = mu.iter_mut().zip(mu_eta.iter_mut()).zip(dev.iter_mut());
        for (((m, d), dv), ((&e, &yi), &w)) in values.zip(eta.iter().zip(y).zip(pw)) {
            (*m, *d) = link.linkinv_mu_eta(e);
            ok &= link.valid_eta(e) && family.valid_mu(*m);
            if deviance {
                *dv = family.dev_resid(yi, *m, w);
            }
        }
        ok
    }

    /// Working weights `w` and working response `z` at `(η, μ, dμ/dη)`:
    /// `w = a (dμ/dη)²/V(μ)` and `z = η − offset + (y − μ)/(dμ/dη)`, minus `xb` with `uonly`
    /// (PIRLS over the random effects alone, β fixed). With `newton` the weights are the
    /// observed information `−∂²ℓ/∂η²` and the response `η − offset + (∂ℓ/∂η)/w` wherever that
    /// information is positive and finite (the expected, Fisher, values elsewhere), so that a
    /// PIRLS step is a Newton step; for a canonical link the two agree and `newton` is ignored.
    #[allow(clippy::too_many_arguments)]
    pub fn working_values(
        &self,
        eta: &[f64],
        mu: &[f64],
        mu_eta: &[f64],
        xb: &[f64],
        uonly: bool,
        newton: bool,
        work_w: &mut [f64],
        work_z: &mut [f64],
    ) {
        let family = self.family;
        let y = self.y;
        let newton = newton && !family.is_canonical();
        let out = work_w.iter_mut().zip(work_z);
        let state = mu.iter().zip(mu_eta).zip(eta);
        let data = y.iter().zip(&self.prior_w).zip(&self.offset).zip(xb);
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

    /// `−2 log p(y | μ)` (R's family aic) at the means `mu`, given `dev = Σ d(y, μ)` there.
    pub fn minus_two_log_lik(&self, mu: &[f64], dev: f64) -> f64 {
        match self.saturated_aic {
            Some(c) => dev + c,
            None => self
                .family
                .aic(self.y, &self.n_trials, mu, &self.prior_w, dev),
        }
    }

    /// `Σ d(y, μ)`, observation by observation in order.
    pub fn deviance_residual_sum(&self, mu: &[f64]) -> f64 {
        (0..self.prior_w.len())
            .map(|i| self.dev_resid(i, mu[i]))
            .sum()
    }

    /// Σ of squared weighted Pearson residuals `a (y − μ)²/V(μ)`.
    pub fn pearson_sum(&self, mu: &[f64]) -> f64 {
        (0..self.prior_w.len())
            .map(|i| {
                let r = self.y[i] - mu[i];
                self.prior_w[i] * r * r / self.family.variance(mu[i])
            })
            .sum()
    }
}
