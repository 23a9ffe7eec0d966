# GLMM fits that end with a vector-valued term singular are restarted off that
# face of the boundary (stage 2 again from the term's standard deviations with
# the zero ones raised, or from lme4's start when all are zero), and the better
# optimum kept: a singular optimum where the Laplace deviance does not depend on
# all of the term's parameters may not be the lowest one. Fits whose criterion
# is lower with one term's covariance at 0 are restarted from there.

test_that("a GLMM stuck at a zero random-slope term finds glmer's rank-1 optimum", {
  skip_if_not_installed("lme4")
  # The random comparison's logit_slopes seed 24: the first stage 2 ended at
  # theta = 0 (logLik -61.4452); glmer reaches -61.4366 with correlation -1.
  m <- random_glmm("logit_slopes", 24)
  fit <- suppressMessages(glmm(m$formula, m$data, family = m$family))
  ref <- suppressMessages(suppressWarnings(lme4::glmer(
    m$formula, m$data, family = m$family, control = glmer_reference_control())))
  # glmer at full precision and ours agree to PIRLS's rounding at a common optimum.
  expect_gte(c(logLik(fit)) - c(logLik(ref)), -1e-6)
  expect_equal(unname(fixef(fit)), unname(lme4::fixef(ref)), tolerance = 1e-4)
  # Stage 2 (the last, and with the quasi-Newton search the only, stage) ran twice.
  expect_equal(tail(fit$optinfo$starts, 1L), 2L)
})

test_that("a GLMM at a shallow interior optimum restarts where a variance at 0 is better", {
  skip_if_not_installed("lme4")
  # A random Poisson model (76% zeros) with an observation-level random effect and an
  # unmodelled crossed effect: the quasi-Newton search from the moment start converged
  # to a stationary point at sd(obs) = 0.39, 0.0100 in log-likelihood below the Poisson
  # GLM (both variances 0), which glmer reaches from theta = 1 down.
  set.seed(108)
  invisible(sample(9, 1))
  ng <- sample(5:25, 1); nh <- sample(4:15, 1); n <- sample(80:500, 1)
  d <- data.frame(g = factor(sample(ng, n, TRUE)), h = factor(sample(nh, n, TRUE)),
                  x = rnorm(n), z = runif(n), f = factor(sample(letters[1:3], n, TRUE)))
  ug <- rnorm(ng, sd = runif(1, 0, 3)); uh <- rnorm(nh, sd = runif(1, 0, 1))
  invisible(rnorm(ng, sd = runif(1, 0, 0.8)))
  eta <- runif(1, -4.5, 2.5) + 0.5 * d$x + ug[d$g] + uh[d$h]
  d$obs <- factor(seq_len(n))
  d$y <- rpois(n, exp(eta + rnorm(n, sd = 0.4)))
  form <- y ~ x + (1 | g) + (1 | obs)
  fit <- suppressMessages(glmm(form, d, family = poisson))
  ref <- suppressMessages(suppressWarnings(lme4::glmer(
    form, d, family = poisson, control = glmer_reference_control())))
  expect_gte(c(logLik(fit)) - c(logLik(ref)), -1e-7)
  expect_equal(unname(fixef(fit)), unname(lme4::fixef(ref)), tolerance = 1e-5)
  expect_equal(unname(fit$theta), unname(lme4::getME(ref, "theta")), tolerance = 1e-4)
  # (the first stage 2 ended at the interior point; the restart is counted)
  expect_equal(tail(fit$optinfo$starts, 1L), 2L)
})
