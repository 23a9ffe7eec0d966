//! Likelihood profiles of a Poisson GLMM against a brute-force Laplace deviance.
//!
//! For a single scalar random intercept the Laplace approximation separates by group: with
//! `ηᵢ = xᵢ'β + θ uⱼ` the conditional mode `ûⱼ` maximizes `Σ_{i∈j} log p(yᵢ | ηᵢ) − uⱼ²/2`
//! (found here by Newton's method on each group alone) and
//!
//! ```text
//!   d(θ, β) = Σⱼ [ −2 Σ_{i∈j} log p(yᵢ | η̂ᵢ) + ûⱼ² + log(1 + θ² Σ_{i∈j} μ̂ᵢ) ].
//! ```
//!
//! Every point of a profile must lie on this function (`d = d̂ + ζ²`) and be a minimum over the
//! parameters that are not profiled.
use mixedrs::family::Family;
use mixedrs::glmm::{GeneralizedLinearMixedModel, GlmmOptions, PirlsOptions, StageOptimizer};
use mixedrs::inference::bootstrap::GlmmSetup;
use mixedrs::inference::profile::{profile_interval, GlmmProfiler, ProfileOptions, Profiler};
use mixedrs::optim::{OptimOptions, Stop};
use mixedrs::spec::{ModelSpec, RandomTerm};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal, Poisson};
use statrs::function::gamma::ln_gamma;

struct Data {
    y: Vec<f64>,
    x: Vec<f64>,
    z: Vec<f64>,
    levels: Vec<u32>,
    n_levels: usize,
}

impl Data {
    fn spec(&self) -> ModelSpec<'_> {
        let term = RandomTerm {
            levels: self.levels.clone(),
            n_levels: self.n_levels,
            z: &self.z,
            q: 1,
            factor_id: 0,
            predictor: mixedrs::spec::Predictor::Mean,
        };
        ModelSpec::new(&self.y, &self.x, 2, None, None, vec![term]).expect("valid spec")
    }

    fn n(&self) -> usize {
        self.y.len()
    }
}

/// Poisson counts, intercept and a covariate, `(1 | g)`.
fn poisson_data(seed: u64, n_levels: usize, per: usize) -> Data {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1.0).expect("normal");
    let n = n_levels * per;
    let levels: Vec<u32> = (0..n).map(|i| (i / per) as u32).collect();
    let xs: Vec<f64> = (0..n).map(|_| normal.sample(&mut rng)).collect();
    let b: Vec<f64> = (0..n_levels)
        .map(|_| 0.6 * normal.sample(&mut rng))
        .collect();
    let y: Vec<f64> = (0..n)
        .map(|i| {
            let mu = (0.4 + 0.3 * xs[i] + b[levels[i] as usize]).exp();
            Poisson::new(mu).expect("poisson").sample(&mut rng)
        })
        .collect();
    let mut x = vec![1.0; n];
    x.extend_from_slice(&xs);
    Data {
        y,
        x,
        z: vec![1.0; n],
        levels,
        n_levels,
    }
}

/// The brute-force Laplace deviance at `(sd, β₀, β₁)`.
fn laplace(d: &Data, pars: &[f64]) -> f64 {
    let n = d.n();
    let (th, b0, b1) = (pars[0], pars[1], pars[2]);
    let mut total = 0.0;
    for j in 0..d.n_levels {
        let idx: Vec<usize> = (0..n).filter(|&i| d.levels[i] as usize == j).collect();
        let eta0: Vec<f64> = idx.iter().map(|&i| b0 + b1 * d.x[n + i]).collect();
        let mut u = 0.0;
        for _ in 0..100 {
            let (mut g, mut h) = (u, 1.0);
            for (k, &i) in idx.iter().enumerate() {
                let mu = (eta0[k] + th * u).exp();
                g -= th * (d.y[i] - mu);
                h += th * th * mu;
            }
            let step = g / h;
            u -= step;
            if step.abs() < 1e-14 {
                break;
            }
        }
        let mut ll = 0.0;
        let mut h = 1.0;
        for (k, &i) in idx.iter().enumerate() {
            let eta = eta0[k] + th * u;
            let mu = eta.exp();
            ll += d.y[i] * eta - mu - ln_gamma(d.y[i] + 1.0);
            h += th * th * mu;
        }
        total += -2.0 * ll + u * u + h.ln();
    }
    total
}

/// Standard error of parameter `w` from the inverse finite-difference Hessian of the
/// brute-force deviance (`cov = 2 H⁻¹`).
fn hessian_se(d: &Data, at: &[f64], w: usize) -> f64 {
    let h = 1e-4;
    let f = |a: usize, sa: f64, b: usize, sb: f64| {
        let mut q = at.to_vec();
        q[a] += sa;
        q[b] += sb;
        laplace(d, &q)
    };
    let mut m = [[0.0; 3]; 3];
    for (a, row) in m.iter_mut().enumerate() {
        for (b, v) in row.iter_mut().enumerate() {
            *v =
                (f(a, h, b, h) - f(a, h, b, -h) - f(a, -h, b, h) + f(a, -h, b, -h)) / (4.0 * h * h);
        }
    }
    // Cofactor inverse of the 3 × 3 Hessian, diagonal element w.
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    let (i, j) = match w {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    let minor = m[i][i] * m[j][j] - m[i][j] * m[j][i];
    (2.0 * minor / det).sqrt()
}

fn fit_and_profiler<'s, 'a>(
    spec: &'s ModelSpec<'a>,
    ones: &'s [f64],
    eta: &'s [f64],
) -> GlmmProfiler<'s, 'a> {
    let family = Family::new("poisson", "log").expect("family");
    let mut model = GeneralizedLinearMixedModel::new(
        spec.clone(),
        family,
        ones.to_vec(),
        eta.to_vec(),
        PirlsOptions::default(),
        faer::Par::Seq,
    )
    .expect("model");
    let opts = GlmmOptions {
        quasi_newton_only: None,
        start_at_optimum: false,
        quasi_newton_gtol: None,
        n_agq: 1,
        init_step: Some(true),
        optim: OptimOptions::default(),
        optimizers: [StageOptimizer::Bobyqa, StageOptimizer::Bobyqa],
        pirls: PirlsOptions::default(),
    };
    let fit = model
        .fit(&opts, None, None, &mut |_, _, _| Stop::Continue)
        .expect("fit");
    let setup = GlmmSetup {
        spec,
        family,
        n_trials: ones,
        eta_start: eta,
    };
    GlmmProfiler::new(
        setup,
        1,
        PirlsOptions::default(),
        &fit.theta,
        &fit.beta,
        ProfileOptions::default(),
    )
    .expect("profiler")
}

#[test]
fn glmm_profile_points_lie_on_the_laplace_profile() {
    let d = poisson_data(5, 15, 8);
    let spec = d.spec();
    let ones = vec![1.0; d.n()];
    let eta: Vec<f64> = d.y.iter().map(|&y| (y + 0.1).ln()).collect();
    let profiler = fit_and_profiler(&spec, &ones, &eta);
    assert_eq!(profiler.n_par(), 3);
    let base = laplace(&d, &profiler.optimum);
    assert!(
        (base - profiler.base).abs() < 1e-7,
        "{base} {}",
        profiler.base
    );
    let traces = profiler.profile_many(&[0, 1, 2], 2).expect("profiles");
    for tr in &traces {
        assert!(tr.points.len() >= 8, "{} points", tr.points.len());
        let w = tr.index;
        for pt in &tr.points {
            // On the deviance surface ...
            let dev = laplace(&d, &pt.pars);
            assert!(
                (dev - base - pt.zeta * pt.zeta).abs() < 1e-6,
                "parameter {w}: {dev} vs {}",
                base + pt.zeta * pt.zeta
            );
            // ... and at its minimum over the other parameters.
            for k in (0..3).filter(|&k| k != w) {
                for h in [-1e-3, 1e-3] {
                    let mut q = pt.pars.clone();
                    q[k] += h;
                    if k == 0 && q[k] < 0.0 {
                        continue;
                    }
                    assert!(laplace(&d, &q) > dev - 1e-9, "parameter {w}, direction {k}");
                }
            }
        }
        // ζ increases through the optimum and reaches the cutoff on both sides (none of
        // these parameters is at a bound).
        let z: Vec<f64> = tr.points.iter().map(|p| p.zeta).collect();
        assert!(z.windows(2).all(|v| v[1] > v[0]));
        assert!(z[0] < -profiler.cutoff() && z[z.len() - 1] > profiler.cutoff());
        let par: Vec<f64> = tr.points.iter().map(|p| p.pars[w]).collect();
        let (ci, _) = profile_interval(&par, &z, &[-1.96, 0.0, 1.96]);
        assert!((ci[1] - profiler.optimum[w]).abs() < 1e-8);
        assert!(ci[0] < ci[1] && ci[1] < ci[2]);
        if w > 0 {
            // A fixed effect's interval is near the Wald interval (the profile is skewed by
            // the coupling of β and θ, as for lme4's cbpp fit, by up to half a standard error).
            let se = hessian_se(&d, &profiler.optimum, w);
            for (end, wald) in [(ci[0], ci[1] - 1.96 * se), (ci[2], ci[1] + 1.96 * se)] {
                assert!((end - wald).abs() < 0.5 * se, "{end} vs {wald}");
            }
        }
    }
    // Independent of the number of threads.
    let one = profiler.profile_many(&[0, 2], 1).expect("one thread");
    for (a, b) in one.iter().zip([&traces[0], &traces[2]]) {
        assert_eq!(a.points.len(), b.points.len());
        for (p, q) in a.points.iter().zip(&b.points) {
            assert_eq!(p.zeta.to_bits(), q.zeta.to_bits());
            assert_eq!(p.pars, q.pars);
        }
    }
    assert!(profiler.profile(3).is_err());
}

#[test]
fn glmm_profiles_refuse_what_lme4_cannot_profile() {
    let d = poisson_data(2, 6, 5);
    let spec = d.spec();
    let ones = vec![1.0; d.n()];
    let eta: Vec<f64> = d.y.iter().map(|&y| (y + 0.1).ln()).collect();
    let setup = GlmmSetup {
        spec: &spec,
        family: Family::new("poisson", "log").expect("family"),
        n_trials: &ones,
        eta_start: &eta,
    };
    let pirls = PirlsOptions::default();
    let opts = ProfileOptions::default;
    let err = GlmmProfiler::new(setup, 0, pirls, &[0.5], &[0.4, 0.3], opts()).unwrap_err();
    assert!(err.to_string().contains("nAGQ"), "{err}");
    let positive: Vec<f64> = d.y.iter().map(|&y| y + 0.5).collect();
    let spec_gamma = ModelSpec {
        y: &positive,
        ..spec.clone()
    };
    let gamma = GlmmSetup {
        spec: &spec_gamma,
        family: Family::new("Gamma", "log").expect("family"),
        ..setup
    };
    let err = GlmmProfiler::new(gamma, 1, pirls, &[0.5], &[0.4, 0.3], opts()).unwrap_err();
    assert!(err.to_string().contains("scale parameter"), "{err}");
}
