//! Case-deletion refits of a linear mixed model (lme4's `influence.merMod`): the model refitted
//! without each of several sets of observations (one observation, or every observation of a
//! group), each refit a full re-optimization of the criterion started from the full-data
//! optimum.
//!
//! Deleting observations changes the cross-products `A = [Z F]'W[Z F]` (`F = [X, y − offset]`)
//! by the deleted rows' own contributions, `A₋ = A − Σ_{i ∈ D} wᵢ aᵢ aᵢ'` with `aᵢ` the row of
//! `[Z F]`: each refit copies the full-data values and subtracts those rows (a pass over the
//! deleted rows only, never over the data), keeping the full data's sparsity pattern. A level
//! left without observations keeps its place in the pattern: its block of `Λ'Z'WZΛ` becomes 0,
//! its diagonal block of `L` the identity and its conditional mode 0, so it adds nothing to
//! `log|L_Z|²` or to `r²`, and the criterion is exactly that of the model fitted to the remaining
//! rows (where the level does not exist). With `n₋` observations left and `Σ_{i ∉ D} log wᵢ` the
//! weights' Jacobian, the criterion is the profiled one of `lmm`,
//!
//! ```text
//!   ML:   log|L_Z|² − Σ log wᵢ + n₋ (1 + log(2π r² / n₋))
//!   REML: log|L_Z|² − Σ log wᵢ + log|R_X|² + (n₋−p) (1 + log(2π r² / (n₋−p)))
//! ```
//!
//! Refits run on a rayon pool, one model workspace (cross-products and factor storage, with
//! the symbolic analysis of a sparse trailing block) per worker; each uses sequential linear
//! algebra, so a result does not depend on the number of threads. A refit that fails is
//! reported in its own slot and the others go on.
use crate::blocks::CrossProducts;
use crate::error::{invalid, Result};
use crate::inference::parallel;
use crate::lmm::{given_start_radius, LinearMixedModel};
use crate::optim::{self, Objective, OptSummary, OptimOptions};
use crate::spec::ModelSpec;
use crate::terms::ReStructure;
use crate::trailing::TrailingChoice;
use faer::Par;
use rayon::prelude::*;
use std::f64::consts::PI;

/// The estimates of one deletion refit.
#[derive(Debug, Clone)]
pub struct DeletionFit {
    /// Covariance parameters (lme4's layout).
    pub theta: Vec<f64>,
    /// The optimizer's parameters (`= theta` for unstructured terms).
    pub par: Vec<f64>,
    /// Fixed effects.
    pub beta: Vec<f64>,
    /// Residual standard deviation (REML or ML as fitted).
    pub sigma: f64,
    /// `(R_X R_X')⁻¹`, `p × p` column-major: `vcov(β) = σ² ×` this.
    pub vcov_unscaled: Vec<f64>,
    /// The criterion at the optimum.
    pub objective: f64,
    /// Number of observations left.
    pub n_obs: usize,
    /// Optimizer record.
    pub opt: OptSummary,
}

/// The rows of each deletion set from a code per observation: `codes[i]` (1-based, at most
/// `n_sets`) is the set observation `i` belongs to. Sets without observations are allowed (a
/// case of the data that the model did not use): their refit is the full-data fit.
pub fn deletion_sets(codes: &[i32], n_sets: usize) -> Result<Vec<Vec<usize>>> {
    let mut sets = vec![Vec::new(); n_sets];
    for (i, &c) in codes.iter().enumerate() {
        if c < 1 || c as usize > n_sets {
            return invalid(format!(
                "deletion set code {c} of observation {} is outside 1..{n_sets}",
                i + 1
            ));
        }
        sets[c as usize - 1].push(i);
    }
    Ok(sets)
}

/// Refits the linear mixed model `spec` (REML or ML) without each set of observations in
/// `sets` (0-based row indices), each from `start` (the full-data optimum, in the optimizer's
/// parameters), with the optimizer settings `opts`, on `threads` threads (0: all cores).
pub fn deletion_refits_lmm(
    spec: &ModelSpec<'_>,
    reml: bool,
    sets: &[Vec<usize>],
    start: &[f64],
    opts: &OptimOptions,
    threads: usize,
) -> Result<Vec<Result<DeletionFit>>> {
    let re = ReStructure::new(spec);
    re.check_par(start, "start")?;
    if let Some(&i) = sets.iter().flatten().find(|&&i| i >= spec.n) {
        return invalid(format!(
            "deleted row {} is beyond the {} observations",
            i + 1,
            spec.n
        ));
    }
    let full = CrossProducts::new(spec, &re)?;
    let pool = parallel::pool(threads)?;
    let out = pool.install(|| {
        sets.par_iter()
            .map_init(
                || None::<LinearMixedModel<'_>>,
                |state, rows| {
                    if state.is_none() {
                        *state = Some(LinearMixedModel::from_cross_products(
                            spec.clone(),
                            re.clone(),
                            full.clone(),
                            reml,
                            Par::Seq,
                            TrailingChoice::Auto,
                        )?);
                    }
                    match state.as_mut() {
                        Some(model) => refit_without(model, &full, rows, start, opts),
                        None => invalid("internal: no workspace"),
                    }
                },
            )
            .collect()
    });
    Ok(out)
}

/// One deletion refit in the workspace `model`: its cross-products reset to `full` less the
/// rows `rows`, one optimizer run from `start`, the estimates there.
fn refit_without(
    model: &mut LinearMixedModel<'_>,
    full: &CrossProducts,
    rows: &[usize],
    start: &[f64],
    opts: &OptimOptions,
) -> Result<DeletionFit> {
    let spec = model.spec.clone();
    let n_obs = spec.n - rows.len();
    let p = full.p;
    if n_obs == 0 || (model.reml && n_obs <= p) {
        return invalid(format!(
            "{n_obs} observations are left, too few for the {p} fixed effects{}",
            if model.reml { " (REML)" } else { "" }
        ));
    }
    reset_values(&mut model.cp, full);
    downdate_rows(&mut model.cp, &spec, &model.re, rows)?;
    let log_w = spec.log_weight_sum() - rows.iter().map(|&i| spec.weight(i).ln()).sum::<f64>();
    let lower = model.re.par_lower();
    let upper = model.re.par_upper();
    let mut run_opts = opts.clone();
    run_opts.rhobeg = given_start_radius(start, opts.rhobeg);
    let mut objective = DeletedObjective {
        model,
        n: n_obs as f64,
        log_w,
    };
    let opt = optim::minimize_within(&mut objective, start, &lower, &upper, &run_opts)?;
    let value = objective.at(&opt.theta);
    let model = objective.model;
    let theta = model.re.theta_of(&opt.theta);
    let (beta, _, _) = model.chol.solve(&model.cp);
    if !value.is_finite() || beta.iter().any(|b| !b.is_finite()) {
        return invalid(
            "the model cannot be fitted without these observations (the fixed-effects model \
             matrix of the remaining rows is rank deficient, or the criterion is not finite)",
        );
    }
    let denom = if model.reml { n_obs - p } else { n_obs } as f64;
    Ok(DeletionFit {
        par: opt.theta.clone(),
        theta,
        beta,
        sigma: (model.pwrss() / denom).sqrt(),
        vcov_unscaled: model.chol.vcov_unscaled(&model.cp),
        objective: value,
        n_obs,
        opt,
    })
}

/// The profiled criterion of the model whose cross-products lack some rows: `n` observations
/// left with weights' log-sum `log_w`.
struct DeletedObjective<'m, 'a> {
    model: &'m mut LinearMixedModel<'a>,
    n: f64,
    log_w: f64,
}

impl DeletedObjective<'_, '_> {
    /// Sets the optimizer's parameters `par` and returns the criterion (`+∞` where the factor
    /// cannot be formed).
    fn at(&mut self, par: &[f64]) -> f64 {
        let theta = self.model.re.theta_of(par);
        if self.model.set_theta(&theta).is_err() {
            return f64::INFINITY;
        }
        let m = &*self.model;
        let r2 = m.pwrss();
        let base = m.ldl2() - self.log_w;
        if m.reml {
            let nmp = self.n - m.cp.p as f64;
            base + m.ldrx2() + nmp * (1.0 + (2.0 * PI * r2 / nmp).ln())
        } else {
            base + self.n * (1.0 + (2.0 * PI * r2 / self.n).ln())
        }
    }
}

impl Objective for DeletedObjective<'_, '_> {
    fn eval(&mut self, par: &[f64]) -> f64 {
        self.at(par)
    }
}

/// Copies the values of `full` into `cp` (same pattern).
fn reset_values(cp: &mut CrossProducts, full: &CrossProducts) {
    cp.a11.copy_from_slice(&full.a11);
    cp.a21_vals.copy_from_slice(&full.a21_vals);
    cp.a22_diag.copy_from_slice(&full.a22_diag);
    cp.a22_pair_vals.copy_from_slice(&full.a22_pair_vals);
    cp.af1.copy_from_slice(&full.af1);
    cp.af2.copy_from_slice(&full.af2);
    cp.aff.copy_from_slice(&full.aff);
}

/// `dst −= w · a b'` for column vectors `a` and `b`, into column-major `len(a) × len(b)`.
fn sub_outer(dst: &mut [f64], w: f64, a: &[f64], b: &[f64]) {
    let ra = a.len();
    for (c, &bc) in b.iter().enumerate() {
        let wb = w * bc;
        for (d, &ar) in dst[c * ra..(c + 1) * ra].iter_mut().zip(a) {
            *d -= ar * wb;
        }
    }
}

/// The columns of block `b` of observation `i` (the block's terms' columns in order) into `out`.
fn block_row(spec: &ModelSpec<'_>, re: &ReStructure, b: usize, i: usize, out: &mut Vec<f64>) {
    out.clear();
    for &t in &re.blocks[b].terms {
        let term = &spec.terms[t];
        out.extend((0..term.q).map(|c| term.z[c * spec.n + i]));
    }
}

/// Subtracts the contributions of the observations `rows` from the cross-products `cp` (the
/// pattern of all of `spec`'s rows): `A₋ = A − Σ wᵢ aᵢ aᵢ'`, block by block as the fill adds
/// them.
fn downdate_rows(
    cp: &mut CrossProducts,
    spec: &ModelSpec<'_>,
    re: &ReStructure,
    rows: &[usize],
) -> Result<()> {
    let n = spec.n;
    let p = cp.p;
    let pf = p + 1;
    let q0 = cp.q0;
    let n_blocks = re.blocks.len();
    let level = |b: usize, i: usize| spec.terms[re.blocks[b].terms[0]].levels[i] as usize;
    let mut f = vec![0.0; pf];
    let mut z: Vec<Vec<f64>> = vec![Vec::new(); n_blocks];
    let mut nodes = vec![0usize; n_blocks];
    for &i in rows {
        let w = spec.weight(i);
        for (c, fc) in f.iter_mut().take(p).enumerate() {
            *fc = spec.x[c * n + i];
        }
        f[p] = cp.shifted_response(spec, i);
        sub_outer(&mut cp.aff, w, &f, &f);
        for (b, zb) in z.iter_mut().enumerate() {
            block_row(spec, re, b, i, zb);
        }
        let j = level(0, i);
        sub_outer(&mut cp.a11[j * q0 * q0..(j + 1) * q0 * q0], w, &z[0], &z[0]);
        sub_outer(&mut cp.af1[j * q0 * pf..(j + 1) * q0 * pf], w, &f, &z[0]);
        for b in 1..n_blocks {
            let node = cp.layout.block_node_base[b] + level(b, i);
            nodes[b] = node;
            let qn = z[b].len();
            let off = cp.layout.node_offset[node];
            let d = cp.a22_diag_off[node];
            sub_outer(&mut cp.a22_diag[d..d + qn * qn], w, &z[b], &z[b]);
            sub_outer(&mut cp.af2[off * pf..(off + qn) * pf], w, &f, &z[b]);
            let e = cp.find_a21(j, node)?;
            let v = cp.a21_val_off[e];
            sub_outer(&mut cp.a21_vals[v..v + qn * q0], w, &z[b], &z[0]);
            for b1 in 1..b {
                let e = cp.find_a22_pair(node, nodes[b1])?;
                let v = cp.a22_pair_off[e];
                let qc = z[b1].len();
                sub_outer(&mut cp.a22_pair_vals[v..v + qn * qc], w, &z[b], &z[b1]);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::RandomTerm;

    /// A small crossed model's columns: response, `[1, x]`, ones, and the codes of two crossed
    /// grouping factors (8 and 5 levels).
    struct Data {
        y: Vec<f64>,
        xm: Vec<f64>,
        ones: Vec<f64>,
        g: Vec<i32>,
        h: Vec<i32>,
    }

    /// A small crossed model: y on x with random intercepts of two crossed factors.
    fn data() -> Data {
        let n = 40;
        let mut y = Vec::new();
        let mut x = Vec::new();
        let mut g = Vec::new();
        let mut h = Vec::new();
        for i in 0..n {
            let xi = (i as f64 * 0.37).sin() * 2.0;
            let gi = (i % 8) as i32 + 1;
            let hi = (i % 5) as i32 + 1;
            let noise = ((i * 7919) % 97) as f64 / 97.0 - 0.5;
            y.push(1.0 + 0.5 * xi + 0.4 * gi as f64 - 0.3 * hi as f64 + noise);
            x.push(xi);
            g.push(gi);
            h.push(hi);
        }
        let mut xm = vec![1.0; n];
        xm.extend(x);
        let ones = vec![1.0; n];
        Data { y, xm, ones, g, h }
    }

    #[test]
    fn downdate_equals_refill_without_the_rows() {
        let Data { y, xm, ones, g, h } = data();
        let n = y.len();
        let terms = vec![
            RandomTerm::from_factor_codes(&g, 8, &ones, 1, 0).expect("term"),
            RandomTerm::from_factor_codes(&h, 5, &ones, 1, 1).expect("term"),
        ];
        let spec = ModelSpec::new(&y, &xm, 2, None, None, terms).expect("spec");
        let re = ReStructure::new(&spec);
        let full = CrossProducts::new(&spec, &re).expect("cp");
        let rows = [3usize, 17, 22];
        let mut down = full.clone();
        downdate_rows(&mut down, &spec, &re, &rows).expect("downdate");
        // The same pattern filled from all rows with weight 0 on the deleted ones.
        let mut w = vec![1.0; n];
        for &i in &rows {
            w[i] = 0.0;
        }
        let mut refill = full.clone();
        let response: Vec<f64> = (0..n).map(|i| full.shifted_response(&spec, i)).collect();
        crate::linalg::assemble::fill(&mut refill, &spec, &re, &xm, &response, Some(&w))
            .expect("fill");
        for (a, b) in [
            (&down.a11, &refill.a11),
            (&down.a21_vals, &refill.a21_vals),
            (&down.a22_diag, &refill.a22_diag),
            (&down.af1, &refill.af1),
            (&down.af2, &refill.af2),
            (&down.aff, &refill.aff),
        ] {
            for (u, v) in a.iter().zip(b.iter()) {
                assert!((u - v).abs() <= 1e-12 * (1.0 + v.abs()), "{u} vs {v}");
            }
        }
    }

    #[test]
    fn deleting_nothing_gives_the_fit_and_deleting_rows_the_subset_fit() {
        let Data { y, xm, ones, g, h } = data();
        let n = y.len();
        let terms = vec![
            RandomTerm::from_factor_codes(&g, 8, &ones, 1, 0).expect("term"),
            RandomTerm::from_factor_codes(&h, 5, &ones, 1, 1).expect("term"),
        ];
        let spec = ModelSpec::new(&y, &xm, 2, None, None, terms).expect("spec");
        let opts = OptimOptions {
            rhoend: 1e-10,
            ..Default::default()
        };
        let mut model = LinearMixedModel::new(spec.clone(), true, Par::Seq).expect("model");
        let fit = model
            .fit(None, &opts, &mut |_, _, _| crate::optim::Stop::Continue)
            .expect("fit");
        let keep: Vec<usize> = (0..n).filter(|i| i % 8 != 2).collect();
        let sets = vec![Vec::new(), (0..n).filter(|i| i % 8 == 2).collect()];
        let refits = deletion_refits_lmm(&spec, true, &sets, &fit.par, &opts, 2).expect("refits");
        let none = refits[0].as_ref().expect("refit 0");
        for (a, b) in none.beta.iter().zip(&fit.beta) {
            assert!((a - b).abs() < 1e-6);
        }
        assert!((none.sigma - fit.sigma).abs() < 1e-6);
        // The subset model, fitted from its own rows (level 3 of g is gone: recode g).
        let ys: Vec<f64> = keep.iter().map(|&i| y[i]).collect();
        let xs: Vec<f64> = (0..2)
            .flat_map(|c| keep.iter().map(move |&i| (c, i)))
            .map(|(c, i)| xm[c * n + i])
            .collect();
        let gs: Vec<i32> = keep
            .iter()
            .map(|&i| if g[i] > 3 { g[i] - 1 } else { g[i] })
            .collect();
        let hs: Vec<i32> = keep.iter().map(|&i| h[i]).collect();
        let ones_s = vec![1.0; keep.len()];
        let terms = vec![
            RandomTerm::from_factor_codes(&gs, 7, &ones_s, 1, 0).expect("term"),
            RandomTerm::from_factor_codes(&hs, 5, &ones_s, 1, 1).expect("term"),
        ];
        let sub = ModelSpec::new(&ys, &xs, 2, None, None, terms).expect("spec");
        let mut sub_model = LinearMixedModel::new(sub, true, Par::Seq).expect("model");
        let sub_fit = sub_model
            .fit(Some(&fit.par), &opts, &mut |_, _, _| {
                crate::optim::Stop::Continue
            })
            .expect("fit");
        let del = refits[1].as_ref().expect("refit 1");
        assert_eq!(del.n_obs, keep.len());
        assert!((del.objective - sub_fit.objective).abs() < 1e-8);
        for (a, b) in del.beta.iter().zip(&sub_fit.beta) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert!((del.sigma - sub_fit.sigma).abs() < 1e-6);
        for (a, b) in del.vcov_unscaled.iter().zip(&sub_fit.vcov_unscaled) {
            assert!((a - b).abs() < 1e-6 * (1.0 + b.abs()));
        }
    }

    #[test]
    fn bad_sets_are_errors() {
        assert!(deletion_sets(&[1, 2, 3], 2).is_err());
        assert!(deletion_sets(&[0], 1).is_err());
        let sets = deletion_sets(&[2, 1, 2], 3).expect("sets");
        assert_eq!(sets, vec![vec![1], vec![0, 2], vec![]]);
    }
}
