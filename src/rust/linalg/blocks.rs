//! Cross-products `A = [Z X y]' W [Z X y]` in blocked, sparse form: the stored products and
//! their layout.
//!
//! Random effects are split into the *leading* block (the grouping factor with most levels) and
//! the *trailing* blocks (all others). With `F = [X, y − offset]` (`p + 1` columns) the pieces are
//!
//! ```text
//!   A11 = Z₀'WZ₀  block diagonal: one q₀×q₀ block per level of the leading factor
//!   A21 = Zₜ'WZ₀  sparse: one qₜ×q₀ block per (leading level, trailing node) pair that co-occurs
//!   A22 = Zₜ'WZₜ  diagonal node blocks plus sparse blocks between different trailing factors
//!   AF1 = F'WZ₀, AF2 = F'WZₜ  dense, (p+1) rows
//!   AFF = F'WF    dense (p+1)×(p+1)
//! ```
//!
//! A *node* is one level of one trailing grouping factor; it owns `q_b` consecutive coordinates of
//! the trailing random-effects vector.
//!
//! [`CrossProducts`] is a value: built from the rows of a model by [`super::assemble`] (one pass
//! over the observations; the maps that let PIRLS revisit them live there, beside it), or handed
//! in complete ([`CrossProducts::from_parts`], e.g. from an engine's GROUP BY sums). Nothing
//! after it touches the n observations again until the final fitted values.
use crate::error::{invalid, MixedError, Result};
use crate::spec::ModelSpec;
use crate::terms::ReStructure;

/// Coordinates of the trailing random effects.
#[derive(Debug, Clone, Default)]
pub struct TrailingLayout {
    /// First node id of each block (entry 0, the leading block, is unused and 0).
    pub block_node_base: Vec<usize>,
    /// Scalar offset of each node (length `n_nodes + 1`, last entry is `m`).
    pub node_offset: Vec<usize>,
    /// Block index of each node.
    pub node_block: Vec<u32>,
    /// Total dimension `m` of the trailing random effects.
    pub m: usize,
}

impl TrailingLayout {
    /// The trailing coordinates of `re`: the levels of blocks `1..`, block by block.
    pub fn new(re: &ReStructure) -> Self {
        let mut block_node_base = vec![0; re.blocks.len()];
        let mut node_offset = Vec::new();
        let mut node_block = Vec::new();
        let mut m = 0;
        for (b, block) in re.blocks.iter().enumerate().skip(1) {
            block_node_base[b] = node_block.len();
            for _ in 0..block.n_levels {
                node_offset.push(m);
                node_block.push(b as u32);
                m += block.q;
            }
        }
        node_offset.push(m);
        Self {
            block_node_base,
            node_offset,
            node_block,
            m,
        }
    }

    /// Number of trailing nodes.
    pub fn n_nodes(&self) -> usize {
        self.node_block.len()
    }

    /// Number of coordinates of node `t`.
    #[inline]
    pub fn node_q(&self, t: usize) -> usize {
        self.node_offset[t + 1] - self.node_offset[t]
    }
}

/// The blocked cross-product matrix of a model.
#[derive(Debug, Clone)]
pub struct CrossProducts {
    /// Number of observations.
    pub n: usize,
    /// Number of fixed effects `p`; `F` has `pf = p + 1` columns.
    pub p: usize,
    /// Columns of the leading block.
    pub q0: usize,
    /// Levels of the leading block.
    pub l0: usize,
    /// `A11`: `l0` column-major `q0 × q0` blocks.
    pub a11: Vec<f64>,
    /// Trailing coordinates.
    pub layout: TrailingLayout,
    /// `A21` entries of leading level `j` are `a21_ptr[j]..a21_ptr[j + 1]`, nodes ascending.
    pub a21_ptr: Vec<usize>,
    /// Trailing node of each `A21` entry.
    pub a21_node: Vec<u32>,
    /// Start of each entry's `q_node × q0` column-major block in `a21_vals` (one extra at the end).
    pub a21_val_off: Vec<usize>,
    /// Values of the `A21` blocks.
    pub a21_vals: Vec<f64>,
    /// Start of each trailing node's diagonal `q × q` block in `a22_diag` (one extra at the end).
    pub a22_diag_off: Vec<usize>,
    /// Diagonal node blocks of `A22`.
    pub a22_diag: Vec<f64>,
    /// Off-diagonal `A22` blocks between nodes of different trailing factors: `(row, col)` nodes,
    /// `row > col`, sorted by `(row, col)`.
    pub a22_pairs: Vec<(u32, u32)>,
    /// Start of each pair's `q_row × q_col` block in `a22_pair_vals` (one extra at the end).
    pub a22_pair_off: Vec<usize>,
    /// Values of the off-diagonal `A22` blocks.
    pub a22_pair_vals: Vec<f64>,
    /// `AF1`: `(p+1) × (l0 q0)` column-major.
    pub af1: Vec<f64>,
    /// `AF2`: `(p+1) × m` column-major.
    pub af2: Vec<f64>,
    /// `AFF`: `(p+1) × (p+1)` column-major.
    pub aff: Vec<f64>,
    /// `b₀` (`p` values; empty for none) where the response column of `F` holds
    /// `y − offset − X b₀` rather than `y − offset`: a response far from 0 relative to its
    /// residuals has `b₀` moved out of it (see `assemble::from_rows`). The likelihood and every
    /// piece of it are the same for either response; the fixed effects solved from these
    /// cross-products are those of the shifted response, and [`BlockedCholesky::solve`] adds
    /// `b₀` back.
    ///
    /// [`BlockedCholesky::solve`]: crate::chol::BlockedCholesky::solve
    pub response_shift: Vec<f64>,
}

/// The blocks of a cross-product matrix formed elsewhere, for [`CrossProducts::from_parts`]:
/// the sparsity pattern of `A21` and `A22` and the values of every block, laid out as the fields
/// of [`CrossProducts`] of the same names (the offsets into the value vectors follow from the
/// pattern and the random-effects structure).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CrossProductParts {
    /// Number of observations.
    pub n: usize,
    /// Number of fixed effects `p` (`F` has `p + 1` columns).
    pub p: usize,
    /// `A11`: one column-major `q0 × q0` block per level of the leading factor.
    pub a11: Vec<f64>,
    /// `A21` entries of leading level `j` are `a21_ptr[j]..a21_ptr[j + 1]` (`l0 + 1` values).
    pub a21_ptr: Vec<usize>,
    /// Trailing node of each `A21` entry, strictly ascending within a leading level.
    pub a21_node: Vec<u32>,
    /// The `q_node × q0` column-major blocks of the `A21` entries, in entry order.
    pub a21_vals: Vec<f64>,
    /// The diagonal `q × q` blocks of `A22`, one per trailing node in node order.
    pub a22_diag: Vec<f64>,
    /// Off-diagonal `A22` blocks: `(row, col)` nodes of different trailing factors, `row > col`,
    /// strictly ascending by `(row, col)`.
    pub a22_pairs: Vec<(u32, u32)>,
    /// The `q_row × q_col` column-major blocks of the pairs, in pair order.
    pub a22_pair_vals: Vec<f64>,
    /// `AF1`: `(p+1) × (l0 q0)` column-major.
    pub af1: Vec<f64>,
    /// `AF2`: `(p+1) × m` column-major.
    pub af2: Vec<f64>,
    /// `AFF`: `(p+1) × (p+1)` column-major.
    pub aff: Vec<f64>,
}

/// How far the two triangles of a diagonal block handed in may differ, relative to
/// `√(a_rr a_cc)` (which bounds `|a_rc|` for a cross-product): the rounding of sums formed in
/// either order, far below any real asymmetry.
const SYMMETRY_TOL: f64 = 1e-8;

/// A vector of `len` zeros, or an out-of-memory error naming `what` when it cannot be allocated.
pub(crate) fn try_zeros(len: usize, what: &str) -> Result<Vec<f64>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| MixedError::OutOfMemory(format!("{what} needs {len} values")))?;
    v.resize(len, 0.0);
    Ok(v)
}

impl CrossProducts {
    /// Sets every value (not the pattern) to `value`: 0 before a fill sums into them, NaN to
    /// mark them unusable.
    pub fn set_values(&mut self, value: f64) {
        for v in [
            &mut self.a11,
            &mut self.a21_vals,
            &mut self.a22_diag,
            &mut self.a22_pair_vals,
            &mut self.af1,
            &mut self.af2,
            &mut self.aff,
        ] {
            v.fill(value);
        }
    }

    /// The cross-products with the given `A21` and `A22` pattern (which the caller guarantees
    /// valid for `re`) and zero values.
    pub(crate) fn with_pattern(
        re: &ReStructure,
        n: usize,
        p: usize,
        a21_ptr: Vec<usize>,
        a21_node: Vec<u32>,
        a22_pairs: Vec<(u32, u32)>,
    ) -> Result<Self> {
        let pf = p + 1;
        let layout = TrailingLayout::new(re);
        let q0 = re.blocks[0].q;
        let l0 = re.blocks[0].n_levels;
        let mut a21_val_off = Vec::with_capacity(a21_node.len() + 1);
        let mut off = 0;
        for &node in &a21_node {
            a21_val_off.push(off);
            off += layout.node_q(node as usize) * q0;
        }
        a21_val_off.push(off);
        let mut a22_pair_off = Vec::with_capacity(a22_pairs.len() + 1);
        let mut off = 0;
        for &(row, col) in &a22_pairs {
            a22_pair_off.push(off);
            off += layout.node_q(row as usize) * layout.node_q(col as usize);
        }
        a22_pair_off.push(off);
        let n_nodes = layout.n_nodes();
        let mut a22_diag_off = Vec::with_capacity(n_nodes + 1);
        let mut off = 0;
        for t in 0..n_nodes {
            a22_diag_off.push(off);
            off += layout.node_q(t) * layout.node_q(t);
        }
        a22_diag_off.push(off);
        Ok(Self {
            n,
            p,
            q0,
            l0,
            a11: try_zeros(l0 * q0 * q0, "A11")?,
            a21_ptr,
            a21_node,
            a21_vals: try_zeros(*a21_val_off.last().unwrap_or(&0), "A21")?,
            a21_val_off,
            a22_diag: try_zeros(off, "A22")?,
            a22_diag_off,
            a22_pair_vals: try_zeros(*a22_pair_off.last().unwrap_or(&0), "A22")?,
            a22_pairs,
            a22_pair_off,
            af1: try_zeros(pf * l0 * q0, "F'Z")?,
            af2: try_zeros(pf * layout.m, "F'Z")?,
            aff: vec![0.0; pf * pf],
            layout,
            response_shift: Vec::new(),
        })
    }

    /// Cross-products handed in complete (formed elsewhere, e.g. as an engine's GROUP BY sums)
    /// for the random-effects structure `re`. Validates the pattern (pointers, nodes in range
    /// and ascending, pairs between different trailing factors), the size of every block, that
    /// every value is finite, and that the diagonal blocks (`A11`, `A22`'s node blocks, `AFF`)
    /// are symmetric with non-negative diagonals.
    pub fn from_parts(re: &ReStructure, parts: CrossProductParts) -> Result<Self> {
        let CrossProductParts {
            n,
            p,
            a11,
            a21_ptr,
            a21_node,
            a21_vals,
            a22_diag,
            a22_pairs,
            a22_pair_vals,
            af1,
            af2,
            aff,
        } = parts;
        if n == 0 {
            return invalid("cross-products of no observations");
        }
        let layout = TrailingLayout::new(re);
        let l0 = re.blocks[0].n_levels;
        let n_nodes = layout.n_nodes();
        if a21_ptr.len() != l0 + 1
            || a21_ptr[0] != 0
            || a21_ptr[l0] != a21_node.len()
            || a21_ptr.windows(2).any(|w| w[0] > w[1])
        {
            return invalid(format!(
                "the A21 pointers must rise from 0 to the number of entries ({}) over the {l0}                  leading levels",
                a21_node.len()
            ));
        }
        for j in 0..l0 {
            let nodes = &a21_node[a21_ptr[j]..a21_ptr[j + 1]];
            if nodes.iter().any(|&t| t as usize >= n_nodes)
                || nodes.windows(2).any(|w| w[0] >= w[1])
            {
                return invalid(format!(
                    "the A21 nodes of leading level {} must be distinct trailing nodes (below                      {n_nodes}) in ascending order",
                    j + 1
                ));
            }
        }
        let in_range = |&(r, c): &(u32, u32)| (r as usize) < n_nodes && c < r;
        if let Some(&(r, c)) = a22_pairs.iter().find(|pair| {
            !in_range(pair)
                || layout.node_block[pair.0 as usize] == layout.node_block[pair.1 as usize]
        }) {
            return invalid(format!(
                "the A22 pair ({r}, {c}) is not a pair of nodes of different trailing factors                  with row > col"
            ));
        }
        if a22_pairs.windows(2).any(|w| w[0] >= w[1]) {
            return invalid("the A22 pairs must be distinct and in ascending order");
        }
        let mut cp = Self::with_pattern(re, n, p, a21_ptr, a21_node, a22_pairs)?;
        for (name, have, want) in [
            ("A11", &a11, &mut cp.a11),
            ("A21", &a21_vals, &mut cp.a21_vals),
            ("A22 (node blocks)", &a22_diag, &mut cp.a22_diag),
            ("A22 (pairs)", &a22_pair_vals, &mut cp.a22_pair_vals),
            ("AF1", &af1, &mut cp.af1),
            ("AF2", &af2, &mut cp.af2),
            ("AFF", &aff, &mut cp.aff),
        ] {
            if have.len() != want.len() {
                return invalid(format!(
                    "{name} has {} values, the pattern needs {}",
                    have.len(),
                    want.len()
                ));
            }
            if let Some(i) = have.iter().position(|v| !v.is_finite()) {
                return invalid(format!("{name} value {} is not finite", i + 1));
            }
            want.copy_from_slice(have);
        }
        let q0 = cp.q0;
        for j in 0..l0 {
            check_symmetric(&cp.a11[j * q0 * q0..(j + 1) * q0 * q0], q0, "an A11 block")?;
        }
        for t in 0..n_nodes {
            let block = &cp.a22_diag[cp.a22_diag_off[t]..cp.a22_diag_off[t + 1]];
            check_symmetric(block, cp.layout.node_q(t), "an A22 node block")?;
        }
        check_symmetric(&cp.aff, cp.pf(), "AFF")?;
        Ok(cp)
    }

    /// The pattern and values (see [`CrossProducts::from_parts`], which takes them back).
    pub fn into_parts(self) -> CrossProductParts {
        CrossProductParts {
            n: self.n,
            p: self.p,
            a11: self.a11,
            a21_ptr: self.a21_ptr,
            a21_node: self.a21_node,
            a21_vals: self.a21_vals,
            a22_diag: self.a22_diag,
            a22_pairs: self.a22_pairs,
            a22_pair_vals: self.a22_pair_vals,
            af1: self.af1,
            af2: self.af2,
            aff: self.aff,
        }
    }

    /// Index of the `A21` entry for leading level `j` and trailing node `node`.
    pub fn find_a21(&self, j: usize, node: usize) -> Result<usize> {
        let range = self.a21_ptr[j]..self.a21_ptr[j + 1];
        self.a21_node[range.clone()]
            .binary_search(&(node as u32))
            .map(|k| range.start + k)
            .map_err(|_| MixedError::InvalidInput("internal: A21 pattern is incomplete".into()))
    }

    /// Index of the off-diagonal `A22` block between nodes `row > col`.
    pub fn find_a22_pair(&self, row: usize, col: usize) -> Result<usize> {
        self.a22_pairs
            .binary_search(&(row as u32, col as u32))
            .map_err(|_| MixedError::InvalidInput("internal: A22 pattern is incomplete".into()))
    }

    /// The blocks of leading level `j` in `vals` (laid out as `a21_vals`: `A21`, or the factor's
    /// `L21`): for each trailing node the level touches, ascending, the node's first trailing
    /// coordinate, its size `q_node` and its `q_node × q0` column-major block.
    pub fn leading_blocks<'v>(
        &'v self,
        j: usize,
        vals: &'v [f64],
    ) -> impl Iterator<Item = (usize, usize, &'v [f64])> + 'v {
        (self.a21_ptr[j]..self.a21_ptr[j + 1]).map(move |e| {
            let node = self.a21_node[e] as usize;
            (
                self.layout.node_offset[node],
                self.layout.node_q(node),
                &vals[self.a21_val_off[e]..self.a21_val_off[e + 1]],
            )
        })
    }

    /// Number of columns of `F = [X, y]`.
    pub fn pf(&self) -> usize {
        self.p + 1
    }

    /// The response of observation `i` as the response column of `F` holds it:
    /// `yᵢ − offsetᵢ − xᵢ'b₀` (see [`CrossProducts::response_shift`]; `x` is `spec`'s `n × p`
    /// column-major fixed-effects matrix).
    pub fn shifted_response(&self, spec: &ModelSpec<'_>, i: usize) -> f64 {
        let n = spec.n;
        let shift: f64 = (self.response_shift.iter().enumerate())
            .map(|(c, b)| spec.x[c * n + i] * b)
            .sum();
        spec.y_adjusted(i) - shift
    }

    /// Walks the lower triangle of `L21 L21' = Σ_j L21_j L21_j'` (with `l21` laid out as
    /// `a21_vals`), one column segment at a time: `f(row, col, values)` receives the values of
    /// rows `row, row + 1, …` of column `col` contributed by one pair of `L21` blocks. Every
    /// storage of the trailing block subtracts them in its own way.
    pub fn for_each_schur_segment(&self, l21: &[f64], mut f: impl FnMut(usize, usize, &[f64])) {
        let layout = &self.layout;
        let q0 = self.q0;
        let max_q = (0..layout.n_nodes())
            .map(|t| layout.node_q(t))
            .max()
            .unwrap_or(1);
        let mut seg = vec![0.0; max_q];
        for j in 0..self.l0 {
            let range = self.a21_ptr[j]..self.a21_ptr[j + 1];
            for e2 in range.clone() {
                let n2 = self.a21_node[e2] as usize;
                let c0 = layout.node_offset[n2];
                let qc = layout.node_q(n2);
                let b2 = &l21[self.a21_val_off[e2]..self.a21_val_off[e2 + 1]];
                for e1 in e2..range.end {
                    let n1 = self.a21_node[e1] as usize;
                    let r0 = layout.node_offset[n1];
                    let qr = layout.node_q(n1);
                    let b1 = &l21[self.a21_val_off[e1]..self.a21_val_off[e1 + 1]];
                    for c in 0..qc {
                        let rstart = if e1 == e2 { c } else { 0 };
                        for (s, r) in seg.iter_mut().zip(rstart..qr) {
                            *s = (0..q0).map(|k| b1[k * qr + r] * b2[k * qc + c]).sum();
                        }
                        f(r0 + rstart, c0 + c, &seg[..qr - rstart]);
                    }
                }
            }
        }
    }
}

/// Checks that the column-major `q × q` block `a` is symmetric (within [`SYMMETRY_TOL`]) with a
/// non-negative diagonal, as a cross-product is.
fn check_symmetric(a: &[f64], q: usize, what: &str) -> Result<()> {
    for c in 0..q {
        let acc = a[c * q + c];
        if acc < 0.0 {
            return invalid(format!("{what} has a negative diagonal entry ({acc})"));
        }
        for r in c + 1..q {
            let (upper, lower) = (a[r * q + c], a[c * q + r]);
            let scale = (acc * a[r * q + r]).sqrt();
            if (upper - lower).abs() > SYMMETRY_TOL * scale {
                return invalid(format!(
                    "{what} is not symmetric: entries ({}, {}) and ({}, {}) are {lower} and                      {upper}",
                    r + 1,
                    c + 1,
                    c + 1,
                    r + 1
                ));
            }
        }
    }
    Ok(())
}
