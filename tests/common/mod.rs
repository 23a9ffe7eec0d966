//! Shared by the engine tests: seeded random designs and dense reference computations of the
//! profiled deviance (`y ~ N(Xβ, σ²(ZΛΛ'Z' + W⁻¹))`, an `n × n` computation only a test may
//! afford). Each test crate uses a part of it.
#![allow(dead_code)]
use faer::prelude::Solve;
use faer::{Mat, Side};
use mixedrs::spec::{ModelSpec, RandomTerm};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// One random term: (levels, n_levels, z, q, factor_id).
pub type TermData = (Vec<u32>, usize, Vec<f64>, usize, usize);

/// Owned data for one random design.
#[derive(Clone, Debug)]
pub struct Design {
    pub n: usize,
    pub p: usize,
    pub y: Vec<f64>,
    pub x: Vec<f64>,
    pub weights: Option<Vec<f64>>,
    pub offset: Option<Vec<f64>>,
    pub terms: Vec<TermData>,
}

impl Design {
    pub fn spec(&self) -> ModelSpec<'_> {
        let terms = self
            .terms
            .iter()
            .map(|(lev, nl, z, q, f)| RandomTerm {
                levels: lev.clone(),
                n_levels: *nl,
                z,
                q: *q,
                factor_id: *f,
                predictor: mixedrs::spec::Predictor::Mean,
            })
            .collect();
        ModelSpec::new(
            &self.y,
            &self.x,
            self.p,
            self.weights.as_deref(),
            self.offset.as_deref(),
            terms,
        )
        .expect("valid spec")
    }
}

/// A random design: `factors` gives (levels, q) per grouping factor; `shared` adds a second
/// scalar term on the first factor (as `(1|g) + (0+x|g)` does).
pub fn design(
    seed: u64,
    n: usize,
    p: usize,
    factors: &[(usize, usize)],
    shared: bool,
    weighted: bool,
) -> Design {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1.0).expect("normal");
    let mut x = vec![1.0; n * p];
    for v in x.iter_mut().skip(n) {
        *v = normal.sample(&mut rng);
    }
    let mut terms = Vec::new();
    for (f, &(nl, q)) in factors.iter().enumerate() {
        // every level appears at least once
        let levels: Vec<u32> = (0..n)
            .map(|i| {
                if i < nl {
                    i as u32
                } else {
                    rng.random_range(0..nl as u32)
                }
            })
            .collect();
        let mut z = vec![1.0; n * q];
        for v in z.iter_mut().skip(n) {
            *v = normal.sample(&mut rng);
        }
        terms.push((levels, nl, z, q, f));
    }
    if shared {
        let (lev, nl, _, _, _) = terms[0].clone();
        let z: Vec<f64> = (0..n).map(|_| normal.sample(&mut rng)).collect();
        terms.push((lev, nl, z, 1, 0));
    }
    let y: Vec<f64> = (0..n)
        .map(|i| {
            2.0 + x[n + i] + normal.sample(&mut rng) * 1.5 + (terms[0].0[i] as f64 * 0.7).sin()
        })
        .collect();
    let weights = weighted.then(|| (0..n).map(|_| 0.5 + rng.random::<f64>() * 2.0).collect());
    let offset = weighted.then(|| (0..n).map(|_| normal.sample(&mut rng) * 0.3).collect());
    Design {
        n,
        p,
        y,
        x,
        weights,
        offset,
        terms,
    }
}

/// Dense `Z Λ` (`n × q_total`) in lme4's layout (terms in order, level-major), with the
/// term-wise lower-triangular factors built from θ. Terms sharing a factor are independent.
pub fn dense_z_lambda(d: &Design, theta: &[f64]) -> Mat<f64> {
    let qtot: usize = d.terms.iter().map(|t| t.1 * t.3).sum();
    let mut zl = Mat::<f64>::zeros(d.n, qtot);
    let mut col0 = 0;
    let mut th = 0;
    for (lev, nl, z, q, _) in &d.terms {
        let q = *q;
        let mut t = vec![0.0; q * q];
        for c in 0..q {
            for r in c..q {
                t[c * q + r] = theta[th];
                th += 1;
            }
        }
        for i in 0..d.n {
            let j = lev[i] as usize;
            for c in 0..q {
                // (z_i' T)[c] = Σ_k z_ik T[k, c]
                let v: f64 = (c..q).map(|k| z[k * d.n + i] * t[c * q + k]).sum();
                zl[(i, col0 + j * q + c)] = v;
            }
        }
        col0 += nl * q;
    }
    zl
}

pub fn logdet_chol(m: &Mat<f64>) -> f64 {
    let llt = m.llt(Side::Lower).expect("positive definite");
    let l = llt.L();
    (0..m.nrows()).map(|i| 2.0 * l[(i, i)].ln()).sum()
}

/// Profiled deviance from the marginal model, dense.
pub fn reference_deviance(d: &Design, theta: &[f64], reml: bool) -> f64 {
    let n = d.n;
    let p = d.p;
    let zl = dense_z_lambda(d, theta);
    let mut v = &zl * zl.transpose();
    for i in 0..n {
        let w = d.weights.as_ref().map_or(1.0, |w| w[i]);
        v[(i, i)] += 1.0 / w;
    }
    let x = Mat::from_fn(n, p, |i, j| d.x[j * n + i]);
    let y = Mat::from_fn(n, 1, |i, _| {
        d.y[i] - d.offset.as_ref().map_or(0.0, |o| o[i])
    });
    let llt = v.llt(Side::Lower).expect("V positive definite");
    let vinv_x = llt.solve(&x);
    let vinv_y = llt.solve(&y);
    let xtvx = x.transpose() * &vinv_x;
    let xtvy = x.transpose() * &vinv_y;
    let beta = xtvx.llt(Side::Lower).expect("X'V⁻¹X").solve(&xtvy);
    let resid = &y - &x * &beta;
    let r2 = (resid.transpose() * llt.solve(&resid))[(0, 0)];
    let logdet_v = logdet_chol(&v);
    let two_pi = 2.0 * std::f64::consts::PI;
    if reml {
        let nmp = (n - p) as f64;
        logdet_v + logdet_chol(&xtvx) + nmp * (1.0 + (two_pi * r2 / nmp).ln())
    } else {
        logdet_v + n as f64 * (1.0 + (two_pi * r2 / n as f64).ln())
    }
}

pub fn random_theta(rng: &mut StdRng, d: &Design) -> Vec<f64> {
    let mut th = Vec::new();
    for (_, _, _, q, _) in &d.terms {
        for c in 0..*q {
            for r in c..*q {
                th.push(if r == c {
                    0.2 + rng.random::<f64>() * 1.5
                } else {
                    rng.random::<f64>() - 0.5
                });
            }
        }
    }
    th
}
