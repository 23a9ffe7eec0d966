//! The linear predictor `η = Xβ + Z b + offset` with `b = Λ u`, from the spherical random effects
//! as the blocked factor stores them (leading block `u₁`, trailing blocks `u₂`). Terms of the
//! zero-inflation predictor add to that predictor only ([`add_predictor_zb_rows`]).
use crate::blocks::TrailingLayout;
use crate::small;
use crate::spec::{ModelSpec, Predictor};
use crate::terms::ReStructure;

/// The spherical random effects per block, level-major (`n_levels × q` values per block, level
/// `j`'s `q` values at `j q`), from the factor's leading (`u₁`) and trailing (`u₂`) parts.
pub fn split_blocks(
    re: &ReStructure,
    layout: &TrailingLayout,
    u1: &[f64],
    u2: &[f64],
) -> Vec<Vec<f64>> {
    re.blocks
        .iter()
        .enumerate()
        .map(|(b, block)| {
            if b == 0 {
                u1.to_vec()
            } else {
                let first = layout.block_node_base[b];
                let start = layout.node_offset[first];
                u2[start..start + block.n_levels * block.q].to_vec()
            }
        })
        .collect()
}

/// The inverse of [`split_blocks`] for the blocks laid end to end (`dense`: block after block,
/// each level-major): writes them into the factor's `u₁` (block 0) and `u₂`.
pub fn join_blocks(
    re: &ReStructure,
    layout: &TrailingLayout,
    dense: &[f64],
    u1: &mut [f64],
    u2: &mut [f64],
) {
    let mut at = 0;
    for (b, block) in re.blocks.iter().enumerate() {
        let len = block.n_levels * block.q;
        if b == 0 {
            u1.copy_from_slice(&dense[at..at + len]);
        } else {
            let start = layout.node_offset[layout.block_node_base[b]];
            u2[start..start + len].copy_from_slice(&dense[at..at + len]);
        }
        at += len;
    }
}

/// `b = T u` per block straight from the factor's `u₁`/`u₂`, into preallocated `out` (laid out
/// as [`split_blocks`]); the per-evaluation form of [`block_effects`].
pub fn block_effects_into(
    re: &ReStructure,
    layout: &TrailingLayout,
    lambda: &[Vec<f64>],
    u1: &[f64],
    u2: &[f64],
    out: &mut [Vec<f64>],
) {
    for (b, block) in re.blocks.iter().enumerate() {
        let q = block.q;
        let u = if b == 0 {
            u1
        } else {
            let start = layout.node_offset[layout.block_node_base[b]];
            &u2[start..start + block.n_levels * q]
        };
        for j in 0..block.n_levels {
            small::lower_mul(
                &lambda[b],
                q,
                &u[j * q..(j + 1) * q],
                &mut out[b][j * q..(j + 1) * q],
            );
        }
    }
}

/// `b = T u` per block, same layout as [`split_blocks`].
pub fn block_effects(re: &ReStructure, lambda: &[Vec<f64>], u: &[Vec<f64>]) -> Vec<Vec<f64>> {
    re.blocks
        .iter()
        .enumerate()
        .map(|(b, block)| {
            let q = block.q;
            let mut out = vec![0.0; block.n_levels * q];
            for j in 0..block.n_levels {
                small::lower_mul(
                    &lambda[b],
                    q,
                    &u[b][j * q..(j + 1) * q],
                    &mut out[j * q..(j + 1) * q],
                );
            }
            out
        })
        .collect()
}

/// Per-block values (as [`split_blocks`] lays them out) regrouped per input term, level-major:
/// term `t`'s value for level `j`, component `k` at `j q_t + k` — lme4's layout of `u` and `b`.
pub fn term_values(spec: &ModelSpec<'_>, re: &ReStructure, values: &[Vec<f64>]) -> Vec<Vec<f64>> {
    spec.terms
        .iter()
        .enumerate()
        .map(|(t, term)| {
            let (b, col_off) = re.term_block[t];
            let qb = re.blocks[b].q;
            let mut out = Vec::with_capacity(term.n_levels * term.q);
            for j in 0..term.n_levels {
                out.extend_from_slice(&values[b][j * qb + col_off..j * qb + col_off + term.q]);
            }
            out
        })
        .collect()
}

/// `out += Z b` for per-block effects `b` (as [`block_effects`] returns them), over the terms of
/// the mean's predictor.
pub fn add_zb(spec: &ModelSpec<'_>, re: &ReStructure, b: &[Vec<f64>], out: &mut [f64]) {
    add_zb_rows(spec, re, b, 0, out);
}

/// [`add_zb`] for the observations `first..first + out.len()` only (`out` holds just those);
/// every observation receives its terms in the same order as in [`add_zb`].
pub fn add_zb_rows(
    spec: &ModelSpec<'_>,
    re: &ReStructure,
    b: &[Vec<f64>],
    first: usize,
    out: &mut [f64],
) {
    add_predictor_zb_rows(spec, re, b, Predictor::Mean, first, out);
}

/// `out += Z b` over the terms of `predictor` alone, for the observations
/// `first..first + out.len()`.
pub fn add_predictor_zb_rows(
    spec: &ModelSpec<'_>,
    re: &ReStructure,
    b: &[Vec<f64>],
    predictor: Predictor,
    first: usize,
    out: &mut [f64],
) {
    let n = spec.n;
    let rows = first..first + out.len();
    for (t, term) in spec.terms.iter().enumerate() {
        if term.predictor != predictor {
            continue;
        }
        let (blk, col_off) = re.term_block[t];
        let qb = re.blocks[blk].q;
        let bb = &b[blk];
        let levels = &term.levels[rows.clone()];
        for k in 0..term.q {
            let z = &term.z[k * n + rows.start..k * n + rows.end];
            for ((o, &zi), &l) in out.iter_mut().zip(z).zip(levels) {
                *o += zi * bb[l as usize * qb + col_off + k];
            }
        }
    }
}

/// `out += X β` for `X` (`n × p`, column-major).
pub fn add_xb(x: &[f64], n: usize, beta: &[f64], out: &mut [f64]) {
    for (c, &bc) in beta.iter().enumerate() {
        if bc == 0.0 {
            continue;
        }
        for (o, &xi) in out.iter_mut().zip(&x[c * n..(c + 1) * n]) {
            *o += xi * bc;
        }
    }
}
