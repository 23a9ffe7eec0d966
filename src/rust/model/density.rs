//! Response distributions with a dispersion parameter, in glmmTMB's parameterisation: the
//! log-density `ℓ(y; μ, φ)` of one observation and its first two derivatives in the mean `μ`.
//!
//! | family        | distribution of `y`                          | `Var(y)`                     |
//! |---------------|----------------------------------------------|------------------------------|
//! | Poisson       | Poisson(μ)                                   | μ                            |
//! | nbinom2       | negative binomial, size `φ` (glmer.nb's θ)  | μ + μ²/φ                     |
//! | nbinom1       | negative binomial, size `μ/φ`                | μ(1 + φ)                     |
//! | beta          | Beta(μφ, (1 − μ)φ)                           | μ(1 − μ)/(1 + φ)             |
//! | beta-binomial | successes of `n` trials, p ~ Beta(μφ, (1−μ)φ) | nμ(1−μ)(φ + n)/(φ + 1)       |
//! | gaussian      | N(μ, φ) (φ the variance)                     | φ                            |
//! | Gamma         | shape `φ`, scale `μ/φ`                       | μ²/φ                         |
//!
//! The derivatives in `μ` are exact (digamma and trigamma where the density has gamma functions
//! of μ), so that the caller's `−∂²ℓ/∂η²` is the observed information the Laplace approximation
//! of glmmTMB (TMB's automatic Hessian) uses.
use crate::error::{invalid, Result};
use statrs::function::gamma::ln_gamma;
use std::f64::consts::PI;

/// A distribution of [`self`](crate::model::density) (module docs give each one's law).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Density {
    /// Poisson counts (no dispersion).
    Poisson,
    /// Negative binomial with variance `μ + μ²/φ`.
    NegBinomial2,
    /// Negative binomial with variance `μ(1 + φ)`.
    NegBinomial1,
    /// Beta proportions.
    Beta,
    /// Beta-binomial successes out of `n` trials.
    BetaBinomial,
    /// Gaussian with variance `φ`.
    Gaussian,
    /// Gamma with shape `φ`.
    Gamma,
}

/// The log-density and its first two derivatives in `μ` at one observation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DensityDerivatives {
    /// `ℓ(y; μ, φ)`.
    pub value: f64,
    /// `∂ℓ/∂μ`.
    pub d1: f64,
    /// `∂²ℓ/∂μ²`.
    pub d2: f64,
}

/// The value of trigamma and tetragamma where the recurrence and series do not apply: 0 at
/// `+∞`, NaN outside `x > 0`.
fn polygamma_edge(x: f64) -> Option<f64> {
    if x == f64::INFINITY {
        Some(0.0)
    } else if x.is_nan() || x <= 0.0 {
        Some(f64::NAN)
    } else {
        None
    }
}

/// The trigamma function `ψ′(x)` for `x > 0`: the recurrence `ψ′(x) = ψ′(x + 1) + 1/x²` up to
/// `x ≥ 10`, then the asymptotic series to `x⁻¹⁵` (truncation error below 1e-16 there). statrs has
/// digamma but not trigamma, which the observed information of nbinom1, beta and beta-binomial
/// needs.
pub fn trigamma(mut x: f64) -> f64 {
    if let Some(v) = polygamma_edge(x) {
        return v;
    }
    let mut acc = 0.0;
    while x < 10.0 {
        acc += 1.0 / (x * x);
        x += 1.0;
    }
    let z = 1.0 / (x * x);
    // 1/x + 1/(2x²) + Σ B₂ₖ / x^(2k+1) with B₂ = 1/6, B₄ = −1/30, B₆ = 1/42, B₈ = −1/30,
    // B₁₀ = 5/66, B₁₂ = −691/2730, B₁₄ = 7/6.
    let series = 1.0 / 6.0
        + z * (-1.0 / 30.0
            + z * (1.0 / 42.0
                + z * (-1.0 / 30.0 + z * (5.0 / 66.0 + z * (-691.0 / 2730.0 + z * 7.0 / 6.0)))));
    acc + 1.0 / x + 0.5 * z + series * z / x
}

/// The digamma and trigamma functions `(ψ(x), ψ′(x))` for `x > 0` together, sharing one
/// recurrence (`ψ(x) = ψ(x + 1) − 1/x`, `ψ′(x) = ψ′(x + 1) + 1/x²`) up to `x ≥ 10` and the
/// asymptotic series there (to `x⁻¹⁴` and `x⁻¹⁵`: truncation errors below 1e-16). Hand-rolled
/// because the observed information of nbinom1, beta and beta-binomial needs both at the same
/// arguments for every observation in every PIRLS iteration: statrs's `digamma` runs its own
/// recurrence to 12 and has no trigamma, so separate calls cost twice the divisions.
pub fn digamma_trigamma(mut x: f64) -> (f64, f64) {
    if x == f64::INFINITY {
        return (f64::INFINITY, 0.0);
    }
    if x.is_nan() || x <= 0.0 {
        return (f64::NAN, f64::NAN);
    }
    let (mut psi, mut tri) = (0.0, 0.0);
    while x < 10.0 {
        let inv = 1.0 / x;
        psi -= inv;
        tri += inv * inv;
        x += 1.0;
    }
    let inv = 1.0 / x;
    let z = inv * inv;
    // ψ: log x − 1/(2x) − Σ B₂ₖ/(2k x^2k); ψ′: 1/x + 1/(2x²) + Σ B₂ₖ/x^(2k+1).
    let psi_series = z
        * (1.0 / 12.0
            - z * (1.0 / 120.0
                - z * (1.0 / 252.0
                    - z * (1.0 / 240.0 - z * (1.0 / 132.0 - z * (691.0 / 32760.0 - z / 12.0))))));
    let tri_series = 1.0 / 6.0
        + z * (-1.0 / 30.0
            + z * (1.0 / 42.0
                + z * (-1.0 / 30.0 + z * (5.0 / 66.0 + z * (-691.0 / 2730.0 + z * 7.0 / 6.0)))));
    (
        psi + x.ln() - 0.5 * inv - psi_series,
        tri + inv + 0.5 * z + tri_series * z * inv,
    )
}

/// Largest whole `y` for which [`digamma_trigamma_difference`] sums the differences term by
/// term: up to here that is cheaper than the two series it replaces.
const DIRECT_SUM_MAX: f64 = 24.0;

/// From this argument on, [`ln_gamma_ratio`] and [`digamma_trigamma_difference`] take the
/// asymptotic (Stirling) series of the difference itself, whose truncation error there is below
/// 1e-30, instead of subtracting two large values.
const STIRLING_DIFFERENCE_FROM: f64 = 1e3;

/// `ln Γ(s + y) − ln Γ(s)` for `s > 0`, `y ≥ 0`. Hand-rolled because the difference of two
/// `ln_gamma` calls loses its digits when `s` is large: a negative binomial near its Poisson
/// limit (nbinom2 with θ = 1e9, nbinom1 with `μ/φ` = 1e8) or a beta-binomial near its binomial
/// limit subtracts values near `s log s` ≈ 2e10 for a difference near `y log s`, an error of
/// ~1e-6 per observation, which made the deviance noisy along those ridges (PIRLS's step
/// halving failed on noise, difference quotients in the dispersion went wrong). For large `s`
/// the Stirling series of the difference, `(s − ½) log1p(y/s) + y log(s + y) − y + c(s + y) −
/// c(s)` with `c(x) = 1/(12x) − 1/(360x³) + 1/(1260x⁵) − 1/(1680x⁷)`, has no cancellation.
pub fn ln_gamma_ratio(y: f64, s: f64) -> f64 {
    if y == 0.0 {
        return 0.0;
    }
    if !(y.is_finite() && s.is_finite()) || s < STIRLING_DIFFERENCE_FROM {
        return ln_gamma(s + y) - ln_gamma(s);
    }
    let x = s + y;
    let c = |x: f64| {
        let z = 1.0 / (x * x);
        (1.0 / 12.0 - z * (1.0 / 360.0 - z * (1.0 / 1260.0 - z / 1680.0))) / x
    };
    (s - 0.5) * (y / s).ln_1p() + y * x.ln() - y + (c(x) - c(s))
}

/// `(ψ(s + y) − ψ(s), ψ′(s + y) − ψ′(s))` for `s > 0`, `y ≥ 0`, without the cancellation of
/// the two differences for large `s` (see [`ln_gamma_ratio`]): there from the series
/// `ψ(x) = log x − 1/(2x) − 1/(12x²) + 1/(120x⁴) − 1/(252x⁶)` and
/// `ψ′(x) = 1/x + 1/(2x²) + 1/(6x³) − 1/(30x⁵) + 1/(42x⁷)`, their leading differences in closed
/// form (`log1p(y/s)`, `−y/(xs)`, …).
pub fn digamma_trigamma_difference(y: f64, s: f64) -> (f64, f64) {
    if y == 0.0 {
        return (0.0, 0.0);
    }
    if y <= DIRECT_SUM_MAX && y == y.floor() && s > 0.0 && s.is_finite() {
        // A small count: ψ(s + y) − ψ(s) = Σ_{k<y} 1/(s + k) and ψ′(s + y) − ψ′(s) =
        // −Σ 1/(s + k)², sums of same-signed terms (exact to rounding, no cancellation) at
        // y divisions instead of two series evaluations (nbinom1's PIRLS weights need this
        // at every row of every iteration).
        let (mut psi, mut tri) = (0.0, 0.0);
        let mut k = 0.0;
        while k < y {
            let inv = 1.0 / (s + k);
            psi += inv;
            tri -= inv * inv;
            k += 1.0;
        }
        return (psi, tri);
    }
    if !(y.is_finite() && s.is_finite()) || s < STIRLING_DIFFERENCE_FROM {
        let (p1, t1) = digamma_trigamma(s + y);
        let (p0, t0) = digamma_trigamma(s);
        return (p1 - p0, t1 - t0);
    }
    let x = s + y;
    let psi_rest = |x: f64| {
        let z = 1.0 / (x * x);
        z * (1.0 / 12.0 - z * (1.0 / 120.0 - z / 252.0))
    };
    let tri_rest = |x: f64| {
        let z = 1.0 / (x * x);
        (1.0 / 6.0 - z * (1.0 / 30.0 - z / 42.0)) * z / x
    };
    let psi = (y / s).ln_1p() + 0.5 * y / (x * s) - (psi_rest(x) - psi_rest(s));
    let tri = -y / (x * s) - 0.5 * y * (x + s) / (x * x * s * s) + (tri_rest(x) - tri_rest(s));
    (psi, tri)
}

/// The tetragamma function `ψ″(x)` for `x > 0`: the recurrence `ψ″(x) = ψ″(x + 1) − 2/x³` up
/// to `x ≥ 10`, then the asymptotic series `−1/x² − 1/x³ − Σ (2k + 1) B₂ₖ / x^(2k+2)` to `x⁻¹⁶`
/// (truncation error below 1e-17 there). The third derivative of the nbinom1, beta and
/// beta-binomial log-densities in `μ` (the exact Laplace gradient) needs it; statrs has none.
pub fn tetragamma(mut x: f64) -> f64 {
    if let Some(v) = polygamma_edge(x) {
        return v;
    }
    let mut acc = 0.0;
    while x < 10.0 {
        acc -= 2.0 / (x * x * x);
        x += 1.0;
    }
    let z = 1.0 / (x * x);
    // (2k + 1) B₂ₖ for k = 1..7: 1/2, −1/6, 1/6, −3/10, 5/6, −691/210, 35/2.
    let series = 0.5
        + z * (-1.0 / 6.0
            + z * (1.0 / 6.0 + z * (-0.3 + z * (5.0 / 6.0 + z * (-691.0 / 210.0 + z * 17.5)))));
    acc - z - z / x - series * z * z
}

/// `log y` and `log(1 − y)` of a beta observation, formed once per observation (the beta
/// log-density and its derivative in `μ` need them at every evaluation).
pub fn beta_logs(y: f64) -> (f64, f64) {
    (y.ln(), (-y).ln_1p())
}

impl Density {
    /// By glmmTMB's family name (`"beta"` for `beta_family()`).
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "poisson" => Density::Poisson,
            "nbinom2" => Density::NegBinomial2,
            "nbinom1" => Density::NegBinomial1,
            "beta" => Density::Beta,
            "betabinomial" => Density::BetaBinomial,
            "gaussian" => Density::Gaussian,
            "Gamma" => Density::Gamma,
            other => return invalid(format!("family '{other}' has no dispersion model here")),
        })
    }

    /// Whether the distribution has a dispersion parameter `φ`.
    pub fn has_dispersion(self) -> bool {
        !matches!(self, Density::Poisson)
    }

    /// Whether the derivatives of `ℓ` in `μ` are rational functions of `μ` (no digamma or
    /// trigamma of it), so cheap enough to form in every pass over the rows with the value.
    pub fn mean_derivatives_are_rational(self) -> bool {
        matches!(
            self,
            Density::Poisson | Density::NegBinomial2 | Density::Gaussian | Density::Gamma
        )
    }

    /// Whether `μ` is a valid mean.
    pub fn valid_mu(self, mu: f64) -> bool {
        match self {
            Density::Poisson | Density::NegBinomial2 | Density::NegBinomial1 | Density::Gamma => {
                mu.is_finite() && mu > 0.0
            }
            Density::Beta | Density::BetaBinomial => mu.is_finite() && mu > 0.0 && mu < 1.0,
            Density::Gaussian => mu.is_finite(),
        }
    }

    /// `Var(y)` at mean `μ`, dispersion `φ` and `n` trials (beta-binomial: of the successes).
    pub fn variance(self, mu: f64, phi: f64, n: f64) -> f64 {
        match self {
            Density::Poisson => mu,
            Density::NegBinomial2 => mu + mu * mu / phi,
            Density::NegBinomial1 => mu * (1.0 + phi),
            Density::Beta => mu * (1.0 - mu) / (1.0 + phi),
            Density::BetaBinomial => n * mu * (1.0 - mu) * (phi + n) / (phi + 1.0),
            Density::Gaussian => phi,
            Density::Gamma => mu * mu / phi,
        }
    }

    /// The expected information for `μ`, `E[−∂²ℓ/∂μ²]` (for the counts, beta-binomial and the
    /// negative binomial 1 the quasi-likelihood `1/Var` on the mean's scale): the positive
    /// weight PIRLS falls back to where the observed information is not positive.
    pub fn expected_information(self, mu: f64, phi: f64, n: f64) -> f64 {
        match self {
            Density::Beta => {
                let (a, b) = (mu * phi, (1.0 - mu) * phi);
                phi * phi * (trigamma(a) + trigamma(b))
            }
            // (a row of zero trials carries no information: its variance is 0 too)
            Density::BetaBinomial if n == 0.0 => 0.0,
            Density::BetaBinomial => n * n / self.variance(mu, phi, n),
            _ => 1.0 / self.variance(mu, phi, n),
        }
    }

    /// `∂/∂μ` of [`Self::expected_information`] (the η-derivative of the Laplace weights of
    /// lme4's glmer.nb, which uses the expected information).
    pub fn expected_information_slope(self, mu: f64, phi: f64, n: f64) -> f64 {
        if self == Density::BetaBinomial && n == 0.0 {
            return 0.0;
        }
        let slope_of_variance = match self {
            Density::Beta => {
                let (a, b) = (mu * phi, (1.0 - mu) * phi);
                return phi * phi * phi * (tetragamma(a) - tetragamma(b));
            }
            Density::Poisson => 1.0,
            Density::NegBinomial2 => 1.0 + 2.0 * mu / phi,
            Density::NegBinomial1 => 1.0 + phi,
            Density::BetaBinomial => n * (1.0 - 2.0 * mu) * (phi + n) / (phi + 1.0),
            Density::Gaussian => 0.0,
            Density::Gamma => 2.0 * mu / phi,
        };
        let v = self.variance(mu, phi, n);
        let top = if self == Density::BetaBinomial {
            n * n
        } else {
            1.0
        };
        -top * slope_of_variance / (v * v)
    }

    /// `∂³ℓ/∂μ³` at one observation (`n` trials for the beta-binomial): the Laplace gradient
    /// follows how the observed information moves with the mean.
    pub fn third_derivative(self, y: f64, mu: f64, phi: f64, n: f64) -> f64 {
        match self {
            Density::Poisson => 2.0 * y / (mu * mu * mu),
            Density::NegBinomial2 => {
                let s = phi + mu;
                2.0 * y / (mu * mu * mu) - 2.0 * (y + phi) / (s * s * s)
            }
            Density::NegBinomial1 => {
                if y > 0.0 {
                    let size = mu / phi;
                    (tetragamma(y + size) - tetragamma(size)) / (phi * phi * phi)
                } else {
                    0.0
                }
            }
            Density::Beta => {
                let (a, b) = (mu * phi, (1.0 - mu) * phi);
                -phi * phi * phi * (tetragamma(a) - tetragamma(b))
            }
            Density::BetaBinomial => {
                let (a, b) = (mu * phi, (1.0 - mu) * phi);
                let (k, f) = (y, n - y);
                phi * phi
                    * phi
                    * (tetragamma(k + a) - tetragamma(f + b) - tetragamma(a) + tetragamma(b))
            }
            Density::Gaussian => 0.0,
            Density::Gamma => {
                let m2 = mu * mu;
                -2.0 * phi / (m2 * mu) + 6.0 * y * phi / (m2 * m2)
            }
        }
    }

    /// `(∂ℓ/∂log φ, ∂ℓ′/∂log φ, ∂ℓ″/∂log φ)` at one observation, `ℓ′, ℓ″` the μ-derivatives
    /// and `ℓ` whole (with [`Self::constant`]), in closed form where written out: the
    /// negative binomials, the beta and the beta-binomial (`n` trials), whose rows carry the
    /// gradient of the Laplace deviance in their dispersion. `None` for the other densities
    /// (their callers difference the row instead: central differences whose rounding, divided
    /// by the small steps of the Hessian's differences of the gradient, made the beta-binomial's
    /// dispersion standard errors up to 2% off). With `G, T, Q` the differences
    /// `ψ⁽ᵏ⁾(s + y) − ψ⁽ᵏ⁾(s)` of digamma, trigamma and tetragamma at the size `s`:
    ///
    /// ```text
    ///   nbinom2 (s = φ):   ∂ℓ/∂φ = G − log(1 + μ/φ) + (μ − y)/(φ + μ),
    ///                      ∂ℓ′/∂φ = (y − μ)/(φ + μ)²,  ∂ℓ″/∂φ = (μ − φ − 2y)/(φ + μ)³
    ///   nbinom1 (s = μ/φ): ∂ℓ/∂log φ = −sG + s log(1 + φ) − sφ/(1 + φ) + y/(1 + φ),
    ///                      ∂ℓ′/∂log φ = −(sT + φ/(1 + φ))/φ − ℓ′,  ∂ℓ″/∂log φ = −(sQ + 2T)/φ²
    ///   beta-binomial (a = μφ, b = (1 − μ)φ; Gₐ, G_b at sizes a, b and counts y, n − y;
    ///                  G_φ at size φ and count n):
    ///                      ∂ℓ/∂φ = μGₐ + (1 − μ)G_b − G_φ,  ℓ′ = φ(Gₐ − G_b),  ℓ″ = φ²(Tₐ + T_b),
    ///                      ∂ℓ′/∂φ = ℓ′/φ + φ(μTₐ − (1 − μ)T_b),
    ///                      ∂ℓ″/∂φ = 2ℓ″/φ + φ²(μQₐ + (1 − μ)Q_b)
    ///   beta (ψ⁽ᵏ⁾ at a and b themselves, log y and log(1 − y)):
    ///                      ∂ℓ/∂φ = ψ(φ) − μψ(a) − (1 − μ)ψ(b) + μ log y + (1 − μ) log(1 − y),
    ///                      ∂ℓ′/∂φ = ℓ′/φ − φ(μψ′(a) − (1 − μ)ψ′(b)),
    ///                      ∂ℓ″/∂φ = 2ℓ″/φ − φ²(μψ″(a) + (1 − μ)ψ″(b))
    /// ```
    pub fn dispersion_slopes(self, y: f64, mu: f64, phi: f64, n: f64) -> Option<(f64, f64, f64)> {
        match self {
            Density::BetaBinomial => {
                let (a, b) = (mu * phi, (1.0 - mu) * phi);
                let (ga, ta) = digamma_trigamma_difference(y, a);
                let (gb, tb) = digamma_trigamma_difference(n - y, b);
                let (gphi, _) = digamma_trigamma_difference(n, phi);
                let tetra_difference = |count: f64, size: f64| {
                    if count > 0.0 {
                        tetragamma(size + count) - tetragamma(size)
                    } else {
                        0.0
                    }
                };
                let (qa, qb) = (tetra_difference(y, a), tetra_difference(n - y, b));
                let d1 = phi * (ga - gb);
                let d2 = phi * phi * (ta + tb);
                Some((
                    phi * (mu * ga + (1.0 - mu) * gb - gphi),
                    d1 + phi * phi * (mu * ta - (1.0 - mu) * tb),
                    2.0 * d2 + phi * phi * phi * (mu * qa + (1.0 - mu) * qb),
                ))
            }
            Density::Beta => {
                let (a, b) = (mu * phi, (1.0 - mu) * phi);
                let (ly, l1y) = beta_logs(y);
                let (pa, ta) = digamma_trigamma(a);
                let (pb, tb) = digamma_trigamma(b);
                let (pphi, _) = digamma_trigamma(phi);
                let d1 = phi * (ly - l1y - pa + pb);
                let d2 = -phi * phi * (ta + tb);
                Some((
                    phi * (pphi - mu * pa - (1.0 - mu) * pb + mu * ly + (1.0 - mu) * l1y),
                    d1 - phi * phi * (mu * ta - (1.0 - mu) * tb),
                    2.0 * d2 - phi * phi * phi * (mu * tetragamma(a) + (1.0 - mu) * tetragamma(b)),
                ))
            }
            Density::NegBinomial2 => {
                let s = phi + mu;
                let (g, _) = digamma_trigamma_difference(y, phi);
                let l = g - (mu / phi).ln_1p() + (mu - y) / s;
                Some((
                    phi * l,
                    phi * (y - mu) / (s * s),
                    phi * (mu - phi - 2.0 * y) / (s * s * s),
                ))
            }
            Density::NegBinomial1 => {
                let size = mu / phi;
                let lp = phi.ln_1p();
                let share = phi / (1.0 + phi);
                let (g, t) = digamma_trigamma_difference(y, size);
                let q = if y > 0.0 {
                    tetragamma(y + size) - tetragamma(size)
                } else {
                    0.0
                };
                let d1 = (g - lp) / phi;
                Some((
                    -size * g + size * lp - size * share + y / (1.0 + phi),
                    -(size * t + share) / phi - d1,
                    -(size * q + 2.0 * t) / (phi * phi),
                ))
            }
            _ => None,
        }
    }

    /// `∂/∂log φ` of [`Self::expected_information`] for the negative binomials (`−V_φ/V²`,
    /// `V_φ = −μ²/φ` for nbinom2, `μφ` for nbinom1): the dispersion slope of glmer.nb's Laplace
    /// weights. `None` for the other densities.
    pub fn expected_information_dispersion_slope(self, mu: f64, phi: f64) -> Option<f64> {
        let variance_slope = match self {
            Density::NegBinomial2 => -mu * mu / phi,
            Density::NegBinomial1 => mu * phi,
            _ => return None,
        };
        let v = self.variance(mu, phi, 1.0);
        Some(-variance_slope / (v * v))
    }

    /// The part of `ℓ(y; μ, φ)` that depends on neither `μ` nor `φ` (formed once per
    /// observation: it holds the factorials).
    pub fn fixed_constant(self, y: f64, n: f64) -> f64 {
        match self {
            Density::Poisson | Density::NegBinomial2 | Density::NegBinomial1 => -ln_gamma(y + 1.0),
            Density::Beta => -y.ln() - (-y).ln_1p(),
            Density::BetaBinomial => ln_gamma(n + 1.0) - ln_gamma(y + 1.0) - ln_gamma(n - y + 1.0),
            Density::Gaussian => 0.0,
            Density::Gamma => -y.ln(),
        }
    }

    /// The part of `ℓ(y; μ, φ)` that depends on `φ` but not on `μ` (formed again only when the
    /// dispersion changes).
    pub fn dispersion_constant(self, y: f64, phi: f64, n: f64) -> f64 {
        match self {
            Density::Poisson => 0.0,
            Density::NegBinomial2 => ln_gamma_ratio(y, phi),
            Density::NegBinomial1 => y * (phi.ln() - phi.ln_1p()),
            Density::Beta => ln_gamma(phi),
            Density::BetaBinomial => -ln_gamma_ratio(n, phi),
            Density::Gaussian => -0.5 * (2.0 * PI * phi).ln(),
            Density::Gamma => -ln_gamma(phi) + phi * phi.ln() + phi * y.ln(),
        }
    }

    /// The part of `ℓ(y; μ, φ)` that does not depend on `μ`:
    /// [`Self::fixed_constant`] + [`Self::dispersion_constant`].
    pub fn constant(self, y: f64, phi: f64, n: f64) -> f64 {
        self.fixed_constant(y, n) + self.dispersion_constant(y, phi, n)
    }

    /// `ℓ(y; μ, φ)` minus [`Self::constant`] (only with `value`; else 0) and the derivatives of
    /// `ℓ` in `μ`; `n` is the number of trials (beta-binomial).
    pub fn varying(self, y: f64, mu: f64, phi: f64, n: f64, value: bool) -> DensityDerivatives {
        let logs = if self == Density::Beta {
            beta_logs(y)
        } else {
            (0.0, 0.0)
        };
        self.varying_with(y, logs, mu, phi, n, value)
    }

    /// The part of `ℓ(y; μ, φ)` that depends on `μ` (what [`Self::varying_with`] gives as its
    /// value), without the derivatives: the deviance at every pass of PIRLS needs this alone,
    /// and for the NB1, beta and beta-binomial the derivatives cost digammas and trigammas.
    /// [`beta_logs`] of `y` given (read only for the beta).
    #[inline]
    pub fn varying_value(self, y: f64, (ly, l1y): (f64, f64), mu: f64, phi: f64, n: f64) -> f64 {
        match self {
            Density::Poisson => {
                if y == 0.0 {
                    -mu
                } else {
                    y * mu.ln() - mu
                }
            }
            Density::NegBinomial2 => {
                // θ log(θ/(θ+μ)) = −θ log1p(μ/θ), exact for large θ too.
                let mut v = -phi * (mu / phi).ln_1p();
                if y > 0.0 {
                    v += y * (mu / (phi + mu)).ln();
                }
                v
            }
            Density::NegBinomial1 => {
                let size = mu / phi;
                let mut v = -size * phi.ln_1p();
                if y > 0.0 {
                    v += ln_gamma_ratio(y, size);
                }
                v
            }
            Density::Beta => {
                let (a, b) = (mu * phi, (1.0 - mu) * phi);
                -ln_gamma(a) - ln_gamma(b) + a * ly + b * l1y
            }
            Density::BetaBinomial => {
                let (a, b) = (mu * phi, (1.0 - mu) * phi);
                ln_gamma_ratio(y, a) + ln_gamma_ratio(n - y, b)
            }
            Density::Gaussian => {
                let r = y - mu;
                -0.5 * r * r / phi
            }
            Density::Gamma => -phi * mu.ln() - y * phi / mu,
        }
    }

    /// [`Self::varying`] with [`beta_logs`] of `y` given (read only for the beta).
    #[inline]
    pub fn varying_with(
        self,
        y: f64,
        logs: (f64, f64),
        mu: f64,
        phi: f64,
        n: f64,
        value: bool,
    ) -> DensityDerivatives {
        let (ly, l1y) = logs;
        let (d1, d2) = match self {
            Density::Poisson => (y / mu - 1.0, -y / (mu * mu)),
            Density::NegBinomial2 => {
                let s = phi + mu;
                (y / mu - (y + phi) / s, -y / (mu * mu) + (y + phi) / (s * s))
            }
            Density::NegBinomial1 => {
                let lp = phi.ln_1p();
                let (g, t) = if y > 0.0 {
                    digamma_trigamma_difference(y, mu / phi)
                } else {
                    (0.0, 0.0)
                };
                ((g - lp) / phi, t / (phi * phi))
            }
            Density::Beta => {
                let (a, b) = (mu * phi, (1.0 - mu) * phi);
                let (pa, ta) = digamma_trigamma(a);
                let (pb, tb) = digamma_trigamma(b);
                (phi * (ly - l1y - pa + pb), -phi * phi * (ta + tb))
            }
            Density::BetaBinomial => {
                let (a, b) = (mu * phi, (1.0 - mu) * phi);
                let (pk, tk) = digamma_trigamma_difference(y, a);
                let (pf, tf) = digamma_trigamma_difference(n - y, b);
                (phi * (pk - pf), phi * phi * (tk + tf))
            }
            Density::Gaussian => (((y - mu) / phi), -1.0 / phi),
            Density::Gamma => (
                phi * (y - mu) / (mu * mu),
                phi / (mu * mu) - 2.0 * y * phi / (mu * mu * mu),
            ),
        };
        DensityDerivatives {
            // The value's logarithms are formed only when asked for: PIRLS's weights need the
            // derivatives alone, at every row of every iteration.
            value: if value {
                self.varying_value(y, logs, mu, phi, n)
            } else {
                0.0
            },
            d1,
            d2,
        }
    }

    /// `ℓ(y; μ, φ)` and its derivatives in `μ`; `n` is the number of trials (beta-binomial).
    pub fn derivatives(self, y: f64, mu: f64, phi: f64, n: f64) -> DensityDerivatives {
        let mut d = self.varying(y, mu, phi, n, true);
        d.value += self.constant(y, phi, n);
        d
    }

    /// `ℓ(y; μ, φ)` alone.
    pub fn log_density(self, y: f64, mu: f64, phi: f64, n: f64) -> f64 {
        self.derivatives(y, mu, phi, n).value
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn gamma_differences_match_their_sums_for_whole_y() {
        // For whole y, ln Γ(s + y) − ln Γ(s) = Σ_{k<y} ln(s + k), ψ(s + y) − ψ(s) = Σ 1/(s + k),
        // ψ′(s + y) − ψ′(s) = −Σ 1/(s + k)²: sums without cancellation, below and above the
        // series' threshold and far into the negative binomial's Poisson limit.
        for &s in &[0.3, 7.5, 999.0, 1e3, 1001.5, 4.2e4, 1e6, 3e8, 1e12] {
            for &y in &[0.0, 1.0, 2.0, 7.0, 40.0, 250.0] {
                let ks = (0..y as usize).map(|k| s + k as f64);
                let lg: f64 = ks.clone().map(f64::ln).sum();
                let dg: f64 = ks.clone().map(|x| 1.0 / x).sum();
                let tg: f64 = -ks.map(|x| 1.0 / (x * x)).sum::<f64>();
                let r = ln_gamma_ratio(y, s);
                assert!(
                    (r - lg).abs() <= 1e-13 * lg.abs().max(1.0),
                    "s {s} y {y}: {r} {lg}"
                );
                let (d, t) = digamma_trigamma_difference(y, s);
                assert!(
                    (d - dg).abs() <= 1e-12 * dg.abs().max(1e-300),
                    "s {s} y {y}: {d} {dg}"
                );
                assert!(
                    (t - tg).abs() <= 1e-10 * tg.abs().max(1e-300),
                    "s {s} y {y}: {t} {tg}"
                );
            }
        }
    }

    use super::*;
    use statrs::function::gamma::digamma;

    #[test]
    fn trigamma_matches_known_values_and_the_derivative_of_digamma() {
        // ψ′(1) = π²/6, ψ′(1/2) = π²/2.
        assert!((trigamma(1.0) - PI * PI / 6.0).abs() < 1e-14);
        assert!((trigamma(0.5) - PI * PI / 2.0).abs() < 1e-13);
        for x in [0.03, 0.7, 3.3, 9.9, 10.0, 55.0, 1e4] {
            let h = 1e-5 * x;
            let num = (digamma(x + h) - digamma(x - h)) / (2.0 * h);
            assert!(
                (trigamma(x) - num).abs() < 1e-6 * num.abs(),
                "{x}: {} vs {num}",
                trigamma(x)
            );
        }
    }

    #[test]
    fn a_beta_binomial_row_of_zero_trials_carries_no_information() {
        // (a cbind(0, 0) row: its variance is 0, and so is its information, not 0/0)
        let dens = Density::BetaBinomial;
        for &(mu, phi) in &[(0.3, 2.5), (0.9, 40.0)] {
            assert_eq!(dens.expected_information(mu, phi, 0.0), 0.0);
            assert_eq!(dens.expected_information_slope(mu, phi, 0.0), 0.0);
            assert!(dens.expected_information(mu, phi, 4.0) > 0.0);
        }
    }

    #[test]
    fn dispersion_slopes_match_differences_in_log_phi() {
        // (y, μ, φ, n): counts for the negative binomials, successes of n trials with a
        // probability μ for the beta-binomial, proportions for the beta
        let counts = [
            (0.0, 1.3, 0.7, 1.0),
            (3.0, 1.3, 0.7, 1.0),
            (1.0, 0.2, 4.0, 1.0),
            (12.0, 8.5, 1.9, 1.0),
        ];
        let trials = [
            (0.0, 0.3, 2.5, 4.0),
            (3.0, 0.6, 20.0, 7.0),
            (7.0, 0.45, 0.8, 7.0),
            (12.0, 0.7, 150.0, 19.0),
        ];
        let proportions = [
            (0.2, 0.3, 2.5, 1.0),
            (0.93, 0.6, 20.0, 1.0),
            (0.5, 0.45, 0.8, 1.0),
        ];
        for (density, cases) in [
            (Density::NegBinomial2, &counts[..]),
            (Density::NegBinomial1, &counts[..]),
            (Density::BetaBinomial, &trials[..]),
            (Density::Beta, &proportions[..]),
        ] {
            for &(y, mu, phi, n) in cases {
                let (l, l1, l2) = density.dispersion_slopes(y, mu, phi, n).expect("slopes");
                let at = |lp: f64| density.derivatives(y, mu, lp.exp(), n);
                let h = 1e-5;
                let (up, dn) = (at(phi.ln() + h), at(phi.ln() - h));
                let close = |a: f64, b: f64, what: &str| {
                    assert!(
                        (a - b).abs() < 1e-7 * (1.0 + b.abs()),
                        "{density:?} y {y} mu {mu} phi {phi} {what}: {a} vs {b}"
                    )
                };
                close(l, (up.value - dn.value) / (2.0 * h), "value");
                close(l1, (up.d1 - dn.d1) / (2.0 * h), "d1");
                close(l2, (up.d2 - dn.d2) / (2.0 * h), "d2");
            }
        }
        assert!(Density::Gamma
            .dispersion_slopes(0.5, 0.4, 3.0, 1.0)
            .is_none());
        for density in [Density::NegBinomial2, Density::NegBinomial1] {
            let (mu, phi, h): (f64, f64, f64) = (1.7, 0.8, 1e-5);
            let info = |lp: f64| density.expected_information(mu, lp.exp(), 1.0);
            let num = (info(phi.ln() + h) - info(phi.ln() - h)) / (2.0 * h);
            let slope = density
                .expected_information_dispersion_slope(mu, phi)
                .expect("slope");
            assert!((slope - num).abs() < 1e-8, "{density:?}: {slope} vs {num}");
        }
    }

    #[test]
    fn tetragamma_matches_known_values_and_the_derivative_of_trigamma() {
        // ψ″(1) = −2ζ(3).
        let zeta3 = 1.202_056_903_159_594_2;
        assert!((tetragamma(1.0) + 2.0 * zeta3).abs() < 1e-13);
        for x in [0.03, 0.7, 3.3, 9.9, 10.0, 55.0, 1e4] {
            let h = 1e-5 * x;
            let num = (trigamma(x + h) - trigamma(x - h)) / (2.0 * h);
            assert!(
                (tetragamma(x) - num).abs() < 1e-6 * num.abs(),
                "{x}: {} vs {num}",
                tetragamma(x)
            );
        }
        assert!(tetragamma(-1.0).is_nan());
        assert_eq!(tetragamma(f64::INFINITY), 0.0);
    }

    #[test]
    fn digamma_trigamma_matches_statrs_and_trigamma() {
        for x in [
            1e-8, 0.03, 0.5, 0.7, 1.0, 3.3, 9.9, 10.0, 12.5, 55.0, 1e4, 1e12,
        ] {
            let (p, t) = digamma_trigamma(x);
            let want = digamma(x);
            assert!(
                (p - want).abs() < 4e-15 * want.abs().max(1.0),
                "{x}: {p} vs {want}"
            );
            assert!((t - trigamma(x)).abs() < 4e-15 * t.abs(), "{x}");
        }
        assert!(digamma_trigamma(-1.0).0.is_nan());
        assert_eq!(digamma_trigamma(f64::INFINITY), (f64::INFINITY, 0.0));
    }

    #[test]
    fn small_counts_sum_the_digamma_differences_term_by_term() {
        // The direct sums of whole y against the difference of the two series, an independent
        // computation (accurate to ~1e-16 of ψ(s + y) and ψ′(s) below the Stirling threshold).
        for &s in &[0.05, 0.7, 3.0, 11.5, 250.0] {
            for y in 1..=DIRECT_SUM_MAX as usize {
                let y = y as f64;
                let (psi, tri) = digamma_trigamma_difference(y, s);
                let (p1, t1) = digamma_trigamma(s + y);
                let (p0, t0) = digamma_trigamma(s);
                assert!(
                    (psi - (p1 - p0)).abs() < 1e-14 * (1.0 + p1.abs()),
                    "y {y} s {s}"
                );
                assert!(
                    (tri - (t1 - t0)).abs() < 1e-14 * (1.0 + t0.abs()),
                    "y {y} s {s}"
                );
            }
        }
        // Beyond the direct sums, or for a y that is not whole, the two series as before.
        let (p1, t1) = digamma_trigamma(32.0);
        let (p0, t0) = digamma_trigamma(2.0);
        assert_eq!(digamma_trigamma_difference(30.0, 2.0), (p1 - p0, t1 - t0));
        let (p, _) = digamma_trigamma_difference(2.5, 2.0);
        assert_eq!(p, digamma_trigamma(4.5).0 - p0);
    }

    #[test]
    fn densities_sum_to_one_and_derivatives_match_differences() {
        // Discrete laws sum to one.
        for (dens, mu, phi, n) in [
            (Density::Poisson, 2.5, 1.0, 1.0),
            (Density::NegBinomial2, 3.0, 0.7, 1.0),
            (Density::NegBinomial1, 3.0, 1.6, 1.0),
            (Density::BetaBinomial, 0.3, 2.5, 12.0),
        ] {
            let top = if dens == Density::BetaBinomial {
                n
            } else {
                400.0
            };
            let total: f64 = (0..=top as usize)
                .map(|y| dens.log_density(y as f64, mu, phi, n).exp())
                .sum();
            assert!((total - 1.0).abs() < 1e-10, "{dens:?}: {total}");
            let mean: f64 = (0..=top as usize)
                .map(|y| y as f64 * dens.log_density(y as f64, mu, phi, n).exp())
                .sum();
            let want = if dens == Density::BetaBinomial {
                n * mu
            } else {
                mu
            };
            assert!((mean - want).abs() < 1e-8, "{dens:?} mean {mean}");
            let var: f64 = (0..=top as usize)
                .map(|y| (y as f64 - want).powi(2) * dens.log_density(y as f64, mu, phi, n).exp())
                .sum();
            assert!(
                (var - dens.variance(mu, phi, n)).abs() < 1e-7,
                "{dens:?} var"
            );
        }
        // First three derivatives in μ and the slope of the expected information, by central
        // differences.
        for (dens, y, mu, phi, n) in [
            (Density::Poisson, 3.0, 2.2, 1.0, 1.0),
            (Density::NegBinomial2, 0.0, 2.2, 0.8, 1.0),
            (Density::NegBinomial2, 7.0, 2.2, 0.8, 1.0),
            (Density::NegBinomial1, 0.0, 1.3, 2.0, 1.0),
            (Density::NegBinomial1, 5.0, 1.3, 2.0, 1.0),
            (Density::Beta, 0.2, 0.4, 6.0, 1.0),
            (Density::BetaBinomial, 3.0, 0.35, 4.0, 9.0),
            (Density::Gaussian, 1.4, 0.2, 0.6, 1.0),
            (Density::Gamma, 2.1, 1.5, 3.0, 1.0),
        ] {
            let h = 1e-5 * mu;
            let d = dens.derivatives(y, mu, phi, n);
            let f = |m: f64| dens.log_density(y, m, phi, n);
            let g = |m: f64| dens.derivatives(y, m, phi, n).d1;
            let num1 = (f(mu + h) - f(mu - h)) / (2.0 * h);
            let num2 = (g(mu + h) - g(mu - h)) / (2.0 * h);
            assert!(
                (d.d1 - num1).abs() < 1e-6 * num1.abs().max(1.0),
                "{dens:?} d1"
            );
            assert!(
                (d.d2 - num2).abs() < 1e-6 * num2.abs().max(1.0),
                "{dens:?} d2"
            );
            let d2 = |m: f64| dens.derivatives(y, m, phi, n).d2;
            let num3 = (d2(mu + h) - d2(mu - h)) / (2.0 * h);
            let d3 = dens.third_derivative(y, mu, phi, n);
            assert!(
                (d3 - num3).abs() < 1e-6 * num3.abs().max(1.0),
                "{dens:?} d3 {d3} vs {num3}"
            );
            let info = |m: f64| dens.expected_information(m, phi, n);
            let num = (info(mu + h) - info(mu - h)) / (2.0 * h);
            let slope = dens.expected_information_slope(mu, phi, n);
            assert!(
                (slope - num).abs() < 1e-6 * num.abs().max(1.0),
                "{dens:?} information slope {slope} vs {num}"
            );
        }
        // The beta density integrates to one (midpoint rule).
        let m = 200_000;
        let total: f64 = (0..m)
            .map(|i| {
                let y = (i as f64 + 0.5) / m as f64;
                Density::Beta.log_density(y, 0.3, 5.0, 1.0).exp() / m as f64
            })
            .sum();
        assert!((total - 1.0).abs() < 1e-6, "beta {total}");
    }
}
