//! Gauss–Hermite quadrature for the standard normal density.
//!
//! Nodes `zₖ` and weights `wₖ` with `Σₖ wₖ f(zₖ) ≈ E f(Z)`, `Z ~ N(0, 1)`, exact for polynomials
//! of degree `< 2K`: the Golub–Welsch construction, i.e. the eigenvalues of the Jacobi matrix of
//! the probabilists' Hermite polynomials (zero diagonal, `√k` off the diagonal) and the squared
//! first components of its unit eigenvectors.
use crate::error::{invalid, MixedError, Result};
use faer::{Mat, Side};

/// A quadrature rule: nodes and weights (the weights sum to 1).
#[derive(Debug, Clone, PartialEq)]
pub struct GaussHermite {
    /// Nodes, ascending.
    pub nodes: Vec<f64>,
    /// Weights.
    pub weights: Vec<f64>,
}

impl GaussHermite {
    /// The `k`-point rule, `1 ≤ k ≤ 100`.
    pub fn new(k: usize) -> Result<Self> {
        if k == 0 || k > 100 {
            return invalid(format!(
                "the number of quadrature points must be 1 to 100, not {k}"
            ));
        }
        let jacobi = Mat::from_fn(k, k, |i, j| {
            if i == j + 1 || j == i + 1 {
                (i.max(j) as f64).sqrt()
            } else {
                0.0
            }
        });
        let evd = jacobi
            .self_adjoint_eigen(Side::Lower)
            .map_err(|_| MixedError::Optimizer("Gauss-Hermite eigenproblem failed".into()))?;
        let values = evd.S().column_vector();
        let vectors = evd.U();
        let mut nodes: Vec<f64> = (0..k).map(|i| values[i]).collect();
        let mut weights: Vec<f64> = (0..k).map(|i| vectors[(0, i)] * vectors[(0, i)]).collect();
        // Exact symmetry: z and −z share a weight; the middle node of an odd rule is 0.
        for i in 0..k / 2 {
            let z = 0.5 * (nodes[k - 1 - i] - nodes[i]);
            let w = 0.5 * (weights[i] + weights[k - 1 - i]);
            nodes[i] = -z;
            nodes[k - 1 - i] = z;
            weights[i] = w;
            weights[k - 1 - i] = w;
        }
        if k % 2 == 1 {
            nodes[k / 2] = 0.0;
        }
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        Ok(Self { nodes, weights })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_integrate_normal_moments() {
        for k in [1, 2, 3, 5, 10, 25] {
            let rule = GaussHermite::new(k).expect("rule");
            // E Z^(2m) = (2m − 1)!! for 2m < 2k
            let mut double_factorial = 1.0;
            for m in 0..k {
                let moment: f64 = rule
                    .nodes
                    .iter()
                    .zip(&rule.weights)
                    .map(|(z, w)| w * z.powi(2 * m as i32))
                    .sum();
                assert!(
                    (moment - double_factorial).abs() < 1e-9 * double_factorial,
                    "k = {k}, moment {}: {moment} vs {double_factorial}",
                    2 * m
                );
                double_factorial *= (2 * m + 1) as f64;
            }
        }
        let three = GaussHermite::new(3).expect("rule");
        assert!((three.nodes[2] - 3f64.sqrt()).abs() < 1e-12);
        assert!((three.weights[1] - 2.0 / 3.0).abs() < 1e-12);
        assert!(GaussHermite::new(0).is_err());
    }
}
