//! Cross-products from the rows of a model: the sparsity pattern of `A = [Z F]' W [Z F]` found by
//! scanning the grouping factors, its values summed observation by observation, and the
//! per-observation maps with which PIRLS refills them at every iteration.
//!
//! [`CrossProducts`] itself keeps only the products and their layout (it can also be handed in
//! complete, [`CrossProducts::from_parts`]); what filling from rows needs to revisit the rows —
//! which `A21` entry and which `A22` pair each observation adds to, and the facts and scratch
//! of the fast scalar refill — lives here, in [`RowMaps`] and [`RefillPlan`], beside it.
use super::blocks::{CrossProducts, TrailingLayout};
use super::small;
use crate::error::{invalid, MixedError, Result};
use crate::spec::{ModelSpec, Predictor};
use crate::terms::ReStructure;

/// Reads the columns of one block for one observation.
struct BlockColumns<'s, 'a> {
    spec: &'s ModelSpec<'a>,
    /// `(term, column)` source of each block column.
    sources: Vec<(usize, usize)>,
    /// Level vector of the block's grouping factor.
    levels: &'s [u32],
}

impl<'s, 'a> BlockColumns<'s, 'a> {
    fn new(spec: &'s ModelSpec<'a>, re: &ReStructure, b: usize) -> Self {
        let block = &re.blocks[b];
        let mut sources = Vec::with_capacity(block.q);
        for &t in &block.terms {
            for c in 0..spec.terms[t].q {
                sources.push((t, c));
            }
        }
        Self {
            spec,
            sources,
            levels: &spec.terms[block.terms[0]].levels,
        }
    }

    #[inline]
    fn fill(&self, i: usize, out: &mut [f64]) {
        let n = self.spec.n;
        for (o, &(t, c)) in out.iter_mut().zip(&self.sources) {
            *o = self.spec.terms[t].z[c * n + i];
        }
    }
}

/// `dst += w · a b'` for column vectors `a` (length `ra`) and `b`, into column-major `ra × len(b)`.
#[inline]
fn add_outer(dst: &mut [f64], w: f64, a: &[f64], b: &[f64]) {
    let ra = a.len();
    for (c, &bc) in b.iter().enumerate() {
        let wb = w * bc;
        if wb == 0.0 {
            continue;
        }
        let col = &mut dst[c * ra..(c + 1) * ra];
        for (d, &ar) in col.iter_mut().zip(a) {
            *d += ar * wb;
        }
    }
}

/// `dst[(base + levels[i])·pf + c] += wz[i] · F[i, c]` over all observations `i` and the `pf`
/// columns of `F = [X, response]` (`x` column-major with `n = wz.len()` rows).
///
/// Hand-rolled observation by observation rather than column by column: data sorted by a
/// factor send consecutive observations to the same row, and column by column each addition
/// would wait for the previous one through memory; here the `pf` additions of an observation
/// are independent of each other.
fn scatter_rows(
    dst: &mut [f64],
    pf: usize,
    base: usize,
    levels: &[u32],
    wz: &[f64],
    x: &[f64],
    response: &[f64],
) {
    let n = wz.len();
    let p = pf - 1;
    for (i, ((&l, &w), &r)) in levels.iter().zip(wz).zip(response).enumerate() {
        let row = &mut dst[(base + l as usize) * pf..(base + l as usize + 1) * pf];
        for (c, d) in row[..p].iter_mut().enumerate() {
            *d += w * x[c * n + i];
        }
        row[p] += w * r;
    }
}

/// The sparsity pattern of `A` for `F` with `p + 1` columns, with zero values. The pattern
/// depends only on the grouping factors; [`fill`] computes the values for any weights and `F`
/// (PIRLS refills them at every iteration through a [`RefillPlan`]).
pub fn pattern(spec: &ModelSpec<'_>, re: &ReStructure, p: usize) -> Result<CrossProducts> {
    spec.require_rows("forming the cross-products from the observations")?;
    let n = spec.n;
    let layout = TrailingLayout::new(re);
    let lead = BlockColumns::new(spec, re, 0);
    let l0 = re.blocks[0].n_levels;
    let trailing: Vec<BlockColumns> = (1..re.blocks.len())
        .map(|b| BlockColumns::new(spec, re, b))
        .collect();
    let n_nodes = layout.n_nodes();

    // Sparsity patterns: (leading level, node) pairs and (node, node) pairs across factors.
    let mut keys: Vec<u64> = Vec::new();
    keys.try_reserve_exact(n * trailing.len())
        .map_err(|_| MixedError::OutOfMemory("pattern of Z'Z".into()))?;
    for (k, tb) in trailing.iter().enumerate() {
        let base = layout.block_node_base[k + 1] as u64;
        for i in 0..n {
            keys.push(lead.levels[i] as u64 * n_nodes as u64 + base + tb.levels[i] as u64);
        }
    }
    keys.sort_unstable();
    keys.dedup();
    let mut a21_ptr = vec![0usize; l0 + 1];
    let mut a21_node = Vec::with_capacity(keys.len());
    for &key in &keys {
        let j = (key / n_nodes as u64) as usize;
        let node = (key % n_nodes as u64) as usize;
        a21_ptr[j + 1] += 1;
        a21_node.push(node as u32);
    }
    for j in 0..l0 {
        a21_ptr[j + 1] += a21_ptr[j];
    }
    drop(keys);

    let mut pair_keys: Vec<u64> = Vec::new();
    for (k2, tb2) in trailing.iter().enumerate() {
        for (k1, tb1) in trailing.iter().enumerate().take(k2) {
            let base2 = layout.block_node_base[k2 + 1] as u64;
            let base1 = layout.block_node_base[k1 + 1] as u64;
            for i in 0..n {
                let row = base2 + tb2.levels[i] as u64;
                let col = base1 + tb1.levels[i] as u64;
                pair_keys.push(row * n_nodes as u64 + col);
            }
        }
    }
    pair_keys.sort_unstable();
    pair_keys.dedup();
    let mut a22_pairs = Vec::with_capacity(pair_keys.len());
    for &key in &pair_keys {
        let row = (key / n_nodes as u64) as usize;
        let col = (key % n_nodes as u64) as usize;
        a22_pairs.push((row as u32, col as u32));
    }

    CrossProducts::with_pattern(re, n, p, a21_ptr, a21_node, a22_pairs)
}

/// Every block of `A` for a linear mixed model from its rows: `F = [X, y − offset − X b₀]` with
/// the prior weights, `b₀` the response's least-squares fit on `X` where it is far from 0
/// relative to its residuals, else 0 (see [`fill_shifted`]).
pub fn from_rows(spec: &ModelSpec<'_>, re: &ReStructure) -> Result<CrossProducts> {
    let mut cp = pattern(spec, re, spec.p)?;
    fill_shifted(&mut cp, spec, re)?;
    Ok(cp)
}

/// [`fill`] from `spec`'s rows (`cp` their pattern, with all of `spec`'s fixed effects) with the
/// response `y − offset − X b₀`, `b₀` the [`CrossProducts::response_shift`] `cp` holds; then,
/// while the response's weighted least-squares fit on `X` leaves less than [`SHIFT_SHARE`] of
/// its sum of squares, that fit is added to `b₀`, moved out of the response and the
/// cross-products filled again (at most [`MAX_SHIFT_ROUNDS`] times).
pub fn fill_shifted(cp: &mut CrossProducts, spec: &ModelSpec<'_>, re: &ReStructure) -> Result<()> {
    let mut response: Vec<f64> = (0..spec.n).map(|i| cp.shifted_response(spec, i)).collect();
    fill(cp, spec, re, spec.x, &response, spec.weights)?;
    for _ in 0..MAX_SHIFT_ROUNDS {
        let Some(step) = response_shift_step(cp) else {
            break;
        };
        let n = spec.n;
        for (c, b) in step.iter().enumerate() {
            for (r, x) in response.iter_mut().zip(&spec.x[c * n..(c + 1) * n]) {
                *r -= x * b;
            }
        }
        if cp.response_shift.is_empty() {
            cp.response_shift = vec![0.0; spec.p];
        }
        for (total, b) in cp.response_shift.iter_mut().zip(&step) {
            *total += b;
        }
        fill(cp, spec, re, spec.x, &response, spec.weights)?;
    }
    Ok(())
}

/// How many times [`fill_shifted`] moves the fixed effects' least-squares fit out of the response
/// at most (each a fill of the cross-products; the second and third only for an
/// ill-conditioned `X`, whose first shift left much of the response's size in place).
const MAX_SHIFT_ROUNDS: usize = 3;

/// The share of `y'Wy` below which the response's weighted least-squares residual sum of
/// squares `r'Wr` (over `X` alone) makes [`fill_shifted`] move that fit out of the response.
///
/// The profiled criterion takes `r²` (the penalized residual sum of squares) as `y'Wy` less
/// the squares of the solved system's right-hand side: a difference that loses the digits by
/// which `y'Wy` exceeds `r²`. A response far from 0 relative to its residuals (sleepstudy's
/// reaction times plus 10⁷; a response growing with an `x` of 1 to 10⁴) lost enough of them for
/// the optimizer to stop at the wrong θ, with a false gradient warning, where lme4 (which sums
/// the squared residuals row by row) is unaffected. The likelihood is the same for
/// `y − X b₀` (its β is `β − b₀`), whose `y'Wy` is at most `r'Wr`. Below a ratio of 10³ at most
/// three digits go (`r²` keeps 13), and the cross-products are left as they are.
const SHIFT_SHARE: f64 = 1e-3;

/// The coefficients `b` of the weighted least-squares fit of the response column of `cp`'s `F`
/// on `X` (from `X'WX` and `X'Wy` in `AFF`, the normal equations scaled to a unit diagonal),
/// when its residual sum of squares `y'Wy − b'X'Wy` is below [`SHIFT_SHARE`] of `y'Wy`; else
/// (or without fixed effects, or where `X'WX` is not positive definite) `None`.
fn response_shift_step(cp: &CrossProducts) -> Option<Vec<f64>> {
    let p = cp.p;
    let pf = cp.pf();
    let yy = cp.aff[p * pf + p];
    if p == 0 || !(yy.is_finite() && yy > 0.0) {
        return None;
    }
    let scale: Vec<f64> = (0..p).map(|c| cp.aff[c * pf + c].sqrt()).collect();
    if scale.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return None;
    }
    let mut g = vec![0.0; p * p];
    for c in 0..p {
        for r in 0..p {
            g[c * p + r] = cp.aff[c * pf + r] / (scale[r] * scale[c]);
        }
    }
    small::chol_lower(&mut g, p)?;
    let xy: Vec<f64> = (0..p).map(|r| cp.aff[p * pf + r]).collect();
    let mut b: Vec<f64> = xy.iter().zip(&scale).map(|(v, s)| v / s).collect();
    small::solve_lower(&g, p, &mut b);
    small::solve_lower_t(&g, p, &mut b);
    for (v, s) in b.iter_mut().zip(&scale) {
        *v /= s;
    }
    let explained: f64 = b.iter().zip(&xy).map(|(v, h)| v * h).sum();
    let rss = yy - explained;
    (b.iter().all(|v| v.is_finite()) && rss < SHIFT_SHARE * yy).then_some(b)
}

/// Computes the values of every block of `cp` (the [`pattern`] of these rows) for
/// `A = [Z F]' W [Z F]` with `F = [x, response]` (`x` is `n × p` column-major) and weights `w`
/// (unit weights when `None`), keeping the pattern. Costs one pass over the observations, after
/// one that finds each observation's `A21` entries and `A22` pairs in the pattern ([`RowMaps`],
/// dropped afterwards; a [`RefillPlan`] keeps them for repeated fills). Finding them in the
/// same pass as the sums measured slower (a binary search between the additions); when there
/// is no memory for the maps, that is what it does. An error if the pattern lacks an entry (it
/// is not these rows' pattern).
pub fn fill(
    cp: &mut CrossProducts,
    spec: &ModelSpec<'_>,
    re: &ReStructure,
    x: &[f64],
    response: &[f64],
    weights: Option<&[f64]>,
) -> Result<()> {
    let complete = match RowMaps::new(spec, re, cp) {
        Ok(maps) => fill_rows(
            cp,
            Entries::Mapped(&maps),
            spec,
            re,
            x,
            RowWeights::Single { response, weights },
        ),
        Err(MixedError::OutOfMemory(_)) => fill_rows(
            cp,
            Entries::Searched,
            spec,
            re,
            x,
            RowWeights::Single { response, weights },
        ),
        Err(e) => return Err(e),
    };
    if complete {
        Ok(())
    } else {
        invalid("internal: the cross-product pattern is not that of these observations")
    }
}

/// Which `A21` entry and which `A22` pair each observation adds to.
#[derive(Debug, Clone)]
pub struct RowMaps {
    /// For trailing block `k` and observation `i`, its `A21` entry at `[k n + i]`.
    obs_a21: Vec<u32>,
    /// For the `c`-th pair of trailing blocks and observation `i`, its `A22` pair at `[c n + i]`.
    obs_pair: Vec<u32>,
}

impl RowMaps {
    /// The maps of `spec`'s rows into `cp`, their [`pattern`] (for any number of columns of `F`).
    pub fn new(spec: &ModelSpec<'_>, re: &ReStructure, cp: &CrossProducts) -> Result<Self> {
        let n = spec.n;
        let lead = BlockColumns::new(spec, re, 0);
        let trailing: Vec<BlockColumns> = (1..re.blocks.len())
            .map(|b| BlockColumns::new(spec, re, b))
            .collect();
        let n_pairs = trailing.len() * trailing.len().saturating_sub(1) / 2;
        let mut obs_a21 = Vec::new();
        obs_a21
            .try_reserve_exact(n * trailing.len())
            .map_err(|_| MixedError::OutOfMemory("observation map of Z'Z".into()))?;
        for (k, tb) in trailing.iter().enumerate() {
            for i in 0..n {
                let node = cp.layout.block_node_base[k + 1] + tb.levels[i] as usize;
                obs_a21.push(cp.find_a21(lead.levels[i] as usize, node)? as u32);
            }
        }
        let mut obs_pair = Vec::new();
        obs_pair
            .try_reserve_exact(n * n_pairs)
            .map_err(|_| MixedError::OutOfMemory("observation map of Z'Z".into()))?;
        for (k, tb) in trailing.iter().enumerate() {
            for (k1, tb1) in trailing.iter().enumerate().take(k) {
                for i in 0..n {
                    let row = cp.layout.block_node_base[k + 1] + tb.levels[i] as usize;
                    let col = cp.layout.block_node_base[k1 + 1] + tb1.levels[i] as usize;
                    obs_pair.push(cp.find_a22_pair(row, col)? as u32);
                }
            }
        }
        Ok(Self { obs_a21, obs_pair })
    }
}

/// Where [`fill_rows`] finds each observation's `A21` entry and `A22` pair.
#[derive(Clone, Copy)]
enum Entries<'m> {
    /// In maps built beforehand.
    Mapped(&'m RowMaps),
    /// By binary search in the pattern.
    Searched,
}

/// The working values of a model whose rows have two linear predictors (the mean's `η` and the
/// zero-inflation logit `ρ`, with random effects in each): per observation the symmetric 2 × 2
/// weight `W = −∂²ℓ/∂(η, ρ)²` (or its stand-in) and the right-hand side `r = W η̃ + ∂ℓ/∂(η, ρ)`,
/// `η̃` the part of each predictor the system solves for. The cross-products are then
/// `Σᵢ Zᵢ' Wᵢ Zᵢ` with `Zᵢ` the 2 × q map of the random effects to the two predictors (the columns
/// of `X` and the mean's terms in the first row, the zero-inflation terms in the second): a
/// product of a column of predictor `a` with one of predictor `b` weighs `W[a, b]`.
#[derive(Debug, Clone, Default)]
pub struct PairedWorkingValues {
    /// `W[η, η]`, `W[η, ρ]` and `W[ρ, ρ]` per observation.
    pub w_mean: Vec<f64>,
    pub w_cross: Vec<f64>,
    pub w_zi: Vec<f64>,
    /// `r` per observation, the mean's and the zero-inflation logit's.
    pub r_mean: Vec<f64>,
    pub r_zi: Vec<f64>,
}

impl PairedWorkingValues {
    /// Storage for `n` observations.
    pub fn new(n: usize) -> Self {
        Self {
            w_mean: vec![0.0; n],
            w_cross: vec![0.0; n],
            w_zi: vec![0.0; n],
            r_mean: vec![0.0; n],
            r_zi: vec![0.0; n],
        }
    }

    /// `W[a, b]` of observation `i`.
    #[inline]
    fn weight(&self, i: usize, a: Predictor, b: Predictor) -> f64 {
        match (a, b) {
            (Predictor::Mean, Predictor::Mean) => self.w_mean[i],
            (Predictor::ZeroInflation, Predictor::ZeroInflation) => self.w_zi[i],
            _ => self.w_cross[i],
        }
    }
}

/// The weights of one fill: one per observation (every column in the mean's predictor), or a
/// [`PairedWorkingValues`].
#[derive(Clone, Copy)]
enum RowWeights<'w> {
    /// `F = [X, response]` with weights `w` (unit weights when `None`).
    Single {
        response: &'w [f64],
        weights: Option<&'w [f64]>,
    },
    /// `F = [X, ·]` whose products with the random effects' columns of each predictor are
    /// `[W[p, η] X, r_p]`; the response's own product is not formed (0: its pivot is then not
    /// available, which solving does not need).
    Paired(&'w PairedWorkingValues),
}

/// The general fill (see [`fill`]); false if the pattern lacks an entry or pair of some
/// observation (`cp` is then partly filled).
fn fill_rows(
    cp: &mut CrossProducts,
    entries: Entries<'_>,
    spec: &ModelSpec<'_>,
    re: &ReStructure,
    x: &[f64],
    row_weights: RowWeights<'_>,
) -> bool {
    let n = cp.n;
    let p = cp.p;
    let pf = p + 1;
    let q0 = cp.q0;
    cp.set_values(0.0);
    let lead = BlockColumns::new(spec, re, 0);
    let trailing: Vec<BlockColumns> = (1..re.blocks.len())
        .map(|b| BlockColumns::new(spec, re, b))
        .collect();
    let predictor: Vec<Predictor> = re.blocks.iter().map(|b| b.predictor).collect();
    let mut f = vec![0.0; pf];
    // F's row as the zero-inflation predictor's columns meet it (paired weights only).
    let mut f_zi = vec![0.0; pf];
    let mut z0 = vec![0.0; q0];
    let mut zt: Vec<Vec<f64>> = trailing
        .iter()
        .map(|tb| vec![0.0; tb.sources.len()])
        .collect();
    for i in 0..n {
        // `weight(a, b)`: the weight of a product of columns of predictors a and b; `(scale, row)`
        // of F for the columns of predictor a: their product with F is `scale · row`.
        let w;
        match row_weights {
            RowWeights::Single { response, weights } => {
                w = weights.map_or(1.0, |w| w[i]);
                for (c, fc) in f.iter_mut().take(p).enumerate() {
                    *fc = x[c * n + i];
                }
                f[p] = response[i];
                add_outer(&mut cp.aff, w, &f, &f);
            }
            RowWeights::Paired(pw) => {
                w = 1.0;
                let (wm, wc) = (pw.w_mean[i], pw.w_cross[i]);
                for c in 0..p {
                    let xc = x[c * n + i];
                    f[c] = wm * xc;
                    f_zi[c] = wc * xc;
                    for d in 0..p {
                        cp.aff[c * pf + d] += wm * xc * x[d * n + i];
                    }
                    cp.aff[p * pf + c] += xc * pw.r_mean[i];
                    cp.aff[c * pf + p] += xc * pw.r_mean[i];
                }
                f[p] = pw.r_mean[i];
                f_zi[p] = pw.r_zi[i];
            }
        }
        let weight = |a: Predictor, b: Predictor| match row_weights {
            RowWeights::Single { .. } => w,
            RowWeights::Paired(pw) => pw.weight(i, a, b),
        };
        let f_of = |a: Predictor| match a {
            Predictor::Mean => &f,
            Predictor::ZeroInflation => &f_zi,
        };

        lead.fill(i, &mut z0);
        let j = lead.levels[i] as usize;
        let p0 = predictor[0];
        add_outer(
            &mut cp.a11[j * q0 * q0..(j + 1) * q0 * q0],
            weight(p0, p0),
            &z0,
            &z0,
        );
        add_outer(
            &mut cp.af1[j * q0 * pf..(j + 1) * q0 * pf],
            w,
            f_of(p0),
            &z0,
        );

        let mut pair = 0;
        for (k, tb) in trailing.iter().enumerate() {
            let pk = predictor[k + 1];
            tb.fill(i, &mut zt[k]);
            let node = cp.layout.block_node_base[k + 1] + tb.levels[i] as usize;
            let qn = zt[k].len();
            let off = cp.layout.node_offset[node];
            let d = cp.a22_diag_off[node];
            add_outer(
                &mut cp.a22_diag[d..d + qn * qn],
                weight(pk, pk),
                &zt[k],
                &zt[k],
            );
            add_outer(&mut cp.af2[off * pf..(off + qn) * pf], w, f_of(pk), &zt[k]);
            let e = match entries {
                Entries::Mapped(maps) => maps.obs_a21[k * n + i] as usize,
                Entries::Searched => match cp.find_a21(j, node) {
                    Ok(e) => e,
                    Err(_) => return false,
                },
            };
            let v = cp.a21_val_off[e];
            add_outer(
                &mut cp.a21_vals[v..v + qn * q0],
                weight(pk, p0),
                &zt[k],
                &z0,
            );
            for k1 in 0..k {
                let e = match entries {
                    Entries::Mapped(maps) => maps.obs_pair[pair * n + i] as usize,
                    Entries::Searched => {
                        let col =
                            cp.layout.block_node_base[k1 + 1] + trailing[k1].levels[i] as usize;
                        match cp.find_a22_pair(node, col) {
                            Ok(e) => e,
                            Err(_) => return false,
                        }
                    }
                };
                pair += 1;
                let v = cp.a22_pair_off[e];
                let qc = zt[k1].len();
                let (left, right) = zt.split_at(k);
                add_outer(
                    &mut cp.a22_pair_vals[v..v + qn * qc],
                    weight(pk, predictor[k1 + 1]),
                    &right[0],
                    &left[k1],
                );
            }
        }
    }
    true
}

/// What refilling the cross-products from the same rows again and again needs besides the
/// values (PIRLS refills them at every iteration): the [`RowMaps`], whether the fast scalar path
/// applies, which scalar blocks are intercepts (`z = 1`), and the fast path's scratch. One plan
/// serves every pattern of the same rows (any number of columns of `F`).
#[derive(Debug, Clone)]
pub struct RefillPlan {
    /// Which entries each observation adds to.
    maps: RowMaps,
    /// Every block is one scalar term (the fast path applies).
    scalar: bool,
    /// Per block: its single column is all ones.
    unit: Vec<bool>,
    /// Scratch: `w z` of the leading block.
    wz0: Vec<f64>,
    /// Scratch: `w z` of the current trailing block (or `w f` for `F'WF`).
    wzt: Vec<f64>,
}

impl RefillPlan {
    /// The plan for refilling `cp`, the [`pattern`] of `spec`'s rows.
    pub fn new(spec: &ModelSpec<'_>, re: &ReStructure, cp: &CrossProducts) -> Result<Self> {
        let maps = RowMaps::new(spec, re, cp)?;
        let scalar = re.blocks.iter().all(|b| b.q == 1 && b.terms.len() == 1);
        let n = cp.n;
        let unit = re
            .blocks
            .iter()
            .map(|b| scalar && spec.terms[b.terms[0]].z[..n].iter().all(|&z| z == 1.0))
            .collect();
        let len = if scalar { n } else { 0 };
        Ok(Self {
            maps,
            scalar,
            unit,
            wz0: vec![0.0; len],
            wzt: vec![0.0; len],
        })
    }

    /// Refills `cp` for new weights and `F` as [`fill`] does. PIRLS calls this at every
    /// iteration, so for the common case where every block is scalar (`q = 1`) it takes a fast
    /// path: with one coordinate per level, each observation adds `w zₐ z_b` to a single entry
    /// of each block, so the pass runs block by block over flat per-observation index arrays
    /// (no per-observation slices or small outer products), adds the row of `F` of each
    /// observation at once (see `scatter_rows`), skips the multiplication by `z` for intercept
    /// columns, and forms `F'WF` as dense dot products. Other structures use the general fill.
    pub fn refill(
        &mut self,
        cp: &mut CrossProducts,
        spec: &ModelSpec<'_>,
        re: &ReStructure,
        x: &[f64],
        response: &[f64],
        weights: &[f64],
    ) {
        if !self.scalar {
            // The maps were built for this pattern's rows: every entry is found.
            fill_rows(
                cp,
                Entries::Mapped(&self.maps),
                spec,
                re,
                x,
                RowWeights::Single {
                    response,
                    weights: Some(weights),
                },
            );
            return;
        }
        let n = cp.n;
        let p = cp.p;
        let pf = p + 1;
        cp.set_values(0.0);
        let column = |c: usize| -> &[f64] {
            if c < p {
                &x[c * n..(c + 1) * n]
            } else {
                response
            }
        };
        // With q = 1 everywhere, A21 entry e, A22 pair e and trailing node t own value e, e and t.
        let lead_term = &spec.terms[re.blocks[0].terms[0]];
        let lead_lev = &lead_term.levels;
        let wz0 = &mut self.wz0;
        if self.unit[0] {
            wz0.copy_from_slice(weights);
            for (&j, &w) in lead_lev.iter().zip(weights.iter()) {
                cp.a11[j as usize] += w;
            }
        } else {
            let z0 = &lead_term.z[..n];
            for i in 0..n {
                let wz = weights[i] * z0[i];
                wz0[i] = wz;
                cp.a11[lead_lev[i] as usize] += wz * z0[i];
            }
        }
        scatter_rows(&mut cp.af1, pf, 0, lead_lev, wz0, x, response);
        // F'WF: dense weighted dot products of the columns of F (lower triangle, mirrored).
        for a in 0..pf {
            let ca = column(a);
            for (t, (&w, &f)) in self.wzt.iter_mut().zip(weights.iter().zip(ca)) {
                *t = w * f;
            }
            for b in a..pf {
                let cb = column(b);
                // faer's SIMD dot product (a plain iterator sum is one serial chain of adds).
                let s: f64 =
                    faer::ColRef::from_slice(&self.wzt).transpose() * faer::ColRef::from_slice(cb);
                cp.aff[a * pf + b] = s;
                cp.aff[b * pf + a] = s;
            }
        }
        let mut pair = 0;
        for k in 1..re.blocks.len() {
            let term = &spec.terms[re.blocks[k].terms[0]];
            let lev = &term.levels;
            let base = cp.layout.block_node_base[k];
            let wzt = &mut self.wzt;
            if self.unit[k] {
                wzt.copy_from_slice(weights);
            } else {
                for ((t, &w), &z) in wzt.iter_mut().zip(weights).zip(&term.z[..n]) {
                    *t = w * z;
                }
            }
            let zk: Option<&[f64]> = (!self.unit[k]).then(|| &term.z[..n]);
            let a21 = &self.maps.obs_a21[(k - 1) * n..k * n];
            let z0: Option<&[f64]> = (!self.unit[0]).then(|| &lead_term.z[..n]);
            for i in 0..n {
                let node = base + lev[i] as usize;
                let wz = wzt[i];
                cp.a22_diag[node] += zk.map_or(wz, |z| wz * z[i]);
                cp.a21_vals[a21[i] as usize] += z0.map_or(wz, |z| wz * z[i]);
            }
            scatter_rows(&mut cp.af2, pf, base, lev, wzt, x, response);
            for k1 in 1..k {
                let other = &spec.terms[re.blocks[k1].terms[0]];
                let pairs = &self.maps.obs_pair[pair * n..(pair + 1) * n];
                pair += 1;
                if self.unit[k1] {
                    for (&e, &wz) in pairs.iter().zip(wzt.iter()) {
                        cp.a22_pair_vals[e as usize] += wz;
                    }
                } else {
                    for ((&e, &wz), &z) in pairs.iter().zip(wzt.iter()).zip(&other.z[..n]) {
                        cp.a22_pair_vals[e as usize] += wz * z;
                    }
                }
            }
        }
    }
}

impl RefillPlan {
    /// Refills `cp` for the working values of a model with random effects in both linear
    /// predictors ([`PairedWorkingValues`]; `x` the mean's fixed-effects columns for a joint
    /// system, empty for the random effects alone), by the general fill.
    pub fn refill_paired(
        &mut self,
        cp: &mut CrossProducts,
        spec: &ModelSpec<'_>,
        re: &ReStructure,
        x: &[f64],
        values: &PairedWorkingValues,
    ) {
        if self.scalar {
            self.refill_paired_scalar(cp, spec, re, x, values);
            return;
        }
        // The maps were built for this pattern's rows: every entry is found.
        fill_rows(
            cp,
            Entries::Mapped(&self.maps),
            spec,
            re,
            x,
            RowWeights::Paired(values),
        );
    }

    /// [`Self::refill_paired`] where every block is one scalar term: each observation adds to
    /// one entry of each block and pair of blocks (as in [`Self::refill`]'s fast path), weighed
    /// by the pair's predictors. Hand-rolled because PIRLS refills at every iteration and the
    /// general fill's per-observation outer products of length-1 vectors cost several times
    /// the arithmetic.
    fn refill_paired_scalar(
        &self,
        cp: &mut CrossProducts,
        spec: &ModelSpec<'_>,
        re: &ReStructure,
        x: &[f64],
        values: &PairedWorkingValues,
    ) {
        let n = cp.n;
        let p = cp.p;
        let pf = p + 1;
        cp.set_values(0.0);
        let nb = re.blocks.len();
        let terms: Vec<&crate::spec::RandomTerm<'_>> =
            re.blocks.iter().map(|b| &spec.terms[b.terms[0]]).collect();
        let zi: Vec<usize> = re
            .blocks
            .iter()
            .map(|b| usize::from(b.predictor == Predictor::ZeroInflation))
            .collect();
        if nb == 2 && p == 0 {
            self.refill_paired_two_blocks(cp, [terms[0], terms[1]], [zi[0], zi[1]], values);
            return;
        }
        let n_pairs = nb.saturating_sub(1) * nb.saturating_sub(2) / 2;
        let mut z = vec![0.0; nb];
        let mut node = vec![0usize; nb];
        for i in 0..n {
            // W by predictor pair, r by predictor.
            let w = [
                [values.w_mean[i], values.w_cross[i]],
                [values.w_cross[i], values.w_zi[i]],
            ];
            let r = [values.r_mean[i], values.r_zi[i]];
            for b in 0..nb {
                z[b] = if self.unit[b] { 1.0 } else { terms[b].z[i] };
                let level = terms[b].levels[i] as usize;
                node[b] = if b == 0 {
                    level
                } else {
                    cp.layout.block_node_base[b] + level
                };
            }
            for c in 0..p {
                let xc = x[c * n + i];
                for d in 0..p {
                    cp.aff[c * pf + d] += w[0][0] * xc * x[d * n + i];
                }
                cp.aff[p * pf + c] += xc * r[0];
                cp.aff[c * pf + p] += xc * r[0];
            }
            for b in 0..nb {
                let (pb, zb) = (zi[b], z[b]);
                let (diag, af) = if b == 0 {
                    (
                        &mut cp.a11[node[0]],
                        &mut cp.af1[node[0] * pf..(node[0] + 1) * pf],
                    )
                } else {
                    (
                        &mut cp.a22_diag[node[b]],
                        &mut cp.af2[node[b] * pf..(node[b] + 1) * pf],
                    )
                };
                *diag += w[pb][pb] * zb * zb;
                for c in 0..p {
                    af[c] += w[pb][0] * x[c * n + i] * zb;
                }
                af[p] += r[pb] * zb;
                if b > 0 {
                    let e = self.maps.obs_a21[(b - 1) * n + i] as usize;
                    cp.a21_vals[e] += w[pb][zi[0]] * zb * z[0];
                }
            }
            // Pairs of trailing blocks, in the maps' order (block k with each earlier k1 ≥ 1).
            let mut pair = 0;
            for k in 2..nb {
                for k1 in 1..k {
                    let e = self.maps.obs_pair[pair * n + i] as usize;
                    cp.a22_pair_vals[e] += w[zi[k]][zi[k1]] * z[k] * z[k1];
                    pair += 1;
                }
            }
            debug_assert_eq!(pair, n_pairs);
        }
    }

    /// [`Self::refill_paired_scalar`] for the random effects alone (`p = 0`) of two scalar
    /// blocks (the commonest model with random effects in both predictors, `(1 | g)` in each):
    /// the same sums in the same order, with the per-block loops, the block lookups and the
    /// empty fixed-effect loops unrolled (PIRLS refills at every iteration; the general loop
    /// spent most of its time on that bookkeeping). `terms` and `zi` (the predictor, 0 or 1) of
    /// the leading and the trailing block; `cp` zeroed.
    fn refill_paired_two_blocks(
        &self,
        cp: &mut CrossProducts,
        terms: [&crate::spec::RandomTerm<'_>; 2],
        zi: [usize; 2],
        values: &PairedWorkingValues,
    ) {
        let n = cp.n;
        let base = cp.layout.block_node_base[1];
        let obs = &self.maps.obs_a21[..n];
        let (unit0, unit1) = (self.unit[0], self.unit[1]);
        let (levels0, levels1) = (&terms[0].levels[..n], &terms[1].levels[..n]);
        let rows = values.w_mean[..n]
            .iter()
            .zip(&values.w_cross[..n])
            .zip(&values.w_zi[..n])
            .zip(values.r_mean[..n].iter().zip(&values.r_zi[..n]));
        for (i, (((&wm, &wc), &wz), (&rm, &rz))) in rows.enumerate() {
            let w = [[wm, wc], [wc, wz]];
            let r = [rm, rz];
            let z0 = if unit0 { 1.0 } else { terms[0].z[i] };
            let z1 = if unit1 { 1.0 } else { terms[1].z[i] };
            let node0 = levels0[i] as usize;
            let node1 = base + levels1[i] as usize;
            cp.a11[node0] += w[zi[0]][zi[0]] * z0 * z0;
            cp.af1[node0] += r[zi[0]] * z0;
            cp.a22_diag[node1] += w[zi[1]][zi[1]] * z1 * z1;
            cp.af2[node1] += r[zi[1]] * z1;
            cp.a21_vals[obs[i] as usize] += w[zi[1]][zi[0]] * z1 * z0;
        }
    }
}

/// The row-scanning constructors and fill as methods, for the callers that build cross-products
/// from the rows of a model (see [`pattern`], [`from_rows`] and [`fill`]).
impl CrossProducts {
    /// [`from_rows`]: every block of `A` for a linear mixed model.
    pub fn new(spec: &ModelSpec<'_>, re: &ReStructure) -> Result<Self> {
        from_rows(spec, re)
    }

    /// [`pattern`]: the pattern of `A` for `F` with `p + 1` columns, with zero values.
    pub fn pattern(spec: &ModelSpec<'_>, re: &ReStructure, p: usize) -> Result<Self> {
        pattern(spec, re, p)
    }

    /// The values for the rows this is the pattern of, their response's least-squares fit on `X`
    /// moved out of it where needed, as [`from_rows`] forms them: [`fill_shifted`] from no shift
    /// (whatever shift these cross-products held before, so that the result depends on these
    /// rows alone: the bootstrap's refits are the same whichever thread's workspace runs
    /// them). Were it not their pattern (an internal error), every value is NaN afterwards,
    /// which the factorization rejects.
    pub fn fill_response(&mut self, spec: &ModelSpec<'_>, re: &ReStructure) {
        self.response_shift.clear();
        if fill_shifted(self, spec, re).is_err() {
            self.set_values(f64::NAN);
        }
    }

    /// [`fill`] for the rows this is the pattern of. Were it not their pattern (an internal
    /// error), every value is NaN afterwards, which the factorization rejects.
    pub fn fill(
        &mut self,
        spec: &ModelSpec<'_>,
        re: &ReStructure,
        x: &[f64],
        response: &[f64],
        weights: Option<&[f64]>,
    ) {
        if fill(self, spec, re, x, response, weights).is_err() {
            self.set_values(f64::NAN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::RandomTerm;

    /// The scalar fast path of the paired refill gives the general fill's cross-products: a
    /// mean's intercept and slope-free crossed terms and a zero-inflation term, with `X`.
    #[test]
    fn paired_scalar_refill_matches_the_general_fill() {
        let n = 24;
        let y = vec![1.0; n];
        let x: Vec<f64> = (0..2 * n)
            .map(|k| if k < n { 1.0 } else { (k as f64 * 0.37).sin() })
            .collect();
        let ones = vec![1.0; n];
        let slope: Vec<f64> = (0..n).map(|i| (i as f64 * 0.71).cos()).collect();
        let codes = |m: i32| (0..n).map(|i| (i as i32 * 7 % m) + 1).collect::<Vec<i32>>();
        let (g, h, k) = (codes(6), codes(4), codes(5));
        let terms = vec![
            RandomTerm::from_factor_codes(&g, 6, &ones, 1, 1).expect("term"),
            RandomTerm::from_factor_codes(&h, 4, &slope, 1, 2).expect("term"),
            RandomTerm::from_factor_codes(&k, 5, &ones, 1, 3)
                .expect("term")
                .in_zero_inflation(),
            RandomTerm::from_factor_codes(&g, 6, &slope, 1, 4)
                .expect("term")
                .in_zero_inflation(),
        ];
        let spec = ModelSpec::new(&y, &x, 2, None, None, terms).expect("spec");
        let re = ReStructure::new(&spec);
        let mut values = PairedWorkingValues::new(n);
        for i in 0..n {
            let t = i as f64;
            values.w_mean[i] = 1.0 + (t * 0.3).sin().abs();
            values.w_cross[i] = 0.2 * (t * 1.1).cos();
            values.w_zi[i] = 0.5 + 0.1 * t;
            values.r_mean[i] = (t * 0.9).sin();
            values.r_zi[i] = (t * 0.4).cos();
        }
        let mut general = pattern(&spec, &re, 2).expect("pattern");
        let mut fast = general.clone();
        let plan = RefillPlan::new(&spec, &re, &general).expect("plan");
        assert!(plan.scalar);
        fill_rows(
            &mut general,
            Entries::Mapped(&plan.maps),
            &spec,
            &re,
            &x,
            RowWeights::Paired(&values),
        );
        plan.refill_paired_scalar(&mut fast, &spec, &re, &x, &values);
        for (a, b) in [
            (&general.a11, &fast.a11),
            (&general.a21_vals, &fast.a21_vals),
            (&general.a22_diag, &fast.a22_diag),
            (&general.a22_pair_vals, &fast.a22_pair_vals),
            (&general.af1, &fast.af1),
            (&general.af2, &fast.af2),
            (&general.aff, &fast.aff),
        ] {
            assert_eq!(a.len(), b.len());
            for (u, v) in a.iter().zip(b.iter()) {
                assert!((u - v).abs() < 1e-12 * (1.0 + u.abs()), "{u} vs {v}");
            }
        }
    }
}
