# Results and methods of glmmTMB-style fits (negative binomial, beta,
# zero-inflation and dispersion models; R/methods-extended.R and
# R/print-extended.R), side by side with glmmTMB's methods on glmmTMB's fit
# of the same model: printouts line by line (labels exactly, numbers within a
# tolerance), fixef/vcov/sigma/logLik, predictions of every type with and
# without newdata, residuals, Wald intervals and the tidiers.

skip_if_not_installed("glmmTMB")

# glmmTMB run to its optimum (tight TMB/nlminb tolerances), so that the two
# fits differ only by what the two optimizers leave (~1e-6 in the estimates).
tmb_tight <- function() {
  glmmTMB::glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4, rel.tol = 1e-12))
}

# Our fit and glmmTMB's of the same model; the data are bound to the same
# name in both calls so that their "Data:" lines agree.
extended_pair <- function(formula, data_name, family, ziformula = NULL, dispformula = NULL,
                          env = parent.frame()) {
  ours <- call("glmm", formula, data = as.name(data_name), family = family)
  # glmmTMB's own family functions (nbinom2, beta_family, ...), else stats'
  # (a call such as gaussian(link = "log") is used as it is in both)
  ref_family <- if (is.call(family)) {
    family
  } else if (exists(family, envir = asNamespace("glmmTMB"), inherits = FALSE)) {
    call("::", quote(glmmTMB), as.name(family))
  } else {
    as.name(family)
  }
  ref <- call("glmmTMB", formula, data = as.name(data_name), family = ref_family)
  ref[[1L]] <- quote(glmmTMB::glmmTMB)
  if (!is.null(ziformula)) ours$ziformula <- ref$ziformula <- ziformula
  if (!is.null(dispformula)) ours$dispformula <- ref$dispformula <- dispformula
  ref$control <- quote(tmb_tight())
  ref_fit <- suppressWarnings(eval(ref, env))
  ref_fit$call$control <- NULL
  list(fit = suppressMessages(eval(ours, env)), ref = ref_fit)
}

Salamanders <- glmmTMB::Salamanders
Owls <- glmmTMB::Owls
beta_data <- local({
  set.seed(42)
  d <- data.frame(g = factor(rep(1:25, each = 8)), h = factor(rep(1:8, 25)),
                  x = stats::rnorm(200))
  m <- stats::plogis(-0.3 + 0.6 * d$x + stats::rnorm(25, sd = 0.5)[d$g] +
                       stats::rnorm(8, sd = 0.3)[d$h])
  d$y <- stats::rbeta(200, m * 12, (1 - m) * 12)
  d
})

gauss_data <- local({
  set.seed(42)
  d <- data.frame(g = factor(rep(1:25, each = 8)), x = stats::rnorm(200))
  d$y <- 5 + 0.5 * d$x + stats::rnorm(25)[d$g] + stats::rnorm(200, sd = exp(-0.5 + 0.3 * d$x))
  d
})
bb_data <- local({
  set.seed(7)
  d <- data.frame(g = factor(rep(1:30, each = 6)), x = stats::rnorm(180),
                  size = sample(8:20, 180, replace = TRUE))
  p <- stats::plogis(-0.5 + 0.4 * d$x + stats::rnorm(30, sd = 0.6)[d$g])
  d$k <- stats::rbinom(180, d$size, stats::rbeta(180, p * 8, (1 - p) * 8))
  d
})

zinb <- extended_pair(count ~ mined + (1 | site), "Salamanders", "nbinom2", ziformula = ~mined)
owls <- extended_pair(SiblingNegotiation ~ FoodTreatment + offset(log(BroodSize)) + (1 | Nest),
                      "Owls", "nbinom1")
zidisp <- extended_pair(count ~ mined + (1 | site), "Salamanders", "nbinom2",
                        ziformula = ~1, dispformula = ~mined)
betafit <- extended_pair(y ~ x + (1 | g) + (1 | h), "beta_data", "beta_family")
# glmm() takes the gaussian family with the log (or inverse) link only: the
# identity link is lmm()'s
gaussdisp <- extended_pair(y ~ x + (1 | g), "gauss_data", quote(gaussian(link = "log")),
                           dispformula = ~x)
betabin <- extended_pair(cbind(k, size - k) ~ x + (1 | g), "bb_data", "betabinomial")

# Printed lines of print(x), messages dropped.
lines_of <- function(x, ...) utils::capture.output(print(x, ...))

# Text exactly (up to spacing), numbers within 2% or one unit in the last
# printed digit: the two fits agree to ~1e-5 in the estimates, but standard
# errors (from two Hessians of the Laplace approximation) and p-values in
# e-notation move by up to ~1%.
expect_same_lines <- function(ours, ref) expect_same_print(ours, ref, rel_tol = 0.02)

test_that("print() and summary() are laid out as glmmTMB's, line by line", {
  for (pair in list(zinb, owls, zidisp, betafit, gaussdisp, betabin)) {
    expect_same_lines(lines_of(pair$fit), lines_of(pair$ref))
    expect_same_lines(lines_of(summary(pair$fit)), lines_of(summary(pair$ref)))
  }
  # the sections that must be there
  s <- lines_of(summary(zinb$fit))
  for (label in c(" Family: nbinom2  ( log )", "Zero inflation:         ~mined",
                  "Data: Salamanders", "Random effects:", "Conditional model:",
                  "Zero-inflation model:")) {
    expect_true(label %in% s, info = label)
  }
  expect_true(any(startsWith(s, "Dispersion parameter for nbinom2 family (): ")))
  s2 <- lines_of(summary(zidisp$fit))
  expect_true("Dispersion model:" %in% s2)
  expect_true("Dispersion:             ~mined" %in% s2)
  expect_false(any(startsWith(s2, "Dispersion parameter")))
  expect_error(summary(zinb$fit, correlation = TRUE), "not available for glmmTMB-style")
})

test_that("the dispersion line has glmmTMB's wording for every family", {
  # glmmTMB's own (internal) printer and ours, for the same values
  for (fam in c("nbinom2", "nbinom1", "beta", "betabinomial", "gaussian", "Gamma",
                "poisson", "binomial")) {
    expect_identical(utils::capture.output(prt_dispersion_line(fam, 0.8123)),
                     utils::capture.output(invisible(glmmTMB:::printDispersion(fam, 0.8123))),
                     info = fam)
  }
})

test_that("coef(summary()) gives the three tables of glmmTMB's summary", {
  for (pair in list(zinb, zidisp)) {
    ours <- coef(summary(pair$fit))
    ref <- summary(pair$ref)$coefficients
    expect_identical(names(ours), names(ref))
    for (comp in names(ref)) {
      if (is.null(ref[[comp]])) {
        expect_null(ours[[comp]])
        next
      }
      expect_identical(dimnames(ours[[comp]]), dimnames(ref[[comp]]))
      # estimates to 1e-4 (both at the optimum); SEs within 2% (two Hessians)
      expect_equal(ours[[comp]][, 1], ref[[comp]][, 1], tolerance = 1e-4)
      expect_equal(ours[[comp]][, 2], ref[[comp]][, 2], tolerance = 0.02)
    }
  }
})

test_that("fixef(), vcov(), sigma(), logLik(), nobs() and df.residual() are glmmTMB's", {
  for (pair in list(zinb, owls, zidisp, betafit, gaussdisp, betabin)) {
    fe <- fixef(pair$fit)
    fr <- glmmTMB::fixef(pair$ref)
    expect_s3_class(fe, "fixef_components")
    expect_identical(names(fe), c("cond", "zi", "disp"))
    for (comp in c("cond", "zi", "disp")) {
      expect_identical(names(fe[[comp]]), names(fr[[comp]]), info = comp)
      expect_equal(fe[[comp]], fr[[comp]], tolerance = 1e-4, info = comp)
    }
    # the same components shown
    expect_identical(grep("model:", lines_of(fe), value = TRUE),
                     grep("model:", lines_of(fr), value = TRUE))
    v <- vcov(pair$fit)
    vr <- vcov(pair$ref)
    expect_identical(names(v), names(vr))
    for (comp in names(vr)) {
      expect_identical(dimnames(v[[comp]]), dimnames(vr[[comp]]))
      expect_equal(v[[comp]], unclass(vr[[comp]]), tolerance = 0.04, info = comp)
    }
    vf <- vcov(pair$fit, full = TRUE)
    coef_rows <- grep("^theta", rownames(vcov(pair$ref, full = TRUE)), invert = TRUE, value = TRUE)
    expect_true(all(coef_rows %in% rownames(vf)))
    expect_equal(as.numeric(sigma(pair$fit)), as.numeric(sigma(pair$ref)), tolerance = 1e-4)
    expect_equal(as.numeric(logLik(pair$fit)), as.numeric(logLik(pair$ref)), tolerance = 1e-6)
    expect_identical(attr(logLik(pair$fit), "df"), attr(logLik(pair$ref), "df"))
    expect_identical(nobs(pair$fit), nobs(pair$ref))
    expect_equal(AIC(pair$fit), AIC(pair$ref), tolerance = 1e-6)
    expect_equal(BIC(pair$fit), BIC(pair$ref), tolerance = 1e-6)
    expect_equal(df.residual(pair$fit), df.residual(pair$ref))
  }
  expect_output(print(vcov(zinb$fit)), "Zero-inflation model:")
  expect_true(is.na(sigma(zidisp$fit)))
  expect_error(deviance(zinb$fit), "not defined for glmmTMB-style fits")
  expect_error(vcov(zinb$fit, use.hessian = TRUE), "not available for glmmTMB-style")
  expect_error(vcov(zinb$fit, fuul = TRUE), "not used: fuul")
})

test_that("predict() gives glmmTMB's six types, with and without newdata", {
  types <- c("link", "response", "conditional", "zprob", "zlink", "disp")
  for (pair in list(zinb, owls, zidisp, betafit, gaussdisp, betabin)) {
    for (type in types) {
      expect_equal(unname(predict(pair$fit, type = type)),
                   unname(predict(pair$ref, type = type)), tolerance = 1e-4, info = type)
    }
  }
  expect_equal(unname(fitted(zinb$fit)), unname(fitted(zinb$ref)), tolerance = 1e-4)
  # glmmTMB rebuilds the model frame of newdata with all its factor levels
  nd <- Salamanders[rev(seq_len(nrow(Salamanders))), ]
  nd_owls <- Owls[seq(nrow(Owls), 1, by = -1), ]
  for (type in types) {
    expect_equal(unname(predict(zinb$fit, nd, type = type)),
                 unname(predict(zinb$ref, nd, type = type)), tolerance = 1e-4, info = type)
    expect_equal(unname(predict(zinb$fit, nd, type = type, re.form = NA)),
                 unname(predict(zinb$ref, nd, type = type, re.form = NA)),
                 tolerance = 1e-4, info = type)
    # the offset of the formula, evaluated in newdata
    expect_equal(unname(predict(owls$fit, nd_owls, type = type)),
                 unname(predict(owls$ref, nd_owls, type = type)), tolerance = 1e-4, info = type)
    expect_equal(unname(predict(zidisp$fit, nd, type = type)),
                 unname(predict(zidisp$ref, nd, type = type)), tolerance = 1e-4, info = type)
  }
  expect_error(predict(zinb$fit, Salamanders[, c("count", "site", "cover")], type = "zprob"),
               "mined")
})

test_that("population-level standard errors are glmmTMB's", {
  nd <- Salamanders[rev(seq_len(nrow(Salamanders))), ]
  for (type in c("link", "conditional", "zlink", "zprob", "response")) {
    ours <- predict(zinb$fit, nd, type = type, re.form = NA, se.fit = TRUE)
    ref <- predict(zinb$ref, nd, type = type, re.form = NA, se.fit = TRUE)
    expect_equal(unname(ours$fit), unname(ref$fit), tolerance = 1e-4, info = type)
    # the covariance of the coefficients agrees to ~1-2% (two Hessians)
    expect_equal(unname(ours$se.fit), unname(ref$se.fit), tolerance = 0.03, info = type)
  }
  # with the random effects, and for type = "disp": test-predict-se-extended.R
  expect_error(predict(zinb$fit, type = "zeta"), "should be one of")
})

test_that("response and Pearson residuals use the variance of each family", {
  # glmmTMB 1.1.5 computes these correctly for poisson and the negative
  # binomials (with zero inflation)
  for (pair in list(zinb, owls, zidisp)) {
    expect_equal(unname(residuals(pair$fit)), unname(residuals(pair$ref)), tolerance = 1e-4)
    expect_equal(unname(residuals(pair$fit, type = "pearson")),
                 unname(residuals(pair$ref, type = "pearson")), tolerance = 1e-4)
  }
  # beta: glmmTMB 1.1.5's variance function leaves phi out; the Pearson
  # residual is (y - mu) / sqrt(mu (1 - mu) / (1 + phi)) with glmmTMB's own
  # mu and phi
  mu <- predict(betafit$ref, type = "conditional")
  phi <- sigma(betafit$ref)
  expect_equal(unname(residuals(betafit$fit, type = "pearson")),
               (beta_data$y - mu) / sqrt(mu * (1 - mu) / (1 + phi)), tolerance = 1e-4)
  # beta-binomial: proportions of n trials, Var = mu (1 - mu) (phi + n) / (n (phi + 1))
  n <- bb_data$size
  mu <- predict(betabin$ref, type = "conditional")
  phi <- sigma(betabin$ref)
  expect_equal(unname(residuals(betabin$fit)), unname(residuals(betabin$ref)), tolerance = 1e-4)
  expect_equal(unname(residuals(betabin$fit, type = "pearson")),
               (bb_data$k / n - mu) / sqrt(mu * (1 - mu) * (phi + n) / (n * (phi + 1))),
               tolerance = 1e-4)
  # gaussian (log link) with a dispersion model: Var = phi_i = exp(X_d beta_d);
  # glmmTMB 1.1.5 gives NA here
  mu <- predict(gaussdisp$ref, type = "conditional")
  sd_i <- predict(gaussdisp$ref, type = "disp")
  expect_equal(unname(residuals(gaussdisp$fit, type = "pearson")),
               (gauss_data$y - mu) / sd_i, tolerance = 1e-4)
  expect_error(residuals(zinb$fit, type = "deviance"), "not defined")
  expect_error(residuals(zinb$fit, scaled = TRUE), "scaled")
})

test_that("Wald confint() has glmmTMB's rows and intervals", {
  for (pair in list(zinb, owls, zidisp, gaussdisp)) {
    ours <- confint(pair$fit)
    ref <- confint(pair$ref)
    expect_identical(dimnames(ours), dimnames(ref))
    # ends = estimate +- 1.96 SE: estimates to 1e-4, SEs within 2%
    expect_equal(ours[, 3], ref[, 3], tolerance = 1e-4)
    expect_equal(ours, ref, tolerance = 0.02)
    ours_full <- confint(pair$fit, full = TRUE)
    ref_full <- confint(pair$ref, full = TRUE)
    expect_identical(dimnames(ours_full), dimnames(ref_full))
  }
  expect_equal(confint(owls$fit, full = TRUE)["sigma", ],
               confint(owls$ref, full = TRUE)["sigma", ], tolerance = 0.02)
  expect_identical(colnames(confint(zinb$fit, estimate = FALSE)), c("2.5 %", "97.5 %"))
  expect_identical(rownames(confint(zinb$fit, component = "zi")),
                   c("zi.(Intercept)", "zi.minedno"))
  expect_error(confint(zinb$fit, method = "boot"), "not available for glmmTMB-style fits")
  expect_error(confint(zinb$fit, method = "boot", nsim = 10), "not available for glmmTMB-style fits")
  expect_error(confint(zinb$fit, parm = "nonsense"), "unknown 'parm'")
})

test_that("tidy() and glance() have broom.mixed's rows with a component column", {
  skip_if_not_installed("broom.mixed")
  for (pair in list(zinb, owls, gaussdisp)) {
    ours <- as.data.frame(tidy(pair$fit, conf.int = pair$fit$extended$family != "gaussian"))
    ref <- as.data.frame(broom.mixed::tidy(pair$ref,
                                           conf.int = pair$fit$extended$family != "gaussian"))
    expect_identical(names(ours), names(ref))
    expect_identical(ours[c("effect", "component", "group", "term")],
                     ref[c("effect", "component", "group", "term")])
    num <- intersect(c("estimate", "std.error", "statistic", "conf.low", "conf.high"), names(ref))
    expect_equal(ours[num], ref[num], tolerance = 0.02)
    g <- as.data.frame(glance(pair$fit))
    gr <- as.data.frame(broom.mixed::glance(pair$ref))
    expect_identical(names(g), names(gr))
    # The criteria agree to 1e-6; the dispersion, flat at the optimum, to 1e-4
    # (two optimizers' stopping points).
    crit <- setdiff(names(g), "sigma")
    expect_equal(g[crit], gr[crit], tolerance = 1e-6)
    expect_equal(g$sigma, gr$sigma, tolerance = 1e-4)
  }
  d <- tidy(zidisp$fit, effects = "fixed", component = c("cond", "zi", "disp"))
  expect_identical(unique(d$component), c("cond", "zi", "disp"))
  expect_error(tidy(zinb$fit, component = "dispersion"), "unknown component")
})

test_that("augment() has broom.mixed's columns for glmmTMB, and the same numbers", {
  skip_if_not_installed("broom.mixed")
  for (pair in list(zinb, owls)) {
    ours <- as.data.frame(augment(pair$fit))
    ref <- as.data.frame(broom.mixed::augment(pair$ref))
    expect_identical(names(ours), names(ref))
    for (v in c(".fitted", ".se.fit", ".resid")) {
      expect_equal(ours[[v]], ref[[v]], tolerance = 1e-4, info = v)
    }
  }
  # with newdata: predict()'s fit and standard error (compared with
  # glmmTMB's above; broom.mixed 0.2.9's augment of a glmmTMB fit with
  # newdata repeats the fits in one column)
  nd <- Salamanders[c(1, 50, 300), ]
  ours <- as.data.frame(augment(zinb$fit, newdata = nd, type.predict = "response"))
  pred <- predict(zinb$fit, newdata = nd, type = "response", se.fit = TRUE)
  expect_identical(names(ours), c(names(nd), ".fitted", ".se.fit"))
  expect_identical(ours$.fitted, as.vector(pred$fit))
  expect_identical(ours$.se.fit, as.vector(pred$se.fit))
  expect_error(augment(zinb$fit, type.residuals = "deviance"), "takes type.residuals")
})

test_that("augment() of an na.exclude glmmTMB-style fit: one row per observation, or padded", {
  sal_na <- Salamanders
  sal_na$count[c(4, 90)] <- NA
  fit <- glmm(count ~ mined + (1 | site), sal_na, family = nbinom2, na.action = na.exclude)
  ref <- suppressWarnings(glmmTMB::glmmTMB(count ~ mined + (1 | site), sal_na,
                                           family = glmmTMB::nbinom2, na.action = na.exclude,
                                           control = tmb_tight()))
  pred <- predict(ref, se.fit = TRUE)
  res <- residuals(ref)
  # the model frame (the default data): the observations used, nothing padded
  aug <- as.data.frame(augment(fit))
  expect_identical(nrow(aug), nrow(sal_na) - 2L)
  expect_equal(aug$.fitted, as.vector(pred$fit)[-c(4, 90)], tolerance = 1e-4)
  expect_equal(aug$.se.fit, as.vector(pred$se.fit)[-c(4, 90)], tolerance = 1e-4)
  expect_equal(aug$.resid, as.vector(res)[-c(4, 90)], tolerance = 1e-4)
  # the original data: NA at the excluded rows
  full <- as.data.frame(augment(fit, data = sal_na))
  expect_identical(nrow(full), nrow(sal_na))
  expect_true(all(is.na(full$.fitted[c(4, 90)])))
  expect_equal(full$.fitted[-c(4, 90)], aug$.fitted)
  expect_error(augment(fit, data = sal_na[1:10, ]), "needs one row per observation")
})

test_that("getME()'s factors hold with negative Laplace weights; no hat values", {
  # zero-inflated counts: the observed information is negative at some zeros
  w <- weights(zinb$fit, "working")
  expect_true(any(w < 0))
  L <- getME(zinb$fit, "L")
  expect_equal(2 * as.numeric(Matrix::determinant(L, logarithm = TRUE)$modulus),
               getME(zinb$fit, "devcomp")$cmp[["ldL2"]], tolerance = 1e-8)
  X <- getME(zinb$fit, "X")
  RX <- getME(zinb$fit, "RX")
  RZX <- getME(zinb$fit, "RZX")
  expect_equal(crossprod(RX) + crossprod(RZX), crossprod(X, w * X), tolerance = 1e-8,
               ignore_attr = TRUE)
  expect_error(hatvalues(zinb$fit), "not available for glmmTMB-style fits")
  expect_error(cooks.distance(zinb$fit), "not available for glmmTMB-style fits")
})

test_that("dotplot() and qqmath() draw a glmmTMB-style ranef() with its conditional variances", {
  skip_if_not_installed("lattice")
  re <- ranef(zinb$fit, condVar = TRUE)
  p <- lattice::dotplot(re)
  expect_identical(names(p), "site")
  expect_s3_class(p$site, "trellis")
  # the intervals' half-widths are the conditional standard deviations
  # (glmmTMB's condsd) times qnorm(0.975)
  args <- p$site$panel.args.common
  sd_ref <- as.data.frame(glmmTMB::ranef(zinb$ref, condVar = TRUE))$condsd
  expect_equal(sort(as.numeric(args$se)), sort(sd_ref), tolerance = 1e-3)
  expect_s3_class(lattice::qqmath(re)$site, "trellis")
  expect_error(lattice::dotplot(re, component = "zi"), "zero-inflation model has no random effects")
})
