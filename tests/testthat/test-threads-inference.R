# The computations made after a fit (conditional variances, degrees of
# freedom, profiles, bootstrap refits) run on the fit's own `threads` setting
# (control$threads) unless given another, and their results do not depend on it.

# The fit `fit` as if it had been made with lmmControl(threads = k) or
# glmmControl(threads = k): the estimates stay those of `fit`, so the engine
# calls below differ only in their number of threads.
with_threads <- function(fit, k) {
  ctrl <- if (inherits(fit, "glmm")) quote(glmmControl(threads = K)) else
    quote(lmmControl(threads = K))
  ctrl[[2L]] <- as.integer(k)
  fit$call$control <- ctrl
  fit
}

test_that("the fit's threads setting reaches the engine calls after the fit", {
  skip_if_not_installed("lme4")
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  f1 <- with_threads(fit, 1)
  expect_identical(mixedrs:::control_of(f1, environment())$threads, 1L)
  expect_identical(mixedrs:::engine_threads(0L, mixedrs:::control_of(f1, environment())), 1L)
  # a number given by the caller wins; settings without the option mean all cores
  expect_identical(mixedrs:::engine_threads(2L, lmmControl(threads = 1)), 2L)
  expect_identical(mixedrs:::engine_threads(0L, lmmControl()), 0L)
  expect_identical(mixedrs:::engine_threads(0L, list()), 0L)
})

test_that("one and two threads give the same results after an lmm fit", {
  skip_if_not_installed("lme4")
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  f1 <- with_threads(fit, 1)
  f2 <- with_threads(fit, 2)
  # profiles and bootstrap replicates are computed one per thread, each with
  # sequential linear algebra: identical to the bit
  expect_identical(profile(f1), profile(f2))
  expect_identical(bootmm(f1, fixef, nsim = 6, seed = 4)$t,
                   bootmm(f2, fixef, nsim = 6, seed = 4)$t)
  # the linear algebra of one model split over threads: equal up to rounding
  expect_equal(attr(ranef(f1, condVar = TRUE)$Subject, "postVar"),
               attr(ranef(f2, condVar = TRUE)$Subject, "postVar"), tolerance = 1e-12)
  expect_equal(coef(summary(f1)), coef(summary(f2)), tolerance = 1e-10)
  expect_equal(coef(summary(f1, ddf = "Kenward-Roger")),
               coef(summary(f2, ddf = "Kenward-Roger")), tolerance = 1e-10)
})

test_that("one and two threads give the same results after a glmm fit", {
  skip_if_not_installed("lme4")
  fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
              family = binomial, data = lme4::cbpp)
  g1 <- with_threads(fit, 1)
  g2 <- with_threads(fit, 2)
  expect_identical(profile(g1, which = 1:2), profile(g2, which = 1:2))
  expect_identical(bootmm(g1, fixef, nsim = 4, seed = 2)$t,
                   bootmm(g2, fixef, nsim = 4, seed = 2)$t)
  expect_equal(attr(ranef(g1, condVar = TRUE)$herd, "postVar"),
               attr(ranef(g2, condVar = TRUE)$herd, "postVar"), tolerance = 1e-12)
})
