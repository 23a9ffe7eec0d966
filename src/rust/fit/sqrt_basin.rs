//! Which mode PIRLS finds with the square-root link.
//!
//! With `μ = η²` an observation's likelihood depends on η only through η², so it is symmetric
//! about η = 0; glmmTMB (TMB) lets η take either sign, and so does the engine. An observation
//! with a positive count has likelihood 0 at η = 0 (μ = 0): its deviance is an infinite barrier
//! there. These barriers cut the space of the random effects (and, in stage 1, of the fixed
//! effects) into convex regions, one per pattern of signs of those observations' η, each with a
//! mode of its own. A Newton step is judged only at its end, so it can jump a barrier into
//! another region: the mode PIRLS returned then depended on its path and on its warm start,
//! and so did the Laplace criterion, and the optimizer ended at optima worse than glmmTMB's.
//! (Counts of 0 have no barrier: their likelihood is largest at η = 0, and their η may take
//! either sign; a group of zeros has its mode between 0 and its fixed part.)
//!
//! PIRLS therefore stays in one region, a [`SqrtBasin`]: for the random effects alone (stage
//! 2) the one that holds `u = 0`, where each positive count's η has the sign of its fixed part
//! `offset + Xβ`; for (β, u) together (stage 1) the one its first step from the starting linear
//! predictor lands in. A step that leaves it counts as invalid (as a mean outside the family's
//! range does) and is halved back. The region of `u = 0` is a function of (θ, β) alone, so the
//! criterion does not depend on the path. For a model whose fixed part is constant within the
//! groups of its one random-effects term it holds the global mode: mirroring a group's η about 0
//! keeps its likelihood, and of the two mirror images the one on the side of the fixed part has
//! the smaller penalty. (glmmTMB's inner Newton search starts from its last modes and can end in
//! another region, at a local mode with a lower Laplace likelihood: Salamanders `nbinom2(link =
//! "sqrt")`, site VF-9.)
//!
//! Where the fixed part varies within a group (a covariate, or an offset that crosses 0 such as
//! `offset(log(exposure))` on the square-root scale), the region of `u = 0` need not hold the
//! global mode: glmer, whose steps cross barriers, ended up to 237 log-likelihood units above
//! us in random models. PIRLS therefore leaves that region where one coordinate of `u` alone,
//! the others held, has a lower penalized deviance across a barrier
//! ([`BarrierLines::escape`]): along such a line the barriers cut it into intervals on which
//! the deviance is convex for lme4's Poisson (each term is convex in η on either side of 0), so
//! the line's global minimum is found interval by interval, nearest first, skipping those whose
//! penalty (and a lower bound of the deviance terms) already exceeds the best. PIRLS then finds
//! the mode of the new region, and the sweep repeats until no coordinate moves. The penalized
//! deviance falls with every move, so the mode is never worse than the one of `u = 0`; it
//! depends on (θ, β) alone; and for one random-effects term of one column, whose groups'
//! coordinates are independent, it is the global mode. lme4's Poisson with the square-root link
//! has the constant working weight 4, so its Laplace criterion there is the lowest of all the
//! modes'. For glmmTMB's count families the bounds assume what holds for nbinom2 and zero
//! inflation, a row likelihood that rises then falls in μ with its peak at `μ = y` (nbinom1's
//! peak lies near it); a bound that does not hold can only miss a move.
use crate::error::{MixedError, Result};

/// The region of the square-root link's penalized deviance that PIRLS stays in: the signs of
/// the linear predictor at the observations with a positive count.
#[derive(Debug, Clone)]
pub(super) struct SqrtBasin {
    /// The observations with a positive count (those whose deviance has a barrier at η = 0).
    rows: Vec<usize>,
    /// Whether each one's η is positive in the region (parallel to `rows`); `None` until set.
    positive: Option<Vec<bool>>,
}

impl SqrtBasin {
    /// The basin of the response `y` (no region set yet).
    pub(super) fn new(y: &[f64]) -> Self {
        Self {
            rows: (0..y.len()).filter(|&i| y[i] > 0.0).collect(),
            positive: None,
        }
    }

    /// Forgets the region (any signs pass [`Self::contains`] until the next [`Self::set_from`]).
    pub(super) fn clear(&mut self) {
        self.positive = None;
    }

    /// Makes the region the one of the linear predictor `eta` (the signs of its values at the
    /// positive counts); an error naming the first such observation where `eta` is 0 (or not a
    /// number): it lies on a barrier, in no region.
    pub(super) fn set_from(&mut self, eta: &[f64]) -> Result<()> {
        if let Some(&i) = self
            .rows
            .iter()
            .find(|&&i| !(eta[i] != 0.0 && eta[i].is_finite()))
        {
            self.positive = None;
            return Err(MixedError::Pirls(format!(
                "with the square-root link the linear predictor is 0 (the mean is 0) at \
                 observation {}, whose count is positive: no mode can be found there",
                i + 1
            )));
        }
        self.positive = Some(self.rows.iter().map(|&i| eta[i] > 0.0).collect());
        Ok(())
    }

    /// Whether `eta` lies in the region: at every positive count its sign is the region's, and
    /// it is not 0.
    pub(super) fn contains(&self, eta: &[f64]) -> bool {
        match &self.positive {
            None => true,
            Some(positive) => {
                self.rows
                    .iter()
                    .zip(positive)
                    .all(|(&i, &pos)| if pos { eta[i] > 0.0 } else { eta[i] < 0.0 })
            }
        }
    }
}

/// The rows of a model's random effects, grouped as each coordinate of `u` reaches them, for
/// moves of one coordinate at a time across barriers ([`BarrierLines::escape`]); with the
/// family's deviance terms (least at `μ = y`, falling then rising in μ).
#[derive(Debug, Clone)]
pub(super) struct BarrierLines {
    blocks: Vec<BlockRows>,
}

/// One block of random effects: its columns, the rows of each level, and each row's `q`
/// values of Z (row-major).
#[derive(Debug, Clone)]
struct BlockRows {
    q: usize,
    rows: Vec<Vec<usize>>,
    z: Vec<f64>,
}

/// One row's deviance term `d`, `∂d/∂η` and `∂²d/∂η²` at η (`None` where η or μ is invalid),
/// and its deviance term at a mean μ (for lower bounds).
pub(super) trait RowDeviance {
    fn jet(&self, i: usize, eta: f64) -> Option<(f64, f64, f64)>;
    fn at_mean(&self, i: usize, mu: f64) -> f64;
}

/// Newton iterations of the search within one interval (each halving the bracket at worst).
const INTERVAL_ITERATIONS: usize = 200;

/// A move across a barrier is taken only where it lowers the penalized deviance by more than
/// this (relative): within the home interval the modes are already at their minimum.
const ESCAPE_GAIN: f64 = 1e-10;

/// A line through the random effects: `η(t) = base + slope t` at `rows` (`base` and `slope`
/// parallel to `rows`), the penalty `(center + t)²`.
struct Line<'l> {
    rows: &'l [usize],
    base: &'l [f64],
    slope: &'l [f64],
    center: f64,
}

/// One level's moves `(column, step)` and its rows' linear predictor after them.
type LevelMoves = (Vec<(usize, f64)>, Vec<f64>);

/// A point of a line with its penalized deviance and slope: `(t, G, G′)`.
type LinePoint = (f64, f64, f64);

/// Groups below this many rows in all are swept on one thread.
const PARALLEL_SWEEP_ROWS: usize = 20_000;

impl BarrierLines {
    /// The blocks' rows from the model's terms (`z` of each term `n × q` column-major,
    /// `levels` 0-based) and each term's block and column offset.
    pub(super) fn new(spec: &crate::spec::ModelSpec<'_>, re: &crate::terms::ReStructure) -> Self {
        let n = spec.n;
        let mut blocks: Vec<BlockRows> = re
            .blocks
            .iter()
            .map(|b| BlockRows {
                q: b.q,
                rows: vec![Vec::new(); b.n_levels],
                z: vec![0.0; n * b.q],
            })
            .collect();
        for (t, term) in spec.terms.iter().enumerate() {
            let (blk, off) = re.term_block[t];
            let block = &mut blocks[blk];
            if block.rows.iter().all(Vec::is_empty) {
                for (i, &l) in term.levels.iter().enumerate() {
                    block.rows[l as usize].push(i);
                }
            }
            for k in 0..term.q {
                for i in 0..n {
                    block.z[i * block.q + off + k] = term.z[k * n + i];
                }
            }
        }
        Self { blocks }
    }

    /// One sweep over the coordinates of `u` (one `Vec` per block, `level * q + column`, the
    /// block's `T` in `lambda`, column-major): each coordinate's global minimum of the
    /// penalized deviance along its line, other coordinates held; where it lies across a
    /// barrier of a positive count `y` and is lower by more than [`ESCAPE_GAIN`], the
    /// coordinate moves there (and `eta` with it). Whether any moved.
    ///
    /// The levels of one block reach disjoint rows, so their searches are independent: with
    /// `threads > 1` (and enough rows) they run at once, with the same result.
    pub(super) fn escape(
        &self,
        y: &[f64],
        lambda: &[Vec<f64>],
        eta: &mut [f64],
        u: &mut [Vec<f64>],
        dev: &(impl RowDeviance + Sync),
        threads: usize,
    ) -> bool {
        let mut moved = false;
        for (b, block) in self.blocks.iter().enumerate() {
            let t = &lambda[b];
            let sweep = |level: usize| {
                let rows = &block.rows[level];
                let centers = &u[b][level * block.q..(level + 1) * block.q];
                block.level_moves(rows, t, centers, eta, y, dev)
            };
            let moves: Vec<Option<LevelMoves>> = if threads > 1 && eta.len() >= PARALLEL_SWEEP_ROWS
            {
                use rayon::prelude::*;
                (0..block.rows.len()).into_par_iter().map(sweep).collect()
            } else {
                (0..block.rows.len()).map(sweep).collect()
            };
            for (level, found) in moves.into_iter().enumerate() {
                let Some((steps, level_eta)) = found else {
                    continue;
                };
                for (&i, e) in block.rows[level].iter().zip(level_eta) {
                    eta[i] = e;
                }
                for (c, step) in steps {
                    u[b][level * block.q + c] += step;
                }
                moved = true;
            }
        }
        moved
    }
}

impl BlockRows {
    /// Row `i`'s coefficient of column `c`'s coordinate in η: `Σ_r z_ir T_rc`.
    fn slope(&self, i: usize, c: usize, t: &[f64]) -> f64 {
        let q = self.q;
        (c..q).map(|r| self.z[i * q + r] * t[c * q + r]).sum()
    }

    /// The moves `(column, step)` of one level's coordinates (`centers`, its `u`), one column
    /// after another, each from the linear predictor the ones before it left, with the linear
    /// predictor of its rows after them; `None` if none moves.
    fn level_moves(
        &self,
        rows: &[usize],
        t: &[f64],
        centers: &[f64],
        eta: &[f64],
        y: &[f64],
        dev: &impl RowDeviance,
    ) -> Option<LevelMoves> {
        let mut moves = Vec::new();
        let mut base: Vec<f64> = rows.iter().map(|&i| eta[i]).collect();
        let mut slope = Vec::with_capacity(rows.len());
        for (c, &center) in centers.iter().enumerate() {
            slope.clear();
            slope.extend(rows.iter().map(|&i| self.slope(i, c, t)));
            if slope.iter().all(|&s| s == 0.0) {
                continue;
            }
            let line = Line {
                rows,
                base: &base,
                slope: &slope,
                center,
            };
            if let Some(step) = line.escape_step(y, dev) {
                for (e, &s) in base.iter_mut().zip(&slope) {
                    *e += s * step;
                }
                moves.push((c, step));
            }
        }
        (!moves.is_empty()).then_some((moves, base))
    }
}

impl Line<'_> {
    /// The step to the line's global minimum where that lies in another interval between
    /// barriers than `t = 0` and is lower by more than [`ESCAPE_GAIN`]; `None` otherwise.
    fn escape_step(&self, y: &[f64], dev: &impl RowDeviance) -> Option<f64> {
        // Each barrier with the position (in `rows`) of the row it belongs to.
        let mut barriers: Vec<(f64, usize)> = self
            .rows
            .iter()
            .zip(self.base.iter().zip(self.slope))
            .enumerate()
            .filter(|&(_, (&i, (_, &s)))| y[i] > 0.0 && s != 0.0)
            .map(|(k, (_, (&e, &s)))| (-e / s, k))
            .filter(|b| b.0.is_finite())
            .collect();
        if barriers.is_empty() {
            return None;
        }
        barriers.sort_by(|a, b| a.0.total_cmp(&b.0));
        barriers.dedup_by(|a, b| a.0 == b.0);
        let k = barriers.len();
        // Interval j lies between barriers[j - 1] and barriers[j] (unbounded at the ends).
        let bounds = |j: usize| {
            (
                if j == 0 {
                    f64::NEG_INFINITY
                } else {
                    barriers[j - 1].0
                },
                if j == k { f64::INFINITY } else { barriers[j].0 },
            )
        };
        // The least penalty (center + t)² over an interval.
        let penalty_bound = |(lo, hi): (f64, f64)| {
            let (lo, hi) = (lo + self.center, hi + self.center);
            if lo > 0.0 {
                lo * lo
            } else if hi < 0.0 {
                hi * hi
            } else {
                0.0
            }
        };
        let home = barriers.partition_point(|&b| b.0 < 0.0);
        let (home_value, _, _) = self.evaluate(0.0, dev)?;
        let mut best = (0.0, home_value, home);
        let (mut left, mut right) = (home, home);
        loop {
            let open = |j: usize| penalty_bound(bounds(j)) < best.1;
            let next_left = (left > 0 && open(left - 1)).then(|| left - 1);
            let next_right = (right < k && open(right + 1)).then(|| right + 1);
            let j = match (next_left, next_right) {
                (None, None) => break,
                (Some(l), Some(r)) => {
                    if penalty_bound(bounds(l)) <= penalty_bound(bounds(r)) {
                        left = l;
                        l
                    } else {
                        right = r;
                        r
                    }
                }
                (Some(l), None) => {
                    left = l;
                    l
                }
                (None, Some(r)) => {
                    right = r;
                    r
                }
            };
            let interval = bounds(j);
            // First the two rows whose barriers bound the interval (their means stay near 0
            // in a narrow one, far below a positive count), then all of them.
            let room = best.1 - penalty_bound(interval);
            let ends: f64 = [j.checked_sub(1), (j < k).then_some(j)]
                .into_iter()
                .flatten()
                .map(|b| self.row_bound(barriers[b].1, y, interval, dev))
                .sum();
            if ends >= room || self.deviance_bound(y, interval, room, dev) >= room {
                continue;
            }
            if let Some((t, value)) = self.interval_minimum(interval, best.1, dev) {
                if value < best.1 {
                    best = (t, value, j);
                }
            }
        }
        (best.2 != home && best.1 < home_value - ESCAPE_GAIN * home_value.abs().max(1.0))
            .then_some(best.0)
    }

    /// `(G, G′, G″)` of the penalized deviance along the line at `t` (`None` where a row is
    /// invalid), its rows alone and the penalty of its coordinate.
    fn evaluate(&self, t: f64, dev: &impl RowDeviance) -> Option<(f64, f64, f64)> {
        let c = self.center + t;
        let (mut g, mut g1, mut g2) = (c * c, 2.0 * c, 2.0);
        for ((&i, &e), &s) in self.rows.iter().zip(self.base).zip(self.slope) {
            let (d, d1, d2) = dev.jet(i, e + s * t)?;
            g += d;
            g1 += s * d1;
            g2 += s * s * d2;
        }
        g.is_finite().then_some((g, g1, g2))
    }

    /// The sum over the rows of each deviance term's least value for `t` in `interval`
    /// ([`Self::row_bound`]; the terms fall, then rise, in μ = η², with their least value at
    /// μ = y), summed only until it reaches `cutoff` (the terms are at least 0: deviance
    /// residuals, or `−2aℓ` of a count's probability).
    fn deviance_bound(
        &self,
        y: &[f64],
        interval: (f64, f64),
        cutoff: f64,
        dev: &impl RowDeviance,
    ) -> f64 {
        let mut sum = 0.0;
        for k in 0..self.rows.len() {
            sum += self.row_bound(k, y, interval, dev);
            if sum >= cutoff {
                break;
            }
        }
        sum
    }

    /// The least value of the deviance term of the row at position `k` of `rows` for `t` in
    /// `(lo, hi)`: its value at the response where the means it spans hold it, else at the
    /// nearer end (0 where not a number, e.g. 0 log 0 at a mean of 0).
    fn row_bound(&self, k: usize, y: &[f64], (lo, hi): (f64, f64), dev: &impl RowDeviance) -> f64 {
        let (i, e, s) = (self.rows[k], self.base[k], self.slope[k]);
        let ends = [e + s * lo, e + s * hi];
        let (e1, e2) = (ends[0].min(ends[1]), ends[0].max(ends[1]));
        let (m1, m2) = (e1 * e1, e2 * e2);
        let (mu_lo, mu_hi) = if e1 <= 0.0 && e2 >= 0.0 {
            (0.0, m1.max(m2))
        } else {
            (m1.min(m2), m1.max(m2))
        };
        let d = dev.at_mean(i, y[i].clamp(mu_lo, mu_hi));
        if d.is_nan() {
            0.0
        } else {
            d
        }
    }

    /// From `anchor`, steps of doubling length in direction `dir` (−1 or 1) until `G′` has the
    /// sign of `dir` (the far side of a minimum): that point `(t, G, G′)`, and the last one before
    /// it, on the near side (`None` if the first step got there); `None` where `G` is not
    /// defined on the way.
    fn widen(
        &self,
        anchor: f64,
        dir: f64,
        dev: &impl RowDeviance,
    ) -> Option<(LinePoint, Option<LinePoint>)> {
        let mut inner = None;
        let mut step = 1.0;
        let mut t = anchor + dir * step;
        loop {
            match self.evaluate(t, dev) {
                Some((g, d1, _)) if dir * d1 > 0.0 => return Some(((t, g, d1), inner)),
                Some((g, d1, _)) if step < 1e300 => {
                    inner = Some((t, g, d1));
                    step *= 2.0;
                    t += dir * step;
                }
                _ => return None,
            }
        }
    }

    /// The minimum `(t, G)` in the open interval `(lo, hi)` between two barriers (or beyond
    /// the last): `G′` is −∞ just right of a barrier and +∞ just left of one, and grows past
    /// every bound as `|t|` does; a Newton search kept inside its bracket. `None` if no
    /// finite value is found, or as soon as the tangents of the convex `G` at the two sides of
    /// the bracket show that its minimum is not below `cutoff`.
    fn interval_minimum(
        &self,
        (lo, hi): (f64, f64),
        cutoff: f64,
        dev: &impl RowDeviance,
    ) -> Option<(f64, f64)> {
        let eval = |t: f64| self.evaluate(t, dev);
        // The latest points left and right of the minimum: (t, G, G′).
        let mut left: Option<LinePoint> = None;
        let mut right: Option<LinePoint> = None;
        // A bracket [a, b] with G′(a) < 0 < G′(b), widened into an unbounded side.
        let (mut a, mut b) = (lo, hi);
        if a == f64::NEG_INFINITY {
            let (outer, inner) = self.widen(if b.is_finite() { b } else { 0.0 }, -1.0, dev)?;
            (a, left) = (outer.0, Some(outer));
            if let Some(p) = inner {
                (b, right) = (b.min(p.0), Some(p));
            }
        }
        if b == f64::INFINITY {
            let (outer, inner) = self.widen(if a.is_finite() { a } else { 0.0 }, 1.0, dev)?;
            (b, right) = (outer.0, Some(outer));
            if let Some(p) = inner {
                (a, left) = (a.max(p.0), Some(p));
            }
        }
        let mut x = 0.5 * (a + b);
        let mut best: Option<(f64, f64)> = None;
        for _ in 0..INTERVAL_ITERATIONS {
            let Some((g, d1, d2)) = eval(x) else {
                return best;
            };
            if best.is_none_or(|(_, v)| g < v) {
                best = Some((x, g));
            }
            if d1 > 0.0 {
                b = x;
                right = Some((x, g, d1));
            } else {
                a = x;
                left = Some((x, g, d1));
            }
            if let (Some((xl, gl, dl)), Some((xr, gr, dr))) = (left, right) {
                // Where the two tangents meet, the least value a convex G can take between.
                let t = (gr - gl + dl * xl - dr * xr) / (dl - dr);
                if gl + dl * (t - xl) >= cutoff {
                    return None;
                }
            }
            let newton = x - d1 / d2;
            let next = if d2 > 0.0 && newton > a && newton < b {
                newton
            } else {
                0.5 * (a + b)
            };
            if (next - x).abs() <= 1e-14 * (1.0 + x.abs()) || d1 == 0.0 {
                break;
            }
            x = next;
        }
        best
    }
}

/// `|η|` below which a count of 0 is taken to have its mode at η = 0.
const ZERO_MODE_ETA: f64 = 1e-8;

impl SqrtBasin {
    /// After PIRLS failed: an error naming the first count of 0 whose η is 0 to within
    /// [`ZERO_MODE_ETA`], where its mean is 0, outside the family's range (no barrier keeps a
    /// group of zeros away from η = 0; its mode lies there when its fixed part is 0, e.g. in a
    /// model without an intercept, and PIRLS only creeps towards it). `Ok` otherwise.
    pub(super) fn check_zero_count_mode(&self, y: &[f64], eta: &[f64]) -> Result<()> {
        match (0..y.len()).find(|&i| y[i] == 0.0 && eta[i].abs() < ZERO_MODE_ETA) {
            Some(i) => Err(MixedError::Pirls(format!(
                "with the square-root link the conditional mode of observation {} (a count of \
                 0) lies at the linear predictor 0, where the mean is 0, outside the family's \
                 range: its group's counts are all 0 and its fixed part is 0 (e.g. a model \
                 without an intercept)",
                i + 1
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_is_the_signs_at_positive_counts() {
        let y = [0.0, 3.0, 1.0, 0.0];
        let mut basin = SqrtBasin::new(&y);
        // Not set: anything passes.
        assert!(basin.contains(&[-1.0, -1.0, 1.0, 1.0]));
        basin
            .set_from(&[0.0, 0.5, -0.2, 2.0])
            .expect("no positive count at 0");
        assert!(basin.contains(&[-3.0, 0.1, -4.0, -1.0]));
        assert!(!basin.contains(&[1.0, -0.1, -4.0, 1.0]));
        assert!(!basin.contains(&[1.0, 0.1, 0.0, 1.0]));
        // A positive count at η = 0 lies on a barrier.
        let err = basin.set_from(&[1.0, 0.0, 1.0, 1.0]).unwrap_err();
        assert!(err.to_string().contains("observation 2"), "{err}");
        assert!(basin.contains(&[1.0, -1.0, 1.0, 1.0]));
        basin.set_from(&[1.0, 1.0, 1.0, 1.0]).expect("set");
        basin.clear();
        assert!(basin.contains(&[1.0, -1.0, 1.0, 1.0]));
    }

    /// Poisson deviance terms with the square-root link, `μ = η²`.
    struct PoissonSqrt<'y>(&'y [f64]);

    impl RowDeviance for PoissonSqrt<'_> {
        fn jet(&self, i: usize, eta: f64) -> Option<(f64, f64, f64)> {
            let y = self.0[i];
            let mu = eta * eta;
            if mu <= 0.0 && y > 0.0 {
                return None;
            }
            let d = self.at_mean(i, mu);
            Some((d, 4.0 * eta - 4.0 * y / eta, 4.0 + 4.0 * y / (eta * eta)))
        }

        fn at_mean(&self, i: usize, mu: f64) -> f64 {
            let y = self.0[i];
            if y > 0.0 {
                2.0 * (y * (y / mu).ln() - (y - mu))
            } else {
                2.0 * mu
            }
        }
    }

    #[test]
    fn a_line_moves_to_its_global_minimum_across_barriers() {
        // Rows whose fixed parts straddle 0 with large counts: from t = 0 (between the
        // barriers at -0.3/1.0 and 0.2/1.0) the line's global minimum lies elsewhere.
        let y = [4.0, 5.0, 0.0, 3.0, 6.0];
        let base = [0.3, -0.2, 0.1, 0.25, -0.15];
        let slope = [1.0, 1.0, 1.0, 1.0, 1.0];
        let rows = [0, 1, 2, 3, 4];
        let dev = PoissonSqrt(&y);
        let line = Line {
            rows: &rows,
            base: &base,
            slope: &slope,
            center: 0.0,
        };
        let value = |t: f64| line.evaluate(t, &dev).map_or(f64::INFINITY, |v| v.0);
        let step = line.escape_step(&y, &dev).expect("a move");
        // A fine grid finds nothing lower.
        let grid_min = (0..=200_000)
            .map(|k| -10.0 + 20.0 * k as f64 / 200_000.0)
            .map(value)
            .fold(f64::INFINITY, f64::min);
        assert!(
            value(step) <= grid_min + 1e-9,
            "{} vs {grid_min}",
            value(step)
        );
        assert!(value(step) < value(0.0));
        // From the global minimum there is no move.
        let moved: Vec<f64> = base.iter().map(|b| b + step).collect();
        let there = Line {
            rows: &rows,
            base: &moved,
            slope: &slope,
            center: step,
        };
        assert!(there.escape_step(&y, &dev).is_none());
    }

    #[test]
    fn a_count_of_zero_with_its_mode_at_zero_is_named() {
        let y = [0.0, 3.0, 0.0];
        let basin = SqrtBasin::new(&y);
        assert!(basin.check_zero_count_mode(&y, &[0.5, 1.0, -0.2]).is_ok());
        // A positive count near 0 is not such a mode (its barrier keeps it away).
        assert!(basin.check_zero_count_mode(&y, &[0.5, 1e-12, -0.2]).is_ok());
        let err = basin
            .check_zero_count_mode(&y, &[0.5, 1.0, 1e-12])
            .unwrap_err();
        assert!(err.to_string().contains("observation 3"), "{err}");
    }
}
