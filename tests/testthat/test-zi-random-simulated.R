# Random effects in the zero-inflation model on simulated data of random
# shape (number of groups, group sizes, variances, dispersion), side by side
# with glmmTMB: the optimum's log-likelihood, every coefficient and both
# standard deviations.

skip_if_not_installed("glmmTMB")

simulate_zi_random <- function(seed, family) {
  set.seed(seed)
  ng <- sample(10:30, 1)
  n <- ng * sample(8:20, 1)
  d <- data.frame(g = factor(sample(ng, n, TRUE)), x = stats::rnorm(n), z = stats::rnorm(n))
  b <- stats::rnorm(ng, sd = stats::runif(1, 0.2, 1))
  bz <- stats::rnorm(ng, sd = stats::runif(1, 0.3, 1.5))
  mu <- exp(0.5 + 0.4 * d$x + b[d$g])
  p <- stats::plogis(-0.7 + 0.5 * d$z + bz[d$g])
  y <- if (family == "poisson") stats::rpois(n, mu) else
    stats::rnbinom(n, mu = mu, size = stats::runif(1, 0.8, 4))
  d$y <- ifelse(stats::runif(n) < p, 0, y)
  d
}

test_that("simulated zero-inflated fits with zi random effects reach glmmTMB's optimum", {
  for (seed in c(2, 6, 8, 11)) for (family in c("poisson", "nbinom2")) {
    d <- simulate_zi_random(seed, family)
    fam <- if (family == "poisson") stats::poisson() else glmmTMB::nbinom2()
    fit <- glmm(y ~ x + (1 | g), ziformula = ~ z + (1 | g), family = fam, data = d)
    ref <- glmmTMB::glmmTMB(y ~ x + (1 | g), ziformula = ~ z + (1 | g), family = fam, data = d)
    label <- paste(family, "seed", seed)
    expect_true(ref$sdr$pdHess && ref$fit$convergence == 0, label = paste(label, "glmmTMB"))
    expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref)), tolerance = 1e-8,
                 label = paste(label, "logLik"))
    se <- sqrt(c(diag(vcov(ref)$cond), diag(vcov(ref)$zi)))
    diffs <- c(fixef(fit)$cond - glmmTMB::fixef(ref)$cond, fixef(fit)$zi - glmmTMB::fixef(ref)$zi)
    expect_lt(max(abs(diffs) / se), 2e-3, label = paste(label, "coefficients"))
    vc <- glmmTMB::VarCorr(ref)
    expect_equal(c(unname(fit$theta), fit$extended$zi$random$theta),
                 unname(c(attr(vc$cond$g, "stddev"), attr(vc$zi$g, "stddev"))),
                 tolerance = 1e-3, label = paste(label, "standard deviations"))
    if (family == "nbinom2") {
      expect_equal(sigma(fit), sigma(ref), tolerance = 1e-3, label = paste(label, "theta"))
    }
  }
})

# Data of random shape with the zero-inflation groups shared with the
# conditional model or crossed with them, zero inflation of random size, and
# a dispersion of random size for the negative binomials.
simulate_zi_crossed <- function(seed, family, shared) {
  set.seed(seed)
  ng <- sample(6:40, 1)
  n <- ng * sample(5:25, 1)
  d <- data.frame(g = factor(sample(ng, n, TRUE)), h = factor(sample(sample(4:12, 1), n, TRUE)),
                  x = stats::rnorm(n), z = stats::rnorm(n))
  b <- stats::rnorm(ng, sd = stats::runif(1, 0, 1.2))
  bz <- stats::rnorm(nlevels(d$h), sd = stats::runif(1, 0, 2))
  if (shared) bz <- stats::rnorm(ng, sd = stats::runif(1, 0, 2))
  mu <- exp(stats::runif(1, -1, 1.5) + 0.4 * d$x + b[d$g])
  p <- stats::plogis(stats::runif(1, -2, 1) + 0.5 * d$z + (if (shared) bz[d$g] else bz[d$h]))
  y <- switch(family,
              poisson = stats::rpois(n, mu),
              nbinom2 = stats::rnbinom(n, mu = mu, size = stats::runif(1, 0.5, 5)),
              nbinom1 = {
                phi <- stats::runif(1, 0.3, 3)
                stats::rnbinom(n, mu = mu, size = mu / phi)
              })
  d$y <- ifelse(stats::runif(n) < p, 0, y)
  d
}

test_that("fits leave the local optima with a zero-inflation variance at 0 that glmmTMB leaves", {
  # From lme4's start (with its first stage) and from the fit without the
  # zero-inflation random effects, each of these searches ended where the
  # zero-inflation standard deviation is 0, 0.2 to 2.4 log-likelihood units
  # below glmmTMB's optimum; glmmTMB's start is one of the searches' starts.
  cases <- list(list(seed = 34, family = "nbinom1", shared = TRUE),
                list(seed = 25, family = "nbinom1", shared = FALSE),
                list(seed = 29, family = "nbinom2", shared = FALSE))
  for (cs in cases) {
    d <- simulate_zi_crossed(cs$seed, cs$family, cs$shared)
    fam <- switch(cs$family, nbinom1 = glmmTMB::nbinom1(), nbinom2 = glmmTMB::nbinom2())
    zi <- if (cs$shared) ~ z + (1 | g) else ~ z + (1 | h)
    fit <- suppressWarnings(glmm(y ~ x + (1 | g), ziformula = zi, family = fam, data = d))
    ref <- suppressWarnings(glmmTMB::glmmTMB(y ~ x + (1 | g), ziformula = zi, family = fam,
                                             data = d))
    label <- paste(cs$family, "seed", cs$seed)
    expect_true(ref$sdr$pdHess && ref$fit$convergence == 0, label = paste(label, "glmmTMB"))
    expect_gt(as.numeric(logLik(fit)) - as.numeric(logLik(ref)), -1e-6,
              label = paste(label, "logLik difference"))
    vc <- glmmTMB::VarCorr(ref)$zi
    expect_equal(fit$extended$zi$random$theta, unname(attr(vc[[1L]], "stddev")),
                 tolerance = 1e-3, label = paste(label, "zero-inflation standard deviation"))
    se <- sqrt(diag(vcov(ref)$zi))
    expect_lt(max(abs(fixef(fit)$zi - glmmTMB::fixef(ref)$zi) / se), 2e-3,
              label = paste(label, "zero-inflation coefficients"))
  }
})
