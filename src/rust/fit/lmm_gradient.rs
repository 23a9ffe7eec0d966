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
//! The diagonal blocks of `C⁻¹` come from the blocked factor: `S⁻¹` (dense, from `L22`) for the
//! trailing levels, `L11⁻ᵀ (I + L21_j' S⁻¹ L21_j) L11⁻¹` for leading level `j`. The whole inverse
//! of a dense `S` costs about two factorizations, so the gradient costs about three evaluations
//! of the criterion, whatever the number of parameters. It needs every `T_b` invertible (no
//! zero on a diagonal: at such a point the deviance is not differentiable in the usual sense
//! along the sign-symmetric direction), unstructured terms (θ is the optimizer's parameter)
//! and a trailing block that is empty or dense; otherwise it is not offered.
use super::lmm::LinearMixedModel;
use crate::blocks::CrossProducts;
use crate::chol::BlockedCholesky;
use crate::error::Result;
use crate::small;
use crate::trailing::Trailing;
use rayon::prelude::*;

/// Smallest dense trailing block for which the search is finished with the exact gradient
/// (see `optim::minimize_within`). There an evaluation is dominated by the block's
/// factorization and a gradient costs about two to three evaluations; below it evaluations
/// are cheap and BOBYQA's own end costs little.
const EXACT_GRADIENT_MIN_DENSE: usize = 1000;

impl LinearMixedModel<'_> {
    /// Whether the optimizer should finish with [`Self::criterion_gradient`]: unstructured
    /// terms and a dense trailing block of order at least [`EXACT_GRADIENT_MIN_DENSE`]. On
    /// InstEval (1,142) that halves the evaluations (45 to 20, 0.62 to 0.45 s); on a 10⁶-row
    /// crossed model (3,700) it halves them too, at the same time (a gradient there costs
    /// about 2.5 evaluations).
    pub fn exact_gradient_pays(&self) -> bool {
        let dense_order = match &self.chol.trailing {
            Trailing::Dense(_) => self.cp.layout.m,
            _ => 0,
        };
        self.re.all_unstructured() && dense_order >= EXACT_GRADIENT_MIN_DENSE
    }

    /// The gradient of the criterion (REML or ML as chosen) over θ at the last θ set, or
    /// `None` where it is not offered (see the module documentation).
    pub fn criterion_gradient(&self) -> Result<Option<Vec<f64>>> {
        if !self.re.all_unstructured() {
            return Ok(None);
        }
        let dense = match &self.chol.trailing {
            Trailing::Empty => None,
            Trailing::Dense(d) => Some(d),
            Trailing::Sparse(_) => return Ok(None),
        };
        let mut t_inverse = Vec::with_capacity(self.re.blocks.len());
        for (b, block) in self.re.blocks.iter().enumerate() {
            let q = block.q;
            let t = &self.lambda[b];
            if (0..q).any(|i| t[i * q + i] == 0.0) {
                return Ok(None);
            }
            t_inverse.push(lower_inverse(t, q));
        }
        let s_inverse = match dense {
            Some(d) => d.inverse()?,
            None => Vec::new(),
        };
        let cp = &self.cp;
        let chol = &self.chol;
        let layout = &cp.layout;
        let (p, pf, m) = (cp.p, cp.pf(), layout.m);
        let n = self.spec.n as f64;
        let weight: Vec<f64> = (0..pf)
            .map(|f| match (f < p, self.reml) {
                (true, true) => 1.0,
                (true, false) => 0.0,
                (false, true) => n - p as f64,
                (false, false) => n,
            })
            .collect();
        let sinv = |r: usize, c: usize| {
            if r >= c {
                s_inverse[c * m + r]
            } else {
                s_inverse[r * m + c]
            }
        };
        let mut q_sums: Vec<Vec<f64>> = self
            .re
            .blocks
            .iter()
            .map(|b| vec![0.0; b.q * b.q])
            .collect();

        // Trailing rows of C⁻¹B = [x1; x2]: x2 = S⁻¹ G' (G' is stored before any solve).
        let mut x2 = chol.g[..m * pf].to_vec();
        if let Some(d) = dense {
            for col in x2.chunks_exact_mut(m) {
                d.solve_in_place(col);
            }
        }
        // `w = L_FF⁻¹ v` for each row `v` of C⁻¹B, accumulated into its block's sum.
        let lff = &chol.lff;
        let mut row = vec![0.0; pf];
        for t in 0..layout.n_nodes() {
            let (off, q) = (layout.node_offset[t], layout.node_q(t));
            let b = layout.node_block[t] as usize;
            let mut node_rows = vec![0.0; pf * q];
            for r in 0..q {
                for f in 0..pf {
                    row[f] = x2[f * m + off + r];
                }
                small::solve_lower(lff, pf, &mut row);
                node_rows[r * pf..(r + 1) * pf].copy_from_slice(&row);
            }
            let sum = &mut q_sums[b];
            add_weighted_outer(sum, q, &node_rows, pf, &weight);
            for c in 0..q {
                for r in 0..q {
                    sum[c * q + r] += sinv(off + r, off + c);
                }
            }
        }

        // Leading levels, in fixed chunks (summed in chunk order: the same bits whatever the
        // number of threads).
        let leading = LeadingLevels {
            cp,
            chol,
            x2: &x2,
            s_inverse: &s_inverse,
            weight: &weight,
        };
        let chunks: Vec<std::ops::Range<usize>> = (0..cp.l0)
            .step_by(LEVEL_CHUNK)
            .map(|j| j..(j + LEVEL_CHUNK).min(cp.l0))
            .collect();
        let threads = dense.map_or(1, |d| d.threads());
        let partial: Vec<Vec<f64>> = if threads > 1 && chunks.len() > 1 {
            chunks.into_par_iter().map(|r| leading.sum(r)).collect()
        } else {
            chunks.into_iter().map(|r| leading.sum(r)).collect()
        };
        for part in partial {
            for (acc, v) in q_sums[0].iter_mut().zip(part) {
                *acc += v;
            }
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
}

/// Leading levels per piece of work handed to a thread.
const LEVEL_CHUNK: usize = 256;

/// What the leading levels' share of the gradient reads.
struct LeadingLevels<'m> {
    cp: &'m CrossProducts,
    chol: &'m BlockedCholesky,
    /// Trailing rows of `C⁻¹B` (`m × pf`, column-major).
    x2: &'m [f64],
    /// Lower triangle of `S⁻¹` (empty without a trailing block).
    s_inverse: &'m [f64],
    /// Coefficients `a_f` of `W`'s columns.
    weight: &'m [f64],
}

impl LeadingLevels<'_> {
    /// `Σ_j [(C⁻¹)_jj + Σ_f a_f w_jf w_jf']` over the leading levels `levels` (`q0 × q0`).
    fn sum(&self, levels: std::ops::Range<usize>) -> Vec<f64> {
        let (cp, chol) = (self.cp, self.chol);
        let layout = &cp.layout;
        let (pf, q0, m) = (cp.pf(), cp.q0, layout.m);
        let mut sum = vec![0.0; q0 * q0];
        let mut local_index: Vec<usize> = Vec::new();
        let mut local_l21: Vec<f64> = Vec::new();
        let mut s_l: Vec<f64> = Vec::new();
        let mut middle = vec![0.0; q0 * q0];
        let mut rows = vec![0.0; q0 * pf];
        for j in levels {
            let l11 = &chol.l11[j * q0 * q0..(j + 1) * q0 * q0];
            let entries = cp.a21_ptr[j]..cp.a21_ptr[j + 1];
            // L21_j as a dense `w × q0` block over the trailing coordinates it touches.
            local_index.clear();
            for e in entries.clone() {
                let t = cp.a21_node[e] as usize;
                local_index.extend(layout.node_offset[t]..layout.node_offset[t + 1]);
            }
            let w = local_index.len();
            local_l21.clear();
            local_l21.resize(w * q0, 0.0);
            let mut at = 0;
            for e in entries {
                let qr = layout.node_q(cp.a21_node[e] as usize);
                let blk = &chol.l21[cp.a21_val_off[e]..cp.a21_val_off[e + 1]];
                for k in 0..q0 {
                    local_l21[k * w + at..k * w + at + qr]
                        .copy_from_slice(&blk[k * qr..(k + 1) * qr]);
                }
                at += qr;
            }
            // I + L21_j' S⁻¹ L21_j
            middle.iter_mut().for_each(|v| *v = 0.0);
            for k in 0..q0 {
                middle[k * q0 + k] = 1.0;
            }
            if w > 0 {
                s_l.clear();
                s_l.resize(w * q0, 0.0);
                // The coordinates ascend, so column `ib` of the lower triangle holds every
                // `ia ≥ ib` in order (one pass down each column).
                for (b, &ib) in local_index.iter().enumerate() {
                    let column = &self.s_inverse[ib * m..(ib + 1) * m];
                    for (a, &ia) in local_index.iter().enumerate().skip(b) {
                        let v = column[ia];
                        for k in 0..q0 {
                            s_l[k * w + a] += v * local_l21[k * w + b];
                            if a != b {
                                s_l[k * w + b] += v * local_l21[k * w + a];
                            }
                        }
                    }
                }
                for a in 0..q0 {
                    for b in 0..q0 {
                        let v: f64 = (0..w).map(|i| local_l21[a * w + i] * s_l[b * w + i]).sum();
                        middle[b * q0 + a] += v;
                    }
                }
            }
            // (C⁻¹)_jj = L11⁻ᵀ (I + L21'S⁻¹L21) L11⁻¹
            let l11_inv = lower_inverse(l11, q0);
            for a in 0..q0 {
                for b in 0..q0 {
                    let mut v = 0.0;
                    for x in 0..q0 {
                        for y in 0..q0 {
                            v += l11_inv[a * q0 + x] * middle[y * q0 + x] * l11_inv[b * q0 + y];
                        }
                    }
                    sum[b * q0 + a] += v;
                }
            }
            // Rows of x1 = L11⁻ᵀ (LF1' − L21' x2), then w = L_FF⁻¹ v.
            let lf = &chol.lf1[j * q0 * pf..(j + 1) * q0 * pf];
            let mut rhs = vec![0.0; q0];
            for f in 0..pf {
                for (k, r) in rhs.iter_mut().enumerate() {
                    let lk = &local_l21[k * w..(k + 1) * w];
                    let mut v = lf[k * pf + f];
                    for (&i, &l) in local_index.iter().zip(lk) {
                        v -= l * self.x2[f * m + i];
                    }
                    *r = v;
                }
                small::solve_lower_t(l11, q0, &mut rhs);
                for k in 0..q0 {
                    rows[k * pf + f] = rhs[k];
                }
            }
            for k in 0..q0 {
                small::solve_lower(&chol.lff, pf, &mut rows[k * pf..(k + 1) * pf]);
            }
            add_weighted_outer(&mut sum, q0, &rows, pf, self.weight);
        }
        sum
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

/// The inverse of a lower-triangular `q × q` column-major matrix with a nonzero diagonal.
fn lower_inverse(l: &[f64], q: usize) -> Vec<f64> {
    let mut inv = vec![0.0; q * q];
    for c in 0..q {
        let col = &mut inv[c * q..(c + 1) * q];
        col[c] = 1.0;
        small::solve_lower(l, q, col);
    }
    inv
}
