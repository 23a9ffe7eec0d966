//! Cross-products from grouped sums: a linear mixed model without its rows.
//!
//! With prior weights `w`, `F = [X, y − offset]` (`p + 1` columns; fixed-effect columns and the
//! response may be shifted by constants, which the caller undoes on β) and, for grouping factor
//! `g` with `q_g` columns (its terms' columns concatenated in term order), `z_{g,i}` the row of
//! observation `i`, every block of `A = [Z F]' W [Z F]` is a sum over groups of rows:
//!
//! ```text
//!   Z_g'WZ_g  at level l     = Σ_{i: g_i = l} wᵢ z_{g,i} z_{g,i}'         (factor sums "zz")
//!   F'WZ_g    at level l     = Σ_{i: g_i = l} wᵢ fᵢ z_{g,i}'              (factor sums "fz")
//!   Z_g'WZ_h  at level pair  = Σ_{i: g_i = l, h_i = k} wᵢ z_{g,i} z_{h,i}'  (pair sums "zz")
//!   F'WF                     = Σ_i wᵢ fᵢ fᵢ'                              ("ff")
//! ```
//!
//! so a database computes them with GROUP BY and only these aggregates — sized by the levels and
//! the co-occurring level pairs, not by the rows — reach the engine. With the random-effects
//! structure ([`ReStructure`]: blocks ordered by levels, the largest leading) they are the
//! [`CrossProductParts`] of [`CrossProducts::from_parts`]: `A11` is the leading factor's `zz`,
//! `A22`'s node blocks the trailing factors' `zz` in block order, `AF1`/`AF2` their `fz` (the
//! level-major `(p+1) × q` blocks are exactly those matrices' column-major columns), `A21` the pair
//! sums between the leading factor and each trailing one (transposed where the leading factor
//! is the pair's second), `A22`'s off-diagonal blocks the pair sums between two trailing factors
//! (row node above column node), and `AFF = ff`. The profiled criterion then needs also `n` and
//! `Σ log wᵢ`, which come with the sums.
//!
//! Everything is validated here once: sizes, level codes in range, every pair of factors given
//! once, finiteness (in [`CrossProducts::from_parts`]); a level pair given twice is summed (as
//! the rows it stands for would be).
use super::blocks::{CrossProductParts, CrossProducts};
use crate::error::{invalid, Result};
use crate::model::covariance::Covariance;
use crate::spec::{ModelSpec, RandomTerm};
use crate::terms::ReStructure;
use std::sync::Arc;

/// The cross-products of a model fitted from aggregates, with the weight term of its criterion.
#[derive(Debug, Clone)]
pub struct Aggregates {
    /// The validated cross-products.
    pub cp: CrossProducts,
    /// `Σ log wᵢ` over the rows (0 without prior weights).
    pub sum_log_w: f64,
}

/// The sums of one grouping factor.
#[derive(Debug, Clone, Copy)]
pub struct FactorSums<'a> {
    /// Number of levels `L`.
    pub n_levels: usize,
    /// Columns `q` of the factor (its terms' columns together).
    pub q: usize,
    /// `L` column-major `q × q` blocks `Σ w z z'`, level-major.
    pub zz: &'a [f64],
    /// `L` column-major `(p+1) × q` blocks `Σ w f z'`, level-major.
    pub fz: &'a [f64],
}

/// The sums of one pair of grouping factors `i < j` over their co-occurring level pairs.
#[derive(Debug, Clone, Copy)]
pub struct PairSums<'a> {
    /// 0-based index of the first factor.
    pub i: usize,
    /// 0-based index of the second factor.
    pub j: usize,
    /// 1-based level of factor `i` of each entry.
    pub li: &'a [i32],
    /// 1-based level of factor `j` of each entry.
    pub lj: &'a [i32],
    /// Per entry the column-major `q_i × q_j` block `Σ w z_i z_j'`.
    pub zz: &'a [f64],
}

/// All grouped sums of a model.
#[derive(Debug, Clone)]
pub struct GroupedSums<'a> {
    /// Number of rows.
    pub n: f64,
    /// `Σ log wᵢ` (0 without prior weights).
    pub sum_log_w: f64,
    /// Number of fixed-effect columns `p`.
    pub p: usize,
    /// Column-major `(p+1) × (p+1)` `Σ w f f'`.
    pub ff: &'a [f64],
    /// One entry per grouping factor, indexed by the terms' 0-based factor ids.
    pub factors: Vec<FactorSums<'a>>,
    /// One entry per unordered pair of factors.
    pub pairs: Vec<PairSums<'a>>,
}

impl GroupedSums<'_> {
    /// The number of rows as a count (a positive whole number).
    pub fn n_rows(&self) -> Result<usize> {
        let n = self.n;
        if !(n.is_finite() && n >= 1.0 && n == n.trunc() && n < 2f64.powi(53)) {
            return invalid(format!(
                "the sums' number of rows 'n' must be a positive whole number, not {n}"
            ));
        }
        Ok(n as usize)
    }

    /// Checks the sums against the model's sizes: `factor_sizes[f]` is `(n_levels, q)` of
    /// factor `f` as the terms give it.
    fn check(&self, factor_sizes: &[(usize, usize)]) -> Result<()> {
        self.n_rows()?;
        if !self.sum_log_w.is_finite() {
            return invalid("the sums' 'sum_log_w' is not finite");
        }
        let pf = self.p + 1;
        if self.ff.len() != pf * pf {
            return invalid(format!(
                "the sums' 'ff' has {} values; with p = {} it must be a {pf} x {pf} matrix",
                self.ff.len(),
                self.p
            ));
        }
        if self.factors.len() != factor_sizes.len() {
            return invalid(format!(
                "the sums have {} grouping factors, the model's terms have {}",
                self.factors.len(),
                factor_sizes.len()
            ));
        }
        for (f, (sums, &(levels, q))) in self.factors.iter().zip(factor_sizes).enumerate() {
            if sums.n_levels != levels || sums.q != q {
                return invalid(format!(
                    "the sums of grouping factor {} have {} levels and {} columns, the model's \
                     terms {levels} levels and {q} columns",
                    f + 1,
                    sums.n_levels,
                    sums.q
                ));
            }
            for (name, have, per_level) in [("zz", sums.zz, q * q), ("fz", sums.fz, pf * q)] {
                if have.len() != levels * per_level {
                    return invalid(format!(
                        "the sums' '{name}' of grouping factor {} has {} values, expected \
                         {levels} levels x {per_level}",
                        f + 1,
                        have.len()
                    ));
                }
            }
        }
        let k = self.factors.len();
        let mut seen = vec![false; k * k];
        for pair in &self.pairs {
            let (i, j) = (pair.i, pair.j);
            if !(i < j && j < k) {
                return invalid(format!(
                    "a pair of grouping factors ({}, {}) is not two factors i < j among the {k}",
                    i + 1,
                    j + 1
                ));
            }
            if std::mem::replace(&mut seen[i * k + j], true) {
                return invalid(format!(
                    "the sums give the pair of grouping factors ({}, {}) twice",
                    i + 1,
                    j + 1
                ));
            }
            let entries = pair.li.len();
            let (qi, qj) = (self.factors[i].q, self.factors[j].q);
            if pair.lj.len() != entries || pair.zz.len() != entries * qi * qj {
                return invalid(format!(
                    "the pair sums of grouping factors ({}, {}) have {} and {} level codes and \
                     {} values; expected equal counts k and k x {qi} x {qj} values",
                    i + 1,
                    j + 1,
                    entries,
                    pair.lj.len(),
                    pair.zz.len()
                ));
            }
            for (codes, f) in [(pair.li, i), (pair.lj, j)] {
                let levels = self.factors[f].n_levels;
                if let Some(&c) = codes.iter().find(|&&c| c < 1 || c as usize > levels) {
                    return invalid(format!(
                        "the pair sums of grouping factors ({}, {}) have level code {c} for \
                         factor {}, outside 1..{levels}",
                        i + 1,
                        j + 1,
                        f + 1
                    ));
                }
            }
        }
        for i in 0..k {
            for j in i + 1..k {
                if !seen[i * k + j] {
                    return invalid(format!(
                        "the sums lack the pair of grouping factors ({}, {})",
                        i + 1,
                        j + 1
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The pieces of `A` for the random-effects structure `re` from the grouped sums;
/// `block_factor[b]` is the 0-based factor (index into `sums.factors`) of block `b`. The sums
/// must have passed [`GroupedSums::check`].
fn parts(sums: &GroupedSums<'_>, re: &ReStructure, block_factor: &[usize]) -> CrossProductParts {
    let lead = &sums.factors[block_factor[0]];
    let l0 = lead.n_levels;
    // First trailing node of each block (block 0 unused), as `TrailingLayout` numbers them.
    let mut node_base = vec![0usize; re.blocks.len()];
    let mut nodes = 0;
    for (b, block) in re.blocks.iter().enumerate().skip(1) {
        node_base[b] = nodes;
        nodes += block.n_levels;
    }
    let mut factor_block = vec![usize::MAX; sums.factors.len()];
    for (b, &f) in block_factor.iter().enumerate() {
        factor_block[f] = b;
    }
    let transpose = |src: &[f64], rows: usize, cols: usize| -> Vec<f64> {
        let mut out = vec![0.0; rows * cols];
        for c in 0..cols {
            for r in 0..rows {
                out[r * cols + c] = src[c * rows + r];
            }
        }
        out
    };
    // A21 entries keyed (leading level, node) and A22 pairs keyed (row node, col node), each with
    // its block (q_node × q0, resp. q_row × q_col, column-major).
    let mut a21: Vec<((usize, usize), Vec<f64>)> = Vec::new();
    let mut a22: Vec<((usize, usize), Vec<f64>)> = Vec::new();
    for pair in &sums.pairs {
        let (fi, fj) = (pair.i, pair.j);
        let (bi, bj) = (factor_block[fi], factor_block[fj]);
        let (qi, qj) = (sums.factors[fi].q, sums.factors[fj].q);
        for e in 0..pair.li.len() {
            let li = (pair.li[e] - 1) as usize;
            let lj = (pair.lj[e] - 1) as usize;
            let block = &pair.zz[e * qi * qj..(e + 1) * qi * qj];
            if bi == 0 {
                a21.push(((li, node_base[bj] + lj), transpose(block, qi, qj)));
            } else if bj == 0 {
                a21.push(((lj, node_base[bi] + li), block.to_vec()));
            } else {
                let (ni, nj) = (node_base[bi] + li, node_base[bj] + lj);
                if ni > nj {
                    a22.push(((ni, nj), block.to_vec()));
                } else {
                    a22.push(((nj, ni), transpose(block, qi, qj)));
                }
            }
        }
    }
    let merge = |mut entries: Vec<((usize, usize), Vec<f64>)>| {
        entries.sort_by_key(|e| e.0);
        let mut out: Vec<((usize, usize), Vec<f64>)> = Vec::with_capacity(entries.len());
        for (key, vals) in entries {
            match out.last_mut() {
                Some((k, v)) if *k == key => v.iter_mut().zip(&vals).for_each(|(a, b)| *a += b),
                _ => out.push((key, vals)),
            }
        }
        out
    };
    let a21 = merge(a21);
    let a22 = merge(a22);
    let mut a21_ptr = vec![0usize; l0 + 1];
    for ((j, _), _) in &a21 {
        a21_ptr[j + 1] += 1;
    }
    for j in 0..l0 {
        a21_ptr[j + 1] += a21_ptr[j];
    }
    let trailing = || block_factor.iter().skip(1).map(|&f| &sums.factors[f]);
    CrossProductParts {
        n: sums.n as usize,
        p: sums.p,
        a11: lead.zz.to_vec(),
        a21_ptr,
        a21_node: a21.iter().map(|((_, t), _)| *t as u32).collect(),
        a21_vals: a21.iter().flat_map(|(_, v)| v.iter().copied()).collect(),
        a22_diag: trailing().flat_map(|f| f.zz.iter().copied()).collect(),
        a22_pairs: a22
            .iter()
            .map(|((r, c), _)| (*r as u32, *c as u32))
            .collect(),
        a22_pair_vals: a22.iter().flat_map(|(_, v)| v.iter().copied()).collect(),
        af1: lead.fz.to_vec(),
        af2: trailing().flat_map(|f| f.fz.iter().copied()).collect(),
        aff: sums.ff.to_vec(),
    }
}

/// The validated cross-products of the model with random-effects structure `re` whose terms'
/// grouping factors are `term_factor` (0-based indices into `sums.factors`, one per input term),
/// from its grouped sums.
pub fn aggregates_from_sums(
    sums: &GroupedSums<'_>,
    re: &ReStructure,
    term_factor: &[usize],
) -> Result<Aggregates> {
    let k = sums.factors.len();
    let mut factor_sizes = vec![(0usize, 0usize); k];
    let mut block_factor = Vec::with_capacity(re.blocks.len());
    for block in &re.blocks {
        let f = term_factor[block.terms[0]];
        if f >= k {
            return invalid(format!(
                "a random-effects term's grouping factor {} is not among the {k} factors of the \
                 sums",
                f + 1
            ));
        }
        factor_sizes[f] = (block.n_levels, block.q);
        block_factor.push(f);
    }
    if block_factor.len() != k {
        return invalid(format!(
            "the sums have {k} grouping factors, the model's terms {}",
            block_factor.len()
        ));
    }
    sums.check(&factor_sizes)?;
    let cp = CrossProducts::from_parts(re, parts(sums, re, &block_factor))?;
    Ok(Aggregates {
        cp,
        sum_log_w: sums.sum_log_w,
    })
}

/// The size of one random-effects term of a model fitted from sums.
#[derive(Debug, Clone, Copy)]
pub struct TermShape {
    /// Number of levels of its grouping factor.
    pub n_levels: usize,
    /// Number of columns.
    pub q: usize,
    /// 0-based index of its grouping factor among the sums' factors.
    pub factor: usize,
}

/// The model without rows that the grouped `sums` determine: terms `terms` with covariance
/// structures `covariances` (one per term), its cross-products validated and held in
/// [`ModelSpec::aggregates`].
pub fn model_from_sums(
    sums: &GroupedSums<'_>,
    terms: &[TermShape],
    covariances: Vec<Covariance>,
) -> Result<ModelSpec<'static>> {
    let n = sums.n_rows()?;
    if terms.is_empty() {
        return invalid("the model has no random-effects terms");
    }
    for (t, term) in terms.iter().enumerate() {
        if term.q == 0 || term.n_levels == 0 {
            return invalid(format!(
                "random-effects term {} has no columns or no levels",
                t + 1
            ));
        }
        if let Some(other) = terms[..t]
            .iter()
            .find(|o| o.factor == term.factor && o.n_levels != term.n_levels)
        {
            return invalid(format!(
                "random-effects term {} shares grouping factor {} with an earlier term but has \
                 {} levels, not {}",
                t + 1,
                term.factor + 1,
                term.n_levels,
                other.n_levels
            ));
        }
    }
    let spec = ModelSpec {
        n,
        p: sums.p,
        y: &[],
        x: &[],
        weights: None,
        offset: None,
        terms: terms
            .iter()
            .map(|t| RandomTerm {
                levels: Vec::new(),
                n_levels: t.n_levels,
                z: &[],
                q: t.q,
                factor_id: t.factor,
                predictor: crate::spec::Predictor::Mean,
            })
            .collect(),
        covariances: terms
            .iter()
            .map(|t| Covariance::unstructured(t.q))
            .collect(),
        aggregates: None,
        row_numbers: None,
    };
    let mut spec = spec.with_covariances(covariances)?;
    let re = ReStructure::new(&spec);
    let term_factor: Vec<usize> = terms.iter().map(|t| t.factor).collect();
    spec.aggregates = Some(Arc::new(aggregates_from_sums(sums, &re, &term_factor)?));
    Ok(spec)
}
