//! Conditional variances of the random effects against a dense reference.
//!
//! For random seeded designs the per-term, per-level blocks must equal the diagonal blocks of
//! `Λ (Λ'Z'WZΛ + I)⁻¹ Λ'` formed and inverted densely (a `q × q` computation only a test may
//! afford), whatever the storage of the trailing block (dense full inverse or sparse selected
//! inverse), for linear and generalized linear mixed models.
use faer::prelude::Solve;
use faer::{Mat, Par, Side};
use mixedrs::condvar::{
    conditional_variances, glmm_conditional_variances, glmm_fit_conditional_variances,
    lmm_conditional_variances, TermCondVar,
};
use mixedrs::family::Family;
use mixedrs::glmm::{GeneralizedLinearMixedModel, GlmmOptions, PirlsOptions, StageOptimizer};
use mixedrs::lmm::LinearMixedModel;
use mixedrs::optim::{OptimOptions, Stop};
use mixedrs::spec::{ModelSpec, RandomTerm};
use mixedrs::trailing::TrailingChoice;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// One random-effects term: level of each observation, number of levels, `n × q` columns,
/// `q`, grouping-factor id.
struct Term {
    levels: Vec<u32>,
    n_levels: usize,
    z: Vec<f64>,
    q: usize,
    factor: usize,
}

/// Owned data of a random design.
struct Design {
    n: usize,
    y: Vec<f64>,
    x: Vec<f64>,
    weights: Option<Vec<f64>>,
    terms: Vec<Term>,
}

impl Design {
    fn spec(&self) -> ModelSpec<'_> {
        let terms = self
            .terms
            .iter()
            .map(|t| RandomTerm {
                levels: t.levels.clone(),
                n_levels: t.n_levels,
                z: &t.z,
                q: t.q,
                factor_id: t.factor,
                predictor: mixedrs::spec::Predictor::Mean,
            })
            .collect();
        ModelSpec::new(&self.y, &self.x, 2, self.weights.as_deref(), None, terms)
            .expect("valid spec")
    }
}

/// Grouping-factor levels: every level once, then at random.
fn random_levels(rng: &mut StdRng, n: usize, nl: usize) -> Vec<u32> {
    (0..n)
        .map(|i| {
            if i < nl {
                i as u32
            } else {
                rng.random_range(0..nl as u32)
            }
        })
        .collect()
}

/// Columns of a term: an intercept followed by normal covariates.
fn columns(rng: &mut StdRng, n: usize, q: usize) -> Vec<f64> {
    let normal = Normal::new(0.0, 1.0).expect("normal");
    let mut z = vec![1.0; n * q];
    for v in z.iter_mut().skip(n) {
        *v = normal.sample(rng);
    }
    z
}

/// `factors`: one entry per term, `(levels, q, factor)`; a factor seen before reuses its
/// levels (terms sharing a grouping factor). `nested`: factor 1's levels are nested in factor
/// 0's (each level of factor 1 within one level of factor 0).
fn design(
    seed: u64,
    n: usize,
    factors: &[(usize, usize, usize)],
    nested: bool,
    weighted: bool,
) -> Design {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1.0).expect("normal");
    let mut levels_of: Vec<Option<Vec<u32>>> = vec![None; 8];
    let mut terms = Vec::new();
    for &(nl, q, f) in factors {
        let levels = match &levels_of[f] {
            Some(l) => l.clone(),
            None => {
                // (factor 0 of a nested design is replaced below)
                let l = random_levels(&mut rng, n, nl);
                levels_of[f] = Some(l.clone());
                l
            }
        };
        terms.push(Term {
            levels,
            n_levels: nl,
            z: columns(&mut rng, n, q),
            q,
            factor: f,
        });
    }
    if nested {
        // Factor 0 = factor 1 / k: each inner level sits in one outer level.
        let inner: Vec<u32> = levels_of[1].clone().expect("factor 1");
        let inner_levels = terms
            .iter()
            .find(|t| t.factor == 1)
            .expect("factor 1")
            .n_levels;
        let outer_levels = terms
            .iter()
            .find(|t| t.factor == 0)
            .expect("factor 0")
            .n_levels;
        let k = inner_levels.div_ceil(outer_levels);
        for t in terms.iter_mut().filter(|t| t.factor == 0) {
            t.levels = inner.iter().map(|&l| l / k as u32).collect();
            t.n_levels = inner_levels.div_ceil(k);
        }
    }
    let x: Vec<f64> = (0..2 * n)
        .map(|i| if i < n { 1.0 } else { normal.sample(&mut rng) })
        .collect();
    let y = (0..n)
        .map(|i| 1.0 + x[n + i] + normal.sample(&mut rng))
        .collect();
    let weights = weighted.then(|| (0..n).map(|_| 0.5 + rng.random::<f64>() * 2.0).collect());
    Design {
        n,
        y,
        x,
        weights,
        terms,
    }
}

fn random_theta(rng: &mut StdRng, d: &Design) -> Vec<f64> {
    let mut th = Vec::new();
    for t in &d.terms {
        for c in 0..t.q {
            for r in c..t.q {
                th.push(if r == c {
                    0.3 + rng.random::<f64>() * 1.5
                } else {
                    rng.random::<f64>() - 0.5
                });
            }
        }
    }
    th
}

/// Dense reference: per term, per level, the diagonal block of `Λ (Λ'Z'WZΛ + I)⁻¹ Λ'` (lme4's
/// layout: terms in order, level-major), with observation weights `w`.
fn dense_reference(d: &Design, theta: &[f64], w: &[f64]) -> Vec<TermCondVar> {
    let n = d.n;
    let qtot: usize = d.terms.iter().map(|t| t.n_levels * t.q).sum();
    let mut zl = Mat::<f64>::zeros(n, qtot);
    let mut lam = Mat::<f64>::zeros(qtot, qtot);
    let (mut col0, mut th) = (0, 0);
    for t in &d.terms {
        let q = t.q;
        let mut tm = vec![0.0; q * q];
        for c in 0..q {
            for r in c..q {
                tm[c * q + r] = theta[th];
                th += 1;
            }
        }
        for j in 0..t.n_levels {
            for c in 0..q {
                for r in 0..q {
                    lam[(col0 + j * q + r, col0 + j * q + c)] = tm[c * q + r];
                }
            }
        }
        for i in 0..n {
            let j = t.levels[i] as usize;
            for c in 0..q {
                let v: f64 = (c..q).map(|k| t.z[k * n + i] * tm[c * q + k]).sum();
                zl[(i, col0 + j * q + c)] = v;
            }
        }
        col0 += t.n_levels * q;
    }
    let mut omega = Mat::<f64>::zeros(qtot, qtot);
    for a in 0..qtot {
        for b in 0..qtot {
            omega[(a, b)] = (0..n).map(|i| zl[(i, a)] * w[i] * zl[(i, b)]).sum();
        }
        omega[(a, a)] += 1.0;
    }
    let inv = omega
        .llt(Side::Lower)
        .expect("positive definite")
        .solve(Mat::<f64>::identity(qtot, qtot));
    let v = &lam * &inv * lam.transpose();
    let mut out = Vec::new();
    let mut col0 = 0;
    for t in &d.terms {
        let q = t.q;
        let mut values = Vec::new();
        for j in 0..t.n_levels {
            for c in 0..q {
                for r in 0..q {
                    values.push(v[(col0 + j * q + r, col0 + j * q + c)]);
                }
            }
        }
        out.push(TermCondVar {
            q,
            n_levels: t.n_levels,
            values,
        });
        col0 += t.n_levels * q;
    }
    out
}

fn assert_close(name: &str, ours: &[TermCondVar], reference: &[TermCondVar], scale: f64) {
    assert_eq!(ours.len(), reference.len(), "{name}: number of terms");
    for (k, (a, b)) in ours.iter().zip(reference).enumerate() {
        assert_eq!(
            (a.q, a.n_levels),
            (b.q, b.n_levels),
            "{name}: shape of term {k}"
        );
        let size = b.values.iter().fold(0.0f64, |m, v| m.max(v.abs())) * scale;
        for (i, (x, y)) in a.values.iter().zip(&b.values).enumerate() {
            assert!(
                (x - scale * y).abs() <= 1e-9 * size.max(1e-12),
                "{name}: term {k}, entry {i}: {x} vs dense {}",
                scale * y
            );
        }
    }
}

fn designs() -> Vec<(&'static str, Design)> {
    vec![
        (
            "one scalar factor",
            design(1, 60, &[(9, 1, 0)], false, false),
        ),
        (
            "one vector factor",
            design(2, 90, &[(10, 3, 0)], false, true),
        ),
        (
            "two crossed scalar",
            design(3, 120, &[(15, 1, 0), (7, 1, 1)], false, false),
        ),
        (
            "three crossed, vector terms",
            design(4, 160, &[(14, 2, 0), (9, 1, 1), (5, 2, 2)], false, true),
        ),
        (
            "nested (sparse trailing)",
            design(5, 150, &[(6, 1, 0), (30, 1, 1)], true, false),
        ),
        (
            "nested vector terms",
            design(6, 180, &[(5, 2, 0), (25, 2, 1)], true, true),
        ),
        (
            "amalgamated leading terms",
            design(7, 110, &[(12, 1, 0), (12, 1, 0), (6, 2, 1)], false, false),
        ),
        (
            "amalgamated trailing terms",
            design(
                8,
                140,
                &[(20, 2, 0), (8, 1, 1), (8, 2, 1), (4, 1, 2)],
                false,
                true,
            ),
        ),
    ]
}

#[test]
fn lmm_blocks_equal_the_dense_inverse_for_every_storage() {
    let mut rng = StdRng::seed_from_u64(11);
    for (name, d) in designs() {
        let w: Vec<f64> = d.weights.clone().unwrap_or_else(|| vec![1.0; d.n]);
        for storage in [
            TrailingChoice::Auto,
            TrailingChoice::Dense,
            TrailingChoice::Sparse,
        ] {
            let mut model =
                LinearMixedModel::with_storage(d.spec(), true, Par::Seq, storage).expect("model");
            for _ in 0..3 {
                let theta = random_theta(&mut rng, &d);
                model.set_theta(&theta).expect("factor");
                let mut lambda = model.re.lambda_buffers();
                model.re.set_lambda(&theta, &mut lambda).expect("lambda");
                let ours = conditional_variances(
                    &model.spec,
                    &model.re,
                    &model.cp,
                    &model.chol,
                    &lambda,
                    1.0,
                    Par::Seq,
                )
                .expect("conditional variances");
                let reference = dense_reference(&d, &theta, &w);
                assert_close(&format!("{name} ({storage:?})"), &ours, &reference, 1.0);

                // Scaled by σ² at θ.
                let sigma = model.estimates(&theta).expect("estimates").sigma;
                let scaled =
                    lmm_conditional_variances(&mut model, &theta, Par::Seq).expect("scaled");
                assert_close(
                    &format!("{name} ({storage:?}, scaled)"),
                    &scaled,
                    &reference,
                    sigma * sigma,
                );
            }
        }
    }
}

#[test]
fn parallel_dense_inverse_agrees() {
    let d = design(21, 400, &[(40, 1, 0), (30, 2, 1)], false, false);
    let mut rng = StdRng::seed_from_u64(3);
    let theta = random_theta(&mut rng, &d);
    let mut model =
        LinearMixedModel::with_storage(d.spec(), false, Par::rayon(2), TrailingChoice::Dense)
            .expect("model");
    model.set_theta(&theta).expect("factor");
    let mut lambda = model.re.lambda_buffers();
    model.re.set_lambda(&theta, &mut lambda).expect("lambda");
    let ours = conditional_variances(
        &model.spec,
        &model.re,
        &model.cp,
        &model.chol,
        &lambda,
        1.0,
        Par::rayon(2),
    )
    .expect("conditional variances");
    assert_close(
        "parallel",
        &ours,
        &dense_reference(&d, &theta, &[1.0; 400]),
        1.0,
    );
}

#[test]
fn glmm_blocks_use_the_working_weights_at_eta() {
    let mut rng = StdRng::seed_from_u64(5);
    let normal = Normal::new(0.0, 1.0).expect("normal");
    for (name, mut d) in designs() {
        for (dist, link) in [("binomial", "logit"), ("poisson", "log"), ("Gamma", "log")] {
            let family = Family::new(dist, link).expect("family");
            let n = d.n;
            let eta: Vec<f64> = (0..n)
                .map(|_| 0.3 + 0.8 * normal.sample(&mut rng))
                .collect();
            d.y = match dist {
                "binomial" => (0..n).map(|i| f64::from(i % 3 == 0)).collect(),
                "poisson" => (0..n).map(|i| (i % 4) as f64).collect(),
                _ => (0..n).map(|i| 0.5 + (i % 5) as f64).collect(),
            };
            let prior: Vec<f64> = d.weights.clone().unwrap_or_else(|| vec![1.0; n]);
            let w: Vec<f64> = eta
                .iter()
                .zip(&prior)
                .map(|(&e, a)| {
                    let me = family.link.mu_eta(e);
                    a * me * me / family.variance(family.link.linkinv(e))
                })
                .collect();
            let theta = random_theta(&mut rng, &d);
            let ours = glmm_conditional_variances(&d.spec(), family, &theta, &eta, 2.5, Par::Seq)
                .expect("conditional variances");
            assert_close(
                &format!("{name} ({dist})"),
                &ours,
                &dense_reference(&d, &theta, &w),
                2.5,
            );
        }
    }
}

#[test]
fn fitted_glmm_blocks_are_at_the_modes() {
    // Binomial with a random intercept and slope and a crossed intercept.
    let mut rng = StdRng::seed_from_u64(9);
    let n = 400;
    let g = random_levels(&mut rng, n, 25);
    let h = random_levels(&mut rng, n, 6);
    let x: Vec<f64> = (0..2 * n)
        .map(|i| {
            if i < n {
                1.0
            } else {
                rng.random::<f64>() * 2.0 - 1.0
            }
        })
        .collect();
    let bg: Vec<f64> = (0..25).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
    let bh: Vec<f64> = (0..6).map(|_| rng.random::<f64>() - 0.5).collect();
    let y: Vec<f64> = (0..n)
        .map(|i| {
            let eta = -0.2 + 0.7 * x[n + i] + bg[g[i] as usize] + bh[h[i] as usize];
            f64::from(rng.random::<f64>() < 1.0 / (1.0 + (-eta).exp()))
        })
        .collect();
    let zg: Vec<f64> = (0..2 * n).map(|i| if i < n { 1.0 } else { x[i] }).collect();
    let zh = vec![1.0; n];
    let d = Design {
        n,
        y: y.clone(),
        x: x.clone(),
        weights: None,
        terms: vec![
            Term {
                levels: g,
                n_levels: 25,
                z: zg,
                q: 2,
                factor: 0,
            },
            Term {
                levels: h,
                n_levels: 6,
                z: zh,
                q: 1,
                factor: 1,
            },
        ],
    };
    let family = Family::new("binomial", "logit").expect("family");
    let mut model = GeneralizedLinearMixedModel::new(
        d.spec(),
        family,
        vec![1.0; n],
        vec![0.0; n],
        PirlsOptions::default(),
        Par::Seq,
    )
    .expect("model");
    let opts = GlmmOptions {
        quasi_newton_only: None,
        start_at_optimum: false,
        quasi_newton_gtol: None,
        n_agq: 1,
        init_step: Some(true),
        optim: OptimOptions {
            calc_derivs: false,
            ..OptimOptions::default()
        },
        optimizers: [StageOptimizer::Bobyqa, StageOptimizer::Bobyqa],
        pirls: PirlsOptions::default(),
    };
    let fit = model
        .fit(&opts, None, None, &mut |_, _, _| Stop::Continue)
        .expect("fit");
    let ours = glmm_fit_conditional_variances(&model, &fit, Par::Seq).expect("condvar");
    let w: Vec<f64> = fit
        .eta
        .iter()
        .map(|&e| {
            let me = family.link.mu_eta(e);
            me * me / family.variance(family.link.linkinv(e))
        })
        .collect();
    assert_close(
        "fitted binomial",
        &ours,
        &dense_reference(&d, &fit.theta, &w),
        1.0,
    );
}

#[test]
fn invalid_inputs_are_errors() {
    let d = design(1, 60, &[(9, 1, 0)], false, false);
    let family = Family::new("poisson", "log").expect("family");
    let spec = d.spec();
    assert!(glmm_conditional_variances(&spec, family, &[1.0], &[0.0; 5], 1.0, Par::Seq).is_err());
    assert!(
        glmm_conditional_variances(&spec, family, &[1.0, 2.0], &[0.0; 60], 1.0, Par::Seq).is_err()
    );
    let mut eta = vec![0.0; 60];
    eta[3] = f64::NAN;
    assert!(glmm_conditional_variances(&spec, family, &[1.0], &eta, 1.0, Par::Seq).is_err());
    let mut model = LinearMixedModel::new(d.spec(), true, Par::Seq).expect("model");
    assert!(lmm_conditional_variances(&mut model, &[f64::INFINITY], Par::Seq).is_err());
}
