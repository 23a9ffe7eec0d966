//! Conditional variances of the random effects, as lme4's `ranef(condVar = TRUE)` reports them.
//!
//! With `b = Λu`, the spherical random effects given the data (at the estimates, and for a GLMM
//! at the conditional modes with the PIRLS weights `W` there) have covariance `σ² Ω_Z⁻¹`, where
//!
//! ```text
//!   Ω_Z = Λ'Z'WZΛ + I = L_Z L_Z',   L_Z = [ L11   0  ]      S = L22 L22'
//!                                         [ L21  L22 ]
//! ```
//!
//! is the random-effects part of the blocked factor (see `chol`). lme4 reports, for level `j` of
//! a term `t` on block `b`, the `q_t × q_t` diagonal block of `σ² Λ Ω_Z⁻¹ Λ'`: with `T_b` the
//! block's relative covariance factor, `σ² [T_b [Ω_Z⁻¹]_jj T_b']` restricted to the term's
//! columns (`T_b` is block diagonal over the terms of the block, so restricting after the product
//! is exact). `σ = 1` for the binomial and Poisson families.
//!
//! Only the diagonal `q_b × q_b` blocks of `Ω_Z⁻¹` are needed. From the block inverse of `L_Z`,
//!
//! ```text
//!   [Ω_Z⁻¹]_22 = S⁻¹
//!   [Ω_Z⁻¹]_jj = L11_j⁻ᵀ (I + L21_j' S⁻¹ L21_j) L11_j⁻¹     (level j of the leading block)
//! ```
//!
//! where `L21_j` is the column block of leading level `j`: nonzero only in the trailing nodes
//! that co-occur with `j`. `L21_j' S⁻¹ L21_j` therefore reads `S⁻¹` only at pairs of nodes that
//! share a leading level, and the trailing blocks read it only on its diagonal node blocks; both
//! lie in the pattern of `S` and so of its Cholesky factor. The entries of `S⁻¹` come from
//!
//! - dense `S`: the full inverse `L22⁻ᵀ L22⁻¹` from the factor the model already holds;
//! - sparse `S`: the *selected inverse* — `Z = S⁻¹` on the pattern of its (AMD-ordered,
//!   simplicial) factor `P S P' = L L'` only, from the Takahashi recurrences, for `j = m−1, …, 0`
//!   and `i` in the pattern `R_j` of column `j` below the diagonal:
//!
//! ```text
//!   Z_ij = −(1/L_jj) Σ_{k∈R_j} L_kj Z_ik,       Z_jj = 1/L_jj² − (1/L_jj) Σ_{k∈R_j} L_kj Z_kj
//! ```
//!
//!   (every `Z_ik` with `i, k ∈ R_j` lies in the pattern of column `min(i, k)`), which costs about
//!   as much as the factorization and never forms a dense `m × m` matrix.
//!
//! Nothing here touches the observations (a GLMM's weights come from its linear predictor) and
//! no `n × n` matrix or dense inverse of `Ω_Z` is formed: the only dense inverse is that of a
//! trailing block the model already stores dense (`m × m`, with one `m × m` workspace).
use crate::blocks::CrossProducts;
use crate::chol::BlockedCholesky;
use crate::error::{invalid, MixedError, Result};
use crate::family::Family;
use crate::glmm::{GeneralizedLinearMixedModel, GlmmFit};
use crate::linalg::blocks::try_zeros;
use crate::linalg::selected_inverse::{SelectedInverse, SparseCholesky};
use crate::lmm::LinearMixedModel;
use crate::small;
use crate::spec::ModelSpec;
use crate::terms::ReStructure;
use crate::trailing::{Trailing, TrailingChoice};
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::inverse::{inverse, inverse_scratch};
use faer::{MatMut, Par};
use rayon::prelude::*;

/// The conditional covariance matrices of one term's random effects, one per level.
#[derive(Debug, Clone, PartialEq)]
pub struct TermCondVar {
    /// Number of columns of the term.
    pub q: usize,
    /// Number of levels of its grouping factor.
    pub n_levels: usize,
    /// `q × q × n_levels`, column-major: level `j`'s matrix at `j q²` (lme4's `postVar` array).
    pub values: Vec<f64>,
}

/// The conditional variances of every term of a linear mixed model at θ, in the terms' input
/// order, scaled by the model's `σ²` at θ (REML or ML as the model was built). `par` is the
/// parallelism of the dense inverse of the trailing block.
pub fn lmm_conditional_variances(
    model: &mut LinearMixedModel<'_>,
    theta: &[f64],
    par: Par,
) -> Result<Vec<TermCondVar>> {
    let sigma = model.estimates(theta)?.sigma;
    let mut lambda = model.re.lambda_buffers();
    model.re.set_lambda(theta, &mut lambda)?;
    conditional_variances(
        &model.spec,
        &model.re,
        &model.cp,
        &model.chol,
        &lambda,
        sigma * sigma,
        par,
    )
}

/// The conditional variances of a fitted GLMM: at its estimates and conditional modes (the
/// fit's linear predictor), scaled by `σ²` (1 for the binomial and Poisson families, otherwise
/// lme4's `pwrss / n`).
pub fn glmm_fit_conditional_variances(
    model: &GeneralizedLinearMixedModel<'_>,
    fit: &GlmmFit,
    par: Par,
) -> Result<Vec<TermCondVar>> {
    let family =
        match model.family() {
            crate::fit::response::ResponseFamily::Glm(f) => *f,
            crate::fit::response::ResponseFamily::Extended(_) => return invalid(
                "conditional variances of a family with extra parameters come from the fit's own \
                 factor, not from this function",
            ),
        };
    let scale = if family.has_scale() {
        (fit.wrss + fit.ussq) / model.spec.n as f64
    } else {
        1.0
    };
    glmm_conditional_variances(&model.spec, family, &fit.theta, &fit.eta, scale, par)
}

/// The conditional variances of a GLMM at θ and the linear predictor `eta` (with offset) at the
/// conditional modes: `Ω_Z` is formed with the PIRLS working weights there,
/// `wᵢ = aᵢ (dμ/dη)² / V(μ)` (`aᵢ` the prior weights of `spec`), exactly the factor PIRLS
/// leaves at its modes; the result is multiplied by `scale` (lme4's `σ²`).
pub fn glmm_conditional_variances(
    spec: &ModelSpec<'_>,
    family: Family,
    theta: &[f64],
    eta: &[f64],
    scale: f64,
    par: Par,
) -> Result<Vec<TermCondVar>> {
    let n = spec.n;
    if eta.len() != n {
        return invalid(format!(
            "the linear predictor has length {}, expected {n}",
            eta.len()
        ));
    }
    let mut weights = Vec::with_capacity(n);
    for (i, &e) in eta.iter().enumerate() {
        let mu = family.link.linkinv(e);
        if !family.link.valid_eta(e) || !family.valid_mu(mu) {
            return invalid(format!(
                "the linear predictor is invalid for the family at observation {}",
                i + 1
            ));
        }
        let me = family.link.mu_eta(e);
        let w = spec.weight(i) * me * me / family.variance(mu);
        if !w.is_finite() || w < 0.0 {
            return invalid(format!(
                "the working weight of observation {} is not finite",
                i + 1
            ));
        }
        weights.push(w);
    }
    conditional_variances_at_weights(spec, theta, &weights, scale, par)
}

/// The conditional variances of a GLMM at θ with the working weights `weights` of its factor at
/// the modes (for a family with extra parameters, the weights of its Laplace determinant, which
/// may be negative for some observations), times `scale`.
pub fn conditional_variances_at_weights(
    spec: &ModelSpec<'_>,
    theta: &[f64],
    weights: &[f64],
    scale: f64,
    par: Par,
) -> Result<Vec<TermCondVar>> {
    let n = spec.n;
    if weights.len() != n || weights.iter().any(|w| !w.is_finite()) {
        return invalid("the working weights must be finite, one per observation");
    }
    let re = ReStructure::new(spec);
    let mut lambda = re.lambda_buffers();
    re.set_lambda(theta, &mut lambda)?;
    // No fixed effects; the response column only completes the factor (any nonzero column gives
    // a positive residual term), the random-effects part does not depend on it.
    let mut cp = CrossProducts::pattern(spec, &re, 0)?;
    let ones = vec![1.0; n];
    cp.fill(spec, &re, &[], &ones, Some(weights));
    let mut chol = BlockedCholesky::new(&cp, &re, par, TrailingChoice::Auto)?;
    chol.update(&cp, &lambda)?;
    conditional_variances(spec, &re, &cp, &chol, &lambda, scale, par)
}

/// `scale · Λ Ω_Z⁻¹ Λ'` at the diagonal blocks of every level, per term in input order, from a
/// factor `chol` of the cross-products `cp` updated for the relative covariance factors `lambda`.
pub fn conditional_variances(
    spec: &ModelSpec<'_>,
    re: &ReStructure,
    cp: &CrossProducts,
    chol: &BlockedCholesky,
    lambda: &[Vec<f64>],
    scale: f64,
    par: Par,
) -> Result<Vec<TermCondVar>> {
    let diag = omega_inverse_diagonal(cp, re, chol, lambda, par)?;
    // Per block and level: T_b [Ω⁻¹]_jj T_b'.
    let mut covs = Vec::with_capacity(re.blocks.len());
    for (b, block) in re.blocks.iter().enumerate() {
        let q = block.q;
        let mut out = vec![0.0; block.n_levels * q * q];
        let mut tmp = vec![0.0; q * q];
        for j in 0..block.n_levels {
            let range = j * q * q..(j + 1) * q * q;
            sandwich(
                &mut out[range.clone()],
                &lambda[b],
                &diag[b][range],
                q,
                &mut tmp,
            );
        }
        covs.push(out);
    }
    Ok(spec
        .terms
        .iter()
        .enumerate()
        .map(|(t, term)| {
            let (b, off) = re.term_block[t];
            let qb = re.blocks[b].q;
            let qt = term.q;
            let mut values = Vec::with_capacity(term.n_levels * qt * qt);
            for j in 0..term.n_levels {
                let c = &covs[b][j * qb * qb..(j + 1) * qb * qb];
                for col in 0..qt {
                    for row in 0..qt {
                        values.push(scale * c[(off + col) * qb + off + row]);
                    }
                }
            }
            TermCondVar {
                q: qt,
                n_levels: term.n_levels,
                values,
            }
        })
        .collect())
}

/// The diagonal `q_b × q_b` blocks of `Ω_Z⁻¹`, per block in the structure's order, level-major
/// (level `j`'s column-major block at `j q_b²`).
pub fn omega_inverse_diagonal(
    cp: &CrossProducts,
    re: &ReStructure,
    chol: &BlockedCholesky,
    lambda: &[Vec<f64>],
    par: Par,
) -> Result<Vec<Vec<f64>>> {
    let layout = &cp.layout;
    let q0 = cp.q0;
    let inv = TrailingInverse::new(cp, chol, lambda, par)?;
    let missing = || MixedError::InvalidInput("internal: entry of S⁻¹ outside its pattern".into());

    let mut out: Vec<Vec<f64>> = Vec::with_capacity(re.blocks.len());
    // Leading block: L11_j⁻ᵀ (I + L21_j' S⁻¹ L21_j) L11_j⁻¹, level by level. Each level writes
    // only its own block, so fixed chunks of levels run on threads and give the same bits for
    // any thread count.
    let mut lead = vec![0.0; cp.l0 * q0 * q0];
    if q0 > 0 {
        let chunk = LEADING_CHUNK * q0 * q0;
        let run = |(c, dst): (usize, &mut [f64])| -> Result<()> {
            let mut work = LeadingWork::default();
            for (i, level) in dst.chunks_exact_mut(q0 * q0).enumerate() {
                leading_level(cp, chol, &inv, c * LEADING_CHUNK + i, level, &mut work)?;
            }
            Ok(())
        };
        let threads = match par {
            Par::Seq => 1,
            Par::Rayon(n) => n.get(),
        };
        if threads > 1 && cp.l0 > LEADING_CHUNK {
            lead.par_chunks_mut(chunk).enumerate().try_for_each(run)?;
        } else {
            lead.chunks_mut(chunk).enumerate().try_for_each(run)?;
        }
    }
    out.push(lead);

    // Trailing blocks: the diagonal node blocks of S⁻¹.
    for (b, block) in re.blocks.iter().enumerate().skip(1) {
        let q = block.q;
        let mut vals = vec![0.0; block.n_levels * q * q];
        for j in 0..block.n_levels {
            let off = layout.node_offset[layout.block_node_base[b] + j];
            for c in 0..q {
                for r in 0..q {
                    vals[j * q * q + c * q + r] = inv.get(off + r, off + c).ok_or_else(missing)?;
                }
            }
        }
        out.push(vals);
    }
    Ok(out)
}

/// Leading levels per unit of parallel work in [`omega_inverse_diagonal`].
const LEADING_CHUNK: usize = 64;

/// Scratch of [`leading_level`], reused across the levels of a chunk.
#[derive(Default)]
struct LeadingWork {
    index: Vec<usize>,
    l21_j: Vec<f64>,
    s_l: Vec<f64>,
    mid: Vec<f64>,
    linv: Vec<f64>,
    tmp: Vec<f64>,
}

/// `dst = L11_j⁻ᵀ (I + L21_j' S⁻¹ L21_j) L11_j⁻¹` for leading level `j` (`q0 × q0`, column-major).
fn leading_level(
    cp: &CrossProducts,
    chol: &BlockedCholesky,
    inv: &TrailingInverse,
    j: usize,
    dst: &mut [f64],
    work: &mut LeadingWork,
) -> Result<()> {
    let q0 = cp.q0;
    let missing = || MixedError::InvalidInput("internal: entry of S⁻¹ outside its pattern".into());
    let LeadingWork {
        index,
        l21_j,
        s_l,
        mid,
        linv,
        tmp,
    } = work;
    mid.clear();
    mid.resize(q0 * q0, 0.0);
    linv.resize(q0 * q0, 0.0);
    tmp.resize(q0 * q0, 0.0);
    for d in 0..q0 {
        mid[d * q0 + d] = 1.0;
    }
    // L21_j as a dense `w × q0` block over the trailing coordinates it touches (ascending).
    index.clear();
    for (off, qr, _) in cp.leading_blocks(j, &chol.l21) {
        index.extend(off..off + qr);
    }
    let w = index.len();
    l21_j.clear();
    l21_j.resize(w * q0, 0.0);
    let mut at = 0;
    for (_, qr, blk) in cp.leading_blocks(j, &chol.l21) {
        for c in 0..q0 {
            l21_j[c * w + at..c * w + at + qr].copy_from_slice(&blk[c * qr..(c + 1) * qr]);
        }
        at += qr;
    }
    // s_l = S⁻¹ L21_j on those coordinates, then mid += L21_j' s_l.
    s_l.clear();
    s_l.resize(w * q0, 0.0);
    match inv {
        // The dense inverse read in place (`ia ≥ ib` lies in its stored lower triangle).
        TrailingInverse::Dense { m, z } => {
            gather_inverse_times(index, l21_j, q0, s_l, |ia, ib| Some(z[ib * m + ia]))
        }
        _ => gather_inverse_times(index, l21_j, q0, s_l, |ia, ib| inv.get(ia, ib)),
    }
    .ok_or_else(missing)?;
    for c in 0..q0 {
        for a in 0..q0 {
            let v: f64 = (0..w).map(|i| l21_j[a * w + i] * s_l[c * w + i]).sum();
            mid[c * q0 + a] += v;
        }
    }
    small::lower_inverse(&chol.l11[j * q0 * q0..(j + 1) * q0 * q0], q0, linv);
    // L11_j⁻ᵀ mid L11_j⁻¹ = Linv' mid Linv; tmp = mid Linv.
    for c in 0..q0 {
        for r in 0..q0 {
            tmp[c * q0 + r] = (c..q0).map(|k| mid[k * q0 + r] * linv[c * q0 + k]).sum();
        }
    }
    for c in 0..q0 {
        for r in 0..q0 {
            dst[c * q0 + r] = (r..q0).map(|k| linv[r * q0 + k] * tmp[c * q0 + k]).sum();
        }
    }
    Ok(())
}

/// `s_l += S⁻¹ L21_j` on the coordinates `index` (ascending) of leading level `j`, reading the
/// lower triangle of `S⁻¹` column by column (`ia ≥ ib`, one pass down each column) through
/// `entry`; `None` where an entry is outside the computed ones.
fn gather_inverse_times(
    index: &[usize],
    l21_j: &[f64],
    q0: usize,
    s_l: &mut [f64],
    entry: impl Fn(usize, usize) -> Option<f64>,
) -> Option<()> {
    let w = index.len();
    for (b, &ib) in index.iter().enumerate() {
        for (a, &ia) in index.iter().enumerate().skip(b) {
            let z = entry(ia, ib)?;
            if z == 0.0 {
                continue;
            }
            for c in 0..q0 {
                s_l[c * w + a] += z * l21_j[c * w + b];
                if a != b {
                    s_l[c * w + b] += z * l21_j[c * w + a];
                }
            }
        }
    }
    Some(())
}

/// `out = T D T'` for lower-triangular `T` and symmetric `D` (`q × q`).
fn sandwich(out: &mut [f64], t: &[f64], d: &[f64], q: usize, tmp: &mut [f64]) {
    // tmp = D T'
    for c in 0..q {
        for r in 0..q {
            tmp[c * q + r] = (0..=c).map(|k| d[k * q + r] * t[k * q + c]).sum();
        }
    }
    // out = T tmp
    for c in 0..q {
        for r in 0..q {
            out[c * q + r] = (0..=r).map(|k| t[k * q + r] * tmp[c * q + k]).sum();
        }
    }
}

/// `S⁻¹` at the entries the conditional variances read.
enum TrailingInverse {
    /// No trailing block.
    Empty,
    /// The full inverse (lower triangle), `m × m` column-major.
    Dense { m: usize, z: Vec<f64> },
    /// The selected inverse of a sparse `S`.
    Sparse(SelectedInverse),
}

impl TrailingInverse {
    fn new(
        cp: &CrossProducts,
        chol: &BlockedCholesky,
        lambda: &[Vec<f64>],
        par: Par,
    ) -> Result<Self> {
        let m = cp.layout.m;
        match &chol.trailing {
            Trailing::Empty => Ok(TrailingInverse::Empty),
            Trailing::Dense(d) => {
                let l22 = d.factor_ref();
                let mut z = try_zeros(m * m, "the inverse of the trailing block")?;
                let mut mem = MemBuffer::try_new(inverse_scratch::<f64>(m, par)).map_err(|_| {
                    MixedError::OutOfMemory("workspace of the trailing inverse".into())
                })?;
                inverse(
                    MatMut::from_column_major_slice_mut(&mut z, m, m),
                    l22,
                    par,
                    MemStack::new(&mut mem),
                );
                Ok(TrailingInverse::Dense { m, z })
            }
            Trailing::Sparse(_) => {
                let (col_ptr, row_idx, values) = assemble_trailing(cp, &chol.l21, lambda)?;
                Ok(TrailingInverse::Sparse(
                    SparseCholesky::new(
                        m,
                        &col_ptr,
                        &row_idx,
                        &values,
                        par,
                        "trailing random-effects block",
                    )?
                    .selected_inverse()?,
                ))
            }
        }
    }

    /// `S⁻¹[a, b]`, or `None` outside the computed entries.
    #[inline]
    fn get(&self, a: usize, b: usize) -> Option<f64> {
        let (r, c) = if a >= b { (a, b) } else { (b, a) };
        match self {
            TrailingInverse::Empty => None,
            TrailingInverse::Dense { m, z } => Some(z[c * m + r]),
            TrailingInverse::Sparse(s) => s.get(r, c),
        }
    }
}

/// Column pointers, row indices and values of a matrix in compressed sparse columns.
type Csc = (Vec<usize>, Vec<usize>, Vec<f64>);

/// The lower triangle of `S = Λ₂'A22Λ₂ + I − L21 L21'` in compressed sparse columns (row
/// indices sorted), assembled from the cross-products and the factor's `L21`.
fn assemble_trailing(cp: &CrossProducts, l21: &[f64], lambda: &[Vec<f64>]) -> Result<Csc> {
    let layout = &cp.layout;
    let m = layout.m;
    let key = |r: usize, c: usize| c as u64 * m as u64 + r as u64;
    let mut entries: Vec<(u64, f64)> = Vec::new();
    entries
        .try_reserve(crate::trailing_sparse::pattern_work(cp).saturating_add(m))
        .map_err(|_| MixedError::OutOfMemory("entries of the trailing block".into()))?;
    for i in 0..m {
        entries.push((key(i, i), 1.0));
    }
    let max_q = (0..layout.n_nodes())
        .map(|t| layout.node_q(t))
        .max()
        .unwrap_or(1);
    let mut blk = vec![0.0; max_q * max_q];
    let mut tmp = vec![0.0; max_q * max_q];
    for t in 0..layout.n_nodes() {
        let q = layout.node_q(t);
        let off = layout.node_offset[t];
        let tb = &lambda[layout.node_block[t] as usize];
        let a = &cp.a22_diag[cp.a22_diag_off[t]..cp.a22_diag_off[t + 1]];
        small::congruence(&mut blk, tb, a, tb, q, q, &mut tmp);
        for c in 0..q {
            for r in c..q {
                entries.push((key(off + r, off + c), blk[c * q + r]));
            }
        }
    }
    for (e, &(r, c)) in cp.a22_pairs.iter().enumerate() {
        let (r, c) = (r as usize, c as usize);
        let (qr, qc) = (layout.node_q(r), layout.node_q(c));
        let (or, oc) = (layout.node_offset[r], layout.node_offset[c]);
        let tr = &lambda[layout.node_block[r] as usize];
        let tc = &lambda[layout.node_block[c] as usize];
        let a = &cp.a22_pair_vals[cp.a22_pair_off[e]..cp.a22_pair_off[e + 1]];
        small::congruence(&mut blk, tr, a, tc, qr, qc, &mut tmp);
        for cc in 0..qc {
            for rr in 0..qr {
                entries.push((key(or + rr, oc + cc), blk[cc * qr + rr]));
            }
        }
    }
    cp.for_each_schur_segment(l21, |row, col, values| {
        for (k, v) in values.iter().enumerate() {
            entries.push((key(row + k, col), -v));
        }
    });
    entries.sort_unstable_by_key(|e| e.0);
    let mut col_ptr = vec![0usize; m + 1];
    let mut row_idx = Vec::with_capacity(entries.len());
    let mut values: Vec<f64> = Vec::with_capacity(entries.len());
    let mut last = u64::MAX;
    for (k, v) in entries {
        if k == last {
            if let Some(x) = values.last_mut() {
                *x += v;
            }
            continue;
        }
        last = k;
        let col = (k / m as u64) as usize;
        col_ptr[col + 1] += 1;
        row_idx.push((k % m as u64) as usize);
        values.push(v);
    }
    for c in 0..m {
        col_ptr[c + 1] += col_ptr[c];
    }
    Ok((col_ptr, row_idx, values))
}
