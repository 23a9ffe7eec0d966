# bootmm() with lme4's bootMer() arguments: the semiparametric bootstrap,
# verbose output, progress bars and the parallel arguments, side by side with
# lme4::bootMer() at the same seed.

test_that("the semiparametric bootstrap reproduces lme4's bootMer() at the same seed", {
  skip_if_not_installed("lme4")
  ss <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), ss, control = lmmControl(rhoend = 1e-10))
  fm <- lmer_full(Reaction ~ Days + (Days | Subject), ss)
  f <- function(m) c(fixef(m), sigma = sigma(m))
  b <- bootmm(fit, f, nsim = 6, seed = 11, use.u = TRUE, type = "semiparametric")
  ref <- lme4::bootMer(fm, f, nsim = 6, seed = 11, use.u = TRUE, type = "semiparametric")
  expect_identical(b$sim, ref$sim)
  expect_identical(b$seed, ref$seed)
  expect_equal(b$t0, ref$t0, tolerance = 1e-6)
  # bootMer's refits (lme4's refit()) stop short of the optimum (their REML
  # criterion ~7e-4 above it here), which moves sigma by ~1e-3 but the fixed
  # effects by less than 1e-5: compare those with bootMer's, and everything
  # with full-precision lmer() fits to the same resampled responses, which
  # lme4 draws as fitted + sample(residuals, replace = TRUE).
  expect_equal(b$t[, 1:2], ref$t[, 1:2], tolerance = 1e-5)
  set.seed(11)
  for (k in 1:6) {
    d <- ss
    d$Reaction <- fitted(fm) + sample(residuals(fm, "response"), replace = TRUE)
    r <- lmer_full(Reaction ~ Days + (Days | Subject), d)
    # Both fits to full precision: theta agrees to ~1e-7, sigma to 1e-6.
    expect_equal(b$t[k, ], f(r), tolerance = 1e-6)
  }
  # The semiparametric responses differ from the parametric ones.
  bp <- bootmm(fit, f, nsim = 6, seed = 11, use.u = TRUE)
  expect_false(isTRUE(all.equal(bp$t, b$t)))
})

test_that("confint() of a bootmm object is lme4's confint() of a bootMer object", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("boot")
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  b <- bootmm(fit, fixef, nsim = 40, seed = 3)
  for (type in c("perc", "norm", "basic")) {
    expect_equal(confint(b, type = type), lme4:::confint.bootMer(b, type = type),
                 tolerance = 1e-12)
  }
  ci <- boot::boot.ci(b, index = 2, type = "perc")
  expect_equal(unname(ci$percent[4:5]), unname(confint(b)[2, ]), tolerance = 1e-12)
})

test_that("parallel, ncpus, verbose and .progress work as in bootMer()", {
  skip_if_not_installed("lme4")
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  b1 <- bootmm(fit, fixef, nsim = 6, seed = 5)
  b2 <- bootmm(fit, fixef, nsim = 6, seed = 5, parallel = "multicore", ncpus = 2)
  b3 <- bootmm(fit, fixef, nsim = 6, seed = 5, parallel = "snow", ncpus = 1)
  expect_identical(b1$t, b2$t)
  expect_identical(b1$t, b3$t)
  out <- capture.output(b4 <- bootmm(fit, fixef, nsim = 3, seed = 5, verbose = TRUE))
  expect_identical(sum(grepl("^ +[1-3] : Named num", out)), 3L)
  expect_identical(b4$t, bootmm(fit, fixef, nsim = 3, seed = 5)$t)
  pb <- capture.output(bootmm(fit, fixef, nsim = 4, seed = 5, .progress = "txt",
                              PBargs = list(style = 3)))
  expect_true(any(grepl("100%", pb)))
  # confint(method = "boot") passes them on, as lme4's ?confint.merMod example does
  # (boot warns that 4 replicates put the limits at the extremes)
  quiet <- suppressWarnings(suppressMessages(confint(fit, method = "boot", nsim = 4, seed = 5)))
  pb <- capture.output(shown <- suppressWarnings(suppressMessages(
    confint(fit, method = "boot", nsim = 4, seed = 5, .progress = "txt", PBargs = list(style = 3)))))
  expect_true(any(grepl("100%", pb)))
  expect_identical(shown, quiet)
})

test_that("bootmm() rejects bootMer() options it cannot honour, naming them", {
  skip_if_not_installed("lme4")
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  expect_error(bootmm(fit, fixef, nsim = 2, cl = structure(list(), class = "cluster")),
               "cluster 'cl' cannot be used")
  expect_error(bootmm(fit, fixef, nsim = 2, type = "semiparametric"), "use.u = TRUE")
  expect_error(bootmm(fit, fixef, nsim = 2, type = "semiparametric", use.u = TRUE,
                      re.form = NULL), "semiparametric")
  expect_error(bootmm(fit, fixef, nsim = 2, type = "wild"), "type")
  expect_error(bootmm(fit, fixef, nsim = 2, parallel = "mpi"), "parallel")
  # the Tcl/Tk bar where R has Tcl/Tk and a display, else an error saying so
  tk <- tryCatch(suppressWarnings(bootmm(fit, fixef, nsim = 2, .progress = "tk")),
                 error = function(e) e)
  if (inherits(tk, "error")) {
    expect_match(conditionMessage(tk), "the \"tk\" progress bar (needs|could not be opened)")
  } else {
    expect_identical(dim(tk$t), c(2L, 2L))
  }
  expect_error(bootmm(fit, fixef, nsim = 2, .progress = "bar"), ".progress")
  expect_error(bootmm(fit, fixef, nsim = 2, parallel = "multicore", ncpus = 0), "threads")
  gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), lme4::cbpp,
               family = binomial)
  # As lme4: a warning, and here (binomial) refits that fail on responses
  # outside [0, 1], each recorded as a failed replicate with a warning.
  expect_warning(
    expect_warning(bootmm(gfit, fixef, nsim = 2, seed = 1, use.u = TRUE,
                          type = "semiparametric"), "some bootstrap runs failed"),
    "questionable for GLMMs")
})

test_that("bootMer() is bootmm() under lme4's name, and lme4's for lme4 fits", {
  skip_if_not_installed("lme4")
  ds <- lme4::Dyestuff
  # lme4's tests/testthat/test-bootMer.R: bootMer(fit, fixef, nsim = 3).
  fit <- lmm(Yield ~ 1 + (1 | Batch), ds)
  a <- bootMer(fit, fixef, nsim = 5, seed = 3)
  b <- bootmm(fit, fixef, nsim = 5, seed = 3)
  expect_s3_class(a, "boot")
  expect_identical(a$t, b$t)
  expect_identical(a$seed, b$seed)
  # Given an lme4 fit, it is lme4's bootMer() (the same replicates).
  fm <- lme4::lmer(Yield ~ 1 + (1 | Batch), ds)
  ours <- bootMer(fm, lme4::fixef, nsim = 4, seed = 5)
  ref <- lme4::bootMer(fm, lme4::fixef, nsim = 4, seed = 5)
  expect_identical(ours$t, ref$t)
  expect_error(bootMer(fm, lme4::fixef, nsim = 2, threads = 2), "'threads'")
  expect_error(bootMer(lm(Yield ~ 1, ds), coef), "must be a model fitted by lmm")
})

test_that("bootMer() of a GLMM counts its singular refits as lme4's does, and print() says so", {
  skip_if_not_installed("lme4")
  cbpp <- lme4::cbpp
  cbpp$obs <- factor(seq_len(nrow(cbpp)))
  f <- cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | obs)
  fit <- glmm(f, cbpp, family = binomial)
  ref <- suppressMessages(lme4::glmer(f, cbpp, family = binomial))
  ours <- bootMer(fit, fixef, nsim = 5, seed = 101)
  theirs <- suppressMessages(lme4::bootMer(ref, lme4::fixef, nsim = 5, seed = 101))
  # the same draws, hence the same singular refits
  expect_identical(attr(ours, "boot.all.msgs")$`factory-message`,
                   attr(theirs, "boot.all.msgs")$`factory-message`)
  expect_message(print(ours), "2 message\\(s\\): boundary \\(singular\\) fit")
})
