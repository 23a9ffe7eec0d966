# allFit() against lme4::allFit() on the same model.

test_that("allFit's optimizers agree with each other and with lme4's allFit", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4")
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  af <- allFit(fit, verbose = FALSE)
  s <- summary(af)
  expect_s3_class(af, "allFit")
  expect_named(s, c("which.OK", "msgs", "fixef", "llik", "sdcor", "theta", "times", "feval"))
  expect_true(all(s$which.OK))
  ref <- lme4::allFit(lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy),
                      meth.tab = cbind(optimizer = c("bobyqa", "Nelder_Mead", "nlminbwrap"),
                                       method = ""), verbose = FALSE)
  rs <- summary(ref)
  # every optimizer of either package at the same optimum: log-likelihoods
  # within 1e-6, fixed effects and sd/cor within 1e-3 (lme4's defaults stop
  # ~1e-5 short in theta)
  expect_equal(range(s$llik), rep(max(rs$llik), 2), tolerance = 1e-6)
  for (i in seq_len(nrow(s$fixef))) {
    expect_equal(s$fixef[i, ], rs$fixef[1, ], tolerance = 1e-3)
    expect_equal(unname(unlist(s$sdcor[i, ])), unname(unlist(rs$sdcor[1, ])), tolerance = 1e-3)
  }
  expect_identical(rownames(s$fixef), names(af))
  expect_output(print(af), "optimizers")
  expect_error(allFit(fit, foo = 1), "unused argument")
})
