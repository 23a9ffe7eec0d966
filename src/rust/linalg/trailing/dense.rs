//! Dense storage and factorization of the trailing Schur complement.
//!
//! After the leading block is eliminated, the trailing random effects have the `m × m` matrix
//! `S = Λₜ'A22Λₜ + I − L21 L21'`. When the trailing factors are crossed with the leading one, `S`
//! fills in and is best held dense: `S = L22 L22'` by faer's blocked (parallel) Cholesky.
//!
//! The update `S −= L21 L21' = Σ_j L21_j L21_j'` (one sparse column block `L21_j` per leading
//! level `j`) is done column by column of `S`: for trailing node `c`, every leading level `j`
//! whose `L21_j` has `c` contributes `L21_j[r, ·] L21_j[c, ·]'` to the rows `r ≥ c` of `L21_j`'s
//! pattern. Walking columns instead of levels keeps the written column in L1 cache (walking
//! levels scatters writes over the whole `m²` matrix, which does not fit in cache for the large
//! crossed designs this storage exists for), makes columns independent, so they are split over
//! threads, and gives results that do not depend on the number of threads.
//!
//! When `L21` is nearly dense (every subject crossed with most items, as in a design where
//! each subject sees every item), the scatter above costs far more than BLAS-3: `L21` is then
//! copied into a dense `m × l₀q₀` matrix `D` and `S −= D D'` is one symmetric rank-k product
//! (faer's triangular matmul). The rule compares the product's flops with the scatter's
//! multiply-adds, which cost about 30 times more each (indexed, not vectorized).
use crate::blocks::CrossProducts;
use crate::error::{MixedError, Result};
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{cholesky_in_place, cholesky_in_place_scratch};
use faer::linalg::matmul::triangular::{matmul as triangular_matmul, BlockStructure};
use faer::linalg::triangular_solve::{
    solve_lower_triangular_in_place, solve_upper_triangular_in_place,
};
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// For each trailing node (a column block of `S`), the `A21` entries that lie in it, leading
/// levels ascending, with the end of each entry's level range: entry `entry[k]` contributes
/// with every entry in `entry[k]..end[k]` (same level, nodes at or after its own).
#[derive(Debug)]
struct ColumnIndex {
    /// Entries of node `t` are `ptr[t]..ptr[t + 1]`.
    ptr: Vec<usize>,
    entry: Vec<u32>,
    end: Vec<u32>,
    /// Node boundaries of the pieces of work handed to threads (first 0, last `n_nodes`).
    chunks: Vec<usize>,
    /// Every node is scalar (the leading block may not be: `(x | subject) + (1 | item)`).
    scalar_nodes: bool,
    /// Every node has this many coordinates and every entry's `L21` block its `q₀ × q_t`
    /// values one entry after another (`(x | subject) + (x | item)`), or 0.
    uniform_q: usize,
}

impl ColumnIndex {
    fn new(cp: &CrossProducts, threads: usize) -> Option<Self> {
        let layout = &cp.layout;
        let n_nodes = layout.n_nodes();
        let nnz = cp.a21_node.len();
        if nnz >= u32::MAX as usize {
            return None;
        }
        let mut ptr = vec![0usize; n_nodes + 1];
        for &t in &cp.a21_node {
            ptr[t as usize + 1] += 1;
        }
        for t in 0..n_nodes {
            ptr[t + 1] += ptr[t];
        }
        let mut next = ptr.clone();
        let mut entry = vec![0u32; nnz];
        let mut end = vec![0u32; nnz];
        // Work per node: scalar multiply-adds it receives.
        let mut work = vec![0usize; n_nodes];
        for j in 0..cp.l0 {
            let stop = cp.a21_ptr[j + 1];
            for e in cp.a21_ptr[j]..stop {
                let t = cp.a21_node[e] as usize;
                entry[next[t]] = e as u32;
                end[next[t]] = stop as u32;
                next[t] += 1;
                work[t] += (stop - e) * cp.q0 * layout.node_q(t);
            }
        }
        // One piece per thread (so that `threads` bounds the concurrency in a shared pool), cut
        // where the cumulative work crosses each quantile: the work is known exactly.
        let total: usize = work.iter().sum::<usize>().max(1);
        let pieces = threads.max(1);
        let mut chunks = vec![0usize];
        let mut acc = 0usize;
        for (t, w) in work.iter().enumerate() {
            acc += w;
            let target = total * chunks.len() / pieces;
            if acc >= target && t + 1 < n_nodes && chunks.len() < pieces {
                chunks.push(t + 1);
            }
        }
        chunks.push(n_nodes);
        // Scalar nodes leave `q0` values per entry, stored one entry after another.
        let scalar_nodes = layout.m == n_nodes && (0..=nnz).all(|e| cp.a21_val_off[e] == e * cp.q0);
        let qt = layout.m.checked_div(n_nodes).unwrap_or(0);
        let uniform = qt > 0
            && (0..n_nodes).all(|t| layout.node_q(t) == qt)
            && (0..=nnz).all(|e| cp.a21_val_off[e] == e * cp.q0 * qt);
        Some(Self {
            ptr,
            entry,
            end,
            chunks,
            scalar_nodes,
            uniform_q: if uniform { qt } else { 0 },
        })
    }
}

/// Dense lower-triangular workspace for `S` and its factor `L22`.
pub struct DenseTrailing {
    m: usize,
    /// `S`, then `L22`: `m × m` column-major with leading dimension `m`; only the lower triangle
    /// is ever written (the upper stays zero).
    s: Vec<f64>,
    work: Vec<f64>,
    mem: MemBuffer,
    par: Par,
    columns: Option<ColumnIndex>,
    /// `D`, `m × l₀q₀` column-major, when the rank-k product is chosen for the update.
    dense_l21: Option<Vec<f64>>,
}

/// How many times a scatter multiply-add costs more than one flop of the rank-k product.
const SCATTER_COST: f64 = 30.0;
/// Largest dense copy of `L21` (entries) considered.
const MAX_DENSE_L21: usize = 1 << 25;

/// Whether `S −= L21 L21'` is cheaper as a dense rank-k product than as the sparse scatter.
fn dense_update_pays(cp: &CrossProducts) -> bool {
    let layout = &cp.layout;
    let (m, k) = (layout.m, cp.l0 * cp.q0);
    if m == 0 || k == 0 || m.saturating_mul(k) > MAX_DENSE_L21 {
        return false;
    }
    let mut scatter = 0.0;
    for j in 0..cp.l0 {
        let stop = cp.a21_ptr[j + 1];
        for e in cp.a21_ptr[j]..stop {
            let t = cp.a21_node[e] as usize;
            scatter += ((stop - e) * cp.q0 * layout.node_q(t)) as f64;
        }
    }
    (m as f64) * (m as f64) * (k as f64) < SCATTER_COST * scatter
}

impl std::fmt::Debug for DenseTrailing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DenseTrailing").field("m", &self.m).finish()
    }
}

/// Number of threads a `Par` asks for.
fn par_threads(par: Par) -> usize {
    match par {
        Par::Seq => 1,
        Par::Rayon(n) => n.get(),
    }
}

impl DenseTrailing {
    /// Allocates `S` (`m × m`) once and indexes `L21` by trailing node.
    pub fn new(cp: &CrossProducts, pf: usize, par: Par) -> Result<Self> {
        let m = cp.layout.m;
        let bytes = (m as u128) * (m as u128) * 8;
        if bytes > (64u128 << 30) {
            return Err(MixedError::OutOfMemory(format!(
                "a dense {m} x {m} trailing block would need {} GiB",
                bytes >> 30
            )));
        }
        let mut s = Vec::new();
        s.try_reserve_exact(m * m)
            .map_err(|_| MixedError::OutOfMemory(format!("a dense {m} x {m} trailing block")))?;
        s.resize(m * m, 0.0);
        let req = cholesky_in_place_scratch::<f64>(m, par, Default::default());
        let dense_l21 = dense_update_pays(cp).then(|| vec![0.0; m * cp.l0 * cp.q0]);
        Ok(Self {
            m,
            s,
            work: vec![0.0; m * pf],
            mem: MemBuffer::new(req),
            par,
            columns: ColumnIndex::new(cp, par_threads(par)),
            dense_l21,
        })
    }

    /// Sets the lower triangle of `S` to the identity.
    pub fn set_identity(&mut self) {
        let m = self.m;
        for (j, col) in self.s.chunks_exact_mut(m).enumerate() {
            col[j..].fill(0.0);
            col[j] = 1.0;
        }
    }

    /// `S[r0.., c0..] += B` for a `qr × qc` column-major block with `r0 ≥ c0`; for a diagonal
    /// block (`r0 == c0`) only its lower triangle is used.
    pub fn add_block(&mut self, r0: usize, c0: usize, qr: usize, qc: usize, b: &[f64]) {
        let m = self.m;
        for c in 0..qc {
            let rstart = if r0 == c0 { c } else { 0 };
            let col = &mut self.s[(c0 + c) * m..(c0 + c + 1) * m];
            for r in rstart..qr {
                col[r0 + r] += b[c * qr + r];
            }
        }
    }

    /// `S −= Σ_j L21_j L21_j'`, where `L21_j` holds the blocks of leading level `j`.
    pub fn schur_update(&mut self, cp: &CrossProducts, l21: &[f64]) {
        let m = self.m;
        if let Some(d) = &mut self.dense_l21 {
            let k = cp.l0 * cp.q0;
            fill_dense_l21(cp, l21, d);
            // Threads only pay for a product of some size.
            let par = if (m * m * k) >> 22 > 0 {
                self.par
            } else {
                Par::Seq
            };
            let dm = MatRef::from_column_major_slice(d, m, k);
            triangular_matmul(
                MatMut::from_column_major_slice_mut(&mut self.s, m, m),
                BlockStructure::TriangularLower,
                Accum::Add,
                dm,
                BlockStructure::Rectangular,
                dm.transpose(),
                BlockStructure::Rectangular,
                -1.0,
                par,
            );
            return;
        }
        let Some(index) = &self.columns else {
            let s = &mut self.s;
            cp.for_each_schur_segment(l21, |row, col, values| {
                let column = &mut s[col * m + row..col * m + row + values.len()];
                for (x, v) in column.iter_mut().zip(values) {
                    *x -= v;
                }
            });
            return;
        };
        // Split S into the column ranges of the pieces of work.
        let layout = &cp.layout;
        let mut pieces = Vec::with_capacity(index.chunks.len());
        let mut rest: &mut [f64] = &mut self.s;
        for w in index.chunks.windows(2) {
            let (a, b) = (w[0], w[1]);
            let width = layout.node_offset[b] - layout.node_offset[a];
            let (head, tail) = rest.split_at_mut(width * m);
            pieces.push((a..b, head));
            rest = tail;
        }
        let run = |(nodes, cols): (std::ops::Range<usize>, &mut [f64])| {
            if index.scalar_nodes && matches!(cp.q0, 1..=3) {
                match cp.q0 {
                    1 => schur_panels_scalar_nodes::<1>(cp, l21, nodes, cols, m),
                    2 => schur_panels_scalar_nodes::<2>(cp, l21, nodes, cols, m),
                    _ => schur_panels_scalar_nodes::<3>(cp, l21, nodes, cols, m),
                }
                return;
            }
            let base = layout.node_offset[nodes.start];
            let uniform = match (cp.q0, index.uniform_q) {
                (1, 2) => Some(schur_columns_uniform::<1, 2> as UniformColumns),
                (2, 2) => Some(schur_columns_uniform::<2, 2> as UniformColumns),
                (3, 2) => Some(schur_columns_uniform::<3, 2> as UniformColumns),
                (1, 3) => Some(schur_columns_uniform::<1, 3> as UniformColumns),
                (2, 3) => Some(schur_columns_uniform::<2, 3> as UniformColumns),
                (3, 3) => Some(schur_columns_uniform::<3, 3> as UniformColumns),
                _ => None,
            };
            if let Some(columns) = uniform {
                for t in nodes {
                    let c0 = layout.node_offset[t] - base;
                    let qc = index.uniform_q;
                    columns(index, cp, l21, t, &mut cols[c0 * m..(c0 + qc) * m], m);
                }
                return;
            }
            for t in nodes {
                let c0 = layout.node_offset[t] - base;
                let qc = layout.node_q(t);
                schur_columns(index, cp, l21, t, &mut cols[c0 * m..(c0 + qc) * m], m);
            }
        };
        if par_threads(self.par) > 1 && pieces.len() > 1 {
            pieces.into_par_iter().for_each(run);
        } else {
            pieces.into_iter().for_each(run);
        }
    }

    /// Factors `S = L22 L22'` in place; returns `log|L22|² = 2 Σ log diag(L22)`.
    pub fn factor(&mut self) -> Result<f64> {
        let m = self.m;
        let stack = MemStack::new(&mut self.mem);
        cholesky_in_place(
            MatMut::from_column_major_slice_mut(&mut self.s, m, m),
            Default::default(),
            self.par,
            stack,
            Default::default(),
        )
        .map_err(|_| MixedError::NotPositiveDefinite {
            stage: "trailing random-effects block",
        })?;
        let mut logdet = 0.0;
        for j in 0..m {
            logdet += self.s[j * m + j].ln();
        }
        Ok(2.0 * logdet)
    }

    /// The parallelism of the block's factor and products.
    pub fn par(&self) -> Par {
        self.par
    }

    fn l22(&self) -> MatRef<'_, f64> {
        MatRef::from_column_major_slice(&self.s, self.m, self.m)
    }

    /// `out −= G' S⁻¹ G` for `G` (`m × pf`, column-major), via `W = L22⁻¹ G`, `W'W`.
    pub fn sub_quadratic(&mut self, g: &[f64], pf: usize, out: &mut [f64]) {
        let m = self.m;
        self.work[..m * pf].copy_from_slice(&g[..m * pf]);
        let w = MatMut::from_column_major_slice_mut(&mut self.work[..m * pf], m, pf);
        // A few right-hand sides: memory-bound, and threads cost more than they save
        // (InstEval: 0.5 against 0.3 ms per evaluation).
        solve_lower_triangular_in_place(
            MatRef::from_column_major_slice(&self.s, m, m),
            w,
            Par::Seq,
        );
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

/// Copies the blocks of `L21` into the dense `m × l₀q₀` matrix `d` (zero elsewhere): the
/// block of entry `e` (leading level `j`, trailing node `t`) lands in rows `t`'s offset on,
/// columns `j q₀` on.
fn fill_dense_l21(cp: &CrossProducts, l21: &[f64], d: &mut [f64]) {
    let layout = &cp.layout;
    let (m, q0) = (layout.m, cp.q0);
    d.fill(0.0);
    for j in 0..cp.l0 {
        for e in cp.a21_ptr[j]..cp.a21_ptr[j + 1] {
            let t = cp.a21_node[e] as usize;
            let (off, qr) = (layout.node_offset[t], layout.node_q(t));
            let b = &l21[cp.a21_val_off[e]..cp.a21_val_off[e + 1]];
            for k in 0..q0 {
                let col = &mut d[(j * q0 + k) * m + off..(j * q0 + k) * m + off + qr];
                col.copy_from_slice(&b[k * qr..(k + 1) * qr]);
            }
        }
    }
}

/// Bytes of `S`'s columns one panel of [`schur_panels_scalar_nodes`] updates: a share of a
/// last-level cache (32 MiB on this machine's EPYC, shared by its 2 cores). Measured at 10⁷
/// rows (each thread's half of a 1,392² block is 7.7 MB): 128 KiB panels 43.7 s, 512 KiB
/// 32.9 s, 2 MiB 31.0 s, 8 MiB (one panel) 27.9 s, against 45.6 s column by column.
const PANEL_BYTES: usize = 8 * 1024 * 1024;

/// The columns `nodes` of `S −= L21 L21'` (held in `cols`, leading dimension `m`) when every
/// node is scalar, in panels of columns that stay in cache: for each panel, every leading level
/// `j` in turn updates the panel's columns among its nodes (entries sorted by node, so they are
/// one run, found by a cursor per level that only moves forward). Each entry of `S` receives the
/// levels' products in the order of `j`, each product summed over the `Q` columns as
/// [`schur_columns`] sums it (the same bits as column by column), but `L21` is read once per
/// panel instead of once per column: at 10⁷ rows (100,000 subjects × 1,392 items, 70 MB of
/// `L21`) the column order re-read each subject's entries for each of its 87 items from memory. Panels keep a block larger than the cache from being
/// swept once per level.
fn schur_panels_scalar_nodes<const Q: usize>(
    cp: &CrossProducts,
    l21: &[f64],
    nodes: std::ops::Range<usize>,
    cols: &mut [f64],
    m: usize,
) {
    let width = (PANEL_BYTES / (8 * m.max(1))).max(1);
    let base = nodes.start;
    let mut cursor: Vec<usize> = cp.a21_ptr[..cp.l0].to_vec();
    // Entries before the first node of `nodes` are skipped once.
    for (j, c) in cursor.iter_mut().enumerate() {
        let stop = cp.a21_ptr[j + 1];
        while *c < stop && (cp.a21_node[*c] as usize) < base {
            *c += 1;
        }
    }
    let mut p0 = nodes.start;
    while p0 < nodes.end {
        let p1 = (p0 + width).min(nodes.end);
        for (j, c) in cursor.iter_mut().enumerate() {
            let stop = cp.a21_ptr[j + 1];
            while *c < stop && (cp.a21_node[*c] as usize) < p1 {
                let e2 = *c;
                let t = cp.a21_node[e2] as usize;
                let col = &mut cols[(t - base) * m..(t - base + 1) * m];
                let b2: &[f64; Q] = match l21[e2 * Q..(e2 + 1) * Q].try_into() {
                    Ok(b) => b,
                    Err(_) => break,
                };
                let rows = l21[e2 * Q..stop * Q].chunks_exact(Q);
                for (&n1, b1) in cp.a21_node[e2..stop].iter().zip(rows) {
                    // -0.0: the start of `Iterator::sum` for floats, as in `schur_columns`.
                    let mut v = -0.0;
                    for kk in 0..Q {
                        v += b1[kk] * b2[kk];
                    }
                    col[n1 as usize] -= v;
                }
                *c += 1;
            }
        }
        p0 = p1;
    }
}

/// Signature of [`schur_columns_uniform`] for one pair of block sizes.
type UniformColumns = fn(&ColumnIndex, &CrossProducts, &[f64], usize, &mut [f64], usize);

/// [`schur_columns`] when every node has `QT` coordinates and the leading block `Q0` (vector
/// random effects on both crossed factors): the block sizes are constants, so the small loops
/// unroll and the node offsets are `QT n` instead of looked up. Each entry sums the same
/// products in the same order as [`schur_columns`] (the same bits). Hand-rolled because the
/// blocks (2 × 2 for `(x | subject) + (x | item)`) are far below what a BLAS call pays for.
fn schur_columns_uniform<const Q0: usize, const QT: usize>(
    index: &ColumnIndex,
    cp: &CrossProducts,
    l21: &[f64],
    t: usize,
    cols: &mut [f64],
    m: usize,
) {
    let b = Q0 * QT;
    for k in index.ptr[t]..index.ptr[t + 1] {
        let (e2, end) = (index.entry[k] as usize, index.end[k] as usize);
        let b2 = &l21[e2 * b..(e2 + 1) * b];
        let rows = l21[e2 * b..end * b].chunks_exact(b);
        for (e1, (&n1, b1)) in (e2..end).zip(cp.a21_node[e2..end].iter().zip(rows)) {
            let r0 = n1 as usize * QT;
            for c in 0..QT {
                let rstart = if e1 == e2 { c } else { 0 };
                let col = &mut cols[c * m + r0..c * m + r0 + QT];
                for r in rstart..QT {
                    // -0.0: the start of `Iterator::sum` for floats, as in `schur_columns`.
                    let mut v = -0.0;
                    for kk in 0..Q0 {
                        v += b1[kk * QT + r] * b2[kk * QT + c];
                    }
                    col[r] -= v;
                }
            }
        }
    }
}

/// The `q_t` columns of node `t` of `S −= L21 L21'` (`cols` holds them, leading dimension `m`).
fn schur_columns(
    index: &ColumnIndex,
    cp: &CrossProducts,
    l21: &[f64],
    t: usize,
    cols: &mut [f64],
    m: usize,
) {
    let layout = &cp.layout;
    let q0 = cp.q0;
    let qc = layout.node_q(t);
    for k in index.ptr[t]..index.ptr[t + 1] {
        let (e2, end) = (index.entry[k] as usize, index.end[k] as usize);
        let b2 = &l21[cp.a21_val_off[e2]..cp.a21_val_off[e2 + 1]];
        for e1 in e2..end {
            let n1 = cp.a21_node[e1] as usize;
            let r0 = layout.node_offset[n1];
            let qr = layout.node_q(n1);
            let b1 = &l21[cp.a21_val_off[e1]..cp.a21_val_off[e1 + 1]];
            for c in 0..qc {
                let rstart = if e1 == e2 { c } else { 0 };
                let col = &mut cols[c * m..(c + 1) * m];
                for r in rstart..qr {
                    let v: f64 = (0..q0).map(|kk| b1[kk * qr + r] * b2[kk * qc + c]).sum();
                    col[r0 + r] -= v;
                }
            }
        }
    }
}
