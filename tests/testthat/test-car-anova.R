# car::Anova() on lmm() and glmm() fits side by side with car::Anova() on the
# lme4 fits of the same models (references run to full precision,
# helper-reference.R and helper-glmm.R): type II and III, Wald chi-square and
# (REML LMMs) Kenward-Roger F tests.

expect_anova_like <- function(ours, theirs, tol) {
  expect_s3_class(ours, c("anova", "data.frame"))
  expect_identical(dimnames(ours), dimnames(theirs))
  expect_equal(as.matrix(ours), as.matrix(theirs), tolerance = tol)
  expect_identical(attr(ours, "heading"), attr(theirs, "heading"))
}

test_that("car::Anova() of an LMM agrees with car::Anova() of the lmer fit", {
  skip_if_not_installed("car")
  skip_if_not_installed("pbkrtest")
  cake <- lme4::cake
  fit <- lmm(angle ~ recipe * temperature + (1 | recipe:replicate), cake)
  ref <- lmer_full(angle ~ recipe * temperature + (1 | recipe:replicate), cake)
  for (type in c("II", "III")) {
    # the fits agree to ~1e-7; the statistics are smooth in the estimates
    expect_anova_like(car::Anova(fit, type = type), car::Anova(ref, type = type), 1e-5)
    expect_anova_like(car::Anova(fit, type = type, test.statistic = "F"),
                      car::Anova(ref, type = type, test.statistic = "F"), 1e-5)
  }
  expect_anova_like(car::Anova(fit, type = 3), car::Anova(ref, type = 3), 1e-5)
  # a numeric covariate within a factor's interaction
  sleepstudy <- lme4::sleepstudy
  sleepstudy$grp <- factor(as.integer(sleepstudy$Subject) %% 3)
  fit2 <- lmm(Reaction ~ Days * grp + (Days | Subject), sleepstudy)
  ref2 <- lmer_full(Reaction ~ Days * grp + (Days | Subject), sleepstudy)
  expect_anova_like(car::Anova(fit2), car::Anova(ref2), 1e-5)
  expect_anova_like(car::Anova(fit2, test.statistic = "F"),
                    car::Anova(ref2, test.statistic = "F"), 1e-5)
  # a covariance matrix given
  V <- 2 * as.matrix(vcov(fit2))
  expect_anova_like(suppressMessages(car::Anova(fit2, vcov. = V)),
                    suppressMessages(car::Anova(ref2, vcov. = 2 * as.matrix(vcov(ref2)))), 1e-5)
  ml <- lmm(Reaction ~ Days * grp + (Days | Subject), sleepstudy, REML = FALSE)
  expect_error(car::Anova(ml, test.statistic = "F"), "fitted by REML")
  expect_error(car::Anova(fit2, test.statistic = "F", vcov. = V), "cannot be used")
})

test_that("car::Anova() of a GLMM agrees with car::Anova() of the glmer fit", {
  skip_if_not_installed("car")
  cbpp <- lme4::cbpp
  cbpp$x <- as.numeric(cbpp$herd) %% 3
  pair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period * x + (1 | herd),
                                   family = binomial, data = cbpp)))
  for (type in c("II", "III")) {
    # both use the finite-difference Hessian's covariance, whose two
    # difference schemes agree to ~4e-5 here
    expect_anova_like(car::Anova(pair$fit, type = type),
                      car::Anova(pair$ref, type = type), 2e-4)
  }
  expect_error(car::Anova(pair$fit, test.statistic = "F"), "fitted by REML")
})
