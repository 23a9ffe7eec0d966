//! The average-information approximation of the Hessian of a linear mixed model's profiled
//! deviance over θ (the matrix of AI-REML, Gilmour, Thompson and Cullis 1995, profiled over σ²).
//!
//! With `V = σ²(W⁻¹ + ZΛΛ'Z')`, `P` the REML projection and `V_k = ∂V/∂θ_k`, the observed and the
//! expected information of `−2ℓ` average to `y'P V_i P V_j P y`. Every piece comes from the
//! factor without the rows: `P y = W e / σ²` (conditional residuals `e`), and since
//! `Λ'Z'W e = û` and `∂(ΛΛ')/∂θ_k = Λ (D_k + D_k') Λ'` (`D_k = Λ⁻¹ ∂Λ/∂θ_k`, see
//! `lmm_gradient`),
//!
//! ```text
//!   V_k P y = ZΛ s_k,   s_k = (D_k + D_k') û,
//!   y'P V_i P V_j P y = (s_i's_j − s_i' (Ω_X⁻¹)_uu s_j) / σ²,
//! ```
//!
//! because `P ZΛ s` is `W/σ²` times the conditional residual of the mixed-model equations with
//! "response" `ZΛ s`, whose right-hand side is `Ω_X [s; 0] − [s; 0]`. The σ² entries are
//! `s_k'û / σ⁴` and `r² / σ⁶ = ν / σ⁴` (`ν = n − p` under REML, `n` under ML), and profiling σ²
//! out leaves the Schur complement
//!
//! ```text
//!   H_ij ≈ (s_i's_j − s_i' (Ω_X⁻¹)_uu s_j) / σ² − (s_i'û)(s_j'û) / (ν σ⁴),   σ² = r² / ν.
//! ```
//!
//! It is positive semi-definite (`(Ω_X⁻¹)_uu ≼ I`) and costs one solve with the factor per
//! parameter, against a whole gradient per parameter for finite differences of the gradient.
//! Near the optimum it differs from the Hessian by terms whose expectation is zero, so Newton
//! steps with it converge fast but linearly. Offered where the exact gradient is.
use super::lmm::LinearMixedModel;
use crate::error::Result;
use crate::small;
use crate::trailing::Trailing;

impl LinearMixedModel<'_> {
    /// The average-information matrix (`k × k`, column-major) of the criterion at the last θ
    /// set, or `None` where the exact gradient is not offered (see `criterion_gradient`).
    pub fn average_information(&mut self) -> Result<Option<Vec<f64>>> {
        let Some(t_inverse) = self.relative_factor_inverses() else {
            return Ok(None);
        };
        let (_, u1, u2) = self.chol.solve(&self.cp);
        let cp = &self.cp;
        let chol = &self.chol;
        let dense = match &chol.trailing {
            Trailing::Dense(d) => Some(&**d),
            _ => None,
        };
        let layout = &cp.layout;
        let (p, pf, q0, m, l0) = (cp.p, cp.pf(), cp.q0, layout.m, cp.l0);
        let n_lead = l0 * q0;
        let u_hat: Vec<f64> = u1.iter().chain(&u2).copied().collect();

        // s_k = (D_k + D_k') û on θ_k's block: at each level, column r of T⁻¹ times û[c] plus
        // (T⁻¹[:, r] · û) on coordinate c.
        let k_count = self.re.theta_pos.len();
        let mut s_vecs: Vec<Vec<f64>> = Vec::with_capacity(k_count);
        for pos in &self.re.theta_pos {
            let block = &self.re.blocks[pos.block];
            let q = block.q;
            let tinv = &t_inverse[pos.block];
            let col_r = &tinv[pos.row * q..(pos.row + 1) * q];
            let mut s = vec![0.0; n_lead + m];
            for j in 0..block.n_levels {
                let off = if pos.block == 0 {
                    j * q0
                } else {
                    n_lead + layout.node_offset[layout.block_node_base[pos.block] + j]
                };
                let u = &u_hat[off..off + q];
                let dot: f64 = col_r.iter().zip(u).map(|(a, b)| a * b).sum();
                for (i, a) in col_r.iter().enumerate() {
                    s[off + i] += a * u[pos.col];
                }
                s[off + pos.col] += dot;
            }
            s_vecs.push(s);
        }

        // Y = S⁻¹ G_X' (the fixed effects' columns), for the solves with Ω_X.
        let mut y_x = chol.g[..m * p].to_vec();
        if let Some(d) = dense {
            for col in y_x.chunks_exact_mut(m) {
                d.solve_in_place(col);
            }
        }
        let mut l_xx = vec![0.0; p * p];
        for c in 0..p {
            for r in c..p {
                l_xx[c * p + r] = chol.lff[c * pf + r];
            }
        }

        let solves: Vec<Vec<f64>> = s_vecs
            .iter()
            .map(|s| omega_x_solve(self, dense, &y_x, &l_xx, s))
            .collect();

        let nu = if self.reml {
            self.spec.n as f64 - p as f64
        } else {
            self.spec.n as f64
        };
        let r = chol.pwrss_sqrt(cp);
        let sigma2 = r * r / nu;
        let su: Vec<f64> = s_vecs
            .iter()
            .map(|s| s.iter().zip(&u_hat).map(|(a, b)| a * b).sum())
            .collect();
        let mut h = vec![0.0; k_count * k_count];
        for i in 0..k_count {
            for j in 0..=i {
                let ss: f64 = s_vecs[i].iter().zip(&s_vecs[j]).map(|(a, b)| a * b).sum();
                let sx_ij: f64 = s_vecs[i].iter().zip(&solves[j]).map(|(a, b)| a * b).sum();
                let sx_ji: f64 = s_vecs[j].iter().zip(&solves[i]).map(|(a, b)| a * b).sum();
                let v =
                    (ss - 0.5 * (sx_ij + sx_ji)) / sigma2 - su[i] * su[j] / (nu * sigma2 * sigma2);
                h[j * k_count + i] = v;
                h[i * k_count + j] = v;
            }
        }
        Ok(Some(h))
    }
}

/// `(Ω_X⁻¹)_uu s`: the random-effects part of the solution of `Ω_X x = [s; 0]`, by the blocked
/// factor (`L_F1`, `G` and `L_XX` are the fixed effects' rows of the factor, `y_x = S⁻¹ G_X'`):
///
/// ```text
///   z1 = L11⁻¹ s1,  t2 = s2 − L21 z1,  w2 = S⁻¹ t2,  x_X = L_XX⁻ᵀ L_XX⁻¹ (−L_X1 z1 − G_X w2),
///   x2 = w2 − y_x x_X,  x1 = L11⁻ᵀ (z1 − L21' x2 − L_X1' x_X).
/// ```
fn omega_x_solve(
    model: &LinearMixedModel<'_>,
    dense: Option<&crate::trailing::dense::DenseTrailing>,
    y_x: &[f64],
    l_xx: &[f64],
    s: &[f64],
) -> Vec<f64> {
    let cp = &model.cp;
    let chol = &model.chol;
    let layout = &cp.layout;
    let (p, pf, q0, m, l0) = (cp.p, cp.pf(), cp.q0, layout.m, cp.l0);
    let n_lead = l0 * q0;
    let mut z1 = s[..n_lead].to_vec();
    let mut w2 = s[n_lead..].to_vec();
    for j in 0..l0 {
        let zj = &mut z1[j * q0..(j + 1) * q0];
        small::solve_lower(&chol.l11[j * q0 * q0..(j + 1) * q0 * q0], q0, zj);
        for (off, qr, blk) in cp.leading_blocks(j, &chol.l21) {
            for (k, z) in zj.iter().enumerate() {
                for rr in 0..qr {
                    w2[off + rr] -= blk[k * qr + rr] * z;
                }
            }
        }
    }
    if let Some(d) = dense {
        d.solve_in_place(&mut w2);
    }
    // x_X = L_XX⁻ᵀ L_XX⁻¹ (−L_X1 z1 − G_X w2).
    let mut x_x = vec![0.0; p];
    for (f, x) in x_x.iter_mut().enumerate() {
        let lead: f64 = (0..n_lead).map(|c| chol.lf1[c * pf + f] * z1[c]).sum();
        let trail: f64 = (0..m).map(|t| chol.g[f * m + t] * w2[t]).sum();
        *x = -lead - trail;
    }
    small::solve_lower(l_xx, p, &mut x_x);
    small::solve_lower_t(l_xx, p, &mut x_x);
    let mut x2 = w2;
    for (f, xf) in x_x.iter().enumerate() {
        for (x, y) in x2.iter_mut().zip(&y_x[f * m..(f + 1) * m]) {
            *x -= y * xf;
        }
    }
    let mut x1 = z1;
    for j in 0..l0 {
        let xj = &mut x1[j * q0..(j + 1) * q0];
        for (k, x) in xj.iter_mut().enumerate() {
            let col = &chol.lf1[(j * q0 + k) * pf..(j * q0 + k + 1) * pf];
            *x -= (0..p).map(|f| col[f] * x_x[f]).sum::<f64>();
        }
        for (off, qr, blk) in cp.leading_blocks(j, &chol.l21) {
            for (k, x) in xj.iter_mut().enumerate() {
                for rr in 0..qr {
                    *x -= blk[k * qr + rr] * x2[off + rr];
                }
            }
        }
        small::solve_lower_t(&chol.l11[j * q0 * q0..(j + 1) * q0 * q0], q0, xj);
    }
    x1.extend_from_slice(&x2);
    x1
}
