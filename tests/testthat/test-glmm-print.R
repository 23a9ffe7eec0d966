# Printed output of glmm() fits against lme4::glmer()'s, line by line.
#
# Each model is fitted with glmm() and with lme4::glmer() on the same call;
# the printed lines must agree after the class tag (['glmm'] / [glmm] vs
# ['glmerMod'] / [glmerMod]) and the control function's name are aligned.
# Numbers may differ in the last printed digit or by a small relative amount
# (the two fits come from different optimizers); tail probabilities printed
# in e-notation get a looser relative tolerance, since their relative error
# is about z^2 times that of the z value.
#
# The comparator is in helper-print.R; the reference fits (glmer run to its
# optimum) and data sets in helper-glmm.R.

# --- helpers ----------------------------------------------------------------

# Tags that legitimately differ between the two packages: the class, the
# control function and the optimizer's name (glmmControl() runs bobyqa in
# both stages by default, or BFGS with the exact gradient in the second,
# glmerControl() Nelder_Mead in the second); the name itself is checked
# separately. Applied to both outputs.
align_tags <- function(lines) {
  lines <- gsub("['glmm']", "['glmerMod']", lines, fixed = TRUE)
  lines <- gsub("[glmm]", "[glmerMod]", lines, fixed = TRUE)
  lines <- gsub("glmmControl(", "glmerControl(", lines, fixed = TRUE)
  gsub("optimizer \\((bobyqa|Nelder_Mead|BFGS)\\)", "optimizer (<name>)", lines)
}

glmm_print_parity <- function(pair, rel_tol = 2e-3) {
  expect_print_parity(pair, align_tags, rel_tol = rel_tol, rel_tol_exp = 10 * rel_tol)
}

# Non-canonical links need no looser tolerance: with glmer run to full
# precision (tolPwrss = 1e-12) its conditional modes, and so its standard
# errors, are accurate (with its default PIRLS tolerance they were a few
# percent off).

# --- models -----------------------------------------------------------------

test_that("binomial cbind() fit (cbpp) prints as glmer", {
  skip_if_no_glmm()
  cbpp <- lme4::cbpp
  pair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                              family = binomial, data = cbpp)))
  glmm_print_parity(pair)
  out <- printed(pair$fit)$out
  # the title does not fit in 80 columns: wrapped, tag unquoted (as lme4)
  old <- options(width = 80)
  on.exit(options(old), add = TRUE)
  expect_identical(printed(pair$fit)$out[1:2], c(
    "Generalized linear mixed model fit by maximum likelihood (Laplace",
    "  Approximation) [glmm]"))
  expect_true(" Family: binomial  ( logit )" %in% out)
  s_out <- printed(summary(pair$fit))$out
  expect_true(any(grepl("z value Pr(>|z|)", s_out, fixed = TRUE)))
  expect_true(any(startsWith(s_out, "Signif. codes:")))
  expect_false(any(grepl("Residual", s_out, fixed = TRUE)))
  # other print options
  expect_same_print(printed(summary(pair$fit), show.resids = FALSE, ranef.comp = "Std.Dev.")$out,
                    printed(summary(pair$ref), show.resids = FALSE, ranef.comp = "Std.Dev.")$out, align_tags, rel_tol = 2e-3, rel_tol_exp = 2e-2)
  expect_same_print(printed(summary(pair$fit), correlation = FALSE)$out,
                    printed(summary(pair$ref), correlation = FALSE)$out, align_tags, rel_tol = 2e-3, rel_tol_exp = 2e-2)
  expect_same_print(printed(summary(pair$fit), symbolic.cor = TRUE)$out,
                    printed(summary(pair$ref), symbolic.cor = TRUE)$out, align_tags, rel_tol = 2e-3, rel_tol_exp = 2e-2)
  expect_same_print(printed(summary(pair$fit), signif.stars = FALSE)$out,
                    printed(summary(pair$ref), signif.stars = FALSE)$out, align_tags, rel_tol = 2e-3, rel_tol_exp = 2e-2)
  expect_same_print(printed(summary(pair$fit), digits = 6)$out,
                    printed(summary(pair$ref), digits = 6)$out, align_tags, rel_tol = 2e-3, rel_tol_exp = 2e-2)
  expect_same_print(printed(pair$fit, ranef.comp = c("Variance", "Std.Dev."))$out,
                    printed(pair$ref, ranef.comp = c("Variance", "Std.Dev."))$out, align_tags, rel_tol = 2e-3, rel_tol_exp = 2e-2)
  expect_same_print(printed(VarCorr(pair$fit), comp = c("Variance", "Std.Dev."))$out,
                    printed(VarCorr(pair$ref), comp = c("Variance", "Std.Dev."))$out, align_tags, rel_tol = 2e-3, rel_tol_exp = 2e-2)
  expect_same_print(printed(ranef(pair$fit))$out,
                    printed(lme4::ranef(pair$ref))$out, align_tags, rel_tol = 2e-3, rel_tol_exp = 2e-2)
})

test_that("the title fits on one line in a wide console", {
  skip_if_no_glmm()
  cbpp <- lme4::cbpp
  pair <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                              family = binomial, data = cbpp)))
  old <- options(width = 120)
  on.exit(options(old), add = TRUE)
  glmm_print_parity(pair)
  expect_identical(
    printed(pair$fit)$out[1L],
    "Generalized linear mixed model fit by maximum likelihood (Laplace Approximation) ['glmm']")
})

test_that("nAGQ = 0 and nAGQ = 5 fits print their titles as glmer", {
  skip_if_no_glmm()
  cbpp <- lme4::cbpp
  agq0 <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                              family = binomial, data = cbpp, nAGQ = 0)))
  glmm_print_parity(agq0)
  agq5 <- fit_glmm_pair(quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                              family = binomial, data = cbpp, nAGQ = 5)))
  glmm_print_parity(agq5)
  old <- options(width = 120)
  on.exit(options(old), add = TRUE)
  expect_identical(
    printed(agq0$fit)$out[1L],
    paste("Generalized linear mixed model fit by maximum likelihood",
          "(Adaptive Gauss-Hermite Quadrature, nAGQ = 0) ['glmm']"))
  expect_identical(
    printed(summary(agq5$fit))$out[1L],
    paste("Generalized linear mixed model fit by maximum likelihood",
          "(Adaptive Gauss-Hermite Quadrature, nAGQ = 5) ['glmm']"))
})

test_that("proportion response with prior weights prints the Weights line", {
  skip_if_no_glmm()
  cbpp <- lme4::cbpp
  pair <- fit_glmm_pair(quote(glmm(incidence / size ~ period + (1 | herd), weights = size,
                              family = binomial, data = cbpp)))
  glmm_print_parity(pair)
  expect_true("Weights: size" %in% printed(summary(pair$fit))$out)
})

test_that("binary response (VerbAgg subset) prints as glmer, logit and probit", {
  skip_if_no_glmm()
  va <- lme4::VerbAgg
  va <- va[va$item %in% levels(va$item)[1:6], ]
  logit <- fit_glmm_pair(quote(glmm(r2 ~ Anger + Gender + btype + (1 | id),
                               family = binomial, data = va)))
  glmm_print_parity(logit)
  probit <- fit_glmm_pair(quote(glmm(r2 ~ Anger + Gender + btype + (1 | id),
                                family = binomial(link = "probit"), data = va)))
  glmm_print_parity(probit)
  expect_true(" Family: binomial  ( probit )" %in% printed(probit$fit)$out)
  # "< 2e-16" p-values and the wider correlation matrix
  expect_true(any(grepl("<2e-16|< 2e-16", printed(summary(probit$fit))$out)))
})

test_that("Poisson fit with an offset and a subset prints as glmer", {
  skip_if_no_glmm()
  cbpp <- lme4::cbpp
  pair <- fit_glmm_pair(quote(glmm(incidence ~ period + (1 | herd), family = poisson,
                              offset = log(size), data = cbpp, subset = herd != "1")))
  glmm_print_parity(pair)
  out <- printed(summary(pair$fit))$out
  expect_true(" Offset: log(size)" %in% out)
  expect_true(" Subset: herd != \"1\"" %in% out)
  expect_true(" Family: poisson  ( log )" %in% out)
  # offset() in the formula is part of the Formula line instead
  off <- fit_glmm_pair(quote(glmm(incidence ~ period + offset(log(size)) + (1 | herd),
                             family = poisson, data = cbpp)))
  glmm_print_parity(off)
})

test_that("Gamma (log link) fit prints t values and a Residual row as glmer", {
  skip_if_no_glmm()
  d <- gamma_data()
  pair <- fit_glmm_pair(quote(glmm(y ~ x + (1 | g), family = Gamma(link = "log"), data = d)))
  glmm_print_parity(pair)
  out <- printed(summary(pair$fit))$out
  expect_true(" Family: Gamma  ( log )" %in% out)
  expect_true(any(grepl("t value Pr(>|z|)", out, fixed = TRUE)))
  expect_true(any(grepl("^ Residual", out)))
  expect_true(any(grepl("^ Residual", printed(pair$fit)$out)))
})

test_that("gaussian fit with a log link prints as glmer", {
  skip_if_no_glmm()
  set.seed(3)
  d <- data.frame(g = factor(rep(1:12, each = 10)), x = stats::runif(120))
  d$y <- exp(1 + 0.5 * d$x + stats::rnorm(12, sd = 0.3)[d$g]) + stats::rnorm(120, sd = 0.5)
  pair <- fit_glmm_pair(quote(glmm(y ~ x + (1 | g), family = gaussian(link = "log"), data = d)))
  glmm_print_parity(pair)
})

test_that("correlated random slopes print the Corr column as glmer", {
  skip_if_no_glmm()
  d <- slope_data()
  pair <- fit_glmm_pair(quote(glmm(y ~ x + (x | g), family = binomial, data = d)))
  glmm_print_parity(pair)
  expect_true(any(grepl("Corr", printed(pair$fit)$out, fixed = TRUE)))
  # uncorrelated terms
  glmm_print_parity(fit_glmm_pair(quote(glmm(y ~ x + (x || g), family = binomial, data = d))))
})

test_that("singular fit prints the convergence lines as glmer", {
  skip_if_no_glmm()
  d <- singular_data()
  pair <- fit_glmm_pair(quote(glmm(y ~ x + (1 | g), family = binomial, data = d)))
  expect_true(isSingular(pair$fit))
  glmm_print_parity(pair)
  # the second stage's optimizer is named, as lme4 does
  stage2 <- pair$fit$optinfo$optimizer[2L]
  expect_true(any(grepl(sprintf("optimizer (%s) convergence code: 0 (OK)", stage2),
                        printed(pair$fit)$out, fixed = TRUE)))
  expect_true(any(grepl(sprintf("optimizer (%s) convergence code: 0 (OK)",
                                pair$ref@optinfo$optimizer),
                        printed(pair$ref)$out, fixed = TRUE)))
  # ... and the first stage's for nAGQ = 0
  agq0 <- fit_glmm_pair(quote(glmm(y ~ x + (1 | g), family = binomial, data = d, nAGQ = 0)))
  glmm_print_parity(agq0)
  stage1 <- agq0$fit$optinfo$optimizer[1L]
  expect_true(any(grepl(sprintf("optimizer (%s) convergence code: 0 (OK)", stage1),
                        printed(agq0$fit)$out, fixed = TRUE)))
  expect_true(any(grepl("boundary (singular) fit", printed(summary(pair$fit))$out,
                        fixed = TRUE)))
})

test_that("a control argument prints the Control line as glmer", {
  skip_if_no_glmm()
  skip_if_not(exists("glmmControl", mode = "function"), "glmmControl() is not available yet")
  cbpp <- lme4::cbpp
  glmerControl <- lme4::glmerControl
  fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
              family = binomial, data = cbpp, control = glmmControl())
  # the reference runs to its optimum (helper-glmm.R) but records the
  # default control in its call, as ours does
  ref <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                     family = binomial, data = cbpp, control = glmer_reference_control())
  ref@call$control <- quote(glmerControl())
  expect_same_print(printed(summary(fit))$out, printed(summary(ref))$out, align_tags, rel_tol = 2e-3, rel_tol_exp = 2e-2)
  expect_true("Control: glmmControl()" %in% printed(summary(fit))$out)
  # the short display leaves it out
  expect_same_print(printed(fit)$out, printed(ref)$out, align_tags, rel_tol = 2e-3, rel_tol_exp = 2e-2)
})

test_that("printing a fit restored with readRDS() gives the same lines", {
  skip_if_no_glmm()
  cbpp <- lme4::cbpp
  fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
              family = binomial, data = cbpp)
  path <- tempfile(fileext = ".rds")
  on.exit(unlink(path), add = TRUE)
  saveRDS(fit, path)
  back <- readRDS(path)
  expect_identical(capture.output(print(back)), capture.output(print(fit)))
  expect_identical(capture.output(print(summary(back))), capture.output(print(summary(fit))))
})
