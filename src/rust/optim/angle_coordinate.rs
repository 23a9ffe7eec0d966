//! The angle coordinate of a correlation parameter for gradient-based searches:
//! `ρ = m + r sin z` maps every real `z` into the parameter's interval `[m − r, m + r]`, so a
//! search over `z` keeps no bound for it, and the bound itself is a smooth stationary point
//! (`dρ/dz = r cos z = 0` there).

/// The quasi-Newton search's coordinate for a correlation parameter `ρ ∈ [l, u]` (element `j` of
/// `par`): an angle `z`, with `ρ = m + r sin z` (`m`, `r` the interval's middle and half-width)
/// and `z = z₀ + s y`. The search needs no bound for it, and a bound is a smooth stationary point
/// (`dρ/dz = 0`): an optimum on it is a minimum over `z` that the search approaches as it
/// approaches any other, where a search that keeps the bound crept along it or stepped onto it
/// and stopped (the gradient there is not reliable: the map from `par` to `θ` is reflected at
/// the bound and has an infinite slope at it). `s` makes a unit of `y` the linear coordinate's
/// unit at the start (at most one radian). A start within [`ANGLE_START_MARGIN`] of a bound is
/// moved to that margin: on the bound the search could not leave it.
pub struct AngleCoordinate {
    /// The parameter's position in `par`.
    pub j: usize,
    middle: f64,
    half_width: f64,
    z0: f64,
    unit: f64,
    /// Whether the start was moved off a bound.
    pub moved: bool,
}

/// See [`AngleCoordinate`]: the largest `|sin z₀|` of a start.
const ANGLE_START_MARGIN: f64 = 0.99;

impl AngleCoordinate {
    pub fn new(j: usize, (lower, upper): (f64, f64), start: f64, linear_unit: f64) -> Self {
        let middle = 0.5 * (lower + upper);
        let half_width = 0.5 * (upper - lower);
        let sine = (start - middle) / half_width;
        let clamped = sine.clamp(-ANGLE_START_MARGIN, ANGLE_START_MARGIN);
        let z0 = clamped.asin();
        let unit = (linear_unit / (half_width * z0.cos())).min(1.0);
        Self {
            j,
            middle,
            half_width,
            z0,
            unit,
            moved: clamped != sine,
        }
    }

    /// `ρ` at coordinate `y`.
    pub fn value(&self, y: f64) -> f64 {
        self.middle + self.half_width * (self.z0 + self.unit * y).sin()
    }

    /// `dρ/dy` at `y`.
    pub fn slope(&self, y: f64) -> f64 {
        self.half_width * self.unit * (self.z0 + self.unit * y).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A correlation's angle coordinate starts at the start (or, next to a bound, at the
    /// margin), stays within the bounds for every `y`, moves `ρ` by the linear unit per unit at
    /// the start, and its slope is the derivative of its value.
    #[test]
    fn angle_coordinates_stay_within_bounds_and_differentiate() {
        for (bounds, start, unit) in [
            ((-1.0, 1.0), 0.3, 0.2),
            ((-0.5, 1.0), -0.1, 0.05),
            ((-1.0, 1.0), 0.9999, 0.1),
            ((-1.0, 1.0), -1.0, 0.1),
            ((-1.0, 1.0), 0.0, 3.0),
        ] {
            let a = AngleCoordinate::new(2, bounds, start, unit);
            let half = 0.5 * (bounds.1 - bounds.0);
            let middle = 0.5 * (bounds.1 + bounds.0);
            if a.moved {
                assert!((start - a.value(0.0)).abs() > 0.0);
                assert!((a.value(0.0) - middle).abs() <= ANGLE_START_MARGIN * half + 1e-15);
            } else {
                assert!((a.value(0.0) - start).abs() < 1e-15);
                if unit / half < 1.0 {
                    assert!((a.slope(0.0) - unit).abs() < 1e-12 * unit);
                }
            }
            assert!(a.unit <= 1.0);
            for y in [-40.0, -3.0, -0.7, 0.0, 0.4, 2.5, 17.0] {
                let v = a.value(y);
                assert!(v >= bounds.0 && v <= bounds.1, "{v}");
                let h = 1e-6;
                let fd = (a.value(y + h) - a.value(y - h)) / (2.0 * h);
                assert!((fd - a.slope(y)).abs() < 1e-8, "{fd} {}", a.slope(y));
            }
        }
    }
}
