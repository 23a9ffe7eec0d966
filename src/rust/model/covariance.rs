//! The covariance parameterisation of one random-effects term: the single owner of the map from
//! the optimizer's parameters to the term's relative covariance factor.
//!
//! A term with `q` columns has random effects `b ~ N(0, σ² Σ)` with `Σ = T T'`, `T` lower
//! triangular (the term's block of `Λ`). The engine works with `θ`, the lower triangle of `T` in
//! column-major order (lme4 1.1's θ); the optimizer works with `par`, which each structure maps to
//! `θ` (lme4 2.x's `par`; `toep` as glmmTMB's Toeplitz structure):
//!
//! ```text
//!   us    par = θ                                   lower 0 on T's diagonal
//!   diag  par = s (q of them, one with hom)         T = diag(s)
//!   cs    par = (s, ρ),  R_ij = ρ (i ≠ j)           ρ ∈ [−1/(q−1), 1]
//!   ar1   par = (s, ρ),  R_ij = ρ^|i−j|             ρ ∈ [−1, 1]
//!   toep  par = (s, φ₁ … φ_{q−1}),  R_ij = ρ_|i−j|  φ_k ∈ [−1, 1]
//! ```
//!
//! with `s ≥ 0` the relative standard deviations (`s_k = sd_k / σ`) and, for the correlated
//! structures, `T = diag(s) chol(R)`. For `toep` the `φ_k` are the partial autocorrelations of the
//! lag correlations `ρ_k` (Durbin–Levinson), so every point of the box gives a positive
//! semidefinite `R`. On the boundary (`ρ = 1`, `φ_k = ±1`, …) `R` is singular and `chol(R)` is its
//! semidefinite factor (a zero pivot zeroes its column). A correlation parameter just outside its
//! bounds is reflected at the bound, one further out maps to `NaN` (an objective the engine cannot
//! evaluate); a negative standard deviation is allowed (see `within_bounds`).
use crate::error::{invalid, Result};

/// The covariance structure of a term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structure {
    /// General positive semidefinite (lme4's default, `us()`).
    Unstructured,
    /// Independent columns (`diag()`).
    Diagonal,
    /// One common correlation (`cs()`).
    CompoundSymmetry,
    /// First-order autoregressive correlation `ρ^|i−j|` (`ar1()`).
    Ar1,
    /// A correlation per lag (`toep()`).
    Toeplitz,
}

impl Structure {
    /// The structure of a code as R passes it: 0 `us`, 1 `diag`, 2 `cs`, 3 `ar1`, 4 `toep`.
    pub fn from_code(code: i32) -> Result<Self> {
        Ok(match code {
            0 => Self::Unstructured,
            1 => Self::Diagonal,
            2 => Self::CompoundSymmetry,
            3 => Self::Ar1,
            4 => Self::Toeplitz,
            other => return invalid(format!("unknown covariance structure code {other}")),
        })
    }

    /// The structure's name in a formula.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Unstructured => "us",
            Self::Diagonal => "diag",
            Self::CompoundSymmetry => "cs",
            Self::Ar1 => "ar1",
            Self::Toeplitz => "toep",
        }
    }
}

/// What one element of a term's `par` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParRole {
    /// Element `(row, col)` of `T` (unstructured terms).
    Factor {
        /// Row of `T`.
        row: usize,
        /// Column of `T`.
        col: usize,
    },
    /// Relative standard deviation of a column, or of all columns (`None`, homogeneous).
    Sd(Option<usize>),
    /// The correlation parameter of `cs` and `ar1`.
    Rho,
    /// Partial autocorrelation at a lag (`toep`).
    Pacf(usize),
}

/// The covariance parameterisation of one term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Covariance {
    /// The structure.
    pub structure: Structure,
    /// Whether all columns share one standard deviation.
    pub hom: bool,
    /// Number of columns.
    pub q: usize,
}

/// How far outside its bounds a parameter may be before the map refuses it (rounding).
const BOUND_SLACK: f64 = 1e-12;

impl Covariance {
    /// lme4's unstructured term with `q` columns.
    pub fn unstructured(q: usize) -> Self {
        Self {
            structure: Structure::Unstructured,
            hom: false,
            q,
        }
    }

    /// A term's parameterisation, checked: the correlated structures need two columns, `us` has no
    /// homogeneous form. `what` names the term in errors.
    pub fn new(structure: Structure, hom: bool, q: usize, what: &str) -> Result<Self> {
        if q == 0 {
            return invalid(format!("random-effects term {what} has no columns"));
        }
        match structure {
            Structure::Unstructured if hom => {
                return invalid(format!(
                    "random-effects term {what}: us() has no homogeneous form ('hom' applies to diag, cs, ar1 and toep)"
                ))
            }
            Structure::CompoundSymmetry | Structure::Ar1 | Structure::Toeplitz if q < 2 => {
                return invalid(format!(
                    "random-effects term {what}: {}() correlates the term's columns and needs at least two, this term has one; use (1 | g) or diag()",
                    structure.tag()
                ))
            }
            _ => {}
        }
        Ok(Self { structure, hom, q })
    }

    /// Number of standard-deviation parameters.
    fn n_sd(&self) -> usize {
        if self.hom {
            1
        } else {
            self.q
        }
    }

    /// Number of elements of `par`.
    pub fn n_par(&self) -> usize {
        let q = self.q;
        match self.structure {
            Structure::Unstructured => q * (q + 1) / 2,
            Structure::Diagonal => self.n_sd(),
            Structure::CompoundSymmetry | Structure::Ar1 => self.n_sd() + 1,
            Structure::Toeplitz => self.n_sd() + q - 1,
        }
    }

    /// Number of elements of `θ` (the lower triangle of `T`).
    pub fn n_theta(&self) -> usize {
        self.q * (self.q + 1) / 2
    }

    /// What each element of `par` is, in order.
    pub fn roles(&self) -> Vec<ParRole> {
        let q = self.q;
        let sds = || -> Vec<ParRole> {
            if self.hom {
                vec![ParRole::Sd(None)]
            } else {
                (0..q).map(|k| ParRole::Sd(Some(k))).collect()
            }
        };
        match self.structure {
            Structure::Unstructured => (0..q)
                .flat_map(|col| (col..q).map(move |row| ParRole::Factor { row, col }))
                .collect(),
            Structure::Diagonal => sds(),
            Structure::CompoundSymmetry | Structure::Ar1 => {
                let mut r = sds();
                r.push(ParRole::Rho);
                r
            }
            Structure::Toeplitz => {
                let mut r = sds();
                r.extend((1..q).map(ParRole::Pacf));
                r
            }
        }
    }

    /// Lower bounds of `par`.
    pub fn lower(&self) -> Vec<f64> {
        let q = self.q;
        self.roles()
            .iter()
            .map(|r| match r {
                ParRole::Factor { row, col } if row == col => 0.0,
                ParRole::Factor { .. } => f64::NEG_INFINITY,
                ParRole::Sd(_) => 0.0,
                ParRole::Rho if self.structure == Structure::CompoundSymmetry => {
                    -1.0 / (q as f64 - 1.0)
                }
                ParRole::Rho | ParRole::Pacf(_) => -1.0,
            })
            .collect()
    }

    /// Upper bounds of `par`.
    pub fn upper(&self) -> Vec<f64> {
        self.roles()
            .iter()
            .map(|r| match r {
                ParRole::Rho | ParRole::Pacf(_) => 1.0,
                _ => f64::INFINITY,
            })
            .collect()
    }

    /// Whether the standard deviations' signs are free: `Σ` is unchanged when one changes sign
    /// (`diag`: `Σ = diag(s²)`; one shared standard deviation, or one column: `Σ = s² R`). The
    /// heterogeneous standard deviations of a correlated structure are not: a negative `s_k`
    /// negates the correlations of column `k`, a covariance outside the structure.
    fn sd_sign_free(&self) -> bool {
        self.structure == Structure::Diagonal || self.hom || self.q == 1
    }

    /// Lower bounds a search over `par` has to keep: those of the correlation parameters and of
    /// the standard deviations whose sign matters ([`Self::sd_sign_free`]). The others (an
    /// unstructured factor's diagonal, a sign-free standard deviation) only pick one of points
    /// with the same `Σ`, the sign [`Self::normalize_signs`] restores.
    pub fn search_lower(&self) -> Vec<f64> {
        let free = self.sd_sign_free();
        self.roles()
            .iter()
            .zip(self.lower())
            .map(|(r, l)| match r {
                ParRole::Factor { .. } => f64::NEG_INFINITY,
                ParRole::Sd(_) if free => f64::NEG_INFINITY,
                _ => l,
            })
            .collect()
    }

    /// Positions in `par` of the standard deviations (for `us`, the diagonal of `T`).
    pub fn sd_positions(&self) -> Vec<usize> {
        self.roles()
            .iter()
            .enumerate()
            .filter(|(_, r)| match r {
                ParRole::Factor { row, col } => row == col,
                ParRole::Sd(_) => true,
                _ => false,
            })
            .map(|(k, _)| k)
            .collect()
    }

    /// lme4's start: `T` = identity (standard deviations 1, correlations 0).
    pub fn start(&self) -> Vec<f64> {
        self.roles()
            .iter()
            .map(|r| match r {
                ParRole::Factor { row, col } if row == col => 1.0,
                ParRole::Sd(_) => 1.0,
                _ => 0.0,
            })
            .collect()
    }

    /// Relative standard deviation of column `k` from `par`.
    fn sd(&self, par: &[f64], k: usize) -> f64 {
        if self.hom {
            par[0]
        } else {
            par[k]
        }
    }

    /// `par` with each correlation parameter beyond a bound reflected at it.
    fn reflect(&self, par: &[f64]) -> Vec<f64> {
        let (lo, hi) = (self.lower(), self.upper());
        self.roles()
            .iter()
            .zip(par)
            .zip(lo.iter().zip(&hi))
            .map(|((r, &v), (&l, &h))| match r {
                ParRole::Rho | ParRole::Pacf(_) if v > h => 2.0 * h - v,
                ParRole::Rho | ParRole::Pacf(_) if v < l => 2.0 * l - v,
                _ => v,
            })
            .collect()
    }

    /// Brings each correlation parameter beyond a bound back by reflection (the point with the
    /// same `θ`, see [`Covariance::theta`]): for optimizers that do not keep to the bounds.
    pub fn fold_into_bounds(&self, par: &mut [f64]) {
        let folded = self.reflect(par);
        par.copy_from_slice(&folded);
    }

    /// Whether the correlation parameters of `par` lie within their bounds (up to rounding).
    /// Standard deviations may be negative: `diag(s) R diag(s)` is still a covariance matrix,
    /// smooth in `s` through 0, so finite differences at a zero standard deviation (a singular
    /// fit's Hessian) can step across it, as they do across a zero diagonal element of an
    /// unstructured factor. The optimizer keeps them at or above 0.
    fn within_bounds(&self, par: &[f64]) -> bool {
        let (lo, hi) = (self.lower(), self.upper());
        self.roles()
            .iter()
            .zip(par)
            .zip(lo.iter().zip(&hi))
            .all(|((r, &v), (&l, &h))| match r {
                ParRole::Rho | ParRole::Pacf(_) => v >= l - BOUND_SLACK && v <= h + BOUND_SLACK,
                _ => v.is_finite(),
            })
    }

    /// The correlation matrix `R` (`q × q`, column-major) of a correlated structure.
    fn correlation(&self, par: &[f64]) -> Vec<f64> {
        let q = self.q;
        let corr = &par[self.n_sd()..];
        let lag: Vec<f64> = match self.structure {
            Structure::CompoundSymmetry => {
                (0..q).map(|k| if k == 0 { 1.0 } else { corr[0] }).collect()
            }
            Structure::Ar1 => (0..q)
                .map(|k| corr[0].clamp(-1.0, 1.0).powi(k as i32))
                .collect(),
            Structure::Toeplitz => lag_correlations(corr),
            Structure::Unstructured | Structure::Diagonal => {
                (0..q).map(|k| if k == 0 { 1.0 } else { 0.0 }).collect()
            }
        };
        let mut r = vec![0.0; q * q];
        for j in 0..q {
            for i in 0..q {
                r[j * q + i] = lag[i.abs_diff(j)];
            }
        }
        r
    }

    /// Writes `θ` (the lower triangle of `T`, column-major, `n_theta()` values) for `par`. A
    /// correlation parameter beyond a bound is reflected at it (`b + h` reads as `b − h`), so
    /// that the criterion is even about the bound, as it is about a zero standard deviation:
    /// finite differences at an estimate on the bound (a singular fit's Hessian) then see the
    /// one-sided curvature and no spurious cross terms. `NaN` everywhere when a parameter is
    /// further out than one reflection brings back.
    pub fn theta(&self, par: &[f64], theta: &mut [f64]) {
        let q = self.q;
        let reflected = self.reflect(par);
        let par = reflected.as_slice();
        if !self.within_bounds(par) {
            theta.fill(f64::NAN);
            return;
        }
        match self.structure {
            Structure::Unstructured => theta.copy_from_slice(par),
            Structure::Diagonal => {
                let mut k = 0;
                for col in 0..q {
                    for row in col..q {
                        theta[k] = if row == col { self.sd(par, col) } else { 0.0 };
                        k += 1;
                    }
                }
            }
            Structure::Ar1 => {
                // Closed form of chol(R): L_i1 = ρ^(i−1), L_ij = ρ^(i−j) √(1−ρ²) for j ≥ 2.
                let rho = par[self.n_sd()].clamp(-1.0, 1.0);
                let c = (1.0 - rho * rho).max(0.0).sqrt();
                let mut k = 0;
                for col in 0..q {
                    for row in col..q {
                        let l = rho.powi((row - col) as i32) * if col == 0 { 1.0 } else { c };
                        theta[k] = self.sd(par, row) * l;
                        k += 1;
                    }
                }
            }
            Structure::CompoundSymmetry | Structure::Toeplitz => {
                let mut l = self.correlation(par);
                semidefinite_cholesky(&mut l, q);
                let mut k = 0;
                for col in 0..q {
                    for row in col..q {
                        theta[k] = self.sd(par, row) * l[col * q + row];
                        k += 1;
                    }
                }
            }
        }
    }

    /// The relative covariance `Σ = T T'` (`q × q`, column-major) at `par`.
    pub fn sigma(&self, par: &[f64]) -> Vec<f64> {
        let q = self.q;
        let mut theta = vec![0.0; self.n_theta()];
        self.theta(par, &mut theta);
        let t = factor_from_theta(&theta, q);
        let mut s = vec![0.0; q * q];
        for j in 0..q {
            for i in 0..q {
                s[j * q + i] = (0..=i.min(j)).map(|k| t[k * q + i] * t[k * q + j]).sum();
            }
        }
        s
    }

    /// `∂Σ/∂par_k` for every `k` (each `q × q`, column-major), analytic except the lag
    /// correlations of `toep` (a central difference of the Durbin–Levinson map in `φ`).
    pub fn d_sigma(&self, par: &[f64]) -> Vec<Vec<f64>> {
        let q = self.q;
        let roles = self.roles();
        match self.structure {
            Structure::Unstructured => {
                let mut theta = vec![0.0; self.n_theta()];
                self.theta(par, &mut theta);
                let t = factor_from_theta(&theta, q);
                roles
                    .iter()
                    .map(|r| {
                        let ParRole::Factor { row, col } = *r else {
                            unreachable!("unstructured roles are factor elements")
                        };
                        // ∂(TT')/∂T_rc = e_r (T e_c)' + (T e_c) e_r'.
                        let mut d = vec![0.0; q * q];
                        for i in 0..q {
                            let tc = t[col * q + i];
                            d[i * q + row] += tc;
                            d[row * q + i] += tc;
                        }
                        d
                    })
                    .collect()
            }
            _ => {
                let r = self.correlation(par);
                let sd: Vec<f64> = (0..q).map(|k| self.sd(par, k)).collect();
                roles
                    .iter()
                    .enumerate()
                    .map(|(idx, role)| {
                        let mut d = vec![0.0; q * q];
                        match *role {
                            ParRole::Sd(which) => {
                                for j in 0..q {
                                    for i in 0..q {
                                        let di = which.is_none_or(|k| k == i) as u8 as f64;
                                        let dj = which.is_none_or(|k| k == j) as u8 as f64;
                                        d[j * q + i] = r[j * q + i] * (di * sd[j] + dj * sd[i]);
                                    }
                                }
                            }
                            ParRole::Rho | ParRole::Pacf(_) => {
                                let dr = self.d_correlation(par, idx);
                                for j in 0..q {
                                    for i in 0..q {
                                        d[j * q + i] = sd[i] * sd[j] * dr[j * q + i];
                                    }
                                }
                            }
                            ParRole::Factor { .. } => unreachable!("structured roles"),
                        }
                        d
                    })
                    .collect()
            }
        }
    }

    /// `∂R/∂par_idx` for a correlation parameter.
    fn d_correlation(&self, par: &[f64], idx: usize) -> Vec<f64> {
        let q = self.q;
        let mut d = vec![0.0; q * q];
        match self.structure {
            Structure::CompoundSymmetry => {
                for j in 0..q {
                    for i in 0..q {
                        d[j * q + i] = if i == j { 0.0 } else { 1.0 };
                    }
                }
            }
            Structure::Ar1 => {
                let rho = par[idx];
                for j in 0..q {
                    for i in 0..q {
                        let k = i.abs_diff(j) as i32;
                        d[j * q + i] = if k == 0 {
                            0.0
                        } else {
                            k as f64 * rho.powi(k - 1)
                        };
                    }
                }
            }
            Structure::Toeplitz => {
                let pacf = &par[self.n_sd()..];
                let m = idx - self.n_sd();
                let h = 1e-6;
                let mut up = pacf.to_vec();
                let mut down = pacf.to_vec();
                up[m] += h;
                down[m] -= h;
                let (a, b) = (lag_correlations(&up), lag_correlations(&down));
                for j in 0..q {
                    for i in 0..q {
                        let k = i.abs_diff(j);
                        d[j * q + i] = (a[k] - b[k]) / (2.0 * h);
                    }
                }
            }
            Structure::Unstructured | Structure::Diagonal => {}
        }
        d
    }

    /// The `par` of this structure closest in spirit to a given `θ` (lme4 2.x's `setTheta`): the
    /// standard deviations of `T T'` (their root mean square when homogeneous) and, for the
    /// correlated structures, the mean correlation (`cs`), the mean lag-1 correlation (`ar1`) or
    /// the partial autocorrelations of the mean lag correlations (`toep`), each kept inside its
    /// bounds. Exact when `θ` comes from [`Covariance::theta`].
    pub fn par_from_theta(&self, theta: &[f64]) -> Vec<f64> {
        let q = self.q;
        if self.structure == Structure::Unstructured {
            return theta.to_vec();
        }
        let t = factor_from_theta(theta, q);
        let mut s = vec![0.0; q * q];
        for j in 0..q {
            for i in 0..q {
                s[j * q + i] = (0..=i.min(j)).map(|k| t[k * q + i] * t[k * q + j]).sum();
            }
        }
        let sd: Vec<f64> = (0..q).map(|k| s[k * q + k].max(0.0).sqrt()).collect();
        let mut par: Vec<f64> = if self.hom {
            vec![(sd.iter().map(|v| v * v).sum::<f64>() / q as f64).sqrt()]
        } else {
            sd.clone()
        };
        let cor = |i: usize, j: usize| {
            let d = sd[i] * sd[j];
            if d > 0.0 {
                (s[j * q + i] / d).clamp(-1.0, 1.0)
            } else {
                0.0
            }
        };
        // Mean correlation at each lag.
        let lag_mean = |k: usize| (0..q - k).map(|i| cor(i + k, i)).sum::<f64>() / (q - k) as f64;
        let lower = self.lower();
        let upper = self.upper();
        match self.structure {
            Structure::CompoundSymmetry => {
                let pairs = (q * (q - 1) / 2) as f64;
                let mean = (0..q)
                    .flat_map(|j| (j + 1..q).map(move |i| (i, j)))
                    .map(|(i, j)| cor(i, j))
                    .sum::<f64>()
                    / pairs;
                par.push(mean);
            }
            Structure::Ar1 => par.push(lag_mean(1)),
            Structure::Toeplitz => {
                let lags: Vec<f64> = (1..q).map(lag_mean).collect();
                par.extend(partial_autocorrelations(&lags));
            }
            Structure::Unstructured | Structure::Diagonal => {}
        }
        for (v, (l, u)) in par.iter_mut().zip(lower.iter().zip(&upper)) {
            *v = v.clamp(*l, *u);
        }
        par
    }

    /// Whether `par` is on (within `tol` of) the boundary of its space: a zero standard deviation
    /// (a zero diagonal element of `T` for `us`) or a correlation parameter at a bound.
    pub fn is_singular(&self, par: &[f64], tol: f64) -> bool {
        let (lo, hi) = (self.lower(), self.upper());
        self.roles().iter().enumerate().any(|(k, r)| match r {
            ParRole::Factor { row, col } => row == col && par[k].abs() < tol,
            ParRole::Sd(_) => par[k] < tol,
            ParRole::Rho | ParRole::Pacf(_) => par[k] - lo[k] < tol || hi[k] - par[k] < tol,
        })
    }

    /// Whether some standard deviation (a diagonal element of `T` for `us`) is at most `limit`.
    pub fn has_small_sd(&self, par: &[f64], limit: f64) -> bool {
        self.roles().iter().zip(par).any(|(r, v)| match r {
            ParRole::Factor { row, col } => row == col && v.abs() <= limit,
            ParRole::Sd(_) => v.abs() <= limit,
            _ => false,
        })
    }

    /// `par` with `T` multiplied by `s` (`Σ_b` by `s²`): every element of an unstructured
    /// factor and every standard deviation scaled, correlations kept.
    pub fn scaled(&self, par: &[f64], s: f64) -> Vec<f64> {
        self.roles()
            .iter()
            .zip(par)
            .map(|(r, &v)| match r {
                ParRole::Factor { .. } | ParRole::Sd(_) => s * v,
                ParRole::Rho | ParRole::Pacf(_) => v,
            })
            .collect()
    }

    /// The largest relative standard deviation of a column: the square root of the largest
    /// diagonal element of `Σ` (for an unstructured term, the norm of a row of `T`). The residual
    /// ray and the inflated restart both read it here.
    pub fn largest_sd(&self, par: &[f64]) -> f64 {
        let q = self.q;
        let s = self.sigma(par);
        (0..q).map(|k| s[k * q + k]).fold(0.0, f64::max).sqrt()
    }

    /// Negates each column of `T` whose diagonal element is negative (unstructured terms; leaves
    /// `T T'` unchanged). The other structures fold their correlation parameters back into
    /// their bounds and take the absolute value of standard deviations whose sign is free
    /// ([`Self::sd_sign_free`]).
    pub fn normalize_signs(&self, par: &mut [f64]) {
        if self.structure != Structure::Unstructured {
            self.fold_into_bounds(par);
            if self.sd_sign_free() {
                for (r, v) in self.roles().iter().zip(par.iter_mut()) {
                    if matches!(r, ParRole::Sd(_)) {
                        *v = v.abs();
                    }
                }
            }
            return;
        }
        let roles = self.roles();
        for c in 0..self.q {
            let diag = roles
                .iter()
                .position(|r| *r == ParRole::Factor { row: c, col: c })
                .expect("every column has a diagonal element");
            if par[diag] < 0.0 {
                for (k, r) in roles.iter().enumerate() {
                    if matches!(r, ParRole::Factor { col, .. } if *col == c) {
                        par[k] = -par[k];
                    }
                }
            }
        }
    }

    /// The restart point off a singular face of the boundary (see
    /// `start::singular_face_restart`): the standard deviations kept, zero ones raised to
    /// `raise × largest` (1 when all are zero), correlations set to 0. `None` when `par` is not on
    /// such a face or the term is a single column (where no other face exists).
    pub fn face_restart(&self, par: &[f64], tol: f64, raise: f64) -> Option<Vec<f64>> {
        if self.q < 2 || !self.is_singular(par, tol) {
            return None;
        }
        let sd = self.column_sds(par);
        let largest = sd.iter().fold(0.0f64, |a, &v| a.max(v));
        let floor = if largest < tol { 1.0 } else { raise * largest };
        let raised: Vec<f64> = sd.iter().map(|v| v.max(floor)).collect();
        Some(self.independent_par(&raised))
    }

    /// A restart point of an unstructured term on a singular face where
    /// [`Covariance::face_restart`] raised a standard deviation that is not 0: the standard
    /// deviations kept as they are (only zero ones raised), correlations 0. Raising a small but
    /// non-zero standard deviation can lead the optimizer back to the face it left, keeping it
    /// can lead to another (a rank-2 `3 × 3` covariance of a factor's random effects, where
    /// each start of the optimizer but this one returned to a face 0.0047 log-likelihood units
    /// below lme4's optimum). `None` where `face_restart` gives none or raises only zero
    /// standard deviations (this point would be its point).
    pub fn kept_sd_restart(&self, par: &[f64], tol: f64, raise: f64) -> Option<Vec<f64>> {
        if self.structure != Structure::Unstructured || self.q < 2 || !self.is_singular(par, tol) {
            return None;
        }
        let sd = self.column_sds(par);
        let largest = sd.iter().fold(0.0f64, |a, &v| a.max(v));
        if largest < tol {
            return None;
        }
        let floor = raise * largest;
        if !sd.iter().any(|&v| v >= tol && v < floor) {
            return None;
        }
        let kept: Vec<f64> = sd
            .iter()
            .map(|&v| if v < tol { floor } else { v })
            .collect();
        Some(self.independent_par(&kept))
    }

    /// The standard deviation of each column: the square roots of `Σ`'s diagonal.
    fn column_sds(&self, par: &[f64]) -> Vec<f64> {
        let s = self.sigma(par);
        let q = self.q;
        (0..q).map(|k| s[k * q + k].max(0.0).sqrt()).collect()
    }

    /// The parameters of this structure with standard deviations `sd` and correlations 0.
    fn independent_par(&self, sd: &[f64]) -> Vec<f64> {
        let q = self.q;
        self.roles()
            .iter()
            .map(|r| match *r {
                ParRole::Factor { row, col } if row == col => sd[row],
                ParRole::Sd(Some(k)) => sd[k],
                ParRole::Sd(None) => (sd.iter().map(|v| v * v).sum::<f64>() / q as f64).sqrt(),
                _ => 0.0,
            })
            .collect()
    }

    /// A second restart off a singular face of an unstructured term: `T` of
    /// `Σ + (raise × largest sd)² I`. Unlike [`Covariance::face_restart`] it keeps the
    /// directions of the correlations and lifts only the degenerate direction, from where the
    /// optimizer can reach a face on which another column is the degenerate one (a rank-2
    /// `3 × 3` covariance can lie on either). `None` for structured terms, a single column, a
    /// term not on its boundary or all variances 0.
    pub fn inflated_restart(&self, par: &[f64], tol: f64, raise: f64) -> Option<Vec<f64>> {
        if self.structure != Structure::Unstructured || self.q < 2 || !self.is_singular(par, tol) {
            return None;
        }
        let q = self.q;
        let largest = self.largest_sd(par);
        if largest < tol {
            return None;
        }
        let lift = (raise * largest).powi(2);
        let mut s = self.sigma(par);
        for k in 0..q {
            s[k * q + k] += lift;
        }
        crate::linalg::small::chol_lower(&mut s, q)?;
        Some(
            (0..q)
                .flat_map(|col| (col..q).map(move |row| (col, row)))
                .map(|(col, row)| s[col * q + row])
                .collect(),
        )
    }
}

/// The parameters Kenward–Roger's method differentiates the absolute covariance `σ²Σ` in, with
/// the first and, where they do not vanish, second derivatives (`q × q`, column-major each).
#[derive(Debug, Clone)]
pub struct KrBasis {
    /// `∂(σ²Σ)/∂ψ_r` for each parameter `r`.
    pub first: Vec<Vec<f64>>,
    /// `((r, s), ∂²(σ²Σ)/∂ψ_r∂ψ_s)` for `r ≤ s` where the second derivative is not zero.
    pub second: Vec<((usize, usize), Vec<f64>)>,
}

impl Covariance {
    /// The Kenward–Roger parameterisation of the term at `par` with residual variance `sigma2`:
    /// where the covariance is linear in some parameters pbkrtest's choice (the covariance
    /// elements of `us`; the variances of `diag`; for a homogeneous `cs` the common covariance
    /// and the extra variance, `σ²Σ = a J + c I`), so that equivalent lme4 models give the same
    /// df; otherwise the variances and the correlation parameters
    /// (`σ²Σ_ij = √(v_i v_j) c_ij(ρ)`), with the second-derivative term of Kenward and Roger
    /// (1997) that a nonlinear covariance needs. `None` when a variance is zero there (the
    /// nonlinear derivatives do not exist on that boundary).
    pub fn kr_basis(&self, par: &[f64], sigma2: f64) -> Option<KrBasis> {
        let q = self.q;
        let unit = |pairs: &[(usize, usize)]| {
            let mut d = vec![0.0; q * q];
            for &(i, j) in pairs {
                d[j * q + i] = 1.0;
                d[i * q + j] = 1.0;
            }
            d
        };
        let linear = |first: Vec<Vec<f64>>| {
            Some(KrBasis {
                first,
                second: Vec::new(),
            })
        };
        match (self.structure, self.hom) {
            (Structure::Unstructured, _) => linear(
                (0..q)
                    .flat_map(|b| (b..q).map(move |a| (a, b)))
                    .map(|(a, b)| unit(&[(a, b)]))
                    .collect(),
            ),
            (Structure::Diagonal, false) => linear((0..q).map(|k| unit(&[(k, k)])).collect()),
            (Structure::Diagonal, true) => {
                let all: Vec<(usize, usize)> = (0..q).map(|k| (k, k)).collect();
                linear(vec![unit(&all)])
            }
            (Structure::CompoundSymmetry, true) => {
                let every: Vec<(usize, usize)> =
                    (0..q).flat_map(|j| (0..q).map(move |i| (i, j))).collect();
                let diagonal: Vec<(usize, usize)> = (0..q).map(|k| (k, k)).collect();
                linear(vec![unit(&every), unit(&diagonal)])
            }
            _ => self.kr_nonlinear(par, sigma2),
        }
    }

    /// [`Covariance::kr_basis`] for `σ²Σ_ij = √(v_i v_j) c_ij(ρ)`: parameters the variances (one
    /// when homogeneous) then the correlation parameters.
    fn kr_nonlinear(&self, par: &[f64], sigma2: f64) -> Option<KrBasis> {
        let q = self.q;
        let n_sd = self.n_sd();
        let v: Vec<f64> = (0..n_sd).map(|k| sigma2 * par[k] * par[k]).collect();
        if v.iter().any(|&x| x <= 0.0) {
            return None;
        }
        let var_of = |i: usize| if self.hom { v[0] } else { v[i] };
        let corr_par = &par[n_sd..];
        let n_corr = corr_par.len();
        let c = self.correlation(par);
        // ∂c/∂ρ_m and ∂²c/∂ρ_m∂ρ_l (q × q each).
        let (dc, ddc) = self.correlation_derivatives(par);
        let np = n_sd + n_corr;
        // g_ij = √(v_i v_j) and its derivatives in the variance parameters.
        let g = |i: usize, j: usize| (var_of(i) * var_of(j)).sqrt();
        let dg = |k: usize, i: usize, j: usize| -> f64 {
            if self.hom {
                // g = v: linear.
                return 1.0;
            }
            match (i == k, j == k) {
                (true, true) => 1.0,
                (true, false) => 0.5 * (v[j] / v[i]).sqrt(),
                (false, true) => 0.5 * (v[i] / v[j]).sqrt(),
                (false, false) => 0.0,
            }
        };
        let ddg = |k: usize, l: usize, i: usize, j: usize| -> f64 {
            if self.hom || i == j {
                return 0.0;
            }
            let (a, b) = (i.min(j), i.max(j));
            if k == l && (k == a || k == b) {
                let other = if k == a { b } else { a };
                -0.25 * v[other].sqrt() / v[k].powf(1.5)
            } else if (k == a && l == b) || (k == b && l == a) {
                0.25 / (v[a] * v[b]).sqrt()
            } else {
                0.0
            }
        };
        let mat = |f: &dyn Fn(usize, usize) -> f64| -> Vec<f64> {
            let mut d = vec![0.0; q * q];
            for j in 0..q {
                for i in 0..q {
                    d[j * q + i] = f(i, j);
                }
            }
            d
        };
        let mut first = Vec::with_capacity(np);
        for k in 0..n_sd {
            first.push(mat(&|i, j| dg(k, i, j) * c[j * q + i]));
        }
        for dcm in dc.iter().take(n_corr) {
            first.push(mat(&|i, j| g(i, j) * dcm[j * q + i]));
        }
        let mut second = Vec::new();
        for r in 0..np {
            for s_ in r..np {
                let d = match (r < n_sd, s_ < n_sd) {
                    (true, true) => mat(&|i, j| ddg(r, s_, i, j) * c[j * q + i]),
                    (true, false) => {
                        let m = s_ - n_sd;
                        mat(&|i, j| dg(r, i, j) * dc[m][j * q + i])
                    }
                    _ => {
                        let (m, l) = (r - n_sd, s_ - n_sd);
                        mat(&|i, j| g(i, j) * ddc[m * n_corr + l][j * q + i])
                    }
                };
                if d.iter().any(|&x| x != 0.0) {
                    second.push(((r, s_), d));
                }
            }
        }
        Some(KrBasis { first, second })
    }

    /// First and second derivatives of the correlation matrix in the correlation parameters:
    /// analytic for `cs` and `ar1`, central differences of the Durbin–Levinson map for `toep`.
    fn correlation_derivatives(&self, par: &[f64]) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let q = self.q;
        let n_sd = self.n_sd();
        let n_corr = par.len() - n_sd;
        let lagged = |f: &dyn Fn(usize) -> f64| -> Vec<f64> {
            let mut d = vec![0.0; q * q];
            for j in 0..q {
                for i in 0..q {
                    d[j * q + i] = f(i.abs_diff(j));
                }
            }
            d
        };
        match self.structure {
            Structure::CompoundSymmetry => (
                vec![lagged(&|k| if k == 0 { 0.0 } else { 1.0 })],
                vec![vec![0.0; q * q]],
            ),
            Structure::Ar1 => {
                let rho = par[n_sd];
                (
                    vec![lagged(&|k| {
                        if k == 0 {
                            0.0
                        } else {
                            k as f64 * rho.powi(k as i32 - 1)
                        }
                    })],
                    vec![lagged(&|k| {
                        if k < 2 {
                            0.0
                        } else {
                            (k * (k - 1)) as f64 * rho.powi(k as i32 - 2)
                        }
                    })],
                )
            }
            _ => {
                let pacf = &par[n_sd..];
                let h = 1e-4;
                let at = |m: usize, dm: f64, l: usize, dl: f64| {
                    let mut p = pacf.to_vec();
                    p[m] += dm;
                    p[l] += dl;
                    lag_correlations(&p)
                };
                let first = (0..n_corr)
                    .map(|m| {
                        let (a, b) = (at(m, h, m, 0.0), at(m, -h, m, 0.0));
                        lagged(&|k| (a[k] - b[k]) / (2.0 * h))
                    })
                    .collect();
                let mut second = Vec::with_capacity(n_corr * n_corr);
                for m in 0..n_corr {
                    for l in 0..n_corr {
                        let (pp, pm, mp, mm) = (
                            at(m, h, l, h),
                            at(m, h, l, -h),
                            at(m, -h, l, h),
                            at(m, -h, l, -h),
                        );
                        let d = if m == l {
                            let (a, b, c0) =
                                (at(m, h, m, h), at(m, -h, m, -h), lag_correlations(pacf));
                            lagged(&|k| (a[k] - 2.0 * c0[k] + b[k]) / (4.0 * h * h))
                        } else {
                            lagged(&|k| (pp[k] - pm[k] - mp[k] + mm[k]) / (4.0 * h * h))
                        };
                        second.push(d);
                    }
                }
                (first, second)
            }
        }
    }
}

/// `T` (`q × q`, column-major, zero above the diagonal) from its lower triangle.
pub fn factor_from_theta(theta: &[f64], q: usize) -> Vec<f64> {
    let mut t = vec![0.0; q * q];
    let mut k = 0;
    for col in 0..q {
        for row in col..q {
            t[col * q + row] = theta[k];
            k += 1;
        }
    }
    t
}

/// Lag correlations `ρ_0 = 1, ρ_1, …, ρ_m` from partial autocorrelations `φ_1 … φ_m`
/// (Durbin–Levinson).
pub fn lag_correlations(pacf: &[f64]) -> Vec<f64> {
    let m = pacf.len();
    let mut rho = vec![1.0; m + 1];
    let mut phi: Vec<f64> = Vec::with_capacity(m);
    for k in 1..=m {
        let p = pacf[k - 1].clamp(-1.0, 1.0);
        let fitted: f64 = (1..k).map(|j| phi[j - 1] * rho[k - j]).sum();
        let explained: f64 = (1..k).map(|j| phi[j - 1] * rho[j]).sum();
        rho[k] = fitted + p * (1.0 - explained);
        let previous = phi.clone();
        for j in 1..k {
            phi[j - 1] = previous[j - 1] - p * previous[k - j - 1];
        }
        phi.push(p);
    }
    rho
}

/// Partial autocorrelations `φ_1 … φ_m` of lag correlations `ρ_1 … ρ_m` (the inverse of
/// [`lag_correlations`]), each kept within ±0.99 so that the result is a valid start.
fn partial_autocorrelations(lags: &[f64]) -> Vec<f64> {
    let m = lags.len();
    let rho = |k: usize| if k == 0 { 1.0 } else { lags[k - 1] };
    let mut phi: Vec<f64> = Vec::with_capacity(m);
    let mut out = Vec::with_capacity(m);
    for k in 1..=m {
        let num = rho(k) - (1..k).map(|j| phi[j - 1] * rho(k - j)).sum::<f64>();
        let den = 1.0 - (1..k).map(|j| phi[j - 1] * rho(j)).sum::<f64>();
        let p = if den > 0.0 { num / den } else { 0.0 };
        let p = p.clamp(-0.99, 0.99);
        let previous = phi.clone();
        for j in 1..k {
            phi[j - 1] = previous[j - 1] - p * previous[k - j - 1];
        }
        phi.push(p);
        out.push(p);
    }
    out
}

/// In place: the lower Cholesky factor of a positive semidefinite `q × q` matrix (column-major);
/// a pivot that is not positive (relative to the diagonal) gives a zero column. The upper
/// triangle is zeroed.
fn semidefinite_cholesky(a: &mut [f64], q: usize) {
    for j in 0..q {
        let scale = a[j * q + j].abs().max(f64::MIN_POSITIVE);
        let mut d = a[j * q + j];
        for k in 0..j {
            d -= a[k * q + j] * a[k * q + j];
        }
        if d <= 1e-13 * scale {
            for i in j..q {
                a[j * q + i] = 0.0;
            }
        } else {
            let l = d.sqrt();
            a[j * q + j] = l;
            for i in j + 1..q {
                let mut v = a[j * q + i];
                for k in 0..j {
                    v -= a[k * q + i] * a[k * q + j];
                }
                a[j * q + i] = v / l;
            }
        }
        for i in 0..j {
            a[j * q + i] = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kinds(q: usize) -> Vec<Covariance> {
        let mut v = vec![Covariance::unstructured(q)];
        for s in [
            Structure::Diagonal,
            Structure::CompoundSymmetry,
            Structure::Ar1,
            Structure::Toeplitz,
        ] {
            for hom in [false, true] {
                v.push(Covariance::new(s, hom, q, "test").unwrap());
            }
        }
        v
    }

    fn some_par(c: &Covariance) -> Vec<f64> {
        let (lo, hi) = (c.lower(), c.upper());
        (0..c.n_par())
            .map(|k| {
                let base = 0.3 + 0.17 * k as f64;
                if hi[k].is_finite() {
                    lo[k] + (hi[k] - lo[k]) * (0.35 + 0.1 * k as f64).min(0.9)
                } else if lo[k].is_finite() {
                    base
                } else {
                    base - 0.5
                }
            })
            .collect()
    }

    fn dense_correlation(c: &Covariance, par: &[f64]) -> Vec<f64> {
        c.correlation(par)
    }

    #[test]
    fn sigma_is_the_structure_it_claims() {
        let q = 4;
        for c in all_kinds(q) {
            let par = some_par(&c);
            let s = c.sigma(&par);
            let sd: Vec<f64> = (0..q).map(|k| s[k * q + k].sqrt()).collect();
            for (k, &got) in sd.iter().enumerate() {
                let want = match c.structure {
                    Structure::Unstructured => got,
                    _ => c.sd(&par, k),
                };
                assert!((got - want).abs() < 1e-12, "{c:?} sd {k}");
            }
            if c.structure != Structure::Unstructured {
                let r = dense_correlation(&c, &par);
                for j in 0..q {
                    for i in 0..q {
                        let got = s[j * q + i] / (sd[i] * sd[j]);
                        assert!((got - r[j * q + i]).abs() < 1e-12, "{c:?} ({i},{j})");
                    }
                }
            }
        }
    }

    #[test]
    fn scaling_multiplies_the_covariance_and_its_largest_sd() {
        let q = 4;
        for c in all_kinds(q) {
            let par = some_par(&c);
            let s = 3.5;
            let base = c.sigma(&par);
            let scaled = c.sigma(&c.scaled(&par, s));
            for (b, x) in base.iter().zip(&scaled) {
                assert!((x - s * s * b).abs() < 1e-12 * (1.0 + x.abs()), "{c:?}");
            }
            let largest = (0..q).map(|k| base[k * q + k]).fold(0.0, f64::max).sqrt();
            assert!((c.largest_sd(&par) - largest).abs() < 1e-12, "{c:?}");
        }
    }

    #[test]
    fn kept_sd_restart_keeps_nonzero_sds_that_face_restart_raises() {
        let c = Covariance::unstructured(3);
        // rank 2: T's second diagonal is 0; the second column's sd is 0.188, below 0.3 × 0.812
        let par = [0.812, -0.188, 0.177, 0.0, -0.087, 0.174];
        let sd: Vec<f64> = {
            let s = c.sigma(&par);
            (0..3).map(|k| s[k * 3 + k].sqrt()).collect()
        };
        let face = c.face_restart(&par, 1e-4, 0.3).unwrap();
        let kept = c.kept_sd_restart(&par, 1e-4, 0.3).unwrap();
        // T's diagonal then off-diagonal positions in column-major lower-triangle order
        assert!((face[3] - 0.3 * sd[0]).abs() < 1e-12);
        for (k, &d) in [0usize, 3, 5].iter().enumerate() {
            assert!((kept[d] - sd[k]).abs() < 1e-12, "{k}");
        }
        for o in [1usize, 2, 4] {
            assert_eq!(kept[o], 0.0);
        }
        // every non-zero sd at least 0.3 × the largest: the face restart's point, so none
        let wide = [0.812, -0.5, 0.4, 0.0, -0.087, 0.174];
        assert!(c.face_restart(&wide, 1e-4, 0.3).is_some());
        assert!(c.kept_sd_restart(&wide, 1e-4, 0.3).is_none());
        // not singular, or structured: none
        assert!(c
            .kept_sd_restart(&[0.8, -0.1, 0.2, 0.3, -0.1, 0.2], 1e-4, 0.3)
            .is_none());
        let cs = Covariance::new(Structure::CompoundSymmetry, false, 3, "t").unwrap();
        assert!(cs
            .kept_sd_restart(&[1.0, 0.1, 1.0, 0.2], 1e-4, 0.3)
            .is_none());
    }

    #[test]
    fn inflated_restart_lifts_the_covariance_off_its_face() {
        let c = Covariance::unstructured(3);
        // rank 2: the third column of T is zero
        let par = [0.7, 0.2, -0.1, 0.5, 0.3, 0.0];
        let restart = c.inflated_restart(&par, 1e-4, 0.3).unwrap();
        let (s0, s1) = (c.sigma(&par), c.sigma(&restart));
        let largest = (0..3).map(|k| s0[k * 3 + k]).fold(0.0, f64::max);
        for j in 0..3 {
            for i in 0..3 {
                let lift = if i == j { 0.09 * largest } else { 0.0 };
                assert!(
                    (s1[j * 3 + i] - s0[j * 3 + i] - lift).abs() < 1e-12,
                    "({i},{j})"
                );
            }
        }
        assert!(c
            .inflated_restart(&[0.7, 0.2, -0.1, 0.5, 0.3, 0.4], 1e-4, 0.3)
            .is_none());
        let cs = Covariance::new(Structure::CompoundSymmetry, false, 3, "t").unwrap();
        assert!(cs
            .inflated_restart(&[1.0, 0.0, 1.0, 0.2], 1e-4, 0.3)
            .is_none());
    }

    #[test]
    fn derivative_matches_finite_differences() {
        for q in [2, 3, 5] {
            for c in all_kinds(q) {
                let par = some_par(&c);
                let d = c.d_sigma(&par);
                assert_eq!(d.len(), c.n_par());
                for k in 0..c.n_par() {
                    let h = 1e-5;
                    let mut up = par.clone();
                    let mut down = par.clone();
                    up[k] += h;
                    down[k] -= h;
                    let (a, b) = (c.sigma(&up), c.sigma(&down));
                    for e in 0..q * q {
                        let fd = (a[e] - b[e]) / (2.0 * h);
                        assert!(
                            (fd - d[k][e]).abs() < 1e-6 * (1.0 + fd.abs()),
                            "{c:?} par {k} entry {e}: fd {fd} analytic {}",
                            d[k][e]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn theta_round_trips_through_par() {
        for q in [2, 3, 4] {
            for c in all_kinds(q) {
                let par = some_par(&c);
                let mut theta = vec![0.0; c.n_theta()];
                c.theta(&par, &mut theta);
                let back = c.par_from_theta(&theta);
                for (a, b) in par.iter().zip(&back) {
                    assert!((a - b).abs() < 1e-10, "{c:?}: {par:?} -> {back:?}");
                }
            }
        }
    }

    #[test]
    fn bounds_hold_and_outside_is_refused() {
        let c = Covariance::new(Structure::CompoundSymmetry, false, 4, "t").unwrap();
        assert_eq!(c.lower()[4], -1.0 / 3.0);
        assert_eq!(c.upper()[4], 1.0);
        let mut theta = vec![0.0; c.n_theta()];
        c.theta(&[1.0, 1.0, 1.0, 1.0, 2.5], &mut theta);
        assert!(theta.iter().all(|v| v.is_nan()));
        // Beyond a bound the map is reflected: even about the bound.
        let (mut a, mut b) = (vec![0.0; c.n_theta()], vec![0.0; c.n_theta()]);
        c.theta(&[1.0, 2.0, 0.5, 1.5, 1.2], &mut a);
        c.theta(&[1.0, 2.0, 0.5, 1.5, 0.8], &mut b);
        assert_eq!(a, b);
        // On the boundary R is singular and T T' still reproduces it.
        for rho in [1.0, -1.0 / 3.0] {
            let par = [1.0, 2.0, 0.5, 1.5, rho];
            let s = c.sigma(&par);
            assert!((s[4] - 2.0 * rho).abs() < 1e-12, "rho {rho}: {}", s[4]);
            assert!(c.is_singular(&par, 1e-4));
        }
        let a = Covariance::new(Structure::Ar1, true, 3, "t").unwrap();
        let s = a.sigma(&[2.0, -1.0]);
        assert!((s[2 * 3] - 4.0).abs() < 1e-12);
        assert!(Covariance::new(Structure::Ar1, true, 1, "(1 | g)").is_err());
        assert!(Covariance::new(Structure::Unstructured, true, 2, "t").is_err());
    }

    #[test]
    fn toeplitz_partial_autocorrelations_give_a_valid_correlation() {
        let c = Covariance::new(Structure::Toeplitz, true, 5, "t").unwrap();
        let par = [1.0, 0.9, -0.8, 0.7, 0.95];
        let s = c.sigma(&par);
        let mut l = s.clone();
        // Positive definite: an ordinary Cholesky succeeds.
        assert!(crate::small::chol_lower(&mut l, 5).is_some());
        assert!((s[1] - 0.9).abs() < 1e-12);
    }

    #[test]
    fn kenward_roger_derivatives_match_finite_differences() {
        // The KR parameters of the nonlinear structures: variances (σ² s_k²) and correlations.
        for q in [2, 3, 4] {
            for c in all_kinds(q) {
                let par = some_par(&c);
                let sigma2 = 1.7;
                let basis = c.kr_basis(&par, sigma2).unwrap();
                let linear = matches!(c.structure, Structure::Unstructured | Structure::Diagonal)
                    || (c.structure == Structure::CompoundSymmetry && c.hom);
                if linear {
                    assert!(basis.second.is_empty(), "{c:?}");
                    continue;
                }
                let n_sd = c.n_sd();
                // ψ → par: s_k = √(v_k / σ²).
                let sigma_abs = |psi: &[f64]| {
                    let mut p = psi.to_vec();
                    for v in p.iter_mut().take(n_sd) {
                        *v = (*v / sigma2).sqrt();
                    }
                    c.sigma(&p).iter().map(|x| x * sigma2).collect::<Vec<f64>>()
                };
                let mut psi = par.clone();
                for v in psi.iter_mut().take(n_sd) {
                    *v = sigma2 * *v * *v;
                }
                let h = 1e-5;
                for r in 0..psi.len() {
                    let mut up = psi.clone();
                    let mut down = psi.clone();
                    up[r] += h;
                    down[r] -= h;
                    let (a, b) = (sigma_abs(&up), sigma_abs(&down));
                    for e in 0..q * q {
                        let fd = (a[e] - b[e]) / (2.0 * h);
                        let got = basis.first[r][e];
                        assert!(
                            (fd - got).abs() < 1e-6 * (1.0 + fd.abs()),
                            "{c:?} first {r} {e}: {fd} {got}"
                        );
                    }
                    for s_ in r..psi.len() {
                        let h2 = 1e-4;
                        let f = |dr: f64, ds: f64| {
                            let mut p = psi.clone();
                            p[r] += dr;
                            p[s_] += ds;
                            sigma_abs(&p)
                        };
                        let (pp, pm, mp, mm) = (f(h2, h2), f(h2, -h2), f(-h2, h2), f(-h2, -h2));
                        let got = basis
                            .second
                            .iter()
                            .find(|(k, _)| *k == (r, s_))
                            .map(|(_, d)| d.clone())
                            .unwrap_or_else(|| vec![0.0; q * q]);
                        for e in 0..q * q {
                            let fd = (pp[e] - pm[e] - mp[e] + mm[e]) / (4.0 * h2 * h2);
                            assert!(
                                (fd - got[e]).abs() < 1e-4 * (1.0 + fd.abs()),
                                "{c:?} second {r},{s_} {e}: {fd} {}",
                                got[e]
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn signs_normalised_for_unstructured_terms() {
        let c = Covariance::unstructured(2);
        let mut par = vec![-1.0, 0.5, 2.0];
        c.normalize_signs(&mut par);
        assert_eq!(par, vec![1.0, -0.5, 2.0]);
    }

    /// The search keeps the lower bound 0 only of standard deviations whose sign changes `Σ`
    /// (those of a heterogeneous correlated structure) and of no unstructured element; the
    /// correlations keep theirs. Normalizing the signs makes the free standard deviations
    /// positive, with `Σ` unchanged.
    #[test]
    fn searches_keep_the_bounds_whose_sign_matters() {
        let ninf = f64::NEG_INFINITY;
        // (term, search lower bounds, positions of the standard deviations)
        let cases = [
            (
                Covariance::unstructured(2),
                vec![ninf, ninf, ninf],
                vec![0, 2],
            ),
            (
                Covariance::new(Structure::Diagonal, false, 2, "t").unwrap(),
                vec![ninf, ninf],
                vec![0, 1],
            ),
            (
                Covariance::new(Structure::CompoundSymmetry, false, 3, "t").unwrap(),
                vec![0.0, 0.0, 0.0, -0.5],
                vec![0, 1, 2],
            ),
            (
                Covariance::new(Structure::CompoundSymmetry, true, 3, "t").unwrap(),
                vec![ninf, -0.5],
                vec![0],
            ),
            (
                Covariance::new(Structure::Ar1, false, 2, "t").unwrap(),
                vec![0.0, 0.0, -1.0],
                vec![0, 1],
            ),
            (
                Covariance::new(Structure::Toeplitz, true, 3, "t").unwrap(),
                vec![ninf, -1.0, -1.0],
                vec![0],
            ),
        ];
        for (c, want, sds) in cases {
            assert_eq!(c.search_lower(), want, "{:?}", c.structure);
            assert_eq!(c.sd_positions(), sds, "{:?}", c.structure);
        }
        for hom in [false, true] {
            let c = Covariance::new(Structure::Diagonal, hom, 2, "t").unwrap();
            let mut par: Vec<f64> = (0..c.n_par()).map(|k| -0.5 - k as f64).collect();
            let before = c.sigma(&par);
            c.normalize_signs(&mut par);
            assert!(par.iter().all(|&v| v > 0.0));
            assert_eq!(c.sigma(&par), before);
        }
        let c = Covariance::new(Structure::Ar1, true, 3, "t").unwrap();
        let mut par = vec![-0.7, 0.4];
        let before = c.sigma(&par);
        c.normalize_signs(&mut par);
        assert_eq!(par, vec![0.7, 0.4]);
        let after = c.sigma(&par);
        for (a, b) in after.iter().zip(&before) {
            assert!((a - b).abs() < 1e-15);
        }
    }
}
