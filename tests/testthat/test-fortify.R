# ggplot2's fortify() of mixedrs fits, side by side with lme4's method for
# its own fits of the same models (lme4's fortify.merMod, called directly:
# lme4 1.1.31 does not register it on ggplot2's generic): the data with
# .fitted, .resid and .scresid.

skip_if_not_installed("ggplot2")
skip_if_not_installed("lme4")
lme4_fortify <- utils::getFromNamespace("fortify.merMod", "lme4")

test_that("fortify() adds lme4's columns with lme4's values", {
  data("sleepstudy", package = "lme4", envir = environment())
  data("cbpp", package = "lme4", envir = environment())
  pairs <- list(
    list(fit = lmm(Reaction ~ Days + (Days | Subject), sleepstudy),
         ref = lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy,
                          control = lmer_full_control())),
    list(fit = glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
                    family = binomial),
         ref = glmer_tight(quote(lme4::glmer(cbind(incidence, size - incidence) ~ period +
                                               (1 | herd), cbpp, family = binomial)),
                           environment())))
  for (p in pairs) {
    ours <- ggplot2::fortify(p$fit)
    ref <- lme4_fortify(p$ref)
    expect_s3_class(ours, "data.frame")
    expect_identical(names(ours), names(ref))
    expect_identical(nrow(ours), nrow(ref))
    for (v in c(".fitted", ".resid", ".scresid")) {
      expect_equal(ours[[v]], unname(ref[[v]]), tolerance = 1e-5, info = v)
    }
  }
  expect_error(ggplot2::fortify(pairs[[1]]$fit, data = sleepstudy[1:10, ]),
               "'data' has 10 rows; fortify\\(\\) needs one row per fitted value \\(180\\)")
  expect_error(ggplot2::fortify(pairs[[1]]$fit, junk = 1), "fortify\\(\\) does not use")
})

test_that("fortify() of an na.exclude fit pads as lme4's does", {
  d <- lme4::sleepstudy
  d$Reaction[c(3, 50)] <- NA
  fit <- lmm(Reaction ~ Days + (1 | Subject), d, na.action = na.exclude)
  ref <- lme4::lmer(Reaction ~ Days + (1 | Subject), d, na.action = na.exclude,
                    control = lmer_full_control())
  ours <- ggplot2::fortify(fit)
  theirs <- lme4_fortify(ref)
  expect_identical(nrow(ours), nrow(d))
  expect_true(all(is.na(ours$.fitted[c(3, 50)])))
  expect_equal(ours$.scresid, unname(theirs$.scresid), tolerance = 1e-5)
})
