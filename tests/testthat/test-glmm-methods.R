# Extractor methods of glmm() fits against lme4's methods for glmer() fits of
# the same model.
#
# Tolerances (relative unless stated): fixed effects 1e-4; standard errors
# and vcov() 1e-3; variance components, conditional modes and per-level
# coefficients 2e-3; fitted values, predictions, residuals and weights 1e-4;
# log-likelihoods 1e-3 absolute (AIC, BIC, criterion table 2e-3 absolute).

expect_close_abs <- function(object, expected, tol) {
  expect_true(isTRUE(abs(object - expected) < tol),
              label = sprintf("|%.8g - %.8g| < %g", object, expected, tol))
}

# The extractors every model is checked with, against glmer run to full
# precision (helper-glmm.R). `se_tol`: relative tolerance of vcov() and
# standard errors. (For non-canonical links (probit, Gamma with log) glmer's
# PIRLS with its default tolerance leaves the conditional modes accurate to
# only ~1e-5, its finite-difference Hessian a few percent off; at
# tolPwrss = 1e-12 its standard errors agree with ours to ~3e-5.)
expect_methods_parity <- function(fit, ref, se_tol = 1e-3) {
  expect_s3_class(fit, "glmm")
  # family
  expect_identical(family(fit)$family, family(ref)$family)
  expect_identical(family(fit)$link, family(ref)$link)
  # fixed effects, their covariance and the summary table
  expect_equal(fixef(fit), lme4::fixef(ref), tolerance = 1e-4)
  expect_equal(vcov(fit), as.matrix(vcov(ref)), tolerance = se_tol)
  expect_equal(suppressWarnings(vcov(fit, use.hessian = FALSE)),
               as.matrix(suppressWarnings(vcov(ref, use.hessian = FALSE))), tolerance = 1e-3)
  expect_equal(sqrt(diag(vcov(fit))), sqrt(diag(as.matrix(vcov(ref)))), tolerance = se_tol)
  s <- summary(fit)
  s_ref <- summary(ref)
  expect_s3_class(s, "summary.glmm")
  expect_identical(colnames(coef(s)), colnames(coef(s_ref)))
  expect_equal(coef(s)[, 1:3, drop = FALSE], coef(s_ref)[, 1:3, drop = FALSE], tolerance = se_tol)
  expect_equal(vcov(s), as.matrix(vcov(s_ref)), tolerance = se_tol)
  for (nm in names(s_ref$AICtab)) {
    expect_close_abs(s$AICtab[[nm]], s_ref$AICtab[[nm]], 2e-3)
  }
  expect_equal(s$residuals, s_ref$residuals, tolerance = 1e-4)
  expect_identical(s$useScale, s_ref$useScale)
  # variance components
  expect_equal(sigma(fit), sigma(ref), tolerance = 2e-3)
  vc <- VarCorr(fit)
  expect_s3_class(vc, "VarCorr.glmm")
  expect_equal(unclass(vc), unclass(lme4::VarCorr(ref)), tolerance = 2e-3)
  expect_equal(as.data.frame(vc), as.data.frame(lme4::VarCorr(ref)), tolerance = 2e-3)
  expect_equal(as.data.frame(vc, order = "lower.tri"),
               as.data.frame(lme4::VarCorr(ref), order = "lower.tri"), tolerance = 2e-3)
  # conditional modes and per-level coefficients
  re_fit <- ranef(fit, condVar = FALSE)
  re_ref <- lme4::ranef(ref, condVar = FALSE)
  expect_s3_class(re_fit, "ranef.glmm")
  expect_equal(unclass(re_fit), unclass(re_ref), tolerance = 2e-3)
  df_fit <- as.data.frame(re_fit)
  df_ref <- as.data.frame(re_ref)
  expect_identical(df_fit$grpvar, df_ref$grpvar)
  expect_identical(df_fit$term, df_ref$term)
  expect_equal(df_fit$condval, df_ref$condval, tolerance = 2e-3)
  cf <- coef(fit)
  expect_s3_class(cf, "coef.glmm")
  expect_equal(unclass(cf), unclass(coef(ref)), tolerance = 2e-3)
  # likelihood and deviance
  ll <- logLik(fit)
  ll_ref <- logLik(ref)
  expect_s3_class(ll, "logLik")
  expect_close_abs(as.numeric(ll), as.numeric(ll_ref), 1e-3)
  expect_identical(as.integer(attr(ll, "df")), as.integer(attr(ll_ref, "df")))
  expect_identical(as.integer(attr(ll, "nobs")), as.integer(attr(ll_ref, "nobs")))
  expect_close_abs(as.numeric(logLik(fit, REML = FALSE)), as.numeric(ll_ref), 1e-3)
  expect_close_abs(AIC(fit), AIC(ref), 2e-3)
  expect_close_abs(BIC(fit), BIC(ref), 2e-3)
  # deviance(): the sum of squared deviance residuals, as lme4
  expect_equal(deviance(fit), deviance(ref), tolerance = 1e-4)
  expect_equal(deviance(fit), sum(residuals(fit, type = "deviance")^2))
  expect_identical(nobs(fit), nobs(ref))
  expect_equal(df.residual(fit), df.residual(ref))
  expect_equal(ngrps(fit), lme4::ngrps(ref))
  expect_type(ngrps(fit), "integer")
  # fitted values, predictions, residuals, weights
  expect_equal(fitted(fit), fitted(ref), tolerance = 1e-4)
  expect_equal(predict(fit), predict(ref), tolerance = 1e-4)
  expect_equal(predict(fit, type = "link"), predict(ref, type = "link"), tolerance = 1e-4)
  expect_equal(predict(fit, type = "response"), predict(ref, type = "response"),
               tolerance = 1e-4)
  for (type in c("deviance", "pearson", "working", "response")) {
    for (scaled in c(FALSE, TRUE)) {
      expect_equal(residuals(fit, type = type, scaled = scaled),
                   residuals(ref, type = type, scaled = scaled), tolerance = 1e-4,
                   label = sprintf("residuals(fit, type = \"%s\", scaled = %s)", type, scaled))
    }
  }
  expect_equal(residuals(fit), residuals(ref), tolerance = 1e-4)
  expect_equal(resid(fit), resid(ref), tolerance = 1e-4)
  expect_error(residuals(fit, type = "partial"), "not implemented")
  expect_equal(weights(fit), weights(ref), tolerance = 1e-12)
  expect_equal(weights(fit, type = "working"), as.vector(weights(ref, type = "working")),
               tolerance = 1e-4)
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
  Z <- model.matrix(fit, type = "random")
  Z_ref <- as.matrix(lme4::getME(ref, "Z"))
  expect_identical(colnames(Z), colnames(Z_ref))
  expect_equal(unname(as.matrix(Z)), unname(Z_ref))
  # the frames' terms may carry different lme4 bookkeeping attributes
  frame_columns <- function(fr) {
    cols <- as.list(fr)
    attr(cols, "terms") <- NULL
    cols
  }
  expect_equal(frame_columns(model.frame(fit)), frame_columns(model.frame(ref)))
  expect_identical(names(model.frame(fit, fixed.only = TRUE)),
                   names(model.frame(ref, fixed.only = TRUE)))
  expect_identical(isSingular(fit), lme4::isSingular(ref))
  expect_identical(isSingular(fit, tol = 1e-10), lme4::isSingular(ref, tol = 1e-10))
}

# --- models -----------------------------------------------------------------

test_that("methods agree with lme4 for a binomial cbind() fit (cbpp)", {
  skip_if_no_glmm()
  cbpp <- lme4::cbpp
  pair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                              family = binomial, data = cbpp)))
  expect_methods_parity(pair$fit, pair$ref)
  fit <- pair$fit
  # no scale parameter: sigma 1, df = p + nth, z values
  expect_identical(sigma(fit), 1)
  expect_identical(attr(logLik(fit), "df"), 5L)
  expect_false(attr(VarCorr(fit), "useSc"))
  expect_identical(colnames(coef(summary(fit)))[3:4], c("z value", "Pr(>|z|)"))
  # the response is the proportion, the prior weights the numbers of trials
  expect_equal(weights(fit), cbpp$size)
  expect_equal(residuals(fit, type = "response"),
               stats::setNames(cbpp$incidence / cbpp$size, rownames(cbpp)) - fitted(fit))
  # fitted values are the inverse link of the linear predictor
  expect_equal(fitted(fit), stats::plogis(predict(fit)))
  # the criterion table's deviance is -2 logLik, deviance() is not
  expect_equal(summary(fit)$AICtab[["deviance"]], -2 * as.numeric(logLik(fit)))
  expect_false(isTRUE(all.equal(deviance(fit), -2 * as.numeric(logLik(fit)))))
  # relative covariance matrices and the correlation attached to vcov()
  expect_equal(unclass(VarCorr(fit, sigma = 1)),
               unclass(lme4::VarCorr(pair$ref, sigma = 1)), tolerance = 2e-3)
  expect_equal(attr(vcov(fit, correlation = TRUE), "correlation"),
               stats::cov2cor(as.matrix(vcov(pair$ref))), tolerance = 1e-3)
  # Hessian- and R_X-based covariance, as lme4
  expect_warning(vcov(fit, use.hessian = FALSE), "differ by")
  expect_equal(vcov(fit, use.hessian = TRUE), vcov(fit))
  expect_warning(s_rx <- summary(fit, use.hessian = FALSE), "differ by")
  expect_equal(coef(s_rx)[, 2], sqrt(diag(suppressWarnings(vcov(fit, use.hessian = FALSE)))))
  # the correlation shown is still the default (Hessian-based) one, as lme4
  expect_equal(vcov(s_rx), vcov(fit))
  expect_error(logLik(fit, REML = TRUE), "REML")
  expect_false(is.null(attr(ranef(fit, condVar = TRUE)$herd, "postVar")))
  expect_error(summary(fit, foo = 1), "summary\\(\\): unused argument foo = 1")
})

test_that("methods agree with lme4 for a proportion response with weights", {
  skip_if_no_glmm()
  cbpp <- lme4::cbpp
  pair <- fit_glmm_pair(quote(glmm(incidence / size ~ period + (1 | herd), weights = size,
                              family = binomial, data = cbpp)))
  expect_methods_parity(pair$fit, pair$ref)
})

test_that("methods agree with lme4 for a binary response (logit and probit)", {
  skip_if_no_glmm()
  va <- lme4::VerbAgg
  va <- va[va$item %in% levels(va$item)[1:6], ]
  logit <- fit_glmm_pair(quote(glmm(r2 ~ Anger + Gender + btype + (1 | id),
                               family = binomial, data = va)))
  expect_methods_parity(logit$fit, logit$ref)
  probit <- fit_glmm_pair(quote(glmm(r2 ~ Anger + Gender + btype + (1 | id),
                                family = binomial(link = "probit"), data = va)))
  expect_methods_parity(probit$fit, probit$ref)
  expect_equal(fitted(probit$fit), stats::pnorm(predict(probit$fit)))
  # 0/1 responses from the factor r2 ("N" is the failure level)
  expect_equal(unname(residuals(logit$fit, type = "response") + fitted(logit$fit)),
               as.numeric(va$r2 == "Y"))
})

test_that("methods agree with lme4 for a Poisson fit with an offset", {
  skip_if_no_glmm()
  cbpp <- lme4::cbpp
  pair <- fit_glmm_pair(quote(glmm(incidence ~ period + (1 | herd), family = poisson,
                              offset = log(size), data = cbpp)))
  expect_methods_parity(pair$fit, pair$ref)
  fit <- pair$fit
  # the linear predictor includes the offset
  eta_no_offset <- as.vector(model.matrix(fit) %*% fixef(fit)) +
    as.vector(model.matrix(fit, type = "random") %*% ranef(fit)$herd[["(Intercept)"]])
  expect_equal(unname(predict(fit)), eta_no_offset + log(cbpp$size), tolerance = 1e-8)
  expect_equal(fitted(fit), exp(predict(fit)))
  expect_identical(sigma(fit), 1)
  # offset() in the formula
  off <- fit_glmm_pair(quote(glmm(incidence ~ period + offset(log(size)) + (1 | herd),
                             family = poisson, data = cbpp)))
  expect_methods_parity(off$fit, off$ref)
})

test_that("methods agree with lme4 for a Gamma fit with a log link", {
  skip_if_no_glmm()
  d <- gamma_data()
  pair <- fit_glmm_pair(quote(glmm(y ~ x + (1 | g), family = Gamma(link = "log"), data = d)))
  expect_methods_parity(pair$fit, pair$ref, se_tol = 5e-3)
  fit <- pair$fit
  # a scale parameter: sigma(), the residual row, df = p + nth + 1, t values
  expect_gt(abs(sigma(fit) - 1), 0.1)
  expect_true(attr(VarCorr(fit), "useSc"))
  expect_identical(as.data.frame(VarCorr(fit))$grp, c("g", "Residual"))
  expect_identical(attr(logLik(fit), "df"), 4L)
  expect_identical(colnames(coef(summary(fit)))[3:4], c("t value", "Pr(>|z|)"))
  expect_equal(residuals(fit, type = "pearson", scaled = TRUE),
               residuals(fit, type = "pearson") / sigma(fit))
})

test_that("methods agree with lme4 for nAGQ = 0 and nAGQ = 5", {
  skip_if_no_glmm()
  cbpp <- lme4::cbpp
  agq0 <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                              family = binomial, data = cbpp, nAGQ = 0)))
  expect_methods_parity(agq0$fit, agq0$ref)
  # no Hessian for nAGQ = 0: vcov() is R_X-based, use.hessian = TRUE fails
  expect_silent(v0 <- vcov(agq0$fit, use.hessian = FALSE))
  expect_equal(vcov(agq0$fit), v0)
  expect_error(vcov(agq0$fit, use.hessian = TRUE), "Hessian is unavailable")
  agq5 <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                              family = binomial, data = cbpp, nAGQ = 5)))
  expect_methods_parity(agq5$fit, agq5$ref)
})

test_that("methods agree with lme4 for correlated random slopes", {
  skip_if_no_glmm()
  d <- slope_data()
  pair <- fit_glmm_pair(quote(glmm(y ~ x + (x | g), family = binomial, data = d)))
  expect_methods_parity(pair$fit, pair$ref)
  unc <- fit_glmm_pair(quote(glmm(y ~ x + (x || g), family = binomial, data = d)))
  expect_methods_parity(unc$fit, unc$ref)
  expect_named(VarCorr(unc$fit), c("g", "g.1"))
  expect_named(ranef(unc$fit)$g, c("(Intercept)", "x"))
})

test_that("fitted values, predictions and residuals are padded for na.exclude", {
  skip_if_no_glmm()
  cbpp <- lme4::cbpp
  cbpp$incidence[c(3, 20, 41)] <- NA
  pair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                              family = binomial, data = cbpp, na.action = na.exclude)))
  fit <- pair$fit
  expect_identical(nobs(fit), 53L)
  expect_length(fitted(fit), 56L)
  expect_true(all(is.na(fitted(fit)[c(3, 20, 41)])))
  expect_equal(fitted(fit), fitted(pair$ref), tolerance = 1e-4)
  expect_equal(predict(fit), predict(pair$ref), tolerance = 1e-4)
  expect_equal(predict(fit, type = "response"), predict(pair$ref, type = "response"),
               tolerance = 1e-4)
  for (type in c("deviance", "pearson", "working", "response")) {
    expect_equal(residuals(fit, type = type), residuals(pair$ref, type = type),
                 tolerance = 1e-4)
  }
  # lme4's deviance() sums the padded residuals (NA); ours uses the fitted rows
  expect_equal(deviance(fit), sum(residuals(fit)^2, na.rm = TRUE))
  expect_false(is.na(deviance(fit)))
})

test_that("predict() rejects an unknown type and warns about unused arguments", {
  skip_if_no_glmm()
  cbpp <- lme4::cbpp
  fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
              family = binomial, data = cbpp)
  expect_error(predict(fit, type = "terms"), "'type' should be one of")
  expect_error(predict(fit, foo = 1), "predict\\(\\): unused argument foo = 1")
})

test_that("update() refits through the stored call", {
  skip_if_no_glmm()
  cbpp <- lme4::cbpp
  fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
              family = binomial, data = cbpp)
  ref <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                     family = binomial, data = cbpp, control = glmer_reference_control())
  expect_identical(getCall(fit)$data, quote(cbpp))
  expect_identical(getCall(fit)$family, quote(binomial))

  fit_int <- update(fit, . ~ . - period)
  ref_int <- update(ref, . ~ . - period)
  expect_s3_class(fit_int, "glmm")
  expect_named(fixef(fit_int), "(Intercept)")
  expect_equal(fixef(fit_int), lme4::fixef(ref_int), tolerance = 1e-4)

  fit_agq <- update(fit, nAGQ = 9)
  ref_agq <- update(ref, nAGQ = 9)
  expect_s3_class(fit_agq, "glmm")
  expect_close_abs(as.numeric(logLik(fit_agq)), as.numeric(logLik(ref_agq)), 1e-3)
  expect_equal(fixef(fit_agq), lme4::fixef(ref_agq), tolerance = 1e-4)
})

test_that("a fit survives saveRDS()/readRDS()", {
  skip_if_no_glmm()
  d <- gamma_data()
  fit <- glmm(y ~ x + (1 | g), family = Gamma(link = "log"), data = d)
  path <- tempfile(fileext = ".rds")
  on.exit(unlink(path), add = TRUE)
  saveRDS(fit, path)
  back <- readRDS(path)
  expect_identical(fixef(back), fixef(fit))
  expect_identical(vcov(back), vcov(fit))
  expect_identical(ranef(back), ranef(fit))
  expect_identical(coef(back), coef(fit))
  expect_identical(VarCorr(back), VarCorr(fit))
  expect_identical(sigma(back), sigma(fit))
  expect_identical(logLik(back), logLik(fit))
  expect_identical(deviance(back), deviance(fit))
  expect_identical(fitted(back), fitted(fit))
  expect_identical(predict(back), predict(fit))
  expect_identical(residuals(back, type = "pearson", scaled = TRUE),
                   residuals(fit, type = "pearson", scaled = TRUE))
  expect_identical(family(back)$family, family(fit)$family)
  expect_equal(family(back)$linkinv(0.3), family(fit)$linkinv(0.3))
})

test_that("lmm fits keep their own classes and methods", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  expect_identical(class(VarCorr(fit)), "VarCorr.lmm")
  # (lme4's class last, for code that tests inherits(x, "ranef.mer"))
  expect_identical(class(ranef(fit)), c("ranef.lmm", "ranef.mer"))
  expect_identical(class(coef(fit)), c("coef.lmm", "coef.mer"))
  expect_identical(attr(logLik(fit), "df"), 6L)
  expect_identical(df.residual(fit), 174L)
})
