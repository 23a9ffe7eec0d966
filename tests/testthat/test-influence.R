# influence(), its cooks.distance()/dfbeta()/dfbetas() methods and
# rstudent(), side by side with lme4's influence.merMod and its methods.

# lme4's refit without the rows `drop` of `data`, run to full precision from
# the full-data optimum (what each of our deletion refits computes).
lmer_refit_without <- function(fm, data, drop) {
  suppressWarnings(stats::update(fm, data = data[-drop, , drop = FALSE],
                                 start = list(theta = lme4::getME(fm, "theta")),
                                 control = lmer_full_control()))
}

test_that("group deletion refits agree with lme4's refits and influence()", {
  skip_if_not_installed("lme4")
  ss <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), ss,
             control = lmmControl(rhoend = 1e-10))
  fm <- lmer_full(Reaction ~ Days + (Days | Subject), ss)
  infl <- influence(fit, groups = "Subject")
  expect_s3_class(infl, "influence.merMod")
  ref <- lme4:::influence.merMod(fm, groups = "Subject")
  expect_identical(names(infl), names(ref))
  expect_identical(infl$groups, ref$groups)
  expect_identical(infl$deleted, ref$deleted)
  expect_identical(dimnames(infl[[2]]), dimnames(ref[[2]]))
  expect_identical(dimnames(infl[[4]]), dimnames(ref[[4]]))
  expect_identical(names(infl[[3]]), names(ref[[3]]))
  # The full fits: both at full precision.
  expect_equal(infl$fixed.effects, ref$fixed.effects, tolerance = 1e-7)
  expect_equal(infl$var.cov.comps, ref$var.cov.comps, tolerance = 1e-6)
  expect_equal(infl$vcov, ref$vcov, tolerance = 1e-6)
  # lme4's influence() refits with its default optimizer (nloptwrap, whose
  # tolerances it does not let us tighten): it stops ~1e-5 (relative) short
  # of the optimum in the variance components, so compare with 1e-3 here and
  # with full-precision refits of lme4 below.
  expect_equal(infl[[2]], ref[[2]], tolerance = 1e-4)
  expect_equal(infl[[4]], ref[[4]], tolerance = 1e-3)
  expect_equal(infl[[6]], ref[[6]], tolerance = 1e-3)
  expect_true(all(infl$converged))
  expect_true(all(infl$function.evals > 0))
  # Full-precision lme4 refits without subjects 308, 335 and 372: the
  # deletion refits are full re-optimizations, so they agree to the
  # optimizers' accuracy (theta to ~1e-7: 1e-6 relative in the estimates).
  for (s in c("308", "335", "372")) {
    r <- lmer_refit_without(fm, ss, which(ss$Subject == s))
    expect_equal(infl[[2]][s, ], lme4::fixef(r), tolerance = 1e-6)
    vc <- as.data.frame(lme4::VarCorr(r))$vcov
    expect_equal(unname(infl[[4]][s, ]), c(sigma(r)^2, vc[1], vc[3], vc[2]),
                 tolerance = 1e-6)
    expect_equal(infl[[6]][[s]], as.matrix(vcov(r)), tolerance = 1e-6)
  }
  # The methods give lme4's methods' numbers on our result and on lme4's.
  expect_equal(cooks.distance(infl), lme4:::cooks.distance.influence.merMod(infl),
               ignore_attr = TRUE, tolerance = 1e-12)
  expect_equal(dfbeta(infl), lme4:::dfbeta.influence.merMod(infl), tolerance = 1e-12)
  expect_equal(dfbeta(infl, which = "var.cov"),
               lme4:::dfbeta.influence.merMod(infl, which = "var.cov"), tolerance = 1e-12)
  expect_equal(dfbetas(infl), lme4:::dfbetas.influence.merMod(infl), tolerance = 1e-12)
  expect_equal(unname(cooks.distance(infl)),
               unname(lme4:::cooks.distance.influence.merMod(ref)), tolerance = 1e-3)
  expect_equal(dfbetas(infl), lme4:::dfbetas.influence.merMod(ref), tolerance = 1e-3)
  expect_identical(names(cooks.distance(infl)), levels(ss$Subject))
})

test_that("case deletion agrees with full-precision lme4 refits (crossed, ML, weights)", {
  skip_if_not_installed("lme4")
  pen <- lme4::Penicillin
  pen$w <- rep(c(1, 2, 0.5), length.out = nrow(pen))
  fit <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), pen, weights = w, REML = FALSE,
             control = lmmControl(rhoend = 1e-10))
  fm <- lmer_full(diameter ~ 1 + (1 | plate) + (1 | sample), pen, weights = w,
                  REML = FALSE)
  infl <- influence(fit, ncores = 2)
  expect_identical(infl$groups, "case")
  expect_identical(infl$deleted, rownames(pen))
  expect_identical(rownames(infl[[2]]), rownames(pen))
  for (i in c(1L, 50L, 144L)) {
    r <- lmer_refit_without(fm, pen, i)
    expect_equal(unname(infl[[2]][i, ]), unname(lme4::fixef(r)), tolerance = 1e-6)
    # The likelihood is flat in the variance of the 6 samples: lme4's and our
    # full fits to the same data reach the same deviance to 1e-12 with the
    # sample variance 3e-6 apart (relative); 2e-5 leaves room for that.
    vc <- as.data.frame(lme4::VarCorr(r))
    expect_equal(unname(infl[[4]][i, ]),
                 c(sigma(r)^2, vc$vcov[vc$grp == "plate"], vc$vcov[vc$grp == "sample"]),
                 tolerance = 2e-5)
  }
  # Threads do not change the results.
  expect_identical(influence(fit, ncores = 1)[[4]], infl[[4]])
  # A case the model did not use (NA response) refits to the full fit.
  pen2 <- pen
  pen2$diameter[5] <- NA
  fit2 <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), pen2, REML = FALSE)
  i2 <- influence(fit2, data = pen2)
  expect_identical(nrow(i2[[2]]), nrow(pen2))
  expect_equal(unname(i2[[2]]["5", ]), unname(fixef(fit2)), tolerance = 1e-6)
})

test_that("rstudent(), cooks.distance() and hatvalues() of the fit agree with lme4's", {
  skip_if_not_installed("lme4")
  ss <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), ss, control = lmmControl(rhoend = 1e-10))
  fm <- lmer_full(Reaction ~ Days + (Days | Subject), ss)
  # Same fit to ~1e-8: the residual-based quantities to 1e-6.
  expect_equal(unname(rstudent(fit)), unname(rstudent(fm)), tolerance = 1e-6)
  expect_equal(unname(cooks.distance(fit)), unname(cooks.distance(fm)), tolerance = 1e-6)
  expect_equal(unname(hatvalues(fit)), unname(hatvalues(fm)), tolerance = 1e-6)
  pair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                   lme4::cbpp, family = binomial)))
  gfit <- pair$fit
  gm <- pair$ref
  # GLMM leverages can exceed 1 (lme4 warns that the hat matrix may not make
  # sense for GLMMs): both then give NaN ("NaNs produced") at the same rows.
  expect_equal(unname(suppressWarnings(rstudent(gfit))), unname(suppressWarnings(rstudent(gm))),
               tolerance = 1e-5)
  # do.coef = FALSE: the leverages only.
  h <- influence(fit, do.coef = FALSE)
  expect_equal(h$hat, hatvalues(fit))
  expect_error(cooks.distance(h), "do.coef = TRUE")
})

test_that("influence() rejects what it cannot do, naming the cause", {
  skip_if_not_installed("lme4")
  ss <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), ss)
  expect_error(influence(fit, groups = "Patient"), "'Patient', not a column")
  expect_error(influence(fit, foo = 1), "does not use the argument")
  expect_error(influence(fit, maxfun = -1), "maxfun")
  expect_error(influence(fit, start = 1), "covariance parameters")
  expect_error(influence(fit, data = ss[1:10, ]), "row names")
  # A deletion that leaves a fixed effect without data fails alone, with a warning.
  d <- data.frame(y = c(1, 2, 3, 4, 5, 7, 2, 3), x = c(0, 0, 0, 0, 0, 0, 0, 1),
                  g = factor(rep(1:4, 2)))
  f2 <- lmm(y ~ x + (1 | g), d, control = lmmControl(check.conv.singular = "ignore"))
  expect_warning(i2 <- influence(f2), "1 of 8 deletion refits failed")
  expect_true(all(is.na(i2[[2]]["8", ])))
  expect_false(i2$converged[["8"]])
  expect_false(anyNA(i2[[2]][1:7, ]))
})

# lme4's glmer refit of `gm` without the rows `drop` of `data`, to full
# precision (helper-glmm.R) from the full fit's estimates.
glmer_refit_without <- function(gm, data, drop) {
  suppressMessages(suppressWarnings(stats::update(
    gm, data = data[-drop, , drop = FALSE],
    start = list(theta = lme4::getME(gm, "theta"), fixef = lme4::fixef(gm)),
    control = glmer_reference_control())))
}

test_that("glmm group deletion agrees with lme4's influence() and full-precision refits", {
  skip_if_no_glmm()
  cbpp <- lme4::cbpp
  fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
              family = binomial, control = glmmControl(rhoend = 1e-10))
  gm <- glmer_tight(quote(lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                      cbpp, family = binomial)), environment())
  infl <- influence(fit, groups = "herd")
  ref <- lme4:::influence.merMod(gm, groups = "herd")
  expect_s3_class(infl, "influence.merMod")
  expect_identical(names(infl), names(ref))
  expect_identical(infl$groups, ref$groups)
  expect_identical(infl$deleted, ref$deleted)
  expect_identical(dimnames(infl[[2]]), dimnames(ref[[2]]))
  expect_identical(dimnames(infl[[4]]), dimnames(ref[[4]]))
  expect_identical(names(infl[[3]]), names(ref[[3]]))
  expect_identical(names(infl[[6]]), names(ref[[6]]))
  expect_equal(infl$fixed.effects, ref$fixed.effects, tolerance = 1e-4)
  expect_equal(infl$var.cov.comps, ref$var.cov.comps, tolerance = 2e-3)
  expect_equal(infl$vcov, ref$vcov, tolerance = 1e-3)
  # lme4's influence() refits with glmer's default control (Nelder-Mead in
  # stage 2, PIRLS tolerance 1e-7), which stops ~1e-4 (relative) short of
  # the optimum and leaves its finite-difference Hessian ~2% off: compare
  # with matching tolerances here and with full-precision refits below.
  expect_equal(infl[[2]], ref[[2]], tolerance = 1e-3)
  expect_equal(infl[[4]], ref[[4]], tolerance = 5e-3)
  expect_equal(infl[[6]], ref[[6]], tolerance = 5e-2)
  expect_true(all(infl$converged))
  expect_true(all(infl$function.evals > 0))
  for (h in c("1", "5", "10")) {
    r <- glmer_refit_without(gm, cbpp, which(cbpp$herd == h))
    expect_equal(infl[[2]][h, ], lme4::fixef(r), tolerance = 1e-4)
    expect_equal(unname(infl[[4]][h, ]),
                 c(1, as.data.frame(lme4::VarCorr(r))$vcov), tolerance = 2e-3)
    expect_equal(infl[[6]][[h]], as.matrix(vcov(r)), tolerance = 1e-3)
  }
  # lme4's methods give our methods' numbers on our result, and lme4's
  # result gives them to the tolerance of its refits.
  expect_equal(cooks.distance(infl), lme4:::cooks.distance.influence.merMod(infl),
               ignore_attr = TRUE, tolerance = 1e-12)
  expect_equal(dfbeta(infl), lme4:::dfbeta.influence.merMod(infl), tolerance = 1e-12)
  expect_equal(dfbetas(infl), lme4:::dfbetas.influence.merMod(infl), tolerance = 1e-12)
  expect_equal(unname(cooks.distance(infl)),
               unname(lme4:::cooks.distance.influence.merMod(ref)), tolerance = 5e-2)
  # Forked workers give the same refits.
  skip_on_os("windows")
  expect_identical(influence(fit, groups = "herd", ncores = 2)[[2]], infl[[2]])
})

test_that("glmm case deletion (prior weights) agrees with lme4's influence() and refits", {
  skip_if_no_glmm()
  cbpp <- lme4::cbpp
  cbpp$prop <- cbpp$incidence / cbpp$size
  fit <- glmm(prop ~ period + (1 | herd), cbpp, family = binomial, weights = size,
              control = glmmControl(rhoend = 1e-10))
  gm <- glmer_tight(quote(lme4::glmer(prop ~ period + (1 | herd), cbpp, family = binomial,
                                      weights = size)), environment())
  infl <- influence(fit)
  ref <- lme4:::influence.merMod(gm)
  expect_identical(names(infl), names(ref))
  expect_identical(infl$groups, "case")
  expect_identical(infl$deleted, ref$deleted)
  expect_identical(dimnames(infl[[2]]), dimnames(ref[[2]]))
  expect_equal(infl[[2]], ref[[2]], tolerance = 1e-3)
  expect_equal(infl[[4]], ref[[4]], tolerance = 5e-3)
  for (i in c(1L, 20L, 56L)) {
    r <- glmer_refit_without(gm, cbpp, i)
    expect_equal(unname(infl[[2]][i, ]), unname(lme4::fixef(r)), tolerance = 1e-4)
    expect_equal(unname(infl[[4]][i, 2]), as.data.frame(lme4::VarCorr(r))$vcov,
                 tolerance = 2e-3)
  }
  # nAGQ = 0: refits start from theta only, as lme4's.
  f0 <- glmm(prop ~ period + (1 | herd), cbpp, family = binomial, weights = size, nAGQ = 0)
  g0 <- lme4::glmer(prop ~ period + (1 | herd), cbpp, family = binomial, weights = size,
                    nAGQ = 0)
  i0 <- influence(f0, groups = "herd")
  r0 <- lme4:::influence.merMod(g0, groups = "herd")
  expect_equal(i0[[2]], r0[[2]], tolerance = 1e-3)
  expect_equal(i0[[4]], r0[[4]], tolerance = 5e-3)
  # An offset given as a vector outside the data is subset with the rows.
  lsz <- log(cbpp$size)
  fo <- glmm(incidence ~ period + (1 | herd), cbpp, family = poisson, offset = lsz)
  go <- lme4::glmer(incidence ~ period + (1 | herd), cbpp, family = poisson, offset = lsz)
  io <- influence(fo, groups = "herd")
  ro <- lme4:::influence.merMod(go, groups = "herd")
  expect_equal(io[[2]], ro[[2]], tolerance = 1e-3)
  expect_equal(io[[4]], ro[[4]], tolerance = 5e-3)
  expect_error(influence(fit, ncores = 0), "'ncores' must be a positive whole number")
  expect_error(influence(fit, maxfun = -1), "maxfun")
})
