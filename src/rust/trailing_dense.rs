//! Dense storage and factorization of the trailing Schur complement.
//!
//! After the leading block is eliminated, the trailing random effects have the `m × m` matrix
//! `S = Λₜ'A22Λₜ + I − L21 L21'`. When the trailing factors are crossed with the leading one, `S`
//! fills in and is best held dense: `S = L22 L22'` by faer's blocked (parallel) Cholesky.
use crate::blocks::CrossProducts;
use crate::error::{MixedError, Result};
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{cholesky_in_place, cholesky_in_place_scratch};
use faer::linalg::triangular_solve::{
    solve_lower_triangular_in_place, solve_upper_triangular_in_place,
};
use faer::{Mat, MatMut, MatRef, Par};

/// Dense lower-triangular workspace for `S` and its factor `L22`.
pub struct DenseTrailing {
    m: usize,
    s: Mat<f64>,
    work: Vec<f64>,
    mem: MemBuffer,
    par: Par,
}

impl std::fmt::Debug for DenseTrailing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DenseTrailing").field("m", &self.m).finish()
    }
}

impl DenseTrailing {
    /// Allocates `S` (`m × m`) once.
    pub fn new(m: usize, pf: usize, par: Par) -> Result<Self> {
        let bytes = (m as u128) * (m as u128) * 8;
        if bytes > (64u128 << 30) {
            return Err(MixedError::OutOfMemory(format!(
                "a dense {m} x {m} trailing block would need {} GiB",
                bytes >> 30
            )));
        }
        let req = cholesky_in_place_scratch::<f64>(m, par, Default::default());
        Ok(Self {
            m,
            s: Mat::zeros(m, m),
            work: vec![0.0; m * pf],
            mem: MemBuffer::new(req),
            par,
        })
    }

    /// Sets the lower triangle of `S` to the identity.
    pub fn set_identity(&mut self) {
        let m = self.m;
        for j in 0..m {
            let col = self.s.col_as_slice_mut(j);
            col.fill(0.0);
            col[j] = 1.0;
        }
    }

    /// `S[r0.., c0..] += B` for a `qr × qc` column-major block with `r0 ≥ c0`; for a diagonal
    /// block (`r0 == c0`) only its lower triangle is used.
    pub fn add_block(&mut self, r0: usize, c0: usize, qr: usize, qc: usize, b: &[f64]) {
        for c in 0..qc {
            let rstart = if r0 == c0 { c } else { 0 };
            for r in rstart..qr {
                self.s[(r0 + r, c0 + c)] += b[c * qr + r];
            }
        }
    }

    /// `S −= Σ_j L21_j L21_j'`, where `L21_j` holds the blocks of leading level `j`.
    pub fn schur_update(&mut self, cp: &CrossProducts, l21: &[f64]) {
        let layout = &cp.layout;
        if cp.q0 == 1 && layout.m == layout.n_nodes() {
            // Each node is one coordinate and each entry one value: the hot loop of crossed
            // scalar designs, column by column, rows ascending, without the general walk.
            for j in 0..cp.l0 {
                let range = cp.a21_ptr[j]..cp.a21_ptr[j + 1];
                let nodes = &cp.a21_node[range.clone()];
                let vals = &l21[range];
                for (k2, (&n2, &v2)) in nodes.iter().zip(vals).enumerate() {
                    let col = self.s.col_as_slice_mut(n2 as usize);
                    for (&n1, &v1) in nodes[k2..].iter().zip(&vals[k2..]) {
                        col[n1 as usize] -= v1 * v2;
                    }
                }
            }
            return;
        }
        let s = &mut self.s;
        cp.for_each_schur_segment(l21, |row, col, values| {
            let column = &mut s.col_as_slice_mut(col)[row..row + values.len()];
            for (x, v) in column.iter_mut().zip(values) {
                *x -= v;
            }
        });
    }

    /// Factors `S = L22 L22'` in place; returns `log|L22|² = 2 Σ log diag(L22)`.
    pub fn factor(&mut self) -> Result<f64> {
        let stack = MemStack::new(&mut self.mem);
        cholesky_in_place(
            self.s.as_mut(),
            Default::default(),
            self.par,
            stack,
            Default::default(),
        )
        .map_err(|_| MixedError::NotPositiveDefinite {
            stage: "trailing random-effects block",
        })?;
        let mut logdet = 0.0;
        for j in 0..self.m {
            logdet += self.s[(j, j)].ln();
        }
        Ok(2.0 * logdet)
    }

    fn l22(&self) -> MatRef<'_, f64> {
        self.s.as_ref()
    }

    /// `out −= G' S⁻¹ G` for `G` (`m × pf`, column-major), via `W = L22⁻¹ G`, `W'W`.
    pub fn sub_quadratic(&mut self, g: &[f64], pf: usize, out: &mut [f64]) {
        let m = self.m;
        self.work[..m * pf].copy_from_slice(&g[..m * pf]);
        let w = MatMut::from_column_major_slice_mut(&mut self.work[..m * pf], m, pf);
        solve_lower_triangular_in_place(self.s.as_ref(), w, self.par);
        crate::small::sub_symmetric_atb(out, &self.work, &self.work, m, pf);
    }

    /// `v ← S⁻¹ v`.
    pub fn solve_in_place(&self, v: &mut [f64]) {
        let m = self.m;
        let mut rhs = MatMut::from_column_major_slice_mut(v, m, 1);
        solve_lower_triangular_in_place(self.l22(), rhs.as_mut(), Par::Seq);
        solve_upper_triangular_in_place(self.l22().transpose(), rhs.as_mut(), Par::Seq);
    }

    /// The lower-triangular factor `L22`.
    pub fn factor_ref(&self) -> MatRef<'_, f64> {
        self.l22()
    }
}
