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
