# lmm_sums_fit(): a linear mixed model fitted from grouped sums alone (no
# rows) is the model of its rows. Each case sums the rows of an in-memory
# lmm() fit in R (helper-sums.R), fits the sums, and compares side by side
# with the in-memory fit and with lme4 (and lmerTest/pbkrtest through the
# in-memory fit's anova, which test-ddf.R checks against them).
#
# Tolerances: both fits run BOBYQA to rhoend = 1e-12 on criteria that agree
# to rounding (sums formed in another order, weighted or shifted). The
# log-likelihood, flat to second order at the optimum, agrees to 1e-8
# relative. The estimates of two separate optimizations agree to the
# optimizer's precision on that flat criterion: where the rounding sends
# BOBYQA along another path they differ by up to ~1e-7 relative (weighted
# sleepstudy), so they are compared to 1e-6; every estimate is compared to
# 1e-8 at the same covariance parameters (optimizer = "none" from the
# in-memory fit's), where only the rounding of the sums separates them.

full_ctl <- function(...) lmmControl(optCtrl = list(rhoend = 1e-12), ...)

# The sums fit at the in-memory fit's covariance parameters.
sums_at <- function(inputs, mem) {
  lmm_sums_fit(inputs, REML = isTRUE(mem$REML), control = lmmControl(optimizer = "none"),
               start = unname(mem$par))
}

# Separately optimized (1e-6) and at the same parameters (1e-8).
expect_same_model <- function(inputs, mem, info = "") {
  agg <- lmm_sums_fit(inputs, REML = isTRUE(mem$REML), control = full_ctl())
  expect_same_fit(agg, mem, tol = 1e-6, info = paste(info, "optimized"))
  expect_same_fit(sums_at(inputs, mem), mem, tol = 1e-8, info = paste(info, "same par"))
  agg
}

# Everything that needs no rows, equal between the in-memory fit `mem` and
# the sums fit `agg` to `tol`.
expect_same_fit <- function(agg, mem, tol = 1e-8, info = "") {
  lab <- function(what) paste(info, what)
  expect_true(inherits(agg, c("lmm", "mixedrs_fit")))
  expect_equal(as.numeric(logLik(agg)), as.numeric(logLik(mem)), tolerance = 1e-8,
               label = lab("logLik"))
  expect_equal(attributes(logLik(agg))[c("nobs", "df")],
               attributes(logLik(mem))[c("nobs", "df")])
  expect_equal(fixef(agg), fixef(mem), tolerance = tol, label = lab("fixef"))
  expect_equal(agg$theta, mem$theta, tolerance = tol, label = lab("theta"))
  expect_equal(sigma(agg), sigma(mem), tolerance = tol, label = lab("sigma"))
  expect_equal(vcov(agg), vcov(mem), tolerance = tol, label = lab("vcov"))
  expect_equal(as.data.frame(VarCorr(agg)), as.data.frame(VarCorr(mem)), tolerance = tol,
               label = lab("VarCorr"))
  ra <- ranef(agg, condVar = TRUE)
  rm <- ranef(mem, condVar = TRUE)
  expect_equal(ra, rm, tolerance = tol, label = lab("ranef and postVar"))
  expect_equal(coef(agg), coef(mem), tolerance = tol, label = lab("coef"))
  expect_equal(nobs(agg), nobs(mem))
  expect_equal(ngrps(agg), ngrps(mem))
  expect_equal(AIC(agg), AIC(mem), tolerance = 1e-8)
  expect_equal(BIC(agg), BIC(mem), tolerance = 1e-8)
  expect_equal(deviance(agg, REML = FALSE), deviance(mem, REML = FALSE), tolerance = 1e-8)
  expect_equal(REMLcrit(agg), REMLcrit(mem), tolerance = 1e-8)
  expect_equal(isSingular(agg), isSingular(mem))
  expect_equal(formula(agg), formula(mem))
  expect_equal(df.residual(agg), df.residual(mem))
  expect_equal(getME(agg, c("theta", "beta", "Lambdat", "n", "p", "q", "devcomp")),
               getME(mem, c("theta", "beta", "Lambdat", "n", "p", "q", "devcomp")),
               tolerance = tol)
  # the grouping factors: their levels (the sums carry no rows)
  expect_equal(lapply(getME(agg, "flist"), levels), lapply(getME(mem, "flist"), levels))
}

# The F tests of one fit, equal to the in-memory fit's (whose agreement with
# lmerTest and pbkrtest test-ddf.R checks).
expect_same_anova <- function(agg, mem, ddfs = c("Satterthwaite", "Kenward-Roger"),
                              types = "III", tol = 1e-6) {
  for (ddf in ddfs) for (type in types) {
    expect_equal(as.data.frame(anova(agg, ddf = ddf, type = type)),
                 as.data.frame(anova(mem, ddf = ddf, type = type)), tolerance = tol,
                 label = paste("anova", ddf, type))
  }
  expect_equal(coef(summary(agg)), coef(summary(mem)), tolerance = tol)
}

test_that("sleepstudy (Days | Subject) by REML and ML equals lmm() and lme4", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4")
  for (reml in c(TRUE, FALSE)) {
    mem <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy, REML = reml,
               control = full_ctl())
    agg <- expect_same_model(sums_inputs_of_fit(mem), mem, info = paste("REML", reml))
    ref <- lmer_full(Reaction ~ Days + (Days | Subject), sleepstudy, REML = reml)
    # lme4's optimum, to its rhoend: 1e-6 relative in the estimates
    expect_equal(as.numeric(logLik(agg)), as.numeric(logLik(ref)), tolerance = 1e-8)
    expect_equal(unname(fixef(agg)), unname(lme4::fixef(ref)), tolerance = 1e-6)
    expect_equal(unname(agg$theta), unname(lme4::getME(ref, "theta")), tolerance = 1e-6)
    expect_equal(sigma(agg), sigma(ref), tolerance = 1e-6)
    expect_equal(unname(as.matrix(vcov(agg))), unname(as.matrix(vcov(ref))), tolerance = 1e-6)
    expect_equal(ranef(agg)$Subject, lme4::ranef(ref)$Subject, tolerance = 1e-5,
                 ignore_attr = TRUE)
  }
  mem <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy, control = full_ctl())
  agg <- lmm_sums_fit(sums_inputs_of_fit(mem), control = full_ctl())
  expect_same_anova(agg, mem, types = c("III", "II", "I"))
  # profile confidence intervals, from the same profiles
  expect_equal(suppressMessages(confint(agg, method = "profile")),
               suppressMessages(confint(mem, method = "profile")), tolerance = 1e-6)
  expect_equal(confint(agg, method = "Wald"), confint(mem, method = "Wald"), tolerance = 1e-8)
  # the optimizers that run on the deviance function
  nm_mem <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy,
                control = lmmControl(optimizer = "Nelder_Mead"))
  nm <- lmm_sums_fit(sums_inputs_of_fit(mem), control = lmmControl(optimizer = "Nelder_Mead"))
  expect_equal(as.numeric(logLik(nm)), as.numeric(logLik(nm_mem)), tolerance = 1e-8)
  expect_equal(nm$optinfo$optimizer, "Nelder_Mead")
  # the deviance function of the sums at the in-memory fit's theta
  expect_equal(as.function(agg)(mem$theta), REMLcrit(mem), tolerance = 1e-10)
})

test_that("print() and summary() say the fit was made from aggregates, and where", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4")
  mem <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  agg <- lmm_sums_fit(sums_inputs_of_fit(mem, source = "SQLite table sleep"))
  out <- capture.output(print(agg))
  expect_true(any(grepl("Data: SQLite table sleep (fitted from aggregates", out, fixed = TRUE)))
  expect_true(any(grepl("Formula: Reaction ~ Days + (Days | Subject)", out, fixed = TRUE)))
  s <- capture.output(print(summary(agg)))
  expect_true(any(grepl("fitted from aggregates", s, fixed = TRUE)))
  expect_false(any(grepl("Scaled residuals", s, fixed = TRUE)))
  expect_true(any(grepl("Number of obs: 180, groups:  Subject, 18", s, fixed = TRUE)))
  # the rest of the display is the in-memory fit's
  s_mem <- capture.output(print(summary(mem)))
  tail_of <- function(x) x[seq(grep("^Random effects", x), length(x))]
  expect_equal(tail_of(s), tail_of(s_mem))
})

test_that("Penicillin (crossed) and Pastes (nested) equal lmm() and lme4", {
  skip_if_not_installed("lme4")
  data("Penicillin", package = "lme4")
  data("Pastes", package = "lme4")
  cases <- list(
    list(f = diameter ~ 1 + (1 | plate) + (1 | sample), d = Penicillin),
    list(f = strength ~ 1 + (1 | batch / cask), d = Pastes))
  for (cs in cases) {
    mem <- lmm(cs$f, cs$d, control = full_ctl())
    agg <- expect_same_model(sums_inputs_of_fit(mem), mem, info = deparse1(cs$f))
    ref <- lmer_full(cs$f, cs$d)
    expect_equal(as.numeric(logLik(agg)), as.numeric(logLik(ref)), tolerance = 1e-8)
    expect_equal(unname(agg$theta), unname(lme4::getME(ref, "theta")), tolerance = 1e-6)
    expect_equal(sigma(agg), sigma(ref), tolerance = 1e-6)
    expect_equal(unname(fixef(agg)), unname(lme4::fixef(ref)), tolerance = 1e-6)
    expect_same_anova(agg, mem, ddfs = "Satterthwaite", types = character())
    ml_mem <- lmm(cs$f, cs$d, REML = FALSE, control = full_ctl())
    ml <- expect_same_model(sums_inputs_of_fit(ml_mem), ml_mem, info = paste("ML", deparse1(cs$f)))
    expect_equal(suppressMessages(confint(ml, method = "profile")),
                 suppressMessages(confint(ml_mem, method = "profile")), tolerance = 1e-6)
  }
})

test_that("a factor fixed effect with prior weights and an offset equals lmm() and lme4", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4")
  d <- sleepstudy
  set.seed(16)
  d$w <- runif(nrow(d), 0.5, 2)
  d$o <- rnorm(nrow(d), sd = 5)
  d$grp <- factor(rep(c("a", "b", "c"), length.out = nrow(d)))
  f <- Reaction ~ Days + grp + (Days | Subject)
  mem <- lmm(f, d, weights = w, offset = o, control = full_ctl())
  agg <- expect_same_model(sums_inputs_of_fit(mem), mem, info = "weights, offset")
  ref <- lmer_full(f, d, weights = w, offset = o)
  expect_equal(as.numeric(logLik(agg)), as.numeric(logLik(ref)), tolerance = 1e-8)
  expect_equal(unname(fixef(agg)), unname(lme4::fixef(ref)), tolerance = 1e-6)
  expect_equal(unname(agg$theta), unname(lme4::getME(ref, "theta")), tolerance = 1e-6)
  # type III with a factor; types I and II need the unweighted X'X, which
  # weighted sums hold only with their optional unweighted part (xx)
  expect_same_anova(agg, mem)
  bare <- lmm_sums_fit(sums_inputs_of_fit(mem, unweighted = FALSE),
                       control = full_ctl(check.scaleX = "ignore"))
  expect_error(anova(bare, type = "I"), "weighted by its prior weights")
  # the LRT of two fits from sums, REML fits refitted by ML from their sums
  mem0 <- lmm(Reaction ~ Days + (Days | Subject), d, weights = w, offset = o,
              control = full_ctl())
  agg0 <- lmm_sums_fit(sums_inputs_of_fit(mem0), control = full_ctl())
  lrt <- anova(agg0, agg)
  expect_equal(as.data.frame(lrt), as.data.frame(anova(mem0, mem)),
               tolerance = 1e-6, ignore_attr = TRUE)
  expect_equal(attr(lrt, "heading")[1L], "Data: \"rows summed in R (test)\"")
  other <- sums_inputs_of_fit(mem0, source = "another table")
  expect_error(anova(lmm_sums_fit(other), agg), "same data")
  expect_equal(logLik(refitML(agg)), logLik(refitML(mem)), tolerance = 1e-8)
  expect_equal(as.data.frame(drop1(agg)), as.data.frame(drop1(mem)), tolerance = 1e-6)
})

test_that("structured covariance terms (diag, cs) from sums equal lmm()", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4")
  d <- sleepstudy
  d$Days2 <- d$Days^2 / 10
  for (f in list(Reaction ~ Days + diag(Days | Subject),
                 Reaction ~ Days + cs(1 + Days + Days2 | Subject))) {
    mem <- lmm(f, d, control = full_ctl())
    agg <- expect_same_model(sums_inputs_of_fit(mem), mem, info = deparse1(f))
    expect_equal(agg$par, mem$par, tolerance = 1e-6)
    expect_same_anova(agg, mem, ddfs = "Satterthwaite", types = "III")
  }
})

test_that("a response near 1e6 summed with shifts gives the unshifted fit", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4")
  d <- sleepstudy
  d$Reaction <- d$Reaction + 1e6
  plain <- transform(sleepstudy, x = sin(seq_along(Days)) * 3)
  d$x <- plain$x + 1e5   # a fixed-effect column far from 0
  f <- Reaction ~ Days + x + (Days | Subject)
  mem_plain <- lmm(Reaction ~ Days + (Days | Subject), plain, control = full_ctl())
  # the rows near 1e6 in memory; their sums formed with the shifts
  # (lmm() on them warns that it cannot converge: the digits they lose)
  rows <- suppressWarnings(lmm(Reaction ~ Days + (Days | Subject), d, control = full_ctl()))
  inp <- sums_inputs_of_fit(rows, x_shift = c(0, 4.5), y_shift = 1e6)
  agg <- lmm_sums_fit(inp, control = full_ctl())
  shifted <- function(b) b + c(1e6, 0)
  # optimized separately: same optimum to the optimizer's precision
  expect_equal(as.numeric(logLik(agg)), as.numeric(logLik(mem_plain)), tolerance = 1e-8)
  expect_equal(fixef(agg), shifted(fixef(mem_plain)), tolerance = 1e-8)
  expect_equal(agg$theta, mem_plain$theta, tolerance = 1e-5)
  expect_equal(sigma(agg), sigma(mem_plain), tolerance = 1e-6)
  expect_equal(vcov(agg), vcov(mem_plain), tolerance = 1e-5)
  # at the same parameters, everything to 1e-8
  at <- lmm_sums_fit(inp, control = lmmControl(optimizer = "none"),
                     start = unname(mem_plain$theta))
  expect_equal(fixef(at), shifted(fixef(mem_plain)), tolerance = 1e-12)
  expect_equal(sigma(at), sigma(mem_plain), tolerance = 1e-8)
  expect_equal(vcov(at), vcov(mem_plain), tolerance = 1e-8)
  expect_equal(as.numeric(logLik(at)), as.numeric(logLik(mem_plain)), tolerance = 1e-8)
  expect_equal(ranef(at, condVar = TRUE), ranef(mem_plain, condVar = TRUE), tolerance = 1e-8)
  expect_equal(as.data.frame(anova(at, ddf = "Kenward-Roger")),
               as.data.frame(anova(mem_plain, ddf = "Kenward-Roger")), tolerance = 1e-8)
  # the t tests (the intercept's estimate moved by 1e6): standard errors to
  # 1e-8; the Satterthwaite df (differences of the deviance's derivatives,
  # 17 exactly here) to 1e-7: the shifted sums leave them 1e-6 from 17 where
  # the rows leave them 3e-7 from it, at the optimum the Newton steps reach
  # (gradient 1e-12; BOBYQA's, with a gradient of 1e-5, happened to give the
  # two the same error)
  expect_equal(coef(summary(at))[, 2], coef(summary(mem_plain))[, 2], tolerance = 1e-8)
  expect_equal(coef(summary(at))[, 3], coef(summary(mem_plain))[, 3], tolerance = 1e-7)
  expect_equal(coef(summary(at))[2, -3], coef(summary(mem_plain))[2, -3], tolerance = 1e-8)
  # the profile of a shifted fit: the unshifted one's, the intercept moved
  ci <- suppressMessages(confint(agg, method = "profile"))
  ci_plain <- suppressMessages(confint(mem_plain, method = "profile"))
  ci_plain["(Intercept)", ] <- ci_plain["(Intercept)", ] + 1e6
  expect_equal(ci, ci_plain, tolerance = 1e-6)
  # without the shifts the same sums lose digits (what the shifts are for):
  # the fit from unshifted sums of y near 1e6 is off in theta by far more
  unshifted <- suppressWarnings(lmm_sums_fit(sums_inputs_of_fit(rows), control = full_ctl()))
  expect_gt(max(abs(unshifted$theta / mem_plain$theta - 1)),
            100 * max(abs(agg$theta / mem_plain$theta - 1)))
  # a shifted fixed-effect column that is not in Z
  mem_x <- lmm(f, plain, control = full_ctl())
  rows_x <- suppressWarnings(lmm(f, d, control = full_ctl()))
  at_x <- lmm_sums_fit(sums_inputs_of_fit(rows_x, x_shift = c(0, 4.5, 1e5), y_shift = 1e6),
                       control = lmmControl(optimizer = "none"), start = unname(mem_x$theta))
  expect_equal(sigma(at_x), sigma(mem_x), tolerance = 1e-8)
  # beta_x is the same; the intercept moves by y_shift - 1e5 beta_x
  b <- fixef(mem_x)
  expect_equal(fixef(at_x), b + c(1e6 - 1e5 * b[["x"]], 0, 0), tolerance = 1e-10)
  expect_equal(unname(sqrt(diag(vcov(at_x)))[2:3]), unname(sqrt(diag(vcov(mem_x)))[2:3]),
               tolerance = 1e-8)
})

test_that("methods that need the rows are errors saying the fit was made from aggregates", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4")
  mem <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  agg <- lmm_sums_fit(sums_inputs_of_fit(mem, source = "PostgreSQL table sleep"))
  msg <- "needs the rows of the data, but this model was fitted from aggregates .*PostgreSQL table sleep.*collect"
  expect_error(fitted(agg), paste("fitted\\(\\)", msg))
  expect_error(residuals(agg), msg)
  # predict() needs newdata (a data frame, or the table: test-sql-predict.R);
  # the two fits optimize the same criterion separately: 1e-6
  expect_error(predict(agg), "predict\\(\\) without 'newdata' needs the rows .*give newdata = the table")
  expect_equal(predict(agg, newdata = sleepstudy), predict(mem, newdata = sleepstudy),
               tolerance = 1e-6)
  expect_error(simulate(agg), msg)
  expect_error(bootmm(agg, fixef, nsim = 2), msg)
  expect_error(influence(agg), msg)
  expect_error(hatvalues(agg), msg)
  expect_error(cooks.distance(agg), msg)
  expect_error(rstudent(agg), msg)
  expect_error(plot(agg), msg)
  expect_error(qqnorm(agg), msg)
  expect_error(weights(agg), msg)
  expect_error(model.frame(agg), msg)
  expect_error(model.matrix(agg), msg)
  expect_error(refit(agg), msg)
  expect_error(getME(agg, "X"), msg)
  expect_error(getME(agg, "Zt"), msg)
  expect_error(getData(agg), msg)
  expect_error(drop1(agg, test = "Chisq"), msg)
  expect_error(update(agg, data = sleepstudy), "can only change REML")
  expect_error(update(agg, . ~ . - Days), "can only change REML")
  if (requireNamespace("broom.mixed", quietly = TRUE) ||
      requireNamespace("generics", quietly = TRUE)) {
    expect_error(augment.lmm(agg), msg)
  }
  # update(REML = FALSE) refits from the sums
  ml <- update(agg, REML = FALSE)
  expect_equal(as.numeric(logLik(ml)), as.numeric(logLik(refitML(mem))), tolerance = 1e-8)
})

test_that("malformed sums inputs are errors naming the fault", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4")
  mem <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  good <- sums_inputs_of_fit(mem)
  spoil <- function(f) { x <- good; f(x) }
  expect_error(lmm_sums_fit(1), "'inputs' must be a list")
  expect_error(lmm_sums_fit(spoil(function(x) { x$sums <- NULL; x })), "lacks 'sums'")
  expect_error(lmm_sums_fit(spoil(function(x) { x$n <- 179; x })), "differ")
  expect_error(lmm_sums_fit(spoil(function(x) { x$sums$p <- 3L; x })), "sums\\$p")
  expect_error(lmm_sums_fit(spoil(function(x) { x$x_shift <- c(1, 0); x })),
               "intercept as the first fixed-effect column")
  expect_error(lmm_sums_fit(spoil(function(x) { x$sums$factors[[1]]$zz <- x$sums$factors[[1]]$zz[-1]; x })),
               "'zz' of grouping factor 1 has 71 values")
  expect_error(lmm_sums_fit(spoil(function(x) { x$sums$ff[1] <- NA; x })), "not finite")
  expect_error(lmm_sums_fit(spoil(function(x) { x$sums$factors[[1]]$n_levels <- 17L; x })),
               "17 levels")
  expect_error(lmm_sums_fit(spoil(function(x) { x$sums$sum_log_w <- Inf; x })),
               "sum_log_w")
})
