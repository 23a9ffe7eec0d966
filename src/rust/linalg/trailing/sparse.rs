//! Sparse storage and factorization of the trailing Schur complement.
//!
//! When the trailing factors are nested in the leading one, or crossed with few co-occurrences,
//! `S = Λ₂'A22Λ₂ + I − L21 L21'` stays sparse. Its pattern (the union of the `A22` blocks and of
//! every pair of trailing nodes that share a level of the leading factor) is fixed, so it is
//! computed once, together with faer's symbolic Cholesky analysis (AMD ordering, supernodal or
//! simplicial as faer judges best). Each θ only refills the values and runs the numeric
//! factorization into a preallocated buffer.
use crate::blocks::CrossProducts;
use crate::error::{MixedError, Result};
use faer::dyn_stack::{MemBuffer, MemStack, StackReq};
use faer::linalg::cholesky::llt::factor::LltRegularization;
use faer::sparse::linalg::cholesky::{
    factorize_symbolic_cholesky, simplicial::SimplicialLltRef, supernodal::SupernodalLltRef,
    CholeskySymbolicParams, LltRef, SymbolicCholesky, SymbolicCholeskyRaw, SymmetricOrdering,
};
use faer::sparse::{SparseColMatRef, SymbolicSparseColMatRef};
use faer::{Conj, MatMut, Par, Side};

/// Sparse lower-triangular `S` with a fixed pattern and its numeric factor.
pub struct SparseTrailing {
    m: usize,
    col_ptr: Vec<usize>,
    row_idx: Vec<usize>,
    values: Vec<f64>,
    symbolic: SymbolicCholesky<usize>,
    l_values: Vec<f64>,
    work: Vec<f64>,
    mem: MemBuffer,
    par: Par,
}

impl std::fmt::Debug for SparseTrailing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SparseTrailing")
            .field("m", &self.m)
            .field("nnz", &self.row_idx.len())
            .field("nnz_l", &self.l_values.len())
            .finish()
    }
}

/// Number of scalar entries the lower triangle of `S` can have, counted with multiplicity
/// (before removing duplicates): the cost of building its pattern.
pub fn pattern_work(cp: &CrossProducts) -> usize {
    let layout = &cp.layout;
    let mut total = 0usize;
    for j in 0..cp.l0 {
        let width: usize = (cp.a21_ptr[j]..cp.a21_ptr[j + 1])
            .map(|e| layout.node_q(cp.a21_node[e] as usize))
            .sum();
        total = total.saturating_add(width * (width + 1) / 2);
    }
    for t in 0..layout.n_nodes() {
        let q = layout.node_q(t);
        total = total.saturating_add(q * (q + 1) / 2);
    }
    for &(r, c) in &cp.a22_pairs {
        total = total.saturating_add(layout.node_q(r as usize) * layout.node_q(c as usize));
    }
    total
}

/// The scalar (row, column) entries of the lower triangle of `S`, as sorted unique keys
/// `column · m + row`.
fn pattern_keys(cp: &CrossProducts) -> Result<Vec<u64>> {
    let layout = &cp.layout;
    let m = layout.m as u64;
    let mut keys: Vec<u64> = Vec::new();
    keys.try_reserve(pattern_work(cp))
        .map_err(|_| MixedError::OutOfMemory("pattern of the trailing block".into()))?;
    // Entries of the `qr × qc` block at (r0, c0); a diagonal block contributes its lower part.
    let push_block =
        |keys: &mut Vec<u64>, r0: usize, c0: usize, qr: usize, qc: usize, diag: bool| {
            for c in 0..qc {
                let rstart = if diag { c } else { 0 };
                for r in rstart..qr {
                    keys.push((c0 + c) as u64 * m + (r0 + r) as u64);
                }
            }
        };
    for t in 0..layout.n_nodes() {
        let q = layout.node_q(t);
        let off = layout.node_offset[t];
        push_block(&mut keys, off, off, q, q, true);
    }
    for &(r, c) in &cp.a22_pairs {
        let (r, c) = (r as usize, c as usize);
        push_block(
            &mut keys,
            layout.node_offset[r],
            layout.node_offset[c],
            layout.node_q(r),
            layout.node_q(c),
            false,
        );
    }
    for j in 0..cp.l0 {
        let range = cp.a21_ptr[j]..cp.a21_ptr[j + 1];
        for e2 in range.clone() {
            let n2 = cp.a21_node[e2] as usize;
            for e1 in e2..range.end {
                let n1 = cp.a21_node[e1] as usize;
                push_block(
                    &mut keys,
                    layout.node_offset[n1],
                    layout.node_offset[n2],
                    layout.node_q(n1),
                    layout.node_q(n2),
                    e1 == e2,
                );
            }
        }
    }
    keys.sort_unstable();
    keys.dedup();
    Ok(keys)
}

/// Position of entry `(row, col)` in a CSC pattern that holds it (every entry ever written is
/// in the pattern by construction).
#[inline]
fn pattern_position(col_ptr: &[usize], row_idx: &[usize], row: usize, col: usize) -> usize {
    let start = col_ptr[col];
    start + row_idx[start..col_ptr[col + 1]].partition_point(|&r| r < row)
}

impl SparseTrailing {
    /// Builds the pattern of `S` and its symbolic factorization.
    pub fn new(cp: &CrossProducts, pf: usize, par: Par) -> Result<Self> {
        let m = cp.layout.m;
        let keys = pattern_keys(cp)?;
        let mut col_ptr = vec![0usize; m + 1];
        let mut row_idx = Vec::with_capacity(keys.len());
        for &k in &keys {
            let col = (k / m as u64) as usize;
            col_ptr[col + 1] += 1;
            row_idx.push((k % m as u64) as usize);
        }
        drop(keys);
        for c in 0..m {
            col_ptr[c + 1] += col_ptr[c];
        }
        let nnz = row_idx.len();
        let pattern = SymbolicSparseColMatRef::new_checked(m, m, &col_ptr, None, &row_idx);
        let symbolic = factorize_symbolic_cholesky(
            pattern,
            Side::Lower,
            SymmetricOrdering::Amd,
            CholeskySymbolicParams::default(),
        )
        .map_err(|e| MixedError::OutOfMemory(format!("symbolic factorization: {e:?}")))?;
        let req = StackReq::any_of(&[
            symbolic.factorize_numeric_llt_scratch::<f64>(par, Default::default()),
            symbolic.solve_in_place_scratch::<f64>(pf, par),
        ]);
        let mem = MemBuffer::try_new(req)
            .map_err(|_| MixedError::OutOfMemory("sparse factorization workspace".into()))?;
        let l_values = vec![0.0; symbolic.len_val()];
        Ok(Self {
            m,
            col_ptr,
            row_idx,
            values: vec![0.0; nnz],
            symbolic,
            l_values,
            work: vec![0.0; m * pf],
            mem,
            par,
        })
    }

    /// Number of stored values of the factor `L22` (for choosing between dense and sparse).
    pub fn factor_len(&self) -> usize {
        self.l_values.len()
    }

    #[inline]
    fn position(&self, row: usize, col: usize) -> usize {
        pattern_position(&self.col_ptr, &self.row_idx, row, col)
    }

    /// `S ← I`.
    pub fn set_identity(&mut self) {
        self.values.fill(0.0);
        for c in 0..self.m {
            let p = self.position(c, c);
            self.values[p] = 1.0;
        }
    }

    /// `S[r0.., c0..] += B` (`qr × qc`, column-major; lower triangle only on the diagonal).
    pub fn add_block(&mut self, r0: usize, c0: usize, qr: usize, qc: usize, b: &[f64]) {
        for c in 0..qc {
            let rstart = if r0 == c0 { c } else { 0 };
            // Rows r0 + rstart .. r0 + qr are all in the pattern and consecutive.
            let p = self.position(r0 + rstart, c0 + c);
            for (k, r) in (rstart..qr).enumerate() {
                self.values[p + k] += b[c * qr + r];
            }
        }
    }

    /// `S −= Σ_j L21_j L21_j'`.
    pub fn schur_update(&mut self, cp: &CrossProducts, l21: &[f64]) {
        let (col_ptr, row_idx, vals) = (&self.col_ptr, &self.row_idx, &mut self.values);
        cp.for_each_schur_segment(l21, |row, col, values| {
            // The segment's rows are in the pattern and consecutive.
            let p = pattern_position(col_ptr, row_idx, row, col);
            for (x, v) in vals[p..p + values.len()].iter_mut().zip(values) {
                *x -= v;
            }
        });
    }

    /// Numeric factorization `S = P'L22 L22'P`; returns `log|L22|²`.
    pub fn factor(&mut self) -> Result<f64> {
        let a = SparseColMatRef::new(
            SymbolicSparseColMatRef::new_checked(
                self.m,
                self.m,
                &self.col_ptr,
                None,
                &self.row_idx,
            ),
            &self.values,
        );
        let stack = MemStack::new(&mut self.mem);
        self.symbolic
            .factorize_numeric_llt(
                &mut self.l_values,
                a,
                Side::Lower,
                LltRegularization::default(),
                self.par,
                stack,
                Default::default(),
            )
            .map_err(|_| MixedError::NotPositiveDefinite {
                stage: "trailing random-effects block",
            })?;
        let mut logdet = 0.0;
        match self.symbolic.raw() {
            SymbolicCholeskyRaw::Supernodal(sym) => {
                let llt = SupernodalLltRef::new(sym, &self.l_values);
                for s in 0..sym.n_supernodes() {
                    let block = llt.supernode(s).val();
                    for k in 0..block.ncols() {
                        logdet += block[(k, k)].ln();
                    }
                }
            }
            SymbolicCholeskyRaw::Simplicial(sym) => {
                let llt = SimplicialLltRef::new(sym, &self.l_values);
                let (cp, ri) = (sym.col_ptr(), sym.row_idx());
                let vals = llt.values();
                for j in 0..self.m {
                    if let Some(k) = (cp[j]..cp[j + 1]).find(|&k| ri[k] == j) {
                        logdet += vals[k].ln();
                    }
                }
            }
        }
        Ok(2.0 * logdet)
    }

    fn solve_columns(&mut self, ncols: usize) {
        let llt = LltRef::new(&self.symbolic, &self.l_values);
        let rhs =
            MatMut::from_column_major_slice_mut(&mut self.work[..self.m * ncols], self.m, ncols);
        let stack = MemStack::new(&mut self.mem);
        llt.solve_in_place_with_conj(Conj::No, rhs, self.par, stack);
    }

    /// `out −= G'S⁻¹G` for `G'` stored `m × pf`.
    pub fn sub_quadratic(&mut self, g: &[f64], pf: usize, out: &mut [f64]) {
        let m = self.m;
        self.work[..m * pf].copy_from_slice(&g[..m * pf]);
        self.solve_columns(pf);
        crate::small::sub_symmetric_atb(out, g, &self.work[..m * pf], m, pf);
    }

    /// `v ← S⁻¹v`.
    pub fn solve_in_place(&mut self, v: &mut [f64]) {
        let m = self.m;
        self.work[..m].copy_from_slice(v);
        self.solve_columns(1);
        v.copy_from_slice(&self.work[..m]);
    }
}
