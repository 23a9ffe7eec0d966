# Profile confidence intervals for glmm() fits, side by side with lme4's
# confint() of glmer() fits run to their optimum (fit_glmm_pair()).
#
# How close can they be? lme4's own Laplace deviance function (the devfun of a
# glmer fit, which its profile() minimizes) is off by up to ~1e-3 at points
# away from the optimum (its PIRLS does not reach the modes there, whatever
# tolPwrss), and its first profile step, 1% off the estimate, is the most
# affected. Its intervals move by that, up to ~1.5e-4 relatively (~1e-3 where
# a non-monotonic profile is read by linear interpolation). Ours lie on the
# exact Laplace profile: the tests "profile points lie on the exact ..."
# check that against deviances computed here from scratch. With adaptive
# Gauss-Hermite quadrature (nAGQ > 1), where lme4's deviance is exact, the
# two agree to ~1e-8. The tolerances below are those of testthat's
# expect_equal(): mean relative differences over the whole table.

lme4_ci <- function(fm, ...) suppressWarnings(suppressMessages(confint(fm, quiet = TRUE, ...)))


# Binary responses with a correlated random intercept and slope whose
# profiles are all monotonic (unlike slope_data(), whose slope standard
# deviation reaches 0 inside the correlation's profile).
slope_data2 <- function() {
  set.seed(11)
  d <- data.frame(g = factor(rep(1:40, each = 25)), x = stats::runif(1000, -1, 1))
  b <- MASS::mvrnorm(40, c(0, 0), matrix(c(1, 0.48, 0.48, 1.44), 2))
  d$y <- stats::rbinom(1000, 1, stats::plogis(-0.2 + 0.7 * d$x + b[d$g, 1] + b[d$g, 2] * d$x))
  d
}

# Poisson counts with exposure times.
poisson_offset_data <- function() {
  set.seed(3)
  d <- data.frame(g = factor(rep(1:25, each = 8)), x = stats::rnorm(200),
                  t = stats::runif(200, 0.5, 3))
  d$y <- stats::rpois(200, d$t * exp(0.3 + 0.4 * d$x + stats::rnorm(25, sd = 0.5)[d$g]))
  d
}

# Binary responses with two crossed grouping factors.
crossed_data <- function() {
  set.seed(7)
  d <- expand.grid(a = factor(1:12), b = factor(1:10), rep = 1:2)
  d$x <- stats::rnorm(nrow(d))
  d$y <- stats::rbinom(nrow(d), 1, stats::plogis(-0.3 + 0.6 * d$x +
                                                   stats::rnorm(12, sd = 0.8)[d$a] +
                                                   stats::rnorm(10, sd = 0.5)[d$b]))
  d
}

# The Laplace deviance of a binary or binomial model with one grouping factor
# g and random-effects columns Z (one or two), from scratch: per group, Newton's method for
# the conditional mode u of the spherical random effects and
# -2 log p(y | u) + |u|^2 + log det(Lambda'Z'WZ Lambda + I).
exact_laplace <- function(pars, y, size, xmat, zmat, g) {
  q <- ncol(zmat)
  k <- q * (q + 1) / 2
  sdcor <- pars[seq_len(k)]
  beta <- pars[-seq_len(k)]
  # Lower Cholesky factor of the covariance matrix (q = 1 or 2).
  L <- if (q == 1L) {
    matrix(sdcor[1L])
  } else {
    r <- sdcor[2L]
    matrix(c(sdcor[1L], r * sdcor[3L], 0, sdcor[3L] * sqrt(1 - r^2)), 2L)
  }
  eta0 <- drop(xmat %*% beta)
  total <- 0
  for (j in levels(g)) {
    i <- which(g == j)
    ZL <- zmat[i, , drop = FALSE] %*% L
    u <- rep(0, q)
    for (it in 1:100) {
      mu <- stats::plogis(eta0[i] + drop(ZL %*% u))
      grad <- -crossprod(ZL, y[i] - size[i] * mu) + u
      H <- crossprod(ZL, ZL * (size[i] * mu * (1 - mu))) + diag(q)
      step <- solve(H, grad)
      u <- u - drop(step)
      if (max(abs(step)) < 1e-13) break
    }
    mu <- stats::plogis(eta0[i] + drop(ZL %*% u))
    H <- crossprod(ZL, ZL * (size[i] * mu * (1 - mu))) + diag(q)
    total <- total - 2 * sum(stats::dbinom(y[i], size[i], mu, log = TRUE)) + sum(u^2) +
      as.numeric(determinant(H)$modulus)
  }
  total
}

# Checks that every point of the profile of parameter `nm` has deviance
# base + zeta^2 by exact_laplace().
expect_exact_profile <- function(pr, nm, base, ...) {
  d <- as.data.frame(unclass(pr))
  rows <- d[d$.par == nm, , drop = FALSE]
  pars <- as.matrix(rows[, setdiff(names(rows), c(".zeta", ".par"))])
  dev <- apply(pars, 1L, exact_laplace, ...)
  expect_lt(max(abs(dev - base - rows$.zeta^2)), 1e-6)
}

test_that("profile intervals match lme4 for cbpp (binomial with cbind(), Laplace and AGQ)", {
  skip_if_no_glmm()
  pair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                   family = binomial, data = lme4::cbpp)))
  ours <- confint(pair$fit, quiet = TRUE)
  ref <- lme4_ci(pair$ref)
  expect_identical(dimnames(ours), dimnames(ref))
  expect_equal(ours, ref, tolerance = 2e-4)

  pair5 <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                    family = binomial, data = lme4::cbpp, nAGQ = 5)))
  expect_equal(confint(pair5$fit, quiet = TRUE), lme4_ci(pair5$ref), tolerance = 1e-6)
})

test_that("cbpp profile points lie on the exact Laplace profile", {
  skip_if_no_glmm()
  cbpp <- lme4::cbpp
  fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), family = binomial,
              data = cbpp)
  pr <- profile(fit, which = c(".sig01", "period2"))
  base <- -2 * as.numeric(logLik(fit))
  args <- list(y = cbpp$incidence, size = cbpp$size, xmat = fit$X,
               zmat = matrix(1, nrow(cbpp), 1), g = cbpp$herd)
  expect_equal(do.call(exact_laplace, c(list(attr(pr, "optimum")), args)), base,
               tolerance = 1e-9)
  for (nm in c(".sig01", "period2")) do.call(expect_exact_profile, c(list(pr, nm, base), args))
})

test_that("profile intervals match lme4 for a binary response with a random slope", {
  skip_if_no_glmm()
  skip_if_not_installed("MASS")
  sd2 <- slope_data2()
  pair <- fit_glmm_pair(quote(glmm(y ~ x + (x | g), family = binomial, data = sd2)))
  ours <- confint(pair$fit, quiet = TRUE)
  expect_identical(rownames(ours), c(".sig01", ".sig02", ".sig03", "(Intercept)", "x"))
  expect_equal(ours, lme4_ci(pair$ref), tolerance = 5e-4)

  # The points lie on the exact Laplace profile (where lme4's deviates by up to 3e-2 in zeta).
  pr <- profile(pair$fit, which = c(".sig02", "(Intercept)"))
  base <- -2 * as.numeric(logLik(pair$fit))
  for (nm in c(".sig02", "(Intercept)")) {
    expect_exact_profile(pr, nm, base, y = sd2$y, size = rep(1, nrow(sd2)),
                         xmat = pair$fit$X, zmat = cbind(1, sd2$x), g = sd2$g)
  }
})

test_that("a non-monotonic correlation profile warns and falls back as in lme4", {
  skip_if_no_glmm()
  pair <- fit_glmm_pair(quote(glmm(y ~ x + (x | g), family = binomial, data = slope_data())))
  ours <- collect_warnings(confint(pair$fit, parm = "theta_", quiet = TRUE))
  ref <- collect_warnings(confint(pair$ref, parm = "theta_", quiet = TRUE))
  # (lme4 adds approx()'s "collapsing to unique 'x' values" where rounding
  # happens to make its flat points' zeta exactly equal, which depends on the
  # machine; ours reads a flat stretch by its end nearest the estimate and
  # has nothing to collapse: see the next test.)
  expect_true(all(ours$warnings %in% ref$warnings))
  expect_true(all(c("non-monotonic profile for .sig02",
                    "bad spline fit for .sig02: falling back to linear interpolation") %in%
                    ours$warnings))
  # Linear interpolation between points placed differently: looser.
  expect_equal(ours$value, ref$value, tolerance = 2e-3)
  expect_equal(ours$value[c(".sig01", ".sig03"), ], ref$value[c(".sig01", ".sig03"), ],
               tolerance = 2e-4)
})

test_that("a flat stretch of a profile is read by its end nearest the estimate", {
  # zeta is flat (-2) from par = -1 to -0.6, as for a correlation whose
  # standard deviation is 0 there, so the profile is read linearly. Between
  # zeta -2 and -1.5 the profile runs from par -0.6 to -0.5: zeta = -1.8 is
  # crossed at -0.56 (averaging the flat stretch as approxfun() does would
  # give -0.68), and zeta = -2 first at the stretch's inner end, -0.6.
  pr <- structure(data.frame(.zeta = c(-2, -2, -1.5, 0, 1, 2),
                             rho = c(-1, -0.6, -0.5, 0, 0.5, 1),
                             .par = factor(rep("rho", 6))),
                  lower = c(rho = -1), upper = c(rho = 1), optimum = c(rho = 0),
                  class = c("lmmprofile", "data.frame"))
  ours <- collect_warnings(confint(pr, zeta = c(-1.8, -2, 1.5)))
  expect_identical(ours$warnings, "bad spline fit for rho: falling back to linear interpolation")
  expect_equal(drop(ours$value), c(-0.56, -0.6, 0.75), tolerance = 1e-12)
})

test_that("profile intervals match lme4 for a Poisson model with an offset", {
  skip_if_no_glmm()
  pd <- poisson_offset_data()
  pair <- fit_glmm_pair(quote(glmm(y ~ x + offset(log(t)) + (1 | g), family = poisson,
                                   data = pd)))
  ours <- confint(pair$fit, quiet = TRUE)
  ref <- lme4_ci(pair$ref)
  expect_identical(dimnames(ours), dimnames(ref))
  expect_equal(ours, ref, tolerance = 2e-4)
})

test_that("profile intervals match lme4 for crossed random effects", {
  skip_if_no_glmm()
  cd <- crossed_data()
  pair <- fit_glmm_pair(quote(glmm(y ~ x + (1 | a) + (1 | b), family = binomial, data = cd)))
  ours <- confint(pair$fit, quiet = TRUE)
  ref <- lme4_ci(pair$ref)
  expect_identical(dimnames(ours), dimnames(ref))
  expect_equal(ours, ref, tolerance = 2e-4)
  # The standard deviation of b reaches 0 within the interval: its lower end is 0.
  expect_identical(ours[".sig02", "2.5 %"], 0)
})

test_that("a singular fit's standard deviation has lower end 0", {
  skip_if_no_glmm()
  pair <- fit_glmm_pair(quote(glmm(y ~ x + (1 | g), family = binomial, data = singular_data())))
  expect_equal(unname(pair$fit$theta), 0)
  ours <- collect_warnings(confint(pair$fit, quiet = TRUE))
  expect_identical(ours$warnings, character())
  expect_identical(ours$value[".sig01", "2.5 %"], 0)
  expect_equal(ours$value, lme4_ci(pair$ref), tolerance = 1e-4)
})

test_that("parm, level, zeta and oldNames work as in lme4 for glmm fits", {
  skip_if_no_glmm()
  pair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                   family = binomial, data = lme4::cbpp)))
  fit <- pair$fit
  for (p in list("theta_", c(".sig01", "period2"), 2:3, c(5, 1))) {
    expect_equal(confint(fit, parm = p, quiet = TRUE), lme4_ci(pair$ref, parm = p),
                 tolerance = 2e-4)
  }
  expect_equal(confint(fit, parm = "beta_", level = 0.9, quiet = TRUE),
               lme4_ci(pair$ref, parm = "beta_", level = 0.9), tolerance = 2e-4)
  named <- confint(fit, parm = "theta_", oldNames = FALSE, quiet = TRUE)
  expect_identical(rownames(named), "sd_(Intercept)|herd")
  expect_identical(dimnames(named), dimnames(lme4_ci(pair$ref, parm = "theta_",
                                                     oldNames = FALSE)))
  # At zeta = +-1 the ends fall near lme4's least accurate points (next to the
  # estimate): looser.
  z <- confint(fit, parm = "period2", zeta = c(-1, 1), quiet = TRUE)
  expect_null(colnames(z))
  expect_equal(unname(z), unname(lme4_ci(pair$ref, parm = "period2", zeta = c(-1, 1))),
               tolerance = 1e-3)
  expect_message(confint(fit, parm = "theta_"), "Computing profile confidence intervals")
})

test_that("profile() of a glmm fit returns the profile that confint() reads", {
  skip_if_no_glmm()
  fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), family = binomial,
              data = lme4::cbpp)
  pr <- profile(fit)
  expect_s3_class(pr, "lmmprofile")
  pars <- c(".sig01", "(Intercept)", "period2", "period3", "period4")
  expect_identical(levels(pr$.par), pars)
  expect_identical(names(pr), c(".zeta", pars, ".par"))
  expect_equal(pr$.zeta[pr$.par == "period2" &
                          pr$period2 == attr(pr, "optimum")[["period2"]]], 0)
  expect_equal(attr(pr, "optimum"), c(.sig01 = unname(fit$theta), fixef(fit)), tolerance = 1e-5)
  expect_identical(attr(pr, "lower"), stats::setNames(c(0, rep(-Inf, 4)), pars))
  expect_identical(attr(pr, "upper"), stats::setNames(rep(Inf, 5), pars))
  expect_equal(confint(pr), confint(fit, quiet = TRUE))
  expect_equal(confint(pr, parm = 2:3, level = 0.9),
               confint(fit, parm = c("(Intercept)", "period2"), level = 0.9, quiet = TRUE))
  # one thread and two give the same profile
  expect_identical(profile(fit, which = 1:2, threads = 1), profile(fit, which = 1:2, threads = 2))
  named <- profile(fit, which = "theta_", signames = FALSE)
  expect_identical(levels(named$.par), "sd_(Intercept)|herd")
})

test_that("bad arguments and unprofilable glmm fits are errors that say why", {
  skip_if_no_glmm()
  cbpp <- lme4::cbpp
  fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), family = binomial,
              data = cbpp)
  expect_error(confint(fit, parm = "nope", quiet = TRUE), "'parm' names unknown parameters")
  expect_error(confint(fit, parm = 9, quiet = TRUE), "'parm' must hold indices")
  expect_error(profile(fit, which = "nope"), "'which' names unknown parameters")
  expect_error(profile(fit, which = 0), "'which' must hold indices")
  expect_error(profile(fit, alphamax = 2), "'alphamax' must be a number between 0 and 1")
  expect_error(confint(fit, quiet = TRUE, maxpts = 0), "'maxpts' must be a positive whole number")
  expect_error(confint(fit, quiet = TRUE, nonsense = 0), "does not use the argument.*nonsense")
  pr <- profile(fit, which = "period2")
  expect_error(confint(pr, parm = "period3"), "'parm' names parameters that were not profiled")
  expect_error(confint(pr, parm = 2), "'parm' must hold indices")
  expect_error(confint(fit, level = 1, quiet = TRUE), "'level'")
  expect_error(confint(fit, threads = 0, quiet = TRUE), "'threads'")

  f0 <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), family = binomial,
             data = cbpp, nAGQ = 0)
  expect_error(confint(f0, quiet = TRUE), "nAGQ >= 1")
  expect_error(profile(f0), "nAGQ >= 1")
  expect_identical(dim(confint(f0, method = "Wald")), c(5L, 2L))

  fg <- suppressWarnings(glmm(y ~ x + (1 | g), family = Gamma(link = "log"), data = gamma_data()))
  expect_error(confint(fg, quiet = TRUE), "scale parameter")
  expect_error(profile(fg), "scale parameter")
})
