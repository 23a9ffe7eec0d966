//! Exponential-family distributions and link functions of generalized linear (mixed) models.
//!
//! For a response `y` with prior weight `w`, mean `μ = g⁻¹(η)` and variance function `V(μ)`:
//! the IRLS working weight is `w (dμ/dη)² / V(μ)`, the working response `η + (y − μ)/(dμ/dη)`,
//! the unit deviance `d(y, μ)` sums to the residual deviance, and `aic(y, n, μ, w, dev)` is
//! `−2 log p(y | μ)` (plus 2 for an estimated dispersion), with the same definitions and the same
//! numerical safeguards as R's `stats` family objects so that likelihoods match R's.
use crate::error::{invalid, Result};
use statrs::distribution::{Cauchy, Continuous, ContinuousCDF, Normal};
use statrs::function::gamma::ln_gamma;
use std::f64::consts::PI;
use std::sync::LazyLock;

const EPS: f64 = f64::EPSILON;

/// A link function `η = g(μ)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// `log(μ / (1 − μ))`
    Logit,
    /// `Φ⁻¹(μ)`
    Probit,
    /// `log(−log(1 − μ))`
    Cloglog,
    /// Cauchy quantile
    Cauchit,
    /// `log(μ)`
    Log,
    /// `μ`
    Identity,
    /// `1/μ`
    Inverse,
    /// `√μ`, with inverse `μ = η²` for every η (as glmmTMB): the likelihood is symmetric
    /// about η = 0, and PIRLS chooses the side ([`crate::fit::pirls`]).
    Sqrt,
    /// `1/μ²`
    InverseSquare,
}

/// The response distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    /// Binomial proportions with `n` trials (prior weights).
    Binomial,
    /// Poisson counts.
    Poisson,
    /// Gamma with unknown dispersion.
    Gamma,
    /// Inverse Gaussian with unknown dispersion.
    InverseGaussian,
    /// Gaussian (with a non-identity link; the identity link is a linear mixed model).
    Gaussian,
}

/// The sums of the data alone in the aic of the families with a dispersion: `Σw`, `Σ w log y`
/// and `Σ log w` ([`Family::aic_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AicDataSums {
    /// `Σ w`.
    pub weight: f64,
    /// `Σ w log y`.
    pub log_y: f64,
    /// `Σ log w`.
    pub log_weight: f64,
}

impl AicDataSums {
    /// The sums for response `y` with prior weights `wt`.
    pub fn new(y: &[f64], wt: &[f64]) -> Self {
        Self {
            weight: wt.iter().sum(),
            log_y: y.iter().zip(wt).map(|(a, b)| a.ln() * b).sum(),
            log_weight: wt.iter().map(|w| w.ln()).sum(),
        }
    }
}

/// A validated distribution–link pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// The distribution.
    pub dist: Distribution,
    /// The link.
    pub link: Link,
}

fn standard_normal() -> Normal {
    // ok: mean 0 and sd 1 are valid parameters
    Normal::standard()
}

extern "C" {
    /// The C library's complementary error function (C99 `<math.h>`, in every libm R links).
    #[link_name = "erfc"]
    fn c_erfc(x: f64) -> f64;
}

/// The standard normal CDF `Φ(x) = erfc(−x/√2)/2`, as R's `pnorm()` to an ulp or so. statrs's
/// `Normal::cdf` is off R's by up to 4e-11 relatively (Φ(−3): 1.34989803157e-3 against
/// 1.34989803163e-3), which moved a probit fit's Laplace deviance by that much per row; the C
/// library's `erfc` is exact to an ulp and no slower (12 ns against 13; the `libm` crate's port
/// of the same algorithm gives the same numbers in 19 ns). PIRLS evaluates it per row and step.
#[inline]
fn normal_cdf(x: f64) -> f64 {
    // SAFETY: erfc is a pure function of a double, defined for every input.
    0.5 * unsafe { c_erfc(-x * std::f64::consts::FRAC_1_SQRT_2) }
}

fn standard_cauchy() -> Option<Cauchy> {
    Cauchy::new(0.0, 1.0).ok()
}

/// `-Φ⁻¹(ε)`: the probit link's clamp of η (R's `binomial("probit")$linkinv`), computed once —
/// the inverse normal CDF costs far more than the CDF that PIRLS evaluates per observation.
static PROBIT_THRESHOLD: LazyLock<f64> = LazyLock::new(|| -standard_normal().inverse_cdf(EPS));

/// `-F⁻¹(ε)` of the standard Cauchy distribution: the cauchit link's clamp of η, computed once.
static CAUCHIT_THRESHOLD: LazyLock<Option<f64>> =
    LazyLock::new(|| standard_cauchy().map(|c| -c.inverse_cdf(EPS)));

impl Link {
    /// Parses R's link name.
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "logit" => Link::Logit,
            "probit" => Link::Probit,
            "cloglog" => Link::Cloglog,
            "cauchit" => Link::Cauchit,
            "log" => Link::Log,
            "identity" => Link::Identity,
            "inverse" => Link::Inverse,
            "sqrt" => Link::Sqrt,
            "1/mu^2" => Link::InverseSquare,
            other => return invalid(format!("link '{other}' is not supported")),
        })
    }

    /// `η = g(μ)`.
    pub fn linkfun(self, mu: f64) -> f64 {
        match self {
            Link::Logit => (mu / (1.0 - mu)).ln(),
            Link::Probit => standard_normal().inverse_cdf(mu),
            Link::Cloglog => (-(-mu).ln_1p()).ln(),
            Link::Cauchit => standard_cauchy().map_or(f64::NAN, |c| c.inverse_cdf(mu)),
            Link::Log => mu.ln(),
            Link::Identity => mu,
            Link::Inverse => 1.0 / mu,
            Link::Sqrt => mu.sqrt(),
            Link::InverseSquare => 1.0 / (mu * mu),
        }
    }

    /// `μ = g⁻¹(η)`, clamped away from the boundary as R does.
    pub fn linkinv(self, eta: f64) -> f64 {
        match self {
            Link::Logit => {
                let t = if eta < -30.0 {
                    EPS
                } else if eta > 30.0 {
                    1.0 / EPS
                } else {
                    eta.exp()
                };
                t / (1.0 + t)
            }
            Link::Probit => {
                let thresh = *PROBIT_THRESHOLD;
                normal_cdf(eta.clamp(-thresh, thresh))
            }
            Link::Cloglog => (-(-eta.exp()).exp_m1()).clamp(EPS, 1.0 - EPS),
            Link::Cauchit => match (standard_cauchy(), *CAUCHIT_THRESHOLD) {
                (Some(c), Some(thresh)) => c.cdf(eta.clamp(-thresh, thresh)),
                _ => f64::NAN,
            },
            Link::Log => eta.exp().max(EPS),
            Link::Identity => eta,
            Link::Inverse => 1.0 / eta,
            Link::Sqrt => eta * eta,
            Link::InverseSquare => 1.0 / eta.sqrt(),
        }
    }

    /// `dμ/dη`, bounded away from 0 as R does.
    pub fn mu_eta(self, eta: f64) -> f64 {
        match self {
            Link::Logit => {
                if !(-30.0..=30.0).contains(&eta) {
                    EPS
                } else {
                    let e = eta.exp();
                    e / ((1.0 + e) * (1.0 + e))
                }
            }
            Link::Probit => standard_normal().pdf(eta).max(EPS),
            Link::Cloglog => {
                let e = eta.min(700.0).exp();
                (e * cloglog_mean_and_survival(e).1).max(EPS)
            }
            Link::Cauchit => standard_cauchy().map_or(f64::NAN, |c| c.pdf(eta).max(EPS)),
            Link::Log => eta.exp().max(EPS),
            Link::Identity => 1.0,
            Link::Inverse => -1.0 / (eta * eta),
            Link::Sqrt => 2.0 * eta,
            Link::InverseSquare => -1.0 / (2.0 * eta.powf(1.5)),
        }
    }

    /// `(g⁻¹(η), dμ/dη)` together, equal to [`Link::linkinv`] and [`Link::mu_eta`] (the
    /// cloglog's mean to an ulp, see [`cloglog_mean_and_survival`]). PIRLS needs both for every
    /// observation at every step; for the logit and log links one exponential serves both, for
    /// the cloglog `e^η` and `e^{−e^η}` serve both (the other links compute them apart).
    #[inline]
    pub fn linkinv_mu_eta(self, eta: f64) -> (f64, f64) {
        match self {
            Link::Logit if (-30.0..=30.0).contains(&eta) => {
                let e = eta.exp();
                let d = 1.0 + e;
                (e / d, e / (d * d))
            }
            Link::Log => {
                let m = eta.exp().max(EPS);
                (m, m)
            }
            Link::Cloglog => {
                // e^η at η above 700 taken at 700, as `mu_eta` does: μ is 1 − ε either way (a
                // NaN η stays NaN).
                let e = if eta > 700.0 { 700f64.exp() } else { eta.exp() };
                let (mu, survival) = cloglog_mean_and_survival(e);
                (mu.clamp(EPS, 1.0 - EPS), (e * survival).max(EPS))
            }
            _ => (self.linkinv(eta), self.mu_eta(eta)),
        }
    }

    /// `d²μ/dη²` (without the clamping of [`Link::linkinv`]; PIRLS uses it only for Newton
    /// weights, and falls back to Fisher scoring wherever those are not positive).
    pub fn mu_eta_deriv(self, eta: f64) -> f64 {
        match self {
            Link::Logit => {
                let (m, d) = self.linkinv_mu_eta(eta);
                d * (1.0 - 2.0 * m)
            }
            Link::Probit => -eta * standard_normal().pdf(eta),
            Link::Cloglog => {
                let e = eta.min(700.0).exp();
                e * cloglog_mean_and_survival(e).1 * (1.0 - e)
            }
            Link::Cauchit => {
                let s = 1.0 + eta * eta;
                -2.0 * eta / (PI * s * s)
            }
            Link::Log => eta.exp(),
            Link::Identity => 0.0,
            Link::Inverse => 2.0 / (eta * eta * eta),
            Link::Sqrt => 2.0,
            Link::InverseSquare => 0.75 / eta.powf(2.5),
        }
    }

    /// [`Link::mu_eta_deriv`] at `eta` where the mean there and its slope, `(μ, dμ/dη)` from
    /// [`Link::linkinv_mu_eta`], are known: for the log link `d²μ/dη² = e^η` is that mean
    /// wherever it is not clamped, for the logit `μ′(1 − 2μ)` (what [`Link::mu_eta_deriv`]
    /// forms from the same pair), for the probit `−η φ(η)` with `φ(η) = μ′` where that is not
    /// clamped, for the cloglog `μ′(1 − e^η)`, which saves one or two exponentials per row in
    /// PIRLS's working values and the gradient's row derivatives (the same number, bit for bit).
    #[inline]
    pub fn mu_eta_deriv_at(self, eta: f64, (mu, mu_eta): (f64, f64)) -> f64 {
        match self {
            Link::Log if mu > EPS => mu,
            Link::Logit => mu_eta * (1.0 - 2.0 * mu),
            Link::Probit if mu_eta > EPS => -eta * mu_eta,
            Link::Cloglog if mu_eta > EPS => mu_eta * (1.0 - eta.min(700.0).exp()),
            _ => self.mu_eta_deriv(eta),
        }
    }

    /// [`Link::mu_eta_deriv2`] at `eta` where `(μ, dμ/dη)` there are known (as
    /// [`Link::mu_eta_deriv_at`]: for the log link it is that mean, for the logit
    /// `μ′(1 − 6μ(1 − μ))`, for the probit `(η² − 1)μ′`, for the cloglog
    /// `μ′((1 − e^η)² − e^η)`, bit for bit).
    #[inline]
    pub fn mu_eta_deriv2_at(self, eta: f64, (mu, mu_eta): (f64, f64)) -> f64 {
        match self {
            Link::Log if mu > EPS => mu,
            Link::Logit => mu_eta * (1.0 - 6.0 * mu * (1.0 - mu)),
            Link::Probit if mu_eta > EPS => (eta * eta - 1.0) * mu_eta,
            Link::Cloglog if mu_eta > EPS => {
                let e = eta.min(700.0).exp();
                mu_eta * ((1.0 - e) * (1.0 - e) - e)
            }
            _ => self.mu_eta_deriv2(eta),
        }
    }

    /// `d³μ/dη³` (as [`Link::mu_eta_deriv`], without clamping): the Laplace gradient needs the
    /// third η-derivative of a row's likelihood.
    pub fn mu_eta_deriv2(self, eta: f64) -> f64 {
        match self {
            Link::Logit => {
                let (m, d) = self.linkinv_mu_eta(eta);
                d * (1.0 - 6.0 * m * (1.0 - m))
            }
            Link::Probit => (eta * eta - 1.0) * standard_normal().pdf(eta),
            Link::Cloglog => {
                let e = eta.min(700.0).exp();
                e * cloglog_mean_and_survival(e).1 * ((1.0 - e) * (1.0 - e) - e)
            }
            Link::Cauchit => {
                let s = 1.0 + eta * eta;
                (6.0 * eta * eta - 2.0) / (PI * s * s * s)
            }
            Link::Log => eta.exp(),
            Link::Identity | Link::Sqrt => 0.0,
            Link::Inverse => -6.0 / (eta * eta * eta * eta),
            Link::InverseSquare => -1.875 / eta.powf(3.5),
        }
    }

    /// Whether `η` is in the link's domain. The square-root link takes any η, as glmmTMB's does
    /// (`μ = η²`; R's link object accepts only η > 0): the modes of groups whose counts are
    /// mostly 0 can lie at or beyond η = 0.
    pub fn valid_eta(self, eta: f64) -> bool {
        match self {
            Link::Inverse => eta.is_finite() && eta != 0.0,
            Link::InverseSquare => eta.is_finite() && eta > 0.0,
            _ => eta.is_finite(),
        }
    }
}

/// The cloglog's mean `μ = 1 − e^{−e}` and its complement `e^{−e}` at `e = e^η`, from one
/// exponential: where `e ≥ log 2` the complement is at most 1/2 and `1 − e^{−e}` is within an
/// ulp of R's `−expm1(−e)`; below, `expm1(−e)` gives the mean and `1 + expm1(−e)` (at least
/// 1/2) the complement, within an ulp of `exp(−e)`. PIRLS needs both for every row at every
/// step; computing them apart took an `expm1` and an `exp` (a fifth of a cloglog fit's time).
#[inline]
fn cloglog_mean_and_survival(e: f64) -> (f64, f64) {
    if e >= std::f64::consts::LN_2 {
        let survival = (-e).exp();
        (1.0 - survival, survival)
    } else {
        let t = (-e).exp_m1();
        (-t, 1.0 + t)
    }
}

/// `y log(y/μ)`, 0 at `y = 0`.
fn y_log_y(y: f64, mu: f64) -> f64 {
    if y != 0.0 {
        y * (y / mu).ln()
    } else {
        0.0
    }
}

fn log_dbinom(k: f64, m: f64, p: f64) -> f64 {
    if k < 0.0 || k > m {
        return f64::NEG_INFINITY;
    }
    let log_choose = ln_gamma(m + 1.0) - ln_gamma(k + 1.0) - ln_gamma(m - k + 1.0);
    let a = if k > 0.0 { k * p.ln() } else { 0.0 };
    let b = if m - k > 0.0 {
        (m - k) * (-p).ln_1p()
    } else {
        0.0
    };
    log_choose + a + b
}

fn log_dpois(y: f64, mu: f64) -> f64 {
    if y < 0.0 || y.fract() != 0.0 {
        return f64::NEG_INFINITY;
    }
    if y == 0.0 {
        return -mu;
    }
    y * mu.ln() - mu - ln_gamma(y + 1.0)
}

impl Family {
    /// Validates a distribution and link by R's names.
    pub fn new(dist: &str, link: &str) -> Result<Self> {
        let dist = match dist {
            "binomial" => Distribution::Binomial,
            "poisson" => Distribution::Poisson,
            "Gamma" => Distribution::Gamma,
            "inverse.gaussian" => Distribution::InverseGaussian,
            "gaussian" => Distribution::Gaussian,
            other => return invalid(format!("family '{other}' is not supported")),
        };
        let link = Link::from_name(link)?;
        use Distribution::*;
        use Link::*;
        let ok = match dist {
            Binomial => matches!(link, Logit | Probit | Cloglog | Cauchit | Log),
            Poisson => matches!(link, Log | Sqrt | Identity),
            Gamma => matches!(link, Inverse | Log | Identity),
            InverseGaussian => matches!(link, InverseSquare | Log | Inverse),
            // (lme4 fits any link R's gaussian() takes; these are the engine's links with a
            // bounded mean besides log and inverse, e.g. logit for proportions)
            Gaussian => matches!(
                link,
                Log | Inverse | Identity | Logit | Probit | Cloglog | Cauchit
            ),
        };
        if !ok {
            return invalid(format!(
                "link {link:?} is not supported for family {dist:?}"
            ));
        }
        Ok(Self { dist, link })
    }

    /// The starting mean of glm()'s `initialize` for a response `y` with prior weight `w`
    /// (for the binomial, the weight that multiplies the proportion `y`): `(w y + 1/2)/(w + 1)`
    /// for the binomial, `y + 0.1` for the Poisson, `y` otherwise.
    pub fn initial_mean(self, y: f64, w: f64) -> f64 {
        match self.dist {
            Distribution::Binomial => (w * y + 0.5) / (w + 1.0),
            Distribution::Poisson => y + 0.1,
            Distribution::Gamma | Distribution::InverseGaussian | Distribution::Gaussian => y,
        }
    }

    /// Whether the family has a free dispersion parameter (scale) to estimate.
    pub fn has_scale(self) -> bool {
        !matches!(self.dist, Distribution::Binomial | Distribution::Poisson)
    }

    /// Variance function `V(μ)`.
    pub fn variance(self, mu: f64) -> f64 {
        match self.dist {
            Distribution::Binomial => mu * (1.0 - mu),
            Distribution::Poisson => mu,
            Distribution::Gamma => mu * mu,
            Distribution::InverseGaussian => mu * mu * mu,
            Distribution::Gaussian => 1.0,
        }
    }

    /// `dV/dμ`.
    pub fn variance_deriv(self, mu: f64) -> f64 {
        match self.dist {
            Distribution::Binomial => 1.0 - 2.0 * mu,
            Distribution::Poisson => 1.0,
            Distribution::Gamma => 2.0 * mu,
            Distribution::InverseGaussian => 3.0 * mu * mu,
            Distribution::Gaussian => 0.0,
        }
    }

    /// Whether the link is the canonical one of the distribution, where the observed and the
    /// expected information agree (Fisher scoring is Newton's method).
    pub fn is_canonical(self) -> bool {
        use Distribution::*;
        use Link::*;
        matches!(
            (self.dist, self.link),
            (Binomial, Logit)
                | (Poisson, Log)
                | (Gamma, Inverse)
                | (InverseGaussian, InverseSquare)
                | (Gaussian, Identity)
        )
    }

    /// The observed information `−∂²ℓ/∂η²` of one observation with prior weight `wt`:
    /// `wt [μ'²/V − (y − μ)(μ''/V − μ'² V'/V²)]`, which for a canonical link equals the
    /// expected one `wt μ'²/V`. Newton's method for the modes uses it.
    pub fn observed_weight(self, y: f64, eta: f64, mu: f64, mu_eta: f64, wt: f64) -> f64 {
        self.observed_weight_at(y, mu, mu_eta, self.link.mu_eta_deriv(eta), wt)
    }

    /// [`Family::observed_weight`] where `d²μ/dη²` (`mu_eta_deriv`) is known.
    #[inline]
    pub fn observed_weight_at(
        self,
        y: f64,
        mu: f64,
        mu_eta: f64,
        mu_eta_deriv: f64,
        wt: f64,
    ) -> f64 {
        let v = self.variance(mu);
        let d2 = mu_eta_deriv;
        let dv = self.variance_deriv(mu);
        let expected = mu_eta * mu_eta / v;
        wt * (expected - (y - mu) * (d2 / v - expected * dv / v))
    }

    /// Whether `μ` is a valid mean.
    pub fn valid_mu(self, mu: f64) -> bool {
        match self.dist {
            Distribution::Binomial => mu.is_finite() && mu > 0.0 && mu < 1.0,
            Distribution::Poisson | Distribution::Gamma => mu.is_finite() && mu > 0.0,
            Distribution::InverseGaussian | Distribution::Gaussian => mu.is_finite(),
        }
    }

    /// Unit deviance `w d(y, μ)`.
    pub fn dev_resid(self, y: f64, mu: f64, wt: f64) -> f64 {
        match self.dist {
            Distribution::Binomial => 2.0 * wt * (y_log_y(y, mu) + y_log_y(1.0 - y, 1.0 - mu)),
            Distribution::Poisson => {
                if y > 0.0 {
                    2.0 * wt * (y * (y / mu).ln() - (y - mu))
                } else {
                    2.0 * mu * wt
                }
            }
            Distribution::Gamma => {
                let ratio = if y == 0.0 { 1.0 } else { y / mu };
                -2.0 * wt * (ratio.ln() - (y - mu) / mu)
            }
            Distribution::InverseGaussian => wt * (y - mu) * (y - mu) / (y * mu * mu),
            Distribution::Gaussian => wt * (y - mu) * (y - mu),
        }
    }

    /// For the families with a dispersion, [`Self::aic`] at means `μ` whose deviance is `dev`
    /// is `G(dev) + c(y, w)`: the dispersion is estimated as `dev / Σw` (Gaussian: `/ n`), and
    /// the log-densities' dependence on `μ` is their unit deviances. This returns `G′(dev)`
    /// (`nobs` observations, prior weights summing to `sw`), which the exact Laplace gradient
    /// needs; `None` for binomial and Poisson (no dispersion).
    ///
    /// ```text
    ///   Gamma:             G(x) = 2S lnΓ(k) − 2Sk ln k + 2Sk + S,  k = S/x,
    ///                      G′(x) = 2k² (ln k − ψ(k))
    ///   inverse Gaussian:  G(x) = S ln x + const,  G′(x) = S/x
    ///   Gaussian:          G(x) = n ln x + const,  G′(x) = n/x
    /// ```
    pub fn aic_deviance_slope(self, dev: f64, nobs: usize, sw: f64) -> Option<f64> {
        match self.dist {
            Distribution::Binomial | Distribution::Poisson => None,
            Distribution::Gamma => {
                let k = sw / dev;
                Some(2.0 * k * k * log_minus_digamma(k))
            }
            Distribution::InverseGaussian => Some(sw / dev),
            Distribution::Gaussian => Some(nobs as f64 / dev),
        }
    }

    /// For binomial and Poisson, `aic(y, n, μ, w, dev) = Σ d(y, μ) + c(y)` with `c` the aic of
    /// the saturated model (`μ = y`); this returns `c`, so the likelihood costs no more than the
    /// deviance. `None` for the other families.
    pub fn saturated_aic(self, y: &[f64], n: &[f64], wt: &[f64]) -> Option<f64> {
        match self.dist {
            Distribution::Binomial | Distribution::Poisson => Some(self.aic(y, n, y, wt, 0.0)),
            _ => None,
        }
    }

    /// R's `family$aic(y, n, mu, wt, dev)`: `−2 log p(y | μ)` summed over observations, with the
    /// dispersion estimated as `dev / Σw` (plus 2 for it) where the family has one.
    pub fn aic(self, y: &[f64], n: &[f64], mu: &[f64], wt: &[f64], dev: f64) -> f64 {
        self.aic_with(&self.aic_data_sums(y, wt), y, n, mu, wt, dev)
    }

    /// The [`AicDataSums`] [`Family::aic_with`] reads: those of `y` and `wt` for the families
    /// with a dispersion, zeros for binomial and Poisson (whose aic does not read them).
    pub fn aic_data_sums(self, y: &[f64], wt: &[f64]) -> AicDataSums {
        if self.has_scale() {
            AicDataSums::new(y, wt)
        } else {
            AicDataSums::default()
        }
    }

    /// [`Family::aic`] with the sums of the data it needs computed beforehand (a model's
    /// response computes them once: for the families with a dispersion they are most of the
    /// aic's logarithms, which the Laplace deviance evaluates at every point).
    ///
    /// The Gamma's `Σ w log dgamma(y; k = 1/φ, scale μφ)`, `φ = dev/Σw`, is summed as
    /// `(k − 1) Σ w log y − k Σ w y/μ − Σw log Γ(k) − k Σ w log μ − k Σw log φ`: one logarithm
    /// per row (R's `dgamma` term by term takes two and `log Γ(k)`; the sums agree to about
    /// 1e-15 of their size).
    pub fn aic_with(
        self,
        sums: &AicDataSums,
        y: &[f64],
        n: &[f64],
        mu: &[f64],
        wt: &[f64],
        dev: f64,
    ) -> f64 {
        match self.dist {
            Distribution::Binomial => {
                let use_n = n.iter().any(|&v| v > 1.0);
                let mut s = 0.0;
                for i in 0..y.len() {
                    let m = if use_n { n[i] } else { wt[i] };
                    if m > 0.0 {
                        s += (wt[i] / m) * log_dbinom((m * y[i]).round(), m.round(), mu[i]);
                    }
                }
                -2.0 * s
            }
            Distribution::Poisson => {
                -2.0 * (0..y.len())
                    .map(|i| log_dpois(y[i], mu[i]) * wt[i])
                    .sum::<f64>()
            }
            Distribution::Gamma => {
                if sums.log_y.is_nan() || sums.log_y == f64::NEG_INFINITY {
                    // A y ≤ 0 (R's Gamma family rejects it before): log dgamma is −∞.
                    return f64::INFINITY;
                }
                let sw = sums.weight;
                let disp = dev / sw;
                let k = 1.0 / disp;
                let (mut y_over_mu, mut log_mu) = (0.0, 0.0);
                for ((&yi, &m), &w) in y.iter().zip(mu).zip(wt) {
                    y_over_mu += w * yi / m;
                    log_mu += w * m.ln();
                }
                let s = (k - 1.0) * sums.log_y
                    - k * y_over_mu
                    - sw * ln_gamma(k)
                    - k * log_mu
                    - k * sw * disp.ln();
                -2.0 * s + 2.0
            }
            Distribution::InverseGaussian => {
                let sw = sums.weight;
                sw * (1.0 + (dev / sw * 2.0 * PI).ln()) + 3.0 * sums.log_y + 2.0
            }
            Distribution::Gaussian => {
                let nobs = y.len() as f64;
                nobs * ((dev / nobs * 2.0 * PI).ln() + 1.0) + 2.0 - sums.log_weight
            }
        }
    }
}

/// `ln k − ψ(k)` for `k > 0`: from the digamma function below 10, above it from the asymptotic
/// series `1/(2k) + Σ B₂ⱼ/(2j k²ʲ)` to `k⁻¹⁴` (truncation about 1e-15 relative at 10, less
/// beyond), which keeps its full relative precision where the two terms nearly cancel (a small
/// Gamma dispersion, k in the thousands).
fn log_minus_digamma(k: f64) -> f64 {
    if k.is_nan() || k <= 0.0 {
        return f64::NAN;
    }
    if k < 10.0 {
        return k.ln() - crate::model::density::digamma_trigamma(k).0;
    }
    let z = 1.0 / (k * k);
    0.5 / k
        + z * (1.0 / 12.0
            + z * (-1.0 / 120.0
                + z * (1.0 / 252.0
                    + z * (-1.0 / 240.0 + z * (1.0 / 132.0 + z * (-691.0 / 32760.0 + z / 12.0))))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The starting means of R's `initialize` expressions: binomial `(w y + 0.5)/(w + 1)`
    /// (0.5 for a proportion of 0.5 with any weight), Poisson `y + 0.1`, the others `y`.
    #[test]
    fn initial_means_are_glms() {
        let fam = |d: &str, l: &str| Family::new(d, l).unwrap();
        assert_eq!(fam("binomial", "logit").initial_mean(0.0, 3.0), 0.125);
        assert_eq!(fam("binomial", "probit").initial_mean(0.5, 7.0), 0.5);
        assert_eq!(fam("poisson", "log").initial_mean(0.0, 1.0), 0.1);
        assert_eq!(fam("Gamma", "log").initial_mean(2.5, 1.0), 2.5);
        assert_eq!(
            fam("inverse.gaussian", "1/mu^2").initial_mean(0.7, 2.0),
            0.7
        );
        assert_eq!(fam("gaussian", "log").initial_mean(-1.0, 1.0), -1.0);
    }

    /// `G′(dev)` of the families with a dispersion against differences of their `aic` along
    /// a path of means (`aic − G(dev)` depends on the data alone), and `ln k − ψ(k)` on both
    /// sides of the switch to its series.
    #[test]
    fn aic_of_the_families_with_a_dispersion_is_r_family_aic() {
        // R 4.2.2: f$aic(y, 1, mu, wt, dev) with dev = sum(f$dev.resids(y, mu, wt)) for
        // Gamma("log"), inverse.gaussian("log"), gaussian("log"), printed with 17 digits.
        let y = [0.4, 1.3, 2.2, 0.9, 3.1, 1.7];
        let wt = [1.0, 2.0, 1.0, 3.0, 1.0, 2.0];
        let n = [1.0; 6];
        let mu: Vec<f64> = (0..6)
            .map(|i| y[i] * (1.0 + 0.3 * (i as f64 - 2.5)) + 0.2)
            .collect();
        for (dist, r) in [
            ("Gamma", 15.754_947_563_782_47),
            ("inverse.gaussian", 15.019_940_600_014_37),
            ("gaussian", 17.925_294_755_730_423),
        ] {
            let family = Family::new(dist, "log").expect("family");
            let dev: f64 = (0..6).map(|i| family.dev_resid(y[i], mu[i], wt[i])).sum();
            let aic = family.aic(&y, &n, &mu, &wt, dev);
            assert!((aic - r).abs() < 1e-13 * r, "{dist}: {aic} vs {r}");
        }
    }

    #[test]
    fn aic_deviance_slope_matches_differences_of_the_aic() {
        let y = [0.4, 1.3, 2.2, 0.9, 3.1, 1.7];
        let wt = [1.0, 2.0, 1.0, 3.0, 1.0, 2.0];
        let n = [1.0; 6];
        let sw: f64 = wt.iter().sum();
        for dist in ["Gamma", "inverse.gaussian", "gaussian"] {
            let family = Family::new(dist, "log").expect("family");
            for spread in [0.3, 0.02] {
                let at = |t: f64| {
                    let mu: Vec<f64> = (0..6)
                        .map(|i| y[i] * (1.0 + spread * (i as f64 - 2.5) + t))
                        .collect();
                    let dev: f64 = (0..6).map(|i| family.dev_resid(y[i], mu[i], wt[i])).sum();
                    (family.aic(&y, &n, &mu, &wt, dev), dev)
                };
                let (h, (_, dev)) = (1e-5, at(0.0));
                let ((a1, d1), (a0, d0)) = (at(h), at(-h));
                let slope = family.aic_deviance_slope(dev, 6, sw).expect("slope");
                let numeric = (a1 - a0) / (d1 - d0);
                assert!(
                    (slope - numeric).abs() < 1e-6 * slope.abs(),
                    "{dist} {spread}: {slope} vs {numeric}"
                );
            }
        }
        assert!(Family::new("poisson", "log")
            .expect("family")
            .aic_deviance_slope(1.0, 6, 6.0)
            .is_none());
        for k in [9.999999_f64, 10.0, 37.0, 400.0] {
            let direct = k.ln() - statrs::function::gamma::digamma(k);
            let ours = log_minus_digamma(k);
            assert!(
                (ours - direct).abs() < 1e-12 * direct,
                "{k}: {ours} vs {direct}"
            );
        }
    }

    #[test]
    fn probit_mean_is_r_pnorm_to_a_few_ulps() {
        // R 4.2.2: print(pnorm(c(-8, -3, -0.5, 1.5, 8)), digits = 17).
        let cases = [
            (-8.0, 6.220_960_574_271_785e-16),
            (-3.0, 1.349_898_031_630_094_6e-3),
            (-0.5, 3.085_375_387_259_869_4e-1),
            (1.5, 9.331_927_987_311_419e-1),
            (8.0, 9.999_999_999_999_993e-1),
        ];
        for (eta, r) in cases {
            let mu = Link::Probit.linkinv(eta);
            // erfc(t) moves by 2t² = η² times the rounding of t = −η/√2 (21 ulps at η = −8,
            // where the clamp is −8.13); statrs's CDF was 4e-11 off at η = −3, 5e-11 at −8.
            let ulps = 4.0 + eta * eta;
            assert!((mu - r).abs() <= ulps * EPS * r, "{eta}: {mu:e} vs {r:e}");
        }
    }

    #[test]
    fn cloglog_mean_and_complement_are_the_direct_forms_to_an_ulp() {
        // Both branches of cloglog_mean_and_survival(), and the switch at e = log 2 (η = −0.367).
        for k in 0..=4000 {
            let eta = -6.0 + k as f64 * 0.0025;
            let e = eta.exp();
            let (mu, survival) = cloglog_mean_and_survival(e);
            let (mu0, survival0) = (-(-e).exp_m1(), (-e).exp());
            assert!((mu - mu0).abs() <= EPS * mu0, "{eta}: {mu:e} vs {mu0:e}");
            assert!(
                (survival - survival0).abs() <= EPS * survival0,
                "{eta}: survival"
            );
        }
    }

    #[test]
    fn link_derivatives_from_a_known_mean_are_the_same_numbers() {
        let links = [
            Link::Logit,
            Link::Probit,
            Link::Cloglog,
            Link::Log,
            Link::Identity,
            Link::Inverse,
        ];
        for link in links {
            for eta in [-800.0, -40.0, -36.04, -1.3, 0.2, 2.5, 30.0] {
                if link == Link::Inverse && eta <= 0.0 {
                    continue;
                }
                let mean = link.linkinv_mu_eta(eta);
                let (a, b) = (link.mu_eta_deriv_at(eta, mean), link.mu_eta_deriv(eta));
                assert_eq!(a.to_bits(), b.to_bits(), "{link:?} {eta}");
                let (a, b) = (link.mu_eta_deriv2_at(eta, mean), link.mu_eta_deriv2(eta));
                assert_eq!(a.to_bits(), b.to_bits(), "{link:?} {eta}");
            }
        }
    }

    #[test]
    fn links_invert_and_differentiate() {
        let cases = [
            (Link::Logit, 0.3),
            (Link::Probit, 0.7),
            (Link::Cloglog, 0.4),
            (Link::Cauchit, 0.2),
            (Link::Log, 2.5),
            (Link::Identity, 1.5),
            (Link::Inverse, 0.8),
            (Link::Sqrt, 3.0),
            (Link::InverseSquare, 1.7),
        ];
        for (link, mu) in cases {
            let eta = link.linkfun(mu);
            assert!((link.linkinv(eta) - mu).abs() < 1e-10, "{link:?} inverse");
            let h = 1e-6;
            let num = (link.linkinv(eta + h) - link.linkinv(eta - h)) / (2.0 * h);
            assert!(
                (link.mu_eta(eta) - num).abs() < 1e-6 * num.abs().max(1.0),
                "{link:?} mu_eta"
            );
            let h = 1e-5;
            let num2 = (link.mu_eta(eta + h) - link.mu_eta(eta - h)) / (2.0 * h);
            assert!(
                (link.mu_eta_deriv(eta) - num2).abs() < 1e-6 * num2.abs().max(1.0),
                "{link:?} mu_eta_deriv"
            );
            let num3 = (link.mu_eta_deriv(eta + h) - link.mu_eta_deriv(eta - h)) / (2.0 * h);
            assert!(
                (link.mu_eta_deriv2(eta) - num3).abs() < 1e-6 * num3.abs().max(1.0),
                "{link:?} mu_eta_deriv2"
            );
        }
    }

    #[test]
    fn joint_inverse_link_and_derivative_match_the_separate_ones() {
        let links = [
            Link::Logit,
            Link::Probit,
            Link::Cloglog,
            Link::Cauchit,
            Link::Log,
            Link::Identity,
            Link::Inverse,
            Link::Sqrt,
            Link::InverseSquare,
        ];
        for link in links {
            for eta in [-40.0, -30.0, -3.5, -0.2, 0.0, 0.7, 2.0, 30.0, 31.0, 701.0] {
                if !link.valid_eta(eta) {
                    continue;
                }
                let (m, d) = link.linkinv_mu_eta(eta);
                let (m0, d0) = (link.linkinv(eta), link.mu_eta(eta));
                assert!(m == m0 || (m.is_nan() && m0.is_nan()), "{link:?} {eta}");
                assert!(d == d0 || (d.is_nan() && d0.is_nan()), "{link:?} {eta}");
            }
        }
    }

    #[test]
    fn second_link_derivatives_and_observed_weights_match_differences() {
        let links = [
            (Link::Logit, 0.3),
            (Link::Probit, -0.7),
            (Link::Cloglog, 0.4),
            (Link::Cauchit, 0.9),
            (Link::Log, 0.5),
            (Link::Identity, 1.5),
            (Link::Inverse, 0.8),
            (Link::Sqrt, 3.0),
            (Link::InverseSquare, 1.7),
        ];
        for (link, eta) in links {
            let h = 1e-5;
            let num = (link.mu_eta(eta + h) - link.mu_eta(eta - h)) / (2.0 * h);
            assert!(
                (link.mu_eta_deriv(eta) - num).abs() < 1e-6 * num.abs().max(1.0),
                "{link:?}"
            );
        }
        // −d²/dη² of the log-likelihood by differences, for each supported pair.
        let cases = [
            ("binomial", "probit", 1.0, 0.2, 0.7),
            ("binomial", "cloglog", 0.0, -0.4, 1.0),
            ("binomial", "logit", 1.0, 0.3, 2.0),
            ("poisson", "sqrt", 3.0, 1.4, 1.0),
            ("poisson", "identity", 2.0, 3.5, 1.0),
            ("Gamma", "log", 2.5, 0.3, 1.0),
            ("Gamma", "identity", 0.5, 2.0, 1.0),
            ("inverse.gaussian", "log", 1.5, 0.2, 1.0),
        ];
        for (dist, link, y, eta, wt) in cases {
            let fam = Family::new(dist, link).expect("family");
            // −2ℓ up to a constant in μ is the deviance (Gamma, IG: per unit dispersion).
            let f = |e: f64| 0.5 * fam.dev_resid(y, fam.link.linkinv(e), wt);
            let h = 1e-4;
            let num = -(f(eta + h) - 2.0 * f(eta) + f(eta - h)) / (h * h);
            let mu = fam.link.linkinv(eta);
            let w = fam.observed_weight(y, eta, mu, fam.link.mu_eta(eta), wt);
            assert!(
                (w + num).abs() < 1e-5 * num.abs().max(1.0),
                "{dist} {link}: {w} vs {}",
                -num
            );
        }
    }

    #[test]
    fn families_reject_unsupported_links() {
        assert!(Family::new("binomial", "logit").is_ok());
        assert!(Family::new("poisson", "logit").is_err());
        assert!(Family::new("quasipoisson", "log").is_err());
        assert!(Family::new("Gamma", "1/mu^2").is_err());
    }

    #[test]
    fn deviance_residuals_vanish_at_the_data() {
        let fam = Family::new("poisson", "log").expect("family");
        assert!(fam.dev_resid(3.0, 3.0, 1.0).abs() < 1e-14);
        let fam = Family::new("binomial", "logit").expect("family");
        assert!(fam.dev_resid(0.25, 0.25, 4.0).abs() < 1e-14);
        // Poisson aic of counts equals −2 Σ log dpois.
        let fam = Family::new("poisson", "log").expect("family");
        let aic = fam.aic(&[0.0, 2.0], &[1.0, 1.0], &[1.5, 2.0], &[1.0, 1.0], 0.0);
        let expect = -2.0 * ((-1.5f64) + (2.0 * 2.0f64.ln() - 2.0 - 2.0f64.ln()));
        assert!((aic - expect).abs() < 1e-12);
        // aic = deviance + saturated aic, for counts and for binomial proportions.
        let (y, n, mu, wt) = ([0.0, 2.0, 5.0], [1.0; 3], [1.5, 2.0, 3.5], [1.0; 3]);
        let dev: f64 = (0..3).map(|i| fam.dev_resid(y[i], mu[i], wt[i])).sum();
        let c = fam.saturated_aic(&y, &n, &wt).expect("poisson");
        assert!((fam.aic(&y, &n, &mu, &wt, dev) - (dev + c)).abs() < 1e-10);
        let fam = Family::new("binomial", "logit").expect("family");
        let (y, n, mu) = ([0.25, 0.0, 1.0], [4.0, 3.0, 2.0], [0.4, 0.3, 0.8]);
        let dev: f64 = (0..3).map(|i| fam.dev_resid(y[i], mu[i], n[i])).sum();
        let c = fam.saturated_aic(&y, &n, &n).expect("binomial");
        assert!((fam.aic(&y, &n, &mu, &n, dev) - (dev + c)).abs() < 1e-10);
        assert!(Family::new("Gamma", "log")
            .expect("family")
            .saturated_aic(&y, &n, &n)
            .is_none());
    }
}
