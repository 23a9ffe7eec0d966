//! Stage 2 of the GLMM fit, its metric and its finite-difference derivatives.
//!
//! Stage 2 minimizes the Laplace (or AGQ) deviance over (θ, β) jointly (for a family with extra
//! parameters over (θ, extra, β), the extra ones scaled as θ is). It searches in whitened
//! coordinates `y` with `(θ, β) = center + T y` ([`Stage2Metric`]: θ scaled by calibrated
//! curvature probes, β through the Cholesky factor of its stage-1 covariance), about one
//! standard error per unit, so that one trust region fits every parameter. The gradient and
//! Hessian of the criterion at the optimum (for the convergence check and the standard errors)
//! are differences in the same coordinates (forward differences of the exact gradient where
//! there is one, else central differences of the criterion), mapped back exactly; the
//! difference points are evaluated from the optimum's modes, shared out over threads when
//! there are several.
use super::glmm::{
    run_stage, GeneralizedLinearMixedModel, GlmmOptions, SearchStart, StageOptimizer,
};
use super::par_scale::ColumnScales;
use super::pirls::WarmStart;
use super::quadrature::GaussHermite;
use crate::error::{MixedError, Result};
use crate::optim::angle_coordinate::AngleCoordinate;
use crate::optim::projected_bfgs::GradientSearch;
use crate::optim::{self, Objective, OptSummary, OptimOptions, Stop};

/// Step of the curvature probes along θ relative to |θ| (at least 0.1).
const THETA_PROBE_STEP: f64 = 0.05;
/// Step of the curvature probe along β, in whitened units (about one standard error).
const BETA_PROBE_STEP: f64 = 0.5;
/// The same for the evaluations of the finite-difference derivatives: their errors are divided
/// by the squared step (1e-8), so the modes are made as exact as rounding allows (PIRLS also
/// stops once it is within `PIRLS_STEP_TOL` and the steps no longer shrink).
const FD_STEP_TOL: f64 = 1e-12;
/// Step of the finite-difference derivatives in the whitened coordinates of the stage-2 metric
/// (about one standard error per unit). One central difference: its truncation error at
/// `h = 0.01`, about `h² f''''/12`, is far below the accuracy SEs need, so Richardson
/// extrapolation over `h` and `2h` (measured: the same SEs) is not worth twice the evaluations.
const FD_WHITENED_STEP: f64 = 1e-2;
/// Step (whitened units, about one standard error each) of the forward differences of the
/// exact gradient that give the Hessian. Their truncation error is `h/2` times the third
/// derivative, the gradient's own error (PIRLS at [`FD_STEP_TOL`] and rounding, ~1e-13 on
/// the catalogue below) is divided by `h`. Measured against central differences at `h = 1e-3`
/// (VerbAgg, cbpp, grouseticks with two crossed terms, a binomial with a random slope and
/// a crossed term, a probit and a crossed Poisson): standard errors within 6.6e-7 at
/// `h = 1e-5`, 2e-7 at 3e-6 and 6e-8 at 1e-6, where rounding starts to show (up to 4e-7 at
/// 1e-7); glmer's own standard errors differ from both by 2e-5 to 1e-2.
const GRADIENT_FD_STEP: f64 = 3e-6;
/// The quasi-Newton stage 2 stops when every free component of the deviance's gradient in
/// the whitened coordinates (per standard error) is below this.
const QN_GRADIENT_TOL: f64 = 1e-6;
/// The message of a quasi-Newton stage 2 that converged.
pub(super) const QN_CONVERGED: &str =
    "quasi-Newton (BFGS) with the exact gradient of the Laplace deviance: converged";
/// A standard deviation (for `us` a diagonal element of a `T`) below this at the end of the
/// quasi-Newton search (in θ's units) is checked by a search from lme4's start for it, 1 ...
/// Near 0 the deviance is flat in it and in the other parameters of its term, and the search can
/// stop there: a homogeneous `cs()` term stopped at 3e-4, 0.19 log-likelihood units short, where
/// the threshold had been this many of its scale units (at most 1, there far fewer).
const QN_ZERO_THETA: f64 = 1e-3;
/// ... and the search restarts from there at most this often.
const QN_ESCAPES: usize = 3;
/// How often the step is reduced when PIRLS fails at some difference point, and by how much.
const FD_RETRIES: usize = 3;
const FD_RETRY_FACTOR: f64 = 4.0;

/// Finite-difference derivatives of the stage-2 criterion in the original parameters.
pub(super) struct Derivatives {
    pub(super) gradient: Vec<f64>,
    /// Column-major.
    pub(super) hessian: Vec<f64>,
    /// Why they could not be computed (then both are NaN).
    pub(super) problem: Option<String>,
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
#[derive(Clone)]
pub(super) struct Stage2Metric {
    /// Scale of each θ element.
    theta_scale: Vec<f64>,
    p: usize,
    /// `M`, `p × p` column-major, lower triangular.
    m: Vec<f64>,
}

impl Stage2Metric {
    /// `M = I`, θ unscaled.
    pub(super) fn identity(nth: usize, p: usize) -> Self {
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
    pub(super) fn from_vcov(vcov: &[f64], nth: usize, p: usize) -> Self {
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

    /// `Tᵀ g` for a gradient `g` over `x` (`T = dx/dy`): the gradient over `y`.
    fn gradient_to_whitened(&self, g: &[f64]) -> Vec<f64> {
        let nth = g.len() - self.p;
        let mut out: Vec<f64> = (0..nth).map(|k| self.theta_scale[k] * g[k]).collect();
        let gb = &g[nth..];
        for j in 0..self.p {
            let col = &self.m[j * self.p..(j + 1) * self.p];
            out.push((j..self.p).map(|i| col[i] * gb[i]).sum());
        }
        out
    }

    /// The Hessian over `y` (row-major) that the search starts from: `2 I`, the curvature of
    /// about one per standard error² the coordinates are scaled to, with the columns (and, by
    /// symmetry, rows) measured by `probes` (coordinate `c`, its step in `x`, the gradient over
    /// `x` there; `g0` the centre's): forward differences of the gradient over `y`. Along a
    /// θ (or family parameter, `c < nsc`) a step `a` in `x` is `a / scale` in `y`; along the
    /// last fixed effect, whose column of `M` has a single entry, `a / M_pp`. Where two
    /// measured columns cross, the mean of the two entries.
    fn probed_hessian(
        &self,
        g0: &[f64],
        probes: &[(usize, f64, Vec<f64>)],
        nsc: usize,
    ) -> Vec<f64> {
        let k = g0.len();
        let mut h = vec![0.0; k * k];
        for j in 0..k {
            h[j * k + j] = 2.0;
        }
        let g0y = self.gradient_to_whitened(g0);
        let mut measured = vec![false; k];
        let mut columns: Vec<(usize, Vec<f64>)> = Vec::new();
        for (c, a, g1) in probes {
            let (c, a) = (*c, *a);
            let unit = if c < nsc {
                self.theta_scale[c]
            } else if c + 1 == k {
                self.m[self.p * self.p - 1]
            } else {
                continue;
            };
            let dy = a / unit;
            let g1y = self.gradient_to_whitened(g1);
            let col: Vec<f64> = (0..k).map(|r| (g1y[r] - g0y[r]) / dy).collect();
            if dy.is_finite() && dy != 0.0 && col.iter().all(|v| v.is_finite()) {
                measured[c] = true;
                columns.push((c, col));
            }
        }
        for (c, col) in &columns {
            for (r, &v) in col.iter().enumerate() {
                if measured[r] && r != *c {
                    // Both columns measured: each contributes half.
                    h[r * k + c] += 0.5 * v;
                    h[*c * k + r] += 0.5 * v;
                } else {
                    h[r * k + c] = v;
                    h[*c * k + r] = v;
                }
            }
        }
        h
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

/// The scale `1/√I_k` of coordinate `k` when it is one of the family's extra parameters with a
/// usable information `I` ([`GeneralizedLinearMixedModel::extra_information`]), clamped to
/// [1e-3, 10].
fn information_scale(information: Option<&[f64]>, k: usize, nth: usize) -> Option<f64> {
    let info = information?.get(k.wrapping_sub(nth))?;
    let scale = 1.0 / info.sqrt();
    (scale.is_finite() && scale > 0.0).then(|| scale.clamp(1e-3, 10.0))
}

/// Scales `M` (every fixed effect's coordinate) by `√(2 / curvature)` (clamped to [1e-3, 1e3];
/// nothing when that is not a positive number): the curvature measured along the last whitened
/// fixed effect, so that a unit step raises the deviance by about one.
fn scale_fixed_effects(metric: &mut Stage2Metric, curvature: f64) {
    let factor = (2.0 / curvature).sqrt();
    if factor.is_finite() && factor > 0.0 {
        let factor = factor.clamp(1e-3, 1e3);
        metric.m.iter_mut().for_each(|v| *v *= factor);
    }
}

/// Sets the scale of coordinate `k` of `metric` (a θ with `theta`, else a family's own
/// parameter) from the criterion's `curvature` along it: `√(2/curvature)`, about one standard
/// error, clamped (unchanged where that is not a positive number).
fn set_scale(metric: &mut Stage2Metric, k: usize, theta: bool, curvature: f64, unit: f64) {
    let scale = (2.0 / curvature).sqrt();
    if scale.is_finite() && scale > 0.0 {
        // An extra parameter (log dispersion, zero-inflation coefficient) can be far less well
        // determined than any θ. (A θ's limits are in the scale of its column, `unit`.)
        let largest = if theta { 1.0 } else { 10.0 };
        metric.theta_scale[k] = scale.clamp(1e-3 * unit, largest * unit);
    }
}

impl GeneralizedLinearMixedModel<'_> {
    /// Bounds of the coordinates that stage 2 scales one by one: θ's, then the family's extra
    /// parameters (unbounded).
    fn scaled_bounds(&self) -> (Vec<f64>, Vec<f64>) {
        let ne = self.n_extra();
        let mut lower = self.re.par_lower();
        let mut upper = self.re.par_upper();
        lower.extend(std::iter::repeat_n(f64::NEG_INFINITY, ne));
        upper.extend(std::iter::repeat_n(f64::INFINITY, ne));
        (lower, upper)
    }

    /// The unit of each scaled coordinate's probe floor: a covariance parameter's in the scale
    /// of its column ([`super::par_scale`]: a random slope of `x × 1000` has its θ 1000 times
    /// smaller, where a floor of 0.1 in θ's own units put the probes far out), 1 for the
    /// family's parameters.
    fn probe_units(&self) -> Vec<f64> {
        let mut unit = ColumnScales::of_rows(&self.re, &self.spec).par_scale(&self.re);
        unit.resize(self.re.n_par() + self.n_extra(), 1.0);
        unit
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
    /// of `M` has a single entry) measures that factor for all of them. With `by_information`
    /// (the quasi-Newton search follows, which needs scales only to start its curvature
    /// model) the family's own parameters take `1/√I_k` from their information at the modes
    /// ([`Self::extra_information`]) instead of two probes each: on the catalogue of count
    /// models the searches were as long, and zero inflation by 8 species saved 16 of 93
    /// evaluations; and the curvatures come from forward differences of the exact gradient
    /// (one probe instead of two), with the centre's gradient kept as the search's first
    /// evaluation (`search_start`): on the count and proportion catalogue 5-10% fewer
    /// evaluations, and a third fewer for the starts of zero-inflation random effects, whose
    /// θ's had taken four probes. Returns the number of evaluations used; a failed probe
    /// leaves its scale as it was.
    pub(super) fn calibrate(
        &mut self,
        center: &[f64],
        rule: Option<&GaussHermite>,
        metric: &mut Stage2Metric,
        by_information: bool,
    ) -> usize {
        let (lower, upper) = self.scaled_bounds();
        let nsc = lower.len();
        let nth = self.re.n_par();
        // Before the quasi-Newton search, curvatures come from differences of the exact
        // gradient: one probe per coordinate instead of two, and the centre's gradient is the
        // search's first evaluation.
        if by_information && rule.is_none() && self.has_laplace_gradient() {
            return self.calibrate_by_gradient(center, metric, &upper);
        }
        let mut evals = 1;
        let f0 = match self.objective_theta_beta(center, rule) {
            Ok(f) => f,
            Err(_) => return evals,
        };
        let information = if by_information {
            self.extra_information()
        } else {
            None
        };
        let unit = self.probe_units();
        let mut x = center.to_vec();
        for k in 0..nsc {
            if let Some(scale) = information_scale(information.as_deref(), k, nth) {
                metric.theta_scale[k] = scale;
                continue;
            }
            let h = THETA_PROBE_STEP * center[k].abs().max(0.1 * unit[k]);
            let (a, b) = if center[k] - h < lower[k] {
                (h, 2.0 * h)
            } else if center[k] + h > upper[k] {
                (-h, -2.0 * h)
            } else {
                (-h, h)
            };
            evals += 2;
            let (Ok(fa), Ok(fb)) = (
                self.probe(&mut x, k, center[k] + a, rule),
                self.probe(&mut x, k, center[k] + b, rule),
            ) else {
                continue;
            };
            // Second difference through (0, f0), (a, fa), (b, fb) for a = −h or h, b = h or 2h.
            let curvature = if a < 0.0 && b > 0.0 {
                (fa - 2.0 * f0 + fb) / (h * h)
            } else {
                (fb - 2.0 * fa + f0) / (h * h)
            };
            set_scale(metric, k, k < nth, curvature, unit[k]);
        }
        if let Some(j) = (0..metric.p).last() {
            let step = BETA_PROBE_STEP * metric.m[j * metric.p + j];
            let k = nsc + j;
            evals += 2;
            if let (Ok(fp), Ok(fm)) = (
                self.probe(&mut x, k, center[k] + step, rule),
                self.probe(&mut x, k, center[k] - step, rule),
            ) {
                let curvature = (fp - 2.0 * f0 + fm) / (BETA_PROBE_STEP * BETA_PROBE_STEP);
                scale_fixed_effects(metric, curvature);
            }
        }
        evals
    }

    /// [`Self::calibrate`] before the quasi-Newton search, where the exact gradient exists:
    /// each curvature is a forward difference of the gradient (one probe per coordinate), the
    /// centre and the probes are evaluated together, each from the centre's modes, and shared
    /// out over the fit's threads ([`Self::share_points`]); the centre's criterion and
    /// gradient, and the Hessian the probes measured, start the search (`search_start`).
    /// Returns the number of evaluations.
    fn calibrate_by_gradient(
        &mut self,
        center: &[f64],
        metric: &mut Stage2Metric,
        upper: &[f64],
    ) -> usize {
        let nsc = upper.len();
        let nth = self.re.n_par();
        let information = self.extra_information();
        // (coordinate, step) of each probe: the scaled coordinates without an information,
        // then the last fixed effect (whose column of `M` has a single entry).
        let mut steps: Vec<(usize, f64)> = Vec::new();
        let unit = self.probe_units();
        for k in 0..nsc {
            if let Some(scale) = information_scale(information.as_deref(), k, nth) {
                metric.theta_scale[k] = scale;
                continue;
            }
            let h = THETA_PROBE_STEP * center[k].abs().max(0.1 * unit[k]);
            steps.push((k, if center[k] + h > upper[k] { -h } else { h }));
        }
        // `M`'s diagonal entry of the last fixed effect, before the probe rescales `M`.
        let mjj = (0..metric.p).last().map(|j| {
            let mjj = metric.m[j * metric.p + j];
            steps.push((nsc + j, BETA_PROBE_STEP * mjj));
            mjj
        });
        let mut points = vec![center.to_vec()];
        for &(k, a) in &steps {
            let mut x = center.to_vec();
            x[k] = center[k] + a;
            points.push(x);
        }
        let start = self.pirls.warm_start();
        let gradient_at = |model: &mut GeneralizedLinearMixedModel<'_>,
                           batch: &[Vec<f64>]|
         -> Vec<Option<(f64, Vec<f64>)>> {
            batch
                .iter()
                .map(|x| {
                    model.pirls.restore(&start);
                    match model.laplace_gradient(x) {
                        Ok((f, g)) if f.is_finite() && g.iter().all(|v| v.is_finite()) => {
                            Some((f, g))
                        }
                        _ => None,
                    }
                })
                .collect()
        };
        let mut results = self.share_points(&points, &gradient_at, &|| None);
        self.pirls.restore(&start);
        let evals = points.len();
        let Some((f0, g0)) = results[0].take() else {
            return evals;
        };
        // Each probe's gradient: (coordinate, step in x, gradient over x).
        let mut probes: Vec<(usize, f64, Vec<f64>)> = Vec::new();
        for ((k, a), result) in steps.into_iter().zip(results.into_iter().skip(1)) {
            let Some((_, g1)) = result else { continue };
            match mjj {
                // The curvature along that whitened coordinate (a unit moves β_j by `mjj`).
                Some(mjj) if k >= nsc => {
                    scale_fixed_effects(metric, (g1[k] - g0[k]) * mjj / BETA_PROBE_STEP)
                }
                _ => set_scale(metric, k, k < nth, (g1[k] - g0[k]) / a, unit[k]),
            }
            probes.push((k, a, g1));
        }
        let hessian = metric.probed_hessian(&g0, &probes, nsc);
        self.search_start = Some(SearchStart {
            center: center.to_vec(),
            f: f0,
            gradient: g0,
            hessian,
        });
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
    pub(super) fn search(
        &mut self,
        rule: Option<&GaussHermite>,
        center: &[f64],
        metric: &Stage2Metric,
        opts: &OptimOptions,
        optimizer: StageOptimizer,
        progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
    ) -> Result<OptSummary> {
        let nth = self.re.n_par();
        let lower_theta = self.re.par_lower();
        let (lower_scaled, upper_scaled) = self.scaled_bounds();
        let nsc = lower_scaled.len();
        let lower: Vec<f64> = (0..center.len())
            .map(|k| {
                if k < nsc {
                    (lower_scaled[k] - center[k]) / metric.theta_scale[k]
                } else {
                    f64::NEG_INFINITY
                }
            })
            .collect();
        let upper: Vec<f64> = (0..center.len())
            .map(|k| {
                if k < nsc {
                    (upper_scaled[k] - center[k]) / metric.theta_scale[k]
                } else {
                    f64::INFINITY
                }
            })
            .collect();
        let bounds = (lower, upper);
        let zero = vec![0.0; center.len()];
        if self.quasi_newton_searches(rule, optimizer) {
            if let Some(summary) = self.quasi_newton_search(center, metric, opts, progress)? {
                return Ok(summary);
            }
            if self.quasi_newton_only.is_some() {
                return Err(MixedError::Optimizer(
                    "the quasi-Newton search did not converge (quasi_newton_only: no BOBYQA \
                     search from the start)"
                        .into(),
                ));
            }
        }
        let mut summary = {
            let mut obj = Stage2 {
                model: &mut *self,
                rule,
                center,
                metric,
                progress,
                x: zero.clone(),
            };
            run_stage(&mut obj, &zero, &bounds, opts, optimizer)?
        };
        let mut pars = vec![0.0; center.len()];
        metric.apply(center, &summary.theta, &mut pars);
        self.re.normalize_par_signs(&mut pars[..nth]);
        summary.theta = pars;
        summary.start = center.to_vec();
        summary.lower = lower_theta;
        Ok(summary)
    }

    /// Whether stage 2 (with `opts`) is the quasi-Newton search with the exact gradient
    /// (otherwise BOBYQA or Nelder-Mead): the default optimizer, the Laplace approximation and
    /// a model with that gradient.
    pub(super) fn quasi_newton_stage(&self, opts: &GlmmOptions) -> bool {
        opts.n_agq == 1
            && opts.optimizers[1] == StageOptimizer::Bobyqa
            && self.quasi_newton_possible()
    }

    /// Whether [`Self::search`] with `rule` and `optimizer` is the quasi-Newton search.
    pub(super) fn quasi_newton_searches(
        &self,
        rule: Option<&GaussHermite>,
        optimizer: StageOptimizer,
    ) -> bool {
        rule.is_none() && optimizer == StageOptimizer::Bobyqa && self.quasi_newton_possible()
    }

    fn quasi_newton_possible(&self) -> bool {
        self.has_laplace_gradient()
    }

    /// Stage 2 by the quasi-Newton search with the exact gradient
    /// ([`Self::gradient_search`]) in the same whitened coordinates BOBYQA would use; `None`
    /// when it does not converge (BOBYQA then searches from the start as usual).
    ///
    /// The search keeps only the bounds that matter ([`ReStructure::search_lower`]). For an
    /// unstructured term the deviance is unchanged when a column of its `T` changes sign, and
    /// for a sign-free standard deviation (`diag`, one shared by all columns) when it does, so
    /// their lower bound 0 only picks one of equivalent points (the signs are normalized at the
    /// end). Enforcing it would be harmful: the gradient along a scalar term's θ vanishes at 0
    /// by that symmetry, so a step clipped onto the bound would look stationary even where the
    /// deviance falls away from it. The standard deviations of a heterogeneous correlated
    /// structure keep their bound 0 (the projected search handles it: the gradient there is
    /// that of a smooth function). Correlation parameters are searched over an angle instead
    /// ([`AngleCoordinate`]), which reaches their bounds without a bound to keep.
    fn quasi_newton_search(
        &mut self,
        center: &[f64],
        metric: &Stage2Metric,
        opts: &OptimOptions,
        progress: &mut dyn FnMut(usize, &[f64], f64) -> Stop,
    ) -> Result<Option<OptSummary>> {
        let k = center.len();
        let nth = self.re.n_par();
        let (search_lower, par_lower, par_upper) = (
            self.re.search_lower(),
            self.re.par_lower(),
            self.re.par_upper(),
        );
        let correlation = self.re.par_is_correlation();
        let mut lower = vec![f64::NEG_INFINITY; k];
        let upper = vec![f64::INFINITY; k];
        let mut angles = Vec::new();
        for j in 0..nth {
            if correlation[j] {
                angles.push(AngleCoordinate::new(
                    j,
                    (par_lower[j], par_upper[j]),
                    center[j],
                    metric.theta_scale[j],
                ));
            } else {
                lower[j] = (search_lower[j] - center[j]) / metric.theta_scale[j];
            }
        }
        let to_x = |y: &[f64]| {
            let mut x = vec![0.0; k];
            metric.apply(center, y, &mut x);
            for a in &angles {
                x[a.j] = a.value(y[a.j]);
            }
            x
        };
        let to_y = |y: &[f64], g: &[f64]| {
            let mut gy = metric.gradient_to_whitened(g);
            for a in &angles {
                gy[a.j] = a.slope(y[a.j]) * g[a.j];
            }
            gy
        };
        // Diagonal elements of the T's: where one is 0 its gradient vanishes by the sign
        // symmetry, and the family's own parameters can make 0 a local minimum (a dispersion
        // that absorbs the groups' variation: epil's nbinom2 fit has one at θ = 0, 28 units of
        // deviance above the optimum at θ = 1.65). An end with such an element at 0 is checked
        // by a second search from lme4's start for it (θ = 1), the better end kept.
        let diagonal = self.re.sd_par_positions();
        // The evaluation budget (the control's `maxfun`, or that of a search that is one of
        // several starts), shared by its escapes. A search that runs out of it has not
        // converged: BOBYQA then searches with the same limit and says when it stops there.
        let mut budget = self
            .quasi_newton_only
            .unwrap_or(usize::MAX)
            .min(opts.maxfun);
        // The calibration's evaluation at the centre, if it made one, is the first search's
        // first.
        // Its Hessian, over the linear coordinates, is carried to the angles' by their slopes
        // at the start relative to the linear ones (1 unless the angle's unit was capped); a
        // start moved off a bound is a different point.
        let mut first = self
            .search_start
            .take()
            .filter(|s| s.center.as_slice() == center)
            .filter(|_| angles.iter().all(|a| !a.moved))
            .map(|mut s| {
                for a in &angles {
                    let c = a.slope(0.0) / metric.theta_scale[a.j];
                    for i in 0..k {
                        s.hessian[a.j * k + i] *= c;
                        s.hessian[i * k + a.j] *= c;
                    }
                }
                s
            });
        let mut run = |model: &mut Self, start: &[f64]| -> Result<Option<GradientSearch>> {
            let search = model.gradient_search(
                start,
                first.take(),
                (&lower, &upper),
                &to_x,
                &to_y,
                model.quasi_newton_gtol.unwrap_or(QN_GRADIENT_TOL),
                budget,
                progress,
            );
            if let Ok(s) = &search {
                budget = budget.saturating_sub(s.evaluations);
            }
            match search {
                Ok(s) if s.converged => Ok(Some(s)),
                Ok(_) => Ok(None),
                Err(MixedError::Optimizer(m)) if m.contains("interrupted") => {
                    Err(MixedError::Optimizer(m))
                }
                Err(_) => Ok(None),
            }
        };
        let Some(mut best) = run(self, &vec![0.0; k])? else {
            return Ok(None);
        };
        let mut evaluations = best.evaluations;
        // (0 and lme4's start 1 in the scale of the element's column: `super::par_scale`)
        let unit = self.probe_units();
        for _ in 0..QN_ESCAPES {
            let x = to_x(&best.y);
            let Some(&j) = diagonal
                .iter()
                .find(|&&j| x[j].abs() < QN_ZERO_THETA * unit[j])
            else {
                break;
            };
            let mut from = best.y.clone();
            from[j] = (unit[j] - center[j]) / metric.theta_scale[j];
            if let Some(other) = run(self, &from)? {
                evaluations += other.evaluations;
                if other.f < best.f - 1e-8 * best.f.abs().max(1.0) {
                    best = other;
                    continue;
                }
            }
            break;
        }
        let search = best;
        let mut pars = to_x(&search.y);
        self.re.normalize_par_signs(&mut pars[..nth]);
        self.pirls
            .align_mode_signs(&self.re, &self.re.theta_of(&pars[..nth]));
        let mut f = self.objective_theta_beta(&pars, None)?;
        // As after BOBYQA ([`optim`]'s boundary step): a θ that ends within `boundary_tol` of
        // its bound (a standard deviation the search took to 2e-8) is put on it when that is
        // no worse, as glmer reports it.
        let (lower_par, upper_par) = (self.re.par_lower(), self.re.par_upper());
        let near =
            optim::onto_nearby_bounds(&pars[..nth], &lower_par, &upper_par, opts.boundary_tol);
        if let Some(theta) = near {
            let mut on_bound = pars.clone();
            on_bound[..nth].copy_from_slice(&theta);
            match self.objective_theta_beta(&on_bound, None) {
                Ok(ft) if optim::no_worse_on_bound(ft, f) => {
                    (pars, f) = (on_bound, ft.min(f));
                }
                _ => {
                    self.objective_theta_beta(&pars, None)?;
                }
            }
            evaluations += 1;
        }
        Ok(Some(OptSummary {
            start: center.to_vec(),
            lower: self.re.par_lower(),
            upper: self.re.par_upper(),
            theta: pars,
            fmin: f.min(search.f),
            feval: evaluations,
            code: 0,
            message: QN_CONVERGED.into(),
            starts_tried: 1,
            ..OptSummary::default()
        }))
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
    /// coordinate, and `H = T⁻ᵀ H_y T⁻¹` is then exact linear algebra. One central difference
    /// at step `h` ([`FD_WHITENED_STEP`]), large enough that PIRLS's remaining error is
    /// negligible against `h²`.
    ///
    /// A point where PIRLS fails is tried again from a cold start; if some point still fails
    /// the whole stencil is repeated with a smaller step. Never a NaN entry: when no step
    /// works the result carries `problem` and the caller reports it.
    pub(super) fn derivatives(
        &mut self,
        pars: &[f64],
        f0: f64,
        rule: Option<&GaussHermite>,
        metric: &Stage2Metric,
    ) -> Derivatives {
        let k = pars.len();
        // With the exact gradient, its differences give the Hessian. Where that is not positive
        // definite (a coefficient on its way to ±∞ has a curvature below any differences'
        // noise: on Salamanders zi ~spp the criterion's own second differences were no better,
        // at twice the cost in evaluations), the fit names the standard errors that are not
        // available.
        if rule.is_none() && self.has_laplace_gradient() {
            if let Some(d) = self.gradient_derivatives(pars, metric) {
                return d;
            }
        }
        let start = self.pirls.warm_start();
        let saved_tol = self.pirls.step_tol;
        self.pirls.step_tol = FD_STEP_TOL;
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
        self.pirls.step_tol = saved_tol;
        // Leave the model at the optimum.
        self.pirls.restore(&start);
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

    /// The gradient at `pars` and the Hessian as forward differences of the exact gradient
    /// ([`Self::laplace_gradient`]) in the whitened coordinates of `metric`, symmetrized:
    /// `k + 1` gradients (half the `2k + 1` of central differences, see [`GRADIENT_FD_STEP`]
    /// for their accuracy) instead of the `2k²` criterion values of second differences: the
    /// centre, then the `k` steps, each from the centre's modes (and their prediction), shared
    /// out over the fit's threads ([`Self::share_points`]). `None` when the gradient fails at
    /// some point (the caller differences the criterion instead).
    fn gradient_derivatives(&mut self, pars: &[f64], metric: &Stage2Metric) -> Option<Derivatives> {
        let k = pars.len();
        let start = self.pirls.warm_start();
        let saved_tol = self.pirls.step_tol;
        self.pirls.step_tol = FD_STEP_TOL;
        let whitened = |g: Vec<f64>| {
            g.iter()
                .all(|v| v.is_finite())
                .then(|| metric.gradient_to_whitened(&g))
        };
        // The centre first: its modes, and for lme4's families their prediction at each
        // point ([`super::mode_prediction`]: a step of h moves the modes by about h, the
        // prediction leaves O(h²), so PIRLS confirms them in one iteration), start every point
        // of a step h along a whitened coordinate, on whichever thread.
        self.pirls.restore(&start);
        let centre = self
            .laplace_gradient(pars)
            .ok()
            .and_then(|(_, g)| whitened(g));
        let centre_start = self.pirls.warm_start();
        let linearization = self.mode_linearization.take();
        let points: Vec<Vec<f64>> = (0..k)
            .map(|c| {
                let mut y = vec![0.0; k];
                y[c] = GRADIENT_FD_STEP;
                y
            })
            .collect();
        let gradient_at = |model: &mut GeneralizedLinearMixedModel<'_>,
                           batch: &[Vec<f64>]|
         -> Vec<Option<Vec<f64>>> {
            batch
                .iter()
                .map(|y| {
                    let mut x = vec![0.0; k];
                    metric.apply(pars, y, &mut x);
                    model.pirls.restore(&centre_start);
                    model.mode_linearization = linearization.clone();
                    let (_, g) = model.laplace_gradient(&x).ok()?;
                    whitened(g)
                })
                .collect()
        };
        let gradients = match centre {
            Some(_) => self.share_points(&points, &gradient_at, &|| None),
            None => Vec::new(),
        };
        self.pirls.step_tol = saved_tol;
        self.pirls.restore(&start);
        let _ = self.objective_theta_beta(pars, None);
        let gy = centre?;
        let gradients: Vec<Vec<f64>> = gradients.into_iter().collect::<Option<_>>()?;
        let mut hy = vec![0.0; k * k];
        for c in 0..k {
            for r in 0..k {
                hy[c * k + r] = (gradients[c][r] - gy[r]) / GRADIENT_FD_STEP;
            }
        }
        for c in 0..k {
            for r in 0..c {
                let v = 0.5 * (hy[c * k + r] + hy[r * k + c]);
                hy[c * k + r] = v;
                hy[r * k + c] = v;
            }
        }
        let (gradient, hessian) = metric.to_original(&gy, &hy);
        Some(Derivatives {
            gradient,
            hessian,
            problem: None,
        })
    }

    /// The stage-2 criterion at each of `points` (NaN where PIRLS fails), each PIRLS run
    /// starting from `start`, shared out over threads by [`Self::share_points`].
    fn evaluate_points(
        &mut self,
        start: &WarmStart,
        points: &[Vec<f64>],
        rule: Option<&GaussHermite>,
    ) -> Vec<f64> {
        self.share_points(
            points,
            &|model, batch| model.evaluate_from(start, batch, rule),
            &|| f64::NAN,
        )
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
                self.pirls.restore(start);
                match self.objective_theta_beta(x, rule) {
                    Ok(v) => v,
                    Err(e) => {
                        self.record_failure(&e);
                        self.pirls.warm = false;
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
}

/// What [`GeneralizedLinearMixedModel::share_points`] runs on each batch of points.
pub(super) type BatchEval<'e, 'a, T> =
    dyn Fn(&mut GeneralizedLinearMixedModel<'a>, &[Vec<f64>]) -> Vec<T> + Sync + 'e;

impl<'a> GeneralizedLinearMixedModel<'a> {
    /// `eval` over `points` in batches: with more than one thread (the fit's `threads`) the
    /// first batch on `self` and each other batch on a copy of the model on a thread of its
    /// own (scoped: the copies borrow the data), else all on `self`. `eval` must start every
    /// point from a state it sets itself (a warm start), so that a copy gives the same values
    /// as `self` would; `failed` stands in for each point of a batch whose copy could not be
    /// made or whose thread panicked. The copies' PIRLS iterations and failures are added to
    /// `self`'s.
    ///
    /// A copy is built on its thread the first time it is needed (as long as about one
    /// gradient on VerbAgg) and kept in `self.workers` for the next call (the calibration's
    /// probes, then the Hessian's differences, see [`Self::clear_workers`]); a kept copy is given
    /// `self`'s PIRLS start and tolerance, and keeps what it measured of PIRLS's convergence.
    pub(super) fn share_points<T: Send>(
        &mut self,
        points: &[Vec<f64>],
        eval: &BatchEval<'_, 'a, T>,
        failed: &(dyn Fn() -> T + Sync),
    ) -> Vec<T> {
        let threads = self.worker_threads();
        if threads <= 1 || points.len() <= threads {
            return eval(self, points);
        }
        let chunk = points.len().div_ceil(threads);
        let step_tol = self.pirls.step_tol;
        let batches: Vec<&[Vec<f64>]> = points.chunks(chunk).collect();
        let (first, rest) = batches
            .split_first()
            .map_or((&[][..], &[][..]), |(f, r)| (*f, r));
        let eta_start = self.pirls.eta_start.clone();
        let laplace_system = self.laplace_system.clone();
        let mut kept = std::mem::take(&mut self.workers).into_iter();
        let lost = |batch: &[Vec<f64>]| batch.iter().map(|_| failed()).collect::<Vec<T>>();
        let (mine, others) = std::thread::scope(|scope| {
            let handles: Vec<_> = rest
                .iter()
                .map(|batch| {
                    // A kept copy, or what a thread needs to build one.
                    let worker = kept.next().ok_or_else(|| self.worker_parts());
                    let (eta_start, laplace_system) = (eta_start.clone(), laplace_system.clone());
                    scope.spawn(move || {
                        let copy = match worker {
                            Ok(mut m) => {
                                m.pirls.eta_start.copy_from_slice(&eta_start);
                                Ok(m)
                            }
                            Err(parts) => parts.build(),
                        };
                        match copy {
                            Ok(mut m) => {
                                m.pirls.step_tol = step_tol;
                                m.laplace_system = laplace_system;
                                let (iterations, failures) = (m.pirls.iterations, m.failures);
                                m.last_error = None;
                                let v = eval(&mut m, batch);
                                let counts =
                                    (m.pirls.iterations - iterations, m.failures - failures);
                                let last_error = m.last_error.take();
                                (v, counts, last_error, Some(m))
                            }
                            Err(e) => (lost(batch), (0, batch.len()), Some(e.to_string()), None),
                        }
                    })
                })
                .collect();
            let mine = eval(self, first);
            let others: Vec<_> = handles
                .into_iter()
                .zip(rest)
                .map(|(h, batch)| {
                    h.join().unwrap_or_else(|_| {
                        (
                            lost(batch),
                            (0, batch.len()),
                            Some("a finite-difference evaluation failed".to_string()),
                            None,
                        )
                    })
                })
                .collect();
            (mine, others)
        });
        let mut values = mine;
        for (v, (iterations, failures), last_error, worker) in others {
            values.extend(v);
            self.pirls.iterations += iterations;
            self.failures += failures;
            if last_error.is_some() {
                self.last_error = last_error;
            }
            // A copy whose thread panicked is not kept: the next call builds another.
            self.workers.extend(worker);
        }
        values
    }

    /// Drops the copies [`Self::share_points`] keeps (at the end of a fit: a model kept for
    /// later evaluations does not hold them).
    pub(super) fn clear_workers(&mut self) {
        self.workers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a quadratic `f(x) = ½ xᵀ A x` (gradient `A x`) with two scaled coordinates (θ) and
    /// three fixed effects through a lower-triangular `M`, the probes' columns are those of the
    /// Hessian over `y`, `Tᵀ A T`, and the unmeasured ones stay `2 I`.
    #[test]
    fn probed_columns_are_the_hessian_over_the_whitened_coordinates() {
        let (nth, p) = (2, 3);
        let k = nth + p;
        let a: Vec<f64> = (0..k * k)
            .map(|i| {
                let (r, c) = (i / k, i % k);
                if r == c {
                    3.0 + r as f64
                } else {
                    0.2 + 0.1 * ((r + c) % 3) as f64
                }
            })
            .collect();
        let grad = |x: &[f64]| -> Vec<f64> {
            (0..k)
                .map(|r| (0..k).map(|c| a[r * k + c] * x[c]).sum())
                .collect()
        };
        let metric = Stage2Metric {
            theta_scale: vec![0.5, 2.0],
            p,
            // Column-major lower triangular.
            m: vec![1.0, 0.3, -0.2, 0.0, 0.8, 0.1, 0.0, 0.0, 1.5],
        };
        let center = vec![0.4, -0.3, 1.0, 2.0, -1.0];
        let g0 = grad(&center);
        let mut probes = Vec::new();
        for (c, step) in [(0, 0.01), (1, -0.02), (k - 1, 0.03)] {
            let mut x = center.clone();
            x[c] += step;
            probes.push((c, step, grad(&x)));
        }
        let h = metric.probed_hessian(&g0, &probes, nth);
        // T = dx/dy: diag(scales) ⊕ M; the Hessian over y is Tᵀ A T.
        let mut t = vec![0.0; k * k];
        t[0] = 0.5;
        t[k + 1] = 2.0;
        for j in 0..p {
            for i in j..p {
                t[(nth + i) * k + nth + j] = metric.m[j * p + i];
            }
        }
        let hy = |r: usize, c: usize| -> f64 {
            (0..k)
                .map(|i| {
                    (0..k)
                        .map(|j| t[i * k + r] * a[i * k + j] * t[j * k + c])
                        .sum::<f64>()
                })
                .sum()
        };
        for c in [0, 1, k - 1] {
            for r in 0..k {
                let want = hy(r, c);
                assert!(
                    (h[r * k + c] - want).abs() < 1e-9,
                    "({r}, {c}): {} vs {want}",
                    h[r * k + c]
                );
                assert_eq!(h[r * k + c].to_bits(), h[c * k + r].to_bits(), "symmetric");
            }
        }
        for (r, c) in [(2, 2), (3, 3), (2, 3)] {
            let want = if r == c { 2.0 } else { 0.0 };
            assert_eq!(h[r * k + c], want, "({r}, {c}) unmeasured");
        }
    }
}
