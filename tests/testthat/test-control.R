# lmmControl()/glmmControl() with lme4's argument names, and lme4's control
# objects translated, side by side with lme4.

test_that("lme4's control objects are translated into ours", {
  skip_if_not_installed("lme4")
  ctl <- as_fit_control(lme4::lmerControl(), "lmm")
  expect_s3_class(ctl, "lmmControl")
  expect_identical(ctl$optimizer, "nloptwrap")
  lc <- lme4::lmerControl()
  for (nm in names(lc$checkControl)) expect_identical(ctl[[nm]], lc$checkControl[[nm]])
  expect_identical(ctl$grad.tol, lc$checkConv$check.conv.grad$tol)
  expect_identical(ctl$singular.tol, lc$checkConv$check.conv.singular$tol)
  expect_identical(ctl$hess.tol, lc$checkConv$check.conv.hess$tol)
  # nloptwrap's own defaults (lme4's nloptwrap environment)
  nd <- environment(lme4::nloptwrap)$defaultControl
  expect_identical(ctl$rhoend, nd$xtol_abs)
  expect_identical(ctl$ftol_abs, nd$ftol_abs)
  expect_identical(ctl$maxfun, as.integer(nd$maxeval))
  ctl <- as_fit_control(lme4::lmerControl(optimizer = "bobyqa",
                                          optCtrl = list(rhoend = 1e-9, maxfun = 500),
                                          check.conv.singular = "ignore",
                                          check.conv.grad = lme4::.makeCC("message", tol = 1e-3)),
                        "lmm")
  expect_identical(c(ctl$rhoend, ctl$maxfun), c(1e-9, 500))
  expect_identical(ctl$check.conv.singular, "ignore")
  expect_identical(c(ctl$check.conv.grad, ctl$grad.tol), c("message", "0.001"))
  gctl <- as_fit_control(lme4::glmerControl(), "glmm")
  expect_identical(gctl$optimizer, c("bobyqa", "Nelder_Mead"))
  gc <- lme4::glmerControl()
  expect_identical(gctl$tolPwrss, gc$tolPwrss)
  expect_identical(gctl$nAGQ0initStep, gc$nAGQ0initStep)
  expect_identical(gctl$restart_edge, gc$restart_edge)
  # plain lists of settings, as lme4 accepts them
  expect_identical(as_fit_control(list(maxfun = 20), "lmm")$maxfun, 20L)
})

test_that("fits with lme4's control objects equal lme4's", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4")
  f <- Reaction ~ Days + (Days | Subject)
  fit <- lmm(f, sleepstudy, control = lme4::lmerControl(optimizer = "bobyqa",
                                                         optCtrl = list(rhoend = 1e-12)))
  ref <- lmer_full(f, sleepstudy)
  # both at their optimum to ~1e-8 in theta
  expect_equal(unname(fit$theta), unname(lme4::getME(ref, "theta")), tolerance = 1e-6)
  data("cbpp", package = "lme4")
  gf <- cbind(incidence, size - incidence) ~ period + (1 | herd)
  gctl <- lme4::glmerControl(optimizer = c("bobyqa", "bobyqa"), optCtrl = list(rhoend = 1e-10),
                             tolPwrss = 1e-12)
  g <- glmm(gf, cbpp, family = binomial, control = gctl)
  gref <- lme4::glmer(gf, cbpp, family = binomial, control = gctl)
  # PIRLS-based deviance at ~1e-8: estimates within 1e-4
  expect_equal(fixef(g), lme4::fixef(gref), tolerance = 1e-4)
})

test_that("each lme4 setting is implemented, accepted or an error saying why", {
  expect_error(lmmControl(use.last.params = TRUE), "use.last.params = TRUE has no meaning")
  expect_error(lmmControl(sparseX = TRUE), "sparseX = TRUE is not available")
  expect_error(lmmControl(standardize.X = TRUE), "standardize.X = TRUE is not available")
  expect_error(lmmControl(check.nobs.vs.rankZ = "warning"), "does not compute the rank of Z")
  expect_error(lmmControl(check.formula.LHS = "ignore"), "needs a response")
  expect_error(lmmControl(check.scaleX = "warn+rescale"), "does not rescale X")
  expect_error(lmmControl(optCtrl = list(xtol_rel = 1e-6)),
               "'xtol_rel' not understood by optimizer \"bobyqa\"")
  expect_error(lmmControl(optimizer = "nloptwrap", optCtrl = list(algorithm = "NLOPT_LN_COBYLA")),
               "NLOPT_LN_COBYLA.*not available")
  expect_error(lmmControl(optimizer = "none", optCtrl = list(maxfun = 1)), "it takes none")
  expect_error(glmmControl(optimizer = "no_such_optimizer"), "nor a function that can be found")
  expect_error(lmmControl(check.conv.grad = list(action = "warning", tol = 1e-3, foo = 1)),
               "unknown elements foo")
  expect_warning(ctl <- lmmControl(restart_edge = FALSE), "restart_edge = FALSE has no effect")
  expect_s3_class(ctl, "lmmControl")
  expect_s3_class(glmmControl(compDev = FALSE), "glmmControl")
  skip_if_not_installed("lme4")
  expect_error(lmm(Reaction ~ Days + (1 | Subject), lme4::sleepstudy,
                   control = lme4::glmerControl()),
               "tolPwrss, compDev, nAGQ0initStep.*no counterpart in lmmControl")
})

test_that("check.nlev.gtreq.5, relTol and the Hessian check act as lme4's", {
  skip_if_not_installed("lme4")
  d <- lme4::sleepstudy
  d$g3 <- factor(rep(1:3, length.out = nrow(d)))
  f <- Reaction ~ Days + (1 | g3)
  ref_msgs <- character()
  withCallingHandlers(lme4::lmer(f, d, control = lme4::lmerControl(check.nlev.gtreq.5 = "warning")),
                      warning = function(w) {
                        ref_msgs <<- c(ref_msgs, conditionMessage(w))
                        invokeRestart("muffleWarning")
                      })
  expect_warning(lmm(f, d, control = lmmControl(check.nlev.gtreq.5 = "warning")),
                 ref_msgs[grepl("< 5 sampled levels", ref_msgs)], fixed = TRUE)
  expect_silent(lmm(Reaction ~ Days + (1 | Subject), d,
                    control = lmmControl(check.nlev.gtreq.5 = "stop")))
  # a relative-gradient tolerance no optimum can meet is reported, by both
  cc <- list(action = "warning", tol = 1e3, relTol = 1e-12)
  expect_warning(lme4::lmer(Reaction ~ Days + (Days | Subject), d,
                            control = lme4::lmerControl(check.conv.grad = cc)),
                 "Model failed to converge with max\\|relative grad\\|")
  expect_warning(lmm(Reaction ~ Days + (Days | Subject), d,
                     control = lmmControl(optimizer = "Nelder_Mead", check.conv.grad = cc)),
                 "Model failed to converge with max\\|relative grad\\|")
  expect_null(hessian_message(diag(2), 1e-6))
  expect_match(hessian_message(diag(c(1, -1)), 1e-6), "degenerate  Hessian with 1 negative")
  expect_identical(hessian_message(diag(c(1, -1)), 1e-6),
                   lme4:::checkHess(diag(c(1, -1)), 1e-6)$messages)
})
