//! The blocked Cholesky factor of the penalized system, updated for each θ.
//!
//! With `Λ` from θ, the matrix to factor is
//!
//! ```text
//!   Ω(θ) = [ Λ'Z'WZΛ + I   Λ'Z'WF ]  = L L',   F = [X, y − offset]
//!          [ F'WZΛ         F'WF   ]
//! ```
//!
//! Random effects are split into the leading block (1) and the trailing blocks (2):
//!
//! ```text
//!   L11 = chol(Λ₁'A11Λ₁ + I)                  block diagonal, one q₀×q₀ factor per level
//!   L21 = Λ₂'A21Λ₁ L11⁻ᵀ                      same sparsity as A21
//!   S   = Λ₂'A22Λ₂ + I − L21 L21' = L22 L22'  dense or sparse (see `trailing`)
//!   LF1 = AF1Λ₁ L11⁻ᵀ
//!   G   = AF2Λ₂ − LF1 L21'                    (LF2 = G L22⁻ᵀ)
//!   LFF = chol(AFF − LF1 LF1' − G S⁻¹ G')
//! ```
//!
//! `LFF = [R_X' 0; c' r]`: `r²` is the penalized weighted residual sum of squares and `R_X` the
//! fixed-effects factor. Nothing here depends on the number of observations.
use crate::blocks::CrossProducts;
use crate::error::{MixedError, Result};
use crate::small;
use crate::terms::ReStructure;
use crate::trailing::{Trailing, TrailingChoice};
use faer::Par;

/// Factor storage, allocated once per model and overwritten for each θ.
#[derive(Debug)]
pub struct BlockedCholesky {
    /// `L11`: `l0` column-major `q0 × q0` lower-triangular blocks.
    pub l11: Vec<f64>,
    /// `L21` blocks, laid out as `CrossProducts::a21_vals`.
    pub l21: Vec<f64>,
    /// `LF1`: `(p+1) × (l0 q0)` column-major.
    pub lf1: Vec<f64>,
    /// `G'`: `m × (p+1)` column-major (the transpose of `G`, before any solve with `L22`).
    pub g: Vec<f64>,
    /// `LFF`: `(p+1) × (p+1)` column-major lower-triangular factor.
    pub lff: Vec<f64>,
    /// The trailing Schur complement and its factor.
    pub trailing: Trailing,
    /// `log|L11|²`.
    pub logdet_l11: f64,
    /// `log|L22|²`.
    pub logdet_l22: f64,
    tmp: Vec<f64>,
    blk: Vec<f64>,
    /// `LFF` before its factorization (see [`Self::update`]).
    lff_before: Vec<f64>,
    /// Whether a non-positive last pivot of `LFF` (the response's) is tolerated: set for the
    /// working response of a GLMM family with extra parameters, whose weights may be negative.
    pub response_pivot_optional: bool,
}

impl BlockedCholesky {
    /// Allocates every buffer and chooses the trailing storage.
    pub fn new(
        cp: &CrossProducts,
        re: &ReStructure,
        par: Par,
        choice: TrailingChoice,
    ) -> Result<Self> {
        let pf = cp.pf();
        let max_q = re.blocks.iter().map(|b| b.q).max().unwrap_or(1);
        let work = (max_q * max_q).max(pf * max_q);
        Ok(Self {
            l11: vec![0.0; cp.a11.len()],
            l21: vec![0.0; cp.a21_vals.len()],
            lf1: vec![0.0; cp.af1.len()],
            g: vec![0.0; cp.af2.len()],
            lff: vec![0.0; pf * pf],
            trailing: Trailing::choose(cp, par, choice)?,
            logdet_l11: 0.0,
            logdet_l22: 0.0,
            tmp: vec![0.0; work],
            blk: vec![0.0; work],
            lff_before: vec![0.0; pf * pf],
            response_pivot_optional: false,
        })
    }

    /// Recomputes the whole factor for the relative covariance factors `lambda` (one `T_b` per
    /// block, as `ReStructure::fill_lambda` writes them).
    pub fn update(&mut self, cp: &CrossProducts, lambda: &[Vec<f64>]) -> Result<()> {
        let q0 = cp.q0;
        let pf = cp.pf();
        let t0 = &lambda[0];
        let layout = &cp.layout;

        // L11 and L21, level by level of the leading factor.
        let mut logdet = 0.0;
        let scalar = q0 == 1 && layout.m == layout.n_nodes();
        for j in 0..cp.l0 {
            if scalar {
                // Every block is 1 × 1: the general small-matrix kernels would spend more on
                // loop set-up than on arithmetic (this loop runs once per A21 entry per θ). The
                // operations are those of the general path in the same order, so the results
                // are bit for bit the same (GLMM finite-difference Hessians are sensitive).
                let l = (t0[0] * (cp.a11[j] * t0[0]) + 1.0).sqrt();
                if !(l > 0.0 && l.is_finite()) {
                    return Err(MixedError::NotPositiveDefinite {
                        stage: "leading random-effects block",
                    });
                }
                self.l11[j] = l;
                logdet += l.ln();
                for e in cp.a21_ptr[j]..cp.a21_ptr[j + 1] {
                    let tb = lambda[layout.node_block[cp.a21_node[e] as usize] as usize][0];
                    self.l21[e] = tb * (cp.a21_vals[e] * t0[0]) / l;
                }
                for f in j * pf..(j + 1) * pf {
                    self.lf1[f] = cp.af1[f] * t0[0] / l;
                }
                continue;
            }
            let a = &cp.a11[j * q0 * q0..(j + 1) * q0 * q0];
            let l = &mut self.l11[j * q0 * q0..(j + 1) * q0 * q0];
            small::congruence(l, t0, a, t0, q0, q0, &mut self.tmp);
            for d in 0..q0 {
                l[d * q0 + d] += 1.0;
            }
            logdet += small::chol_lower(l, q0).ok_or(MixedError::NotPositiveDefinite {
                stage: "leading random-effects block",
            })?;
            for e in cp.a21_ptr[j]..cp.a21_ptr[j + 1] {
                let node = cp.a21_node[e] as usize;
                let qr = layout.node_q(node);
                let tb = &lambda[layout.node_block[node] as usize];
                let range = cp.a21_val_off[e]..cp.a21_val_off[e + 1];
                let out = &mut self.l21[range.clone()];
                if qr == 1 {
                    // A scalar trailing node (the usual `(1 | item)` crossed with a vector-
                    // valued leading term): the general kernels' arithmetic, without their
                    // loop set-up, which costs more than the few products here.
                    small::row_congruence_solve(out, tb[0], &cp.a21_vals[range], t0, l, q0);
                    continue;
                }
                small::congruence(out, tb, &cp.a21_vals[range], t0, qr, q0, &mut self.tmp);
                small::right_solve_lower_t(out, qr, l, q0);
            }
            // LF1_j = AF1_j T0 L11_j⁻ᵀ
            let af = &cp.af1[j * q0 * pf..(j + 1) * q0 * pf];
            let lf = &mut self.lf1[j * q0 * pf..(j + 1) * q0 * pf];
            right_mul_lower(lf, af, pf, t0, q0);
            small::right_solve_lower_t(lf, pf, l, q0);
        }
        self.logdet_l11 = 2.0 * logdet;

        // AFF − LF1 LF1'
        self.lff.copy_from_slice(&cp.aff);
        small::sub_abt(&mut self.lff, &self.lf1, &self.lf1, pf, pf, cp.l0 * q0);

        // Trailing part.
        self.logdet_l22 = 0.0;
        if layout.m > 0 {
            self.assemble_trailing(cp, lambda);
            self.logdet_l22 = self.trailing.factor()?;
            self.fill_g(cp, lambda);
            self.trailing.sub_quadratic(&self.g, pf, &mut self.lff);
        }
        if self.response_pivot_optional {
            self.lff_before.copy_from_slice(&self.lff);
        }
        let factored = small::chol_lower(&mut self.lff, pf).is_some();
        if !factored && !self.response_pivot_optional {
            return Err(MixedError::NotPositiveDefinite {
                stage: "fixed-effects block (the fixed-effects matrix may be rank deficient or the response fitted exactly)",
            });
        }
        if !factored {
            // The last pivot is the response's: the penalized weighted residual sum of squares,
            // which solving for β and u does not need and which is negative when some working
            // weights are (the observed information of a GLMM family with extra parameters).
            // Factor the rest with that pivot made positive, then mark it unavailable (NaN).
            self.lff.copy_from_slice(&self.lff_before);
            // (Any value above the squared norm of the factor's last row serves; 1e300 is
            // above it for any finite factor whose squares do not overflow anyway.)
            let last = pf * pf - 1;
            self.lff[last] = 1e300;
            small::chol_lower(&mut self.lff, pf).ok_or(MixedError::NotPositiveDefinite {
                stage: "fixed-effects block (the fixed-effects matrix may be rank deficient or the response fitted exactly)",
            })?;
            self.lff[last] = f64::NAN;
        }
        Ok(())
    }

    /// `S = Λ₂'A22Λ₂ + I − L21 L21'`.
    fn assemble_trailing(&mut self, cp: &CrossProducts, lambda: &[Vec<f64>]) {
        let layout = &cp.layout;
        self.trailing.set_identity();
        for t in 0..layout.n_nodes() {
            let q = layout.node_q(t);
            let tb = &lambda[layout.node_block[t] as usize];
            let a = &cp.a22_diag[cp.a22_diag_off[t]..cp.a22_diag_off[t + 1]];
            small::congruence(&mut self.blk, tb, a, tb, q, q, &mut self.tmp);
            let off = layout.node_offset[t];
            self.trailing.add_block(off, off, q, q, &self.blk);
        }
        for (e, &(r, c)) in cp.a22_pairs.iter().enumerate() {
            let (r, c) = (r as usize, c as usize);
            let (qr, qc) = (layout.node_q(r), layout.node_q(c));
            let tr = &lambda[layout.node_block[r] as usize];
            let tc = &lambda[layout.node_block[c] as usize];
            let a = &cp.a22_pair_vals[cp.a22_pair_off[e]..cp.a22_pair_off[e + 1]];
            small::congruence(&mut self.blk, tr, a, tc, qr, qc, &mut self.tmp);
            self.trailing.add_block(
                layout.node_offset[r],
                layout.node_offset[c],
                qr,
                qc,
                &self.blk,
            );
        }
        self.trailing.schur_update(cp, &self.l21);
    }

    /// `G' = (AF2 Λ₂ − LF1 L21')'`, stored `m × (p+1)`.
    fn fill_g(&mut self, cp: &CrossProducts, lambda: &[Vec<f64>]) {
        let layout = &cp.layout;
        let pf = cp.pf();
        let m = layout.m;
        let q0 = cp.q0;
        if q0 == 1 && m == layout.n_nodes() {
            // Scalar blocks: one value per node and per A21 entry (see `update`).
            for t in 0..m {
                let tb = lambda[layout.node_block[t] as usize][0];
                for f in 0..pf {
                    self.g[f * m + t] = cp.af2[t * pf + f] * tb;
                }
            }
            for j in 0..cp.l0 {
                let lf = &self.lf1[j * pf..(j + 1) * pf];
                for e in cp.a21_ptr[j]..cp.a21_ptr[j + 1] {
                    let node = cp.a21_node[e] as usize;
                    let b = self.l21[e];
                    for (f, &lfk) in lf.iter().enumerate() {
                        if lfk != 0.0 {
                            self.g[f * m + node] -= b * lfk;
                        }
                    }
                }
            }
            return;
        }
        for t in 0..layout.n_nodes() {
            let q = layout.node_q(t);
            let off = layout.node_offset[t];
            let tb = &lambda[layout.node_block[t] as usize];
            // (AF2[:, off..off+q] T_b)' into rows off..off+q of G'.
            for c in 0..q {
                for f in 0..pf {
                    let mut s = 0.0;
                    for k in c..q {
                        s += cp.af2[(off + k) * pf + f] * tb[c * q + k];
                    }
                    self.g[f * m + off + c] = s;
                }
            }
        }
        for j in 0..cp.l0 {
            let lf = &self.lf1[j * q0 * pf..(j + 1) * q0 * pf];
            for e in cp.a21_ptr[j]..cp.a21_ptr[j + 1] {
                let node = cp.a21_node[e] as usize;
                let qr = layout.node_q(node);
                let off = layout.node_offset[node];
                let b = &self.l21[cp.a21_val_off[e]..cp.a21_val_off[e + 1]];
                if qr == 1 {
                    // Scalar node: the loop below with one row, in the same order.
                    for f in 0..pf {
                        let mut gv = self.g[f * m + off];
                        for k in 0..q0 {
                            let lfk = lf[k * pf + f];
                            if lfk != 0.0 {
                                gv -= b[k] * lfk;
                            }
                        }
                        self.g[f * m + off] = gv;
                    }
                    continue;
                }
                // G'[off + r, f] −= Σ_k L21_e[r, k] LF1_j[f, k]
                for f in 0..pf {
                    let gcol = &mut self.g[f * m + off..f * m + off + qr];
                    for k in 0..q0 {
                        let lfk = lf[k * pf + f];
                        if lfk == 0.0 {
                            continue;
                        }
                        for (r, gv) in gcol.iter_mut().enumerate() {
                            *gv -= b[k * qr + r] * lfk;
                        }
                    }
                }
            }
        }
    }

    /// The penalized residual norm `r` (last diagonal element of `LFF`).
    pub fn pwrss_sqrt(&self, cp: &CrossProducts) -> f64 {
        let pf = cp.pf();
        self.lff[pf * pf - 1]
    }

    /// `log|R_X|² = 2 Σ log diag(R_X)`.
    pub fn logdet_rx(&self, cp: &CrossProducts) -> f64 {
        let pf = cp.pf();
        (0..cp.p).map(|i| 2.0 * self.lff[i * pf + i].ln()).sum()
    }

    /// The fixed-effects factor `R_X` (lower, `p × p`, column-major).
    pub fn rx(&self, cp: &CrossProducts) -> Vec<f64> {
        let p = cp.p;
        let pf = cp.pf();
        let mut r = vec![0.0; p * p];
        for j in 0..p {
            for i in j..p {
                r[j * p + i] = self.lff[j * pf + i];
            }
        }
        r
    }

    /// `(R_X R_X')⁻¹ = R_X⁻ᵀ R_X⁻¹` (`p × p`, column-major): the covariance of β up to `σ²`.
    pub fn vcov_unscaled(&self, cp: &CrossProducts) -> Vec<f64> {
        let p = cp.p;
        let rx = self.rx(cp);
        let mut rinv = vec![0.0; p * p];
        for j in 0..p {
            let col = &mut rinv[j * p..(j + 1) * p];
            col[j] = 1.0;
            small::solve_lower(&rx, p, col);
        }
        let mut out = vec![0.0; p * p];
        for a in 0..p {
            for b in 0..p {
                out[b * p + a] = (0..p).map(|k| rinv[a * p + k] * rinv[b * p + k]).sum();
            }
        }
        out
    }

    /// Solves the penalized least-squares problem at the current θ: returns `β`, the leading
    /// spherical random effects (`l0 q0`, level-major) and the trailing ones (`m`).
    pub fn solve(&mut self, cp: &CrossProducts) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let p = cp.p;
        let pf = cp.pf();
        let q0 = cp.q0;
        let m = cp.layout.m;
        // R_X' β = c
        let rx = self.rx(cp);
        let mut beta: Vec<f64> = (0..p).map(|i| self.lff[i * pf + p]).collect();
        small::solve_lower_t(&rx, p, &mut beta);

        // u₂ = S⁻¹ (g_y − G_x' β)
        let mut u2 = vec![0.0; m];
        for (t, u) in u2.iter_mut().enumerate() {
            let mut v = self.g[p * m + t];
            for (f, b) in beta.iter().enumerate() {
                v -= self.g[f * m + t] * b;
            }
            *u = v;
        }
        if m > 0 {
            self.trailing.solve_in_place(&mut u2);
        }

        // L11_j' u₁_j = lyz1_j − Lx1_j' β − Σ_e L21_e' u₂[node e]
        let layout = &cp.layout;
        let mut u1 = vec![0.0; cp.l0 * q0];
        for j in 0..cp.l0 {
            let lf = &self.lf1[j * q0 * pf..(j + 1) * q0 * pf];
            let rhs = &mut u1[j * q0..(j + 1) * q0];
            for (k, r) in rhs.iter_mut().enumerate() {
                let col = &lf[k * pf..(k + 1) * pf];
                let mut v = col[p];
                for (f, b) in beta.iter().enumerate() {
                    v -= col[f] * b;
                }
                *r = v;
            }
            for e in cp.a21_ptr[j]..cp.a21_ptr[j + 1] {
                let node = cp.a21_node[e] as usize;
                let qr = layout.node_q(node);
                let off = layout.node_offset[node];
                let b = &self.l21[cp.a21_val_off[e]..cp.a21_val_off[e + 1]];
                for (k, r) in rhs.iter_mut().enumerate() {
                    for rr in 0..qr {
                        *r -= b[k * qr + rr] * u2[off + rr];
                    }
                }
            }
            small::solve_lower_t(&self.l11[j * q0 * q0..(j + 1) * q0 * q0], q0, rhs);
        }
        // β of the response as given: the one solved is that of the response less X b₀.
        for (b, shift) in beta.iter_mut().zip(&cp.response_shift) {
            *b += shift;
        }
        (beta, u1, u2)
    }
}

/// `out = A T` for `A` (`rows × q`) and lower-triangular `T` (`q × q`).
fn right_mul_lower(out: &mut [f64], a: &[f64], rows: usize, t: &[f64], q: usize) {
    for c in 0..q {
        for r in 0..rows {
            let mut s = 0.0;
            for k in c..q {
                s += a[k * rows + r] * t[c * q + k];
            }
            out[c * rows + r] = s;
        }
    }
}
