//! Reading a confidence interval off a likelihood profile, as lme4's `confint.thpr` does: the
//! natural cubic interpolating spline of `ζ` on the parameter (R's `splines::interpSpline`), its
//! inverse as a piecewise cubic (`backSpline`), and linear interpolation when the spline cannot be
//! built or inverted (`approxfun`).

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
}
