# Arguments that used to be accepted and ignored: each now works as lme4's
# does or is an error naming it. Numbers are compared with lme4 run to full
# precision; the fits agree to ~1e-7 relative, so 1e-5 relative covers them.

skip_if_not_installed("lme4")

sleep_fits <- function() {
  ss <- lme4::sleepstudy
  list(fit = lmm(Reaction ~ Days + (Days | Subject), ss),
       ref = lmer_full(Reaction ~ Days + (Days | Subject), ss))
}

test_that("vcov(sigm = ) scales as lme4's; use.hessian = TRUE is an error as in lme4", {
  p <- sleep_fits()
  for (s in c(1, 10)) {
    expect_equal(vcov(p$fit, sigm = s), as.matrix(vcov(p$ref, sigm = s)), tolerance = 1e-5,
                 ignore_attr = TRUE)
  }
  # the scaling is exact: sigm = sigma() gives the default
  expect_equal(vcov(p$fit, sigm = sigma(p$fit)), vcov(p$fit), tolerance = 1e-14)
  expect_equal(vcov(p$fit, sigm = 2 * sigma(p$fit)), 4 * vcov(p$fit), tolerance = 1e-14)
  expect_identical(vcov(p$fit, use.hessian = FALSE), vcov(p$fit))
  expect_error(vcov(p$fit, use.hessian = TRUE), "use.hessian = TRUE is not available")
  expect_error(lme4::vcov.merMod(p$ref, use.hessian = TRUE), "Hessian is unavailable")
  expect_error(vcov(p$fit, sigm = -1), "'sigm' must be a single non-negative number")
  expect_error(vcov(p$fit, use.hessian = NA), "'use.hessian' must be TRUE or FALSE")
  # summary() takes lme4's use.hessian the same way
  expect_identical(coef(summary(p$fit, use.hessian = FALSE)), coef(summary(p$fit)))
  expect_error(summary(p$fit, use.hessian = TRUE), "use.hessian = TRUE is not available")
  expect_error(summary(p$ref, use.hessian = TRUE), "Hessian is unavailable")
})

test_that("isSingular() and REMLcrit() refuse arguments lme4's do not take", {
  p <- sleep_fits()
  expect_identical(isSingular(p$fit, tol = 1e-4), lme4::isSingular(p$ref, tol = 1e-4))
  expect_error(isSingular(p$fit, tl = 1), "isSingular\\(\\) does not use the argument\\(s\\) 'tl'")
  expect_error(lme4::isSingular(p$ref, tl = 1), "unused argument")
  expect_equal(REMLcrit(p$fit), lme4::REMLcrit(p$ref), tolerance = 1e-8)
  expect_error(REMLcrit(p$fit, REML = FALSE), "REMLcrit\\(\\) does not use the argument\\(s\\) 'REML'")
})

test_that("ranef(postVar = ) is lme4's alias of condVar; unknown whichel is an error", {
  p <- sleep_fits()
  expect_warning(r <- ranef(p$fit, postVar = FALSE), "'postVar' is deprecated")
  expect_null(attr(r$Subject, "postVar"))
  expect_warning(r_ref <- lme4::ranef(p$ref, postVar = FALSE), "deprecated")
  expect_null(attr(r_ref$Subject, "postVar"))
  # condVar given: postVar does not override it
  expect_false(is.null(attr(ranef(p$fit, condVar = TRUE, postVar = FALSE)$Subject, "postVar")))
  expect_identical(names(ranef(p$fit, whichel = "Subject")), "Subject")
  expect_error(ranef(p$fit, whichel = "Subjet"),
               "'whichel' must name grouping factors of the model \\('Subject'\\), not 'Subjet'")
})

test_that("confint() of a bootmm object checks parm, level and its other arguments", {
  fit <- lmm(Reaction ~ Days + (1 | Subject), lme4::sleepstudy)
  b <- bootmm(fit, fixef, nsim = 20, seed = 1)
  # (normal intervals: 20 draws are too few for percentile ones)
  ci <- confint(b, type = "norm")
  expect_identical(rownames(ci), c("(Intercept)", "Days"))
  expect_identical(confint(b, parm = "Days", type = "norm"), ci["Days", , drop = FALSE])
  expect_identical(confint(b, parm = 2, type = "norm"), ci["Days", , drop = FALSE])
  expect_error(confint(b, parm = "days"), "'parm': 'days' is not a statistic of the bootstrap")
  expect_error(confint(b, parm = 3), "'parm' must be names of the statistics or whole numbers from 1 to 2")
  expect_error(confint(b, level = 95), "'level' must be a number between 0 and 1")
  expect_error(confint(b, levle = 0.9), "does not use the argument\\(s\\) 'levle'")
})

test_that("glmm methods: vcov(sigm = ), isSingular(), ranef(postVar = ) and extra arguments", {
  skip_if_not_installed("lme4")
  cbpp <- lme4::cbpp
  f <- cbind(incidence, size - incidence) ~ period + (1 | herd)
  fit <- glmm(f, cbpp, family = binomial)
  ref <- suppressWarnings(lme4::glmer(f, cbpp, family = binomial,
                                      control = glmer_reference_control()))
  # lme4: sigm scales the R_X-based matrix; our R_X at our optimum against
  # lme4's at its full-precision one (the optima agree to ~1e-7)
  # (use.hessian = FALSE warns, as lme4's does, that R_X's matrix differs from
  # the Hessian's)
  expect_equal(vcov(fit, sigm = 2), 4 * suppressWarnings(vcov(fit, use.hessian = FALSE)),
               tolerance = 1e-14)
  expect_equal(unname(vcov(fit, sigm = 2)),
               unname(as.matrix(suppressWarnings(
                 lme4::vcov.merMod(ref, sigm = 2, use.hessian = FALSE)))),
               tolerance = 1e-5)
  expect_error(vcov(fit, sigm = 2, use.hessian = TRUE), "has no scale to set")
  expect_error(vcov(fit, sigm = NA), "'sigm' must be a single non-negative number")
  expect_error(isSingular(fit, tl = 1), "isSingular\\(\\) does not use the argument\\(s\\) 'tl'")
  expect_identical(isSingular(fit, tol = 1e-4), lme4::isSingular(ref, tol = 1e-4))
  expect_warning(r <- ranef(fit, postVar = FALSE), "'postVar' is deprecated")
  expect_null(attr(r$herd, "postVar"))
  expect_error(ranef(fit, foo = 1), "ranef\\(\\) does not use the argument\\(s\\) 'foo'")
  expect_error(coef(fit, foo = 1), "coef\\(\\) does not use the argument\\(s\\) 'foo'")
})
