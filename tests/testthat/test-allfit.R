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
  # lme4's column names (theta's names, and sigma)
  expect_identical(colnames(s$sdcor), colnames(rs$sdcor))
  expect_identical(colnames(s$theta), colnames(rs$theta))
  expect_output(print(af), "optimizers")
  expect_error(allFit(fit, foo = 1), "unused argument")
})

test_that("allFit() of a GLMM runs every optimizer in both stages, as lme4's allFit", {
  skip_if_no_glmm()
  data("cbpp", package = "lme4")
  f <- cbind(incidence, size - incidence) ~ period + (1 | herd)
  fit <- glmm(f, cbpp, family = binomial)
  tab <- allFit(fit, show.meth.tab = TRUE)
  expect_identical(colnames(tab), c("optimizer", "method"))
  # as lme4's, without a model
  expect_identical(allFit(show.meth.tab = TRUE), tab)
  expect_true(all(c("bobyqa", "Nelder_Mead", "nlminbwrap", "nloptwrap") %in% tab[, "optimizer"]))
  af <- allFit(fit, verbose = FALSE)
  s <- summary(af)
  expect_true(all(s$which.OK))
  # lme4's table but for nloptwrap's NLOPT_LN_NELDERMEAD (dfoptim and optimx installed)
  expect_identical(names(af), c("bobyqa", "Nelder_Mead", "nlminbwrap", "nmkbw", "optimx.L-BFGS-B",
                                "nloptwrap.NLOPT_LN_BOBYQA"))
  expect_identical(af$nlminbwrap$optinfo$optimizer, c("nlminbwrap", "nlminbwrap"))
  # evaluations counted where the optimizer function reports none
  expect_true(all(s$feval > 0))
  expect_identical(attr(af, "fit"), fit)
  # the refits print the caller's data and the control they used
  expect_identical(af$bobyqa$call$data, quote(cbpp))
  ref <- lme4::allFit(lme4::glmer(f, cbpp, family = binomial),
                      meth.tab = cbind(optimizer = c("bobyqa", "nlminbwrap"), method = ""),
                      verbose = FALSE)
  rs <- summary(ref)
  expect_identical(colnames(s$theta), colnames(rs$theta))
  expect_identical(colnames(s$sdcor), colnames(rs$sdcor))
  # no optimizer ends below glmer's best
  expect_true(all(s$llik > max(rs$llik) - 1e-6))
  expect_equal(range(s$llik), rep(max(s$llik), 2), tolerance = 1e-7)
  for (i in seq_len(nrow(s$fixef))) {
    expect_equal(s$fixef[i, ], rs$fixef[which.max(rs$llik), ], tolerance = 1e-3)
  }
  # an algorithm mixedrs does not have: a failed entry saying why
  af2 <- allFit(fit, meth.tab = cbind(optimizer = c("bobyqa", "nloptwrap"),
                                      method = c("", "NLOPT_LN_NELDERMEAD")), verbose = FALSE)
  expect_s3_class(af2[["nloptwrap.NLOPT_LN_NELDERMEAD"]], "error")
  expect_match(conditionMessage(af2[["nloptwrap.NLOPT_LN_NELDERMEAD"]]), "not available")
  expect_error(allFit(fit, meth.tab = cbind(optimizer = "nloptwrap", method = "NLOPT_LN_NELDERMEAD"),
                      verbose = FALSE, catch.errs = FALSE), "not available")
})

test_that("allFit() refits in parallel processes and keeps the fit's control", {
  skip_if_not_installed("lme4")
  skip_on_os("windows")
  data("sleepstudy", package = "lme4")
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy,
             control = lmmControl(calc.derivs = FALSE))
  serial <- allFit(fit, meth.tab = c("bobyqa", "Nelder_Mead"), verbose = FALSE)
  forked <- allFit(fit, meth.tab = c("bobyqa", "Nelder_Mead"), verbose = FALSE,
                   parallel = "multicore", ncpus = 2L)
  expect_equal(summary(forked)$llik, summary(serial)$llik)
  expect_equal(summary(forked)$theta, summary(serial)$theta)
  # the fit's own settings are kept: no derivatives, so no gradient
  expect_null(serial$bobyqa$optinfo$derivs)
  expect_false(eval(serial$bobyqa$call$control)$calc.derivs)
})

test_that("allFit() keeps a control given through a variable", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4")
  ctl <- lmmControl(calc.derivs = FALSE, check.conv.singular = list(action = "ignore", tol = 1e-3))
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy, control = ctl)
  af <- allFit(fit, meth.tab = "Nelder_Mead", verbose = FALSE)
  used <- eval(af$Nelder_Mead$call$control)
  expect_false(used$calc.derivs)
  expect_identical(used$check.conv.singular, "ignore")
  expect_identical(used$singular.tol, 1e-3)
  expect_null(af$Nelder_Mead$optinfo$derivs)
})
