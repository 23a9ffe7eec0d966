//! A projected quasi-Newton (BFGS) search with the exact gradient within bounds, for criteria
//! whose gradient comes at about the cost of a few evaluations (the Laplace deviance of a GLMM,
//! the profiled deviance of a structured LMM carried to its parameters).
//!
//! At each point `y` with gradient `g`, coordinates on a bound whose gradient pushes outward are
//! held (and, see [`hold_flat`], flat ones with nothing left to offer); the others take the
//! direction `d = −(H_FF)⁻¹ g_F`, with `(H_FF)⁻¹` the Schur complement of the BFGS model's
//! inverse over the held set ([`free_inverse`]). A backtracking (Armijo) line search along the
//! projected path accepts `f(y + t d) ≤ f(y) + 10⁻⁴ gᵀ(y + t d − y)`, shrinking a rejected step
//! to the minimum of the cubic that matches value and slope at both ends
//! ([`backtrack_factor`]). The inverse model is updated by BFGS,
//! `H⁻¹ ← (I − ρ s yᵀ) H⁻¹ (I − ρ y sᵀ) + ρ s sᵀ` with `ρ = 1/sᵀy`, where `sᵀy > 0`, and grown
//! after a full step that showed no positive curvature. Where no step lowers the criterion the
//! Hessian is measured once by forward differences of the gradient before the search gives up.
//! Converged when every free component of the gradient is below `gtol`.
use crate::error::{invalid, Result};

/// Largest number of quasi-Newton iterations of [`minimize`].
const QN_MAX_ITER: usize = 500;
/// Largest step reductions of one line search.
const QN_MAX_BACKTRACKS: usize = 40;
/// Bounds of the factor by which a rejected step shrinks ([`backtrack_factor`]).
const QN_SHRINK_MIN: f64 = 0.1;
const QN_SHRINK_MAX: f64 = 0.5;
/// Relative size of a predicted decrease of the deviance below which a line search stops (the
/// deviance itself is accurate to about 1e-13 relative).
const QN_ROUNDING: f64 = 1e-13;
/// Largest step (whitened units, about one standard error each; a θ's unit is at most 1) of
/// a search direction that is the plain gradient step of a reset model (`2 I`: no positive
/// definite curvature measured yet): that step's length is the gradient's, which far from the
/// optimum means nothing. An inverse Gaussian fit whose moment start put θ at 1.24 (the
/// criterion concave there, the probed curvature negative, the gradient 1,277) stepped to
/// θ = −637 and backtracked through six evaluations to 0.70 (optimum 0.68): 17 evaluations
/// (bench/links.R), 13 with the cap; three crossed inverse Gaussian fits 40, 27 and 22, with
/// it 17, 23 and 19.
const QN_RESET_MAX_STEP: f64 = 1.0;
/// The factor by which the quasi-Newton model's steps grow after a full step along which the
/// criterion showed no positive curvature ([`minimize`]).
const QN_CONCAVE_GROWTH: f64 = 4.0;
/// The criterion and its gradient at a point of the search (`None` where they are not
/// finite, or the criterion cannot be evaluated there).
pub type ValueAndGradient = Option<(f64, Vec<f64>)>;
/// The criterion and its gradient at a point of the search's coordinates, each call one
/// evaluation (an `Err` ends the search: an interrupt).
pub type Evaluate<'a> = dyn FnMut(&[f64]) -> Result<ValueAndGradient> + 'a;

/// Step (whitened units) of the forward differences of the gradient that measure the Hessian
/// where no step lowers the deviance ([`minimize`]).
const QN_MEASURE_STEP: f64 = 1e-4;

/// Inverse curvature (whitened units, where a well-determined coordinate has about 1/2) from
/// which a coordinate counts as flat: its standard error is at least 14 times the one its
/// calibration found.
const QN_FLAT_INVERSE: f64 = 100.0;
/// Largest decrease of the deviance the flat coordinates together may still offer (by their
/// Newton steps) for the search to leave them where they are.
const QN_FLAT_DECREASE: f64 = 1e-9;

/// Marks as `held` (besides the coordinates on a bound) the flat coordinates when all of them
/// together promise less than [`QN_FLAT_DECREASE`]: `Σ g_j² H⁻¹_jj` over those whose inverse
/// curvature `H⁻¹_jj` (the BFGS approximation) is at least [`QN_FLAT_INVERSE`].
///
/// A coefficient on its way to ±∞ (a zero-inflation logit for a level without zeros to
/// explain) has a deviance like `c + a e^{β}`: gradient and curvature shrink together, every
/// Newton step is about one unit long, and what is left to gain, `a e^{β}`, is its Newton
/// decrement `g²/H`. Following it until its gradient is below `gtol` takes many more steps,
/// each of which disturbs the other coordinates' gradients through the BFGS update. Holding
/// such a coordinate once it cannot lower the deviance by more than 1e-9 lets the others
/// converge; it is released as soon as its promise grows again.
fn hold_flat(held: &mut [bool], g: &[f64], hinv: &[f64]) {
    let k = g.len();
    let flat: Vec<usize> = (0..k)
        .filter(|&j| !held[j] && hinv[j * k + j] >= QN_FLAT_INVERSE)
        .collect();
    let promise: f64 = flat.iter().map(|&j| g[j] * g[j] * hinv[j * k + j]).sum();
    if !flat.is_empty() && promise < QN_FLAT_DECREASE {
        for j in flat {
            held[j] = true;
        }
    }
}

/// The quasi-Newton model's inverse Hessian over the free coordinates when those marked `held`
/// stay where they are: with `H⁻¹` the model's inverse over all (`hinv`, `k × k`) and `A` the
/// held set, `(H_FF)⁻¹ = (H⁻¹)_FF − (H⁻¹)_FA ((H⁻¹)_AA)⁻¹ (H⁻¹)_AF` (the Schur complement), in
/// the free rows and columns of a `k × k` matrix. The free block of `H⁻¹` alone is the step of a
/// model in which the held coordinates move too: where they are coupled to the free ones (a
/// standard deviation held at its bound 0 against the others of its term) every such step
/// overshot and was cut back, and the search converged linearly. `None` when nothing is held
/// or `(H⁻¹)_AA` is not positive definite.
fn free_inverse(hinv: &[f64], held: &[bool]) -> Option<Vec<f64>> {
    let k = held.len();
    let a: Vec<usize> = (0..k).filter(|&j| held[j]).collect();
    let m = a.len();
    if m == 0 {
        return None;
    }
    let mut l: Vec<f64> = (0..m * m).map(|i| hinv[a[i % m] * k + a[i / m]]).collect();
    crate::small::chol_lower(&mut l, m)?;
    let mut out = hinv.to_vec();
    // With (H⁻¹)_AA = L Lᵀ the correction is (L⁻¹ (H⁻¹)_Ar)ᵀ (L⁻¹ (H⁻¹)_Ac).
    let rows: Vec<Vec<f64>> = (0..k)
        .map(|r| {
            let mut v: Vec<f64> = a.iter().map(|&c| hinv[r * k + c]).collect();
            crate::small::solve_lower(&l, m, &mut v);
            v
        })
        .collect();
    for r in (0..k).filter(|&r| !held[r]) {
        for c in (0..k).filter(|&c| !held[c]) {
            let correction: f64 = rows[r].iter().zip(&rows[c]).map(|(x, y)| x * y).sum();
            out[r * k + c] -= correction;
        }
    }
    Some(out)
}

/// The factor by which a line search shrinks a rejected step: the minimizer over `t ∈ [0, 1]`
/// of the cubic that matches the deviance along the step, `φ(t)`, in value and slope at both
/// ends (`φ(0) = f0`, `φ′(0) = s0 < 0` from the point, `φ(1) = f1`, `φ′(1) = s1` from the trial
/// and its exact gradient), or of the quadratic through `f0`, `s0`, `f1` where the cubic has no
/// minimum inside; clamped to [[`QN_SHRINK_MIN`], [`QN_SHRINK_MAX`]] (halving where neither
/// is usable). A step that overshot far lands near the minimum along its line in one
/// evaluation instead of after several halvings (Nocedal and Wright, *Numerical Optimization*,
/// eq. 3.59).
fn backtrack_factor(f0: f64, s0: f64, f1: f64, s1: f64) -> f64 {
    let d1 = s0 + s1 - 3.0 * (f1 - f0);
    let disc = d1 * d1 - s0 * s1;
    let cubic = if disc >= 0.0 {
        let d2 = disc.sqrt();
        let t = 1.0 - (s1 + d2 - d1) / (s1 - s0 + 2.0 * d2);
        t.is_finite().then_some(t)
    } else {
        None
    };
    let t = cubic.unwrap_or_else(|| {
        let curvature = f1 - f0 - s0;
        if curvature > 0.0 {
            -s0 / (2.0 * curvature)
        } else {
            QN_SHRINK_MAX
        }
    });
    if t.is_finite() {
        t.clamp(QN_SHRINK_MIN, QN_SHRINK_MAX)
    } else {
        QN_SHRINK_MAX
    }
}

/// Where the quasi-Newton search ended.
pub struct GradientSearch {
    /// The point and the criterion there.
    pub y: Vec<f64>,
    pub f: f64,
    /// Criterion evaluations (each with its gradient).
    pub evaluations: usize,
    /// Whether the projected gradient fell below the tolerance.
    pub converged: bool,
}

/// The criterion, its gradient and the Hessian (row-major) at the start of a search, where the
/// caller has them (the criterion is then not evaluated there again).
pub struct KnownStart {
    pub f: f64,
    pub gradient: Vec<f64>,
    pub hessian: Vec<f64>,
}

/// Minimizes the criterion that `eval` gives (with its gradient) over `y` within
/// `[lower, upper]` from `start` (clipped to the bounds) by the projected BFGS search of the
/// module documentation. Coordinates should be scaled so that the criterion's curvature is of
/// order 1 (the reset model is `2 I`). Stops when every free component of the gradient is below
/// `gtol` or no step lowers the criterion any more; gives up (not converged) once it has used
/// `max_evaluations`. `at_start`: the criterion, gradient and Hessian at `start` where the
/// caller has them (used when `start` is inside the bounds), the Hessian starting the BFGS
/// model where it is positive definite (else `2 I`, as after a reset).
pub fn minimize(
    start: &[f64],
    at_start: Option<KnownStart>,
    (lower, upper): (&[f64], &[f64]),
    gtol: f64,
    max_evaluations: usize,
    eval: &mut Evaluate<'_>,
) -> Result<GradientSearch> {
    let k = start.len();
    let clip = |y: &mut [f64]| {
        for j in 0..k {
            y[j] = y[j].max(lower[j]).min(upper[j]);
        }
    };
    let evaluations = std::cell::Cell::new(0usize);
    let mut eval = |y: &[f64]| -> Result<ValueAndGradient> {
        evaluations.set(evaluations.get() + 1);
        eval(y)
    };
    let eval: &mut Evaluate<'_> = &mut eval;
    let mut y = start.to_vec();
    clip(&mut y);
    let mut initial_hessian = None;
    let first = match at_start {
        Some(s) if y.as_slice() == start => {
            initial_hessian = Some(s.hessian);
            Some((s.f, s.gradient))
        }
        _ => eval(&y)?,
    };
    let Some((mut f, mut g)) = first else {
        return invalid("the criterion or its gradient is not finite at the start");
    };
    // Inverse Hessian approximation, row-major k × k: the deviance's curvature is about 2
    // per standard error² in these coordinates.
    let mut hinv = vec![0.0; k * k];
    let reset = |h: &mut Vec<f64>| {
        h.iter_mut().for_each(|v| *v = 0.0);
        for j in 0..k {
            h[j * k + j] = 0.5;
        }
    };
    reset(&mut hinv);
    // Whether `hinv` is still the reset model (see [`QN_RESET_MAX_STEP`]).
    let mut plain = true;
    if let Some(inverse) = initial_hessian.filter(|h| h.len() == k * k).and_then(|h| {
        crate::linalg::spd_inverse::spd_inverse(
            faer::Mat::from_fn(k, k, |r, c| h[r * k + c]),
            faer::Par::Seq,
        )
    }) {
        for r in 0..k {
            for c in 0..k {
                hinv[r * k + c] = inverse[(r, c)];
            }
        }
        plain = false;
    }
    // Whether the model has been measured once where no step lowered the deviance.
    let mut remeasured = false;
    let mut converged = false;
    for _ in 0..QN_MAX_ITER {
        if evaluations.get() >= max_evaluations {
            break;
        }
        let on_bound: Vec<bool> = (0..k)
            .map(|j| (y[j] <= lower[j] && g[j] > 0.0) || (y[j] >= upper[j] && g[j] < 0.0))
            .collect();
        let mut active = on_bound.clone();
        hold_flat(&mut active, &g, &hinv);
        let pg: Vec<f64> = (0..k).map(|j| if active[j] { 0.0 } else { g[j] }).collect();
        if pg.iter().all(|v| v.abs() < gtol) {
            converged = true;
            break;
        }
        // The model's inverse with the coordinates on a bound held (flat ones are left
        // out of the step but not out of the model: their curvature is not known well).
        let free = free_inverse(&hinv, &on_bound);
        let free = free.as_deref().unwrap_or(&hinv);
        let mut d: Vec<f64> = (0..k)
            .map(|r| {
                if active[r] {
                    0.0
                } else {
                    -(0..k)
                        .filter(|&c| !active[c])
                        .map(|c| free[r * k + c] * pg[c])
                        .sum::<f64>()
                }
            })
            .collect();
        let slope: f64 = d.iter().zip(&pg).map(|(a, b)| a * b).sum();
        if slope >= 0.0 || !slope.is_finite() {
            reset(&mut hinv);
            plain = true;
            d = pg.iter().map(|v| -0.5 * v).collect();
        }
        // −gᵀH⁻¹g of the model the step comes from (before any cap).
        let model_slope: f64 = d.iter().zip(&pg).map(|(a, b)| a * b).sum();
        let longest = d.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        if plain && longest > QN_RESET_MAX_STEP {
            d.iter_mut().for_each(|v| *v *= QN_RESET_MAX_STEP / longest);
        }
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..QN_MAX_BACKTRACKS {
            let mut trial: Vec<f64> = (0..k).map(|j| y[j] + step * d[j]).collect();
            clip(&mut trial);
            let decrease: f64 = (0..k).map(|j| g[j] * (trial[j] - y[j])).sum();
            // A predicted decrease below the deviance's rounding cannot be verified: the
            // search is as far as the gradient's accuracy allows.
            if decrease >= -QN_ROUNDING * f.abs().max(1.0) {
                break;
            }
            let mut shrink = QN_SHRINK_MAX;
            if let Some((ft, gt)) = eval(&trial)? {
                if ft <= f + 1e-4 * decrease {
                    accepted = Some((trial, ft, gt));
                    break;
                }
                let slope_end: f64 = (0..k).map(|j| gt[j] * (trial[j] - y[j])).sum();
                shrink = backtrack_factor(f, decrease, ft, slope_end);
            }
            step *= shrink;
        }
        let Some((trial, ft, gt)) = accepted else {
            // No step lowers the deviance. Where the whitened units are poor (a θ whose
            // probed curvature at the start was negative keeps the unit 1 however small its
            // standard error), the BFGS model can be too far off to find the last bit of
            // descent: the model is measured here once, by forward differences of the
            // gradient, and the search goes on (an inverse Gaussian fit stopped 1.3e-7
            // above the optimum with a gradient of 6.6e-3 along such a θ).
            let small = |v: &f64| v.abs() < 1e3 * gtol;
            if !remeasured && !pg.iter().all(small) {
                remeasured = true;
                if let Some(inverse) = measured_inverse_hessian(&y, &g, eval)? {
                    hinv = inverse;
                    plain = false;
                    continue;
                }
            }
            // As far as rounding allows, if the gradient is small per standard error: in
            // the whitened units or, after that measurement, by the model's own curvature
            // (`√(gᵀH⁻¹g)`, the gradient's length per standard error).
            let per_se = (-model_slope).max(0.0).sqrt();
            converged = pg.iter().all(small) || (remeasured && per_se < 1e3 * gtol);
            break;
        };
        let s: Vec<f64> = (0..k).map(|j| trial[j] - y[j]).collect();
        let yk: Vec<f64> = (0..k).map(|j| gt[j] - g[j]).collect();
        let sy: f64 = s.iter().zip(&yk).map(|(a, b)| a * b).sum();
        let small_change = (f - ft).abs() <= 1e-14 * f.abs().max(1.0);
        // A full step that lowered the criterion at least as much as its slope predicts:
        // no sign of positive curvature along it.
        let concave = step == 1.0 && f - ft >= -s.iter().zip(&g).map(|(a, b)| a * b).sum::<f64>();
        (y, f, g) = (trial, ft, gt);
        if sy > 1e-12 * s.iter().map(|v| v * v).sum::<f64>().sqrt() {
            plain = false;
            // BFGS update of the inverse: H ← (I − ρ s yᵀ) H (I − ρ y sᵀ) + ρ s sᵀ.
            let rho = 1.0 / sy;
            let hy: Vec<f64> = (0..k)
                .map(|r| (0..k).map(|c| hinv[r * k + c] * yk[c]).sum())
                .collect();
            let yhy: f64 = yk.iter().zip(&hy).map(|(a, b)| a * b).sum();
            for r in 0..k {
                for c in 0..k {
                    hinv[r * k + c] += -rho * (hy[r] * s[c] + s[r] * hy[c])
                        + (rho * rho * yhy + rho) * s[r] * s[c];
                }
            }
        } else if concave {
            // No positive curvature along a full step that lowered the criterion at least
            // as its slope predicts (the criterion is concave there): BFGS has nothing to
            // learn, and its steps would stay as short as this one. They grow instead, the
            // line search cutting any that overshoots (a structured fit's correlation
            // drifting towards its bound crept along in steps of 2e-4 units for 460
            // evaluations). Near an optimum, where rounding can make `sᵀy` negative, the
            // decrease falls short of the slope's prediction and nothing grows.
            hinv.iter_mut().for_each(|v| *v *= QN_CONCAVE_GROWTH);
        }
        if small_change && step < 1e-6 {
            converged = (0..k).all(|j| {
                let on_bound = (y[j] <= lower[j] && g[j] > 0.0) || (y[j] >= upper[j] && g[j] < 0.0);
                on_bound || g[j].abs() < 1e3 * gtol
            });
            break;
        }
    }
    Ok(GradientSearch {
        y,
        f,
        evaluations: evaluations.get(),
        converged,
    })
}

/// The inverse of the Hessian at `y` (gradient `g`) from forward differences of the
/// gradient, a step of [`QN_MEASURE_STEP`] along each coordinate (`k` evaluations by
/// `eval`), symmetrized; `None` where a difference point fails or the result is not
/// positive definite.
fn measured_inverse_hessian(
    y: &[f64],
    g: &[f64],
    eval: &mut Evaluate<'_>,
) -> Result<Option<Vec<f64>>> {
    let k = y.len();
    let mut h = vec![0.0; k * k];
    for c in 0..k {
        let mut point = y.to_vec();
        point[c] += QN_MEASURE_STEP;
        let Some((_, gc)) = eval(&point)? else {
            return Ok(None);
        };
        for r in 0..k {
            h[r * k + c] = (gc[r] - g[r]) / QN_MEASURE_STEP;
        }
    }
    let inverse = crate::linalg::spd_inverse::spd_inverse(
        faer::Mat::from_fn(k, k, |r, c| 0.5 * (h[r * k + c] + h[c * k + r])),
        faer::Par::Seq,
    );
    Ok(inverse.map(|m| (0..k * k).map(|i| m[(i / k, i % k)]).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backtracking_lands_near_the_minimum_along_the_line() {
        // φ(t) = (t − 0.2)² on [0, 1]: slopes −0.4 and 1.6, the cubic fit is exact.
        let t = backtrack_factor(0.04, -0.4, 0.64, 1.6);
        assert!((t - 0.2).abs() < 1e-12, "{t}");
        // A minimum beyond the safeguards is clamped.
        assert_eq!(backtrack_factor(0.0, -1.0, 100.0, 300.0), QN_SHRINK_MIN);
        let t = backtrack_factor(0.0, -1.0, -0.5, 0.9);
        assert!((QN_SHRINK_MIN..=QN_SHRINK_MAX).contains(&t));
        // Still falling at the trial's end: the cubic's minimum comes before its maximum.
        let t = backtrack_factor(0.0, -1.0, 0.5, -2.0);
        assert!((t - 0.10233317727843616).abs() < 1e-12, "{t}");
        // Values that are not numbers: halving.
        assert_eq!(backtrack_factor(0.0, -1.0, f64::NAN, 1.0), QN_SHRINK_MAX);
    }

    #[test]
    fn only_flat_coordinates_with_nothing_left_to_offer_are_held() {
        // Coordinate 0 well determined, 1 and 2 flat (inverse curvature 1e4), 3 on a bound.
        let k = 4;
        let mut hinv = vec![0.0; k * k];
        for (j, v) in [0.5, 1e4, 1e4, 0.5].into_iter().enumerate() {
            hinv[j * k + j] = v;
        }
        let bound = [false, false, false, true];
        // Flat gradients promising 2e-10 together: both held, the tiny well-determined
        // gradient is not.
        let mut held = bound;
        hold_flat(&mut held, &[1e-9, 1e-7, -1e-7, 5.0], &hinv);
        assert_eq!(held, [false, true, true, true]);
        // Together they promise 2e-9: neither is held.
        let mut held = bound;
        hold_flat(&mut held, &[1e-9, 3e-7, -3e-7, 5.0], &hinv);
        assert_eq!(held, bound);
    }

    /// The inverse Hessian over the free coordinates with some held is the inverse of the free
    /// block of the Hessian, not the free block of its inverse.
    #[test]
    fn free_inverse_is_the_inverse_of_the_free_block() {
        let k = 4;
        // A positive definite H, row-major, with coupling between every pair.
        let h: Vec<f64> = (0..k * k)
            .map(|i| {
                let (r, c) = (i / k, i % k);
                if r == c {
                    3.0 + r as f64
                } else {
                    0.5 + 0.1 * (r + c) as f64
                }
            })
            .collect();
        let inverse = |m: &[f64], idx: &[usize]| {
            let n = idx.len();
            let sub = faer::Mat::from_fn(n, n, |r, c| m[idx[r] * k + idx[c]]);
            crate::linalg::spd_inverse::spd_inverse(sub, faer::Par::Seq).expect("positive definite")
        };
        let all: Vec<usize> = (0..k).collect();
        let hinv_mat = inverse(&h, &all);
        let hinv: Vec<f64> = (0..k * k).map(|i| hinv_mat[(i / k, i % k)]).collect();
        assert!(free_inverse(&hinv, &[false; 4]).is_none());
        for held in [[false, true, false, false], [true, false, false, true]] {
            let free: Vec<usize> = (0..k).filter(|&j| !held[j]).collect();
            let want = inverse(&h, &free);
            let got = free_inverse(&hinv, &held).expect("held coordinates");
            for (a, &r) in free.iter().enumerate() {
                for (b, &c) in free.iter().enumerate() {
                    assert!(
                        (got[r * k + c] - want[(a, b)]).abs() < 1e-12,
                        "{held:?} ({r}, {c})"
                    );
                }
            }
        }
    }
}
