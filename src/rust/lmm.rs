//! Linear mixed models: the profiled deviance and the fit.
//!
//! For θ, with `L` the blocked Cholesky factor of the penalized system (see `chol`), `r²` the
//! penalized weighted residual sum of squares, `n` observations and `p` fixed effects, the
//! profiled deviance (β and σ at their conditional optimum) is
//!
//! ```text
//!   ML:   log|L_Z|² − Σ log wᵢ + n      (1 + log(2π r² / n))
//!   REML: log|L_Z|² − Σ log wᵢ + log|R_X|² + (n−p) (1 + log(2π r² / (n−p)))
//! ```
//!
//! The model is the composition `objective(update(set_theta(θ)))`, as in MixedModels.jl: setting
//! θ refactors `L` from the stored cross-products, so one evaluation costs nothing per
//! observation.
use crate::blocks::CrossProducts;
use crate::chol::BlockedCholesky;
use crate::error::{invalid, Result};
use crate::optim::{self, Objective, OptSummary, OptimOptions, Stop};
use crate::small;
use crate::spec::ModelSpec;
use crate::terms::ReStructure;
use crate::trailing::TrailingChoice;
use faer::Par;
use std::f64::consts::PI;

/// A linear mixed model ready to be evaluated at any θ.
#[derive(Debug)]
pub struct LinearMixedModel<'a> {
    /// The data.
    pub spec: ModelSpec<'a>,
    /// Grouping-factor blocks and the θ layout.
    pub re: ReStructure,
    /// Cross-products, formed once.
    pub cp: CrossProducts,
    /// The factor at the last θ set.
    pub chol: BlockedCholesky,
    /// REML (true) or ML (false) criterion.
    pub reml: bool,
    lambda: Vec<Vec<f64>>,
    log_w: f64,
}

/// Everything a fitted linear mixed model reports.
#[derive(Debug, Clone)]
pub struct LmmFit {
    /// Covariance parameters (lme4's layout).
    pub theta: Vec<f64>,
    /// Fixed effects.
    pub beta: Vec<f64>,
    /// Spherical random effects, terms in input order, each level-major.
    pub u: Vec<f64>,
    /// Conditional modes per term: `n_levels × q` column-major.
    pub b: Vec<Vec<f64>>,
    /// Residual standard deviation (REML or ML as fitted).
    pub sigma: f64,
    /// `log|L_Z|²`.
    pub ldl2: f64,
    /// `log|R_X|²`.
    pub ldrx2: f64,
    /// Weighted residual sum of squares.
    pub wrss: f64,
    /// `‖u‖²`.
    pub ussq: f64,
    /// Penalized weighted residual sum of squares `r²`.
    pub pwrss: f64,
    /// The criterion that was minimized (REML criterion or ML deviance).
    pub objective: f64,
    /// The ML deviance at these estimates.
    pub deviance_ml: f64,
    /// The REML criterion at these estimates.
    pub reml_crit: f64,
    /// `(R_X R_X')⁻¹`, `p × p` column-major: `vcov(β) = σ² ×` this.
    pub vcov_unscaled: Vec<f64>,
    /// `Xβ + Zb + offset`.
    pub fitted: Vec<f64>,
    /// Optimizer record.
    pub opt: OptSummary,
}

impl<'a> LinearMixedModel<'a> {
    /// Builds the cross-products and the factor storage, choosing the trailing storage
    /// automatically.
    pub fn new(spec: ModelSpec<'a>, reml: bool, par: Par) -> Result<Self> {
        Self::with_storage(spec, reml, par, TrailingChoice::Auto)
    }

    /// As [`LinearMixedModel::new`], with the trailing block's storage chosen by the caller.
    pub fn with_storage(
        spec: ModelSpec<'a>,
        reml: bool,
        par: Par,
        choice: TrailingChoice,
    ) -> Result<Self> {
        if reml && spec.n <= spec.p {
            return invalid(format!(
                "REML needs more observations ({}) than fixed effects ({})",
                spec.n, spec.p
            ));
        }
        let re = ReStructure::new(&spec);
        let cp = CrossProducts::new(&spec, &re)?;
        let chol = BlockedCholesky::new(&cp, &re, par, choice)?;
        let lambda = re.lambda_buffers();
        let log_w = spec.log_weight_sum();
        Ok(Self {
            spec,
            re,
            cp,
            chol,
            reml,
            lambda,
            log_w,
        })
    }

    /// Refactors the penalized system at θ.
    pub fn set_theta(&mut self, theta: &[f64]) -> Result<()> {
        if theta.len() != self.re.n_theta() {
            return invalid(format!(
                "theta has length {}, the model has {} covariance parameters",
                theta.len(),
                self.re.n_theta()
            ));
        }
        if let Some(i) = theta.iter().position(|v| !v.is_finite()) {
            return invalid(format!("theta[{}] is not finite", i + 1));
        }
        self.re.fill_lambda(theta, &mut self.lambda);
        self.chol.update(&self.cp, &self.lambda)
    }

    fn criterion(&self, reml: bool) -> f64 {
        let n = self.spec.n as f64;
        let r = self.chol.pwrss_sqrt(&self.cp);
        let pwrss = r * r;
        let ldl2 = self.chol.logdet_l11 + self.chol.logdet_l22;
        if reml {
            let nmp = n - self.spec.p as f64;
            ldl2 - self.log_w
                + self.chol.logdet_rx(&self.cp)
                + nmp * (1.0 + (2.0 * PI * pwrss / nmp).ln())
        } else {
            ldl2 - self.log_w + n * (1.0 + (2.0 * PI * pwrss / n).ln())
        }
    }

    /// The criterion (REML or ML as chosen) at the last θ set.
    pub fn objective(&self) -> f64 {
        self.criterion(self.reml)
    }

    /// The criterion at θ, `+∞` where the factorization fails.
    pub fn objective_at(&mut self, theta: &[f64]) -> f64 {
        match self.set_theta(theta) {
            Ok(()) => self.objective(),
            Err(_) => f64::INFINITY,
        }
    }

    /// Optimizes θ from `start` (lme4's default start when `None`) and returns the estimates.
    pub fn fit(
        &mut self,
        start: Option<&[f64]>,
        opts: &OptimOptions,
        progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
    ) -> Result<LmmFit> {
        let start = match start {
            Some(s) => {
                if s.len() != self.re.n_theta() {
                    return invalid(format!(
                        "'start' has length {}, the model has {} covariance parameters",
                        s.len(),
                        self.re.n_theta()
                    ));
                }
                s.to_vec()
            }
            None => self.re.default_theta(),
        };
        let lower = self.re.lower_bounds();
        let summary = {
            let mut obj = ModelObjective {
                model: self,
                progress,
            };
            optim::minimize(&mut obj, &start, &lower, opts)?
        };
        let mut fit = self.estimates(&summary.theta)?;
        fit.opt = summary;
        Ok(fit)
    }

    /// Estimates at a given θ: β, random effects, σ, deviance components, fitted values.
    pub fn estimates(&mut self, theta: &[f64]) -> Result<LmmFit> {
        self.set_theta(theta)?;
        let spec = &self.spec;
        let n = spec.n;
        let p = spec.p;
        let (beta, u1, u2) = self.chol.solve(&self.cp);

        // Per-block spherical effects → per-term u and b = T u, lme4's layout.
        let lead_q = self.cp.q0;
        let layout = &self.cp.layout;
        let mut u_terms = Vec::with_capacity(spec.terms.len());
        let mut b_terms = Vec::with_capacity(spec.terms.len());
        let mut block_u: Vec<f64> = Vec::new();
        let mut block_b: Vec<f64> = Vec::new();
        for (t, term) in spec.terms.iter().enumerate() {
            let (blk, col_off) = self.re.term_block[t];
            let qb = self.re.blocks[blk].q;
            let nl = term.n_levels;
            let mut ut = vec![0.0; nl * term.q];
            let mut bt = vec![0.0; nl * term.q];
            for j in 0..nl {
                block_u.clear();
                if blk == 0 {
                    block_u.extend_from_slice(&u1[j * lead_q..(j + 1) * lead_q]);
                } else {
                    let node = layout.block_node_base[blk] + j;
                    let off = layout.node_offset[node];
                    block_u.extend_from_slice(&u2[off..off + qb]);
                }
                block_b.resize(qb, 0.0);
                small::lower_mul(&self.lambda[blk], qb, &block_u, &mut block_b);
                for k in 0..term.q {
                    ut[j * term.q + k] = block_u[col_off + k];
                    bt[k * nl + j] = block_b[col_off + k];
                }
            }
            u_terms.push(ut);
            b_terms.push(bt);
        }

        // Fitted values and the weighted residual sum of squares.
        let mut fitted = vec![0.0; n];
        for (c, &bc) in beta.iter().enumerate() {
            let col = &spec.x[c * n..(c + 1) * n];
            for (f, &x) in fitted.iter_mut().zip(col) {
                *f += x * bc;
            }
        }
        for (term, bt) in spec.terms.iter().zip(&b_terms) {
            let nl = term.n_levels;
            for k in 0..term.q {
                let z = &term.z[k * n..(k + 1) * n];
                let bk = &bt[k * nl..(k + 1) * nl];
                for ((f, &zi), &l) in fitted.iter_mut().zip(z).zip(&term.levels) {
                    *f += zi * bk[l as usize];
                }
            }
        }
        if let Some(o) = spec.offset {
            for (f, &oi) in fitted.iter_mut().zip(o) {
                *f += oi;
            }
        }
        let wrss: f64 = (0..n)
            .map(|i| {
                let r = spec.y[i] - fitted[i];
                spec.weight(i) * r * r
            })
            .sum();
        let u: Vec<f64> = u_terms.concat();
        let ussq: f64 = u.iter().map(|v| v * v).sum();
        let r = self.chol.pwrss_sqrt(&self.cp);
        let pwrss = r * r;
        let ldl2 = self.chol.logdet_l11 + self.chol.logdet_l22;
        let ldrx2 = self.chol.logdet_rx(&self.cp);
        let denom = if self.reml { (n - p) as f64 } else { n as f64 };
        let sigma = (pwrss / denom).sqrt();

        // (R_X R_X')⁻¹ = R_X⁻ᵀ R_X⁻¹
        let rx = self.chol.rx(&self.cp);
        let mut rinv = vec![0.0; p * p];
        for j in 0..p {
            let mut e = vec![0.0; p];
            e[j] = 1.0;
            small::solve_lower(&rx, p, &mut e);
            rinv[j * p..(j + 1) * p].copy_from_slice(&e);
        }
        let mut vcov_unscaled = vec![0.0; p * p];
        for a in 0..p {
            for b in 0..p {
                vcov_unscaled[b * p + a] = (0..p).map(|k| rinv[a * p + k] * rinv[b * p + k]).sum();
            }
        }

        Ok(LmmFit {
            theta: theta.to_vec(),
            beta,
            u,
            b: b_terms,
            sigma,
            ldl2,
            ldrx2,
            wrss,
            ussq,
            pwrss,
            objective: self.objective(),
            deviance_ml: self.criterion(false),
            reml_crit: self.criterion(true),
            vcov_unscaled,
            fitted,
            opt: OptSummary::default(),
        })
    }
}

struct ModelObjective<'m, 'a> {
    model: &'m mut LinearMixedModel<'a>,
    progress: &'m mut dyn FnMut(usize, &[f64], f64) -> Stop,
}

impl Objective for ModelObjective<'_, '_> {
    fn eval(&mut self, theta: &[f64]) -> f64 {
        self.model.objective_at(theta)
    }

    fn after_eval(&mut self, count: usize, theta: &[f64], value: f64) -> Stop {
        (self.progress)(count, theta, value)
    }
}
