# lmm()'s optimizers (lme4's names, function optimizers with lme4's calling
# convention, no optimization) against lme4's full-precision fit of the same
# model (DESIGN.md section 6).

sleep_ref <- function() {
  data("sleepstudy", package = "lme4", envir = environment())
  lmer_full(Reaction ~ Days + (Days | Subject), sleepstudy)
}

test_that("bobyqa, nloptwrap and Nelder_Mead reach lme4's optimum", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4")
  ref <- sleep_ref()
  for (o in c("bobyqa", "nloptwrap", "Nelder_Mead")) {
    fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy,
               control = lmmControl(optimizer = o))
    expect_identical(fit$optinfo$optimizer, o)
    # nloptwrap stops on ftol_abs = 1e-8 and Nelder-Mead on its simplex's
    # spread: theta within 1e-3, the criterion within 1e-6 of lme4's
    expect_equal(unname(fit$theta), unname(lme4::getME(ref, "theta")), tolerance = 1e-3)
    expect_equal(fixef(fit), lme4::fixef(ref), tolerance = 1e-4)
    expect_equal(unname(fit$devcomp$cmp[["REML"]]), unname(lme4::getME(ref, "devcomp")$cmp[["REML"]]),
                 tolerance = 1e-8)
  }
})

test_that("Nelder_Mead's evaluation limit is reported with lme4's code and wording", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4")
  msg <- function(expr) {
    out <- character()
    withCallingHandlers(expr, warning = function(w) {
      out <<- c(out, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
    out
  }
  ours <- msg(lmm(Reaction ~ Days + (Days | Subject), sleepstudy,
                  control = lmmControl(optimizer = "Nelder_Mead", optCtrl = list(maxfun = 3))))
  theirs <- msg(lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy,
                           control = lme4::lmerControl(optimizer = "Nelder_Mead",
                                                      optCtrl = list(maxfun = 3))))
  code_line <- function(m) grep("^convergence code", m, value = TRUE)
  expect_identical(code_line(ours), code_line(theirs))
})

test_that("a function optimizer with lme4's convention gives lme4's estimates", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4")
  ref <- sleep_ref()
  lbfgsb <- function(par, fn, lower, upper, control) {
    r <- optim(par, fn, method = "L-BFGS-B", lower = lower, upper = upper,
               control = list(factr = 1e3))
    list(par = r$par, fval = r$value, convergence = r$convergence, message = r$message)
  }
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy,
             control = lmmControl(optimizer = lbfgsb))
  expect_identical(fit$optinfo$optimizer, "lbfgsb")
  expect_equal(unname(fit$theta), unname(lme4::getME(ref, "theta")), tolerance = 1e-4)
  expect_equal(fixef(fit), lme4::fixef(ref), tolerance = 1e-6)
  expect_equal(sqrt(diag(vcov(fit))), sqrt(diag(as.matrix(vcov(ref)))), tolerance = 1e-5)
  # lme4's own wrappers, by name as lme4 takes them
  fit2 <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy,
              control = lmmControl(optimizer = "nlminbwrap"))
  ref2 <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy,
                     control = lme4::lmerControl(optimizer = "nlminbwrap"))
  # the same optimizer on the same function from the same start
  expect_equal(unname(fit2$theta), unname(lme4::getME(ref2, "theta")), tolerance = 1e-6)
  # its convergence code is reported as lme4 does
  bad <- function(par, fn, lower, upper, control) {
    list(par = par, fval = fn(par), conv = 3L, message = "gave up")
  }
  expect_warning(lmm(Reaction ~ Days + (Days | Subject), sleepstudy,
                     control = lmmControl(optimizer = bad, calc.derivs = FALSE)),
                 "convergence code 3 from bad: gave up")
  expect_error(lmm(Reaction ~ Days + (Days | Subject), sleepstudy,
                   control = lmmControl(optimizer = function(par, fn, lower, upper, control) list())),
               "must return a list with element 'par'")
  expect_error(lmmControl(optimizer = function(x) x), "must take the arguments fn, par, lower, control")
  expect_error(lmmControl(optimizer = "no_such_optimizer"), "nor a function that can be found")
})

test_that("no optimization fits at the start, as lme4's optimizer = NULL", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4")
  th <- c(0.9, 0.1, 0.2)
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy, start = th,
             control = lmmControl(optimizer = "none"))
  ref <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy, start = list(theta = th),
                    control = lme4::lmerControl(optimizer = NULL))
  expect_equal(unname(fit$theta), th)
  expect_equal(fixef(fit), lme4::fixef(ref), tolerance = 1e-10)
  expect_equal(sigma(fit), sigma(ref), tolerance = 1e-10)
  expect_equal(unname(fit$devcomp$cmp[["REML"]]), unname(lme4::getME(ref, "devcomp")$cmp[["REML"]]),
               tolerance = 1e-10)
  expect_identical(fit$optinfo$message, "no optimization")
  fit0 <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy, start = th,
              control = lme4::lmerControl(optimizer = NULL))
  expect_equal(fixef(fit0), fixef(fit))
})

test_that("without start, no optimization fits at lme4's start, the moment start for intercepts", {
  skip_if_not_installed("lme4")
  data("Dyestuff", package = "lme4")
  data("Penicillin", package = "lme4")
  data("sleepstudy", package = "lme4")
  set.seed(3)
  # group means that vary more than the response: lme4 keeps the start of 1
  flat <- data.frame(g = factor(rep(1:4, each = 3)), y = rep(c(-5, 0, 5, 10), each = 3) + rnorm(12))
  models <- list(list(Yield ~ 1 + (1 | Batch), Dyestuff),
                 list(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin),
                 list(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleepstudy),
                 list(Reaction ~ Days + (Days | Subject), sleepstudy),
                 list(y ~ 1 + (1 | g), flat))
  for (m in models) {
    fit <- lmm(m[[1]], m[[2]], control = lmmControl(optimizer = "none"))
    ref <- lme4::lmer(m[[1]], m[[2]], control = lme4::lmerControl(optimizer = NULL))
    expect_equal(unname(fit$theta), unname(lme4::getME(ref, "theta")), tolerance = 1e-12)
    expect_equal(unname(fit$devcomp$cmp[["REML"]]),
                 unname(lme4::getME(ref, "devcomp")$cmp[["REML"]]), tolerance = 1e-10)
  }
})

test_that("glmm(family = gaussian) fits the LMM as glmer() does", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4")
  expect_warning(fit <- glmm(Reaction ~ Days + (1 | Subject), sleepstudy, family = gaussian),
                 "family=gaussian \\(identity link\\) as a shortcut to lmm\\(\\) is deprecated")
  expect_s3_class(fit, "lmm")
  ref <- suppressWarnings(lme4::glmer(Reaction ~ Days + (1 | Subject), sleepstudy,
                                      family = gaussian,
                                      control = lme4::lmerControl(optimizer = "bobyqa",
                                                                  optCtrl = list(rhoend = 1e-12))))
  expect_s4_class(ref, "lmerMod")
  # glmer hands lmer its own (glmerControl-translated) settings, which stop
  # ~1e-5 short in theta: fixed effects and sigma move by less than 1e-5
  expect_equal(fixef(fit), lme4::fixef(ref), tolerance = 1e-5)
  expect_equal(sigma(fit), sigma(ref), tolerance = 1e-5)
})

test_that("verbose traces Nelder-Mead and function optimizers as lmm(verbose = ) does", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4")
  expect_output(lmm(Reaction ~ Days + (1 | Subject), sleepstudy, verbose = 1,
                    control = lmmControl(optimizer = "Nelder_Mead")),
                "iteration: [0-9]+\n\tf\\(x\\) = [0-9.]+\n\ttheta = ")
  expect_output(lmm(Reaction ~ Days + (1 | Subject), sleepstudy,
                    control = lmmControl(optimizer = "nlminbwrap")),
                NA)
  expect_output(lmm(Reaction ~ Days + (1 | Subject), sleepstudy, verbose = 1,
                    control = lmmControl(optimizer = "nlminbwrap")),
                "iteration: 1\n\tf\\(x\\) = ")
  # optCtrl's print level turns the trace on too, as lme4's iprint/verbose
  expect_output(lmm(Reaction ~ Days + (1 | Subject), sleepstudy,
                    control = lmmControl(optimizer = "Nelder_Mead", optCtrl = list(verbose = 1))),
                "iteration: [0-9]+")
})

# glmm(): each stage's optimizer as glmerControl() takes it, against glmer
# on the same model.
cbpp_formula <- cbind(incidence, size - incidence) ~ period + (1 | herd)

test_that("glmm() with function optimizers reaches glmer's optimum", {
  skip_if_no_glmm()
  data("cbpp", package = "lme4")
  ref <- glmer_tight(quote(lme4::glmer(cbpp_formula, cbpp, family = binomial)), environment())
  lbfgsb <- function(par, fn, lower, upper, control) {
    r <- optim(par, fn, method = "L-BFGS-B", lower = lower, upper = upper,
               control = list(factr = 1e2, maxit = 1000))
    list(par = r$par, fval = r$value, convergence = r$convergence, message = r$message,
         feval = r$counts[[1L]])
  }
  fit <- glmm(cbpp_formula, cbpp, family = binomial, control = glmmControl(optimizer = lbfgsb))
  expect_identical(fit$optinfo$optimizer, c("lbfgsb", "lbfgsb"))
  expect_length(fit$optinfo$feval_stages, 2L)
  expect_equal(unname(fit$theta), unname(lme4::getME(ref, "theta")), tolerance = 1e-4)
  expect_equal(fixef(fit), lme4::fixef(ref), tolerance = 1e-4)
  expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref)), tolerance = 1e-8)
  # the derivatives at the end point give the standard errors, as after the
  # engine's own search
  expect_equal(sqrt(diag(vcov(fit))), sqrt(diag(as.matrix(vcov(ref)))), tolerance = 1e-3)
  # lme4's wrapper by name, in both stages and with nAGQ = 0 and 5: no worse
  # than glmer with the same optimizer
  for (q in c(0L, 1L, 5L)) {
    ours <- glmm(cbpp_formula, cbpp, family = binomial, nAGQ = q,
                 control = glmmControl(optimizer = "nlminbwrap"))
    theirs <- lme4::glmer(cbpp_formula, cbpp, family = binomial, nAGQ = q,
                          control = lme4::glmerControl(optimizer = "nlminbwrap"))
    expect_identical(ours$optinfo$optimizer, rep("nlminbwrap", 1L + (q > 0L)))
    expect_gt(as.numeric(logLik(ours)), as.numeric(logLik(theirs)) - 1e-6)
    expect_equal(unname(ours$theta), unname(lme4::getME(theirs, "theta")), tolerance = 1e-3)
  }
  # one stage each: the engine's BOBYQA, then a function
  mixed <- glmm(cbpp_formula, cbpp, family = binomial,
                control = glmmControl(optimizer = list("bobyqa", lbfgsb)))
  expect_identical(mixed$optinfo$optimizer, c("bobyqa", "lbfgsb"))
  expect_equal(as.numeric(logLik(mixed)), as.numeric(logLik(ref)), tolerance = 1e-8)
  bad <- function(par, fn, lower, upper, control) {
    list(par = par, fval = fn(par), conv = 3L, message = "gave up")
  }
  expect_warning(glmm(cbpp_formula, cbpp, family = binomial,
                      control = glmmControl(optimizer = bad, calc.derivs = FALSE)),
                 "convergence code 3 from bad: gave up")
  expect_error(glmmControl(optimizer = list("bobyqa", "Nelder_Mead", "bobyqa")),
               "one optimizer or two")
  expect_output(glmm(cbpp_formula, cbpp, family = binomial, verbose = 1,
                     control = glmmControl(optimizer = "nlminbwrap")),
                "iteration: 1\n\tf\\(x\\) = [0-9.]+\n\ttheta = .*\n\tpars = ")
})

test_that("glmm() without optimization fits at the start, stage by stage", {
  skip_if_no_glmm()
  data("cbpp", package = "lme4")
  ctl <- lme4::glmerControl(tolPwrss = 1e-12)
  # glmer's stage-1 function: at theta its PIRLS estimates the fixed effects
  dd0 <- lme4::glmer(cbpp_formula, cbpp, family = binomial, nAGQ = 0, devFunOnly = TRUE,
                     control = ctl)
  dd1 <- lme4::glmer(cbpp_formula, cbpp, family = binomial, devFunOnly = TRUE, control = ctl)
  th <- 0.5
  fit <- glmm(cbpp_formula, cbpp, family = binomial, start = th,
              control = glmmControl(optimizer = "none"))
  expect_identical(fit$optinfo$optimizer, c("none", "none"))
  expect_identical(fit$optinfo$message, "no optimization")
  expect_equal(unname(fit$theta), th)
  dd0(th)
  beta0 <- environment(dd0)$pp$beta(1)
  expect_equal(unname(fixef(fit)), beta0, tolerance = 1e-7)
  # the Laplace deviance there, as glmer's stage-2 function gives it
  expect_equal(-2 * as.numeric(logLik(fit)), dd1(c(th, beta0)), tolerance = 1e-9)
  expect_identical(glmmControl(optimizer = NULL)$optimizer, c("none", "none"))
  # the engine's first stage, no second: the Laplace deviance at the
  # nAGQ = 0 estimates
  fit0 <- glmm(cbpp_formula, cbpp, family = binomial, nAGQ = 0)
  staged <- glmm(cbpp_formula, cbpp, family = binomial,
                 control = glmmControl(optimizer = c("bobyqa", "none")))
  expect_equal(unname(staged$theta), unname(fit0$theta), tolerance = 1e-6)
  expect_equal(fixef(staged), fixef(fit0), tolerance = 1e-6)
  expect_equal(-2 * as.numeric(logLik(staged)), dd1(c(staged$theta, fixef(staged))),
               tolerance = 1e-9)
  expect_length(staged$optinfo$feval_stages, 2L)
  expect_identical(staged$optinfo$feval_stages[[2L]], 0L)
  # the deviance function of such a fit is the model's
  dd <- as.function(fit)
  expect_equal(dd(c(th, beta0)), dd1(c(th, beta0)), tolerance = 1e-9)
})

test_that("optimizer = \"optimx\" runs optimx with optCtrl's method, as lme4 does", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("optimx")
  sleep <- lme4::sleepstudy
  ctl <- lme4::lmerControl(optimizer = "optimx", optCtrl = list(method = "nlminb"))
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleep, control = ctl)
  ref <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleep, control = ctl)
  expect_identical(fit$optinfo$optimizer, "optimx")
  # both at nlminb's optimum of the same criterion
  expect_equal(as.numeric(logLik(fit)), as.numeric(logLik(ref)), tolerance = 1e-9)
  expect_equal(unname(getME(fit, "theta")), unname(lme4::getME(ref, "theta")), tolerance = 1e-5)
  gctl <- lme4::glmerControl(optimizer = "optimx", optCtrl = list(method = "nlminb"))
  gfit <- glmm(cbpp_formula, lme4::cbpp, family = binomial, control = gctl)
  gref <- lme4::glmer(cbpp_formula, lme4::cbpp, family = binomial, control = gctl)
  expect_gt(as.numeric(logLik(gfit)), as.numeric(logLik(gref)) - 1e-6)
  expect_error(lmm(Reaction ~ Days + (Days | Subject), sleep,
                   control = lme4::lmerControl(optimizer = "optimx")),
               "needs one of optimx's methods in optCtrl")
})

test_that("glmm() with nmkbw reaches glmer's optimum: PIRLS starts again cold where warm fails", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("dfoptim")
  # nmkbw's first stage (one parameter: optimize() on [0, 100]) jumps from
  # theta = 1 to 61.8, where PIRLS from the modes at 1 failed; lme4 starts
  # every evaluation from its lp0
  ctl <- lme4::glmerControl(optimizer = "nmkbw")
  fit <- glmm(cbpp_formula, lme4::cbpp, family = binomial, control = ctl)
  ref <- lme4::glmer(cbpp_formula, lme4::cbpp, family = binomial, control = ctl)
  expect_gt(as.numeric(logLik(fit)), as.numeric(logLik(ref)) - 1e-6)
  # the stage-1 deviance function, evaluated after another theta, as glmer's
  dev0 <- glmm(cbpp_formula, lme4::cbpp, family = binomial, nAGQ = 0, devFunOnly = TRUE)
  ref0 <- lme4::glmer(cbpp_formula, lme4::cbpp, family = binomial, nAGQ = 0, devFunOnly = TRUE,
                      control = lme4::glmerControl(tolPwrss = 1e-12))
  dev0(1)
  expect_equal(dev0(61.8), ref0(61.8), tolerance = 1e-8)
  expect_equal(dev0(1000), ref0(1000), tolerance = 1e-8)
})
