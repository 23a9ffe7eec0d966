//! Cross-products built from the rows of a model and handed in complete (summed group by group,
//! as an engine's GROUP BY would give them) make the same linear mixed model; complete parts
//! that are not a cross-product are rejected.
use std::collections::BTreeMap;

use mixedrs::blocks::{CrossProductParts, CrossProducts, TrailingLayout};
use mixedrs::linalg::assemble;
use mixedrs::lmm::LinearMixedModel;
use mixedrs::optim::{OptimOptions, Stop};
use mixedrs::spec::ModelSpec;
use mixedrs::terms::ReStructure;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::common::{design, random_theta, Design};

fn designs() -> Vec<(&'static str, Design)> {
    vec![
        // Leading block with q = 2, two scalar trailing factors (A22 pairs), weights, offset.
        (
            "crossed vector + two scalar, weighted",
            design(21, 240, 2, &[(14, 2), (9, 1), (5, 1)], false, true),
        ),
        // Two terms on the leading factor (q = 3 after amalgamation), one trailing factor.
        (
            "amalgamated terms + crossed scalar",
            design(22, 180, 3, &[(10, 2), (7, 1)], true, false),
        ),
        // A vector-valued trailing factor.
        (
            "scalar leading, vector trailing",
            design(23, 200, 2, &[(20, 1), (6, 2)], false, true),
        ),
    ]
}

/// The columns of block `b` of the random effects at observation `i`.
fn block_z(spec: &ModelSpec<'_>, re: &ReStructure, b: usize, i: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for &t in &re.blocks[b].terms {
        let term = &spec.terms[t];
        for c in 0..term.q {
            out.push(term.z[c * spec.n + i]);
        }
    }
    out
}

/// `acc += w a b'` (column-major `len(a) × len(b)`), each product formed as `(w aᵣ) b_c`: another
/// rounding than the row fill's `aᵣ (w b_c)`.
fn add(acc: &mut [f64], w: f64, a: &[f64], b: &[f64]) {
    for (c, &bc) in b.iter().enumerate() {
        for (r, &ar) in a.iter().enumerate() {
            acc[c * a.len() + r] += (w * ar) * bc;
        }
    }
}

/// Every block of `A = [Z F]' W [Z F]` (`F = [X, y − offset]`) summed group by group: one map
/// per block keyed by the group (leading level, node, or pair of nodes), as an engine would
/// compute them with GROUP BY, and laid out as [`CrossProductParts`].
fn group_by_parts(spec: &ModelSpec<'_>, re: &ReStructure) -> CrossProductParts {
    let n = spec.n;
    let p = spec.p;
    let pf = p + 1;
    let layout = TrailingLayout::new(re);
    let q0 = re.blocks[0].q;
    let l0 = re.blocks[0].n_levels;
    let level = |b: usize, i: usize| spec.terms[re.blocks[b].terms[0]].levels[i] as usize;
    let node = |b: usize, i: usize| layout.block_node_base[b] + level(b, i);
    let mut a11: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut af1: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut a21: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
    let mut a22: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut af2: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut pairs: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
    let mut aff = vec![0.0; pf * pf];
    for i in 0..n {
        let w = spec.weight(i);
        let mut f: Vec<f64> = (0..p).map(|c| spec.x[c * n + i]).collect();
        f.push(spec.y_adjusted(i));
        add(&mut aff, w, &f, &f);
        let z0 = block_z(spec, re, 0, i);
        let j = level(0, i);
        add(a11.entry(j).or_insert(vec![0.0; q0 * q0]), w, &z0, &z0);
        add(af1.entry(j).or_insert(vec![0.0; pf * q0]), w, &f, &z0);
        for b in 1..re.blocks.len() {
            let zb = block_z(spec, re, b, i);
            let qb = zb.len();
            let t = node(b, i);
            add(a22.entry(t).or_insert(vec![0.0; qb * qb]), w, &zb, &zb);
            add(af2.entry(t).or_insert(vec![0.0; pf * qb]), w, &f, &zb);
            add(a21.entry((j, t)).or_insert(vec![0.0; qb * q0]), w, &zb, &z0);
            for b1 in 1..b {
                let z1 = block_z(spec, re, b1, i);
                let key = (t, node(b1, i));
                add(
                    pairs.entry(key).or_insert(vec![0.0; qb * z1.len()]),
                    w,
                    &zb,
                    &z1,
                );
            }
        }
    }
    // Lay the groups out in the order of the stored pattern (levels and nodes ascending; every
    // level and node of these designs occurs).
    let mut a21_ptr = vec![0; l0 + 1];
    for &(j, _) in a21.keys() {
        a21_ptr[j + 1] += 1;
    }
    for j in 0..l0 {
        a21_ptr[j + 1] += a21_ptr[j];
    }
    CrossProductParts {
        n,
        p,
        a11: a11.into_values().flatten().collect(),
        a21_ptr,
        a21_node: a21.keys().map(|&(_, t)| t as u32).collect(),
        a21_vals: a21.into_values().flatten().collect(),
        a22_diag: a22.into_values().flatten().collect(),
        a22_pairs: pairs.keys().map(|&(r, c)| (r as u32, c as u32)).collect(),
        a22_pair_vals: pairs.into_values().flatten().collect(),
        af1: af1.into_values().flatten().collect(),
        af2: af2.into_values().flatten().collect(),
        aff,
    }
}

#[test]
fn group_by_sums_and_rows_give_the_same_model() {
    let mut quiet = |_: usize, _: &[f64], _: f64| Stop::Continue;
    for (name, d) in designs() {
        let spec = d.spec();
        let re = ReStructure::new(&spec);
        let parts = group_by_parts(&spec, &re);
        let rows = assemble::from_rows(&spec, &re).expect("cross-products from rows");
        let handed = CrossProducts::from_parts(&re, parts).expect("valid parts");
        // The same pattern; the values agree up to the rounding of sums formed another way.
        assert_eq!(handed.a21_ptr, rows.a21_ptr, "{name}");
        assert_eq!(handed.a21_node, rows.a21_node, "{name}");
        assert_eq!(handed.a22_pairs, rows.a22_pairs, "{name}");
        for (a, b) in [
            (&handed.a11, &rows.a11),
            (&handed.a21_vals, &rows.a21_vals),
            (&handed.a22_diag, &rows.a22_diag),
            (&handed.a22_pair_vals, &rows.a22_pair_vals),
            (&handed.af1, &rows.af1),
            (&handed.af2, &rows.af2),
            (&handed.aff, &rows.aff),
        ] {
            assert_eq!(a.len(), b.len(), "{name}");
            for (x, y) in a.iter().zip(b) {
                // A few hundred terms of size ~10: rounding stays far below 1e-12 relative.
                assert!(
                    (x - y).abs() <= 1e-12 * (1.0 + y.abs()),
                    "{name}: {x} vs {y}"
                );
            }
        }

        let mut model = LinearMixedModel::new(spec.clone(), true, faer::Par::Seq).expect("model");
        // The criterion at the same θ: only the rounding of the sums differs.
        let mut rng = StdRng::seed_from_u64(100);
        let thetas: Vec<Vec<f64>> = (0..3).map(|_| random_theta(&mut rng, &d)).collect();
        let mut at_rows = Vec::new();
        for theta in &thetas {
            model.set_theta(theta).expect("factor");
            at_rows.push(model.objective());
        }
        let from_rows = model
            .fit(None, &OptimOptions::default(), &mut quiet)
            .expect("fit from rows");
        model.cp =
            CrossProducts::from_parts(&model.re, group_by_parts(&spec, &re)).expect("valid parts");
        for (theta, want) in thetas.iter().zip(&at_rows) {
            model.set_theta(theta).expect("factor");
            let got = model.objective();
            assert!(
                (got - want).abs() < 1e-10 * want.abs(),
                "{name}: criterion {got} from the parts, {want} from the rows"
            );
        }
        let from_parts = model
            .fit(None, &OptimOptions::default(), &mut quiet)
            .expect("fit from parts");
        // The two fits may take different optimizer paths from rounding-level differences;
        // both stop within BOBYQA's final radius (1e-7) of the same optimum.
        assert!(
            (from_parts.objective - from_rows.objective).abs() < 1e-8 * from_rows.objective.abs(),
            "{name}: {} vs {}",
            from_parts.objective,
            from_rows.objective
        );
        for (a, b) in from_parts
            .theta
            .iter()
            .chain(&from_parts.beta)
            .zip(from_rows.theta.iter().chain(&from_rows.beta))
        {
            assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "{name}: {a} vs {b}");
        }
        assert!(
            (from_parts.sigma - from_rows.sigma).abs() < 1e-5 * from_rows.sigma,
            "{name}"
        );
    }
}

#[test]
fn parts_taken_apart_and_handed_back_give_the_identical_fit() {
    let mut quiet = |_: usize, _: &[f64], _: f64| Stop::Continue;
    for (name, d) in designs() {
        let mut model = LinearMixedModel::new(d.spec(), false, faer::Par::Seq).expect("model");
        let first = model
            .fit(None, &OptimOptions::default(), &mut quiet)
            .expect("fit");
        let parts = model.cp.clone().into_parts();
        model.cp = CrossProducts::from_parts(&model.re, parts).expect("valid parts");
        let second = model
            .fit(None, &OptimOptions::default(), &mut quiet)
            .expect("fit");
        assert_eq!(
            first.objective.to_bits(),
            second.objective.to_bits(),
            "{name}"
        );
        assert_eq!(first.theta, second.theta, "{name}");
        assert_eq!(first.beta, second.beta, "{name}");
    }
}

#[test]
fn parts_that_are_not_cross_products_are_rejected() {
    let (_, d) = designs().swap_remove(0);
    let spec = d.spec();
    let re = ReStructure::new(&spec);
    let good = group_by_parts(&spec, &re);
    assert!(CrossProducts::from_parts(&re, good.clone()).is_ok());
    let q0 = re.blocks[0].q;
    assert_eq!(q0, 2, "the leading block of this design is vector-valued");
    type Spoil = Box<dyn Fn(&mut CrossProductParts)>;
    // What is spoilt, a piece of the message that must name it, and how.
    let cases: Vec<(&str, &str, Spoil)> = vec![
        ("no observations", "no observations", Box::new(|p| p.n = 0)),
        (
            "short A11",
            "A11 has",
            Box::new(|p| {
                p.a11.pop();
            }),
        ),
        ("long AFF", "AFF has", Box::new(|p| p.aff.push(0.0))),
        (
            "short AF2",
            "AF2 has",
            Box::new(|p| {
                p.af2.pop();
            }),
        ),
        (
            "extra A21 value",
            "A21 has",
            Box::new(|p| p.a21_vals.push(1.0)),
        ),
        (
            "asymmetric A11 block",
            "A11 block is not symmetric",
            Box::new(|p| p.a11[1] += 1.0),
        ),
        (
            "negative A22 diagonal",
            "negative diagonal",
            Box::new(|p| p.a22_diag[0] = -1.0),
        ),
        (
            "asymmetric AFF",
            "AFF is not symmetric",
            Box::new(|p| p.aff[1] *= 1.001),
        ),
        (
            "NaN in AF1",
            "AF1 value 4 is not finite",
            Box::new(|p| p.af1[3] = f64::NAN),
        ),
        (
            "infinite A22 pair value",
            "A22 (pairs) value 1 is not finite",
            Box::new(|p| p.a22_pair_vals[0] = f64::INFINITY),
        ),
        (
            "pointer count",
            "A21 pointers",
            Box::new(|p| {
                p.a21_ptr.pop();
            }),
        ),
        (
            "pointers not from 0",
            "A21 pointers",
            Box::new(|p| p.a21_ptr[0] = 1),
        ),
        (
            "nodes out of order",
            "A21 nodes of leading level 1",
            Box::new(|p| {
                let (a, b) = (p.a21_ptr[0], p.a21_ptr[1]);
                p.a21_node[a..b].reverse();
            }),
        ),
        (
            "node out of range",
            "A21 nodes of leading level 1",
            Box::new(|p| p.a21_node[0] = 1_000),
        ),
        (
            "pair with row < col",
            "not a pair of nodes of different trailing factors",
            Box::new(|p| {
                let (r, c) = p.a22_pairs[0];
                p.a22_pairs[0] = (c, r);
            }),
        ),
        (
            // The last pair's row is the last node, of the last factor; so is the node before.
            "pair within one factor",
            "not a pair of nodes of different trailing factors",
            Box::new(|p| {
                let last = p.a22_pairs.len() - 1;
                let (r, _) = p.a22_pairs[last];
                p.a22_pairs[last] = (r, r - 1);
            }),
        ),
        (
            "pairs out of order",
            "distinct and in ascending order",
            Box::new(|p| p.a22_pairs.swap(0, 1)),
        ),
    ];
    for (what, message, spoil) in cases {
        let mut parts = good.clone();
        spoil(&mut parts);
        match CrossProducts::from_parts(&re, parts) {
            Ok(_) => panic!("{what} should be rejected"),
            Err(e) => assert!(
                e.to_string().contains(message),
                "{what}: the error says '{e}'"
            ),
        }
    }
}
