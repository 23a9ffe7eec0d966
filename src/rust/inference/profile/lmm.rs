//! Likelihood profiles of linear mixed models, as lme4's `profile()` computes them for `lmer`
//! fits.
//!
//! The parameters are the standard deviations and correlations of the random effects (see
//! [`VarLayout`]), then the residual standard deviation `σ`, then the fixed effects `β`. All
//! profiles use the maximum-likelihood deviance (a REML fit is refitted by ML first, as lme4
//! does); each runs on its own [`LinearMixedModel`] over the ML fit's cross-products.
//!
//! * Covariance parameters: at fixed `(sd, cor, σ)`, `θ = chol(Σ)/σ` and `β` is profiled out by
//!   the penalized least-squares solve, so the deviance is
//!   `log|L|² − Σ log wᵢ + r²(θ)/σ² + n log(2πσ²)`; the others are optimized by BOBYQA within
//!   their bounds (sd, σ ≥ 0, correlations in `[−1, 1]`).
//! * Fixed effect `βⱼ = b`: the model with `Xⱼ` dropped and `b Xⱼ` added to the offset, whose
//!   ML deviance is optimized over `θ`. Its cross-products are linear combinations of the full
//!   model's (`F' = [X₋ⱼ, y − b Xⱼ] = F M`), so no pass over the observations is needed.
use super::{
    bounded_minimize, fill_with, InnerStart, ProfileOptions, ProfileTrace, Profiler, Row,
    VarLayout, Walker,
};
use crate::blocks::CrossProducts;
use crate::error::{invalid, Result};
use crate::lmm::LinearMixedModel;
use crate::optim::{OptimOptions, Stop};
use crate::spec::ModelSpec;
use crate::terms::ReStructure;
use crate::trailing::TrailingChoice;
use faer::Par;

/// Everything needed to profile an LMM: the ML fit and the full model's cross-products.
#[derive(Debug)]
pub struct LmmProfiler<'a> {
    spec: ModelSpec<'a>,
    re: ReStructure,
    cp: CrossProducts,
    layout: VarLayout,
    n: usize,
    p: usize,
    /// ML estimates of the covariance parameters (`par`; θ for unstructured terms).
    pub theta: Vec<f64>,
    /// The ML deviance at the optimum.
    pub base: f64,
    /// Full parameter vector at the optimum: sd/cor, σ (ML), β.
    pub optimum: Vec<f64>,
    /// Standard errors of β at the ML fit.
    pub stderr: Vec<f64>,
    lower: Vec<f64>,
    upper: Vec<f64>,
    walker: Walker,
}

impl<'a> LmmProfiler<'a> {
    /// Fits the model by maximum likelihood from `start` (the fit's `par`) and prepares the
    /// profiles.
    pub fn new(spec: ModelSpec<'a>, start: Option<&[f64]>, opts: ProfileOptions) -> Result<Self> {
        let layout = VarLayout::new(&spec);
        let n = spec.n;
        let p = spec.p;
        let mut model = LinearMixedModel::new(spec, false, Par::Seq)?;
        let fit_opts = OptimOptions {
            calc_derivs: false,
            rhoend: 1e-9,
            ..OptimOptions::default()
        };
        let fit = model.fit(start, &fit_opts, &mut |_, _, _| Stop::Continue)?;
        let mut optimum = layout.sdcor_from_theta(&fit.par, fit.sigma);
        optimum.push(fit.sigma);
        optimum.extend_from_slice(&fit.beta);
        let stderr: Vec<f64> = (0..p)
            .map(|k| fit.sigma * fit.vcov_unscaled[k * p + k].max(0.0).sqrt())
            .collect();
        let nvp = layout.n_theta() + 1;
        let mut lower = Vec::with_capacity(nvp + p);
        let mut upper = Vec::with_capacity(nvp + p);
        let (var_lower, var_upper) = layout.bounds();
        lower.extend(var_lower);
        upper.extend(var_upper);
        lower.push(0.0);
        upper.push(f64::INFINITY);
        lower.extend(std::iter::repeat_n(f64::NEG_INFINITY, p));
        upper.extend(std::iter::repeat_n(f64::INFINITY, p));
        let walker = Walker::new(opts, nvp + p, fit.deviance_ml)?;
        Ok(Self {
            spec: model.spec.clone(),
            re: model.re.clone(),
            cp: model.cp.clone(),
            layout,
            n,
            p,
            theta: fit.par,
            base: fit.deviance_ml,
            optimum,
            stderr,
            lower,
            upper,
            walker,
        })
    }

    /// An ML model over `cp` (the full model's cross-products or reduced ones) with
    /// sequential linear algebra (the profiles run in parallel).
    fn new_model(&self, cp: CrossProducts) -> Result<LinearMixedModel<'a>> {
        LinearMixedModel::from_cross_products(
            self.spec.clone(),
            self.re.clone(),
            cp,
            false,
            Par::Seq,
            TrailingChoice::Auto,
        )
    }

    /// The deviance at a full set of covariance parameters (sd/cor, then σ), β profiled out.
    fn var_deviance(&self, model: &mut LinearMixedModel<'a>, v: &[f64]) -> f64 {
        let nth = self.layout.n_theta();
        let sigma = v[nth];
        let Some(par) = self.layout.theta_from_sdcor(&v[..nth], sigma) else {
            return f64::INFINITY;
        };
        model.deviance_at_theta_sigma(&self.re.theta_of(&par), sigma)
    }

    fn profile_var(&self, w: usize) -> Result<ProfileTrace> {
        let nvp = self.n_var();
        let mut model = self.new_model(self.cp.clone())?;
        let pw = self.optimum[w];
        let sigma = self.optimum[nvp - 1];
        let is_sd = self.layout.is_sd();
        // Scales of the other parameters for the optimizer.
        let scale: Vec<f64> = (0..nvp)
            .filter(|&k| k != w)
            .map(|k| {
                if k < nvp - 1 && !is_sd[k] {
                    0.5
                } else {
                    self.optimum[k].abs().max(0.05 * sigma).max(1e-8)
                }
            })
            .collect();
        let lo: Vec<f64> = (0..nvp)
            .filter(|&k| k != w)
            .map(|k| self.lower[k])
            .collect();
        let up: Vec<f64> = (0..nvp)
            .filter(|&k| k != w)
            .map(|k| self.upper[k])
            .collect();
        let mut warnings = Vec::new();
        let mut zeta_at = |x: f64, start: &InnerStart, warnings: &mut Vec<String>| -> Result<Row> {
            let mut full = vec![0.0; nvp];
            let (others, fval) = {
                let mut f = |o: &[f64]| {
                    fill_with(&mut full, w, x, o);
                    self.var_deviance(&mut model, &full)
                };
                bounded_minimize(&mut f, start, &lo, &up, &scale, self.walker.opts.rhoend)?
            };
            fill_with(&mut full, w, x, &others);
            let zeta = self.walker.zeta_of(x, pw, fval, warnings)?;
            // β at the conditional optimum.
            self.var_deviance(&mut model, &full);
            let (beta, _, _) = model.chol.solve(&model.cp);
            full.extend_from_slice(&beta);
            Ok(Row {
                x,
                zeta,
                others,
                full,
            })
        };
        let start: Vec<f64> = (0..nvp)
            .filter(|&k| k != w)
            .map(|k| self.optimum[k])
            .collect();
        let (lowcut, upcut) = (self.lower[w], self.upper[w]);
        // lme4's first step, 1% away from the estimate; from an estimate on a bound other than
        // 0 (a correlation of ±1) it would leave the parameter space, so it goes 1% the other
        // way, into it (the walk beyond the estimate then stops at the bound at once).
        let mut shift = if pw == 0.0 { 0.001 } else { pw * 1.01 };
        if shift > upcut || shift < lowcut {
            shift = pw - (shift - pw);
        }
        let opt_row = Row {
            x: pw,
            zeta: 0.0,
            others: start.clone(),
            full: self.optimum.clone(),
        };
        let first = zeta_at(shift, &InnerStart::at(&start), &mut warnings)?;
        Ok(self.walker.run(
            w,
            opt_row,
            first,
            lowcut,
            upcut,
            pw > lowcut,
            &mut zeta_at,
            warnings,
        ))
    }

    fn profile_fixed(&self, j: usize) -> Result<ProfileTrace> {
        let nvp = self.n_var();
        let p = self.p;
        let est = self.optimum[nvp + j];
        let std = self.stderr[j];
        // Cross-products of [X₋ⱼ, y − b Xⱼ] for b = 0; the response row is updated per b.
        let reduced = reduce_cross_products(&self.cp, j, 0.0);
        let mut model = self.new_model(reduced)?;
        let mut zeta_at = |b: f64, start: &InnerStart, warnings: &mut Vec<String>| -> Result<Row> {
            set_reduced_response(&mut model.cp, &self.cp, j, b);
            // θ from the extrapolated optimum of the last points (see bounded_minimize()),
            // in θ's own units.
            let fit_opts = OptimOptions {
                calc_derivs: false,
                rhobeg: start.first_radius(&vec![1.0; start.values.len()]),
                rhoend: self.walker.opts.rhoend,
                ..OptimOptions::default()
            };
            let summary = model.optimize(&start.values, &fit_opts)?;
            let fval = summary.fmin;
            let zeta = self.walker.zeta_of(b, est, fval, warnings)?;
            model.set_theta(&self.re.theta_of(&summary.theta))?;
            let sig = (model.pwrss() / self.n as f64).sqrt();
            let (beta_r, _, _) = model.chol.solve(&model.cp);
            let mut full = self.layout.sdcor_from_theta(&summary.theta, sig);
            full.push(sig);
            for k in 0..p {
                full.push(match k.cmp(&j) {
                    std::cmp::Ordering::Less => beta_r[k],
                    std::cmp::Ordering::Equal => b,
                    std::cmp::Ordering::Greater => beta_r[k - 1],
                });
            }
            Ok(Row {
                x: b,
                zeta,
                others: summary.theta,
                full,
            })
        };
        let mut warnings = Vec::new();
        let opt_row = Row {
            x: est,
            zeta: 0.0,
            others: self.theta.clone(),
            full: self.optimum.clone(),
        };
        let first = zeta_at(
            est + self.walker.delta * std,
            &InnerStart::at(&self.theta),
            &mut warnings,
        )?;
        Ok(self.walker.run(
            nvp + j,
            opt_row,
            first,
            f64::NEG_INFINITY,
            f64::INFINITY,
            true,
            &mut zeta_at,
            warnings,
        ))
    }
}

impl Profiler for LmmProfiler<'_> {
    /// Number of covariance parameters plus `σ`.
    fn n_var(&self) -> usize {
        self.layout.n_theta() + 1
    }

    fn n_fixed(&self) -> usize {
        self.p
    }

    fn theta(&self) -> &[f64] {
        &self.theta
    }

    fn base(&self) -> f64 {
        self.base
    }

    fn optimum(&self) -> &[f64] {
        &self.optimum
    }

    fn stderr(&self) -> &[f64] {
        &self.stderr
    }

    fn lower(&self) -> &[f64] {
        &self.lower
    }

    fn upper(&self) -> &[f64] {
        &self.upper
    }

    fn cutoff(&self) -> f64 {
        self.walker.cutoff
    }

    fn profile(&self, which: usize) -> Result<ProfileTrace> {
        if which >= self.n_par() {
            return invalid(format!(
                "parameter {} does not exist (the model has {})",
                which + 1,
                self.n_par()
            ));
        }
        if which < self.n_var() {
            self.profile_var(which)
        } else {
            self.profile_fixed(which - self.n_var())
        }
    }
}

/// Row `a` of the reduced `F' = F M`, `M` mapping `[X, y]` to `[X₋ⱼ, y − b Xⱼ]`: the old rows
/// and weights that make it up.
fn reduced_row(a: usize, j: usize, p: usize, b: f64) -> [(usize, f64); 2] {
    if a + 1 < p {
        let old = if a < j { a } else { a + 1 };
        [(old, 1.0), (old, 0.0)]
    } else {
        [(p, 1.0), (j, -b)]
    }
}

/// Cross-products of the model with fixed-effects column `j` dropped and `b Xⱼ` moved into
/// the offset, from the full model's.
pub fn reduce_cross_products(cp: &CrossProducts, j: usize, b: f64) -> CrossProducts {
    let mut out = cp.clone();
    out.p = cp.p - 1;
    let pf_new = cp.p;
    let l1 = cp.af1.len() / cp.pf();
    let l2 = cp.af2.len() / cp.pf();
    out.af1 = vec![0.0; pf_new * l1];
    out.af2 = vec![0.0; pf_new * l2];
    out.aff = vec![0.0; pf_new * pf_new];
    if !cp.response_shift.is_empty() {
        out.response_shift.remove(j);
    }
    set_reduced_response_all(&mut out, cp, j, b);
    out
}

/// Recomputes every `F` block of `reduced` for `b`. Where `cp`'s response is shifted by
/// `X b₀` ([`CrossProducts::response_shift`]), `y − b Xⱼ` is its response less
/// `(b − b₀ⱼ) Xⱼ`, with the other columns' shift `b₀₋ⱼ` kept for `reduced`.
fn set_reduced_response_all(reduced: &mut CrossProducts, cp: &CrossProducts, j: usize, b: f64) {
    let b = b - cp.response_shift.get(j).copied().unwrap_or(0.0);
    let p = cp.p;
    let pf_old = cp.pf();
    let pf_new = p;
    for (dst, src) in [(&mut reduced.af1, &cp.af1), (&mut reduced.af2, &cp.af2)] {
        let cols = src.len() / pf_old;
        for c in 0..cols {
            for a in 0..pf_new {
                dst[c * pf_new + a] = reduced_row(a, j, p, b)
                    .iter()
                    .map(|&(i, w)| w * src[c * pf_old + i])
                    .sum();
            }
        }
    }
    for a2 in 0..pf_new {
        for a1 in 0..pf_new {
            let mut s = 0.0;
            for &(i1, w1) in &reduced_row(a1, j, p, b) {
                for &(i2, w2) in &reduced_row(a2, j, p, b) {
                    s += w1 * w2 * cp.aff[i2 * pf_old + i1];
                }
            }
            reduced.aff[a2 * pf_new + a1] = s;
        }
    }
}

/// Updates the response row (`y − b Xⱼ`) of `reduced`; the other rows do not depend on `b`.
fn set_reduced_response(reduced: &mut CrossProducts, cp: &CrossProducts, j: usize, b: f64) {
    // The response row and column are the only ones that change; recomputing everything costs
    // O((l0 q0 + m) p), far below one optimization.
    set_reduced_response_all(reduced, cp, j, b);
}
