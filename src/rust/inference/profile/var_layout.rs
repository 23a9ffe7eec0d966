//! The map between the covariance parameters the optimizer sees (`par`, see
//! [`crate::model::covariance`]; θ itself for unstructured terms) and the parameters the profiles
//! walk on: per unstructured term the lower triangle (column-major) of its covariance matrix as
//! standard deviations (diagonal) and correlations (below it), lme4's `Cv_to_Sv` and
//! `Sv_to_Cv`; per structured term its own parameters with the standard deviations made
//! absolute (`σ s_k`) and the correlation parameters as they are.
use crate::model::covariance::{factor_from_theta, Covariance, ParRole, Structure};
use crate::spec::ModelSpec;

/// The map between `par` and the profiles' standard deviations and correlations.
#[derive(Debug, Clone)]
pub struct VarLayout {
    /// Each random-effects term's covariance parameterisation, in `par` order.
    pub covariances: Vec<Covariance>,
}

impl VarLayout {
    /// The layout of `spec`'s terms.
    pub fn new(spec: &ModelSpec<'_>) -> Self {
        Self {
            covariances: spec.covariances.clone(),
        }
    }

    /// The layout of unstructured terms with the given numbers of columns.
    pub fn unstructured(term_q: &[usize]) -> Self {
        Self {
            covariances: term_q
                .iter()
                .map(|&q| Covariance::unstructured(q))
                .collect(),
        }
    }

    /// Number of covariance parameters (`par`'s length).
    pub fn n_theta(&self) -> usize {
        self.covariances.iter().map(Covariance::n_par).sum()
    }

    /// Whether each covariance parameter is a standard deviation (else a correlation).
    pub fn is_sd(&self) -> Vec<bool> {
        self.covariances
            .iter()
            .flat_map(|c| {
                c.roles().into_iter().map(|r| match r {
                    ParRole::Factor { row, col } => row == col,
                    ParRole::Sd(_) => true,
                    ParRole::Rho | ParRole::Pacf(_) => false,
                })
            })
            .collect()
    }

    /// Bounds of each profiled parameter: `[0, ∞)` for standard deviations, `[−1, 1]` for the
    /// correlations of unstructured terms, the structure's own interval for its correlation
    /// parameters.
    pub fn bounds(&self) -> (Vec<f64>, Vec<f64>) {
        let mut lower = Vec::new();
        let mut upper = Vec::new();
        for c in &self.covariances {
            let (lo, hi) = (c.lower(), c.upper());
            for (k, r) in c.roles().into_iter().enumerate() {
                let (l, u) = match r {
                    ParRole::Factor { row, col } if row == col => (0.0, f64::INFINITY),
                    ParRole::Factor { .. } => (-1.0, 1.0),
                    ParRole::Sd(_) => (0.0, f64::INFINITY),
                    ParRole::Rho | ParRole::Pacf(_) => (lo[k], hi[k]),
                };
                lower.push(l);
                upper.push(u);
            }
        }
        (lower, upper)
    }

    /// lme4's `Cv_to_Sv` for unstructured terms (the lower triangle of `σ² T T'` as standard
    /// deviations and correlations; a correlation with a zero standard deviation is reported as
    /// 0); for structured terms the standard deviations times `σ` and the correlation
    /// parameters. `theta` is `par`.
    pub fn sdcor_from_theta(&self, theta: &[f64], sigma: f64) -> Vec<f64> {
        let mut out = Vec::with_capacity(theta.len());
        let mut off = 0;
        for cov in &self.covariances {
            let k = cov.n_par();
            let part = &theta[off..off + k];
            off += k;
            if cov.structure != Structure::Unstructured {
                for (v, r) in part.iter().zip(cov.roles()) {
                    out.push(if matches!(r, ParRole::Sd(_)) {
                        sigma * v
                    } else {
                        *v
                    });
                }
                continue;
            }
            let q = cov.q;
            let t = factor_from_theta(part, q);
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
        }
        out
    }

    /// The inverse of [`VarLayout::sdcor_from_theta`]: `par` from standard deviations,
    /// correlations and `σ` (lme4's `Sv_to_Cv` for unstructured terms, through a
    /// lower-triangular factor of each covariance matrix, semi-definite allowed). `None` when a
    /// covariance matrix is not positive semi-definite, a parameter is outside its bounds or `σ`
    /// is not positive.
    pub fn theta_from_sdcor(&self, v: &[f64], sigma: f64) -> Option<Vec<f64>> {
        if !(sigma > 0.0 && sigma.is_finite()) || v.len() != self.n_theta() {
            return None;
        }
        let mut out = Vec::with_capacity(v.len());
        let mut off = 0;
        for cov in &self.covariances {
            let k = cov.n_par();
            let part = &v[off..off + k];
            off += k;
            if cov.structure != Structure::Unstructured {
                let (lo, hi) = (cov.lower(), cov.upper());
                for (i, (x, r)) in part.iter().zip(cov.roles()).enumerate() {
                    if x.is_nan() || *x < lo[i] || *x > hi[i] {
                        return None;
                    }
                    out.push(if matches!(r, ParRole::Sd(_)) {
                        x / sigma
                    } else {
                        *x
                    });
                }
                continue;
            }
            let q = cov.q;
            let packed = factor_from_theta(part, q);
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
        }
        Some(out)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdcor_round_trip() {
        let layout = VarLayout::unstructured(&[2, 1]);
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
