//! Moment-based starting values of θ for a linear mixed model, and for a GLMM from its working
//! response (with lme4's θ for the families with a dispersion, [`ResidualScale`], and one step
//! of penalized quasi-likelihood for the others, [`working_lmm_theta`]).
//!
//! lme4 starts every fit at θ = identity, which for large crossed models costs the optimizer a few
//! dozen evaluations before it is near the optimum. A method-of-moments (ANOVA) estimate, computed
//! from the cross-products that are formed anyway, usually lands within a few percent of it.
//!
//! Each random-effects *column* `k` (column `c` of grouping-factor block `b`) is treated as an
//! independent variance component `s_k` (correlations within a block are ignored; they start at 0
//! as in lme4). With OLS residuals `r = y − X β̂` (weighted), the statistic of column `k` is
//! `SSB_k = Σ_j S_j² / a_j` over the levels `j` of its factor, where `S_j = (Z_k' W r)_j` and
//! `a_j = (Z_k' W Z_k)_jj`. Ignoring the projection on `X`,
//!
//! ```text
//!   E[SSB_k] = Σ_m C_km s_m + J_k σ²,     C_km = Σ_j a_j⁻¹ Σ_l (Z_k' W Z_m)_jl²,
//!   E[r'Wr]  = Σ_m T_m s_m + (n − p) σ²,  T_m  = tr(Z_m' W Z_m),
//! ```
//!
//! with `J_k` the number of levels with `a_j > 0`. For crossed factors `C_km` corrects each factor's
//! between-level spread for the other factors' effects, for nested ones it separates the levels of
//! the nesting. The `K + 1` equations are solved for `(s, σ²)`; components estimated negative are set
//! to 0 and the rest re-solved. The start is `θ = √(s_k / σ²)` on the diagonal of each `T_b`.
use super::par_scale::ColumnScales;
use crate::blocks::CrossProducts;
use crate::lmm::LinearMixedModel;
use crate::model::covariance::Covariance;
use crate::optim::{self, Objective, OptimOptions};
use crate::small;
use crate::spec::ModelSpec;
use crate::terms::ReStructure;
use crate::trailing::TrailingChoice;
use faer::prelude::Solve;
use faer::{Mat, Par};

/// Initial trust-region radius relative to the largest start element, and its smallest value.
/// Measured on eleven models (lme4's data sets, InstEval, simulated crossed designs with and
/// without random slopes): 0.05 needed the fewest evaluations in all, 339 against 373 with 0.1,
/// 398 with 0.15 and 548 from lme4's start.
pub const START_RADIUS_FACTOR: f64 = 0.05;
const START_RADIUS_MIN: f64 = 0.02;

/// Largest starting value of a diagonal θ element (relative standard deviation).
const THETA_START_MAX: f64 = 10.0;

/// What θ is relative to, and how the residual variance `σ²` of the (working) response is had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResidualScale {
    /// A linear mixed model: `σ²` estimated, `θ = √(s/σ²)`.
    Estimated,
    /// A GLMM without a dispersion: the working residuals have variance `1/w`, `σ² = 1`.
    Unit,
    /// A GLMM of lme4's families with a dispersion (Gamma, inverse Gaussian, Gaussian with a
    /// link): `σ²` estimated, θ where lme4's Laplace deviance has its minimum
    /// ([`lme4_dispersion_ratio`]), not `√(s/σ²)`.
    Lme4Dispersion,
}

/// lme4's Laplace deviance for a family with a dispersion `φ` penalizes the spherical random
/// effects by `|u|²` and takes `log|Λ'Z'WZΛ + I|` with the weights `w` of a unit dispersion,
/// while its `aic` term moves with the deviance about as `n log(dev)`, i.e. weighs the data by
/// `1/φ`: its θ is not the ratio `√(τ²/φ)` of a linear mixed model. For one grouping factor
/// whose levels carry a weight `m` each, with `τ²` the variance of the random effect and `σ²`
/// that of the working residuals (`ρ = mτ²/σ²`, `V = σ²(1 + ρ)` the expected `m ȳⱼ²` of a
/// level's mean working residual), the deviance's expectation in `a = mθ²` is
///
/// ```text
///   D(a) ≈ n log(nσ² + J V/(1 + a)² − Jσ²) + J V a/(1 + a)² + J log(1 + a),
///   D′(a) ∝ a² + (2 − V) a + 1 + V − 2V/σ²,
/// ```
///
/// minimal at the larger root, which this returns (0 when there is no positive one). With `σ² = 1` it
/// is `a = ρ`: the families without a dispersion, whose θ is the ratio. Measured against the
/// optimum on 20,000 rows and 1,000 groups: Gamma (log) θ 0.404 against 0.4087 (the ratio:
/// 0.527), inverse Gaussian (log) 0.68 against 0.675 (the ratio: 1.24).
fn lme4_dispersion_ratio(rho: f64, sigma2: f64) -> f64 {
    let v = sigma2 * (1.0 + rho);
    let (b, c) = (2.0 - v, 1.0 + v - 2.0 * v / sigma2);
    let disc = b * b - 4.0 * c;
    if disc.is_nan() {
        return rho;
    }
    if disc < 0.0 {
        // D′ > 0 for every a: the minimum is at 0.
        return 0.0;
    }
    ((disc.sqrt() - b) / 2.0).max(0.0)
}

/// The moment estimate of θ (off-diagonal elements 0), or `None` when the moments do not give a
/// usable one (no positive residual variance, a singular system). `scale` says what θ is
/// relative to ([`ResidualScale`]).
pub fn moment_theta(
    cp: &CrossProducts,
    re: &ReStructure,
    scale: ResidualScale,
) -> Option<Vec<f64>> {
    let known_sigma2 = (scale == ResidualScale::Unit).then_some(1.0);
    let columns = Columns::new(re);
    let k = columns.count;
    let pf = cp.p + 1;
    let (beta, rss) = ols(cp)?;

    // S_j = (Z' W r)_j for every random-effects coordinate: F'WZ minus β' X'WZ.
    let residual_z = |af: &[f64], col: usize| -> f64 {
        let a = &af[col * pf..(col + 1) * pf];
        a[cp.p] - beta.iter().zip(a).map(|(b, x)| b * x).sum::<f64>()
    };
    let mut ssb = vec![0.0; k];
    let mut levels = vec![0.0; k];
    let mut trace = vec![0.0; k];
    let mut c = vec![0.0; k * k];
    let q0 = cp.q0;

    // Leading block: diagonal blocks of A11.
    for j in 0..cp.l0 {
        let a = &cp.a11[j * q0 * q0..(j + 1) * q0 * q0];
        for ci in 0..q0 {
            let ajj = a[ci * q0 + ci];
            if ajj <= 0.0 {
                continue;
            }
            let s = residual_z(&cp.af1, j * q0 + ci);
            let kk = columns.index(0, ci);
            ssb[kk] += s * s / ajj;
            levels[kk] += 1.0;
            trace[kk] += ajj;
            for cm in 0..q0 {
                let v = a[cm * q0 + ci];
                c[columns.index(0, cm) * k + kk] += v * v / ajj;
            }
        }
    }
    // Trailing nodes: diagonal blocks of A22.
    let layout = &cp.layout;
    for t in 0..layout.n_nodes() {
        let b = layout.node_block[t] as usize;
        let q = layout.node_q(t);
        let a = &cp.a22_diag[cp.a22_diag_off[t]..cp.a22_diag_off[t + 1]];
        for ci in 0..q {
            let ajj = a[ci * q + ci];
            if ajj <= 0.0 {
                continue;
            }
            let s = residual_z(&cp.af2, layout.node_offset[t] + ci);
            let kk = columns.index(b, ci);
            ssb[kk] += s * s / ajj;
            levels[kk] += 1.0;
            trace[kk] += ajj;
            for cm in 0..q {
                let v = a[cm * q + ci];
                c[columns.index(b, cm) * k + kk] += v * v / ajj;
            }
        }
    }
    // Leading level × trailing node: A21 blocks (q_t × q0), counted from both sides.
    for j in 0..cp.l0 {
        let a11 = &cp.a11[j * q0 * q0..(j + 1) * q0 * q0];
        for e in cp.a21_ptr[j]..cp.a21_ptr[j + 1] {
            let t = cp.a21_node[e] as usize;
            let b = layout.node_block[t] as usize;
            let q = layout.node_q(t);
            let a22 = &cp.a22_diag[cp.a22_diag_off[t]..cp.a22_diag_off[t + 1]];
            let vals = &cp.a21_vals[cp.a21_val_off[e]..cp.a21_val_off[e + 1]];
            for c0 in 0..q0 {
                for ct in 0..q {
                    let v2 = vals[c0 * q + ct] * vals[c0 * q + ct];
                    add_cross(
                        &mut c,
                        k,
                        (columns.index(0, c0), a11[c0 * q0 + c0]),
                        (columns.index(b, ct), a22[ct * q + ct]),
                        v2,
                    );
                }
            }
        }
    }
    // Trailing nodes of different blocks: the off-diagonal A22 blocks (q_row × q_col).
    for (e, &(row, col)) in cp.a22_pairs.iter().enumerate() {
        let (row, col) = (row as usize, col as usize);
        let (br, bc) = (
            layout.node_block[row] as usize,
            layout.node_block[col] as usize,
        );
        let (qr, qc) = (layout.node_q(row), layout.node_q(col));
        let ar = &cp.a22_diag[cp.a22_diag_off[row]..cp.a22_diag_off[row + 1]];
        let ac = &cp.a22_diag[cp.a22_diag_off[col]..cp.a22_diag_off[col + 1]];
        let vals = &cp.a22_pair_vals[cp.a22_pair_off[e]..cp.a22_pair_off[e + 1]];
        for cc in 0..qc {
            for cr in 0..qr {
                let v2 = vals[cc * qr + cr] * vals[cc * qr + cr];
                add_cross(
                    &mut c,
                    k,
                    (columns.index(br, cr), ar[cr * qr + cr]),
                    (columns.index(bc, cc), ac[cc * qc + cc]),
                    v2,
                );
            }
        }
    }

    let residual_df = cp.n as f64 - cp.p as f64;
    let (s, sigma2) = solve_nonnegative(&c, &ssb, &levels, &trace, rss, residual_df, known_sigma2)?;

    let mut theta = re.default_theta();
    for (i, pos) in re.theta_pos.iter().enumerate() {
        if pos.row == pos.col {
            let kk = columns.index(pos.block, pos.row);
            let ratio = s[kk] / sigma2;
            let v = if scale == ResidualScale::Lme4Dispersion && levels[kk] > 0.0 {
                // Each level's weight: the mean diagonal of its column's Z'WZ.
                let m = trace[kk] / levels[kk];
                (lme4_dispersion_ratio(m * ratio, sigma2) / m).sqrt()
            } else {
                ratio.sqrt()
            };
            theta[i] = v.min(THETA_START_MAX);
        }
    }
    Some(theta)
}

/// The moment start with the initial trust-region radius that suits it: BOBYQA's first steps are
/// `± rhobeg` along each coordinate, so a start already near the optimum wants a radius of a
/// fraction `radius_factor` of its largest element (at most `rhobeg`, at least 0.02; an LMM's
/// estimate is good enough for [`START_RADIUS_FACTOR`]), and its diagonal elements at least that
/// radius (BOBYQA moves a start closer than `rhobeg` to a bound onto the bound or away).
pub fn moment_start(
    cp: &CrossProducts,
    re: &ReStructure,
    rhobeg: f64,
    radius_factor: f64,
    scale: ResidualScale,
    theta_scale: &[f64],
) -> Option<(Vec<f64>, f64)> {
    let theta = moment_theta(cp, re, scale)?;
    Some(with_start_radius(
        theta,
        re,
        rhobeg,
        radius_factor,
        theta_scale,
    ))
}

/// A start θ with its first trust-region radius, as [`moment_start`] chooses them: the radius a
/// share `radius_factor` of the start's largest element, and the diagonal elements at least
/// that, both in the scale of the columns (`theta_scale`, [`crate::fit::par_scale`]: a floor
/// of 0.02 in θ's own units put the slope of a covariate `x × 1000`, whose θ is ~5e-4, 40 times
/// too far out); the radius is returned in θ's units, relative to the start's largest element
/// as the searches take it.
pub fn with_start_radius(
    mut theta: Vec<f64>,
    re: &ReStructure,
    rhobeg: f64,
    radius_factor: f64,
    theta_scale: &[f64],
) -> (Vec<f64>, f64) {
    let largest_of = |theta: &[f64]| {
        theta
            .iter()
            .zip(theta_scale)
            .fold((0.0f64, 0.0f64), |(x, t), (v, s)| {
                (x.max((v / s).abs()), t.max(v.abs()))
            })
    };
    let (largest_x, _) = largest_of(&theta);
    let radius = (radius_factor * largest_x)
        .clamp(START_RADIUS_MIN, 0.5)
        .min(rhobeg);
    for ((t, pos), s) in theta.iter_mut().zip(&re.theta_pos).zip(theta_scale) {
        if pos.row == pos.col {
            *t = t.max(radius * s);
        }
    }
    if theta_scale.iter().all(|&s| s == 1.0) {
        return (theta, radius);
    }
    let (largest_x, largest) = largest_of(&theta);
    let radius_theta = if largest_x > 0.0 {
        radius * largest / largest_x
    } else {
        radius
    };
    (theta, radius_theta)
}

/// A GLMM's start refined by one step of penalized quasi-likelihood: the linear mixed model of
/// the working response with the working weights, whose cross-products `cp` PIRLS formed at
/// lme4's start, fitted by ML from the moment estimate `theta` with the residual variance known
/// to be 1 (a family without a dispersion has working residuals of variance `1/w`; where the
/// counts are overdispersed the random effects must take that spread, as in the GLMM, not a
/// residual variance estimated above 1). Its evaluations factor the random effects' system and
/// do not touch the rows. The moment estimate ignores the fixed effects' projection and weighs
/// the levels equally, which with the uneven weights of a binary response put it 7–14% below
/// the optimum on 20,000 rows (logit, probit, cloglog) and 28–41% below on VerbAgg; this step
/// lands within 3–5% there. At most `10 (k + 2)` evaluations for `k` parameters, to 1e-3 (1e-4
/// gave the same starts to three digits, and took 41–51 evaluations, 8–10 ms, on 5,000-row
/// fits with seven parameters that take 60 ms); `None` where the fit fails.
pub fn working_lmm_theta(
    spec: &ModelSpec<'_>,
    re: &ReStructure,
    cp: &CrossProducts,
    theta: &[f64],
) -> Option<Vec<f64>> {
    // (searched in the scale of the columns, `par = x ⊙ scale`: see `crate::fit::par_scale`)
    let scale = ColumnScales::of_rows(re, spec).par_scale(re);
    let lmm = LinearMixedModel::from_cross_products(
        spec.clone(),
        re.clone(),
        cp.clone(),
        false,
        Par::Seq,
        TrailingChoice::Auto,
    )
    .ok()?;
    let unscale = |v: &[f64]| -> Vec<f64> { v.iter().zip(&scale).map(|(v, s)| v / s).collect() };
    let start = unscale(&re.par_from_theta(theta));
    let largest = start.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let opts = OptimOptions {
        rhobeg: (0.2 * largest).clamp(START_RADIUS_MIN, 0.5),
        rhoend: 1e-3,
        maxfun: 10 * (theta.len() + 2),
        calc_derivs: false,
        boundary_tol: 0.0,
        ..OptimOptions::default()
    };
    let (lower, upper) = (unscale(&re.par_lower()), unscale(&re.par_upper()));
    let mut objective = UnitScaleDeviance {
        lmm,
        scale: scale.clone(),
    };
    let opt = optim::minimize_within(&mut objective, &start, &lower, &upper, &opts).ok()?;
    let par: Vec<f64> = opt.theta.iter().zip(&scale).map(|(x, s)| x * s).collect();
    let refined = re.theta_of(&par);
    (opt.fmin.is_finite() && refined.iter().all(|t| t.is_finite())).then_some(refined)
}

/// The ML deviance of a linear mixed model at `σ = 1` as a function of its covariance
/// parameters (`par`), β profiled out ([`LinearMixedModel::deviance_at_theta_sigma`]).
struct UnitScaleDeviance<'a> {
    lmm: LinearMixedModel<'a>,
    /// `par = x ⊙ scale`.
    scale: Vec<f64>,
}

impl Objective for UnitScaleDeviance<'_> {
    fn eval(&mut self, x: &[f64]) -> f64 {
        let par: Vec<f64> = x.iter().zip(&self.scale).map(|(x, s)| x * s).collect();
        let theta = self.lmm.re.theta_of(&par);
        self.lmm.deviance_at_theta_sigma(&theta, 1.0)
    }
}

/// Adds an off-diagonal entry `v` (`v2 = v²`) of `Z'WZ` between a level of column `ka` (diagonal
/// entry `aa`) and a level of column `kb` (`ab`) to `C` from both sides: `v²/aa` to `C[kb, ka]`
/// and `v²/ab` to `C[ka, kb]` (`C` is `k × k`, column-major, as in [`moment_theta`]).
fn add_cross(c: &mut [f64], k: usize, (ka, aa): (usize, f64), (kb, ab): (usize, f64), v2: f64) {
    if aa > 0.0 {
        c[kb * k + ka] += v2 / aa;
    }
    if ab > 0.0 {
        c[ka * k + kb] += v2 / ab;
    }
}

/// Numbering of the random-effects columns `(block, column)` as variance components.
struct Columns {
    first: Vec<usize>,
    count: usize,
}

impl Columns {
    fn new(re: &ReStructure) -> Self {
        let mut first = Vec::with_capacity(re.blocks.len());
        let mut count = 0;
        for block in &re.blocks {
            first.push(count);
            count += block.q;
        }
        Self { first, count }
    }

    #[inline]
    fn index(&self, block: usize, col: usize) -> usize {
        self.first[block] + col
    }
}

/// Weighted least-squares fit of the fixed effects alone: `β̂` and `r'Wr`.
fn ols(cp: &CrossProducts) -> Option<(Vec<f64>, f64)> {
    let (p, pf) = (cp.p, cp.p + 1);
    let mut xtx = vec![0.0; p * p];
    for j in 0..p {
        xtx[j * p..(j + 1) * p].copy_from_slice(&cp.aff[j * pf..j * pf + p]);
    }
    let mut beta: Vec<f64> = (0..p).map(|j| cp.aff[j * pf + p]).collect();
    let xty = beta.clone();
    small::chol_lower(&mut xtx, p)?;
    small::solve_lower(&xtx, p, &mut beta);
    small::solve_lower_t(&xtx, p, &mut beta);
    let yty = cp.aff[p * pf + p];
    let rss = yty - beta.iter().zip(&xty).map(|(b, v)| b * v).sum::<f64>();
    (rss.is_finite() && rss > 0.0).then_some((beta, rss))
}

/// Solves the moment equations for `(s, σ²)` with `s ≥ 0` (`σ²` fixed at `known_sigma2` when
/// given, its equation dropped): a component estimated negative is set to 0 and its equation
/// dropped, until all are non-negative. `None` if `σ²` is not positive.
fn solve_nonnegative(
    c: &[f64],
    ssb: &[f64],
    levels: &[f64],
    trace: &[f64],
    rss: f64,
    residual_df: f64,
    known_sigma2: Option<f64>,
) -> Option<(Vec<f64>, f64)> {
    let k = ssb.len();
    let mut active: Vec<usize> = (0..k).filter(|&i| levels[i] > 0.0).collect();
    let extra = usize::from(known_sigma2.is_none());
    loop {
        let na = active.len();
        // Unknowns: s_active... (then σ²); equations: one per active column (then the residual).
        let dim = na + extra;
        let m = Mat::<f64>::from_fn(dim, dim, |r, col| match (r < na, col < na) {
            (true, true) => c[active[col] * k + active[r]],
            (true, false) => levels[active[r]],
            (false, true) => trace[active[col]],
            (false, false) => residual_df,
        });
        let rhs = Mat::<f64>::from_fn(dim, 1, |r, _| match (r < na, known_sigma2) {
            (true, Some(s2)) => ssb[active[r]] - levels[active[r]] * s2,
            (true, None) => ssb[active[r]],
            (false, _) => rss,
        });
        let sol = m.partial_piv_lu().solve(&rhs);
        let x: Vec<f64> = (0..dim).map(|r| sol[(r, 0)]).collect();
        if x.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let sigma2 = known_sigma2.unwrap_or_else(|| x.get(na).copied().unwrap_or(f64::NAN));
        if sigma2.is_nan() || sigma2 <= 0.0 {
            return None;
        }
        let negative: Vec<usize> = (0..na).filter(|&i| x[i] < 0.0).collect();
        if negative.is_empty() {
            let mut s = vec![0.0; k];
            for (i, &col) in active.iter().enumerate() {
                s[col] = x[i];
            }
            return Some((s, sigma2));
        }
        // Drop the most negative relative to its scale, one at a time (others may recover).
        let worst = negative
            .iter()
            .copied()
            .min_by(|&a, &b| (x[a] * trace[active[a]]).total_cmp(&(x[b] * trace[active[b]])))?;
        active.remove(worst);
    }
}

/// Relative standard deviation given to a zero variance of a singular vector-valued term when
/// the fit is restarted off its face of the boundary, as a fraction of the term's largest one.
const SINGULAR_RESTART_SD: f64 = 0.3;

/// The restart point for an optimum (of an LMM or a GLMM fit, in the optimizer's `par`) where a
/// vector-valued term is on a face of the boundary (a zero standard deviation, a correlation
/// parameter at a bound): every such term restarted from its standard deviations, zero ones
/// raised to [`SINGULAR_RESTART_SD`] times the largest, correlations 0
/// ([`crate::model::covariance::Covariance::face_restart`]); a term whose variances are all 0
/// restarts from lme4's start (the identity); other terms unchanged. `None` when no
/// vector-valued term is singular.
pub fn singular_face_restart(re: &ReStructure, par: &[f64]) -> Option<Vec<f64>> {
    restart_terms(re, par, |c, p| {
        c.face_restart(p, SINGULAR_TOL, SINGULAR_RESTART_SD)
    })
}

/// A restart rule: the covariance parameters to restart from, given an optimum's, or `None`.
pub type Restart = fn(&ReStructure, &[f64]) -> Option<Vec<f64>>;

/// The restart of a small model whose unstructured term is still on a face after
/// [`singular_face_restart`], where that restart raised a standard deviation that was not 0:
/// from the standard deviations as they are, correlations 0
/// ([`crate::model::covariance::Covariance::kept_sd_restart`]). `None` when no term gives one.
pub fn singular_kept_sd_restart(re: &ReStructure, par: &[f64]) -> Option<Vec<f64>> {
    restart_terms(re, par, |c, p| {
        c.kept_sd_restart(p, SINGULAR_TOL, SINGULAR_RESTART_SD)
    })
}

/// The second restart for an optimum where an unstructured term is on a face of the boundary:
/// each such term from `Σ + (SINGULAR_RESTART_SD × largest sd)² I`
/// ([`crate::model::covariance::Covariance::inflated_restart`]); other terms unchanged. `None`
/// when no unstructured vector-valued term is singular.
pub fn singular_inflated_restart(re: &ReStructure, par: &[f64]) -> Option<Vec<f64>> {
    restart_terms(re, par, |c, p| {
        c.inflated_restart(p, SINGULAR_TOL, SINGULAR_RESTART_SD)
    })
}

/// Largest relative standard deviation of an optimum from which [`residual_limit_restart`] gives
/// a restart: the optimizer has driven the residual sd below a hundredth of a random effect's.
pub const RESIDUAL_LIMIT_RESTART_SD: f64 = 100.0;

/// Largest relative standard deviation of the point [`residual_limit_restart`] restarts from.
pub const RESIDUAL_LIMIT_RESTART_TO: f64 = 10.0;

/// The restart of an optimum far out towards σ → 0 (largest relative sd at least
/// [`RESIDUAL_LIMIT_RESTART_SD`]): the same covariance parameters scaled down, all variances
/// alike, to a largest relative sd of [`RESIDUAL_LIMIT_RESTART_TO`]. Out there the criterion
/// depends almost only on the direction of the parameters, which the optimizer can no longer
/// turn (a change of direction takes steps as large as the parameters); it can from nearer in.
/// `largest` is the largest relative sd at `par` as the model measures it (in its scaled
/// coordinates: `LinearMixedModel::effect_largest_sd`). `None` below the trigger.
pub fn residual_limit_restart(re: &ReStructure, par: &[f64], largest: f64) -> Option<Vec<f64>> {
    if !largest.is_finite() || largest < RESIDUAL_LIMIT_RESTART_SD {
        return None;
    }
    Some(re.scaled_par(par, RESIDUAL_LIMIT_RESTART_TO / largest))
}

/// `par` with each term's parameters replaced by `restart` of them where it gives some; `None`
/// when it gives none.
fn restart_terms(
    re: &ReStructure,
    par: &[f64],
    restart: impl Fn(&Covariance, &[f64]) -> Option<Vec<f64>>,
) -> Option<Vec<f64>> {
    let mut out = par.to_vec();
    let mut any = false;
    for (t, (c, p)) in re.term_pars(par).enumerate() {
        if let Some(new) = restart(c, p) {
            let o = re.term_par_offset[t];
            out[o..o + new.len()].copy_from_slice(&new);
            any = true;
        }
    }
    any.then_some(out)
}

/// A diagonal θ element below this counts as zero for [`singular_face_restart`].
const SINGULAR_TOL: f64 = 1e-4;

#[cfg(test)]
mod tests {
    use super::{
        lme4_dispersion_ratio, residual_limit_restart, RESIDUAL_LIMIT_RESTART_SD,
        RESIDUAL_LIMIT_RESTART_TO,
    };
    use crate::spec::{ModelSpec, RandomTerm};
    use crate::terms::ReStructure;

    #[test]
    fn residual_limit_restart_scales_far_optima_back_along_their_direction() {
        let n = 24;
        let y: Vec<f64> = (0..n).map(|i| (i as f64 * 0.7).sin()).collect();
        let ones = vec![1.0; n];
        let g: Vec<i32> = (0..n).map(|i| (i % 6) as i32 + 1).collect();
        let h: Vec<i32> = (0..n).map(|i| (i % 4) as i32 + 1).collect();
        let terms = vec![
            RandomTerm::from_factor_codes(&g, 6, &ones, 1, 0).expect("term"),
            RandomTerm::from_factor_codes(&h, 4, &ones, 1, 1).expect("term"),
        ];
        let spec = ModelSpec::new(&y, &ones, 1, None, None, terms).expect("spec");
        let re = ReStructure::new(&spec);
        assert!(residual_limit_restart(&re, &[50.0, 20.0], re.largest_sd(&[50.0, 20.0])).is_none());
        let far = [2.0e5, 5.0e4];
        assert!(re.largest_sd(&far) >= RESIDUAL_LIMIT_RESTART_SD);
        let near = residual_limit_restart(&re, &far, re.largest_sd(&far)).expect("a restart");
        assert!((re.largest_sd(&near) - RESIDUAL_LIMIT_RESTART_TO).abs() < 1e-12);
        // the same direction: the ratio of the sds kept
        assert!((near[0] / near[1] - far[0] / far[1]).abs() < 1e-12);
    }

    /// The expected deviance of [`lme4_dispersion_ratio`]'s doc comment (`n` rows, `j` levels).
    fn expected_deviance(a: f64, rho: f64, sigma2: f64, n: f64, j: f64) -> f64 {
        let v = sigma2 * (1.0 + rho);
        let rss = n * sigma2 + j * v / ((1.0 + a) * (1.0 + a)) - j * sigma2;
        n * rss.ln() + j * v * a / ((1.0 + a) * (1.0 + a)) + j * (1.0 + a).ln()
    }

    #[test]
    fn dispersion_ratio_is_the_ratio_at_unit_scale_and_the_deviance_minimum() {
        for rho in [0.0, 0.3, 2.0, 15.0] {
            assert!((lme4_dispersion_ratio(rho, 1.0) - rho).abs() < 1e-12 * rho.max(1.0));
        }
        // Many rows per level, where the root of D′'s leading terms is D's minimum.
        let (n, j) = (1e7, 1e3);
        for (rho, sigma2) in [(5.56, 0.341), (19.4, 0.0584), (3.0, 2.0), (3.0, 0.5)] {
            let a = lme4_dispersion_ratio(rho, sigma2);
            assert!(a > 0.0);
            let d = |x: f64| expected_deviance(x, rho, sigma2, n, j);
            let h = 1e-3 * a;
            assert!(d(a) < d(a - h) && d(a) < d(a + h), "{rho} {sigma2}: {a}");
        }
        // A ratio below 1 in units of the residual variance, data weighed by 1/φ > 1: the
        // unit-scale penalty wants less θ than the ratio.
        assert!(lme4_dispersion_ratio(5.56, 0.341) < 5.56);
        assert!(lme4_dispersion_ratio(5.56, 3.0) > 5.56);
        // Where D′ has no root, D rises from a = 0.
        assert_eq!(lme4_dispersion_ratio(0.5, 2.0), 0.0);
        assert!(expected_deviance(0.0, 0.5, 2.0, n, j) < expected_deviance(0.1, 0.5, 2.0, n, j));
    }
}
