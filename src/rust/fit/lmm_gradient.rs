//! The exact gradient of a linear mixed model's profiled deviance over θ.
//!
//! With `C = Λ'Z'WZΛ + I`, `B = Λ'Z'WF` (`F = [X, y]`) and the augmented matrices
//! `Ω = [C B; B' F'WF]` and `Ω_X` (the same without the response's row and column),
//!
//! ```text
//!   log|Ω_X| = log|C| + log|R_X|²,   log|Ω| = log|Ω_X| + log r²,
//!   ML:   d = log|C| + n (log|Ω| − log|Ω_X|) + const
//!   REML: d = log|Ω_X| + (n − p) (log|Ω| − log|Ω_X|) + const
//! ```
//!
//! Each of `C`, `Ω_X`, `Ω` is `E + M'WM` with `E` the identity on the random effects and `M`
//! `[ZΛ]` with some of `F`'s columns; a change of θ_k moves `ZΛ` to `ZΛ D_k` with
//! `D_k = Λ⁻¹ ∂Λ/∂θ_k` (block diagonal: `T_b⁻¹ E_rc` on each level of θ_k's block `b`, for θ_k
//! at row `r`, column `c` of `T_b`). Hence, for `A` any of the three and `(A⁻¹)_uu` its inverse's
//! random-effects block,
//!
//! ```text
//!   ∂ log|A| / ∂θ_k = 2 tr(D_k) − 2 tr((A⁻¹)_uu D_k),
//!   (Ω⁻¹)_uu = C⁻¹ + W W',   W = C⁻¹ B L_FF⁻ᵀ,
//! ```
//!
//! and `(Ω_X⁻¹)_uu` keeps only `W`'s first `p` columns (`L_FF = [R_X' 0; c' r]`). Only the
//! diagonal blocks of these matrices enter, summed over each block's levels: with
//! `Q_b = Σ_levels [(C⁻¹)_ll + Σ_f a_f w_lf w_lf']` (`a_f` = 1 for `X`'s columns under REML, 0
//! under ML; `n − p` or `n` for the response's),
//!
//! ```text
//!   ∂d/∂θ_k = 2 ℓ_b (T_b⁻¹)_cr − 2 (Q_b T_b⁻¹)_cr     (ℓ_b levels of block b).
//! ```
//!
//! The diagonal blocks of `C⁻¹` are those the conditional variances read
//! ([`omega_inverse_diagonal`]); for a dense trailing block they take its whole inverse, about
//! two factorizations, so the gradient costs about three evaluations
//! of the criterion, whatever the number of parameters. It needs every `T_b` invertible (no
//! zero on a diagonal: at such a point the deviance is not differentiable in the usual sense
//! along the sign-symmetric direction) and a trailing block that is empty or dense; otherwise
//! it is not offered. For structured terms the optimizer's parameters map to θ; the caller
//! carries this gradient to them by the chain rule.
use super::lmm::LinearMixedModel;
use crate::condvar::omega_inverse_diagonal;
use crate::error::Result;
use crate::small;
use crate::trailing::Trailing;
use faer::Par;

/// Smallest dense trailing block for which the search takes Newton steps with the exact
/// gradient whatever the number of parameters (see `optim::minimize_within`). A gradient costs
/// about three evaluations there, and the 3 to 5 gradients of the steps replace 25 to 60
/// evaluations by BOBYQA: on 30,000-row crossed models (median of 3) 300 items take 0.024 s
/// instead of 0.031, 600 items 0.054 instead of 0.085, 450 items with a random slope (900) 0.20
/// instead of 0.68.
const EXACT_GRADIENT_MIN_DENSE: usize = 200;
/// Below [`EXACT_GRADIENT_MIN_DENSE`] the gradient also pays with a dense block of at most this
/// order, or with at least [`EXACT_GRADIENT_MIN_PARAMETERS`] covariance parameters; only two
/// parameters with a block in between stay with BOBYQA. Measured (median of 5, seconds, BOBYQA
/// against the gradient): two crossed intercepts on 30,000 rows with 50 items 0.021 / 0.023,
/// 150 items 0.038 / 0.045, 20 items 0.015 / 0.014; with a random slope by subject (three
/// parameters) and 60 items 0.060 / 0.028, 100 items 0.123 / 0.048; slopes on both factors
/// 0.252 / 0.057; three crossed intercepts 0.028 / 0.023. Without a trailing block (one
/// grouping factor) BOBYQA's own work is most of a small fit: sleepstudy 1.79 / 1.23 ms for
/// the whole call from R (67 evaluations against 6 gradients).
const EXACT_GRADIENT_SMALL_DENSE: usize = 32;
const EXACT_GRADIENT_MIN_PARAMETERS: usize = 3;
/// Structured terms take the gradient and the average information over θ, whose cost grows
/// with θ's length (and its square), then carry them to their own parameters: where θ is many
/// times longer, or there are fewer than [`EXACT_GRADIENT_MIN_PARAMETERS`] of those, BOBYQA's
/// evaluations cost less. Measured (median of 5): sleepstudy's `ar1(0 + factor(Days) |
/// Subject)` (2 parameters, θ of 55) 4.7 ms by BOBYQA's 80 evaluations against 14 ms by 16
/// Newton evaluations, 20,000 rows with `ar1()` of 5 columns 0.044 against 0.054 s; with `cs()`
/// (6 parameters, θ of 15) 0.23 against 0.08 s, `toep()` (9) 0.27 against 0.10 s.
const STRUCTURED_THETA_PER_PARAMETER: usize = 4;

impl LinearMixedModel<'_> {
    /// Whether the optimizer should take Newton steps with [`Self::criterion_gradient`] and
    /// the average-information Hessian (`lmm_information`; both carried to a structured
    /// model's parameters by the chain rule): no trailing block or a dense one where that
    /// pays (see [`EXACT_GRADIENT_MIN_DENSE`] and [`EXACT_GRADIENT_SMALL_DENSE`]; structured
    /// terms also [`STRUCTURED_THETA_PER_PARAMETER`]). InstEval (1,142) then takes 5 gradients instead of 45
    /// evaluations by BOBYQA, a 10⁶-row crossed model (3,700) 4 instead of 27.
    pub fn exact_gradient_pays(&self) -> bool {
        if !self.re.all_unstructured()
            && (self.re.n_par() < EXACT_GRADIENT_MIN_PARAMETERS
                || self.re.n_theta() > STRUCTURED_THETA_PER_PARAMETER * self.re.n_par())
        {
            return false;
        }
        match &self.chol.trailing {
            Trailing::Empty => true,
            Trailing::Dense(_) => {
                let order = self.cp.layout.m;
                order >= EXACT_GRADIENT_MIN_DENSE
                    || order <= EXACT_GRADIENT_SMALL_DENSE
                    || self.re.n_par() >= EXACT_GRADIENT_MIN_PARAMETERS
            }
            _ => false,
        }
    }

    /// The gradient of the criterion (REML or ML as chosen) over θ at the last θ set, or
    /// `None` where it is not offered (see the module documentation).
    pub fn criterion_gradient(&self) -> Result<Option<Vec<f64>>> {
        let Some(t_inverse) = self.relative_factor_inverses() else {
            return Ok(None);
        };
        let dense = match &self.chol.trailing {
            Trailing::Dense(d) => Some(d),
            _ => None,
        };
        let cp = &self.cp;
        let chol = &self.chol;
        let layout = &cp.layout;
        let (p, pf, q0, m) = (cp.p, cp.pf(), cp.q0, layout.m);
        let n = self.spec.n as f64;
        let weight: Vec<f64> = (0..pf)
            .map(|f| match (f < p, self.reml) {
                (true, true) => 1.0,
                (true, false) => 0.0,
                (false, true) => n - p as f64,
                (false, false) => n,
            })
            .collect();

        // Σ_levels (C⁻¹)_ll per block.
        let par = dense.map_or(Par::Seq, |d| d.par());
        let diagonal = omega_inverse_diagonal(cp, &self.re, chol, &self.lambda, par)?;
        let mut q_sums: Vec<Vec<f64>> = Vec::with_capacity(diagonal.len());
        for (block, levels) in self.re.blocks.iter().zip(&diagonal) {
            let q2 = block.q * block.q;
            let mut sum = vec![0.0; q2];
            for level in levels.chunks_exact(q2) {
                for (acc, v) in sum.iter_mut().zip(level) {
                    *acc += v;
                }
            }
            q_sums.push(sum);
        }

        // + Σ_f a_f w_lf w_lf' with w = L_FF⁻¹ v for each row v of C⁻¹B = [x1; x2].
        // Trailing rows: x2 = S⁻¹ G' (G' is stored before any solve).
        let mut x2 = chol.g[..m * pf].to_vec();
        if let Some(d) = dense {
            for col in x2.chunks_exact_mut(m) {
                d.solve_in_place(col);
            }
        }
        let max_q = self.re.blocks.iter().map(|b| b.q).max().unwrap_or(1);
        let mut rows = vec![0.0; max_q * pf];
        for t in 0..layout.n_nodes() {
            let (off, q) = (layout.node_offset[t], layout.node_q(t));
            for r in 0..q {
                let row = &mut rows[r * pf..(r + 1) * pf];
                for (f, v) in row.iter_mut().enumerate() {
                    *v = x2[f * m + off + r];
                }
                small::solve_lower(&chol.lff, pf, row);
            }
            let b = layout.node_block[t] as usize;
            add_weighted_outer(&mut q_sums[b], q, &rows[..q * pf], pf, &weight);
        }
        // Leading rows: x1 = L11⁻ᵀ (LF1' − L21' x2), level by level.
        let mut rhs = vec![0.0; q0];
        for j in 0..cp.l0 {
            let l11 = &chol.l11[j * q0 * q0..(j + 1) * q0 * q0];
            let lf = &chol.lf1[j * q0 * pf..(j + 1) * q0 * pf];
            for f in 0..pf {
                for (k, r) in rhs.iter_mut().enumerate() {
                    *r = lf[k * pf + f];
                }
                for (off, qr, blk) in cp.leading_blocks(j, &chol.l21) {
                    for (k, r) in rhs.iter_mut().enumerate() {
                        for rr in 0..qr {
                            *r -= blk[k * qr + rr] * x2[f * m + off + rr];
                        }
                    }
                }
                small::solve_lower_t(l11, q0, &mut rhs);
                for k in 0..q0 {
                    rows[k * pf + f] = rhs[k];
                }
            }
            for k in 0..q0 {
                small::solve_lower(&chol.lff, pf, &mut rows[k * pf..(k + 1) * pf]);
            }
            add_weighted_outer(&mut q_sums[0], q0, &rows[..q0 * pf], pf, &weight);
        }

        let gradient = self
            .re
            .theta_pos
            .iter()
            .map(|pos| {
                let block = &self.re.blocks[pos.block];
                let q = block.q;
                let tinv = &t_inverse[pos.block];
                let sum = &q_sums[pos.block];
                let (r, c) = (pos.row, pos.col);
                let q_t: f64 = (0..q).map(|i| sum[i * q + c] * tinv[r * q + i]).sum();
                2.0 * block.n_levels as f64 * tinv[r * q + c] - 2.0 * q_t
            })
            .collect();
        Ok(Some(gradient))
    }

    /// `T_b⁻¹` for every block where the exact gradient (and the average-information matrix of
    /// `lmm_information`) is offered at the last θ set: a trailing block that is empty or
    /// dense, no zero on the diagonal of any `T_b`; `None` elsewhere.
    pub(super) fn relative_factor_inverses(&self) -> Option<Vec<Vec<f64>>> {
        if matches!(self.chol.trailing, Trailing::Sparse(_)) {
            return None;
        }
        let mut t_inverse = Vec::with_capacity(self.re.blocks.len());
        for (b, block) in self.re.blocks.iter().enumerate() {
            let q = block.q;
            let t = &self.lambda[b];
            if (0..q).any(|i| t[i * q + i] == 0.0) {
                return None;
            }
            let mut inv = vec![0.0; q * q];
            small::lower_inverse(t, q, &mut inv);
            t_inverse.push(inv);
        }
        Some(t_inverse)
    }
}

/// `sum += Σ_f a_f r_f r_f'` for the `q` rows `rows` (row-major, `pf` values each).
fn add_weighted_outer(sum: &mut [f64], q: usize, rows: &[f64], pf: usize, weight: &[f64]) {
    for a in 0..q {
        for b in 0..q {
            let v: f64 = (0..pf)
                .map(|f| weight[f] * rows[a * pf + f] * rows[b * pf + f])
                .sum();
            sum[b * q + a] += v;
        }
    }
}
