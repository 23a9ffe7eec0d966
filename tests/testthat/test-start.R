# Default starting values (see ?lmm, ?glmm): LMMs with at most 2,000 random
# effects start from lme4's start (theta = identity), larger ones and GLMMs
# from a method-of-moments estimate of theta. The fits must reach the optimum
# that lme4's start reaches, and an optimum at least as good as lme4's own
# (run to full precision).

start_pair <- function(fit_default, fit_identity, ref, ll_tol = 1e-6, beta_tol = 1e-4,
                       ref_tol = 1e-3, moment = TRUE) {
  same_start <- isTRUE(all.equal(fit_default$optinfo$start, fit_identity$optinfo$start))
  if (moment) {
    expect_false(same_start, label = "the default start is the moment estimate, not the identity")
  } else {
    expect_true(same_start, label = "the default start is lme4's (the identity)")
  }
  expect_equal(c(logLik(fit_default)), c(logLik(fit_identity)), tolerance = ll_tol)
  expect_equal(fixef(fit_default), fixef(fit_identity), tolerance = beta_tol)
  expect_gte(c(logLik(fit_default)) - c(logLik(ref)), -ll_tol)
  expect_equal(unname(fixef(fit_default)), unname(lme4::fixef(ref)), tolerance = ref_tol)
}

identity_theta <- function(fit) as.numeric(fit$lower == 0)

test_that("small LMMs start from lme4's start, large ones from the moment estimate", {
  skip_if_not_installed("lme4")
  set.seed(2)
  big <- data.frame(g = factor(rep(1:2100, each = 3)), x = stats::rnorm(6300))
  big$y <- 1 + 0.5 * big$x + stats::rnorm(2100, sd = 0.7)[big$g] + stats::rnorm(6300)
  # formula, data, and whether the default start is the moment estimate
  cases <- list(
    list(Reaction ~ Days + (Days | Subject), lme4::sleepstudy, FALSE),
    list(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin, FALSE),
    list(strength ~ 1 + (1 | batch / cask), lme4::Pastes, FALSE),
    list(Yield ~ 1 + (1 | Batch), lme4::Dyestuff2, FALSE),
    list(y ~ x + (1 | g), big, TRUE)  # 2,100 random effects
  )
  for (cs in cases) {
    fit <- suppressMessages(lmm(cs[[1]], cs[[2]]))
    fit1 <- suppressMessages(lmm(cs[[1]], cs[[2]], start = identity_theta(fit)))
    ref <- suppressMessages(lmer_full(cs[[1]], cs[[2]]))
    start_pair(fit, fit1, ref, moment = cs[[3]])
  }
})

test_that("GLMMs from the moment start reach glmer's optimum", {
  skip_if_not_installed("lme4")
  cbpp <- lme4::cbpp
  va <- lme4::VerbAgg
  va <- va[va$item %in% levels(va$item)[1:8], ]
  cases <- list(
    list(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial),
    list(r2 ~ Anger + btype + (1 | id) + (1 | item), va, binomial),
    list(TICKS ~ YEAR + (1 | BROOD) + (1 | LOCATION), lme4::grouseticks, poisson)
  )
  for (cs in cases) {
    fit <- suppressMessages(glmm(cs[[1]], cs[[2]], family = cs[[3]]))
    fit1 <- suppressMessages(glmm(cs[[1]], cs[[2]], family = cs[[3]],
                                  start = identity_theta(fit)))
    ref <- glmer_tight(quote(lme4::glmer(cs[[1]], cs[[2]], family = cs[[3]])), environment())
    # GLMM optima are flatter (the two starts' logLik agree to ~1e-6, fixed
    # effects to ~1e-4); glmer run to full precision agrees to ~3e-6
    start_pair(fit, fit1, ref, ll_tol = 1e-5, beta_tol = 1e-3)
  }
})
