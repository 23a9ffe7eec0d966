//! Engine tests against dense reference computations on random seeded designs.
//!
//! The blocked factor must agree with a dense Cholesky of the same penalized matrix, and the
//! profiled deviance with the marginal Gaussian likelihood `y ~ N(Xβ, σ²(ZΛΛ'Z' + W⁻¹))`
//! computed directly (an `n × n` computation that only a test may afford).
use faer::prelude::Solve;
use faer::{Mat, Side};
use mixedrs::lmm::LinearMixedModel;
use mixedrs::optim::{OptimOptions, Stop};
use mixedrs::spec::{ModelSpec, RandomTerm};
use mixedrs::trailing::TrailingChoice;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

use crate::common::{dense_z_lambda, design, random_theta, reference_deviance, Design};

fn designs() -> Vec<(&'static str, Design)> {
    vec![
        (
            "one scalar factor",
            design(1, 80, 2, &[(9, 1)], false, false),
        ),
        (
            "one vector factor",
            design(2, 90, 2, &[(10, 2)], false, false),
        ),
        (
            "two crossed scalar",
            design(3, 120, 3, &[(15, 1), (7, 1)], false, false),
        ),
        (
            "crossed vector + scalar",
            design(4, 150, 2, &[(12, 2), (9, 1)], false, true),
        ),
        (
            "three factors, mixed q",
            design(5, 160, 2, &[(6, 1), (20, 1), (11, 3)], false, true),
        ),
        (
            "amalgamated terms",
            design(6, 100, 2, &[(10, 1), (5, 2)], true, false),
        ),
        (
            "weights and offset",
            design(7, 70, 3, &[(8, 2)], false, true),
        ),
        (
            // Sparse L21 with two values per entry: the column-wise scatter for scalar nodes.
            "vector leading, many scalar trailing",
            design(8, 600, 2, &[(200, 2), (150, 1)], false, true),
        ),
        (
            // Every leading level meets every trailing one: the dense rank-k update.
            "fully crossed",
            design(9, 400, 2, &[(40, 1), (10, 1)], false, false),
        ),
    ]
}

#[test]
fn profiled_deviance_matches_dense_marginal_likelihood() {
    let mut rng = StdRng::seed_from_u64(42);
    for (name, d) in designs() {
        for (reml, storage) in [
            (false, TrailingChoice::Auto),
            (true, TrailingChoice::Auto),
            (false, TrailingChoice::Sparse),
            (true, TrailingChoice::Sparse),
            (true, TrailingChoice::Dense),
        ] {
            let mut model = LinearMixedModel::with_storage(d.spec(), reml, faer::Par::Seq, storage)
                .expect("model");
            for _ in 0..4 {
                let theta = random_theta(&mut rng, &d);
                let ours = model.objective_at(&theta);
                let reference = reference_deviance(&d, &theta, reml);
                let tol = 1e-9 * reference.abs().max(1.0);
                assert!(
                    (ours - reference).abs() < tol,
                    "{name} (reml = {reml}, {storage:?}): {ours} vs dense {reference} at {theta:?}"
                );
            }
        }
    }
}

/// A response far from 0 (every design's plus `10⁸ + 10³ x₂`, along `X`'s columns) has the same
/// criterion as the design itself at every θ, and its β moved by `(10⁸, 10³)`: the least-squares
/// fit on `X` is moved out of the response before the cross-products are summed. Summed as it
/// is, `y'y` exceeds the residual sum of squares by 10¹⁵ and the criterion kept no digit.
#[test]
fn a_response_far_from_zero_has_the_criterion_of_the_centred_one() {
    let mut rng = StdRng::seed_from_u64(43);
    for (name, d) in designs() {
        let mut far = d.clone();
        for i in 0..d.n {
            far.y[i] += 1e8 + 1e3 * d.x[d.n + i];
        }
        for reml in [false, true] {
            let mut near = LinearMixedModel::new(d.spec(), reml, faer::Par::Seq).expect("model");
            let mut shifted =
                LinearMixedModel::new(far.spec(), reml, faer::Par::Seq).expect("model");
            assert!(
                near.cp.response_shift.is_empty(),
                "{name}: shifted a response near 0"
            );
            assert_eq!(shifted.cp.response_shift.len(), d.p, "{name}: no shift");
            for _ in 0..3 {
                let theta = random_theta(&mut rng, &d);
                let (a, b) = (shifted.objective_at(&theta), near.objective_at(&theta));
                assert!(
                    (a - b).abs() < 1e-9 * b.abs().max(1.0),
                    "{name} (reml = {reml}): {a} vs {b} at {theta:?}"
                );
                let (fa, fb) = (
                    shifted.estimates(&theta).expect("estimates"),
                    near.estimates(&theta).expect("estimates"),
                );
                let moved = [1e8, 1e3];
                for (k, (ba, bb)) in fa.beta.iter().zip(&fb.beta).enumerate() {
                    let expect = bb + moved.get(k).copied().unwrap_or(0.0);
                    assert!(
                        (ba - expect).abs() < 1e-6 * (1.0 + bb.abs()),
                        "{name}: beta {k} {ba} vs {expect}"
                    );
                }
                assert!(
                    (fa.sigma - fb.sigma).abs() < 1e-7 * fb.sigma,
                    "{name}: sigma"
                );
            }
        }
    }
}

#[test]
fn blocked_factor_matches_dense_cholesky() {
    let mut rng = StdRng::seed_from_u64(7);
    for ((name, d), storage) in designs()
        .into_iter()
        .flat_map(|nd| [TrailingChoice::Dense, TrailingChoice::Sparse].map(|s| (nd.clone(), s)))
    {
        let mut model = LinearMixedModel::with_storage(d.spec(), false, faer::Par::Seq, storage)
            .expect("model");
        let name = format!("{name} ({storage:?})");
        let theta = random_theta(&mut rng, &d);
        model.set_theta(&theta).expect("factor");
        // Dense Ω = [ZΛ X y]' W [ZΛ X y] + diag(I, 0, 0)
        let zl = dense_z_lambda(&d, &theta);
        let q = zl.ncols();
        let (n, p) = (d.n, d.p);
        let a = Mat::from_fn(n, q + p + 1, |i, j| {
            if j < q {
                zl[(i, j)]
            } else if j < q + p {
                d.x[(j - q) * n + i]
            } else {
                d.y[i] - d.offset.as_ref().map_or(0.0, |o| o[i])
            }
        });
        let wa = Mat::from_fn(n, q + p + 1, |i, j| {
            a[(i, j)] * d.weights.as_ref().map_or(1.0, |w| w[i])
        });
        let mut omega = a.transpose() * &wa;
        for i in 0..q {
            omega[(i, i)] += 1.0;
        }
        let llt = omega.llt(Side::Lower).expect("Ω positive definite");
        let l = llt.L();
        let ld_z: f64 = (0..q).map(|i| 2.0 * l[(i, i)].ln()).sum();
        let ld_x: f64 = (q..q + p).map(|i| 2.0 * l[(i, i)].ln()).sum();
        let r = l[(q + p, q + p)];
        let ours_z = model.chol.logdet_l11 + model.chol.logdet_l22;
        assert!(
            (ours_z - ld_z).abs() < 1e-9 * ld_z.abs().max(1.0),
            "{name}: log|L_Z|² {ours_z} vs {ld_z}"
        );
        assert!(
            (model.chol.logdet_rx(&model.cp) - ld_x).abs() < 1e-9 * ld_x.abs().max(1.0),
            "{name}: log|R_X|²"
        );
        assert!(
            (model.chol.pwrss_sqrt(&model.cp) - r).abs() < 1e-9 * r.max(1.0),
            "{name}: r"
        );

        // Solution of the penalized least-squares problem.
        let fit = model.estimates(&theta).expect("estimates");
        let rhs = Mat::from_fn(q + p, 1, |i, _| omega[(i, q + p)]);
        let m = Mat::from_fn(q + p, q + p, |i, j| omega[(i, j)]);
        let sol = m.llt(Side::Lower).expect("M").solve(&rhs);
        for k in 0..p {
            assert!(
                (fit.beta[k] - sol[(q + k, 0)]).abs() < 1e-8 * sol[(q + k, 0)].abs().max(1.0),
                "{name}: beta[{k}]"
            );
        }
        for k in 0..q {
            assert!(
                (fit.u[k] - sol[(k, 0)]).abs() < 1e-8 * sol[(k, 0)].abs().max(1.0),
                "{name}: u[{k}]"
            );
        }
        // pwrss = wrss + ussq at the solution.
        assert!(
            (fit.pwrss - fit.wrss - fit.ussq).abs() < 1e-8 * fit.pwrss,
            "{name}: pwrss identity"
        );
    }
}

#[test]
fn fit_reaches_a_minimum() {
    for (name, d) in designs() {
        let mut model = LinearMixedModel::new(d.spec(), true, faer::Par::Seq).expect("model");
        let mut quiet = |_: usize, _: &[f64], _: f64| Stop::Continue;
        let fit = model
            .fit(None, &OptimOptions::default(), &mut quiet)
            .expect("fit");
        // No nearby θ is better.
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..20 {
            let mut t = fit.theta.clone();
            for (v, lo) in t.iter_mut().zip(&fit.opt.lower) {
                *v = (*v + (rng.random::<f64>() - 0.5) * 1e-2).max(*lo);
            }
            assert!(
                model.objective_at(&t) >= fit.objective - 1e-7,
                "{name}: a nearby θ is better"
            );
        }
    }
}

#[test]
fn invalid_input_is_an_error_not_a_panic() {
    let y = [1.0, 2.0, f64::NAN];
    let x = [1.0, 1.0, 1.0];
    let z = [1.0, 1.0, 1.0];
    let term = || RandomTerm {
        levels: vec![0, 1, 0],
        n_levels: 2,
        z: &z,
        q: 1,
        factor_id: 0,
        predictor: mixedrs::spec::Predictor::Mean,
    };
    assert!(ModelSpec::new(&y, &x, 1, None, None, vec![term()]).is_err());
    let y = [1.0, 2.0, 3.0];
    assert!(ModelSpec::new(&y, &x[..2], 1, None, None, vec![term()]).is_err());
    assert!(ModelSpec::new(&y, &x, 1, Some(&[1.0, -1.0, 1.0]), None, vec![term()]).is_err());
    assert!(ModelSpec::new(&y, &x, 1, None, None, vec![]).is_err());
    assert!(RandomTerm::from_factor_codes(&[1, 3, 1], 2, &z, 1, 0).is_err());
    let spec = ModelSpec::new(&y, &x, 1, None, None, vec![term()]).expect("valid");
    let mut model = LinearMixedModel::new(spec, false, faer::Par::Seq).expect("model");
    assert!(model.set_theta(&[1.0, 2.0]).is_err());
    assert!(model.set_theta(&[f64::NAN]).is_err());
}

/// A nested design (classes within schools, plus a crossed rater factor) big enough for faer's
/// supernodal path: sparse and dense storage of the trailing block must agree.
#[test]
fn sparse_and_dense_trailing_storage_agree_on_a_large_design() {
    let mut rng = StdRng::seed_from_u64(11);
    let normal = Normal::new(0.0, 1.0).expect("normal");
    let n = 12_000;
    let (n_class, n_school, n_rater) = (3_000, 600, 400);
    let class: Vec<u32> = (0..n).map(|i| (i % n_class) as u32).collect();
    let school: Vec<u32> = class.iter().map(|&c| c % n_school as u32).collect();
    let rater: Vec<u32> = (0..n)
        .map(|i| {
            if i < n_rater {
                i as u32
            } else {
                rng.random_range(0..n_rater as u32)
            }
        })
        .collect();
    let x: Vec<f64> = (0..2 * n)
        .map(|i| if i < n { 1.0 } else { normal.sample(&mut rng) })
        .collect();
    let slope: Vec<f64> = (0..n).map(|_| normal.sample(&mut rng)).collect();
    let z_rater: Vec<f64> = (0..2 * n)
        .map(|i| if i < n { 1.0 } else { slope[i - n] })
        .collect();
    let y: Vec<f64> = (0..n).map(|i| x[n + i] + normal.sample(&mut rng)).collect();
    let ones = vec![1.0; n];
    let design = Design {
        n,
        p: 2,
        y,
        x,
        weights: None,
        offset: None,
        terms: vec![
            (class, n_class, ones.clone(), 1, 0),
            (school, n_school, ones, 1, 1),
            (rater, n_rater, z_rater, 2, 2),
        ],
    };
    let theta = [0.8, 0.5, 0.6, 0.1, 0.3];
    let mut values = Vec::new();
    for storage in [
        TrailingChoice::Dense,
        TrailingChoice::Sparse,
        TrailingChoice::Auto,
    ] {
        let mut model =
            LinearMixedModel::with_storage(design.spec(), true, faer::Par::Seq, storage)
                .expect("model");
        values.push(model.objective_at(&theta));
        let fit = model.estimates(&theta).expect("estimates");
        values.push(fit.beta[1]);
    }
    for k in [2, 4] {
        assert!(
            (values[k] - values[0]).abs() < 1e-9 * values[0].abs(),
            "objective {values:?}"
        );
        assert!((values[k + 1] - values[1]).abs() < 1e-9, "beta {values:?}");
    }
    // Without the crossed rater factor the trailing block (schools) stays diagonal: sparse.
    let mut nested = design.clone();
    nested.terms.truncate(2);
    let model = LinearMixedModel::new(nested.spec(), true, faer::Par::Seq).expect("model");
    assert!(
        model.chol.trailing.is_sparse(),
        "a nested design should be stored sparse"
    );
}

/// `y = 1 + x + Σ_f b_f[g_f] + slope·x·c[g_0] + e` with `e ~ N(0, 1)`: `sds` gives each factor's
/// (levels, sd), `nest` makes factor 1 nested in factor 0 (`g_1 = g_0 · levels_1 + k`).
fn variance_design(seed: u64, n: usize, sds: &[(usize, f64)], slope: f64, nest: bool) -> Design {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1.0).expect("normal");
    let xcol: Vec<f64> = (0..n).map(|_| normal.sample(&mut rng)).collect();
    let mut x = vec![1.0; 2 * n];
    x[n..].copy_from_slice(&xcol);
    let mut y: Vec<f64> = xcol
        .iter()
        .map(|v| 1.0 + v + normal.sample(&mut rng))
        .collect();
    let mut terms = Vec::new();
    for (f, &(nl, sd)) in sds.iter().enumerate() {
        let effects: Vec<f64> = (0..nl).map(|_| sd * normal.sample(&mut rng)).collect();
        let slopes: Vec<f64> = (0..nl).map(|_| slope * normal.sample(&mut rng)).collect();
        let levels: Vec<u32> = if nest && f == 1 {
            let per = nl / sds[0].0;
            terms[0..1]
                .iter()
                .flat_map(|(lev, ..): &crate::common::TermData| lev.iter())
                .map(|&g| g * per as u32 + rng.random_range(0..per as u32))
                .collect()
        } else {
            (0..n).map(|_| rng.random_range(0..nl as u32)).collect()
        };
        for i in 0..n {
            y[i] += effects[levels[i] as usize];
        }
        let q = if f == 0 && slope > 0.0 { 2 } else { 1 };
        let mut z = vec![1.0; n * q];
        if q == 2 {
            z[n..].copy_from_slice(&xcol);
            for i in 0..n {
                y[i] += slopes[levels[i] as usize] * xcol[i];
            }
        }
        terms.push((levels, nl, z, q, f));
    }
    Design {
        n,
        p: 2,
        y,
        x,
        weights: None,
        offset: None,
        terms,
    }
}

#[test]
fn moment_start_is_near_the_simulated_variances() {
    use mixedrs::blocks::CrossProducts;
    use mixedrs::start::{moment_theta, ResidualScale};
    use mixedrs::terms::ReStructure;
    let cases: Vec<(&str, Design, Vec<f64>)> = vec![
        (
            "crossed",
            variance_design(11, 40_000, &[(800, 0.6), (300, 0.4)], 0.0, false),
            vec![0.6, 0.4],
        ),
        (
            "nested",
            variance_design(12, 40_000, &[(200, 0.8), (1000, 0.5)], 0.0, true),
            vec![0.8, 0.5],
        ),
        (
            "random slope crossed with an intercept",
            variance_design(13, 40_000, &[(800, 0.6), (300, 0.4)], 0.3, false),
            vec![0.6, 0.0, 0.3, 0.4],
        ),
    ];
    for (name, d, truth) in cases {
        let spec = d.spec();
        let re = ReStructure::new(&spec);
        let cp = CrossProducts::new(&spec, &re).expect("cross-products");
        let theta = moment_theta(&cp, &re, ResidualScale::Estimated).expect("a moment estimate");
        assert_eq!(theta.len(), truth.len(), "{name}");
        for (k, (&t, &want)) in theta.iter().zip(&truth).enumerate() {
            assert!(
                (t - want).abs() < 0.1 * want.max(0.1),
                "{name}: theta[{k}] = {t}, simulated {want}"
            );
        }
    }
}

#[test]
fn moment_start_and_identity_start_reach_the_same_optimum() {
    for (name, d) in designs() {
        let mut quiet = |_: usize, _: &[f64], _: f64| Stop::Continue;
        let mut model = LinearMixedModel::new(d.spec(), true, faer::Par::Seq).expect("model");
        let from_moments = model
            .fit(None, &OptimOptions::default(), &mut quiet)
            .expect("fit");
        let identity: Vec<f64> = from_moments
            .opt
            .lower
            .iter()
            .map(|&lo| if lo == 0.0 { 1.0 } else { 0.0 })
            .collect();
        let from_identity = model
            .fit(Some(&identity), &OptimOptions::default(), &mut quiet)
            .expect("fit");
        assert!(
            (from_moments.objective - from_identity.objective).abs() < 1e-6,
            "{name}: {} from the moment start, {} from the identity",
            from_moments.objective,
            from_identity.objective
        );
    }
}
