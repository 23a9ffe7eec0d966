# Extractor methods of lmm() fits against lme4's methods on the same model.
#
# Tolerances: fixed effects and standard errors 1e-4 (relative), variance
# components and conditional modes 1e-3 (relative), fitted values and
# residuals 1e-4 (relative), log-likelihoods 1e-3 (absolute).

# Fits the quoted lmm() call and the same call with lme4::lmer() run to full
# precision (helper-reference.R), both evaluated in `env`, with messages
# (e.g. singular fit) silenced.
fit_pair <- function(call, env = parent.frame()) {
  ref_call <- call
  ref_call <- as_lmer_full_call(ref_call)
  list(fit = suppressMessages(eval(call, env)),
       ref = suppressMessages(eval(ref_call, env)))
}

expect_close_abs <- function(object, expected, tol) {
  expect_true(isTRUE(abs(object - expected) < tol),
              label = sprintf("|%.8g - %.8g| < %g", object, expected, tol))
}

# The extractors that every model is checked with. `se_tol` is the relative
# tolerance on vcov() and standard errors: they depend on the optimum of theta,
# which is only determined to about 1e-4 on flat criteria.
expect_methods_parity <- function(fit, ref, se_tol = 1e-4) {
  # never a worse optimum than lme4's
  expect_lte(lmm_devcrit(fit, REML = fit$REML),
             (if (fit$REML) lme4::REMLcrit(ref) else deviance(ref)) + 1e-6)
  # fixed effects, their covariance and the summary table
  expect_equal(fixef(fit), lme4::fixef(ref), tolerance = 1e-4)
  expect_equal(vcov(fit), as.matrix(vcov(ref)), tolerance = se_tol)
  expect_equal(coef(summary(fit, ddf = "lme4")), coef(summary(ref)), tolerance = se_tol)
  # the default table adds lmerTest's Satterthwaite df and p-values
  if (requireNamespace("lmerTest", quietly = TRUE)) {
    expect_equal(coef(summary(fit)), coef(summary(lmerTest::as_lmerModLmerTest(ref))),
                 tolerance = max(se_tol, 1e-3))
  }
  # variance components
  expect_equal(sigma(fit), sigma(ref), tolerance = 1e-3)
  expect_equal(unclass(VarCorr(fit)), unclass(lme4::VarCorr(ref)), tolerance = 1e-3)
  expect_equal(as.data.frame(VarCorr(fit)), as.data.frame(lme4::VarCorr(ref)),
               tolerance = 1e-3)
  expect_equal(as.data.frame(VarCorr(fit), order = "lower.tri"),
               as.data.frame(lme4::VarCorr(ref), order = "lower.tri"), tolerance = 1e-3)
  # conditional modes and per-level coefficients
  re_fit <- ranef(fit, condVar = FALSE)
  re_ref <- lme4::ranef(ref, condVar = FALSE)
  expect_s3_class(re_fit, "ranef.lmm")
  expect_equal(unclass(re_fit), unclass(re_ref), tolerance = 1e-3)
  df_fit <- as.data.frame(re_fit)
  df_ref <- as.data.frame(re_ref)
  expect_named(df_fit, c("grpvar", "term", "grp", "condval"))
  expect_identical(df_fit$grpvar, df_ref$grpvar)
  expect_identical(df_fit$term, df_ref$term)
  expect_identical(as.character(df_fit$grp), as.character(df_ref$grp))
  expect_equal(df_fit$condval, df_ref$condval, tolerance = 1e-3)
  cf <- coef(fit)
  expect_s3_class(cf, "coef.lmm")
  expect_equal(unclass(cf), unclass(coef(ref)), tolerance = 1e-3)
  # likelihood
  ll <- logLik(fit)
  ll_ref <- logLik(ref)
  expect_s3_class(ll, "logLik")
  expect_close_abs(as.numeric(ll), as.numeric(ll_ref), 1e-3)
  expect_identical(as.integer(attr(ll, "df")), as.integer(attr(ll_ref, "df")))
  expect_identical(as.integer(attr(ll, "nobs")), as.integer(attr(ll_ref, "nobs")))
  expect_close_abs(as.numeric(logLik(fit, REML = TRUE)),
                   as.numeric(logLik(ref, REML = TRUE)), 1e-3)
  expect_close_abs(as.numeric(logLik(fit, REML = FALSE)),
                   as.numeric(logLik(ref, REML = FALSE)), 1e-3)
  expect_close_abs(AIC(fit), AIC(ref), 2e-3)
  expect_close_abs(BIC(fit), BIC(ref), 2e-3)
  expect_close_abs(REMLcrit(fit), lme4::REMLcrit(ref), 2e-3)
  expect_close_abs(deviance(fit, REML = FALSE), deviance(ref, REML = FALSE), 2e-3)
  expect_identical(nobs(fit), nobs(ref))
  expect_equal(df.residual(fit), df.residual(ref))
  expect_equal(ngrps(fit), lme4::ngrps(ref))
  expect_type(ngrps(fit), "integer")
  # fitted values and residuals
  expect_equal(fitted(fit), fitted(ref), tolerance = 1e-4)
  for (type in c("working", "response", "deviance", "pearson")) {
    for (scaled in c(FALSE, TRUE)) {
      expect_equal(residuals(fit, type = type, scaled = scaled),
                   residuals(ref, type = type, scaled = scaled), tolerance = 1e-4,
                   label = sprintf("residuals(fit, type = \"%s\", scaled = %s)", type, scaled))
    }
  }
  expect_equal(residuals(fit), residuals(ref), tolerance = 1e-4)
  expect_equal(resid(fit), resid(ref), tolerance = 1e-4)
  expect_error(residuals(fit, type = "partial"), "not implemented")
  # model structure
  expect_identical(deparse1(formula(fit)), deparse1(formula(ref)))
  expect_identical(deparse1(formula(fit, fixed.only = TRUE)),
                   deparse1(formula(ref, fixed.only = TRUE)))
  expect_identical(deparse1(formula(fit, random.only = TRUE)),
                   deparse1(formula(ref, random.only = TRUE)))
  X <- model.matrix(fit)
  X_ref <- model.matrix(ref)
  expect_identical(dimnames(X), dimnames(X_ref))
  expect_equal(as.vector(X), as.vector(X_ref))
  expect_equal(attr(X, "assign"), attr(X_ref, "assign"))
  Z <- model.matrix(fit, type = "random")
  expect_s4_class(Z, "sparseMatrix")
  Z_ref <- as.matrix(lme4::getME(ref, "Z"))
  expect_identical(colnames(Z), colnames(Z_ref))
  expect_equal(unname(as.matrix(Z)), unname(Z_ref))
  expect_equal(as.list(model.frame(fit)), as.list(model.frame(ref)))
  expect_identical(names(model.frame(fit, fixed.only = TRUE)),
                   names(model.frame(ref, fixed.only = TRUE)))
  expect_identical(isSingular(fit), lme4::isSingular(ref))
  expect_identical(isSingular(fit, tol = 1e-10), lme4::isSingular(ref, tol = 1e-10))
  expect_equal(weights(fit), weights(ref))
}

test_that("methods agree with lme4 for a REML fit (sleepstudy)", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  pair <- fit_pair(quote(lmm(Reaction ~ Days + (Days | Subject), sleepstudy)))
  expect_methods_parity(pair$fit, pair$ref)
  # deviance() of a REML fit: deprecated, returns the REML criterion (lme4)
  expect_warning(d_fit <- deviance(pair$fit), "deprecated for REML fits")
  d_ref <- suppressWarnings(deviance(pair$ref))
  expect_close_abs(d_fit, d_ref, 2e-3)
  expect_close_abs(d_fit, REMLcrit(pair$fit), 1e-8)
  # lme4 ignores REML = TRUE here and gives the ML deviance
  expect_close_abs(deviance(pair$fit, REML = TRUE), deviance(pair$ref, REML = TRUE), 2e-3)
  expect_identical(attr(logLik(pair$fit), "df"), 6L)
  expect_false(isSingular(pair$fit))
  # relative covariance matrices and the correlation attached to vcov()
  expect_equal(unclass(VarCorr(pair$fit, sigma = 1)),
               unclass(lme4::VarCorr(pair$ref, sigma = 1)), tolerance = 1e-3)
  expect_equal(attr(vcov(pair$fit, correlation = TRUE), "correlation"),
               stats::cov2cor(as.matrix(vcov(pair$ref))), tolerance = 1e-4)
})

test_that("fixef() can add back the columns dropped from a rank-deficient X", {
  skip_if_not_installed("lme4")
  ss <- lme4::sleepstudy
  ss$Days2 <- 2 * ss$Days
  pair <- fit_pair(quote(lmm(Reaction ~ Days + Days2 + (1 | Subject), ss)))
  expect_equal(fixef(pair$fit), lme4::fixef(pair$ref), tolerance = 1e-4)
  expect_equal(fixef(pair$fit, add.dropped = TRUE),
               lme4::fixef(pair$ref, add.dropped = TRUE), tolerance = 1e-4)
})

test_that("methods agree with lme4 for an ML fit", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  pair <- fit_pair(quote(lmm(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE)))
  expect_methods_parity(pair$fit, pair$ref)
  expect_silent(d_fit <- deviance(pair$fit))
  expect_close_abs(d_fit, deviance(pair$ref), 2e-3)
  expect_close_abs(d_fit, -2 * as.numeric(logLik(pair$fit)), 1e-8)
})

test_that("methods agree with lme4 for uncorrelated terms (||)", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  pair <- fit_pair(quote(lmm(Reaction ~ Days + (Days || Subject), sleepstudy)))
  expect_methods_parity(pair$fit, pair$ref)
  expect_named(VarCorr(pair$fit), c("Subject", "Subject.1"))
  # the two terms on Subject are combined into one data frame
  expect_named(ranef(pair$fit), "Subject")
  expect_named(ranef(pair$fit)$Subject, c("(Intercept)", "Days"))
})

test_that("methods agree with lme4 for crossed and nested random effects", {
  skip_if_not_installed("lme4")
  Penicillin <- lme4::Penicillin
  Pastes <- lme4::Pastes
  pen <- fit_pair(quote(lmm(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin)))
  expect_methods_parity(pen$fit, pen$ref)
  pas <- fit_pair(quote(lmm(strength ~ 1 + (1 | batch/cask), Pastes)))
  expect_methods_parity(pas$fit, pas$ref)
  expect_named(ngrps(pas$fit), c("cask:batch", "batch"))
})

test_that("methods agree with lme4 with prior weights and an offset", {
  skip_if_not_installed("lme4")
  ss <- lme4::sleepstudy
  ss$w <- 1 + as.integer(ss$Subject) %% 3
  ss$off <- ss$Days / 10
  reml <- fit_pair(quote(lmm(Reaction ~ Days + (Days | Subject), ss, weights = w, offset = off)))
  expect_methods_parity(reml$fit, reml$ref)
  ml <- fit_pair(quote(lmm(Reaction ~ Days + (1 | Subject), ss, weights = w, offset = off,
                           REML = FALSE)))
  expect_methods_parity(ml$fit, ml$ref)
  # pearson residuals carry the square root of the weights
  expect_equal(residuals(ml$fit, type = "pearson"),
               sqrt(ss$w) * residuals(ml$fit, type = "response"))
})

test_that("methods agree with lme4 for a factor slope (0 + f | g)", {
  skip_if_not_installed("lme4")
  mach <- data.frame(score = nlme::Machines$score,
                     Machine = factor(as.character(nlme::Machines$Machine)),
                     Worker = factor(as.character(nlme::Machines$Worker)))
  pair <- fit_pair(quote(lmm(score ~ Machine + (0 + Machine | Worker), mach)))
  # six covariance parameters on a flat REML criterion: lme4 stops about 2e-7
  # above our optimum, which moves the standard errors by ~3e-4
  expect_methods_parity(pair$fit, pair$ref, se_tol = 1e-3)
})

test_that("methods agree with lme4 for a singular fit", {
  skip_if_not_installed("lme4")
  Dyestuff2 <- lme4::Dyestuff2
  pair <- fit_pair(quote(lmm(Yield ~ 1 + (1 | Batch), Dyestuff2)))
  expect_true(isSingular(pair$fit))
  expect_true(lme4::isSingular(pair$ref))
  expect_equal(fixef(pair$fit), lme4::fixef(pair$ref), tolerance = 1e-4)
  expect_equal(sigma(pair$fit), sigma(pair$ref), tolerance = 1e-3)
  expect_close_abs(as.numeric(logLik(pair$fit)), as.numeric(logLik(pair$ref)), 1e-3)
  expect_equal(fitted(pair$fit), fitted(pair$ref), tolerance = 1e-4)
})

test_that("residuals and fitted values are padded for na.exclude", {
  skip_if_not_installed("lme4")
  ss <- lme4::sleepstudy
  ss$Reaction[c(3, 50, 121)] <- NA
  pair <- fit_pair(quote(lmm(Reaction ~ Days + (Days | Subject), ss, na.action = na.exclude)))
  expect_identical(nobs(pair$fit), 177L)
  expect_length(fitted(pair$fit), 180L)
  expect_true(all(is.na(residuals(pair$fit)[c(3, 50, 121)])))
  expect_equal(fitted(pair$fit), fitted(pair$ref), tolerance = 1e-4)
  for (type in c("response", "pearson")) {
    expect_equal(residuals(pair$fit, type = type, scaled = TRUE),
                 residuals(pair$ref, type = type, scaled = TRUE), tolerance = 1e-4)
  }
})

test_that("ranef() options", {
  skip_if_not_installed("lme4")
  Penicillin <- lme4::Penicillin
  pair <- fit_pair(quote(lmm(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin)))
  expect_false(is.null(attr(ranef(pair$fit, condVar = TRUE)$plate, "postVar")))
  expect_error(ranef(pair$fit, condVar = NA), "'condVar' must be TRUE or FALSE")
  expect_error(ranef(pair$fit, drop = "yes"), "'drop' must be TRUE or FALSE")
  expect_equal(unclass(ranef(pair$fit, drop = TRUE)),
               unclass(lme4::ranef(pair$ref, drop = TRUE)), tolerance = 1e-3)
  expect_equal(unclass(ranef(pair$fit, condVar = FALSE, whichel = "sample")),
               unclass(lme4::ranef(pair$ref, condVar = FALSE, whichel = "sample")),
               tolerance = 1e-3)
})

test_that("update() refits through the stored call", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), sleepstudy)
  expect_identical(getCall(fit)$data, quote(sleepstudy))

  fit_nodays <- update(fit, . ~ . - Days)
  ref_nodays <- update(ref, . ~ . - Days)
  expect_s3_class(fit_nodays, "lmm")
  expect_named(fixef(fit_nodays), "(Intercept)")
  expect_equal(fixef(fit_nodays), lme4::fixef(ref_nodays), tolerance = 1e-4)
  expect_equal(as.data.frame(VarCorr(fit_nodays)), as.data.frame(lme4::VarCorr(ref_nodays)),
               tolerance = 1e-3)

  fit_ml <- update(fit, REML = FALSE)
  ref_ml <- update(ref, REML = FALSE)
  expect_s3_class(fit_ml, "lmm")
  expect_false(fit_ml$REML)
  expect_close_abs(as.numeric(logLik(fit_ml)), as.numeric(logLik(ref_ml)), 1e-3)
  expect_equal(sigma(fit_ml), sigma(ref_ml), tolerance = 1e-3)
})

test_that("a fit survives saveRDS()/readRDS()", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  path <- tempfile(fileext = ".rds")
  on.exit(unlink(path), add = TRUE)
  saveRDS(fit, path)
  back <- readRDS(path)
  expect_identical(fixef(back), fixef(fit))
  expect_identical(vcov(back), vcov(fit))
  expect_identical(ranef(back), ranef(fit))
  expect_identical(coef(back), coef(fit))
  expect_identical(VarCorr(back), VarCorr(fit))
  expect_identical(as.data.frame(VarCorr(back)), as.data.frame(VarCorr(fit)))
  expect_identical(sigma(back), sigma(fit))
  expect_identical(logLik(back), logLik(fit))
  expect_identical(REMLcrit(back), REMLcrit(fit))
  expect_identical(fitted(back), fitted(fit))
  expect_identical(residuals(back, type = "pearson", scaled = TRUE),
                   residuals(fit, type = "pearson", scaled = TRUE))
  expect_identical(ngrps(back), ngrps(fit))
  expect_identical(isSingular(back), isSingular(fit))
  expect_identical(capture.output(print(back)), capture.output(print(fit)))
  expect_identical(capture.output(print(summary(back))), capture.output(print(summary(fit))))
})

test_that("summary() returns the pieces lme4's summary has", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  pair <- fit_pair(quote(lmm(Reaction ~ Days + (Days | Subject), sleepstudy)))
  s <- summary(pair$fit)
  s_ref <- summary(pair$ref)
  expect_s3_class(s, "summary.lmm")
  # The coefficient table has lmerTest's Satterthwaite columns; its first
  # three columns are lme4's.
  expect_identical(colnames(coef(s)),
                   c("Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"))
  expect_equal(coef(s)[, c("Estimate", "Std. Error", "t value")], coef(s_ref),
               tolerance = 1e-4)
  expect_equal(coef(summary(pair$fit, ddf = "lme4")), coef(s_ref), tolerance = 1e-4)
  expect_equal(vcov(s), as.matrix(vcov(s_ref)), tolerance = 1e-4)
  expect_equal(s$AICtab, s_ref$AICtab, tolerance = 1e-6)
  expect_equal(s$residuals, s_ref$residuals, tolerance = 1e-4)
  expect_equal(s$ngrps, s_ref$ngrps)
  expect_equal(s$sigma, s_ref$sigma, tolerance = 1e-3)
  expect_error(summary(pair$fit, foo = 1), "summary\\(\\): unused argument foo = 1")
})
