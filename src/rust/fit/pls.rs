//! The one penalized least-squares core of linear mixed models, as the fit, the likelihood
//! profiles and the parametric bootstrap all use it.
//!
//! [`LinearMixedModel`] (in `lmm`) owns the data, the cross-products `A = [Z F]'W[Z F]`
//! (`F = [X, y − offset − X b₀]`, `b₀ = 0` unless the response is far from 0 relative to its
//! residuals, see `CrossProducts::response_shift`) and the blocked Cholesky factor; its
//! `set_theta`, `objective` and `estimates` are the profiled criterion and the estimates at θ.
//! This file adds what the inference code needs on top of the same model, so that none of it
//! keeps its own copy:
//!
//! * a model over cross-products formed elsewhere ([`LinearMixedModel::from_cross_products`]):
//!   the bootstrap builds the sparsity pattern once and refills it per simulated response, the
//!   profile of a fixed effect `βⱼ` factors the cross-products of `[X₋ⱼ, y − b Xⱼ]` (fewer
//!   fixed effects than the data: only the criterion and the solve are read then);
//! * a new response over the same design ([`LinearMixedModel::set_response`], one pass over the
//!   observations);
//! * the pieces of the criterion (`r²`, `log|L_Z|²`, `log|R_X|²`) and the ML deviance at a
//!   given `σ` rather than at its optimum,
//!
//! ```text
//!   d(θ, σ) = log|L_Z|² − Σ log wᵢ + r²(θ)/σ² + n log(2πσ²),
//! ```
//!
//!   which the profiles of the covariance parameters minimize;
//! * one optimizer run from a given start ([`LinearMixedModel::optimize`]), the same run the fit
//!   makes from each of its starts.
use crate::blocks::CrossProducts;
use crate::chol::BlockedCholesky;
use crate::error::{invalid, Result};
use crate::lmm::LinearMixedModel;
use crate::optim::{OptSummary, OptimOptions, Stop};
use crate::spec::ModelSpec;
use crate::terms::ReStructure;
use crate::trailing::TrailingChoice;
use faer::Par;
use std::f64::consts::PI;

impl<'a> LinearMixedModel<'a> {
    /// A model over the cross-products `cp` of `spec`'s random effects `re` (factor storage
    /// chosen by `choice`). `cp` may hold fewer fixed effects than `spec` (a fixed effect moved
    /// into the offset): the criterion, its pieces and the solve read the number of fixed
    /// effects from `cp`, [`LinearMixedModel::estimates`] needs all of `spec`'s.
    pub fn from_cross_products(
        spec: ModelSpec<'a>,
        re: ReStructure,
        cp: CrossProducts,
        reml: bool,
        par: Par,
        choice: TrailingChoice,
    ) -> Result<Self> {
        if cp.n != spec.n || cp.p > spec.p {
            return invalid(format!(
                "internal: cross-products of {} observations and {} fixed effects do not belong \
                 to a model of {} and {}",
                cp.n, cp.p, spec.n, spec.p
            ));
        }
        if reml && spec.n <= cp.p {
            return invalid(format!(
                "REML needs more observations ({}) than fixed effects ({})",
                spec.n, cp.p
            ));
        }
        let chol = BlockedCholesky::new(&cp, &re, par, choice)?;
        let lambda = re.lambda_buffers();
        let log_w = spec.log_weight_sum();
        let par_scale = super::par_scale::par_scale(&re, &cp);
        Ok(Self {
            spec,
            re,
            cp,
            chol,
            reml,
            lambda,
            log_w,
            par_scale,
        })
    }

    /// Replaces the response by `y` (offset included, as `spec.y`) and refills the
    /// cross-products from the observations; θ must be set again before the criterion is read.
    /// The cross-products must hold all of `spec`'s fixed effects.
    pub fn set_response(&mut self, y: &'a [f64]) -> Result<()> {
        self.spec.require_rows("a new response")?;
        if y.len() != self.spec.n {
            return invalid(format!(
                "internal: a response of length {} for a model of {} observations",
                y.len(),
                self.spec.n
            ));
        }
        if self.cp.p != self.spec.p {
            return invalid(
                "internal: a new response for cross-products without every fixed effect",
            );
        }
        self.spec.y = y;
        self.cp.fill_response(&self.spec, &self.re);
        Ok(())
    }

    /// The relative covariance factors `T_b` at the last θ set.
    pub fn lambda(&self) -> &[Vec<f64>] {
        &self.lambda
    }

    /// Penalized weighted residual sum of squares `r²` at the last θ set.
    pub fn pwrss(&self) -> f64 {
        let r = self.chol.pwrss_sqrt(&self.cp);
        r * r
    }

    /// `log|L_Z|²` at the last θ set.
    pub fn ldl2(&self) -> f64 {
        self.chol.logdet_l11 + self.chol.logdet_l22
    }

    /// `log|R_X|²` at the last θ set.
    pub fn ldrx2(&self) -> f64 {
        self.chol.logdet_rx(&self.cp)
    }

    /// The ML deviance at the last θ set with `σ` given rather than profiled out.
    pub fn deviance_at_sigma(&self, sigma: f64) -> f64 {
        let s2 = sigma * sigma;
        self.ldl2() - self.log_w + self.pwrss() / s2 + self.spec.n as f64 * (2.0 * PI * s2).ln()
    }

    /// [`LinearMixedModel::deviance_at_sigma`] at θ: `+∞` where the factorization fails or the
    /// deviance is not a number.
    pub fn deviance_at_theta_sigma(&mut self, theta: &[f64], sigma: f64) -> f64 {
        match self.set_theta(theta) {
            Ok(()) => {
                let d = self.deviance_at_sigma(sigma);
                if d.is_nan() {
                    f64::INFINITY
                } else {
                    d
                }
            }
            Err(_) => f64::INFINITY,
        }
    }

    /// Minimizes the criterion over the covariance parameters (`par`) within their bounds by
    /// one optimizer run from `start`, as the fit does from each of its starts (no second start,
    /// no restart). The factor is left at the last point evaluated, not necessarily the optimum.
    pub fn optimize(&mut self, start: &[f64], opts: &OptimOptions) -> Result<OptSummary> {
        let lower = self.re.par_lower();
        let upper = self.re.par_upper();
        self.minimize_from(start, (&lower, &upper), opts, &mut |_, _, _| Stop::Continue)
    }
}
