//! A model built from grouped sums (per level of each grouping factor, per co-occurring level
//! pair of two factors, and totals, as an engine's GROUP BY gives them) is the model of its rows:
//! the same criterion at any θ and the same fit; malformed sums are rejected with a message that
//! names the fault; what needs the rows is an error, not a panic.
use std::collections::BTreeMap;

use mixedrs::inference::bootstrap;
use mixedrs::linalg::grouped_sums::{
    model_from_sums, FactorSums, GroupedSums, PairSums, TermShape,
};
use mixedrs::lmm::LinearMixedModel;
use mixedrs::model::covariance::Covariance;
use mixedrs::optim::{OptimOptions, Stop};
use mixedrs::spec::ModelSpec;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::common::{design, random_theta, Design};
use mixedrs::inference::parallel::Watched;

/// One pair's owned sums: factors `i < j`, level codes, blocks.
type OwnedPair = (usize, usize, Vec<i32>, Vec<i32>, Vec<f64>);
/// Per pair of factors, the blocks of each co-occurring level pair.
type PairMap = BTreeMap<(usize, usize), BTreeMap<(usize, usize), Vec<f64>>>;

/// Owned grouped sums of a design.
struct OwnedSums {
    n: f64,
    sum_log_w: f64,
    p: usize,
    ff: Vec<f64>,
    /// (levels, q, zz, fz) per factor.
    factors: Vec<(usize, usize, Vec<f64>, Vec<f64>)>,
    /// (i, j, li, lj, zz) per pair.
    pairs: Vec<OwnedPair>,
}

impl OwnedSums {
    fn view(&self) -> GroupedSums<'_> {
        GroupedSums {
            n: self.n,
            sum_log_w: self.sum_log_w,
            p: self.p,
            ff: &self.ff,
            factors: self
                .factors
                .iter()
                .map(|(l, q, zz, fz)| FactorSums {
                    n_levels: *l,
                    q: *q,
                    zz,
                    fz,
                })
                .collect(),
            pairs: self
                .pairs
                .iter()
                .map(|(i, j, li, lj, zz)| PairSums {
                    i: *i,
                    j: *j,
                    li,
                    lj,
                    zz,
                })
                .collect(),
        }
    }
}

fn add(acc: &mut [f64], w: f64, a: &[f64], b: &[f64]) {
    for (c, &bc) in b.iter().enumerate() {
        for (r, &ar) in a.iter().enumerate() {
            acc[c * a.len() + r] += w * ar * bc;
        }
    }
}

/// The columns of factor `f` (its terms' columns in term order) at observation `i`.
fn factor_z(spec: &ModelSpec<'_>, f: usize, i: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for t in spec.terms.iter().filter(|t| t.factor_id == f) {
        for c in 0..t.q {
            out.push(t.z[c * spec.n + i]);
        }
    }
    out
}

/// The grouped sums of the design's rows, summed observation by observation.
fn grouped_sums(d: &Design) -> OwnedSums {
    let spec = d.spec();
    let (n, p) = (spec.n, spec.p);
    let pf = p + 1;
    let k = 1 + spec.terms.iter().map(|t| t.factor_id).max().unwrap_or(0);
    let level = |f: usize, i: usize| {
        let t = spec
            .terms
            .iter()
            .find(|t| t.factor_id == f)
            .expect("factor");
        (t.levels[i] as usize, t.n_levels)
    };
    let qs: Vec<usize> = (0..k)
        .map(|f| {
            spec.terms
                .iter()
                .filter(|t| t.factor_id == f)
                .map(|t| t.q)
                .sum()
        })
        .collect();
    let mut factors: Vec<(usize, usize, Vec<f64>, Vec<f64>)> = (0..k)
        .map(|f| {
            let l = level(f, 0).1;
            (
                l,
                qs[f],
                vec![0.0; l * qs[f] * qs[f]],
                vec![0.0; l * pf * qs[f]],
            )
        })
        .collect();
    let mut pairs: PairMap = BTreeMap::new();
    let mut ff = vec![0.0; pf * pf];
    let mut sum_log_w = 0.0;
    for i in 0..n {
        let w = spec.weight(i);
        sum_log_w += w.ln() * f64::from(u8::from(spec.weights.is_some()));
        let mut fv: Vec<f64> = (0..p).map(|c| spec.x[c * n + i]).collect();
        fv.push(spec.y_adjusted(i));
        add(&mut ff, w, &fv, &fv);
        let zs: Vec<Vec<f64>> = (0..k).map(|f| factor_z(&spec, f, i)).collect();
        for f in 0..k {
            let (l, _) = level(f, i);
            let q = qs[f];
            add(
                &mut factors[f].2[l * q * q..(l + 1) * q * q],
                w,
                &zs[f],
                &zs[f],
            );
            add(
                &mut factors[f].3[l * pf * q..(l + 1) * pf * q],
                w,
                &fv,
                &zs[f],
            );
            for g in f + 1..k {
                let key = (level(f, i).0, level(g, i).0);
                let entry = pairs
                    .entry((f, g))
                    .or_default()
                    .entry(key)
                    .or_insert_with(|| vec![0.0; qs[f] * qs[g]]);
                add(entry, w, &zs[f], &zs[g]);
            }
        }
    }
    // Entries in a scrambled order: the order of a GROUP BY result is not the engine's.
    let pairs = pairs
        .into_iter()
        .map(|((f, g), entries)| {
            let mut e: Vec<_> = entries.into_iter().collect();
            e.reverse();
            (
                f,
                g,
                e.iter().map(|((a, _), _)| *a as i32 + 1).collect(),
                e.iter().map(|((_, b), _)| *b as i32 + 1).collect(),
                e.into_iter().flat_map(|(_, v)| v).collect(),
            )
        })
        .collect();
    OwnedSums {
        n: n as f64,
        sum_log_w,
        p,
        ff,
        factors,
        pairs,
    }
}

fn shapes(d: &Design) -> Vec<TermShape> {
    d.terms
        .iter()
        .map(|(_, l, _, q, f)| TermShape {
            n_levels: *l,
            q: *q,
            factor: *f,
        })
        .collect()
}

fn unstructured(d: &Design) -> Vec<Covariance> {
    d.terms
        .iter()
        .map(|t| Covariance::unstructured(t.3))
        .collect()
}

fn designs() -> Vec<(&'static str, Design)> {
    vec![
        (
            "crossed vector + two scalar, weighted",
            design(31, 260, 2, &[(14, 2), (9, 1), (5, 1)], false, true),
        ),
        (
            "amalgamated terms + crossed scalar",
            design(32, 180, 3, &[(10, 2), (7, 1)], true, false),
        ),
        (
            // the factor with most levels is not the first: the leading block is factor 2
            "scalar first, larger vector second",
            design(33, 200, 2, &[(6, 1), (20, 2)], false, true),
        ),
    ]
}

#[test]
fn a_model_from_grouped_sums_is_the_model_of_its_rows() {
    let mut quiet = |_: usize, _: &[f64], _: f64| Stop::Continue;
    for (name, d) in designs() {
        let sums = grouped_sums(&d);
        let spec = model_from_sums(&sums.view(), &shapes(&d), unstructured(&d)).expect(name);
        assert!(!spec.has_rows());
        for reml in [true, false] {
            let mut rows = LinearMixedModel::new(d.spec(), reml, faer::Par::Seq).expect(name);
            let mut agg = LinearMixedModel::new(spec.clone(), reml, faer::Par::Seq).expect(name);
            let mut rng = StdRng::seed_from_u64(7);
            for _ in 0..3 {
                let theta = random_theta(&mut rng, &d);
                let (a, b) = (rows.objective_at(&theta), agg.objective_at(&theta));
                // Sums of a few hundred terms in another order: rounding far below 1e-10.
                assert!((a - b).abs() < 1e-10 * a.abs(), "{name}: {a} vs {b}");
            }
            let opts = OptimOptions::default();
            let fr = rows.fit(None, &opts, &mut quiet).expect(name);
            let fa = agg.fit(None, &opts, &mut quiet).expect(name);
            assert!(
                fa.fitted.is_empty(),
                "{name}: no fitted values without rows"
            );
            assert!(
                (fa.objective - fr.objective).abs() < 1e-9 * fr.objective.abs(),
                "{name}"
            );
            // Both stop within BOBYQA's final radius of the same optimum.
            for (a, b) in fa
                .theta
                .iter()
                .chain(&fa.beta)
                .zip(fr.theta.iter().chain(&fr.beta))
            {
                assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "{name}: {a} vs {b}");
            }
            // At the same θ every estimate agrees to rounding, wrss included (from r² − ‖u‖²).
            let er = rows.estimates(&fr.theta).expect(name);
            let ea = agg.estimates(&fr.theta).expect(name);
            for (a, b) in [
                (ea.sigma, er.sigma),
                (ea.wrss, er.wrss),
                (ea.ussq, er.ussq),
                (ea.ldl2, er.ldl2),
                (ea.ldrx2, er.ldrx2),
                (ea.reml_crit, er.reml_crit),
                (ea.deviance_ml, er.deviance_ml),
            ] {
                assert!((a - b).abs() < 1e-9 * (1.0 + b.abs()), "{name}: {a} vs {b}");
            }
            for (a, b) in ea.beta.iter().chain(&ea.u).zip(er.beta.iter().chain(&er.u)) {
                assert!((a - b).abs() < 1e-9 * (1.0 + b.abs()), "{name}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn what_needs_rows_is_an_error_for_a_model_from_sums() {
    let (_, d) = designs().swap_remove(0);
    let sums = grouped_sums(&d);
    let spec = model_from_sums(&sums.view(), &shapes(&d), unstructured(&d)).expect("model");
    let y = vec![0.0; d.n];
    let mut model = LinearMixedModel::new(spec.clone(), true, faer::Par::Seq).expect("model");
    let err = model.set_response(&y).unwrap_err().to_string();
    assert!(err.contains("fitted from aggregates"), "{err}");
    let theta: Vec<f64> = vec![1.0; model.re.n_theta()];
    let err = bootstrap::bootstrap_lmm(
        &spec,
        true,
        &y,
        &theta,
        &OptimOptions::default(),
        1,
        &Watched::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("needs the rows"), "{err}");
}

#[test]
fn malformed_sums_are_rejected_by_name() {
    let (_, d) = designs().swap_remove(0);
    let good = grouped_sums(&d);
    assert!(model_from_sums(&good.view(), &shapes(&d), unstructured(&d)).is_ok());
    type Spoil = Box<dyn Fn(&mut OwnedSums)>;
    let cases: Vec<(&str, &str, Spoil)> = vec![
        (
            "n not whole",
            "positive whole number",
            Box::new(|s| s.n = 10.5),
        ),
        ("n zero", "positive whole number", Box::new(|s| s.n = 0.0)),
        ("log w", "sum_log_w", Box::new(|s| s.sum_log_w = f64::NAN)),
        (
            "ff size",
            "'ff' has",
            Box::new(|s| {
                s.ff.pop();
            }),
        ),
        (
            "ff NaN",
            "AFF value 1 is not finite",
            Box::new(|s| s.ff[0] = f64::NAN),
        ),
        (
            "zz size",
            "'zz' of grouping factor 2",
            Box::new(|s| {
                s.factors[1].2.pop();
            }),
        ),
        (
            "fz size",
            "'fz' of grouping factor 1",
            Box::new(|s| s.factors[0].3.push(0.0)),
        ),
        (
            "levels",
            "grouping factor 3 have 6 levels",
            Box::new(|s| s.factors[2].0 = 6),
        ),
        (
            "factor count",
            "not among the 2 factors of the sums",
            Box::new(|s| {
                s.factors.pop();
            }),
        ),
        (
            "code range",
            "level code 99",
            Box::new(|s| s.pairs[0].2[0] = 99),
        ),
        (
            "code zero",
            "level code 0",
            Box::new(|s| s.pairs[1].3[0] = 0),
        ),
        (
            "pair missing",
            "lack the pair of grouping factors (2, 3)",
            Box::new(|s| {
                s.pairs.pop();
            }),
        ),
        (
            "pair twice",
            "twice",
            Box::new(|s| {
                let p = s.pairs[0].clone();
                s.pairs.push(p);
            }),
        ),
        (
            "pair order",
            "is not two factors i < j",
            Box::new(|s| {
                let p = &mut s.pairs[0];
                std::mem::swap(&mut p.0, &mut p.1);
            }),
        ),
        (
            "pair lengths",
            "level codes",
            Box::new(|s| {
                s.pairs[0].3.pop();
            }),
        ),
        (
            "asymmetric zz",
            "A11 block is not symmetric",
            Box::new(|s| s.factors[0].2[1] += 1.0),
        ),
        ("p", "'ff' has", Box::new(|s| s.p += 1)),
    ];
    for (what, message, spoil) in cases {
        let mut s = grouped_sums(&d);
        spoil(&mut s);
        match model_from_sums(&s.view(), &shapes(&d), unstructured(&d)) {
            Ok(_) => panic!("{what} should be rejected"),
            Err(e) => assert!(
                e.to_string().contains(message),
                "{what}: the error says '{e}'"
            ),
        }
    }
    // A level pair given twice is summed, as the rows it stands for would be.
    let mut split = grouped_sums(&d);
    let pair = &mut split.pairs[0];
    let q = pair.4.len() / pair.2.len();
    let (li, lj) = (pair.2[0], pair.3[0]);
    let half: Vec<f64> = pair.4[..q].iter().map(|v| v / 2.0).collect();
    pair.4[..q].copy_from_slice(&half);
    pair.2.push(li);
    pair.3.push(lj);
    pair.4.extend_from_slice(&half);
    let mut a = LinearMixedModel::new(
        model_from_sums(&split.view(), &shapes(&d), unstructured(&d)).expect("summed"),
        true,
        faer::Par::Seq,
    )
    .expect("model");
    let mut b = LinearMixedModel::new(
        model_from_sums(&good.view(), &shapes(&d), unstructured(&d)).expect("model"),
        true,
        faer::Par::Seq,
    )
    .expect("model");
    let theta = vec![0.8; a.re.n_theta()];
    let (x, y) = (a.objective_at(&theta), b.objective_at(&theta));
    assert!((x - y).abs() < 1e-12 * y.abs(), "{x} vs {y}");
}
