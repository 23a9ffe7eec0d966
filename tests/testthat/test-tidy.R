# tidy(), glance() and augment() of lmm() and glmm() fits against
# broom.mixed's methods applied to the lme4/lmerTest fit of the same model.
#
# Tolerances (testthat's mean relative difference): 1e-5 against an
# independent lmerTest fit of a linear mixed model run to full precision
# (helper-reference.R; the two optima agree to ~1e-6 in theta), 1e-6 against the lme4 object that
# as_lmerMod() builds at our estimates (so the comparison tests the tidiers
# and not the optimizers; Cook's distances, which divide by (1 - h)^2, 1e-5
# for GLMMs), and 2e-3 against an independent glmer() fit run to the
# optimum (glmer_tight(): bobyqa in both stages, tight PIRLS tolerance).

lmer_test_ref <- function(formula, data, REML = TRUE) {
  lmerTest_full(formula, data = data, REML = REML)
}

# Satterthwaite and Kenward-Roger df (and so p-values) move ~3x more than
# the estimates with theta, and lmerTest takes the Hessian of the deviance
# by finite differences (~1e-6 relative): their tolerances are 10x larger.
check_lmm_tidiers <- function(fit, ref, tol = 1e-5) {
  tidy <- generics::tidy
  ddf_tol <- c(df = 10 * tol, p.value = 10 * tol)
  expect_tidy_equal(tidy(fit), broom.mixed::tidy(ref), tol, col_tol = ddf_tol)
  expect_tidy_equal(tidy(fit, conf.int = TRUE, conf.level = 0.9),
                    broom.mixed::tidy(ref, conf.int = TRUE, conf.level = 0.9), tol,
                    col_tol = ddf_tol)
  expect_tidy_equal(tidy(fit, effects = all_effects),
                    broom.mixed::tidy(ref, effects = all_effects), tol, col_tol = ddf_tol)
  expect_tidy_equal(tidy(fit, effects = c("ran_pars", "fixed"), scales = c("vcov", NA)),
                    broom.mixed::tidy(ref, effects = c("ran_pars", "fixed"),
                                      scales = c("vcov", NA)), tol, col_tol = ddf_tol)
  expect_tidy_equal(tidy(fit, effects = "ran_vals", conf.int = TRUE),
                    broom.mixed::tidy(ref, effects = "ran_vals", conf.int = TRUE), tol)
  expect_tidy_equal(tidy(fit, effects = "fixed"), broom.mixed::tidy(ref, effects = "fixed"),
                    tol, col_tol = ddf_tol)
  expect_tidy_equal(tidy(fit, effects = c("ran_coefs", "ran_pars")),
                    broom.mixed::tidy(ref, effects = c("ran_coefs", "ran_pars")), tol)
  expect_tidy_equal(tidy(fit, ddf.method = "Kenward-Roger"),
                    broom.mixed::tidy(ref, ddf.method = "Kenward-Roger"), tol,
                    col_tol = ddf_tol)
  expect_tidy_equal(generics::glance(fit), broom.mixed::glance(ref), tol)
  expect_tidy_equal(generics::augment(fit), ref_augment(ref), tol)
  # at our own estimates, through lme4's object
  conv <- lmerTest::as_lmerModLmerTest(as_lmerMod(fit))
  expect_tidy_equal(suppressWarnings(tidy(fit, effects = all_effects, conf.int = TRUE)),
                    suppressWarnings(broom.mixed::tidy(conv, effects = all_effects,
                                                       conf.int = TRUE)), 1e-6,
                    col_tol = c(df = 1e-5, p.value = 1e-5))
  expect_tidy_equal(generics::glance(fit), broom.mixed::glance(conv), 1e-6)
  expect_tidy_equal(generics::augment(fit), ref_augment(conv), 1e-6)
}

test_that("lmm tidiers match broom.mixed: sleepstudy, correlated slope", {
  skip_if_no_broom()
  sleepstudy <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  ref <- lmer_test_ref(Reaction ~ Days + (Days | Subject), sleepstudy)
  check_lmm_tidiers(fit, ref)
  td <- generics::tidy(fit)
  expect_identical(td$term, c("(Intercept)", "Days", "sd__(Intercept)",
                              "cor__(Intercept).Days", "sd__Days", "sd__Observation"))
  expect_false("df" %in% names(generics::tidy(fit, ddf.method = "lme4")))
})

test_that("lmm tidiers match broom.mixed: Penicillin, crossed factors", {
  skip_if_no_broom()
  fit <- lmm(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin)
  ref <- lmer_test_ref(diameter ~ 1 + (1 | plate) + (1 | sample), lme4::Penicillin)
  check_lmm_tidiers(fit, ref)
})

test_that("lmm tidiers match broom.mixed: independent terms (||), ML fit", {
  skip_if_no_broom()
  fit <- lmm(Reaction ~ Days + (Days || Subject), lme4::sleepstudy, REML = FALSE)
  ref <- lmer_test_ref(Reaction ~ Days + (Days || Subject), lme4::sleepstudy, REML = FALSE)
  tidy <- generics::tidy
  expect_tidy_equal(tidy(fit, effects = all_effects),
                    broom.mixed::tidy(ref, effects = all_effects), 1e-5,
                    col_tol = c(df = 1e-4, p.value = 1e-4))
  expect_tidy_equal(generics::glance(fit), broom.mixed::glance(ref), 1e-5)
  expect_true("deviance" %in% names(generics::glance(fit)))
  expect_tidy_equal(generics::augment(fit), ref_augment(ref), 1e-5)
  # profile intervals of the variance parameters are confint()'s
  td <- tidy(fit, conf.int = TRUE, conf.method = "profile")
  ci <- confint(fit, quiet = TRUE)
  expect_equal(td$conf.low, unname(ci[c(4, 5, 1, 2, 3), 1]), tolerance = 1e-10)
  expect_equal(td$conf.high, unname(ci[c(4, 5, 1, 2, 3), 2]), tolerance = 1e-10)
})

test_that("bootstrap intervals are confint()'s", {
  skip_if_no_broom()
  fit <- lmm(Reaction ~ Days + (1 | Subject), lme4::sleepstudy)
  td <- generics::tidy(fit, conf.int = TRUE, conf.level = 0.8, conf.method = "boot",
                       nsim = 20, seed = 1, threads = 1)
  ci <- suppressMessages(confint(fit, level = 0.8, method = "boot", nsim = 20, seed = 1,
                                 threads = 1))
  expect_equal(td$conf.low, unname(ci[c(3, 4, 1, 2), 1]), tolerance = 1e-10)
  expect_equal(td$conf.high, unname(ci[c(3, 4, 1, 2), 2]), tolerance = 1e-10)
})

test_that("glmm tidiers match broom.mixed: cbpp binomial", {
  skip_if_no_broom()
  cbpp <- lme4::cbpp
  fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
              family = binomial, data = cbpp)
  conv <- as_lmerMod(fit)
  tidy <- generics::tidy
  for (args in list(list(), list(effects = all_effects),
                    list(conf.int = TRUE, exponentiate = TRUE),
                    list(effects = "ran_vals", conf.int = TRUE),
                    list(effects = "fixed", conf.int = TRUE, conf.level = 0.8))) {
    expect_tidy_equal(suppressWarnings(do.call(tidy, c(list(fit), args))),
                      suppressWarnings(do.call(broom.mixed::tidy, c(list(conv), args))), 1e-6)
  }
  expect_tidy_equal(generics::glance(fit), broom.mixed::glance(conv), 1e-6)
  aug <- generics::augment(fit)
  expect_tidy_equal(aug, ref_augment(conv), 1e-6, col_tol = c(.cooksd = 1e-5))
  expect_true(all(c(".eta", ".hat", ".cooksd") %in% names(aug)))
  # against glmer's own fit
  ref <- glmer_tight(quote(lme4::glmer(cbind(incidence, size - incidence) ~ period +
                                          (1 | herd), family = binomial, data = cbpp)),
                     environment())
  expect_tidy_equal(tidy(fit, effects = all_effects),
                    broom.mixed::tidy(ref, effects = all_effects), 2e-3)
  expect_tidy_equal(generics::glance(fit), broom.mixed::glance(ref), 2e-3)
  # response-scale fitted values and Pearson residuals on request
  aug_r <- generics::augment(fit, type.predict = "response", type.residuals = "pearson")
  expect_equal(aug_r$.fitted, unname(fitted(fit)))
  expect_equal(aug_r$.resid, unname(residuals(fit, type = "pearson")))
})

test_that("glmm tidiers match broom.mixed: Poisson with crossed factors", {
  skip_if_no_broom()
  gt <- lme4::grouseticks
  fit <- glmm(TICKS ~ YEAR + (1 | BROOD) + (1 | LOCATION), family = poisson, data = gt)
  conv <- as_lmerMod(fit)
  expect_tidy_equal(generics::tidy(fit, effects = all_effects),
                    broom.mixed::tidy(conv, effects = all_effects), 1e-6)
  expect_tidy_equal(generics::glance(fit), broom.mixed::glance(conv), 1e-6)
  expect_tidy_equal(generics::augment(fit), ref_augment(conv), 1e-6,
                    col_tol = c(.cooksd = 1e-5))
  ref <- glmer_tight(quote(lme4::glmer(TICKS ~ YEAR + (1 | BROOD) + (1 | LOCATION),
                                       family = poisson, data = gt)), environment())
  expect_tidy_equal(generics::tidy(fit), broom.mixed::tidy(ref), 2e-3)
})

test_that("augment() with newdata predicts for the new rows", {
  skip_if_no_broom()
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  nd <- data.frame(Days = c(0, 4, 9), Subject = c("308", "309", "999"))
  aug <- generics::augment(fit, newdata = nd, allow.new.levels = TRUE)
  expect_identical(names(aug), c("Days", "Subject", ".fitted", ".fixed"))
  expect_equal(aug$.fitted, unname(predict(fit, nd, allow.new.levels = TRUE)))
  expect_equal(aug$.fixed, unname(predict(fit, nd, re.form = NA)))
  expect_equal(aug$.fitted[3], aug$.fixed[3])
  expect_error(generics::augment(fit, newdata = nd), "999")
  expect_error(generics::augment(fit, allow.new.levels = TRUE), "only with 'newdata'")
  expect_error(generics::augment(fit, data = lme4::sleepstudy[1:10, ]), "one row per")
})

test_that("augment() pads for na.exclude fits", {
  skip_if_no_broom()
  d <- lme4::sleepstudy
  d$Reaction[c(3, 50)] <- NA
  fit <- lmm(Reaction ~ Days + (1 | Subject), d, na.action = na.exclude)
  aug <- generics::augment(fit, data = d)
  expect_identical(nrow(aug), nrow(d))
  expect_true(all(is.na(aug$.fitted[c(3, 50)])))
  expect_equal(aug$.hat[-c(3, 50)], unname(hatvalues(fit)[-c(3, 50)]))
  expect_identical(nrow(generics::augment(fit)), nrow(d) - 2L)
})

test_that("tidy() rejects unsupported requests with clear errors", {
  skip_if_no_broom()
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  expect_error(generics::tidy(fit, effects = "random"), "unknown effect")
  expect_error(generics::tidy(fit, scales = "vcov"), "one value")
  expect_error(generics::tidy(fit, effects = c("ran_pars", "fixed"), scales = c("sd", NA)),
               "sdcor")
  expect_error(generics::tidy(fit, effects = "ran_pars", scales = "vcov", conf.int = TRUE),
               "sdcor")
  expect_error(generics::tidy(fit, effects = "ran_vals", conf.int = TRUE,
                              conf.method = "profile"), "Wald")
  expect_error(generics::tidy(fit, nsim = 10), "not used: nsim")
  expect_error(generics::tidy(fit, conf.method = "bogus"), "conf.method")
  expect_error(generics::glance(fit, foo = 1), "glance")
  expect_warning(generics::tidy(fit, effects = "ran_coefs", conf.int = TRUE),
                 "not available")
})

test_that("hatvalues() and cooks.distance() match lme4", {
  skip_if_not_installed("lme4")
  fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
  expect_equal(hatvalues(fit), hatvalues(ref), tolerance = 1e-5)
  expect_equal(cooks.distance(fit), cooks.distance(ref), tolerance = 1e-4)
  H <- hatvalues(fit, fullHatMatrix = TRUE)
  expect_equal(diag(H), hatvalues(fit), tolerance = 1e-10, ignore_attr = TRUE)
  expect_equal(H, as.matrix(hatvalues(ref, fullHatMatrix = TRUE)), tolerance = 1e-5,
               ignore_attr = TRUE)
  w <- lmm(Reaction ~ Days + (1 | Subject), lme4::sleepstudy,
           weights = rep(1:3, 60))
  wr <- lmer_full(Reaction ~ Days + (1 | Subject), lme4::sleepstudy,
                   weights = rep(1:3, 60))
  expect_equal(hatvalues(w), hatvalues(wr), tolerance = 1e-5)
})

test_that("hatvalues() stays within O(n q) memory for many observations", {
  set.seed(3)
  n <- 40000
  d <- data.frame(g = factor(sample.int(2000, n, replace = TRUE)),
                  h = factor(sample.int(50, n, replace = TRUE)), x = rnorm(n))
  d$y <- 1 + d$x + rnorm(2000)[d$g] + rnorm(50)[d$h] + rnorm(n)
  fit <- lmm(y ~ x + (1 | g) + (1 | h), d)
  h <- hatvalues(fit)  # an n x n matrix would need 12.8 GB
  expect_length(h, n)
  expect_true(all(h > 0 & h < 1))
  # the trace of the hat matrix: fixed effects plus effective random effects
  expect_gt(sum(h), 2)
  expect_lt(sum(h), 2 + 2050)
})
