//! Denominator degrees of freedom for tests of the fixed effects of a linear mixed model.
//!
//! **Satterthwaite** (as lmerTest computes it). With variance parameters `ψ = (θ, σ)`, the
//! covariance of β is `C(ψ) = σ² (R_X R_X')⁻¹(θ)` and the (RE)ML deviance with σ not profiled is
//!
//! ```text
//!   d(θ, σ) = a(θ) + r²(θ)/σ² + c log(2πσ²),   a = log|L_Z|² (+ log|R_X|²),  c = n (or n − p)
//! ```
//!
//! For a contrast `l`, `df = 2 (l'Cl)² / (g' A g)` with `g_k = l' (∂C/∂ψ_k) l` and
//! `A = 2 H⁻¹` the asymptotic covariance of ψ (`H` the Hessian of `d` at the estimates, inverted
//! on its positive eigenvalues as lmerTest does). Derivatives in θ are Richardson-extrapolated
//! central differences of `a`, `r²` and `(R_X R_X')⁻¹` (one factorization per point); those in σ
//! are analytic. The contrasts themselves are formed by the caller.
//!
//! **Kenward–Roger** (as pbkrtest computes it). With `V = Σ_r γ_r G_r` (the variance and
//! covariance elements of each term, `G_r = Z D_r Z'`, and σ² with `G = W⁻¹`), pbkrtest needs
//! `P_r = −X'V⁻¹G_rV⁻¹X`, `Q_rs = X'V⁻¹G_rV⁻¹G_sV⁻¹X` and `K_rs = tr(V⁻¹G_rV⁻¹G_s)`. All are
//! formed in the random-effects space, never with an `n × n` matrix: with `A = Z'WZ`,
//! `B = Z'WX`, `C = Λ'AΛ + I` and `S = C⁻¹` (Woodbury),
//!
//! ```text
//!   Z'V₀⁻¹Z = A − A Λ S Λ'A,          V₀⁻¹W⁻¹V₀⁻¹ = W − WZΛ(S + S²)Λ'Z'W,
//!   V₀⁻¹W⁻¹V₀⁻¹W⁻¹V₀⁻¹ = W − WZΛ(S + S² + S³)Λ'Z'W,   tr((V₀⁻¹W⁻¹)²) = n − q + tr(S²)
//! ```
//!
//! (`V = σ² V₀`). When `Λ` is invertible these need one dense factorization and inverse of
//! `C` and `q × q` by `q × p` products alone (`Λ'(Z'V₀⁻¹Z)Λ = I − S`, see
//! [`woodbury_by_blocks`], with the block-diagonal `Λ` applied block by block); otherwise
//! (a variance at 0) a few dense `q × q` products ([`woodbury_dense`]).
use crate::blocks::CrossProducts;
use crate::error::{invalid, MixedError, Result};
use crate::inference::block_lambda::BlockLambda;
use crate::inference::parallel::Watched;
use crate::lmm::LinearMixedModel;
use crate::model::covariance::Structure;
use crate::terms::ReStructure;
use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, MatRef, Side};

/// Ingredients of Satterthwaite's degrees of freedom at the estimates.
#[derive(Debug, Clone)]
pub struct Satterthwaite {
    /// Number of variance parameters `k` (θ then σ).
    pub k: usize,
    /// `C = σ² (R_X R_X')⁻¹`, `p × p` column-major.
    pub vcov_beta: Vec<f64>,
    /// `∂C/∂ψ_k`, each `p × p` column-major.
    pub jacobian: Vec<Vec<f64>>,
    /// `A = 2 H⁺`, `k × k`.
    pub vcov_varpar: Vec<f64>,
    /// Eigenvalues of `H`, descending.
    pub hessian_eigenvalues: Vec<f64>,
}

/// Refactors `model` at the optimizer's parameters `par` (θ itself for unstructured terms).
fn set_par(model: &mut LinearMixedModel<'_>, par: &[f64]) -> Result<()> {
    if model.re.all_unstructured() {
        model.set_theta(par)
    } else {
        let theta = model.re.theta_of(par);
        model.set_theta(&theta)
    }
}

/// Values of the θ-dependent pieces at one `par`: `a`, `r²` and `(R_X R_X')⁻¹`.
fn pieces(model: &mut LinearMixedModel<'_>, par: &[f64]) -> Result<(f64, f64, Vec<f64>)> {
    set_par(model, par)?;
    let chol = &model.chol;
    let cp = &model.cp;
    let mut a = chol.logdet_l11 + chol.logdet_l22;
    if model.reml {
        a += chol.logdet_rx(cp);
    }
    let r = chol.pwrss_sqrt(cp);
    Ok((a, r * r, chol.vcov_unscaled(cp)))
}

/// Richardson-extrapolated central differences with steps `h, h/2, h/4`: each estimate's
/// error series is in even powers of the step, so extrapolation removes them level by level.
fn richardson(estimates: &[f64]) -> f64 {
    let mut row: Vec<f64> = estimates.to_vec();
    let mut factor = 4.0;
    for _ in 1..estimates.len() {
        let next: Vec<f64> = row
            .windows(2)
            .map(|w| (factor * w[1] - w[0]) / (factor - 1.0))
            .collect();
        row = next;
        factor *= 4.0;
    }
    row[0]
}

const LEVELS: usize = 3;

/// First step of the Richardson sequence for θ element `x`. The criterion is a smooth (even in
/// each diagonal element) function of θ, so large steps cost no accuracy after extrapolation,
/// while small ones lose digits to rounding: on sleepstudy's slope model a first step of
/// `1e-3·|θ|` left the df noisy at 1e-5 (relative) between θ that differ by 3e-7, and 3e-4 on
/// `nlme::Machines`; with `3e-2·|θ|` they agree with lmerTest at the same θ to 1e-6.
fn step(x: f64) -> f64 {
    3e-2 * x.abs().max(0.1)
}

/// Satterthwaite ingredients for `model` at (θ, σ); for structured covariance terms `theta` is
/// the optimizer's `par`, and the derivatives are taken in it (the df do not depend on the
/// parameterisation at the optimum, but they must be those of the model's own parameters:
/// differentiating a structured model in the unstructured θ gives another model's df).
pub fn satterthwaite(
    model: &mut LinearMixedModel<'_>,
    theta: &[f64],
    sigma: f64,
) -> Result<Satterthwaite> {
    model.re.check_par(theta, "theta")?;
    let (lower, upper) = (model.re.par_lower(), model.re.par_upper());
    // The first step of each parameter, kept inside its bounds (a correlation near ±1).
    let step = |i: usize| {
        let room = (theta[i] - lower[i]).min(upper[i] - theta[i]);
        let h = step(theta[i]);
        if room.is_finite() && room > 0.0 {
            h.min(0.9 * room)
        } else {
            h
        }
    };
    let nth = theta.len();
    let k = nth + 1;
    let p = model.spec.p;
    let n = model.spec.n as f64;
    let c = if model.reml { n - p as f64 } else { n };
    let s2 = sigma * sigma;
    let (_, b0, v0) = pieces(model, theta)?;
    let g = |model: &mut LinearMixedModel<'_>, t: &[f64]| -> Result<(f64, f64, Vec<f64>)> {
        let (a, b, v) = pieces(model, t)?;
        Ok((a + b / s2, b, v))
    };
    let g0 = {
        let (a, b, _) = pieces(model, theta)?;
        a + b / s2
    };

    // First derivatives of r² and of (R_X R_X')⁻¹; second derivatives of g = a + r²/σ².
    let mut db = vec![0.0; nth];
    let mut dv = vec![vec![0.0; p * p]; nth];
    let mut hg = vec![0.0; nth * nth];
    let mut t = theta.to_vec();
    for i in 0..nth {
        let mut est_db = Vec::with_capacity(LEVELS);
        let mut est_dv: Vec<Vec<f64>> = Vec::with_capacity(LEVELS);
        let mut est_h = Vec::with_capacity(LEVELS);
        let mut h = step(i);
        for _ in 0..LEVELS {
            t[i] = theta[i] + h;
            let (gp, bp, vp) = g(model, &t)?;
            t[i] = theta[i] - h;
            let (gm, bm, vm) = g(model, &t)?;
            t[i] = theta[i];
            est_db.push((bp - bm) / (2.0 * h));
            est_dv.push(
                vp.iter()
                    .zip(&vm)
                    .map(|(x, y)| (x - y) / (2.0 * h))
                    .collect(),
            );
            est_h.push((gp - 2.0 * g0 + gm) / (h * h));
            h /= 2.0;
        }
        db[i] = richardson(&est_db);
        for e in 0..p * p {
            let col: Vec<f64> = est_dv.iter().map(|v| v[e]).collect();
            dv[i][e] = richardson(&col);
        }
        hg[i * nth + i] = richardson(&est_h);
        for j in 0..i {
            let mut est = Vec::with_capacity(LEVELS);
            let (mut hi, mut hj) = (step(i), step(j));
            for _ in 0..LEVELS {
                let mut sum = 0.0;
                for (si, sj, sign) in [
                    (1.0, 1.0, 1.0),
                    (1.0, -1.0, -1.0),
                    (-1.0, 1.0, -1.0),
                    (-1.0, -1.0, 1.0),
                ] {
                    t[i] = theta[i] + si * hi;
                    t[j] = theta[j] + sj * hj;
                    sum += sign * g(model, &t)?.0;
                }
                t[i] = theta[i];
                t[j] = theta[j];
                est.push(sum / (4.0 * hi * hj));
                hi /= 2.0;
                hj /= 2.0;
            }
            let v = richardson(&est);
            hg[j * nth + i] = v;
            hg[i * nth + j] = v;
        }
    }
    // Leave the model at the estimates.
    set_par(model, theta)?;

    // Full Hessian over (θ, σ): ∂²d/∂σ² = 6r²/σ⁴ − 2c/σ², ∂²d/∂θ∂σ = −2 ∂r²/∂θ / σ³.
    let mut hess = vec![0.0; k * k];
    for i in 0..nth {
        for j in 0..nth {
            hess[j * k + i] = hg[j * nth + i];
        }
        let cross = -2.0 * db[i] / (s2 * sigma);
        hess[nth * k + i] = cross;
        hess[i * k + nth] = cross;
    }
    hess[k * k - 1] = 6.0 * b0 / (s2 * s2) - 2.0 * c / s2;

    // A = 2 H⁺ on the eigenvalues above lmerTest's tolerance.
    let hmat = Mat::from_fn(k, k, |i, j| hess[j * k + i]);
    let evd = hmat
        .self_adjoint_eigen(Side::Lower)
        .map_err(|_| MixedError::InvalidInput("Hessian eigenproblem failed".into()))?;
    let values = evd.S().column_vector();
    let vectors = evd.U();
    let tol = 1e-8;
    let mut vcov_varpar = vec![0.0; k * k];
    for m in 0..k {
        let lam = values[m];
        if lam > tol {
            for a in 0..k {
                for b in 0..k {
                    vcov_varpar[b * k + a] += 2.0 * vectors[(a, m)] * vectors[(b, m)] / lam;
                }
            }
        }
    }
    let mut hessian_eigenvalues: Vec<f64> = (0..k).map(|m| values[m]).collect();
    hessian_eigenvalues.reverse();

    // ∂C/∂θ = σ² ∂V/∂θ, ∂C/∂σ = 2σ V.
    let mut jacobian: Vec<Vec<f64>> = dv
        .into_iter()
        .map(|d| d.iter().map(|x| s2 * x).collect())
        .collect();
    jacobian.push(v0.iter().map(|x| 2.0 * sigma * x).collect());
    Ok(Satterthwaite {
        k,
        vcov_beta: v0.iter().map(|x| s2 * x).collect(),
        jacobian,
        vcov_varpar,
        hessian_eigenvalues,
    })
}

/// Ingredients of the Kenward–Roger adjustment at the estimates, in pbkrtest's notation.
#[derive(Debug, Clone)]
pub struct KenwardRoger {
    /// Number of variance parameters (covariance elements of each term, then σ²).
    pub k: usize,
    /// `Φ = σ² (X'V₀⁻¹X)⁻¹`, `p × p`.
    pub phi: Vec<f64>,
    /// `P_r`, each `p × p`.
    pub p: Vec<Vec<f64>>,
    /// `Q_rs` for `r ≤ s` in pbkrtest's order (row by row of the upper triangle), each `p × p`.
    pub q: Vec<Vec<f64>>,
    /// `K_rs`, `k × k`.
    pub ktrace: Vec<f64>,
    /// `R_rs = X'V⁻¹(∂²V/∂ψ_r∂ψ_s)V⁻¹X` in the order of `q`, empty where the second
    /// derivative is zero (every parameter of a linear covariance).
    pub r: Vec<Vec<f64>>,
}

/// `D_r` of one variance parameter as weighted pairs of random-effects coordinates (in the
/// blocked internal order), its entries repeated over the levels of the term's factor.
type Pairs = Vec<(usize, usize, f64)>;

/// For each Kenward–Roger variance parameter of the random effects (lme4's term order, each term's
/// parameters from [`crate::model::covariance::Covariance::kr_basis`]: for unstructured terms the
/// covariance elements, column by column of the lower triangle), the weighted pairs where its
/// `D_r = ∂(σ²Σ)/∂ψ_r` is not zero; and the same for the second derivatives that are not zero
/// (nonlinear structures), keyed by the two parameters' global indices.
#[allow(clippy::type_complexity)]
fn parameter_pairs(
    re: &ReStructure,
    cp: &CrossProducts,
    spec_terms: &[(usize, usize)],
    par: &[f64],
    sigma2: f64,
) -> Result<(Vec<Pairs>, Vec<((usize, usize), Pairs)>)> {
    let layout = &cp.layout;
    let lead = cp.l0 * cp.q0;
    let coord = |block: usize, level: usize, col: usize| -> usize {
        if block == 0 {
            level * re.blocks[0].q + col
        } else {
            lead + layout.node_offset[layout.block_node_base[block] + level] + col
        }
    };
    // A term's q × q matrix `d` spread over its levels: for each column b and row a ≥ b the
    // entry (a, b), then its mirror (b, a).
    let spread = |t: usize, q_t: usize, n_levels: usize, d: &[f64]| -> Pairs {
        let (block, off) = re.term_block[t];
        let mut pairs = Vec::new();
        for l in 0..n_levels {
            for b in 0..q_t {
                for a in b..q_t {
                    let i = coord(block, l, off + a);
                    let j = coord(block, l, off + b);
                    let w = d[b * q_t + a];
                    if w != 0.0 {
                        pairs.push((i, j, w));
                    }
                    let w2 = d[a * q_t + b];
                    if a != b && w2 != 0.0 {
                        pairs.push((j, i, w2));
                    }
                }
            }
        }
        pairs
    };
    let mut first = Vec::new();
    let mut second = Vec::new();
    for (t, ((c, p), &(q_t, n_levels))) in re.term_pars(par).zip(spec_terms).enumerate() {
        let basis = c.kr_basis(p, sigma2).ok_or_else(|| {
            MixedError::InvalidInput(format!(
                "Kenward-Roger's method needs every variance of the {}() term {} to be positive",
                c.structure.tag(),
                t + 1
            ))
        })?;
        let base = first.len();
        if c.structure == Structure::Unstructured {
            // The covariance elements, level by level (the order pbkrtest sums them in).
            for b in 0..q_t {
                for a in b..q_t {
                    let (block, off) = re.term_block[t];
                    let mut pairs = Vec::with_capacity(2 * n_levels);
                    for l in 0..n_levels {
                        let i = coord(block, l, off + a);
                        let j = coord(block, l, off + b);
                        pairs.push((i, j, 1.0));
                        if a != b {
                            pairs.push((j, i, 1.0));
                        }
                    }
                    first.push(pairs);
                }
            }
            continue;
        }
        for d in &basis.first {
            first.push(spread(t, q_t, n_levels, d));
        }
        for ((r, s_), d) in &basis.second {
            second.push(((base + r, base + s_), spread(t, q_t, n_levels, d)));
        }
    }
    Ok((first, second))
}

/// Dense `Z'WZ` (`q × q`) and `Z'WX` (`q × p`) in the blocked internal order, and `X'WX`.
fn dense_cross_products(cp: &CrossProducts) -> (Mat<f64>, Mat<f64>, Mat<f64>) {
    let layout = &cp.layout;
    let (q0, l0, p) = (cp.q0, cp.l0, cp.p);
    let pf = p + 1;
    let lead = l0 * q0;
    let q = lead + layout.m;
    let mut a = Mat::<f64>::zeros(q, q);
    for j in 0..l0 {
        for c in 0..q0 {
            for r in 0..q0 {
                a[(j * q0 + r, j * q0 + c)] = cp.a11[j * q0 * q0 + c * q0 + r];
            }
        }
        for e in cp.a21_ptr[j]..cp.a21_ptr[j + 1] {
            let node = cp.a21_node[e] as usize;
            let qr = layout.node_q(node);
            let off = lead + layout.node_offset[node];
            let vals = &cp.a21_vals[cp.a21_val_off[e]..cp.a21_val_off[e + 1]];
            for c in 0..q0 {
                for r in 0..qr {
                    a[(off + r, j * q0 + c)] = vals[c * qr + r];
                    a[(j * q0 + c, off + r)] = vals[c * qr + r];
                }
            }
        }
    }
    for t in 0..layout.n_nodes() {
        let qt = layout.node_q(t);
        let off = lead + layout.node_offset[t];
        let vals = &cp.a22_diag[cp.a22_diag_off[t]..cp.a22_diag_off[t + 1]];
        for c in 0..qt {
            for r in 0..qt {
                a[(off + r, off + c)] = vals[c * qt + r];
            }
        }
    }
    for (e, &(rn, cn)) in cp.a22_pairs.iter().enumerate() {
        let (rn, cn) = (rn as usize, cn as usize);
        let (qr, qc) = (layout.node_q(rn), layout.node_q(cn));
        let (ro, co) = (lead + layout.node_offset[rn], lead + layout.node_offset[cn]);
        let vals = &cp.a22_pair_vals[cp.a22_pair_off[e]..cp.a22_pair_off[e + 1]];
        for c in 0..qc {
            for r in 0..qr {
                a[(ro + r, co + c)] = vals[c * qr + r];
                a[(co + c, ro + r)] = vals[c * qr + r];
            }
        }
    }
    let mut b = Mat::<f64>::zeros(q, p);
    for col in 0..lead {
        for f in 0..p {
            b[(col, f)] = cp.af1[col * pf + f];
        }
    }
    for col in 0..layout.m {
        for f in 0..p {
            b[(lead + col, f)] = cp.af2[col * pf + f];
        }
    }
    let xw = Mat::from_fn(p, p, |i, j| cp.aff[j * pf + i]);
    (a, b, xw)
}

/// Dense block-diagonal `Λ` (`q × q`) in the blocked internal order.
fn dense_lambda(re: &ReStructure, cp: &CrossProducts, lambda: &[Vec<f64>]) -> Mat<f64> {
    let layout = &cp.layout;
    let lead = cp.l0 * cp.q0;
    let q = lead + layout.m;
    let mut out = Mat::<f64>::zeros(q, q);
    for (bk, block) in re.blocks.iter().enumerate() {
        let qb = block.q;
        for l in 0..block.n_levels {
            let base = if bk == 0 {
                l * qb
            } else {
                lead + layout.node_offset[layout.block_node_base[bk] + l]
            };
            for c in 0..qb {
                for r in c..qb {
                    out[(base + r, base + c)] = lambda[bk][c * qb + r];
                }
            }
        }
    }
    out
}

/// `M' D M₂` for `M` (`q × a`), `M₂` (`q × b`) and `D` given by its unit pairs.
fn sandwich(m: MatRef<'_, f64>, pairs: &[(usize, usize, f64)], m2: MatRef<'_, f64>) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(m.ncols(), m2.ncols());
    for &(i, j, w) in pairs {
        for c in 0..m2.ncols() {
            let v = w * m2[(j, c)];
            if v == 0.0 {
                continue;
            }
            for r in 0..m.ncols() {
                out[(r, c)] += m[(i, r)] * v;
            }
        }
    }
    out
}

/// `D M` for `D` given by its weighted pairs (`q × q`) and `M` (`q × a`).
fn select_rows(pairs: &[(usize, usize, f64)], m: MatRef<'_, f64>) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(m.nrows(), m.ncols());
    for &(i, j, w) in pairs {
        for c in 0..m.ncols() {
            out[(i, c)] += w * m[(j, c)];
        }
    }
    out
}

fn to_vec(m: &Mat<f64>) -> Vec<f64> {
    let mut v = Vec::with_capacity(m.nrows() * m.ncols());
    for j in 0..m.ncols() {
        for i in 0..m.nrows() {
            v.push(m[(i, j)]);
        }
    }
    v
}

/// The random-effects-space pieces of Kenward–Roger's matrices (module docs; `V = σ²V₀`,
/// `W` the prior weights): `Z'V₀⁻¹Z`, `Z'V₀⁻¹X`, `X'V₀⁻¹X`, `Z'V₀⁻¹W⁻¹V₀⁻¹X`,
/// `X'V₀⁻¹W⁻¹V₀⁻¹X`, `X'V₀⁻¹W⁻¹V₀⁻¹W⁻¹V₀⁻¹X`, `tr(S²)` and the entries of
/// `Z'V₀⁻¹W⁻¹V₀⁻¹Z` the traces read.
struct Woodbury {
    vzz: Mat<f64>,
    vzx: Mat<f64>,
    vxx: Mat<f64>,
    yzx: Mat<f64>,
    yxx: Mat<f64>,
    rxx: Mat<f64>,
    tr_s2: f64,
    yzz: Yzz,
}

/// `Z'V₀⁻¹W⁻¹V₀⁻¹Z`: formed, or read entry by entry from `S` and `Λ⁻¹` as
/// `Λ⁻ᵀ(S − S²)Λ⁻¹`.
enum Yzz {
    Dense(Mat<f64>),
    FromS { s: Mat<f64>, inverse: BlockLambda },
}

impl Yzz {
    /// Entry `(j, i)`.
    fn at(&self, j: usize, i: usize) -> f64 {
        match self {
            Yzz::Dense(m) => m[(j, i)],
            Yzz::FromS { s, inverse } => {
                // Σ_{a,b} Λ⁻¹[a, j] (S − S²)[a, b] Λ⁻¹[b, i] over the blocks of j and i, with
                // (S²)[a, b] the product of S's columns a and b (S is symmetric).
                let (bj, cj, colj) = inverse.column_of(j);
                let (bi, ci, coli) = inverse.column_of(i);
                let mut sum = 0.0;
                for (ra, &la) in colj.iter().enumerate().skip(cj) {
                    if la == 0.0 {
                        continue;
                    }
                    let sa = s.col(bj + ra);
                    for (rb, &lb) in coli.iter().enumerate().skip(ci) {
                        if lb == 0.0 {
                            continue;
                        }
                        let sb = s.col(bi + rb);
                        let s2: f64 = sa.iter().zip(sb.iter()).map(|(x, y)| x * y).sum();
                        sum += la * (s[(bj + ra, bi + rb)] - s2) * lb;
                    }
                }
                sum
            }
        }
    }
}

/// The fixed-effects pieces both routes share, from `Λ'B`, `SΛ'B` and `S²Λ'B`:
/// `X'V₀⁻¹X`, `X'V₀⁻¹W⁻¹V₀⁻¹X` and `X'V₀⁻¹W⁻¹V₀⁻¹W⁻¹V₀⁻¹X`.
fn fixed_pieces(
    xw: &Mat<f64>,
    lb: &Mat<f64>,
    t_b: &Mat<f64>,
    st_b: &Mat<f64>,
) -> (Mat<f64>, Mat<f64>, Mat<f64>) {
    let vxx = xw - lb.transpose() * t_b;
    let yxx = &vxx - t_b.transpose() * t_b;
    let rxx = &yxx - t_b.transpose() * st_b;
    (vxx, yxx, rxx)
}

/// `tr(S²) = ‖S‖²_F` of the symmetric `S`.
fn squared_norm(s: &Mat<f64>) -> f64 {
    s.col_iter()
        .map(|c| c.iter().map(|v| v * v).sum::<f64>())
        .sum()
}

/// Smallest diagonal element of `Λ'AΛ` for which [`woodbury_by_blocks`] forms `I − S` (which
/// is `Λ'(Z'V₀⁻¹Z)Λ`): its rounding error relative to the entries is about `1e-16/m`, so at
/// least 1e-4 keeps them within 1e-12.
const MIN_BLOCK_CURVATURE: f64 = 1e-4;

/// [`Woodbury`] with one dense `q × q` factorization and inverse: with `M = Λ'AΛ`, `S = (M +
/// I)⁻¹` and `Λ` invertible, `MS = SM = I − S`, so `Λ'(A − AΛSΛ'A)Λ = M − MSM = I − S` and
/// `Λ'(Z'V₀⁻¹W⁻¹V₀⁻¹Z)Λ = (I − S) − (I − S)² = S − S²`; every other piece is a `q × q` times
/// `q × p` product, and the products with `Λ` go block by block. `None` when `Λ` is singular
/// or `M` has a diagonal element below [`MIN_BLOCK_CURVATURE`] (a variance at or near 0): the
/// caller then forms the pieces densely ([`woodbury_dense`]). On InstEval (q = 4114) this is
/// one Cholesky factor and inverse instead of seven dense `q × q` products.
fn woodbury_by_blocks(
    a: &Mat<f64>,
    b: &Mat<f64>,
    xw: &Mat<f64>,
    lambda: &BlockLambda,
    check: &dyn Fn() -> Result<()>,
) -> Result<Option<Woodbury>> {
    let Some(inverse) = lambda.inverse() else {
        return Ok(None);
    };
    let q = a.nrows();
    let mut c = a.clone();
    lambda.sandwich(&mut c);
    if (0..q).any(|i| c[(i, i)] < MIN_BLOCK_CURVATURE) {
        return Ok(None);
    }
    for i in 0..q {
        c[(i, i)] += 1.0;
    }
    check()?;
    let s = c
        .llt(Side::Lower)
        .map_err(|_| MixedError::NotPositiveDefinite {
            stage: "Kenward-Roger: Λ'Z'WZΛ + I",
        })?
        .inverse();
    check()?;
    // Λ'B, SΛ'B and S²Λ'B; A Λ M for the products with (Λ'A)' = AΛ.
    let mut lb = b.clone();
    lambda.transpose_left_multiply(&mut lb);
    let t_b = &s * &lb;
    let st_b = &s * &t_b;
    let a_lambda = |m: &Mat<f64>| -> Mat<f64> {
        let mut lm = m.clone();
        lambda.left_multiply(&mut lm);
        a * &lm
    };
    let vzx = b - a_lambda(&t_b);
    let yzx = &vzx - a_lambda(&st_b);
    let (vxx, yxx, rxx) = fixed_pieces(xw, &lb, &t_b, &st_b);
    check()?;
    let tr_s2 = squared_norm(&s);
    // Z'V₀⁻¹Z = Λ⁻ᵀ (I − S) Λ⁻¹.
    let mut vzz = Mat::from_fn(q, q, |i, j| f64::from(u8::from(i == j)) - s[(i, j)]);
    inverse.sandwich(&mut vzz);
    Ok(Some(Woodbury {
        vzz,
        vzx,
        vxx,
        yzx,
        yxx,
        rxx,
        tr_s2,
        yzz: Yzz::FromS { s, inverse },
    }))
}

/// [`Woodbury`] by dense products with `Λ` (`lam`, `q × q`), valid for every `Λ`.
fn woodbury_dense(
    a: &Mat<f64>,
    b: &Mat<f64>,
    xw: &Mat<f64>,
    lam: &Mat<f64>,
    check: &dyn Fn() -> Result<()>,
) -> Result<Woodbury> {
    let q = a.nrows();
    // C = Λ'AΛ + I and S = C⁻¹.
    let la = lam.transpose() * a; // Λ'A
    let lb = lam.transpose() * b; // Λ'B
    let mut c = &la * lam;
    check()?;
    for i in 0..q {
        c[(i, i)] += 1.0;
    }
    let llt = c
        .llt(Side::Lower)
        .map_err(|_| MixedError::NotPositiveDefinite {
            stage: "Kenward-Roger: Λ'Z'WZΛ + I",
        })?;
    let s = llt.inverse();
    check()?;
    let t_a = &s * &la; // SΛ'A
    let t_b = &s * &lb; // SΛ'B
    let st_b = &s * &t_b; // S²Λ'B
    check()?;
    let vzz = a - la.transpose() * &t_a;
    let vzx = b - la.transpose() * &t_b;
    check()?;
    let yzz = &vzz - t_a.transpose() * &t_a;
    let yzx = &vzx - t_a.transpose() * &t_b;
    let (vxx, yxx, rxx) = fixed_pieces(xw, &lb, &t_b, &st_b);
    let tr_s2 = squared_norm(&s);
    Ok(Woodbury {
        vzz,
        vzx,
        vxx,
        yzx,
        yxx,
        rxx,
        tr_s2,
        yzz: Yzz::Dense(yzz),
    })
}

/// Kenward–Roger ingredients for a REML `model` at (θ, σ). `terms` gives `(q_t, n_levels)` of
/// each input term (lme4's order).
pub fn kenward_roger(
    model: &mut LinearMixedModel<'_>,
    theta: &[f64],
    sigma: f64,
    terms: &[(usize, usize)],
    watched: &Watched,
) -> Result<KenwardRoger> {
    if !model.reml {
        return invalid("Kenward-Roger's method is only available for REML fits");
    }
    // Between the dense steps (each up to seconds on a large model): one more step done, and
    // a raised stop flag (a user interrupt, see crate::inference::parallel::watch) ends the
    // computation.
    let check = || -> Result<()> {
        watched.tick();
        if watched.stopped() {
            Err(MixedError::Optimizer("interrupted by the user".into()))
        } else {
            Ok(())
        }
    };
    model.re.check_par(theta, "theta")?;
    let par = theta;
    let theta = &model.re.theta_of(par);
    model.set_theta(theta)?;
    let n = model.spec.n as f64;
    let re = &model.re;
    let cp = &model.cp;
    let mut lambda = re.lambda_buffers();
    re.fill_lambda(theta, &mut lambda);
    let (a, b, xw) = dense_cross_products(cp);
    check()?;
    let q = a.nrows();
    let p = b.ncols();
    let s2 = sigma * sigma;
    let block_lambda = BlockLambda::new(re, cp, &lambda);
    let woodbury = match woodbury_by_blocks(&a, &b, &xw, &block_lambda, &check)? {
        Some(w) => w,
        None => woodbury_dense(&a, &b, &xw, &dense_lambda(re, cp, &lambda), &check)?,
    };
    let Woodbury {
        vzz,
        vzx,
        vxx,
        yzx,
        yxx,
        rxx,
        tr_s2,
        yzz,
    } = woodbury;

    let phi0 = vxx
        .llt(Side::Lower)
        .map_err(|_| MixedError::NotPositiveDefinite {
            stage: "Kenward-Roger: X'V⁻¹X",
        })?
        .inverse();
    let phi = Mat::from_fn(p, p, |i, j| s2 * phi0[(i, j)]);

    let (pairs, second_pairs) = parameter_pairs(re, cp, terms, par, sigma * sigma)?;
    let kre = pairs.len();
    let k = kre + 1;
    let (s4, s6) = (s2 * s2, s2 * s2 * s2);
    // P_r and the parts needed for Q and K.
    let mut p_list = Vec::with_capacity(k);
    let mut dz: Vec<Mat<f64>> = Vec::with_capacity(kre); // D_r (Z'V₀⁻¹X)
    for pr in &pairs {
        check()?;
        let ar = sandwich(vzx.as_ref(), pr, vzx.as_ref());
        p_list.push(to_vec(&Mat::from_fn(p, p, |i, j| -ar[(i, j)] / s4)));
        dz.push(select_rows(pr, vzx.as_ref()));
    }
    p_list.push(to_vec(&Mat::from_fn(p, p, |i, j| -yxx[(i, j)] / s4)));

    let mut q_list = Vec::with_capacity(k * (k + 1) / 2);
    let mut ktrace = vec![0.0; k * k];
    for r in 0..k {
        for s_ in r..k {
            check()?;
            let qm = match (r < kre, s_ < kre) {
                (true, true) => vzx.transpose() * select_rows(&pairs[r], (&vzz * &dz[s_]).as_ref()),
                (true, false) => {
                    // X'V⁻¹ G_r V⁻¹ W⁻¹ V⁻¹ X = (D_r Z'V₀⁻¹X)' (Z'V₀⁻¹W⁻¹V₀⁻¹X)
                    dz[r].transpose() * &yzx
                }
                (false, _) => rxx.clone(),
            };
            q_list.push(to_vec(&Mat::from_fn(p, p, |i, j| qm[(i, j)] / s6)));
            let kv = match (r < kre, s_ < kre) {
                (true, true) => {
                    let mut sum = 0.0;
                    for &(i, j, wr) in &pairs[r] {
                        for &(kk, l, ws) in &pairs[s_] {
                            sum += wr * ws * vzz[(j, kk)] * vzz[(l, i)];
                        }
                    }
                    sum / s4
                }
                (true, false) => {
                    pairs[r]
                        .iter()
                        .map(|&(i, j, w)| w * yzz.at(j, i))
                        .sum::<f64>()
                        / s4
                }
                (false, _) => (n - q as f64 + tr_s2) / s4,
            };
            ktrace[s_ * k + r] = kv;
            ktrace[r * k + s_] = kv;
        }
    }
    // R_rs for the second derivatives that are not zero, in Q's order.
    let mut r_list = vec![Vec::new(); k * (k + 1) / 2];
    for ((r, s_), pr) in &second_pairs {
        let index = r * k - r * r.saturating_sub(1) / 2 + (s_ - r);
        let rm = sandwich(vzx.as_ref(), pr, vzx.as_ref());
        r_list[index] = to_vec(&Mat::from_fn(p, p, |i, j| rm[(i, j)] / s4));
    }
    Ok(KenwardRoger {
        k,
        phi: to_vec(&phi),
        p: p_list,
        q: q_list,
        ktrace,
        r: r_list,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(what: &str, a: &Mat<f64>, b: &Mat<f64>) {
        let scale = (0..b.nrows())
            .flat_map(|i| (0..b.ncols()).map(move |j| (i, j)))
            .map(|(i, j)| b[(i, j)].abs())
            .fold(1.0, f64::max);
        for i in 0..a.nrows() {
            for j in 0..a.ncols() {
                let d = (a[(i, j)] - b[(i, j)]).abs();
                assert!(
                    d < 1e-10 * scale,
                    "{what} ({i}, {j}): {} vs {}",
                    a[(i, j)],
                    b[(i, j)]
                );
            }
        }
    }

    #[test]
    fn the_block_route_gives_the_dense_products() {
        // q = 7: a 2 × 2 factor copied at 0, 2 and 4, a scalar at 6; Z with 30 rows, p = 2.
        let (q, n, p) = (7, 30, 2);
        let value = |i: usize, j: usize| (((i * 31 + j * 17) % 11) as f64 - 5.0) / 4.0;
        let z = Mat::from_fn(n, q, |i, j| {
            f64::from(u8::from((i + j) % 3 == 0)) + 0.1 * value(i, j)
        });
        let x = Mat::from_fn(n, p, |i, j| if j == 0 { 1.0 } else { value(i, 5) });
        let a = z.transpose() * &z;
        let b = z.transpose() * &x;
        let xw = x.transpose() * &x;
        let lambda = BlockLambda::from_parts(
            vec![
                (2, vec![0.9, -0.3, 0.0, 0.6], vec![0, 2, 4]),
                (1, vec![1.3], vec![6]),
            ],
            q,
        );
        let ok = || Ok(());
        let fast = woodbury_by_blocks(&a, &b, &xw, &lambda, &ok)
            .expect("no error")
            .expect("the block route applies");
        let dense = woodbury_dense(&a, &b, &xw, &lambda.dense(), &ok).expect("no error");
        close("vzz", &fast.vzz, &dense.vzz);
        close("vzx", &fast.vzx, &dense.vzx);
        close("vxx", &fast.vxx, &dense.vxx);
        close("yzx", &fast.yzx, &dense.yzx);
        close("yxx", &fast.yxx, &dense.yxx);
        close("rxx", &fast.rxx, &dense.rxx);
        assert!((fast.tr_s2 - dense.tr_s2).abs() < 1e-12 * dense.tr_s2);
        let yzz = Mat::from_fn(q, q, |j, i| fast.yzz.at(j, i));
        let Yzz::Dense(reference) = &dense.yzz else {
            panic!("the dense route forms Z'V⁻¹W⁻¹V⁻¹Z");
        };
        close("yzz", &yzz, reference);
        // A variance at 0 leaves Λ singular: the dense route is taken.
        let singular = BlockLambda::from_parts(
            vec![
                (2, vec![0.9, -0.3, 0.0, 0.6], vec![0, 2, 4]),
                (1, vec![0.0], vec![6]),
            ],
            q,
        );
        let none = woodbury_by_blocks(&a, &b, &xw, &singular, &ok).expect("no error");
        assert!(none.is_none());
    }
}
