//! Sparse symmetric positive definite matrices: the simplicial Cholesky factor
//! `P S Pᵀ = L Lᵀ` in a fill-reducing (AMD) order, solves with it, and the *selected inverse*
//! `Z = S⁻¹` on the pattern of `L` only, from the Takahashi recurrences, for `j = m−1, …, 0` and
//! `i` in the pattern `R_j` of column `j` below the diagonal:
//!
//! ```text
//!   Z_ij = −(1/L_jj) Σ_{k∈R_j} L_kj Z_ik,       Z_jj = 1/L_jj² − (1/L_jj) Σ_{k∈R_j} L_kj Z_kj
//! ```
//!
//! (every `Z_ik` with `i, k ∈ R_j` lies in the pattern of column `min(i, k)`). That costs about
//! as much as the factorization and never forms a dense `m × m` matrix; every entry of `S⁻¹`
//! at a nonzero of `S` is in the pattern, since `L`'s pattern holds `S`'s.
use crate::blocks::try_zeros;
use crate::error::{invalid, MixedError, Result};
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::LltRegularization;
use faer::perm::PermRef;
use faer::sparse::linalg::cholesky::{
    factorize_symbolic_cholesky, CholeskySymbolicParams, LltRef, SymbolicCholesky,
    SymbolicCholeskyRaw, SymmetricOrdering,
};
use faer::sparse::linalg::SupernodalThreshold;
use faer::sparse::{SparseColMatRef, SymbolicSparseColMatRef};
use faer::{Conj, MatMut, Par, Side};
use std::sync::Arc;

/// The symbolic analysis of a sparse symmetric matrix's pattern: its fill-reducing order and
/// the pattern of its simplicial Cholesky factor, found once and shared by every numeric
/// factorization with that pattern.
pub struct SparseSymbolic {
    /// The matrix's own pattern (lower triangle, compressed sparse columns).
    input_col_ptr: Vec<usize>,
    input_row_idx: Vec<usize>,
    symbolic: SymbolicCholesky<usize>,
    /// Position of each original index in the fill-reducing order.
    position: Vec<usize>,
    /// Columns of the factor `L` (`P S P' = L L'`): the diagonal first, then rows ascending.
    col_ptr: Vec<usize>,
    row_idx: Vec<usize>,
}

/// The simplicial Cholesky factor of a sparse symmetric positive definite `S`.
#[derive(Clone)]
pub struct SparseCholesky {
    symbolic: Arc<SparseSymbolic>,
    /// The values of `L`.
    l: Vec<f64>,
}

/// `S⁻¹` on the pattern of the Cholesky factor of a sparse symmetric `S` (the selected inverse).
pub struct SelectedInverse {
    symbolic: Arc<SparseSymbolic>,
    /// `Z = (L L')⁻¹` on the pattern of `L`.
    z: Vec<f64>,
}

impl SparseSymbolic {
    /// Analyses the `m × m` pattern given by its lower triangle in compressed sparse columns
    /// (row indices sorted within each column, the diagonal present).
    pub fn new(m: usize, col_ptr: &[usize], row_idx: &[usize]) -> Result<Self> {
        Self::with_ordering(m, col_ptr, row_idx, SymmetricOrdering::Amd)
    }

    /// As [`Self::new`], in whichever of the fill-reducing (AMD) and the given order leaves the
    /// less work ([`Self::inverse_work`]). For a crossed design laid out with its factors'
    /// levels block by block, the given order eliminates the first factor's levels (a
    /// diagonal) and leaves the others as one dense trailing block, where AMD's minimum-degree
    /// choices can interleave them: a crossed binary design (500 × 300 levels, 30,000 rows)
    /// had 6 times the work in AMD's order. Both analyses cost about a pass over the pattern,
    /// but the given order can fill up to `m²/2` entries: for patterns whose `m` is bounded.
    pub fn cheapest(m: usize, col_ptr: &[usize], row_idx: &[usize]) -> Result<Self> {
        let amd = Self::new(m, col_ptr, row_idx)?;
        // As a custom permutation: faer's `Identity` ordering reads the pattern as the upper
        // triangle whatever side it is given.
        let order: Vec<usize> = (0..m).collect();
        let identity = PermRef::new_checked(&order, &order, m);
        let given = Self::with_ordering(m, col_ptr, row_idx, SymmetricOrdering::Custom(identity))?;
        Ok(if given.inverse_work() < amd.inverse_work() {
            given
        } else {
            amd
        })
    }

    fn with_ordering(
        m: usize,
        col_ptr: &[usize],
        row_idx: &[usize],
        ordering: SymmetricOrdering<'_, usize>,
    ) -> Result<Self> {
        let pattern = SymbolicSparseColMatRef::new_checked(m, m, col_ptr, None, row_idx);
        let symbolic = factorize_symbolic_cholesky(
            pattern,
            Side::Lower,
            ordering,
            CholeskySymbolicParams {
                supernodal_flop_ratio_threshold: SupernodalThreshold::FORCE_SIMPLICIAL,
                ..Default::default()
            },
        )
        .map_err(|e| MixedError::OutOfMemory(format!("symbolic factorization: {e:?}")))?;
        let SymbolicCholeskyRaw::Simplicial(sym) = symbolic.raw() else {
            return invalid("internal: expected a simplicial sparse factor");
        };
        let factor_col_ptr: Vec<usize> = sym.col_ptr().to_vec();
        let factor_row_idx: Vec<usize> = sym.row_idx().to_vec();
        let position = match symbolic.perm() {
            Some(p) => p.arrays().1.to_vec(),
            None => (0..m).collect(),
        };
        for j in 0..m {
            let col = &factor_row_idx[factor_col_ptr[j]..factor_col_ptr[j + 1]];
            if col.first() != Some(&j) || col.windows(2).any(|w| w[0] >= w[1]) {
                return invalid("internal: unexpected layout of the sparse factor");
            }
        }
        Ok(Self {
            input_col_ptr: col_ptr.to_vec(),
            input_row_idx: row_idx.to_vec(),
            symbolic,
            position,
            col_ptr: factor_col_ptr,
            row_idx: factor_row_idx,
        })
    }

    /// The work of the Takahashi recurrences (and about that of the numeric factorization):
    /// `Σ_j |R_j|²`, the squared number of off-diagonal entries of each column of the factor.
    pub fn inverse_work(&self) -> f64 {
        self.col_ptr
            .windows(2)
            .map(|w| ((w[1] - w[0] - 1) as f64).powi(2))
            .sum()
    }

    /// The dimension `m`.
    pub fn dim(&self) -> usize {
        self.position.len()
    }

    /// Where entry `(a, b)` (original indices, either order) sits among the values of the
    /// factor and of the selected inverse, if in their pattern.
    pub fn entry(&self, a: usize, b: usize) -> Option<usize> {
        let (i, k) = (self.position[a], self.position[b]);
        let (r, c) = if i >= k { (i, k) } else { (k, i) };
        let start = self.col_ptr[c];
        if r == c {
            return Some(start);
        }
        let rows = &self.row_idx[start + 1..self.col_ptr[c + 1]];
        rows.binary_search(&r).ok().map(|p| start + 1 + p)
    }

    /// The numeric factor of the matrix with this pattern and the given values (in the order of
    /// the pattern's entries). `stage` names the matrix in the error when it is not positive
    /// definite.
    pub fn factor(
        self: &Arc<Self>,
        values: &[f64],
        par: Par,
        stage: &'static str,
    ) -> Result<SparseCholesky> {
        let m = self.dim();
        let pattern = SymbolicSparseColMatRef::new_checked(
            m,
            m,
            &self.input_col_ptr,
            None,
            &self.input_row_idx,
        );
        let mut l = try_zeros(self.symbolic.len_val(), "a sparse Cholesky factor")?;
        let mut mem = MemBuffer::try_new(
            self.symbolic
                .factorize_numeric_llt_scratch::<f64>(par, Default::default()),
        )
        .map_err(|_| MixedError::OutOfMemory("sparse factorization workspace".into()))?;
        self.symbolic
            .factorize_numeric_llt(
                &mut l,
                SparseColMatRef::new(pattern, values),
                Side::Lower,
                LltRegularization::default(),
                par,
                MemStack::new(&mut mem),
                Default::default(),
            )
            .map_err(|_| MixedError::NotPositiveDefinite { stage })?;
        Ok(SparseCholesky {
            symbolic: Arc::clone(self),
            l,
        })
    }
}

impl SparseCholesky {
    /// Analyses and factors the `m × m` matrix `S` given by its lower triangle in compressed
    /// sparse columns (row indices sorted within each column, the diagonal present). `stage`
    /// names the matrix in the error when it is not positive definite.
    pub fn new(
        m: usize,
        col_ptr: &[usize],
        row_idx: &[usize],
        values: &[f64],
        par: Par,
        stage: &'static str,
    ) -> Result<Self> {
        Arc::new(SparseSymbolic::new(m, col_ptr, row_idx)?).factor(values, par, stage)
    }

    /// Solves `S x = v` in place (`v` in the original order), by faer's sparse `LLᵀ` solve.
    pub fn solve_in_place(&self, v: &mut [f64]) -> Result<()> {
        let symbolic = &self.symbolic.symbolic;
        let mut mem = MemBuffer::try_new(symbolic.solve_in_place_scratch::<f64>(1, Par::Seq))
            .map_err(|_| MixedError::OutOfMemory("sparse solve workspace".into()))?;
        LltRef::new(symbolic, &self.l).solve_in_place_with_conj(
            Conj::No,
            MatMut::from_column_major_slice_mut(v, symbolic.nrows(), 1),
            Par::Seq,
            MemStack::new(&mut mem),
        );
        Ok(())
    }

    /// `log|S| = 2 Σ log L_jj`.
    pub fn logdet(&self) -> f64 {
        let col_ptr = &self.symbolic.col_ptr;
        2.0 * (0..self.symbolic.dim())
            .map(|j| self.l[col_ptr[j]].ln())
            .sum::<f64>()
    }

    /// The selected inverse (see the module docs).
    pub fn selected_inverse(&self) -> Result<SelectedInverse> {
        let sym = &self.symbolic;
        let z = takahashi(sym.dim(), &sym.col_ptr, &sym.row_idx, &self.l)?;
        Ok(SelectedInverse {
            symbolic: Arc::clone(sym),
            z,
        })
    }
}

impl SelectedInverse {
    /// `S⁻¹[a, b]` for original indices in either order, if in the pattern of the factor.
    pub fn get(&self, a: usize, b: usize) -> Option<f64> {
        self.symbolic.entry(a, b).map(|k| self.z[k])
    }

    /// The value at a position found by [`SparseSymbolic::entry`].
    #[inline]
    pub fn at(&self, position: usize) -> f64 {
        self.z[position]
    }
}

/// The Takahashi recurrences: `Z = (L L')⁻¹` on the pattern of the simplicial factor `L`.
///
/// Reading `Z_{i,k}` for the rows `i` of a column `j` means finding them in column `k`: a walk
/// along both sorted patterns, except where column `k` holds every row below it (the dense
/// trailing block a crossed design fills, which both orders put last), whose row
/// `i` sits at a fixed offset. A crossed binary design (30,000 rows, 500 × 300 levels, a dense
/// 300 × 300 block) spent about 130 ms per selected inverse walking those columns.
fn takahashi(m: usize, col_ptr: &[usize], row_idx: &[usize], l: &[f64]) -> Result<Vec<f64>> {
    let mut z = try_zeros(l.len(), "the selected inverse")?;
    // Column k holds rows k..m (every entry present): row i at `col_ptr[k] - k + i` (each
    // column has its diagonal, so col_ptr[k] >= k).
    let dense_below: Vec<bool> = (0..m)
        .map(|k| col_ptr[k + 1] - col_ptr[k] == m - k)
        .collect();
    let mut acc: Vec<f64> = Vec::new();
    for j in (0..m).rev() {
        let (s, e) = (col_ptr[j], col_ptr[j + 1]);
        let d = l[s];
        let rows = &row_idx[s + 1..e];
        let lv = &l[s + 1..e];
        acc.clear();
        acc.resize(rows.len(), 0.0);
        // acc[a] = Σ_b L_{rows[b], j} Z_{rows[a], rows[b]}, from the already computed columns
        // rows[b] > j: Z_{i,k} for i > k sits in column k, whose pattern holds every later row
        // of R_j (walked in step since both are sorted).
        // Rows j+1.. without gaps (a column of the dense trailing block itself): the entries
        // each later column k contributes sit side by side.
        let contiguous = rows
            .last()
            .is_some_and(|&last| last - rows[0] + 1 == rows.len());
        for (b, &k) in rows.iter().enumerate() {
            acc[b] += lv[b] * z[col_ptr[k]];
            if dense_below[k] && contiguous {
                let rest = rows.len() - b - 1;
                if rest > 0 {
                    let start = col_ptr[k] - k + rows[b + 1];
                    let dot = axpy_dot(
                        &mut acc[b + 1..],
                        lv[b],
                        &z[start..start + rest],
                        &lv[b + 1..],
                    );
                    acc[b] += dot;
                }
                continue;
            }
            if dense_below[k] {
                let base = col_ptr[k] - k;
                for a in b + 1..rows.len() {
                    let zik = z[base + rows[a]];
                    acc[a] += lv[b] * zik;
                    acc[b] += lv[a] * zik;
                }
                continue;
            }
            let mut pos = col_ptr[k] + 1;
            let kend = col_ptr[k + 1];
            for a in b + 1..rows.len() {
                let i = rows[a];
                while pos < kend && row_idx[pos] < i {
                    pos += 1;
                }
                if pos == kend || row_idx[pos] != i {
                    return invalid("internal: the factor's pattern is not closed under fill");
                }
                let zik = z[pos];
                acc[a] += lv[b] * zik;
                acc[b] += lv[a] * zik;
            }
        }
        let mut diag = 1.0 / (d * d);
        for (a, v) in acc.iter().enumerate() {
            let zij = -v / d;
            z[s + 1 + a] = zij;
            diag -= lv[a] * zij / d;
        }
        z[s] = diag;
    }
    Ok(z)
}

/// `y += alpha x` and, in the same pass, `x · w`: the inner loop of the Takahashi recurrences
/// in a dense column. Four partial sums (a fixed order, so the same bits on every run) let
/// the compiler use vector lanes for the dot product as well as for the update.
fn axpy_dot(y: &mut [f64], alpha: f64, x: &[f64], w: &[f64]) -> f64 {
    let mut sums = [0.0f64; 4];
    let n = y.len().min(x.len()).min(w.len());
    let split = n - n % 4;
    let (y4, y1) = y[..n].split_at_mut(split);
    for ((yc, xc), wc) in y4
        .chunks_exact_mut(4)
        .zip(x[..split].chunks_exact(4))
        .zip(w[..split].chunks_exact(4))
    {
        for l in 0..4 {
            yc[l] += alpha * xc[l];
            sums[l] += wc[l] * xc[l];
        }
    }
    let mut dot = (sums[0] + sums[1]) + (sums[2] + sums[3]);
    for ((yv, &xv), &wv) in y1.iter_mut().zip(&x[split..n]).zip(&w[split..n]) {
        *yv += alpha * xv;
        dot += wv * xv;
    }
    dot
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lower triangle of the dense column-major `m × m` matrix in compressed sparse
    /// columns (its nonzeros, rows sorted): `(col_ptr, row_idx, values)`.
    fn lower_csc(m: usize, dense: &[f64]) -> (Vec<usize>, Vec<usize>, Vec<f64>) {
        let (mut col_ptr, mut row_idx, mut values) = (vec![0], vec![], vec![]);
        for c in 0..m {
            for r in c..m {
                if dense[c * m + r] != 0.0 {
                    row_idx.push(r);
                    values.push(dense[c * m + r]);
                }
            }
            col_ptr.push(row_idx.len());
        }
        (col_ptr, row_idx, values)
    }

    /// A sparse SPD matrix (dense column-major copy and lower-triangle CSC): a diagonal, a
    /// last row and column coupling everything (an "arrow", which AMD orders last) and a few
    /// other couplings.
    fn example() -> (usize, Vec<f64>, Vec<usize>, Vec<usize>, Vec<f64>) {
        let m = 7;
        let mut dense = vec![0.0; m * m];
        let mut set = |r: usize, c: usize, v: f64| {
            dense[c * m + r] = v;
            dense[r * m + c] = v;
        };
        for i in 0..m {
            set(i, i, 4.0 + i as f64);
        }
        for i in 0..m - 1 {
            set(m - 1, i, 0.5 + 0.1 * i as f64);
        }
        set(2, 0, -0.7);
        set(4, 1, 0.9);
        set(5, 3, -0.4);
        let (col_ptr, row_idx, values) = lower_csc(m, &dense);
        (m, dense, col_ptr, row_idx, values)
    }

    /// `S⁻¹` by Gauss–Jordan elimination (no pivoting needed for an SPD matrix).
    fn dense_inverse(m: usize, s: &[f64]) -> Vec<f64> {
        let mut a = s.to_vec();
        let mut inv: Vec<f64> = (0..m * m)
            .map(|k| if k % (m + 1) == 0 { 1.0 } else { 0.0 })
            .collect();
        for p in 0..m {
            let d = a[p * m + p];
            for c in 0..m {
                a[c * m + p] /= d;
                inv[c * m + p] /= d;
            }
            for r in (0..m).filter(|&r| r != p) {
                let f = a[p * m + r];
                for c in 0..m {
                    a[c * m + r] -= f * a[c * m + p];
                    inv[c * m + r] -= f * inv[c * m + p];
                }
            }
        }
        inv
    }

    #[test]
    fn selected_entries_and_solves_match_the_dense_inverse() {
        let (m, dense, col_ptr, row_idx, values) = example();
        let inv = dense_inverse(m, &dense);
        let chol = SparseCholesky::new(m, &col_ptr, &row_idx, &values, Par::Seq, "test")
            .expect("positive definite");
        let v: Vec<f64> = (0..m).map(|i| (i as f64 - 2.5) * 0.3).collect();
        let mut x = v.clone();
        chol.solve_in_place(&mut x).expect("workspace");
        for r in 0..m {
            let want: f64 = (0..m).map(|c| inv[c * m + r] * v[c]).sum();
            assert!(
                (x[r] - want).abs() < 1e-14,
                "solve row {r}: {} vs {want}",
                x[r]
            );
        }
        let z = chol.selected_inverse().expect("selected inverse");
        for c in 0..m {
            for r in 0..m {
                if dense[c * m + r] != 0.0 {
                    let got = z.get(r, c).expect("a nonzero of S is in the pattern");
                    assert!((got - inv[c * m + r]).abs() < 1e-14, "({r}, {c})");
                }
            }
        }
    }

    /// A crossed design's system: 8 levels of one factor (a diagonal) each sharing rows with
    /// 3 of 5 levels of another, whose columns the factor fills into a dense trailing block
    /// (the columns read at a fixed offset); every entry of the factor's pattern matches the
    /// dense inverse.
    #[test]
    fn a_dense_trailing_block_matches_the_dense_inverse() {
        let (subjects, items) = (8, 5);
        let m = subjects + items;
        let mut dense = vec![0.0; m * m];
        for i in 0..m {
            dense[i * m + i] = 3.0 + 0.25 * i as f64;
        }
        for s in 0..subjects {
            for k in 0..3 {
                let item = subjects + (s + 2 * k) % items;
                let v = 0.3 + 0.05 * (s + k) as f64;
                dense[item * m + s] = v;
                dense[s * m + item] = v;
                dense[item * m + item] += 0.2;
            }
        }
        let (col_ptr, row_idx, values) = lower_csc(m, &dense);
        let inv = dense_inverse(m, &dense);
        let chol = SparseCholesky::new(m, &col_ptr, &row_idx, &values, Par::Seq, "test")
            .expect("positive definite");
        let z = chol.selected_inverse().expect("selected inverse");
        let mut checked = 0;
        for c in 0..m {
            for r in c..m {
                if let Some(got) = z.get(r, c) {
                    assert!((got - inv[c * m + r]).abs() < 1e-14, "({r}, {c})");
                    checked += 1;
                }
            }
        }
        // The items' block is filled: all 15 of its entries, with the diagonal's 13 and the
        // 24 couplings.
        assert!(checked >= 15 + 8 + 24, "{checked} entries");
    }

    /// A dense 9 × 9 matrix: every column of the factor is a run of rows without gaps (the
    /// vectorized path of the recurrences, with chunks of four and a remainder).
    #[test]
    fn a_dense_matrix_matches_its_inverse() {
        let m = 9;
        let mut dense = vec![0.0; m * m];
        for c in 0..m {
            for r in 0..m {
                dense[c * m + r] = if r == c {
                    m as f64 + 1.0
                } else {
                    0.3 + 0.1 * ((r * 7 + c * 7) % 5) as f64
                };
            }
        }
        let (col_ptr, row_idx, values) = lower_csc(m, &dense);
        let inv = dense_inverse(m, &dense);
        let chol = SparseCholesky::new(m, &col_ptr, &row_idx, &values, Par::Seq, "test")
            .expect("positive definite");
        let z = chol.selected_inverse().expect("selected inverse");
        for c in 0..m {
            for r in 0..m {
                let got = z.get(r, c).expect("a dense factor holds every entry");
                assert!((got - inv[c * m + r]).abs() < 1e-14, "({r}, {c})");
            }
        }
    }

    #[test]
    fn an_indefinite_matrix_is_named() {
        let (m, _, col_ptr, row_idx, mut values) = example();
        values[0] = -1.0;
        let e = SparseCholesky::new(m, &col_ptr, &row_idx, &values, Par::Seq, "the example");
        assert!(matches!(
            e,
            Err(MixedError::NotPositiveDefinite {
                stage: "the example"
            })
        ));
    }
}
