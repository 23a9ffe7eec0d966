# refit() and bootmm() of fits with glmmTMB's families and glmm.nb(): the
# refit of a new response against a fresh fit of data holding that response,
# and the spread of the parametric bootstrap against glmmTMB's standard errors.

test_that("refit() of a zero-inflated negative binomial equals a fresh fit", {
  skip_if_not_installed("glmmTMB")
  data("Salamanders", package = "glmmTMB", envir = environment())
  fit <- glmm(count ~ mined + (1 | site), ziformula = ~mined, family = nbinom2,
              data = Salamanders)
  set.seed(3)
  y <- simulate(fit, 1)[[1L]]
  re <- refit(fit, y)
  d2 <- Salamanders
  d2$count <- y
  fresh <- glmm(count ~ mined + (1 | site), ziformula = ~mined, family = nbinom2, data = d2)
  expect_equal(as.numeric(logLik(re)), as.numeric(logLik(fresh)), tolerance = 1e-8)
  expect_equal(re$beta, fresh$beta, tolerance = 1e-4)
  expect_equal(re$extended$zi$beta, fresh$extended$zi$beta, tolerance = 1e-4)
  expect_equal(re$extended$disp$beta, fresh$extended$disp$beta, tolerance = 1e-4)
  # ... and glmmTMB's fit of that response.
  ref <- glmmTMB::glmmTMB(count ~ mined + (1 | site), ziformula = ~mined,
                          family = glmmTMB::nbinom2, data = d2)
  expect_gt(as.numeric(logLik(re)), as.numeric(logLik(ref)) - 1e-3)
  expect_equal(refit(fit)$beta, fit$beta, tolerance = 1e-5)
  expect_error(refit(fit, y - 0.5), "non-negative whole numbers")
  expect_error(refit(fit, y[-1]), "one non-missing value per observation")
  expect_error(refit(fit, y, rename.response = TRUE), "rename.response")
})

test_that("refit() of a beta-binomial takes cbind(successes, failures)", {
  skip_if_not_installed("lme4")
  data("cbpp", package = "lme4", envir = environment())
  fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
              family = betabinomial, data = cbpp)
  set.seed(9)
  s <- rbinom(nrow(cbpp), cbpp$size, 0.15)
  re <- refit(fit, cbind(s, cbpp$size - s))
  d2 <- cbpp
  d2$incidence <- s
  fresh <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                family = betabinomial, data = d2)
  expect_equal(as.numeric(logLik(re)), as.numeric(logLik(fresh)), tolerance = 1e-8)
  expect_equal(re$beta, fresh$beta, tolerance = 1e-4)
  expect_error(refit(fit, cbind(s, cbpp$size - s + 1)), "numbers of trials")
})

test_that("bootmm() of glmm.nb() and nbinom2 fits spreads as glmmTMB's standard errors", {
  skip_if_not_installed("glmmTMB")
  skip_if_not_installed("lme4")
  data("grouseticks", package = "lme4", envir = environment())
  nb <- glmm.nb(TICKS ~ YEAR + (1 | BROOD), data = grouseticks)
  ref <- glmmTMB::glmmTMB(TICKS ~ YEAR + (1 | BROOD), family = glmmTMB::nbinom2,
                          data = grouseticks)
  se_ref <- sqrt(diag(vcov(ref)$cond))
  b <- bootmm(nb, function(f) f$beta, nsim = 100, seed = 7)
  expect_s3_class(b, "bootmm")
  expect_identical(dim(b$t), c(100L, 3L))
  expect_true(all(is.finite(b$t)))
  # The sd of 100 replicates estimates an SE to about 7%; the bootstrap of a
  # random-intercept model also adds its small-sample bias.
  expect_equal(unname(apply(b$t, 2, sd)), unname(se_ref), tolerance = 0.3)
  # The same seed gives the same replicates.
  b2 <- bootmm(nb, function(f) f$beta, nsim = 100, seed = 7)
  expect_identical(b2$t, b$t)
  fit <- glmm(TICKS ~ YEAR + (1 | BROOD), family = nbinom2, data = grouseticks)
  expect_error(bootmm(fit, function(f) f$beta, nsim = 2, use.u = TRUE),
               "only the parametric bootstrap with new random effects")
})

test_that("bootstrap refits of a zero-inflated Poisson start from their own response", {
  # PIRLS started from the fit's predictor, whose random effects belong to
  # another response, failed on 12 of these 30 refits (its first step
  # overflowed); each refit now starts from its response's own means and
  # reaches glmmTMB's fit of that response.
  skip_if_not_installed("glmmTMB")
  skip_if_not_installed("lme4")
  data("grouseticks", package = "lme4", envir = environment())
  fit <- glmm(TICKS ~ YEAR + (1 | BROOD), grouseticks, family = poisson, ziformula = ~1)
  b <- bootmm(fit, function(f) unlist(fixef(f))[1:3], nsim = 30, seed = 3)
  expect_identical(sum(!stats::complete.cases(b$t)), 0L)
  sims <- simulate(fit, nsim = 3, seed = 5)
  for (i in 1:3) {
    d2 <- grouseticks
    d2$TICKS <- sims[[i]]
    re <- refit(fit, sims[[i]])
    ref <- suppressWarnings(glmmTMB::glmmTMB(TICKS ~ YEAR + (1 | BROOD), d2,
                                             family = poisson, ziformula = ~1))
    expect_gte(as.numeric(logLik(re)), as.numeric(logLik(ref)) - 1e-6)
    expect_equal(unname(fixef(re)$cond), unname(glmmTMB::fixef(ref)$cond), tolerance = 1e-4)
  }
})
