//! Likelihood profiles of mixed models and the confidence intervals read off them, as lme4's
//! `profile()` and `confint()` compute them.
//!
//! For a parameter `ψ` with estimate `ψ̂` and deviance `d̂` at the optimum, the signed square
//! root
//!
//! ```text
//!   ζ(ψ) = sign(ψ − ψ̂) √(min_{others} d(ψ, others) − d̂)
//! ```
//!
//! is traced from `ψ̂` in both directions until `|ζ|` exceeds `√χ²_{0.99}(k)` (`k` parameters)
//! or the parameter reaches its bound, with lme4's step rule: the next value moves
//! `δ = √χ²_{0.99}(k) / 8` units of `ζ` along the secant of the last two points, capped at ten
//! times the last step. The other parameters' optimization at each point starts where the
//! secant through the last two points' optima puts them, with a first trust region as wide as
//! that extrapolation moved them ([`InnerStart`]; lme4 starts at the last optimum with a fixed
//! region). An interval's end points are `ψ(ζ = ±z_{(1+level)/2})` from the inverse
//! of the natural interpolating spline of `ζ(ψ)` (see [`spline::profile_interval`]).
//!
//! This module holds what the two profilers share: the [`Profiler`] trait, the walk, the step
//! rule and the assembly of the points (`Walker`), and the bounded optimizer of the other
//! parameters ([`bounded_minimize`]). The models' own parts are in [`lmm`] (linear mixed
//! models: covariance parameters with `β` profiled out, fixed effects through reduced
//! cross-products) and [`glmm`] (generalized linear mixed models: every parameter against a
//! joint optimization of the others); [`var_layout`] maps θ to standard deviations and
//! correlations.
pub mod glmm;
pub mod lmm;
pub mod spline;
pub mod var_layout;

pub use glmm::GlmmProfiler;
pub use lmm::LmmProfiler;
pub use spline::{profile_interval, IntervalMethod, ZETA_TIE};
pub use var_layout::VarLayout;

use crate::error::{MixedError, Result};
use crate::inference::parallel;
use bobyqa::{Bobyqa, Config};
use rayon::prelude::*;
use statrs::distribution::{ChiSquared, ContinuousCDF};
use std::sync::Arc;

/// What the profiler of a fitted model answers: its parameters (the covariance parameters as
/// standard deviations and correlations, for a linear mixed model `σ`, then the fixed effects),
/// their bounds and values at the optimum, and the profile of any of them.
pub trait Profiler: Sync {
    /// Number of covariance parameters (with `σ` for a linear mixed model).
    fn n_var(&self) -> usize;

    /// Number of fixed effects.
    fn n_fixed(&self) -> usize;

    /// Total number of parameters.
    fn n_par(&self) -> usize {
        self.n_var() + self.n_fixed()
    }

    /// θ at the optimum the profiles are measured from.
    fn theta(&self) -> &[f64];

    /// The deviance at the optimum.
    fn base(&self) -> f64;

    /// Every parameter at the optimum.
    fn optimum(&self) -> &[f64];

    /// Standard errors of the fixed effects at the optimum.
    fn stderr(&self) -> &[f64];

    /// Lower bounds of the parameters (sd and σ: 0, correlations: −1, β: −∞).
    fn lower(&self) -> &[f64];

    /// Upper bounds of the parameters.
    fn upper(&self) -> &[f64];

    /// The ζ cutoff at which the walks stop.
    fn cutoff(&self) -> f64;

    /// Profiles parameter `which` (an index into the full parameter vector).
    fn profile(&self, which: usize) -> Result<ProfileTrace>;

    /// Profiles several parameters on `threads` threads (0: all cores), in order. Each profile
    /// runs on its own copy of the model with sequential linear algebra, so a profile is the
    /// same whichever thread computes it.
    fn profile_many(&self, which: &[usize], threads: usize) -> Result<Vec<ProfileTrace>> {
        parallel::pool(threads)?.install(|| which.par_iter().map(|&w| self.profile(w)).collect())
    }
}

/// Two successive points of a walk whose `ζ` differ by no more than this, on a side where the
/// parameter has no bound, show the profile levelled off (see [`Walker::walk`]).
const FLAT_ZETA: f64 = 1e-8;

/// Settings of the profile (lme4's `profile.merMod` arguments of the same names).
#[derive(Debug, Clone)]
pub struct ProfileOptions {
    /// The profile extends to `|ζ| = √χ²_{1−alphamax}(k)`.
    pub alphamax: f64,
    /// Largest number of points in each direction.
    pub maxpts: usize,
    /// Step in ζ as a fraction of the cutoff.
    pub delta_cutoff: f64,
    /// Step in ζ itself, in place of `delta_cutoff` × the cutoff when given.
    pub delta: Option<f64>,
    /// Largest step as a multiple of the previous step.
    pub maxmult: f64,
    /// Step used when the secant is unusable.
    pub minstep: f64,
    /// Deviance decrease below the optimum tolerated before profiling fails.
    pub devtol: f64,
    /// Final trust-region radius of the inner optimizations (in scaled units): `1e-6` by
    /// default rather than lme4's tighter radius. At the inner optimum the deviance is
    /// quadratic, so the radius leaves it within ~1e-12 and the intervals agree with those of
    /// `1e-9` to ~1e-9 (InstEval's; GLMMs ~1e-12), at 35-60% of the evaluations.
    pub rhoend: f64,
    /// The run's stop flag and count of points (see [`crate::inference::parallel::watch`]):
    /// once the flag is raised (a user interrupt) the walks end at their next point, and the
    /// caller discards the incomplete traces.
    pub watched: Arc<parallel::Watched>,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        Self {
            alphamax: 0.01,
            maxpts: 100,
            delta_cutoff: 1.0 / 8.0,
            delta: None,
            maxmult: 10.0,
            minstep: 1e-6,
            devtol: 1e-9,
            rhoend: 1e-6,
            watched: Arc::new(parallel::Watched::default()),
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

/// Where the inner optimization of a profile point starts: the other parameters' `values`,
/// and, when they were extrapolated from the last two points, the `last` point's optimum they
/// were extrapolated from.
#[derive(Debug, Clone)]
pub(crate) struct InnerStart {
    pub(crate) values: Vec<f64>,
    pub(crate) last: Option<Vec<f64>>,
}

impl InnerStart {
    /// A start at `values` with no estimate of its distance to the optimum.
    pub(crate) fn at(values: &[f64]) -> Self {
        Self {
            values: values.to_vec(),
            last: None,
        }
    }

    /// The start for the point at `x` after rows `prev` and `cur`: along the profile the
    /// conditional optimum of the others is a smooth curve in the profiled parameter, so the
    /// secant through the last two optima predicts the next to second order in the step (lme4
    /// starts each point at the last optimum, a first-order error).
    fn extrapolated(prev: &Row, cur: &Row, x: f64) -> Self {
        let span = cur.x - prev.x;
        if prev.others.len() != cur.others.len() || span == 0.0 || !span.is_finite() {
            return Self::at(&cur.others);
        }
        let t = (x - cur.x) / span;
        let values: Vec<f64> = cur
            .others
            .iter()
            .zip(&prev.others)
            .map(|(&c, &p)| c + t * (c - p))
            .collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Self::at(&cur.others);
        }
        Self {
            values,
            last: Some(cur.others.clone()),
        }
    }

    /// The first trust-region radius of an inner optimization from this start, in the units
    /// `scale` of each parameter: [`INNER_RHOBEG`], or, for an extrapolated start, as large as
    /// the extrapolation's move (at least [`INNER_RHOBEG_MIN`]): the start's error is a fraction
    /// of that move, and a region sized to it spares BOBYQA the evaluations of shrinking a far
    /// larger one (on InstEval's profiles about a third of them).
    pub(crate) fn first_radius(&self, scale: &[f64]) -> f64 {
        self.last.as_ref().map_or(INNER_RHOBEG, |last| {
            (0..scale.len())
                .map(|k| (self.values[k] - last[k]).abs() / scale[k])
                .fold(0.0, f64::max)
                .clamp(INNER_RHOBEG_MIN, INNER_RHOBEG)
        })
    }
}

/// Computes the row at a value of the profiled parameter from a start for the others.
pub(crate) type ZetaFn<'f> = dyn FnMut(f64, &InnerStart, &mut Vec<String>) -> Result<Row> + 'f;

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
        let delta = opts.delta.unwrap_or(cutoff * opts.delta_cutoff);
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
            && !self.opts.watched.stopped()
            && cur.x > lowcut
            && cur.x < upcut
            && cur.zeta.abs() <= self.cutoff
        {
            let next_x = self.next_par(&prev, &cur, lowcut, upcut, warnings);
            let start = InnerStart::extrapolated(&prev, &cur, next_x);
            let point = zeta_at(next_x, &start, warnings);
            self.opts.watched.tick();
            match point {
                Ok(row) => {
                    // A profile that levels off below the cutoff where the parameter has no
                    // bound has an asymptote (e.g. a zero-inflation coefficient going to
                    // −∞: the zero inflation of those observations vanishes): lme4's rule
                    // would now crawl on by `minstep` to `maxpts`; the walk stops instead,
                    // and the interval is unbounded on this side. The point on the plateau
                    // is not kept: it would tie with the last in ζ and the profile would no
                    // longer be strictly monotonic for the interpolating spline.
                    let unbounded = if row.x > cur.x {
                        upcut == f64::INFINITY
                    } else {
                        lowcut == f64::NEG_INFINITY
                    };
                    let flat = (row.zeta - cur.zeta).abs() <= FLAT_ZETA && row.x != cur.x;
                    if unbounded && flat && row.zeta.abs() <= self.cutoff {
                        warnings.push(format!(
                            "the profile levels off at zeta = {:.4} (the likelihood has an \
                             asymptote): intervals wider than that are unbounded on that side",
                            row.zeta
                        ));
                        break;
                    }
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

/// Initial trust-region radius of the inner optimizations (scaled units) from a start with no
/// estimate of its error (lme4's profiles start every point so).
const INNER_RHOBEG: f64 = 0.2;
/// Smallest initial radius of an inner optimization from an extrapolated start.
const INNER_RHOBEG_MIN: f64 = 1e-3;

/// Minimizes `f` over `lower ≤ x ≤ upper` from `start` with BOBYQA on the scaled variables
/// `(x − start)/scale`, from the trust region [`InnerStart::first_radius`]. Where an
/// extrapolated start finds no finite value near it (its region can be small), the search is
/// repeated from the last point's optimum, as lme4 starts it.
pub(crate) fn bounded_minimize(
    f: &mut dyn FnMut(&[f64]) -> f64,
    start: &InnerStart,
    lower: &[f64],
    upper: &[f64],
    scale: &[f64],
    rhoend: f64,
) -> Result<(Vec<f64>, f64)> {
    let bounds = (lower, upper);
    let first = minimize_from(
        f,
        &start.values,
        bounds,
        scale,
        start.first_radius(scale),
        rhoend,
    );
    match (&first, &start.last) {
        (Err(_), Some(last)) => minimize_from(f, last, bounds, scale, INNER_RHOBEG, rhoend),
        _ => first,
    }
}

/// One BOBYQA run of [`bounded_minimize`] from `start` with first radius `rhobeg` (capped at
/// half the narrowest scaled width between the bounds).
fn minimize_from(
    f: &mut dyn FnMut(&[f64]) -> f64,
    start: &[f64],
    (lower, upper): (&[f64], &[f64]),
    scale: &[f64],
    rhobeg: f64,
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
    let rhobeg = rhobeg.min(0.5 * width);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(x: f64, others: &[f64]) -> Row {
        Row {
            x,
            zeta: 0.0,
            others: others.to_vec(),
            full: Vec::new(),
        }
    }

    #[test]
    fn the_start_follows_the_secant_of_the_last_two_optima() {
        let (prev, cur) = (row(1.0, &[1.0, 2.0]), row(2.0, &[1.5, 1.0]));
        let start = InnerStart::extrapolated(&prev, &cur, 2.5);
        assert_eq!(start.values, vec![1.75, 0.5]);
        assert_eq!(start.last.as_deref(), Some(&cur.others[..]));
        // The first radius is the largest move in scaled units, within its limits.
        assert_eq!(start.first_radius(&[5.0, 10.0]), 0.05);
        assert_eq!(start.first_radius(&[1.0, 1.0]), INNER_RHOBEG);
        assert_eq!(start.first_radius(&[1e4, 1e4]), INNER_RHOBEG_MIN);
        // Without two distinct earlier points there is nothing to extrapolate.
        let same = InnerStart::extrapolated(&cur, &cur, 3.0);
        assert_eq!(same.values, cur.others);
        assert_eq!(same.first_radius(&[1.0, 1.0]), INNER_RHOBEG);
        let unlike = InnerStart::extrapolated(&row(1.0, &[]), &cur, 3.0);
        assert_eq!(unlike.values, cur.others);
        assert!(unlike.last.is_none());
    }

    #[test]
    fn an_extrapolated_start_reaches_the_same_optimum() {
        // A quadratic bowl with its minimum at (0.3, -0.2) and bounds that do not bind.
        let bowl = |x: &[f64]| (x[0] - 0.3).powi(2) + 4.0 * (x[1] + 0.2).powi(2) + 1.0;
        let (lo, up, scale) = ([-5.0, -5.0], [5.0, 5.0], [1.0, 1.0]);
        let near = InnerStart {
            values: vec![0.31, -0.21],
            last: Some(vec![0.29, -0.22]),
        };
        // An extrapolated start where the function is not finite around it (x₀ > 1): the
        // search repeats from the last optimum.
        let wild = InnerStart {
            values: vec![3.0, -0.2],
            last: Some(vec![0.3, -0.2]),
        };
        for start in [InnerStart::at(&[0.9, 1.0]), near, wild] {
            let mut f = |x: &[f64]| if x[0] > 1.0 { f64::NAN } else { bowl(x) };
            let (x, v) = bounded_minimize(&mut f, &start, &lo, &up, &scale, 1e-7).unwrap();
            assert!(
                (x[0] - 0.3).abs() < 1e-6 && (x[1] + 0.2).abs() < 1e-6,
                "{x:?}"
            );
            assert!((v - 1.0).abs() < 1e-12);
        }
    }
}
