//! Cross-products `A = [Z X y]' W [Z X y]`, formed once per model in blocked, sparse form.
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
//! the trailing random-effects vector. After this module, nothing touches the n observations again
//! until the final fitted values.
use crate::error::{MixedError, Result};
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
    fn new(re: &ReStructure) -> Self {
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
    /// For trailing block `k` and observation `i`, its `A21` entry at `[k n + i]`.
    obs_a21: Vec<u32>,
    /// For the `c`-th pair of trailing blocks and observation `i`, its `A22` pair at `[c n + i]`.
    obs_pair: Vec<u32>,
}

/// Precomputed facts and scratch for [`CrossProducts::refill`].
#[derive(Debug, Clone)]
pub struct RefillPlan {
    /// Every block is one scalar term (the fast path applies).
    scalar: bool,
    /// Per block: its single column is all ones.
    unit: Vec<bool>,
    /// Scratch: `w z` of the leading block.
    wz0: Vec<f64>,
    /// Scratch: `w z` of the current trailing block (or `w f` for `F'WF`).
    wzt: Vec<f64>,
}

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

fn try_zeros(len: usize, what: &str) -> Result<Vec<f64>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| MixedError::OutOfMemory(format!("{what} needs {len} values")))?;
    v.resize(len, 0.0);
    Ok(v)
}

impl CrossProducts {
    /// Forms every block of `A` for a linear mixed model: `F = [X, y − offset]` with the prior
    /// weights.
    pub fn new(spec: &ModelSpec<'_>, re: &ReStructure) -> Result<Self> {
        let mut cp = Self::pattern(spec, re, spec.p)?;
        let response: Vec<f64> = (0..spec.n).map(|i| spec.y_adjusted(i)).collect();
        cp.fill(spec, re, spec.x, &response, spec.weights);
        Ok(cp)
    }

    /// The sparsity pattern of `A` for `F` with `p + 1` columns, with zero values. The pattern
    /// depends only on the grouping factors; [`CrossProducts::fill`] computes the values for any
    /// weights and `F` (PIRLS refills them at every iteration).
    pub fn pattern(spec: &ModelSpec<'_>, re: &ReStructure, p: usize) -> Result<Self> {
        let n = spec.n;
        let pf = p + 1;
        let layout = TrailingLayout::new(re);
        let lead = BlockColumns::new(spec, re, 0);
        let q0 = re.blocks[0].q;
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
        let mut a21_val_off = Vec::with_capacity(keys.len() + 1);
        let mut off = 0;
        for &key in &keys {
            let j = (key / n_nodes as u64) as usize;
            let node = (key % n_nodes as u64) as usize;
            a21_ptr[j + 1] += 1;
            a21_node.push(node as u32);
            a21_val_off.push(off);
            off += layout.node_q(node) * q0;
        }
        a21_val_off.push(off);
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
        let mut a22_pair_off = Vec::with_capacity(pair_keys.len() + 1);
        let mut off = 0;
        for &key in &pair_keys {
            let row = (key / n_nodes as u64) as usize;
            let col = (key % n_nodes as u64) as usize;
            a22_pairs.push((row as u32, col as u32));
            a22_pair_off.push(off);
            off += layout.node_q(row) * layout.node_q(col);
        }
        a22_pair_off.push(off);

        let mut a22_diag_off = Vec::with_capacity(n_nodes + 1);
        let mut off = 0;
        for t in 0..n_nodes {
            a22_diag_off.push(off);
            off += layout.node_q(t) * layout.node_q(t);
        }
        a22_diag_off.push(off);

        let mut cp = Self {
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
            obs_a21: Vec::new(),
            obs_pair: Vec::new(),
        };

        // Which A21 entry and which A22 pair each observation contributes to.
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
        cp.obs_a21 = obs_a21;
        cp.obs_pair = obs_pair;
        Ok(cp)
    }

    /// Computes the values of every block of `A = [Z F]' W [Z F]` for `F = [x, response]`
    /// (`x` is `n × p` column-major) and weights `w` (unit weights when `None`), keeping the
    /// pattern. Costs one pass over the observations.
    pub fn fill(
        &mut self,
        spec: &ModelSpec<'_>,
        re: &ReStructure,
        x: &[f64],
        response: &[f64],
        weights: Option<&[f64]>,
    ) {
        let n = self.n;
        let p = self.p;
        let pf = p + 1;
        let q0 = self.q0;
        for v in [
            &mut self.a11,
            &mut self.a21_vals,
            &mut self.a22_diag,
            &mut self.a22_pair_vals,
            &mut self.af1,
            &mut self.af2,
            &mut self.aff,
        ] {
            v.fill(0.0);
        }
        let lead = BlockColumns::new(spec, re, 0);
        let trailing: Vec<BlockColumns> = (1..re.blocks.len())
            .map(|b| BlockColumns::new(spec, re, b))
            .collect();
        let mut f = vec![0.0; pf];
        let mut z0 = vec![0.0; q0];
        let mut zt: Vec<Vec<f64>> = trailing
            .iter()
            .map(|tb| vec![0.0; tb.sources.len()])
            .collect();
        for i in 0..n {
            let w = weights.map_or(1.0, |w| w[i]);
            for (c, fc) in f.iter_mut().take(p).enumerate() {
                *fc = x[c * n + i];
            }
            f[p] = response[i];
            add_outer(&mut self.aff, w, &f, &f);

            lead.fill(i, &mut z0);
            let j = lead.levels[i] as usize;
            add_outer(&mut self.a11[j * q0 * q0..(j + 1) * q0 * q0], w, &z0, &z0);
            add_outer(&mut self.af1[j * q0 * pf..(j + 1) * q0 * pf], w, &f, &z0);

            let mut pair = 0;
            for (k, tb) in trailing.iter().enumerate() {
                tb.fill(i, &mut zt[k]);
                let node = self.layout.block_node_base[k + 1] + tb.levels[i] as usize;
                let qn = zt[k].len();
                let off = self.layout.node_offset[node];
                let d = self.a22_diag_off[node];
                add_outer(&mut self.a22_diag[d..d + qn * qn], w, &zt[k], &zt[k]);
                add_outer(&mut self.af2[off * pf..(off + qn) * pf], w, &f, &zt[k]);
                let e = self.obs_a21[k * n + i] as usize;
                let v = self.a21_val_off[e];
                add_outer(&mut self.a21_vals[v..v + qn * q0], w, &zt[k], &z0);
                for k1 in 0..k {
                    let e = self.obs_pair[pair * n + i] as usize;
                    pair += 1;
                    let v = self.a22_pair_off[e];
                    let qc = zt[k1].len();
                    let (left, right) = zt.split_at(k);
                    add_outer(
                        &mut self.a22_pair_vals[v..v + qn * qc],
                        w,
                        &right[0],
                        &left[k1],
                    );
                }
            }
        }
    }

    /// Refills `A` for new weights and `F` as [`CrossProducts::fill`] does, through `plan` (from
    /// [`CrossProducts::refill_plan`]). PIRLS calls this at every iteration, so for the common
    /// case where every block is scalar (`q = 1`) it takes a fast path: with one coordinate per
    /// level, each observation adds `w zₐ z_b` to a single entry of each block, so the pass runs
    /// block by block over flat per-observation index arrays (no per-observation slices or
    /// small outer products), adds the row of `F` of each observation at once (see
    /// `scatter_rows`), skips the multiplication by `z` for intercept columns, and forms
    /// `F'WF` as dense dot products. Other structures use the general fill.
    pub fn refill(
        &mut self,
        spec: &ModelSpec<'_>,
        re: &ReStructure,
        plan: &mut RefillPlan,
        x: &[f64],
        response: &[f64],
        weights: &[f64],
    ) {
        if !plan.scalar {
            self.fill(spec, re, x, response, Some(weights));
            return;
        }
        let n = self.n;
        let p = self.p;
        let pf = p + 1;
        for v in [
            &mut self.a11,
            &mut self.a21_vals,
            &mut self.a22_diag,
            &mut self.a22_pair_vals,
            &mut self.af1,
            &mut self.af2,
            &mut self.aff,
        ] {
            v.fill(0.0);
        }
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
        let wz0 = &mut plan.wz0;
        if plan.unit[0] {
            wz0.copy_from_slice(weights);
            for (&j, &w) in lead_lev.iter().zip(weights.iter()) {
                self.a11[j as usize] += w;
            }
        } else {
            let z0 = &lead_term.z[..n];
            for i in 0..n {
                let wz = weights[i] * z0[i];
                wz0[i] = wz;
                self.a11[lead_lev[i] as usize] += wz * z0[i];
            }
        }
        scatter_rows(&mut self.af1, pf, 0, lead_lev, wz0, x, response);
        // F'WF: dense weighted dot products of the columns of F (lower triangle, mirrored).
        for a in 0..pf {
            let ca = column(a);
            for (t, (&w, &f)) in plan.wzt.iter_mut().zip(weights.iter().zip(ca)) {
                *t = w * f;
            }
            for b in a..pf {
                let cb = column(b);
                // faer's SIMD dot product (a plain iterator sum is one serial chain of adds).
                let s: f64 =
                    faer::ColRef::from_slice(&plan.wzt).transpose() * faer::ColRef::from_slice(cb);
                self.aff[a * pf + b] = s;
                self.aff[b * pf + a] = s;
            }
        }
        let mut pair = 0;
        for k in 1..re.blocks.len() {
            let term = &spec.terms[re.blocks[k].terms[0]];
            let lev = &term.levels;
            let base = self.layout.block_node_base[k];
            let wzt = &mut plan.wzt;
            if plan.unit[k] {
                wzt.copy_from_slice(weights);
            } else {
                for ((t, &w), &z) in wzt.iter_mut().zip(weights).zip(&term.z[..n]) {
                    *t = w * z;
                }
            }
            let zk: Option<&[f64]> = (!plan.unit[k]).then(|| &term.z[..n]);
            let a21 = &self.obs_a21[(k - 1) * n..k * n];
            let z0: Option<&[f64]> = (!plan.unit[0]).then(|| &lead_term.z[..n]);
            for i in 0..n {
                let node = base + lev[i] as usize;
                let wz = wzt[i];
                self.a22_diag[node] += zk.map_or(wz, |z| wz * z[i]);
                self.a21_vals[a21[i] as usize] += z0.map_or(wz, |z| wz * z[i]);
            }
            scatter_rows(&mut self.af2, pf, base, lev, wzt, x, response);
            for k1 in 1..k {
                let other = &spec.terms[re.blocks[k1].terms[0]];
                let pairs = &self.obs_pair[pair * n..(pair + 1) * n];
                pair += 1;
                if plan.unit[k1] {
                    for (&e, &wz) in pairs.iter().zip(wzt.iter()) {
                        self.a22_pair_vals[e as usize] += wz;
                    }
                } else {
                    for ((&e, &wz), &z) in pairs.iter().zip(wzt.iter()).zip(&other.z[..n]) {
                        self.a22_pair_vals[e as usize] += wz * z;
                    }
                }
            }
        }
    }

    /// What [`CrossProducts::refill`] needs besides the values: whether the fast scalar path
    /// applies, which scalar blocks are intercepts (`z = 1`), and its scratch.
    pub fn refill_plan(&self, spec: &ModelSpec<'_>, re: &ReStructure) -> RefillPlan {
        let scalar = re.blocks.iter().all(|b| b.q == 1 && b.terms.len() == 1);
        let n = self.n;
        let unit = re
            .blocks
            .iter()
            .map(|b| scalar && spec.terms[b.terms[0]].z[..n].iter().all(|&z| z == 1.0))
            .collect();
        let len = if scalar { n } else { 0 };
        RefillPlan {
            scalar,
            unit,
            wz0: vec![0.0; len],
            wzt: vec![0.0; len],
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

    /// Number of columns of `F = [X, y]`.
    pub fn pf(&self) -> usize {
        self.p + 1
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
