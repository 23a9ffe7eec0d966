//! Likelihood profiles against a dense brute-force profile, and bootstrap refits that must not
//! depend on the number of threads.
//!
//! The reference profile evaluates the marginal Gaussian likelihood of a one-factor model
//! `y = Xβ + Zb + ε`, `b ~ N(0, s²I)`, `ε ~ N(0, σ²I)` with the dense `n × n` covariance
//! (affordable in a test with 36 observations) and minimizes over the remaining parameters by
//! golden-section search.
use mixedrs::family::Family;
use mixedrs::glmm::{GlmmOptions, PirlsOptions, StageOptimizer};
use mixedrs::inference::bootstrap::{bootstrap_glmm, bootstrap_lmm, GlmmSetup};
use mixedrs::inference::parallel::Watched;
use mixedrs::inference::profile::{
    profile_interval, IntervalMethod, LmmProfiler, ProfileOptions, Profiler,
};
use mixedrs::optim::OptimOptions;
use mixedrs::spec::{ModelSpec, RandomTerm};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal, Poisson};

struct Data {
    y: Vec<f64>,
    x: Vec<f64>,
    z: Vec<f64>,
    levels: Vec<u32>,
    n_levels: usize,
    p: usize,
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
        ModelSpec::new(&self.y, &self.x, self.p, None, None, vec![term]).expect("valid spec")
    }

    fn n(&self) -> usize {
        self.y.len()
    }
}

/// `n_levels` groups of `per` observations, intercept and a slope, `(1 | g)`.
fn one_factor(seed: u64, n_levels: usize, per: usize) -> Data {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1.0).expect("normal");
    let n = n_levels * per;
    let levels: Vec<u32> = (0..n).map(|i| (i / per) as u32).collect();
    let xs: Vec<f64> = (0..n).map(|i| (i % per) as f64).collect();
    let b: Vec<f64> = (0..n_levels)
        .map(|_| 1.5 * normal.sample(&mut rng))
        .collect();
    let y: Vec<f64> = (0..n)
        .map(|i| 3.0 + 0.5 * xs[i] + b[levels[i] as usize] + normal.sample(&mut rng))
        .collect();
    let mut x = vec![1.0; n];
    x.extend_from_slice(&xs);
    Data {
        y,
        x,
        z: vec![1.0; n],
        levels,
        n_levels,
        p: 2,
    }
}

/// Dense Cholesky of an `n × n` column-major matrix; returns the factor and `log|A|`.
fn dense_chol(a: &[f64], n: usize) -> (Vec<f64>, f64) {
    let mut l = a.to_vec();
    let mut logdet = 0.0;
    for j in 0..n {
        let mut d = l[j * n + j];
        for k in 0..j {
            d -= l[k * n + j] * l[k * n + j];
        }
        let ljj = d.sqrt();
        l[j * n + j] = ljj;
        logdet += 2.0 * ljj.ln();
        for i in j + 1..n {
            let mut s = l[j * n + i];
            for k in 0..j {
                s -= l[k * n + i] * l[k * n + j];
            }
            l[j * n + i] = s / ljj;
        }
    }
    (l, logdet)
}

/// `L⁻¹ v` for the dense lower factor.
fn forward(l: &[f64], n: usize, v: &[f64]) -> Vec<f64> {
    let mut x = v.to_vec();
    for i in 0..n {
        let mut s = x[i];
        for k in 0..i {
            s -= l[k * n + i] * x[k];
        }
        x[i] = s / l[i * n + i];
    }
    x
}

/// Pieces of the marginal likelihood at relative variance `t² = s²/σ²`: `log|V₀|`
/// (`V₀ = I + t² ZZ'`) and the GLS residual quadratic form `r'V₀⁻¹r` (β at its GLS estimate,
/// or at `beta` when given).
fn dense_pieces(d: &Data, t: f64, beta: Option<&[f64]>) -> (f64, f64) {
    let n = d.n();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            let same = d.levels[i] == d.levels[j];
            v[j * n + i] = if same { t * t } else { 0.0 } + if i == j { 1.0 } else { 0.0 };
        }
    }
    let (l, logdet) = dense_chol(&v, n);
    let wy = forward(&l, n, &d.y);
    let wx: Vec<Vec<f64>> = (0..d.p)
        .map(|c| forward(&l, n, &d.x[c * n..(c + 1) * n]))
        .collect();
    let beta: Vec<f64> = match beta {
        Some(b) => b.to_vec(),
        None => {
            // Normal equations of the whitened least squares (p = 2).
            let g = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
            let (a11, a12, a22) = (g(&wx[0], &wx[0]), g(&wx[0], &wx[1]), g(&wx[1], &wx[1]));
            let (r1, r2) = (g(&wx[0], &wy), g(&wx[1], &wy));
            let det = a11 * a22 - a12 * a12;
            vec![(a22 * r1 - a12 * r2) / det, (a11 * r2 - a12 * r1) / det]
        }
    };
    let q: f64 = (0..n)
        .map(|i| {
            let r = wy[i] - (0..d.p).map(|c| wx[c][i] * beta[c]).sum::<f64>();
            r * r
        })
        .sum();
    (logdet, q)
}

fn golden(f: &dyn Fn(f64) -> f64, mut a: f64, mut b: f64) -> f64 {
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let mut c = b - g * (b - a);
    let mut e = a + g * (b - a);
    let (mut fc, mut fe) = (f(c), f(e));
    while b - a > 1e-11 * (1.0 + a.abs() + b.abs()) {
        if fc < fe {
            b = e;
            e = c;
            fe = fc;
            c = b - g * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = e;
            fc = fe;
            e = a + g * (b - a);
            fe = f(e);
        }
    }
    f(0.5 * (a + b))
}

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// ML deviance minimized over everything but the parameter fixed by `which`:
/// 0 = s (random-effect sd), 1 = σ, 2 + k = β_k.
fn dense_profile(d: &Data, which: usize, value: f64) -> f64 {
    let n = d.n() as f64;
    match which {
        0 => {
            // s fixed: over log σ, β by GLS.
            let f = |ls: f64| {
                let sigma = ls.exp();
                let (ld, q) = dense_pieces(d, value / sigma, None);
                n * (LN_2PI + 2.0 * ls) + ld + q / (sigma * sigma)
            };
            golden(&f, -5.0, 5.0)
        }
        1 => {
            let sigma = value;
            let f = |t: f64| {
                let (ld, q) = dense_pieces(d, t, None);
                n * (LN_2PI + 2.0 * sigma.ln()) + ld + q / (sigma * sigma)
            };
            golden(&f, 0.0, 20.0)
        }
        k => {
            // β_k fixed: the other β by GLS on y − value x_k, σ profiled.
            let j = k - 2;
            let other = 1 - j;
            let f = |t: f64| {
                // β_other at its conditional GLS estimate: 1-D quadratic, solved exactly.
                let q_at = |bo: f64| {
                    let mut b = vec![0.0; 2];
                    b[j] = value;
                    b[other] = bo;
                    dense_pieces(d, t, Some(&b)).1
                };
                let (q0, q1, q2) = (q_at(-1.0), q_at(0.0), q_at(1.0));
                let a = 0.5 * (q0 + q2) - q1;
                let bcoef = 0.5 * (q2 - q0);
                let bo = -bcoef / (2.0 * a);
                let mut b = vec![0.0; 2];
                b[j] = value;
                b[other] = bo;
                let (ld, q) = dense_pieces(d, t, Some(&b));
                n * (1.0 + LN_2PI + (q / n).ln()) + ld
            };
            golden(&f, 0.0, 20.0)
        }
    }
}

#[test]
fn profile_matches_dense_brute_force() {
    let d = one_factor(7, 9, 4);
    let profiler = LmmProfiler::new(d.spec(), None, ProfileOptions::default()).expect("ML fit");
    assert_eq!(profiler.n_par(), 4);
    // The ML optimum: the dense deviance minimized over everything.
    let dense_base = dense_profile(&d, 0, profiler.optimum[0]);
    assert!(
        (dense_base - profiler.base).abs() < 1e-6 * profiler.base.abs(),
        "base {} vs dense {dense_base}",
        profiler.base
    );
    for which in 0..4 {
        let trace = profiler.profile(which).expect("profile");
        assert!(trace.points.len() >= 8, "parameter {which}: too few points");
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for pt in &trace.points {
            let v = pt.pars[which];
            let dev = dense_profile(&d, which, v);
            let diff = (dev - dense_base).max(0.0);
            let zeta = (v - profiler.optimum[which]).signum() * diff.sqrt();
            assert!(
                (zeta - pt.zeta).abs() < 2e-5 * (1.0 + zeta.abs()),
                "parameter {which} at {v}: zeta {} vs dense {zeta}",
                pt.zeta
            );
            lo = lo.min(pt.zeta);
            hi = hi.max(pt.zeta);
        }
        // Each walk goes past the cutoff unless a bound stops it.
        assert!(hi > profiler.cutoff());
        let at_bound = trace.points[0].pars[which] == profiler.lower()[which];
        assert!(
            lo < -profiler.cutoff() || at_bound,
            "parameter {which}: lowest zeta {lo}"
        );
        // The interval's ends solve zeta(v) = ±1.96 on the dense profile.
        let par: Vec<f64> = trace.points.iter().map(|p| p.pars[which]).collect();
        let zeta: Vec<f64> = trace.points.iter().map(|p| p.zeta).collect();
        let z = 1.959_963_984_540_054;
        let (ends, how) = profile_interval(&par, &zeta, &[-z, z]);
        assert_eq!(how, IntervalMethod::Spline);
        for (end, target) in ends.iter().zip([-z, z]) {
            let dev = dense_profile(&d, which, *end);
            let zd = (end - profiler.optimum[which]).signum() * (dev - dense_base).max(0.0).sqrt();
            assert!(
                (zd - target).abs() < 2e-3,
                "parameter {which}: end {end} has dense zeta {zd}, not {target}"
            );
        }
    }
}

#[test]
fn profile_of_a_zero_variance_stops_at_the_bound() {
    // No group effect at all: the ML estimate of s is 0 for this seed's data.
    let mut d = one_factor(3, 8, 5);
    let n = d.n();
    let mut rng = StdRng::seed_from_u64(11);
    let normal = Normal::new(0.0, 1.0).expect("normal");
    d.y = (0..n)
        .map(|i| 1.0 + 0.2 * d.x[n + i] + normal.sample(&mut rng))
        .collect();
    let profiler = LmmProfiler::new(d.spec(), None, ProfileOptions::default()).expect("ML fit");
    if profiler.optimum[0] == 0.0 {
        let trace = profiler.profile(0).expect("profile");
        assert!(trace
            .points
            .iter()
            .all(|p| p.pars[0] >= 0.0 && p.zeta >= 0.0));
        let par: Vec<f64> = trace.points.iter().map(|p| p.pars[0]).collect();
        let zeta: Vec<f64> = trace.points.iter().map(|p| p.zeta).collect();
        let (ends, _) = profile_interval(&par, &zeta, &[-1.96, 1.96]);
        assert!(
            ends[0].is_nan(),
            "the lower end is the bound, left to the caller"
        );
        assert!(ends[1] > 0.0);
    }
}

#[test]
fn lmm_profiles_are_independent_of_threads() {
    // Each profile runs on its own model with sequential linear algebra: the same points, to
    // the bit, on one thread and on two.
    let d = one_factor(7, 9, 4);
    let profiler = LmmProfiler::new(d.spec(), None, ProfileOptions::default()).expect("ML fit");
    let which: Vec<usize> = (0..profiler.n_par()).collect();
    let one = profiler.profile_many(&which, 1).expect("1 thread");
    let two = profiler.profile_many(&which, 2).expect("2 threads");
    assert_eq!(one.len(), which.len());
    for (a, b) in one.iter().zip(&two) {
        assert_eq!(a.index, b.index);
        assert_eq!(a.points.len(), b.points.len());
        for (pa, pb) in a.points.iter().zip(&b.points) {
            assert_eq!(pa.zeta.to_bits(), pb.zeta.to_bits());
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&pa.pars), bits(&pb.pars));
        }
    }
}

fn simulated_responses(d: &Data, nsim: usize, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1.0).expect("normal");
    let n = d.n();
    let mut out = Vec::with_capacity(n * nsim);
    for _ in 0..nsim {
        let b: Vec<f64> = (0..d.n_levels)
            .map(|_| 1.5 * normal.sample(&mut rng))
            .collect();
        for i in 0..n {
            out.push(3.0 + 0.5 * d.x[n + i] + b[d.levels[i] as usize] + normal.sample(&mut rng));
        }
    }
    out
}

#[test]
fn lmm_bootstrap_is_independent_of_threads() {
    let d = one_factor(5, 10, 6);
    let spec = d.spec();
    let responses = simulated_responses(&d, 9, 99);
    let opts = OptimOptions::default();
    let on = |threads: usize| {
        bootstrap_lmm(
            &spec,
            true,
            &responses,
            &[1.0],
            &opts,
            threads,
            &Watched::default(),
        )
    };
    let one = on(1).expect("1 thread");
    let two = on(2).expect("2 threads");
    assert_eq!(one.len(), 9);
    for (a, b) in one.iter().zip(&two) {
        let (a, b) = (a.as_ref().expect("refit"), b.as_ref().expect("refit"));
        assert_eq!(a.theta, b.theta);
        assert_eq!(a.beta, b.beta);
        assert_eq!(a.sigma.to_bits(), b.sigma.to_bits());
        assert_eq!(a.objective.to_bits(), b.objective.to_bits());
    }
    // Each replicate is the fit of its own response: compare with a fresh fit.
    let n = d.n();
    let y3 = responses[3 * n..4 * n].to_vec();
    let d3 = Data {
        y: y3,
        x: d.x.clone(),
        z: d.z.clone(),
        levels: d.levels.clone(),
        n_levels: d.n_levels,
        p: d.p,
    };
    let mut model =
        mixedrs::lmm::LinearMixedModel::new(d3.spec(), true, faer::Par::Seq).expect("model");
    let fresh = model
        .fit(None, &opts, &mut |_, _, _| mixedrs::optim::Stop::Continue)
        .expect("fit");
    let rep = one[3].as_ref().expect("refit");
    assert!((fresh.objective - rep.objective).abs() < 1e-8 * fresh.objective.abs());
    assert!((fresh.beta[1] - rep.beta[1]).abs() < 1e-5);
}

#[test]
fn glmm_bootstrap_is_independent_of_threads() {
    let d = one_factor(8, 12, 5);
    let n = d.n();
    let mut rng = StdRng::seed_from_u64(21);
    let normal = Normal::new(0.0, 1.0).expect("normal");
    let nsim = 5;
    let mut responses = Vec::with_capacity(n * nsim);
    for _ in 0..nsim {
        let b: Vec<f64> = (0..d.n_levels)
            .map(|_| 0.5 * normal.sample(&mut rng))
            .collect();
        for i in 0..n {
            let mu = (0.5 + 0.1 * d.x[n + i] + b[d.levels[i] as usize]).exp();
            responses.push(Poisson::new(mu).expect("poisson").sample(&mut rng));
        }
    }
    let mut data = Data {
        y: responses[..n].to_vec(),
        x: d.x.clone(),
        z: d.z.clone(),
        levels: d.levels.clone(),
        n_levels: d.n_levels,
        p: d.p,
    };
    data.y = responses[..n].to_vec();
    let spec = data.spec();
    let ones = vec![1.0; n];
    let eta: Vec<f64> = (0..n).map(|i| 0.5 + 0.1 * d.x[n + i]).collect();
    let setup = GlmmSetup {
        spec: &spec,
        family: Family::new("poisson", "log").expect("family"),
        n_trials: &ones,
        eta_start: &eta,
    };
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
    let on = |threads: usize| {
        let watched = Watched::default();
        bootstrap_glmm(
            setup,
            &responses,
            &[0.5],
            &[0.5, 0.1],
            &opts,
            threads,
            &watched,
        )
    };
    let one = on(1).expect("1");
    let two = on(2).expect("2");
    for (a, b) in one.iter().zip(&two) {
        let (a, b) = (a.as_ref().expect("refit"), b.as_ref().expect("refit"));
        assert_eq!(a.theta, b.theta);
        assert_eq!(a.beta, b.beta);
        assert_eq!(a.deviance.to_bits(), b.deviance.to_bits());
    }
}

#[test]
fn bad_inputs_are_errors() {
    let d = one_factor(1, 5, 4);
    let spec = d.spec();
    let opts = OptimOptions::default();
    assert!(bootstrap_lmm(
        &spec,
        true,
        &[1.0; 7],
        &[1.0],
        &opts,
        1,
        &Watched::default()
    )
    .is_err());
    assert!(bootstrap_lmm(
        &spec,
        true,
        &d.y,
        &[1.0, 2.0],
        &opts,
        1,
        &Watched::default()
    )
    .is_err());
    let profiler = LmmProfiler::new(spec, None, ProfileOptions::default()).expect("fit");
    assert!(profiler.profile(17).is_err());
    let mut bad = d.y.clone();
    bad[0] = f64::NAN;
    let spec = d.spec();
    let reps =
        bootstrap_lmm(&spec, false, &bad, &[1.0], &opts, 1, &Watched::default()).expect("runs");
    assert!(reps[0].is_err());
}
