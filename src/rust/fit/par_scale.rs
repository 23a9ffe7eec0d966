//! The natural scale of a linear mixed model's covariance parameters.
//!
//! A random effect `b_k` enters the response through its column `z_k`, so the parameters of
//! `b_k`'s standard deviation (relative to σ) are in units of `1 / z_k`: with a covariate in
//! small or large units (days × 1,000) they are far from 1, where the optimizer's absolute
//! radii, tolerances and bound margins (and the heuristics that read a relative standard
//! deviation as large) are wrong by the same factor (sleepstudy with `Days × 1000`: 444
//! evaluations and an end 1.3e-4 below lme4's, where `Days` takes 6).
//!
//! With `s_k = √(Σᵢ wᵢ z_ik² / n)`, the root mean square of column `k` (from the diagonal of
//! `Z'WZ` in the cross-products, so that a model held as grouped sums has it too), the
//! optimizer searches `x` with `par = x ⊙ scale`: the scaled random effects `s_k b_k` have
//! relative covariance `D Σ D` (`D = diag(s)`), whose Cholesky factor is `T` with its row `k`
//! times `s_k` (`scale = 1/s_row` for the unstructured elements), standard deviations times
//! `s_k` (one mean scale `√(mean s_k²)` for a term whose columns share one standard deviation,
//! so that they still do), correlations as they are. Where every `s_k` lies within
//! [`NEUTRAL_LOW`]..[`NEUTRAL_HIGH`] (intercepts, covariates of moderate size) the scale is 1 and
//! the search is the one on `par` itself.
use crate::blocks::CrossProducts;
use crate::model::covariance::ParRole;
use crate::spec::ModelSpec;
use crate::terms::ReStructure;

/// The scale of each element of `par` (`par = x ⊙ scale`), all 1 where no column needs one.
pub fn par_scale(re: &ReStructure, cp: &CrossProducts) -> Vec<f64> {
    ColumnScales::of_cross_products(re, cp).par_scale(re)
}

/// The root mean square `s_k` of each term's columns, or `None` where every one lies within
/// [`NEUTRAL_LOW`]..[`NEUTRAL_HIGH`] (no scale is needed).
pub struct ColumnScales(Option<Vec<Vec<f64>>>);

impl ColumnScales {
    /// From the diagonal blocks of `Z'WZ` summed over the levels (`s_k² = Σ wᵢ z_ik² / n`).
    pub fn of_cross_products(re: &ReStructure, cp: &CrossProducts) -> Self {
        Self::of(column_rms(re, cp))
    }

    /// From the rows of `spec`, unweighted (for a GLMM, whose cross-products carry its working
    /// weights).
    pub fn of_rows(re: &ReStructure, spec: &ModelSpec<'_>) -> Self {
        let n = spec.n.max(1);
        let rms: Vec<Vec<f64>> = spec
            .terms
            .iter()
            .map(|term| {
                term.z
                    .chunks_exact(n)
                    .take(term.q)
                    .map(|col| {
                        unit_or_one((col.iter().map(|v| v * v).sum::<f64>() / n as f64).sqrt())
                    })
                    .collect()
            })
            .collect();
        if rms.len() != re.covariances.len()
            || rms.iter().zip(&re.covariances).any(|(r, c)| r.len() != c.q)
        {
            return Self(None);
        }
        Self::of(rms)
    }

    fn of(rms: Vec<Vec<f64>>) -> Self {
        let neutral = rms
            .iter()
            .flatten()
            .all(|&s| (NEUTRAL_LOW..=NEUTRAL_HIGH).contains(&s));
        Self((!neutral).then_some(rms))
    }

    /// The scale of each element of `par`: `1/s_row` for the unstructured elements, `1/s_k` for
    /// a column's standard deviation, `1/√(mean s_k²)` for a standard deviation that the
    /// term's columns share, 1 for correlations (all 1 when no scale is needed).
    pub fn par_scale(&self, re: &ReStructure) -> Vec<f64> {
        let Some(rms) = &self.0 else {
            return vec![1.0; re.n_par()];
        };
        re.covariances
            .iter()
            .zip(rms)
            .flat_map(|(cov, s)| {
                let mean = (s.iter().map(|v| v * v).sum::<f64>() / s.len() as f64).sqrt();
                cov.roles().into_iter().map(move |role| match role {
                    ParRole::Factor { row, .. } => 1.0 / s[row],
                    ParRole::Sd(Some(k)) => 1.0 / s[k],
                    ParRole::Sd(None) => 1.0 / mean,
                    ParRole::Rho | ParRole::Pacf(_) => 1.0,
                })
            })
            .collect()
    }

    /// The scale of each element of θ (each term's lower-triangular factor, column by column):
    /// `1/s_row` (all 1 when no scale is needed).
    pub fn theta_scale(&self, re: &ReStructure) -> Vec<f64> {
        let Some(rms) = &self.0 else {
            return vec![1.0; re.n_theta()];
        };
        rms.iter()
            .flat_map(|s| {
                let q = s.len();
                (0..q).flat_map(move |col| (col..q).map(move |row| 1.0 / s[row]))
            })
            .collect()
    }
}

/// A column's root mean square, 1 where it is 0 or not finite.
fn unit_or_one(s: f64) -> f64 {
    if s.is_finite() && s > 0.0 {
        s
    } else {
        1.0
    }
}

/// `s_k` of each term's columns, from the diagonal blocks of `Z'WZ` summed over the levels; 1
/// for a column that is all 0 (or whose sum is not finite).
fn column_rms(re: &ReStructure, cp: &CrossProducts) -> Vec<Vec<f64>> {
    let n = cp.n.max(1) as f64;
    let mut block_sums: Vec<Vec<f64>> = re.blocks.iter().map(|b| vec![0.0; b.q]).collect();
    let q0 = cp.q0;
    for level in cp.a11.chunks_exact(q0 * q0).take(cp.l0) {
        for (c, sum) in block_sums[0].iter_mut().enumerate() {
            *sum += level[c * q0 + c];
        }
    }
    for node in 0..cp.layout.n_nodes() {
        let b = cp.layout.node_block[node] as usize;
        let q = cp.layout.node_q(node);
        let d = cp.a22_diag_off[node];
        for (c, sum) in block_sums[b].iter_mut().enumerate().take(q) {
            *sum += cp.a22_diag[d + c * q + c];
        }
    }
    re.covariances
        .iter()
        .enumerate()
        .map(|(t, cov)| {
            let (b, off) = re.term_block[t];
            (0..cov.q)
                .map(|k| unit_or_one((block_sums[b][off + k] / n).sqrt()))
                .collect()
        })
        .collect()
}

/// Column scales from this one up leave the search on `par` itself (sleepstudy's `Days`, 0 to
/// 9, has 5.3).
const NEUTRAL_LOW: f64 = 0.1;

/// Column scales up to this one leave the search on `par` itself.
const NEUTRAL_HIGH: f64 = 10.0;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::RandomTerm;

    #[test]
    fn columns_far_from_unit_size_scale_their_rows_of_t() {
        // 6 levels × 4 rows; an intercept and a slope of size ~100
        let n = 24;
        let y: Vec<f64> = (0..n).map(|i| (i as f64 * 0.7).sin()).collect();
        let ones = vec![1.0; n];
        let x: Vec<f64> = (0..n).map(|i| 100.0 * (i % 4) as f64).collect();
        let z: Vec<f64> = ones.iter().chain(&x).copied().collect();
        let g: Vec<i32> = (0..n).map(|i| (i / 4) as i32 + 1).collect();
        let terms = vec![RandomTerm::from_factor_codes(&g, 6, &z, 2, 0).expect("term")];
        let spec = ModelSpec::new(&y, &ones, 1, None, None, terms).expect("spec");
        let re = ReStructure::new(&spec);
        let cp = CrossProducts::new(&spec, &re).expect("cross-products");
        let s1 = (x.iter().map(|v| v * v).sum::<f64>() / n as f64).sqrt();
        let scale = par_scale(&re, &cp);
        // θ = (T₁₁, T₂₁, T₂₂): rows 1, 2, 2
        let want = [1.0, 1.0 / s1, 1.0 / s1];
        for (got, want) in scale.iter().zip(want) {
            assert!((got - want).abs() < 1e-12 * want, "{scale:?}");
        }
        // an intercept alone needs none
        let intercept = vec![RandomTerm::from_factor_codes(&g, 6, &ones, 1, 0).expect("term")];
        let spec = ModelSpec::new(&y, &ones, 1, None, None, intercept).expect("spec");
        let re = ReStructure::new(&spec);
        let cp = CrossProducts::new(&spec, &re).expect("cross-products");
        assert_eq!(par_scale(&re, &cp), vec![1.0]);
    }
}
