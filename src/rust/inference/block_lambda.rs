//! The relative covariance factor `Λ` as what it is, a block-diagonal matrix (one lower-
//! triangular `T_b` per level of each random-effects block, in the blocked internal order of
//! the cross-products), with the products Kenward–Roger's dense algebra needs: `Λ'MΛ`, `Λ'M`
//! and `ΛM` for a dense `M` in `O(q² b)` operations (`b` the largest block) rather than the
//! `O(q³)` of a dense product, and `Λ⁻¹`, block by block.
use crate::blocks::CrossProducts;
use crate::terms::ReStructure;
use faer::Mat;

/// `Λ` by its distinct blocks: each `T_b` (`q_b × q_b`, column-major, lower triangular) and
/// the first coordinate of each of its copies (one per level).
#[derive(Debug, Clone)]
pub(crate) struct BlockLambda {
    blocks: Vec<Block>,
    q: usize,
    /// For each coordinate, its block and the first coordinate of its copy.
    locate: Vec<(usize, usize)>,
}

#[derive(Debug, Clone)]
struct Block {
    qb: usize,
    t: Vec<f64>,
    bases: Vec<usize>,
}

impl Block {
    fn t(&self, r: usize, c: usize) -> f64 {
        self.t[c * self.qb + r]
    }
}

impl BlockLambda {
    /// `Λ` of `re` at the factors `lambda` (each block's `T_b`, column-major) in the order of
    /// `cp`'s coordinates.
    pub(crate) fn new(re: &ReStructure, cp: &CrossProducts, lambda: &[Vec<f64>]) -> Self {
        let layout = &cp.layout;
        let lead = cp.l0 * cp.q0;
        let blocks = re
            .blocks
            .iter()
            .enumerate()
            .map(|(bk, block)| {
                let qb = block.q;
                let bases = (0..block.n_levels)
                    .map(|l| {
                        if bk == 0 {
                            l * qb
                        } else {
                            lead + layout.node_offset[layout.block_node_base[bk] + l]
                        }
                    })
                    .collect();
                let mut t = vec![0.0; qb * qb];
                for c in 0..qb {
                    for r in c..qb {
                        t[c * qb + r] = lambda[bk][c * qb + r];
                    }
                }
                Block { qb, t, bases }
            })
            .collect();
        Self::from_blocks(blocks, lead + layout.m)
    }

    /// `Λ` of `q` coordinates from its blocks, each `(q_b, T_b column-major, first coordinate
    /// of each copy)`.
    #[cfg(test)]
    pub(crate) fn from_parts(parts: Vec<(usize, Vec<f64>, Vec<usize>)>, q: usize) -> Self {
        let blocks = parts
            .into_iter()
            .map(|(qb, t, bases)| Block { qb, t, bases })
            .collect();
        Self::from_blocks(blocks, q)
    }

    /// `Λ` as a dense `q × q` matrix.
    #[cfg(test)]
    pub(crate) fn dense(&self) -> Mat<f64> {
        let mut out = Mat::<f64>::zeros(self.q, self.q);
        for b in &self.blocks {
            for &base in &b.bases {
                for c in 0..b.qb {
                    for r in 0..b.qb {
                        out[(base + r, base + c)] = b.t(r, c);
                    }
                }
            }
        }
        out
    }

    fn from_blocks(blocks: Vec<Block>, q: usize) -> Self {
        let mut locate = vec![(0, 0); q];
        for (k, b) in blocks.iter().enumerate() {
            for &base in &b.bases {
                for c in 0..b.qb {
                    locate[base + c] = (k, base);
                }
            }
        }
        Self { blocks, q, locate }
    }

    /// `Λ⁻¹` (each `T_b` inverted by forward substitution), or `None` when some `T_b` has a
    /// zero on its diagonal (a variance at its bound of 0).
    pub(crate) fn inverse(&self) -> Option<Self> {
        let blocks = self
            .blocks
            .iter()
            .map(|b| {
                let qb = b.qb;
                let mut inv = vec![0.0; qb * qb];
                for c in 0..qb {
                    // Column c of T⁻¹: T x = e_c.
                    for r in c..qb {
                        let rhs = if r == c { 1.0 } else { 0.0 };
                        let s: f64 = (c..r).map(|k| b.t(r, k) * inv[c * qb + k]).sum();
                        let d = b.t(r, r);
                        if d == 0.0 || !d.is_finite() {
                            return None;
                        }
                        inv[c * qb + r] = (rhs - s) / d;
                    }
                }
                Some(Block {
                    qb,
                    t: inv,
                    bases: b.bases.clone(),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self::from_blocks(blocks, self.q))
    }

    /// `m ← m Λ` in place (`m` with `q` columns).
    fn right_multiply(&self, m: &mut Mat<f64>) {
        debug_assert_eq!(m.ncols(), self.q);
        let rows = m.nrows();
        for b in &self.blocks {
            for &base in &b.bases {
                // New column c = Σ_{r ≥ c} m[:, base + r] T[r, c]: ascending c reads only the
                // old columns c.. (column c itself last).
                for c in 0..b.qb {
                    for i in 0..rows {
                        let v: f64 = (c..b.qb).map(|r| m[(i, base + r)] * b.t(r, c)).sum();
                        m[(i, base + c)] = v;
                    }
                }
            }
        }
    }

    /// `m ← Λ' m` in place (`m` with `q` rows).
    pub(crate) fn transpose_left_multiply(&self, m: &mut Mat<f64>) {
        debug_assert_eq!(m.nrows(), self.q);
        let cols = m.ncols();
        for b in &self.blocks {
            for &base in &b.bases {
                // New row c = Σ_{r ≥ c} T[r, c] m[base + r, :].
                for c in 0..b.qb {
                    for j in 0..cols {
                        let v: f64 = (c..b.qb).map(|r| b.t(r, c) * m[(base + r, j)]).sum();
                        m[(base + c, j)] = v;
                    }
                }
            }
        }
    }

    /// `m ← Λ m` in place (`m` with `q` rows).
    pub(crate) fn left_multiply(&self, m: &mut Mat<f64>) {
        debug_assert_eq!(m.nrows(), self.q);
        let cols = m.ncols();
        for b in &self.blocks {
            for &base in &b.bases {
                // New row r = Σ_{c ≤ r} T[r, c] m[base + c, :]: descending r reads only the old
                // rows ..=r.
                for r in (0..b.qb).rev() {
                    for j in 0..cols {
                        let v: f64 = (0..=r).map(|c| b.t(r, c) * m[(base + c, j)]).sum();
                        m[(base + r, j)] = v;
                    }
                }
            }
        }
    }

    /// `m ← Λ' m Λ` in place (`m` is `q × q`).
    pub(crate) fn sandwich(&self, m: &mut Mat<f64>) {
        self.right_multiply(m);
        self.transpose_left_multiply(m);
    }

    /// The coordinates of the block copy holding coordinate `i` and the column of `Λ` at `i`
    /// within it: `(base, qb, c)` with `i = base + c`.
    pub(crate) fn column_of(&self, i: usize) -> (usize, usize, &[f64]) {
        let (k, base) = self.locate[i];
        let b = &self.blocks[k];
        let c = i - base;
        (base, c, &b.t[c * b.qb..(c + 1) * b.qb])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two blocks: a 2 × 2 factor copied at 0 and 3, a scalar at 2 and 5.
    fn example() -> BlockLambda {
        BlockLambda::from_blocks(
            vec![
                Block {
                    qb: 2,
                    t: vec![1.5, -0.4, 0.0, 0.7],
                    bases: vec![0, 3],
                },
                Block {
                    qb: 1,
                    t: vec![0.3],
                    bases: vec![2, 5],
                },
            ],
            6,
        )
    }

    fn close(a: &Mat<f64>, b: &Mat<f64>) {
        for i in 0..a.nrows() {
            for j in 0..a.ncols() {
                assert!((a[(i, j)] - b[(i, j)]).abs() < 1e-12, "({i}, {j})");
            }
        }
    }

    #[test]
    fn products_and_inverse_match_the_dense_matrix() {
        let l = example();
        let d = l.dense();
        let m = Mat::from_fn(6, 6, |i, j| {
            ((i * 7 + j * 3) % 5) as f64 - 1.7 + (i == j) as u8 as f64
        });
        let mut s = m.clone();
        l.sandwich(&mut s);
        close(&s, &(d.transpose() * &m * &d));
        let mut left = m.clone();
        l.left_multiply(&mut left);
        close(&left, &(&d * &m));
        let mut tl = m.clone();
        l.transpose_left_multiply(&mut tl);
        close(&tl, &(d.transpose() * &m));
        let inv = l.inverse().expect("invertible").dense();
        close(&(&inv * &d), &Mat::<f64>::identity(6, 6));
        let (base, c, col) = l.column_of(4);
        assert_eq!((base, c), (3, 1));
        assert_eq!(col, &[0.0, 0.7]);
    }

    #[test]
    fn a_zero_on_the_diagonal_has_no_inverse() {
        let mut l = example();
        l.blocks[1].t[0] = 0.0;
        assert!(l.inverse().is_none());
    }
}
