//! The average-information matrix (`LinearMixedModel::average_information`) against its
//! definition computed from the rows: `y'P V_i P V_j P y` with dense `V = σ²(W⁻¹ + ZΛΛ'Z')`, the
//! REML projection `P` and `V_i` by central differences of `V` (exact: `V` is quadratic in θ),
//! over (θ, σ²), with σ² profiled out by its Schur complement at `σ² = r²/ν`. Designs without a
//! shared factor (each term its own block), ML and REML, weights and an offset.
use faer::prelude::*;
use faer::{Mat, Side};
use mixedrs::lmm::LinearMixedModel;
use mixedrs::trailing::TrailingChoice;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::common::{dense_z_lambda, design, random_theta, Design};

/// `W⁻¹ + ZΛΛ'Z'` (`n × n`) at θ in lme4's layout.
fn v_matrix(d: &Design, theta: &[f64]) -> Mat<f64> {
    let zl = dense_z_lambda(d, theta);
    let mut v = &zl * zl.transpose();
    for i in 0..d.n {
        v[(i, i)] += 1.0 / d.weights.as_ref().map_or(1.0, |w| w[i]);
    }
    v
}

/// The profiled average-information matrix from the rows (see the module documentation).
fn from_rows(d: &Design, theta: &[f64], reml: bool) -> Vec<f64> {
    let (n, p, k) = (d.n, d.p, theta.len());
    let v = v_matrix(d, theta);
    let vinv = v
        .llt(Side::Lower)
        .expect("V")
        .solve(Mat::<f64>::identity(n, n));
    let x = Mat::from_fn(n, p, |i, j| d.x[j * n + i]);
    let xtvx = x.transpose() * &vinv * &x;
    let pm = &vinv
        - &vinv
            * &x
            * xtvx
                .llt(Side::Lower)
                .expect("X'V⁻¹X")
                .solve(Mat::<f64>::identity(p, p))
            * x.transpose()
            * &vinv;
    let y = Mat::from_fn(n, 1, |i, _| {
        d.y[i] - d.offset.as_ref().map_or(0.0, |o| o[i])
    });
    let py = &pm * &y;
    let r2 = (y.transpose() * &py)[(0, 0)];
    let nu = if reml { (n - p) as f64 } else { n as f64 };
    let sigma2 = r2 / nu;
    // u_i = V₀_i P₀ y, with V₀_i by central differences; then over (θ, σ²) with V = σ² V₀:
    // H_ij = u_i'P₀u_j / σ², H_iσ = (V₀_i P₀ y)'P₀ y / σ⁴... assembled below.
    let h = 1e-3;
    let mut u: Vec<Mat<f64>> = Vec::new();
    for i in 0..k {
        let mut up = theta.to_vec();
        let mut down = theta.to_vec();
        up[i] += h;
        down[i] -= h;
        let vi = (v_matrix(d, &up) - v_matrix(d, &down)) * Scale(1.0 / (2.0 * h));
        u.push(&vi * &py);
    }
    let mut full = vec![0.0; k * k];
    let a: Vec<f64> = u
        .iter()
        .map(|ui| (ui.transpose() * &py)[(0, 0)] / (sigma2 * sigma2))
        .collect();
    let h_ss = r2 / (sigma2 * sigma2 * sigma2);
    for i in 0..k {
        for j in 0..k {
            let aij = (u[i].transpose() * &pm * &u[j])[(0, 0)] / sigma2;
            full[j * k + i] = aij - a[i] * a[j] / h_ss;
        }
    }
    full
}

#[test]
fn average_information_matches_its_definition() {
    let cases = [
        (
            "one vector factor",
            design(21, 80, 2, &[(9, 2)], false, false),
        ),
        (
            "slopes on both crossed factors",
            design(22, 120, 2, &[(14, 2), (7, 2)], false, false),
        ),
        (
            "three crossed, weighted",
            design(23, 110, 3, &[(12, 2), (6, 1), (5, 2)], false, true),
        ),
    ];
    let mut rng = StdRng::seed_from_u64(41);
    for (name, d) in &cases {
        for reml in [false, true] {
            let mut model =
                LinearMixedModel::with_storage(d.spec(), reml, Par::Seq, TrailingChoice::Dense)
                    .expect("model");
            let theta = random_theta(&mut rng, d);
            model.set_theta(&theta).expect("factor");
            let ai = model
                .average_information()
                .expect("information")
                .unwrap_or_else(|| panic!("{name}: not offered"));
            let reference = from_rows(d, &theta, reml);
            let scale = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (e, (a, r)) in ai.iter().zip(&reference).enumerate() {
                assert!(
                    (a - r).abs() <= 1e-8 * scale,
                    "{name} (reml {reml}) entry {e}: {a} against {r} from the rows"
                );
            }
        }
    }
}
