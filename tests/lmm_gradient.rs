//! The exact gradient of the profiled deviance (`LinearMixedModel::criterion_gradient`) against
//! Richardson-extrapolated central differences of the deviance, on random designs: one vector
//! factor (no trailing block), crossed factors with slopes on both (dense trailing block),
//! a factor with two terms (`(1|g) + (0+x|g)`), prior weights and an offset; ML and REML.
use faer::Par;
use mixedrs::lmm::LinearMixedModel;
use mixedrs::trailing::TrailingChoice;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::common::{design, random_theta, Design};

/// `f'(x)` along coordinate `k` by Richardson extrapolation of central differences (error
/// O(h⁴)).
fn richardson(model: &mut LinearMixedModel<'_>, theta: &[f64], k: usize, h: f64) -> f64 {
    let mut at = |step: f64| {
        let mut up = theta.to_vec();
        let mut down = theta.to_vec();
        up[k] += step;
        down[k] -= step;
        (model.objective_at(&up) - model.objective_at(&down)) / (2.0 * step)
    };
    let d1 = at(h);
    let d2 = at(h / 2.0);
    (4.0 * d2 - d1) / 3.0
}

fn check(name: &str, d: &Design, seed: u64, choice: TrailingChoice) {
    let mut rng = StdRng::seed_from_u64(seed);
    for reml in [false, true] {
        let mut model =
            LinearMixedModel::with_storage(d.spec(), reml, Par::Seq, choice).expect("model");
        for _ in 0..2 {
            let theta = random_theta(&mut rng, d);
            model.set_theta(&theta).expect("factor");
            let exact = model
                .criterion_gradient()
                .expect("gradient")
                .unwrap_or_else(|| panic!("{name}: no gradient offered"));
            for (k, &g) in exact.iter().enumerate() {
                let numeric = richardson(&mut model, &theta, k, 1e-3);
                let err = (g - numeric).abs() / numeric.abs().max(1.0);
                assert!(
                    err < 1e-6,
                    "{name} (reml {reml}) theta[{k}]: exact {g}, differences {numeric}"
                );
            }
        }
    }
}

#[test]
fn gradient_matches_differences_of_the_deviance() {
    let cases = [
        (
            "one vector factor",
            design(11, 90, 2, &[(10, 2)], false, false),
        ),
        (
            "one vector factor, weighted",
            design(12, 90, 3, &[(12, 3)], false, true),
        ),
        (
            "slopes on both crossed factors",
            design(13, 200, 2, &[(25, 2), (9, 2)], false, false),
        ),
        (
            "three crossed, weighted",
            design(14, 220, 3, &[(20, 2), (8, 1), (5, 2)], false, true),
        ),
        (
            "two terms on one factor",
            design(15, 150, 2, &[(12, 1), (6, 2)], true, false),
        ),
    ];
    for (i, (name, d)) in cases.iter().enumerate() {
        check(name, d, 100 + i as u64, TrailingChoice::Dense);
    }
}

#[test]
fn no_gradient_where_it_is_not_offered() {
    let d = design(16, 200, 2, &[(25, 2), (9, 2)], false, false);
    let mut rng = StdRng::seed_from_u64(7);
    let theta = random_theta(&mut rng, &d);
    let mut sparse =
        LinearMixedModel::with_storage(d.spec(), true, Par::Seq, TrailingChoice::Sparse)
            .expect("model");
    sparse.set_theta(&theta).expect("factor");
    assert!(sparse.criterion_gradient().expect("gradient").is_none());
    // A zero on a diagonal of T_b: the deviance is not differentiable there.
    let mut dense = LinearMixedModel::with_storage(d.spec(), true, Par::Seq, TrailingChoice::Dense)
        .expect("model");
    let mut singular = theta.clone();
    singular[0] = 0.0;
    dense.set_theta(&singular).expect("factor");
    assert!(dense.criterion_gradient().expect("gradient").is_none());
}
