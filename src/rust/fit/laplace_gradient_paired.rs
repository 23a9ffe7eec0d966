//! The exact gradient of the Laplace deviance when the zero-inflation logit has random effects
//! too, so that every row has two linear predictors `ηᵢ = (ηᵢ, ρᵢ)` (glmmTMB's
//! `ziformula = ~ … + (… | g)`); [`super::laplace_gradient`] is the one-predictor case.
//!
//! With `A` the `2n × q` map of the spherical random effects to the two predictors (rows
//! `Aᵢ`, 2 × q), each row's score `sᵢ = ∂(aℓ)ᵢ/∂ηᵢ` (a 2-vector) and observed information
//! `Wᵢ = −∂²(aℓ)ᵢ/∂ηᵢ²` (2 × 2),
//!
//! ```text
//!   D(ψ) = −2 Σ aᵢℓᵢ + ‖û‖² + log|H|,   H = I + Σᵢ Aᵢᵀ Wᵢ Aᵢ,   û = Σᵢ Aᵢᵀ sᵢ.
//! ```
//!
//! As in one dimension, only the explicit dependence of the first two terms counts, and
//! `log|H|` moves directly and through `û` (`dû = H⁻¹ Σᵢ Aᵢᵀ(−Wᵢ dηᵢ⁰ + dsᵢ) + dAᵀs`).
//! With the 2 × 2 leverages `Cᵢ = Aᵢ H⁻¹ Aᵢᵀ`, `vᵢ,ₖ = tr(Cᵢ ∂Wᵢ/∂ηᵢ,ₖ)`, `r = H⁻¹ Σ Aᵢᵀ vᵢ`,
//! `tᵢ = Aᵢ r` and `eᵢ = −2sᵢ + vᵢ − Wᵢ tᵢ`:
//!
//! ```text
//!   ∂D/∂β_j    = Σᵢ X_ij eᵢ,η             ∂D/∂b_zi,e = Σᵢ D_ie eᵢ,ρ
//!   ∂D/∂b_d,e  = Σᵢ D_ie (−2 ∂(aℓ)ᵢ/∂log φ + tr(Cᵢ ∂Wᵢ/∂log φ) + tᵢᵀ ∂sᵢ/∂log φ)
//!   ∂D/∂θ_k    = Σᵢ z̃ᵢ,ᵣ [eᵢ,ₚ ûᵢ,꜀ + sᵢ,ₚ rᵢ,꜀ + 2 Σ_p′ Wᵢ[p, p′] (H⁻¹Aᵢᵀ)ᵢ,꜀,p′]
//! ```
//!
//! where `θ_k` sits at row `r`, column `c` of the `T` of a block of predictor `p`. The row's
//! score, information and the information's derivatives in `η` and `ρ` (third derivatives of
//! `ℓ`) are in closed form ([`Response::paired_row_jet`]), and so are those in `log φ` for the
//! negative binomials ([`crate::model::density::Density::dispersion_slopes`]); for another
//! density they would be central differences of the row's value, score and information
//! ([`Response::paired_row_terms`]), about 1e-9 relative.
use super::glmm::GeneralizedLinearMixedModel;
use super::laplace_gradient::{design_rows, par_gradient, DenseLayout};
use super::response::{Response, ResponseFamily};
use crate::error::{invalid, MixedError, Result};
use crate::linalg::spd_inverse::{par_for, spd_inverse};
use crate::linpred;
use crate::spec::Predictor;
use faer::Mat;

/// Step of the row differences in `log φ`, relative to its value (at least 1).
const PAIRED_ROW_STEP: f64 = 1e-4;

/// What the gradient needs of one row.
#[derive(Debug, Clone, Copy, Default)]
struct PairedRow {
    /// Score in `(η, ρ)`.
    s: [f64; 2],
    /// Observed information `(ηη, ηρ, ρρ)`.
    w: [f64; 3],
    /// Its derivatives in `η` and `ρ`.
    w_pred: [[f64; 3]; 2],
    /// Derivatives in `log φ` of `aℓ`, the score and the information (zeros without one).
    l_phi: f64,
    s_phi: [f64; 2],
    w_phi: [f64; 3],
}

/// `(x, y)` of a symmetric 2 × 2 `(xx, xy, yy)` at predictor indices `a`, `b`.
#[inline]
fn entry(w: &[f64; 3], a: usize, b: usize) -> f64 {
    w[a + b]
}

/// `tr(C M)` for symmetric 2 × 2 `C` and `M`, both as `(xx, xy, yy)`.
#[inline]
fn trace_product(c: &[f64; 3], m: &[f64; 3]) -> f64 {
    c[0] * m[0] + 2.0 * c[1] * m[1] + c[2] * m[2]
}

/// Row `i`'s [`PairedRow`] at linear predictor `eta` (the response's current φᵢ, πᵢ, which
/// include the zero-inflation random effects at the modes): the score, information and its
/// derivatives in `(η, ρ)` and, where the density has them, `log φ` in closed form
/// ([`Response::paired_row_jet`]); otherwise those in `log φ` (with a dispersion) as central
/// differences of [`Response::paired_row_terms`].
fn paired_row(
    response: &Response<'_>,
    i: usize,
    eta: f64,
    with_dispersion: bool,
) -> Option<PairedRow> {
    let jet = response.paired_row_jet(i, eta)?;
    let mut out = PairedRow {
        s: jet.s,
        w: jet.w,
        w_pred: [jet.w_eta, jet.w_rho],
        ..PairedRow::default()
    };
    if let (true, Some(d)) = (with_dispersion, jet.dispersion) {
        (out.l_phi, out.s_phi, out.w_phi) = (d.l, d.s, d.w);
    } else if with_dispersion {
        let (log_phi, rho) = response.row_parts(i);
        let at = |lp: f64| response.paired_row_terms(i, eta, lp, rho);
        let h = PAIRED_ROW_STEP * log_phi.abs().max(1.0);
        let (up, dn) = (at(log_phi + h)?, at(log_phi - h)?);
        let difference = |p: f64, m: f64| (p - m) / (2.0 * h);
        out.l_phi = difference(up.0, dn.0);
        out.s_phi = [0, 1].map(|k| difference(up.1[k], dn.1[k]));
        out.w_phi = [0, 1, 2].map(|k| difference(up.2[k], dn.2[k]));
    }
    Some(out)
}

impl GeneralizedLinearMixedModel<'_> {
    /// The Laplace deviance at `pars = (par, extra, β)` and its gradient for a model with random
    /// effects in the zero-inflation logit (see the module docs); the model is left at the
    /// modes of `pars`. The caller checks the size ([`Self::has_laplace_gradient`]).
    pub(super) fn paired_laplace_gradient(&mut self, pars: &[f64]) -> Result<(f64, Vec<f64>)> {
        let f = self.objective_theta_beta(pars, None)?;
        let spec = &self.spec;
        let re = &self.re;
        let n = spec.n;
        let p = spec.p;
        let nth_par = re.n_par();
        let ne = self.n_extra();
        let layout = DenseLayout::new(re);
        let (q, m) = (layout.q, layout.per_row);
        let rows = design_rows(spec, re, &self.pirls.lambda, &layout);
        // The predictor (0: η, 1: ρ) of each of a row's entries (blocks in order).
        let pred: Vec<usize> = re
            .blocks
            .iter()
            .flat_map(|b| {
                let k = usize::from(b.predictor == Predictor::ZeroInflation);
                std::iter::repeat_n(k, b.q)
            })
            .collect();
        let u: Vec<f64> = linpred::split_blocks(
            re,
            &self.pirls.joint_cp.layout,
            &self.pirls.u1,
            &self.pirls.u2,
        )
        .concat();
        let ResponseFamily::Extended(fam) = self.response.family() else {
            return invalid("internal: a paired gradient for a family without zero inflation");
        };
        let with_dispersion = fam.disp.is_some();
        let mut rd = Vec::with_capacity(n);
        for i in 0..n {
            match paired_row(&self.response, i, self.pirls.eta[i], with_dispersion) {
                Some(d) => rd.push(d),
                None => return invalid("the gradient's row derivatives are not finite"),
            }
        }
        let row = |i: usize| (&rows.index[i * m..(i + 1) * m], &rows.a[i * m..(i + 1) * m]);
        // H = I + Σ Aᵢᵀ Wᵢ Aᵢ, densely.
        let mut h = vec![0.0; q * q];
        for (i, d) in rd.iter().enumerate() {
            let (idx, a) = row(i);
            for x in 0..m {
                for y in 0..m {
                    h[idx[y] * q + idx[x]] += a[x] * entry(&d.w, pred[x], pred[y]) * a[y];
                }
            }
        }
        for k in 0..q {
            h[k * q + k] += 1.0;
        }
        let hinv = spd_inverse(
            Mat::<f64>::from_fn(q, q, |r, c| h[c * q + r]),
            par_for(q, self.pirls.par),
        )
        .ok_or_else(|| MixedError::Pirls("H is not positive definite".into()))?;
        // Per row: (H⁻¹Aᵢᵀ) at the row's entries by predictor, the leverages Cᵢ and vᵢ.
        let mut leverage = vec![[0.0; 3]; n];
        let mut atv = vec![0.0; q];
        for i in 0..n {
            let (idx, a) = row(i);
            let mut c = [0.0; 3];
            for x in 0..m {
                let mut ha = [0.0; 2];
                for y in 0..m {
                    ha[pred[y]] += hinv[(idx[x], idx[y])] * a[y];
                }
                // C[pred x, p′] += a_x (H⁻¹Aᵀ)[x, p′], kept as (ηη, ηρ, ρρ).
                if pred[x] == 0 {
                    c[0] += a[x] * ha[0];
                    c[1] += a[x] * ha[1];
                } else {
                    c[2] += a[x] * ha[1];
                }
            }
            leverage[i] = c;
            let d = &rd[i];
            let v = [
                trace_product(&c, &d.w_pred[0]),
                trace_product(&c, &d.w_pred[1]),
            ];
            for x in 0..m {
                atv[idx[x]] += a[x] * v[pred[x]];
            }
        }
        let r: Vec<f64> = (0..q)
            .map(|x| (0..q).map(|y| hinv[(x, y)] * atv[y]).sum())
            .collect();
        let t: Vec<[f64; 2]> = (0..n)
            .map(|i| {
                let (idx, a) = row(i);
                let mut ti = [0.0; 2];
                for x in 0..m {
                    ti[pred[x]] += a[x] * r[idx[x]];
                }
                ti
            })
            .collect();
        // eᵢ = −2sᵢ + vᵢ − Wᵢtᵢ, per predictor.
        let e: Vec<[f64; 2]> = (0..n)
            .map(|i| {
                let d = &rd[i];
                let c = &leverage[i];
                [0, 1].map(|k| {
                    let v = trace_product(c, &d.w_pred[k]);
                    let wt = entry(&d.w, k, 0) * t[i][0] + entry(&d.w, k, 1) * t[i][1];
                    -2.0 * d.s[k] + v - wt
                })
            })
            .collect();
        let mut grad = vec![0.0; nth_par + ne + p];
        for j in 0..p {
            let col = &spec.x[j * n..(j + 1) * n];
            grad[nth_par + ne + j] = col.iter().zip(&e).map(|(x, e)| x * e[0]).sum();
        }
        let mut k0 = nth_par;
        if let Some(model) = &fam.disp {
            for col in 0..model.k {
                let d = &model.x[col * n..(col + 1) * n];
                grad[k0 + col] = (0..n)
                    .map(|i| {
                        let g = &rd[i];
                        let through_mode = t[i][0] * g.s_phi[0] + t[i][1] * g.s_phi[1];
                        d[i] * (-2.0 * g.l_phi
                            + trace_product(&leverage[i], &g.w_phi)
                            + through_mode)
                    })
                    .sum();
            }
            k0 += model.k;
        }
        if let Some(model) = &fam.zi {
            for col in 0..model.k {
                let d = &model.x[col * n..(col + 1) * n];
                grad[k0 + col] = d.iter().zip(&e).map(|(x, e)| x * e[1]).sum();
            }
        }
        // θ: every element of every block's T.
        let mut block_start = Vec::with_capacity(re.blocks.len());
        let mut acc = 0;
        for b in &re.blocks {
            block_start.push(acc);
            acc += b.q;
        }
        let gtheta: Vec<f64> = re
            .theta_pos
            .iter()
            .map(|pos| {
                let (col_r, col_c) = (
                    block_start[pos.block] + pos.row,
                    block_start[pos.block] + pos.col,
                );
                let pb = pred[col_c];
                let mut g = 0.0;
                for i in 0..n {
                    let zr = rows.z[i * m + col_r];
                    if zr == 0.0 {
                        continue;
                    }
                    let ic = rows.index[i * m + col_c];
                    let (idx, a) = row(i);
                    let mut ha = [0.0; 2];
                    for x in 0..m {
                        ha[pred[x]] += hinv[(ic, idx[x])] * a[x];
                    }
                    let d = &rd[i];
                    let w_h = entry(&d.w, pb, 0) * ha[0] + entry(&d.w, pb, 1) * ha[1];
                    g += zr * (e[i][pb] * u[ic] + d.s[pb] * r[ic] + 2.0 * w_h);
                }
                g
            })
            .collect();
        par_gradient(re, &pars[..nth_par], &gtheta, &mut grad[..nth_par]);
        Ok((f, grad))
    }
}
