# GLMM fits that end with a vector-valued term singular are restarted off that
# face of the boundary (stage 2 again from the term's standard deviations with
# the zero ones raised, or from lme4's start when all are zero), and the better
# optimum kept: a singular optimum where the Laplace deviance does not depend on
# all of the term's parameters may not be the lowest one.

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
