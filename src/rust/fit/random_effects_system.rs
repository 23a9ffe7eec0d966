//! The random-effects system of the Laplace approximation in sparse form,
//!
//! ```text
//!   H = I + Aᵀ V A,   A = ZΛ,   V = diag(vᵢ),
//! ```
//!
//! for any row weights `v`: entry `(j, k)` is nonzero only where random effects `j` and `k`
//! share a row, so its pattern (with the diagonal) is the union of each row's pairs. The
//! pattern, its symbolic factorization (a fill-reducing order) and, for every row, where its
//! pairs land in `H` and in the factor are found once, when the model first needs them;
//! assembling `H` for new weights is then one pass over the rows and a numeric factorization.
//! Every entry of `H⁻¹` the gradient reads (pairs within a row) lies in the pattern of `H`,
//! hence in its selected inverse.
use super::laplace_gradient::DesignRows;
use crate::error::Result;
use crate::linalg::selected_inverse::{SparseCholesky, SparseSymbolic};
use faer::Par;
use std::sync::Arc;

/// How many passes over the rows' pairs of random effects the selected inverse of `H` may cost
/// for the exact gradient to be worth it for lme4's families, whose BOBYQA stages need no
/// gradient. Measured (2 cores, binary responses on simulated crossed designs, the cheaper of
/// the two orders [`SparseSymbolic::cheapest`] tries and the dense trailing block's columns in
/// vector lanes; whole fits with the quasi-Newton stage and the Hessian from the gradient
/// against glmer's BOBYQA stages and differences of the criterion): 500 × 300 levels, 30,000
/// rows (112 passes) 0.36 s against 0.54 s; 1,000 × 400, 30,000 rows (244 passes) 0.48 s
/// against 0.86 s; 700 × 700, 100,000 rows (380 passes) 2.3 s against 4.5 s; 700 × 700, 30,000
/// rows (1,279 passes) 1.46 s against 1.72 s; 750 × 750, 10,000 rows (about 4,700 passes)
/// 1.07 s against 1.25 s: the gradient won on every design tried, and the bound sits just
/// above them. VerbAgg has 8 passes, grouseticks 0.7.
pub(super) const CHEAP_INVERSE_PASSES: f64 = 5000.0;

/// The pattern of `H` (lower triangle, compressed sparse columns) and each row's entries in it.
pub(super) struct RandomEffectsSystem {
    symbolic: Arc<SparseSymbolic>,
    /// Number of entries in the pattern of `H`.
    len: usize,
    /// Position of each column's diagonal entry.
    diagonal: Vec<usize>,
    /// For row `i`, `per_row (per_row + 1)/2` positions: the pair `(x, y)`, `y ≤ x`, of its
    /// entries of `A` at `i · pairs + x(x + 1)/2 + y`.
    positions: Vec<usize>,
    /// The same pairs' positions among the values of the factor (and the selected inverse).
    factor_positions: Vec<usize>,
    pairs: usize,
    per_row: usize,
}

impl RandomEffectsSystem {
    /// The pattern of `H` for `q` random effects and the rows' indices (`per_row` per row).
    pub(super) fn new(q: usize, per_row: usize, rows: &DesignRows) -> Result<Self> {
        let n = rows.index.len() / per_row.max(1);
        let pairs = per_row * (per_row + 1) / 2;
        let key = |r: usize, c: usize| c as u64 * q as u64 + r as u64;
        let mut keys: Vec<u64> = (0..q).map(|j| key(j, j)).collect();
        keys.reserve(n * pairs);
        for i in 0..n {
            let idx = &rows.index[i * per_row..(i + 1) * per_row];
            for x in 0..per_row {
                for y in 0..=x {
                    let (r, c) = (idx[x].max(idx[y]), idx[x].min(idx[y]));
                    keys.push(key(r, c));
                }
            }
        }
        keys.sort_unstable();
        keys.dedup();
        let mut col_ptr = vec![0usize; q + 1];
        let mut row_idx = Vec::with_capacity(keys.len());
        for &k in &keys {
            col_ptr[(k / q as u64) as usize + 1] += 1;
            row_idx.push((k % q as u64) as usize);
        }
        for c in 0..q {
            col_ptr[c + 1] += col_ptr[c];
        }
        // Each column starts with its diagonal (rows sorted, r ≥ c).
        let diagonal = col_ptr[..q].to_vec();
        let find = |r: usize, c: usize| -> usize {
            let col = &row_idx[col_ptr[c]..col_ptr[c + 1]];
            col_ptr[c]
                + col
                    .binary_search(&r)
                    .unwrap_or_else(|_| unreachable!("pattern"))
        };
        let mut positions = vec![0usize; n * pairs];
        for i in 0..n {
            let idx = &rows.index[i * per_row..(i + 1) * per_row];
            for x in 0..per_row {
                for y in 0..=x {
                    let (r, c) = (idx[x].max(idx[y]), idx[x].min(idx[y]));
                    positions[i * pairs + x * (x + 1) / 2 + y] = find(r, c);
                }
            }
        }
        let symbolic = Arc::new(SparseSymbolic::cheapest(q, &col_ptr, &row_idx)?);
        let mut factor_positions = vec![0usize; n * pairs];
        for i in 0..n {
            let idx = &rows.index[i * per_row..(i + 1) * per_row];
            for x in 0..per_row {
                for y in 0..=x {
                    factor_positions[i * pairs + x * (x + 1) / 2 + y] = symbolic
                        .entry(idx[x], idx[y])
                        .unwrap_or_else(|| unreachable!("the factor's pattern holds H's"));
                }
            }
        }
        Ok(Self {
            symbolic,
            len: row_idx.len(),
            diagonal,
            positions,
            factor_positions,
            pairs,
            per_row,
        })
    }

    /// Whether the selected inverse costs at most about as much as [`CHEAP_INVERSE_PASSES`]
    /// passes over the rows' pairs (see there).
    pub(super) fn cheap_inverse(&self) -> bool {
        let rows_work = (self.positions.len() as f64).max(1.0);
        self.symbolic.inverse_work() <= CHEAP_INVERSE_PASSES * rows_work
    }

    /// Where `H⁻¹` at the pair `(x, y)` of row `i`'s random effects (either order) sits in the
    /// selected inverse.
    #[inline]
    pub(super) fn inverse_position(&self, i: usize, x: usize, y: usize) -> usize {
        let (x, y) = if y <= x { (x, y) } else { (y, x) };
        self.factor_positions[i * self.pairs + x * (x + 1) / 2 + y]
    }

    /// The factor of `H` with row weights `v` (`rows.a` the rows of `A`).
    pub(super) fn factor(&self, rows: &DesignRows, v: &[f64], par: Par) -> Result<SparseCholesky> {
        let m = self.per_row;
        let mut values = vec![0.0; self.len];
        for &d in &self.diagonal {
            values[d] = 1.0;
        }
        for (i, &w) in v.iter().enumerate() {
            let a = &rows.a[i * m..(i + 1) * m];
            let pos = &self.positions[i * self.pairs..(i + 1) * self.pairs];
            for x in 0..m {
                let wa = w * a[x];
                for y in 0..=x {
                    values[pos[x * (x + 1) / 2 + y]] += wa * a[y];
                }
            }
        }
        self.symbolic.factor(
            &values,
            par,
            "the random effects' system of the Laplace approximation",
        )
    }
}
