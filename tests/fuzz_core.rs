//! Property tests of the core API: random designs (crossed, nested-by-chance, vector-valued,
//! amalgamated terms, weights and offsets), random θ including the boundary, and corrupted
//! inputs. The core must never panic; a valid design gives a finite profiled deviance that equals
//! the dense marginal likelihood (tests/common), and a fit that stays within its bounds; invalid
//! input is an error.
use mixedrs::lmm::LinearMixedModel;
use mixedrs::optim::{OptimOptions, Stop};
use mixedrs::spec::{ModelSpec, RandomTerm};
use proptest::prelude::*;

use crate::common::{design, reference_deviance, Design};

/// Grouping factors as (levels, q), at most three, each with at least one level.
fn factors() -> impl Strategy<Value = Vec<(usize, usize)>> {
    prop::collection::vec((1usize..12, 1usize..4), 1..4)
}

/// A random design of `n` rows, `p` fixed effects and the given factors (levels capped at n).
fn random_design() -> impl Strategy<Value = Design> {
    (
        any::<u64>(),
        8usize..60,
        2usize..4, // design() puts the first slope into y
        factors(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(seed, n, p, mut f, shared, weighted)| {
            for (nl, _) in f.iter_mut() {
                *nl = (*nl).min(n);
            }
            design(seed, n, p, &f, shared, weighted)
        })
}

/// θ for `d`: diagonal entries in [0, 3] (0 with some probability: the boundary), others in
/// [-2, 2], from the unit draws `u`.
fn theta_for(d: &Design, u: &[f64]) -> Vec<f64> {
    let mut th = Vec::new();
    let mut k = 0;
    for (_, _, _, q, _) in &d.terms {
        for c in 0..*q {
            for r in c..*q {
                let v = u[k % u.len()];
                k += 1;
                th.push(if r == c {
                    if v < 0.15 {
                        0.0
                    } else {
                        3.0 * v
                    }
                } else {
                    4.0 * v - 2.0
                });
            }
        }
    }
    th
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn deviance_is_finite_and_equals_the_dense_reference(
        d in random_design(),
        u in prop::collection::vec(0.0f64..1.0, 1..12),
        reml in any::<bool>(),
    ) {
        let mut model = LinearMixedModel::new(d.spec(), reml, faer::Par::Seq).expect("model");
        let theta = theta_for(&d, &u);
        let ours = model.objective_at(&theta);
        prop_assert!(ours.is_finite(), "deviance {ours} at {theta:?}");
        let reference = reference_deviance(&d, &theta, reml);
        prop_assert!(
            (ours - reference).abs() <= 1e-8 * reference.abs().max(1.0),
            "{ours} vs dense {reference} at {theta:?}"
        );
    }

    #[test]
    fn fits_stay_within_bounds_and_are_finite(d in random_design(), reml in any::<bool>()) {
        let mut model = LinearMixedModel::new(d.spec(), reml, faer::Par::Seq).expect("model");
        let mut quiet = |_: usize, _: &[f64], _: f64| Stop::Continue;
        let fit = model.fit(None, &OptimOptions::default(), &mut quiet).expect("fit");
        prop_assert!(fit.objective.is_finite());
        for (t, lo) in fit.theta.iter().zip(&fit.opt.lower) {
            prop_assert!(t.is_finite() && t >= lo, "θ {t} below its bound {lo}");
        }
        // The optimum is no worse than the starting point θ = (1, 0, ...) of lme4.
        let start = theta_for(&d, &[1.0 / 3.0, 0.5]);
        prop_assert!(fit.objective <= model.objective_at(&start) + 1e-6);
    }

    #[test]
    fn corrupted_inputs_are_errors_not_panics(
        d in random_design(),
        which in 0usize..7,
        pos in any::<prop::sample::Index>(),
        bad in prop::sample::select(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0, 0.0]),
    ) {
        let mut y = d.y.clone();
        let mut x = d.x.clone();
        let mut w = d.weights.clone().unwrap_or_else(|| vec![1.0; d.n]);
        let mut z0 = d.terms[0].2.clone();
        let mut levels0 = d.terms[0].0.clone();
        let mut n_levels0 = d.terms[0].1;
        let mut x_len = x.len();
        match which {
            0 => y[pos.index(d.n)] = if bad.is_finite() { f64::NAN } else { bad },
            1 => x[pos.index(x_len)] = if bad.is_finite() { f64::INFINITY } else { bad },
            2 => w[pos.index(d.n)] = if bad.is_nan() { bad } else { bad.min(0.0) - 1.0 },
            3 => z0[pos.index(d.n)] = if bad.is_finite() { f64::NAN } else { bad },
            4 => levels0[pos.index(d.n)] = n_levels0 as u32,
            5 => n_levels0 = 0,
            _ => x_len -= 1,
        }
        let terms: Vec<RandomTerm> = d
            .terms
            .iter()
            .enumerate()
            .map(|(k, (lev, nl, z, q, f))| {
                if k == 0 {
                    RandomTerm { levels: levels0.clone(), n_levels: n_levels0, z: &z0, q: *q,
                                 factor_id: *f, predictor: mixedrs::spec::Predictor::Mean }
                } else {
                    RandomTerm { levels: lev.clone(), n_levels: *nl, z, q: *q, factor_id: *f, predictor: mixedrs::spec::Predictor::Mean }
                }
            })
            .collect();
        let spec = ModelSpec::new(&y, &x[..x_len], d.p, Some(&w), d.offset.as_deref(), terms);
        match spec {
            Err(_) => {}
            Ok(spec) => {
                // Whatever was accepted must evaluate to an error or a finite deviance.
                if let Ok(mut model) = LinearMixedModel::new(spec, true, faer::Par::Seq) {
                    let theta = theta_for(&d, &[0.5]);
                    let v = model.objective_at(&theta);
                    prop_assert!(v.is_finite() || model.set_theta(&theta).is_err());
                }
            }
        }
    }

    #[test]
    fn wrong_theta_is_an_error(d in random_design(), extra in 1usize..3, bad in prop::sample::select(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY])) {
        let mut model = LinearMixedModel::new(d.spec(), true, faer::Par::Seq).expect("model");
        let good = theta_for(&d, &[0.5]);
        let mut long = good.clone();
        long.extend(std::iter::repeat_n(1.0, extra));
        prop_assert!(model.set_theta(&long).is_err());
        prop_assert!(model.set_theta(&good[..good.len() - 1]).is_err());
        let mut odd = good.clone();
        odd[0] = bad;
        prop_assert!(model.set_theta(&odd).is_err(), "θ[0] = {bad} accepted");
    }
}

/// Binary or count responses on a random design: (design, family name, responses).
fn glmm_case() -> impl Strategy<Value = (Design, bool, Vec<f64>)> {
    (random_design(), any::<bool>(), any::<u64>()).prop_map(|(d, binary, seed)| {
        // Responses from a cheap deterministic hash of the seed and the row.
        let y = (0..d.n)
            .map(|i| {
                let h = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(i as u64 * 1442695040888963407)
                    >> 33;
                if binary {
                    (h % 2) as f64
                } else {
                    (h % 7) as f64
                }
            })
            .collect();
        (d, binary, y)
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// The Laplace deviance at random θ (boundary included) is finite or an error, never a
    /// panic; degenerate responses (all 0, all 1) included.
    #[test]
    fn glmm_deviance_is_finite_or_an_error(
        (d, binary, y) in glmm_case(),
        u in prop::collection::vec(0.0f64..1.0, 1..12),
        degenerate in 0usize..3,
    ) {
        use mixedrs::family::Family;
        use mixedrs::glmm::{GeneralizedLinearMixedModel, PirlsOptions};
        let y: Vec<f64> = match degenerate {
            1 => vec![0.0; d.n],
            2 if binary => vec![1.0; d.n],
            _ => y,
        };
        let family = if binary {
            Family::new("binomial", "logit").expect("family")
        } else {
            Family::new("poisson", "log").expect("family")
        };
        let eta0: Vec<f64> = y
            .iter()
            .map(|&v| family.link.linkfun(if binary { (v + 0.5) / 2.0 } else { v + 0.1 }))
            .collect();
        let terms = d
            .terms
            .iter()
            .map(|(lev, nl, z, q, f)| RandomTerm { levels: lev.clone(), n_levels: *nl, z, q: *q,
                                                  factor_id: *f, predictor: mixedrs::spec::Predictor::Mean })
            .collect();
        let spec = ModelSpec::new(&y, &d.x, d.p, None, d.offset.as_deref(), terms)
            .expect("spec");
        let mut model = GeneralizedLinearMixedModel::new(
            spec, family, vec![1.0; d.n], eta0, PirlsOptions::default(), faer::Par::Seq,
        )
        .expect("model");
        let theta = theta_for(&d, &u);
        if let Ok(v) = model.objective_theta(&theta) {
            prop_assert!(v.is_finite(), "Laplace deviance {v} at {theta:?}");
        }
    }
}
