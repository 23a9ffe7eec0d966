//! Likelihood profiles of linear mixed models and the confidence intervals read off them, as
//! lme4's `profile()` and `confint()` compute them.
//!
//! The parameters are lme4's: for each random-effects term the lower triangle (column-major) of
//! its covariance matrix written as standard deviations (diagonal) and correlations (below it),
//! then the residual standard deviation `σ`, then the fixed effects `β`. All profiles use the
//! maximum-likelihood deviance (a REML fit is refitted by ML first, as lme4 does). For a
//! parameter `ψ` with ML estimate `ψ̂` and deviance `d̂`, the signed square root
//!
//! ```text
//!   ζ(ψ) = sign(ψ − ψ̂) √(min_{others} d(ψ, others) − d̂)
//! ```
//!
//! is traced from `ψ̂` in both directions until `|ζ|` exceeds `√χ²_{0.99}(k)` (`k` parameters)
//! or the parameter reaches its bound, with lme4's step rule: the next value moves
//! `δ = √χ²_{0.99}(k) / 8` units of `ζ` along the secant of the last two points, capped at ten
//! times the last step. An interval's end points are `ψ(ζ = ±z_{(1+level)/2})` from the inverse
//! of the natural interpolating spline of `ζ(ψ)` (see [`profile_interval`]).
//!
//! * Covariance parameters: at fixed `(sd, cor, σ)`, `θ = chol(Σ)/σ` and `β` is profiled out by
//!   the penalized least-squares solve, so the deviance is
//!   `log|L|² − Σ log wᵢ + r²(θ)/σ² + n log(2πσ²)`; the others are optimized by BOBYQA within
//!   their bounds (sd, σ ≥ 0, correlations in `[−1, 1]`).
//! * Fixed effect `βⱼ = b`: the model with `Xⱼ` dropped and `b Xⱼ` added to the offset, whose
//!   ML deviance is optimized over `θ`. Its cross-products are linear combinations of the full
//!   model's (`F' = [X₋ⱼ, y − b Xⱼ] = F M`), so no pass over the observations is needed.
//!
//! The walk, the step rule and the assembly of the points (`Walker`) are shared with the
//! profiles of generalized linear mixed models ([`crate::profile_glmm`]).
use crate::blocks::CrossProducts;
use crate::error::{invalid, MixedError, Result};
use crate::lmm::LinearMixedModel;
use crate::optim::{OptimOptions, Stop};
use crate::spec::ModelSpec;
use crate::terms::ReStructure;
use crate::trailing::TrailingChoice;
use bobyqa::{Bobyqa, Config};
use faer::Par;
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// The map between θ and lme4's standard deviations and correlations.
#[derive(Debug, Clone)]
pub struct VarLayout {
    /// Columns of each random-effects term, in θ order.
    pub term_q: Vec<usize>,
}

impl VarLayout {
    /// The layout of `spec`'s terms.
    pub fn new(spec: &ModelSpec<'_>) -> Self {
        Self {
            term_q: spec.terms.iter().map(|t| t.q).collect(),
        }
    }

    /// Number of covariance parameters (θ's length).
    pub fn n_theta(&self) -> usize {
        self.term_q.iter().map(|q| q * (q + 1) / 2).sum()
    }

    /// Whether each covariance parameter is a standard deviation (else a correlation).
    pub fn is_sd(&self) -> Vec<bool> {
        let mut out = Vec::with_capacity(self.n_theta());
        for &q in &self.term_q {
            for c in 0..q {
                for r in c..q {
                    out.push(r == c);
                }
            }
        }
        out
    }

    /// lme4's `Cv_to_Sv`: per term the lower triangle of `σ² T T'` as standard deviations and
    /// correlations (a correlation with a zero standard deviation is reported as 0).
    pub fn sdcor_from_theta(&self, theta: &[f64], sigma: f64) -> Vec<f64> {
        let mut out = Vec::with_capacity(theta.len());
        let mut off = 0;
        for &q in &self.term_q {
            let k = q * (q + 1) / 2;
            let t = lower_from_packed(&theta[off..off + k], q);
            // C = σ² T T'
            let mut c = vec![0.0; q * q];
            for i in 0..q {
                for j in 0..=i {
                    let s: f64 = (0..=j).map(|m| t[m * q + i] * t[m * q + j]).sum();
                    c[j * q + i] = sigma * sigma * s;
                }
            }
            let sd: Vec<f64> = (0..q).map(|i| c[i * q + i].max(0.0).sqrt()).collect();
            for col in 0..q {
                for row in col..q {
                    if row == col {
                        out.push(sd[row]);
                    } else {
                        let d = sd[row] * sd[col];
                        out.push(if d > 0.0 { c[col * q + row] / d } else { 0.0 });
                    }
                }
            }
            off += k;
        }
        out
    }

    /// lme4's `Sv_to_Cv`: θ from standard deviations and correlations and `σ`, through a
    /// lower-triangular factor of each covariance matrix (semi-definite allowed). `None` when a
    /// covariance matrix is not positive semi-definite or `σ` is not positive.
    pub fn theta_from_sdcor(&self, v: &[f64], sigma: f64) -> Option<Vec<f64>> {
        if !(sigma > 0.0 && sigma.is_finite()) || v.len() != self.n_theta() {
            return None;
        }
        let mut out = Vec::with_capacity(v.len());
        let mut off = 0;
        for &q in &self.term_q {
            let k = q * (q + 1) / 2;
            let packed = lower_from_packed(&v[off..off + k], q);
            let sd: Vec<f64> = (0..q).map(|i| packed[i * q + i]).collect();
            if sd.iter().any(|s| s.is_nan() || *s < 0.0 || !s.is_finite()) {
                return None;
            }
            let mut c = vec![0.0; q * q];
            for j in 0..q {
                for i in j..q {
                    c[j * q + i] = if i == j {
                        sd[i] * sd[i]
                    } else {
                        packed[j * q + i] * sd[i] * sd[j]
                    } / (sigma * sigma);
                }
            }
            let l = semidefinite_cholesky(&c, q)?;
            for col in 0..q {
                for row in col..q {
                    out.push(l[col * q + row]);
                }
            }
            off += k;
        }
        Some(out)
    }
}

/// Unpacks a column-major lower triangle into a `q × q` column-major matrix.
fn lower_from_packed(packed: &[f64], q: usize) -> Vec<f64> {
    let mut m = vec![0.0; q * q];
    let mut k = 0;
    for col in 0..q {
        for row in col..q {
            m[col * q + row] = packed[k];
            k += 1;
        }
    }
    m
}

/// Lower Cholesky factor of a positive semi-definite `q × q` matrix (lower triangle read): a
/// pivot that vanishes (relative to the diagonal) gives a zero column. `None` when the matrix
/// is not positive semi-definite.
fn semidefinite_cholesky(c: &[f64], q: usize) -> Option<Vec<f64>> {
    let scale = (0..q).map(|i| c[i * q + i].abs()).fold(0.0, f64::max);
    let tol = 1e-12 * scale.max(f64::MIN_POSITIVE);
    let mut l = vec![0.0; q * q];
    for j in 0..q {
        let mut d = c[j * q + j];
        for k in 0..j {
            d -= l[k * q + j] * l[k * q + j];
        }
        if d < -1e-10 * scale.max(f64::MIN_POSITIVE) || d.is_nan() {
            return None;
        }
        if d <= tol {
            // Zero pivot: the remaining entries of the column must vanish too.
            for i in j + 1..q {
                let mut s = c[j * q + i];
                for k in 0..j {
                    s -= l[k * q + i] * l[k * q + j];
                }
                if s.abs() > 1e-8 * scale.max(f64::MIN_POSITIVE) {
                    return None;
                }
            }
            continue;
        }
        let ljj = d.sqrt();
        l[j * q + j] = ljj;
        for i in j + 1..q {
            let mut s = c[j * q + i];
            for k in 0..j {
                s -= l[k * q + i] * l[k * q + j];
            }
            l[j * q + i] = s / ljj;
        }
    }
    Some(l)
}

/// Settings of the profile (lme4's `profile.merMod` arguments of the same names).
#[derive(Debug, Clone)]
pub struct ProfileOptions {
    /// The profile extends to `|ζ| = √χ²_{1−alphamax}(k)`.
    pub alphamax: f64,
    /// Largest number of points in each direction.
    pub maxpts: usize,
    /// Step in ζ as a fraction of the cutoff.
    pub delta_cutoff: f64,
    /// Largest step as a multiple of the previous step.
    pub maxmult: f64,
    /// Step used when the secant is unusable.
    pub minstep: f64,
    /// Deviance decrease below the optimum tolerated before profiling fails.
    pub devtol: f64,
    /// Final trust-region radius of the inner optimizations (in scaled units).
    pub rhoend: f64,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        Self {
            alphamax: 0.01,
            maxpts: 100,
            delta_cutoff: 1.0 / 8.0,
            maxmult: 10.0,
            minstep: 1e-6,
            devtol: 1e-9,
            rhoend: 1e-9,
        }
    }
}

impl ProfileOptions {
    /// The settings for GLMM profiles: lme4's, with the inner optimizations stopped at a
    /// trust-region radius of `1e-6` (in units of each parameter's scale) rather than `1e-9`.
    /// Every deviance evaluation of a GLMM runs PIRLS, and at the inner optimum the deviance is
    /// quadratic, so the radius leaves it within ~1e-12; the intervals agree with those of
    /// `1e-9` to ~1e-12 at 60% of the cost.
    pub fn for_glmm() -> Self {
        Self {
            rhoend: 1e-6,
            ..Self::default()
        }
    }
}

/// One point of a profile: `ζ` and every parameter (sd/cor, `σ`, `β`) at the conditional
/// optimum.
#[derive(Debug, Clone)]
pub struct ProfilePoint {
    /// Signed square root of the deviance difference.
    pub zeta: f64,
    /// All parameters, the profiled one included.
    pub pars: Vec<f64>,
}

/// The profile of one parameter, points sorted by its value (the optimum included once).
#[derive(Debug, Clone)]
pub struct ProfileTrace {
    /// Index of the parameter in the full parameter vector.
    pub index: usize,
    /// The points.
    pub points: Vec<ProfilePoint>,
    /// Problems met on the way (lme4 gives the same warnings).
    pub warnings: Vec<String>,
}

/// A point as the walk sees it: the value, ζ, the optimized other parameters (the next
/// start) and the full parameter vector.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) x: f64,
    pub(crate) zeta: f64,
    pub(crate) others: Vec<f64>,
    pub(crate) full: Vec<f64>,
}

/// Computes the row at a value of the profiled parameter from a start for the others.
pub(crate) type ZetaFn<'f> = dyn FnMut(f64, &[f64], &mut Vec<String>) -> Result<Row> + 'f;

/// Everything needed to profile an LMM: the ML fit and the full model's cross-products.
#[derive(Debug)]
pub struct LmmProfiler<'a> {
    spec: ModelSpec<'a>,
    re: ReStructure,
    cp: CrossProducts,
    layout: VarLayout,
    n: usize,
    p: usize,
    /// ML estimates of θ.
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
    /// Fits the model by maximum likelihood from `start` (the fit's θ) and prepares the
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
        let mut optimum = layout.sdcor_from_theta(&fit.theta, fit.sigma);
        optimum.push(fit.sigma);
        optimum.extend_from_slice(&fit.beta);
        let stderr: Vec<f64> = (0..p)
            .map(|k| fit.sigma * fit.vcov_unscaled[k * p + k].max(0.0).sqrt())
            .collect();
        let nvp = layout.n_theta() + 1;
        let mut lower = Vec::with_capacity(nvp + p);
        let mut upper = Vec::with_capacity(nvp + p);
        for sd in layout.is_sd() {
            lower.push(if sd { 0.0 } else { -1.0 });
            upper.push(if sd { f64::INFINITY } else { 1.0 });
        }
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
            theta: fit.theta,
            base: fit.deviance_ml,
            optimum,
            stderr,
            lower,
            upper,
            walker,
        })
    }

    /// Number of covariance parameters plus `σ`.
    pub fn n_var(&self) -> usize {
        self.layout.n_theta() + 1
    }

    /// Total number of parameters.
    pub fn n_par(&self) -> usize {
        self.n_var() + self.p
    }

    /// Lower bounds of the parameters (sd and σ: 0, correlations: −1, β: −∞).
    pub fn lower(&self) -> &[f64] {
        &self.lower
    }

    /// Upper bounds of the parameters.
    pub fn upper(&self) -> &[f64] {
        &self.upper
    }

    /// The ζ cutoff at which the walks stop.
    pub fn cutoff(&self) -> f64 {
        self.walker.cutoff
    }

    /// Profiles parameter `which` (an index into the full parameter vector).
    pub fn profile(&self, which: usize) -> Result<ProfileTrace> {
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

    /// Profiles several parameters on `threads` threads (0: rayon's default), in order.
    pub fn profile_many(&self, which: &[usize], threads: usize) -> Result<Vec<ProfileTrace>> {
        use rayon::prelude::*;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| MixedError::InvalidInput(format!("could not start threads: {e}")))?;
        pool.install(|| which.par_iter().map(|&w| self.profile(w)).collect())
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
        let Some(theta) = self.layout.theta_from_sdcor(&v[..nth], sigma) else {
            return f64::INFINITY;
        };
        match model.set_theta(&theta) {
            Ok(()) => {
                let d = model.deviance_at_sigma(sigma);
                if d.is_nan() {
                    f64::INFINITY
                } else {
                    d
                }
            }
            Err(_) => f64::INFINITY,
        }
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
        let mut zeta_at = |x: f64, start: &[f64], warnings: &mut Vec<String>| -> Result<Row> {
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
        let shift = if pw == 0.0 { 0.001 } else { pw * 1.01 };
        let opt_row = Row {
            x: pw,
            zeta: 0.0,
            others: start.clone(),
            full: self.optimum.clone(),
        };
        let (lowcut, upcut) = (self.lower[w], self.upper[w]);
        let first = zeta_at(shift, &start, &mut warnings)?;
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
        let fit_opts = OptimOptions {
            calc_derivs: false,
            rhobeg: 0.2,
            rhoend: self.walker.opts.rhoend.max(1e-10),
            ..OptimOptions::default()
        };
        let mut zeta_at = |b: f64, _start: &[f64], warnings: &mut Vec<String>| -> Result<Row> {
            set_reduced_response(&mut model.cp, &self.cp, j, b);
            let summary = model.optimize(&self.theta, &fit_opts)?;
            let fval = summary.fmin;
            let zeta = self.walker.zeta_of(b, est, fval, warnings)?;
            model.set_theta(&summary.theta)?;
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
                others: Vec::new(),
                full,
            })
        };
        let mut warnings = Vec::new();
        let opt_row = Row {
            x: est,
            zeta: 0.0,
            others: Vec::new(),
            full: self.optimum.clone(),
        };
        let first = zeta_at(est + self.walker.delta * std, &[], &mut warnings)?;
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

/// The parts of a profile that do not depend on the model: the deviance at the optimum, the
/// ζ cutoff and step, lme4's stepping rule and the assembly of the points.
#[derive(Debug, Clone)]
pub(crate) struct Walker {
    pub(crate) opts: ProfileOptions,
    pub(crate) cutoff: f64,
    pub(crate) delta: f64,
    pub(crate) base: f64,
}

impl Walker {
    /// The walker of a model with `k` parameters in all and deviance `base` at the optimum.
    pub(crate) fn new(opts: ProfileOptions, k: usize, base: f64) -> Result<Self> {
        let chi = ChiSquared::new(k as f64)
            .map_err(|e| MixedError::InvalidInput(format!("chi-squared quantile: {e}")))?;
        let cutoff = chi.inverse_cdf(1.0 - opts.alphamax).sqrt();
        let delta = cutoff * opts.delta_cutoff;
        Ok(Self {
            opts,
            cutoff,
            delta,
            base,
        })
    }

    pub(crate) fn zeta_of(
        &self,
        x: f64,
        pw: f64,
        fval: f64,
        warnings: &mut Vec<String>,
    ) -> Result<f64> {
        let devdiff = fval - self.base;
        if !devdiff.is_finite() {
            return Err(MixedError::Optimizer(
                "the deviance could not be evaluated while profiling".into(),
            ));
        }
        if devdiff < -self.opts.devtol {
            return Err(MixedError::Optimizer(format!(
                "profiling detected a new, lower deviance (by {:.3e}): the fit has not \
                 converged to the maximum-likelihood estimates",
                -devdiff
            )));
        }
        if devdiff < 0.0 {
            warnings.push(format!(
                "slightly lower deviances (diff={devdiff:e}) detected"
            ));
        }
        let sign = if x > pw {
            1.0
        } else if x < pw {
            -1.0
        } else {
            0.0
        };
        Ok(sign * devdiff.max(0.0).sqrt())
    }

    /// lme4's `fillmat`: from two rows, keeps stepping while the last point is inside the
    /// bounds and `|ζ|` is within the cutoff. Returns the new rows (the two given excluded).
    pub(crate) fn walk(
        &self,
        init: [Row; 2],
        lowcut: f64,
        upcut: f64,
        zeta_at: &mut ZetaFn<'_>,
        warnings: &mut Vec<String>,
    ) -> Vec<Row> {
        let [mut prev, mut cur] = init;
        let mut out = Vec::new();
        let mut i = 2;
        while i < self.opts.maxpts
            && cur.x > lowcut
            && cur.x < upcut
            && cur.zeta.abs() <= self.cutoff
        {
            let next_x = self.next_par(&prev, &cur, lowcut, upcut, warnings);
            match zeta_at(next_x, &cur.others, warnings) {
                Ok(row) => {
                    out.push(row.clone());
                    prev = std::mem::replace(&mut cur, row);
                }
                Err(e) => {
                    warnings.push(format!("profiling stopped early: {e}"));
                    break;
                }
            }
            i += 1;
        }
        out
    }

    /// lme4's `nextpar`: a step of `δ` in ζ along the secant through the last two points.
    fn next_par(
        &self,
        prev: &Row,
        cur: &Row,
        lower: f64,
        upper: f64,
        warnings: &mut Vec<String>,
    ) -> f64 {
        let num = cur.x - prev.x;
        let denom = cur.zeta - prev.zeta;
        let step = if denom.is_nan() || denom == 0.0 {
            warnings.push("Last two rows have identical or NA .zeta values: using minstep".into());
            self.opts.minstep
        } else {
            let step = self.delta * num / denom;
            if step < 0.0 {
                warnings.push("unexpected decrease in profile: using minstep".into());
                self.opts.minstep
            } else {
                let maxstep = (self.opts.maxmult * num).abs();
                if step.abs() > maxstep {
                    maxstep
                } else {
                    step
                }
            }
        };
        let sign = if num > 0.0 {
            1.0
        } else if num < 0.0 {
            -1.0
        } else {
            0.0
        };
        (cur.x + sign * step).max(lower).min(upper)
    }

    /// Walks from the optimum `opt_row` through the first step `first` on to the cutoff or
    /// the bound, then (when `both`) from `first` back through the optimum and beyond, and
    /// assembles the points sorted by the parameter's value (lme4 keeps the optimum and the
    /// first step, computed once for both directions, once each).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run(
        &self,
        index: usize,
        opt_row: Row,
        first: Row,
        lowcut: f64,
        upcut: f64,
        both: bool,
        zeta_at: &mut ZetaFn<'_>,
        mut warnings: Vec<String>,
    ) -> ProfileTrace {
        let up = self.walk(
            [opt_row.clone(), first.clone()],
            lowcut,
            upcut,
            zeta_at,
            &mut warnings,
        );
        let down = if both {
            self.walk(
                [first.clone(), opt_row.clone()],
                lowcut,
                upcut,
                zeta_at,
                &mut warnings,
            )
        } else {
            Vec::new()
        };
        let mut rows: Vec<Row> = Vec::with_capacity(up.len() + down.len() + 2);
        rows.push(opt_row);
        rows.push(first);
        rows.extend(up);
        rows.extend(down);
        rows.sort_by(|a, b| a.x.total_cmp(&b.x));
        rows.dedup_by(|a, b| a.x == b.x && a.zeta == b.zeta);
        let mut warnings = warnings;
        warnings.dedup();
        ProfileTrace {
            index,
            points: rows
                .into_iter()
                .map(|r| ProfilePoint {
                    zeta: r.zeta,
                    pars: r.full,
                })
                .collect(),
            warnings,
        }
    }
}

/// Writes `x` at position `w` of `full` and `others` around it.
pub(crate) fn fill_with(full: &mut [f64], w: usize, x: f64, others: &[f64]) {
    let mut k = 0;
    for (i, v) in full.iter_mut().enumerate() {
        if i == w {
            *v = x;
        } else {
            *v = others[k];
            k += 1;
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
    set_reduced_response_all(&mut out, cp, j, b);
    out
}

/// Recomputes every `F` block of `reduced` for `b`.
fn set_reduced_response_all(reduced: &mut CrossProducts, cp: &CrossProducts, j: usize, b: f64) {
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

/// Minimizes `f` over `lower ≤ x ≤ upper` from `start` with BOBYQA on the scaled variables
/// `(x − start)/scale`.
pub fn bounded_minimize(
    f: &mut dyn FnMut(&[f64]) -> f64,
    start: &[f64],
    lower: &[f64],
    upper: &[f64],
    scale: &[f64],
    rhoend: f64,
) -> Result<(Vec<f64>, f64)> {
    let n = start.len();
    if n == 0 {
        let v = f(&[]);
        return Ok((Vec::new(), v));
    }
    let center: Vec<f64> = (0..n)
        .map(|k| start[k].max(lower[k]).min(upper[k]))
        .collect();
    let ly: Vec<f64> = (0..n).map(|k| (lower[k] - center[k]) / scale[k]).collect();
    let uy: Vec<f64> = (0..n).map(|k| (upper[k] - center[k]) / scale[k]).collect();
    let width = (0..n).map(|k| uy[k] - ly[k]).fold(f64::INFINITY, f64::min);
    let rhobeg = 0.2f64.min(0.5 * width);
    if rhobeg.is_nan() || rhobeg <= 0.0 {
        return Err(MixedError::Optimizer(
            "a parameter's bounds leave no room to optimize".into(),
        ));
    }
    let mut config = Config::new(n);
    config.rho_begin = rhobeg;
    config.rho_end = rhoend.min(rhobeg);
    config.max_fun = 2000 * (n + 1);
    let mut solver = Bobyqa::new(n, config)
        .map_err(|s| MixedError::Optimizer(format!("BOBYQA could not start: {s}")))?;
    let mut y = vec![0.0; n];
    let mut x = vec![0.0; n];
    let mut best = (f64::INFINITY, center.clone());
    let outcome = solver.minimize(
        |yy: &[f64]| {
            for k in 0..n {
                x[k] = (center[k] + scale[k] * yy[k]).max(lower[k]).min(upper[k]);
            }
            let v = f(&x);
            let v = if v.is_nan() { f64::INFINITY } else { v };
            if v < best.0 {
                best = (v, x.clone());
            }
            v
        },
        &mut y,
        &ly,
        &uy,
    );
    if !outcome.found_finite() || !best.0.is_finite() {
        return Err(MixedError::Optimizer(
            "the deviance could not be evaluated near the profiled value".into(),
        ));
    }
    Ok((best.1, best.0))
}

/// Natural cubic interpolating spline through `(x, y)` (`x` strictly increasing): the value and
/// first derivative at every knot and the polynomial coefficients of each piece
/// `y + b δ + c δ² + d δ³`, as R's `splines::interpSpline` builds it.
fn natural_spline(x: &[f64], y: &[f64]) -> Vec<[f64; 4]> {
    let n = x.len();
    let h: Vec<f64> = (0..n - 1).map(|i| x[i + 1] - x[i]).collect();
    // Second derivatives m with m[0] = m[n−1] = 0: tridiagonal system for the interior.
    let mut m = vec![0.0; n];
    if n > 2 {
        let k = n - 2;
        let mut diag = vec![0.0; k];
        let mut rhs = vec![0.0; k];
        let mut sub = vec![0.0; k];
        let mut sup = vec![0.0; k];
        for i in 1..n - 1 {
            diag[i - 1] = 2.0 * (h[i - 1] + h[i]);
            sub[i - 1] = h[i - 1];
            sup[i - 1] = h[i];
            rhs[i - 1] = 6.0 * ((y[i + 1] - y[i]) / h[i] - (y[i] - y[i - 1]) / h[i - 1]);
        }
        // Thomas algorithm.
        for i in 1..k {
            let w = sub[i] / diag[i - 1];
            diag[i] -= w * sup[i - 1];
            rhs[i] -= w * rhs[i - 1];
        }
        m[k] = rhs[k - 1] / diag[k - 1];
        for i in (0..k - 1).rev() {
            m[i + 1] = (rhs[i] - sup[i] * m[i + 2]) / diag[i];
        }
    }
    let mut coef = Vec::with_capacity(n);
    for i in 0..n - 1 {
        let b = (y[i + 1] - y[i]) / h[i] - h[i] * (2.0 * m[i] + m[i + 1]) / 6.0;
        coef.push([y[i], b, m[i] / 2.0, (m[i + 1] - m[i]) / (6.0 * h[i])]);
    }
    let hl = h[n - 2];
    let bl = (y[n - 1] - y[n - 2]) / hl + hl * (m[n - 2] + 2.0 * m[n - 1]) / 6.0;
    coef.push([y[n - 1], bl, 0.0, 0.0]);
    coef
}

/// A piecewise cubic: knots and per-knot coefficients `[a, b, c, d]` of
/// `a + b δ + c δ² + d δ³`, `δ = t − knot`.
#[derive(Debug, Clone)]
struct PolySpline {
    knots: Vec<f64>,
    coef: Vec<[f64; 4]>,
}

impl PolySpline {
    /// R's `predict.polySpline`: the piece of interval `(kᵢ, kᵢ₊₁]` (the first knot itself
    /// belongs to the first), `None` outside the knots.
    fn eval(&self, t: f64) -> Option<f64> {
        let k = &self.knots;
        let nk = k.len();
        if t.is_nan() || nk < 2 {
            return None;
        }
        let i = if t == k[0] {
            0
        } else if t > k[0] && t <= k[nk - 1] {
            // Largest i with k[i] < t.
            k.partition_point(|&v| v < t) - 1
        } else {
            return None;
        };
        let c = self.coef[i];
        let d = t - k[i];
        let v = ((c[3] * d + c[2]) * d + c[1]) * d + c[0];
        if v.is_nan() {
            None
        } else {
            Some(v)
        }
    }
}

/// R's `backSpline` of the natural spline `coef` over `knots`: the inverse function as a
/// piecewise cubic (Hermite on interior pieces, quadratic on the end pieces). `None` when the
/// values at the knots are not strictly monotone.
fn back_spline(knots: &[f64], coef: &[[f64; 4]]) -> Option<PolySpline> {
    let nk = knots.len();
    let vals: Vec<f64> = coef.iter().map(|c| c[0]).collect();
    let adiff: Vec<f64> = (0..nk - 1).map(|i| vals[i + 1] - vals[i]).collect();
    let kdiff: Vec<f64> = (0..nk - 1).map(|i| knots[i + 1] - knots[i]).collect();
    let rev = if adiff.iter().all(|&a| a < 0.0) {
        true
    } else if adiff.iter().all(|&a| a > 0.0) {
        false
    } else {
        return None;
    };
    let mut bc: Vec<[f64; 4]> = (0..nk)
        .map(|i| [knots[i], 1.0 / coef[i][1], 0.0, 0.0])
        .collect();
    for i in 0..nk - 1 {
        let h = adiff[i];
        let r1 = kdiff[i] - h * bc[i][1];
        let r2 = bc[i + 1][1] - bc[i][1];
        bc[i][2] = (3.0 * r1 - h * r2) / (h * h);
        bc[i][3] = (h * r2 - 2.0 * r1) / (h * h * h);
    }
    bc[nk - 1][1] = f64::NAN;
    bc[nk - 1][2] = f64::NAN;
    bc[nk - 1][3] = f64::NAN;
    let last = nk - 2;
    if nk > 2 {
        bc[0][3] = 0.0;
        bc[last][3] = 0.0;
        let h = adiff[0];
        let r1 = kdiff[0];
        let r2 = 1.0 / coef[1][1];
        bc[0][1] = 2.0 * r1 / h - r2;
        bc[0][2] = (h * r2 - r1) / (h * h);
        bc[last][2] = (kdiff[last] - adiff[last] * bc[last][1]) / (adiff[last] * adiff[last]);
    }
    if bc[0][2] > 0.0 {
        bc[0][2] = 0.0;
        bc[0][1] = kdiff[0] / adiff[0];
    }
    if bc[last][2] < 0.0 {
        bc[last][2] = 0.0;
        bc[last][1] = kdiff[last] / adiff[last];
    }
    let (mut k, mut c) = (vals, bc);
    if rev {
        k.reverse();
        c.reverse();
    }
    Some(PolySpline { knots: k, coef: c })
}

/// `ζ` values closer than this are one value: far below the optimizer's precision in `ζ`
/// (~1e-6), far above rounding in the deviance (~1e-13).
pub const ZETA_TIE: f64 = 1e-9;

/// How [`profile_interval`] read the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalMethod {
    /// The inverse of the interpolating spline (lme4's `backSpline`).
    Spline,
    /// Linear interpolation of the points (the spline could not be built); `ties` when points
    /// with equal `ζ` were averaged (R's `approx` warns "collapsing to unique 'x' values").
    Linear { ties: bool },
    /// No interval: the profile is unusable.
    Failed,
}

/// The parameter values where the profile `ζ(par)` crosses each of `targets`, as lme4's
/// `confint.thpr` reads them: from the inverse of the natural interpolating spline of ζ on the
/// parameter, or, when that spline cannot be built (fewer than four points, ζ not monotone),
/// linear interpolation. `NaN` where the profile does not reach a target (the caller
/// substitutes the parameter's bound).
///
/// Neighbouring points whose `ζ` differ by less than [`ZETA_TIE`] lie on a flat stretch of the
/// profile (a correlation whose standard deviation is 0 there): they count as equal, so the
/// profile is not monotone and is read linearly, as lme4 reads such profiles, rather than through
/// a spline inverse whose slope there is arbitrary.
pub fn profile_interval(par: &[f64], zeta: &[f64], targets: &[f64]) -> (Vec<f64>, IntervalMethod) {
    let mut pts: Vec<(f64, f64)> = par
        .iter()
        .zip(zeta)
        .filter(|(p, z)| p.is_finite() && z.is_finite())
        .map(|(&p, &z)| (p, z))
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    for i in 1..pts.len() {
        if (pts[i].1 - pts[i - 1].1).abs() < ZETA_TIE {
            pts[i].1 = pts[i - 1].1;
        }
    }
    let distinct = pts.windows(2).all(|w| w[0].0 < w[1].0);
    if pts.len() >= 4 && distinct {
        let x: Vec<f64> = pts.iter().map(|p| p.0).collect();
        let y: Vec<f64> = pts.iter().map(|p| p.1).collect();
        let coef = natural_spline(&x, &y);
        if let Some(back) = back_spline(&x, &coef) {
            let out = targets
                .iter()
                .map(|&t| back.eval(t).unwrap_or(f64::NAN))
                .collect();
            return (out, IntervalMethod::Spline);
        }
    }
    if pts.is_empty() {
        return (vec![f64::NAN; targets.len()], IntervalMethod::Failed);
    }
    // lme4 gives up only when every step decreases ζ by more than 0.01.
    if pts.len() > 1 && pts.windows(2).all(|w| w[1].1 - w[0].1 < -0.01) {
        return (vec![f64::NAN; targets.len()], IntervalMethod::Failed);
    }
    // approxfun(zeta, par): sort by ζ, average ties, linear inside, NA outside.
    let mut by_z: Vec<(f64, f64)> = pts.iter().map(|&(p, z)| (z, p)).collect();
    by_z.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut xs: Vec<f64> = Vec::new();
    let mut ys: Vec<f64> = Vec::new();
    let mut i = 0;
    let mut ties = false;
    while i < by_z.len() {
        let mut j = i;
        let mut s = 0.0;
        while j < by_z.len() && by_z[j].0 == by_z[i].0 {
            s += by_z[j].1;
            j += 1;
        }
        ties |= j - i > 1;
        xs.push(by_z[i].0);
        ys.push(s / (j - i) as f64);
        i = j;
    }
    let out = targets
        .iter()
        .map(|&t| {
            if xs.len() == 1 {
                return if t == xs[0] { ys[0] } else { f64::NAN };
            }
            if !(t >= xs[0] && t <= xs[xs.len() - 1]) {
                return f64::NAN;
            }
            let k = xs.partition_point(|&v| v <= t).clamp(1, xs.len() - 1);
            let (x0, x1, y0, y1) = (xs[k - 1], xs[k], ys[k - 1], ys[k]);
            y0 + (y1 - y0) * (t - x0) / (x1 - x0)
        })
        .collect();
    (out, IntervalMethod::Linear { ties })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spline_inverse_of_a_linear_profile_is_exact() {
        let x: Vec<f64> = (0..9).map(|i| i as f64 * 0.5 - 2.0).collect();
        let z: Vec<f64> = x.iter().map(|v| 2.0 * v + 1.0).collect();
        let (out, how) = profile_interval(&x, &z, &[-1.96, 0.0, 1.96]);
        assert_eq!(how, IntervalMethod::Spline);
        for (o, t) in out.iter().zip([-1.96, 0.0, 1.96]) {
            assert!((o - (t - 1.0) / 2.0).abs() < 1e-12, "{o}");
        }
        let (out, _) = profile_interval(&x, &z, &[10.0]);
        assert!(out[0].is_nan());
    }

    #[test]
    fn sdcor_round_trip() {
        let layout = VarLayout { term_q: vec![2, 1] };
        let theta = [1.2, -0.3, 0.7, 0.4];
        let v = layout.sdcor_from_theta(&theta, 2.0);
        let back = layout.theta_from_sdcor(&v, 2.0).unwrap();
        for (a, b) in theta.iter().zip(&back) {
            assert!((a - b).abs() < 1e-12);
        }
        assert!(layout
            .theta_from_sdcor(&[1.0, 1.5, 1.0, 1.0], 1.0)
            .is_none());
        let singular = layout.theta_from_sdcor(&[1.0, 1.0, 1.0, 1.0], 1.0).unwrap();
        assert_eq!(singular[2], 0.0);
    }
}
