//! The map between θ (the relative covariance factors, lme4's layout) and the parameters the
//! profiles walk on: per random-effects term the lower triangle (column-major) of its
//! covariance matrix as standard deviations (diagonal) and correlations (below it), lme4's
//! `Cv_to_Sv` and `Sv_to_Cv`.
use crate::spec::ModelSpec;

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

#[cfg(test)]
mod tests {
    use super::*;

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
