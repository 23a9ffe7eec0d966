# Default starting values: a method-of-moments estimate of theta (see ?lmm,
# ?glmm). The fits must reach the optimum that lme4's start (theta = identity)
# reaches, and an optimum at least as good as lme4's own.

start_pair <- function(fit_default, fit_identity, ref, ll_tol = 1e-6, beta_tol = 1e-4,
                       ref_tol = 1e-3) {
  expect_false(isTRUE(all.equal(fit_default$optinfo$start,
                                fit_identity$optinfo$start)),
               label = "the default start is the moment estimate, not the identity")
  expect_equal(c(logLik(fit_default)), c(logLik(fit_identity)), tolerance = ll_tol)
  expect_equal(fixef(fit_default), fixef(fit_identity), tolerance = beta_tol)
  expect_gte(c(logLik(fit_default)) - c(logLik(ref)), -ll_tol)
  expect_equal(unname(fixef(fit_default)), unname(lme4::fixef(ref)), tolerance = ref_tol)
}

identity_theta <- function(fit) as.numeric(fit$lower == 0)

test_that("LMMs from the moment start reach lme4's optimum", {
  skip_if_not_installed("lme4")
  cases <- list(
    list(Reaction ~ Days + (Days | Subject), lme4::sleepstudy),
    list(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin),
    list(strength ~ 1 + (1 | batch / cask), lme4::Pastes),
    list(Yield ~ 1 + (1 | Batch), lme4::Dyestuff2)
  )
  for (cs in cases) {
    fit <- suppressMessages(lmm(cs[[1]], cs[[2]]))
    fit1 <- suppressMessages(lmm(cs[[1]], cs[[2]], start = identity_theta(fit)))
    ref <- suppressMessages(lmer_full(cs[[1]], cs[[2]]))
    start_pair(fit, fit1, ref)
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
