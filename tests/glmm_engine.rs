//! GLMM engine tests against independent computations on seeded designs with one scalar
//! random-effects term, where the marginal likelihood separates into one-dimensional integrals:
//! the Laplace approximation from a per-group Newton solve, and adaptive Gauss–Hermite
//! quadrature against brute-force numerical integration.
use mixedrs::family::Family;
use mixedrs::glmm::{GeneralizedLinearMixedModel, GlmmOptions, PirlsOptions, StageOptimizer};
use mixedrs::optim::{OptimOptions, Stop};
use mixedrs::quadrature::GaussHermite;
use mixedrs::spec::{ModelSpec, RandomTerm};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution as _, Normal, Poisson};

struct Data {
    y: Vec<f64>,
    x: Vec<f64>,
    offset: Vec<f64>,
    levels: Vec<u32>,
    n_levels: usize,
    ones: Vec<f64>,
    family: Family,
}

fn simulate(seed: u64, n: usize, n_levels: usize, dist: &str) -> Data {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1.0).expect("normal");
    let levels: Vec<u32> = (0..n)
        .map(|i| {
            if i < n_levels {
                i as u32
            } else {
                rng.random_range(0..n_levels as u32)
            }
        })
        .collect();
    let b: Vec<f64> = (0..n_levels)
        .map(|_| 0.8 * normal.sample(&mut rng))
        .collect();
    let mut x = vec![1.0; 2 * n];
    for v in x.iter_mut().skip(n) {
        *v = normal.sample(&mut rng);
    }
    let offset: Vec<f64> = (0..n).map(|_| 0.2 * normal.sample(&mut rng)).collect();
    let eta: Vec<f64> = (0..n)
        .map(|i| -0.3 + 0.7 * x[n + i] + b[levels[i] as usize] + offset[i])
        .collect();
    let (family, y) = match dist {
        "probit" => (
            Family::new("binomial", "probit").expect("family"),
            eta.iter()
                .map(|e| f64::from(rng.random::<f64>() < 1.0 / (1.0 + (-e).exp())))
                .collect(),
        ),
        "binomial" => (
            Family::new("binomial", "logit").expect("family"),
            eta.iter()
                .map(|e| f64::from(rng.random::<f64>() < 1.0 / (1.0 + (-e).exp())))
                .collect(),
        ),
        _ => (
            Family::new("poisson", "log").expect("family"),
            eta.iter()
                .map(|e| Poisson::new(e.exp()).expect("poisson").sample(&mut rng))
                .collect(),
        ),
    };
    Data {
        y,
        x,
        offset,
        levels,
        n_levels,
        ones: vec![1.0; n],
        family,
    }
}

impl Data {
    fn spec(&self) -> ModelSpec<'_> {
        let term = RandomTerm {
            levels: self.levels.clone(),
            n_levels: self.n_levels,
            z: &self.ones,
            q: 1,
            factor_id: 0,
            predictor: mixedrs::spec::Predictor::Mean,
        };
        ModelSpec::new(&self.y, &self.x, 2, None, Some(&self.offset), vec![term]).expect("spec")
    }

    fn model(&self) -> GeneralizedLinearMixedModel<'_> {
        let eta0: Vec<f64> = self
            .y
            .iter()
            .map(|&y| {
                let mu = match self.family.dist {
                    mixedrs::family::Distribution::Binomial => (y + 0.5) / 2.0,
                    _ => y + 0.1,
                };
                self.family.link.linkfun(mu)
            })
            .collect();
        GeneralizedLinearMixedModel::new(
            self.spec(),
            self.family,
            vec![1.0; self.y.len()],
            eta0,
            PirlsOptions {
                tol: 1e-12,
                max_iter: 60,
                ..PirlsOptions::default()
            },
            faer::Par::Seq,
        )
        .expect("model")
    }

    /// −2 log p(y_i | η) for one observation.
    fn neg2_loglik(&self, i: usize, eta: f64) -> f64 {
        let mu = self.family.link.linkinv(eta);
        let y = self.y[i];
        match self.family.dist {
            mixedrs::family::Distribution::Binomial => {
                -2.0 * if y > 0.5 { mu.ln() } else { (1.0 - mu).ln() }
            }
            _ => -2.0 * (y * mu.ln() - mu - ln_factorial(y)),
        }
    }

    fn fixed_eta(&self, beta: &[f64]) -> Vec<f64> {
        let n = self.y.len();
        (0..n)
            .map(|i| self.offset[i] + beta[0] + beta[1] * self.x[n + i])
            .collect()
    }

    /// Per group: (u mode, second derivative of the penalized deviance at the mode / 2 … i.e.
    /// L² = 1 + θ² Σ Fisher weights), by Newton's method on g(u) = Σ −2 log p + u².
    fn laplace_reference(&self, theta: f64, beta: &[f64]) -> f64 {
        let base = self.fixed_eta(beta);
        let mut total = 0.0;
        for j in 0..self.n_levels {
            let members: Vec<usize> = (0..self.y.len())
                .filter(|&i| self.levels[i] as usize == j)
                .collect();
            let g = |u: f64| -> f64 {
                members
                    .iter()
                    .map(|&i| self.neg2_loglik(i, base[i] + theta * u))
                    .sum::<f64>()
                    + u * u
            };
            // Newton with numerical derivatives of a smooth convex function.
            let mut u = 0.0;
            for _ in 0..100 {
                let h = 1e-5;
                let d1 = (g(u + h) - g(u - h)) / (2.0 * h);
                let d2 = (g(u + h) - 2.0 * g(u) + g(u - h)) / (h * h);
                let step = d1 / d2;
                u -= step;
                if step.abs() < 1e-13 {
                    break;
                }
            }
            // Fisher weights at the mode: w = (dμ/dη)² / V(μ).
            let fisher: f64 = members
                .iter()
                .map(|&i| {
                    let eta = base[i] + theta * u;
                    let me = self.family.link.mu_eta(eta);
                    let mu = self.family.link.linkinv(eta);
                    me * me / self.family.variance(mu)
                })
                .sum();
            total += g(u) + (1.0 + theta * theta * fisher).ln();
        }
        total
    }

    /// −2 log of the exact marginal likelihood by brute-force integration over each u_j.
    fn exact_reference(&self, theta: f64, beta: &[f64]) -> f64 {
        let base = self.fixed_eta(beta);
        let mut total = 0.0;
        for j in 0..self.n_levels {
            let members: Vec<usize> = (0..self.y.len())
                .filter(|&i| self.levels[i] as usize == j)
                .collect();
            let (lo, hi, steps) = (-12.0, 12.0, 24_000);
            let h = (hi - lo) / steps as f64;
            let mut s = 0.0;
            for k in 0..=steps {
                let u = lo + k as f64 * h;
                let ll: f64 = members
                    .iter()
                    .map(|&i| -0.5 * self.neg2_loglik(i, base[i] + theta * u))
                    .sum();
                let w = if k == 0 || k == steps { 0.5 } else { 1.0 };
                s += w * (ll - 0.5 * u * u).exp() / (2.0 * std::f64::consts::PI).sqrt();
            }
            total += -2.0 * (s * h).ln();
        }
        total
    }
}

fn ln_factorial(y: f64) -> f64 {
    (1..=(y as u64)).map(|k| (k as f64).ln()).sum()
}

#[test]
fn laplace_matches_a_per_group_newton_reference() {
    for dist in ["binomial", "poisson", "probit"] {
        let data = simulate(5, 300, 25, dist);
        let mut model = data.model();
        for (theta, beta) in [(0.7, [-0.2, 0.6]), (1.3, [0.1, 0.9]), (0.2, [-0.5, 0.3])] {
            let ours = model
                .objective_theta_beta(&[theta, beta[0], beta[1]], None)
                .expect("laplace");
            let reference = data.laplace_reference(theta, &beta);
            assert!(
                (ours - reference).abs() < 1e-9 * reference.abs(),
                "{dist}: Laplace {ours} vs reference {reference}"
            );
        }
    }
}

#[test]
fn adaptive_quadrature_converges_to_the_exact_likelihood() {
    let data = simulate(9, 240, 20, "binomial");
    let mut model = data.model();
    let (theta, beta) = (1.1, [-0.1, 0.8]);
    let pars = [theta, beta[0], beta[1]];
    let exact = data.exact_reference(theta, &beta);
    let agq25 = model
        .objective_theta_beta(&pars, Some(&GaussHermite::new(25).expect("rule")))
        .expect("agq");
    assert!(
        (agq25 - exact).abs() < 1e-6 * exact,
        "AGQ(25) {agq25} vs exact {exact}"
    );
    // One point is the Laplace approximation (0/1 data: aic equals the deviance sum).
    let agq1 = model
        .objective_theta_beta(&pars, Some(&GaussHermite::new(1).expect("rule")))
        .expect("agq");
    let laplace = model.objective_theta_beta(&pars, None).expect("laplace");
    assert!(
        (agq1 - laplace).abs() < 1e-8 * laplace,
        "AGQ(1) {agq1} vs Laplace {laplace}"
    );
    // More points get closer to the exact value than the Laplace approximation.
    assert!((agq25 - exact).abs() < (laplace - exact).abs());
}

fn options(n_agq: usize) -> GlmmOptions {
    GlmmOptions {
        quasi_newton_only: None,
        start_at_optimum: false,
        quasi_newton_gtol: None,
        n_agq,
        init_step: Some(true),
        optim: OptimOptions::default(),
        optimizers: [StageOptimizer::Bobyqa, StageOptimizer::Bobyqa],
        pirls: PirlsOptions::default(),
    }
}

#[test]
fn two_stage_fit_reaches_a_minimum_of_the_laplace_deviance() {
    let data = simulate(21, 400, 30, "binomial");
    let mut model = data.model();
    let mut quiet = |_: usize, _: &[f64], _: f64| Stop::Continue;
    let fit = model.fit(&options(1), None, None, &mut quiet).expect("fit");
    let mut rng = StdRng::seed_from_u64(1);
    let best = fit.deviance;
    for _ in 0..20 {
        let pars = [
            (fit.theta[0] + (rng.random::<f64>() - 0.5) * 0.02).max(0.0),
            fit.beta[0] + (rng.random::<f64>() - 0.5) * 0.02,
            fit.beta[1] + (rng.random::<f64>() - 0.5) * 0.02,
        ];
        let v = model.objective_theta_beta(&pars, None).expect("laplace");
        assert!(v >= best - 1e-7, "a nearby point is better: {v} < {best}");
    }
    // The Hessian-based standard errors exist and are positive.
    assert_eq!(fit.hessian.len(), 9);
    assert!(fit.stage1.is_some() && fit.stage2.is_some());
    // Nelder–Mead in stage 2 reaches the same optimum.
    let mut opts = options(1);
    opts.optimizers[1] = StageOptimizer::NelderMead;
    let mut model2 = data.model();
    let fit2 = model2.fit(&opts, None, None, &mut quiet).expect("fit");
    assert!(
        (fit2.deviance - fit.deviance).abs() < 1e-4,
        "{} vs {}",
        fit2.deviance,
        fit.deviance
    );
}

#[test]
fn nagq_above_one_needs_a_single_scalar_term() {
    let data = simulate(3, 100, 10, "poisson");
    let second = RandomTerm {
        levels: (0..100).map(|i| (i % 7) as u32).collect(),
        n_levels: 7,
        z: &data.ones,
        q: 1,
        factor_id: 1,
        predictor: mixedrs::spec::Predictor::Mean,
    };
    let first = RandomTerm {
        levels: data.levels.clone(),
        n_levels: data.n_levels,
        z: &data.ones,
        q: 1,
        factor_id: 0,
        predictor: mixedrs::spec::Predictor::Mean,
    };
    let spec = ModelSpec::new(&data.y, &data.x, 2, None, None, vec![first, second]).expect("spec");
    let eta0: Vec<f64> = data.y.iter().map(|y| (y + 0.1f64).ln()).collect();
    let mut model = GeneralizedLinearMixedModel::new(
        spec,
        data.family,
        vec![1.0; 100],
        eta0,
        PirlsOptions::default(),
        faer::Par::Seq,
    )
    .expect("model");
    let mut quiet = |_: usize, _: &[f64], _: f64| Stop::Continue;
    let err = model
        .fit(&options(5), None, None, &mut quiet)
        .expect_err("must fail");
    assert!(err.to_string().contains("single, scalar"), "{err}");
}

#[test]
fn stage_two_criterion_is_reproducible_whatever_the_previous_evaluation() {
    for dist in ["binomial", "poisson"] {
        let data = simulate(17, 400, 30, dist);
        let mut model = data.model();
        let x = [0.8, -0.2, 0.6];
        let f0 = model.objective_theta_beta(&x, None).expect("f");
        let mut worst: f64 = 0.0;
        for k in 0..3 {
            for h in [1e-4, -1e-4, 0.05, -0.3] {
                let mut y = x;
                y[k] += h;
                model.objective_theta_beta(&y, None).expect("f");
                let again = model.objective_theta_beta(&x, None).expect("f");
                worst = worst.max((again - f0).abs());
            }
        }
        eprintln!("{dist}: worst change {worst:e}");
        assert!(
            worst < 1e-9 * f0.abs(),
            "{dist}: the criterion at a point moved by {worst}"
        );
    }
}

#[test]
fn warm_started_pirls_matches_a_cold_start_with_observation_level_effects() {
    let mut rng = StdRng::seed_from_u64(8);
    let normal = Normal::new(0.0, 1.0).expect("normal");
    let n = 400;
    let obs: Vec<u32> = (0..n as u32).collect();
    let brood: Vec<u32> = (0..n).map(|i| (i / 4) as u32).collect();
    let loc: Vec<u32> = (0..n).map(|i| ((i / 4) % 20) as u32).collect();
    let b1: Vec<f64> = (0..100).map(|_| 0.7 * normal.sample(&mut rng)).collect();
    let b2: Vec<f64> = (0..20).map(|_| 0.5 * normal.sample(&mut rng)).collect();
    let mut x = vec![1.0; 2 * n];
    for v in x.iter_mut().skip(n) {
        *v = normal.sample(&mut rng);
    }
    let y: Vec<f64> = (0..n)
        .map(|i| {
            let eta = 0.5
                + 0.3 * x[n + i]
                + b1[brood[i] as usize]
                + b2[loc[i] as usize]
                + 0.5 * normal.sample(&mut rng);
            Poisson::new(eta.exp()).expect("poisson").sample(&mut rng)
        })
        .collect();
    let ones = vec![1.0; n];
    let terms = || {
        vec![
            RandomTerm {
                levels: brood.clone(),
                n_levels: 100,
                z: &ones,
                q: 1,
                factor_id: 0,
                predictor: mixedrs::spec::Predictor::Mean,
            },
            RandomTerm {
                levels: obs.clone(),
                n_levels: n,
                z: &ones,
                q: 1,
                factor_id: 1,
                predictor: mixedrs::spec::Predictor::Mean,
            },
            RandomTerm {
                levels: loc.clone(),
                n_levels: 20,
                z: &ones,
                q: 1,
                factor_id: 2,
                predictor: mixedrs::spec::Predictor::Mean,
            },
        ]
    };
    let family = Family::new("poisson", "log").expect("family");
    let eta0: Vec<f64> = y.iter().map(|v| (v + 0.1f64).ln()).collect();
    let make = || {
        GeneralizedLinearMixedModel::new(
            ModelSpec::new(&y, &x, 2, None, None, terms()).expect("spec"),
            family,
            vec![1.0; n],
            eta0.clone(),
            PirlsOptions::default(),
            faer::Par::Seq,
        )
        .expect("model")
    };
    let mut warm = make();
    let points = [
        [0.5, 0.6, 0.4, 0.5, 0.3],
        [0.5001, 0.6, 0.4, 0.5, 0.3],
        [0.4999, 0.6001, 0.4, 0.5, 0.3],
        [0.9, 0.1, 0.7, 0.2, 0.1],
        [0.5, 0.6, 0.4001, 0.4999, 0.3],
    ];
    for p in &points {
        let a = warm.objective_theta_beta(p, None).expect("warm");
        let b = make().objective_theta_beta(p, None).expect("cold");
        assert!(
            (a - b).abs() < 1e-8 * b.abs(),
            "warm {a} vs cold {b} at {p:?}"
        );
    }
}
