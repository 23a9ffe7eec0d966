# Model comparison tables (anova_compare(), anova.glmm()) and lme4's
# one-model table (anova_single_lme4()) against lme4's anova() on the same
# models, side by side.
#
# Each set of models is fitted twice, with mixedrs and with lme4 (glmer run
# to its optimum, see helper-glmm.R), into two environments where the models
# carry the same names, and the same anova() call is evaluated in both.
# Tolerances (relative): AIC, BIC, log-likelihood, deviance, chi-square and
# the one-model sums of squares and F values 1e-4; p-values 1e-3. Counts
# (npar, Df), row names, column names, heading and class must be identical;
# printed lines identical up to a unit in the last printed digit (comparator
# in helper-print.R, with no relative allowance).

skip_if_not_installed("lme4")

# --- helpers ----------------------------------------------------------------

# Fits the named, quoted model calls with mixedrs (lmm(), glmm(); lm() and
# glm() calls as they are) and with lme4 (lmer(), glmer() to its optimum).
# Returns the two environments holding the fits under their names.
fit_both <- function(calls, env = parent.frame()) {
  ours <- new.env(parent = env)
  ref <- new.env(parent = env)
  for (nm in names(calls)) {
    call <- calls[[nm]]
    fun <- deparse1(call[[1L]])
    ours[[nm]] <- suppressMessages(eval(call, env))
    ref_call <- call
    ref[[nm]] <- switch(
      fun,
      lmm = {
        ref_call[[1L]] <- quote(lme4::lmer)
        suppressMessages(eval(ref_call, env))
      },
      glmm = {
        ref_call[[1L]] <- quote(lme4::glmer)
        glmer_tight(ref_call, env)
      },
      ours[[nm]]
    )
  }
  list(ours = ours, ref = ref)
}

# Evaluates `expr` (quoted) among our fits and `ref_expr` among lme4's,
# keeping the messages of each.
run_both <- function(pair, expr, ref_expr = expr) {
  list(ours = with_messages(eval(expr, pair$ours)),
       ref = with_messages(eval(ref_expr, pair$ref)))
}

with_messages <- function(code) {
  msgs <- character()
  value <- withCallingHandlers(code, message = function(m) {
    msgs <<- c(msgs, conditionMessage(m))
    invokeRestart("muffleMessage")
  })
  list(value = value, msgs = msgs)
}

# Elementwise relative difference within `tol`, NAs in the same places.
expect_rel_equal <- function(object, expected, tol, label) {
  expect_identical(is.na(object), is.na(expected), label = paste(label, "(NA pattern)"))
  ok <- !is.na(expected)
  x <- object[ok]
  y <- expected[ok]
  err <- abs(x - y) / pmax(abs(y), 1e-12)
  expect(all(abs(x - y) <= tol * pmax(abs(y), 1e-12)),
         sprintf("%s: largest relative difference %.3g > %g\n  ours: %s\n  lme4: %s",
                 label, max(err), tol, paste(format(x), collapse = " "),
                 paste(format(y), collapse = " ")))
}

# Our "anova" table against lme4's: structure identical, statistics 1e-4,
# p-values 1e-3, printed lines up to the last digit.
expect_anova_parity <- function(ours, ref, stat_tol = 1e-4, p_tol = 1e-3) {
  expect_identical(class(ours), c("anova", "data.frame"))
  expect_identical(class(ours), class(ref))
  expect_identical(names(ours), names(ref))
  expect_identical(rownames(ours), rownames(ref))
  expect_identical(attr(ours, "heading"), attr(ref, "heading"))
  for (nm in names(ref)) {
    if (nm %in% c("npar", "Df")) {
      expect_equal(ours[[nm]], ref[[nm]], label = nm)
    } else if (nm == "Pr(>Chisq)") {
      expect_rel_equal(ours[[nm]], ref[[nm]], p_tol, nm)
    } else {
      expect_rel_equal(ours[[nm]], ref[[nm]], stat_tol, nm)
    }
  }
  expect_printed_alike(ours, ref)
}

# Printed lines identical up to one unit in the last printed digit.
expect_printed_alike <- function(ours, ref) {
  expect_same_print(utils::capture.output(print(ours)), utils::capture.output(print(ref)),
                    rel_tol = 0, rel_tol_exp = 0)
}

refit_msg <- "refitting model(s) with ML (instead of REML)"

sleep_calls <- list(
  m0 = quote(lmm(Reaction ~ Days + (1 | Subject), data = sleepstudy)),
  m1 = quote(lmm(Reaction ~ Days + (Days || Subject), data = sleepstudy)),
  m2 = quote(lmm(Reaction ~ Days + (Days | Subject), data = sleepstudy))
)

sleepstudy <- lme4::sleepstudy
cbpp <- lme4::cbpp

# --- linear mixed models ----------------------------------------------------

test_that("REML fits are refitted by ML, as lme4's anova(m0, m1)", {
  pair <- fit_both(sleep_calls[c("m0", "m1")])
  res <- run_both(pair, quote(anova_compare(list(m0, m1), c("m0", "m1"))),
                  quote(anova(m0, m1)))
  expect_identical(res$ours$msgs, paste0(refit_msg, "\n"))
  expect_identical(res$ours$msgs, res$ref$msgs)
  expect_anova_parity(res$ours$value, res$ref$value)
  expect_identical(attr(res$ours$value, "heading"), c(
    "Data: sleepstudy", "Models:",
    "m0: Reaction ~ Days + (1 | Subject)",
    "m1: Reaction ~ Days + ((1 | Subject) + (0 + Days | Subject))"))
})

test_that("the ML refit equals update(fit, REML = FALSE) without evaluating the call", {
  m1 <- suppressMessages(eval(sleep_calls$m1))
  upd <- update(m1, REML = FALSE)
  refit <- anova_refit_ml(m1)
  expect_s3_class(refit, "lmm")
  expect_false(refit$REML)
  expect_identical(refit$call, upd$call)
  expect_equal(refit$theta, upd$theta, tolerance = 1e-4)
  expect_equal(refit$beta, upd$beta, tolerance = 1e-6)
  expect_equal(as.numeric(logLik(refit)), as.numeric(logLik(upd)), tolerance = 1e-8)
  expect_identical(attributes(logLik(refit)), attributes(logLik(upd)))
  # ML fits are returned as they are
  expect_identical(anova_refit_ml(upd), upd)
  # data local to a function (not visible from the package) still works
  local_fit <- function() {
    d <- lme4::sleepstudy[lme4::sleepstudy$Days > 0, ]
    a <- lmm(Reaction ~ Days + (1 | Subject), data = d)
    b <- lmm(Reaction ~ Days + (Days | Subject), data = d)
    suppressMessages(anova_compare(list(a, b), c("a", "b")))
  }
  tab <- local_fit()
  expect_identical(rownames(tab), c("a", "b"))
  expect_identical(attr(tab, "heading")[1L], "Data: d")
})

test_that("ML fits are compared without refitting", {
  calls <- lapply(sleep_calls[c("m0", "m1")], function(cl) {
    cl$REML <- FALSE
    cl
  })
  pair <- fit_both(calls)
  res <- run_both(pair, quote(anova_compare(list(m1, m0), c("m1", "m0"))),
                  quote(anova(m1, m0)))
  expect_identical(res$ours$msgs, character())
  expect_identical(res$ref$msgs, character())
  expect_anova_parity(res$ours$value, res$ref$value)
  expect_identical(rownames(res$ours$value), c("m0", "m1"))
})

test_that("refit = FALSE compares the REML log-likelihoods, as lme4", {
  pair <- fit_both(sleep_calls[c("m0", "m1")])
  res <- run_both(pair, quote(anova_compare(list(m0, m1), c("m0", "m1"), refit = FALSE)),
                  quote(anova(m0, m1, refit = FALSE)))
  expect_identical(res$ours$msgs, character())
  expect_anova_parity(res$ours$value, res$ref$value)
  expect_equal(res$ours$value$logLik,
               c(as.numeric(logLik(pair$ours$m0)), as.numeric(logLik(pair$ours$m1))))
  # REML and ML fits mixed without refitting: lme4's warning, naming the models
  ml <- update(pair$ours$m1, REML = FALSE)
  expect_warning(anova_compare(list(pair$ours$m0, ml), c("m0", "ml"), refit = FALSE),
                 "some models fit with REML = TRUE, some not (m0 by REML, ml by ML)",
                 fixed = TRUE)
})

test_that("three nested models are sorted by number of parameters", {
  pair <- fit_both(sleep_calls)
  res <- run_both(pair, quote(anova_compare(list(m2, m0, m1), c("m2", "m0", "m1"))),
                  quote(anova(m2, m0, m1)))
  expect_anova_parity(res$ours$value, res$ref$value)
  expect_identical(rownames(res$ours$value), c("m0", "m1", "m2"))
  expect_identical(res$ours$value$npar, c(4, 5, 6))
  expect_identical(res$ours$value$Df, c(NA, 1, 1))
})

test_that("lm() fits mix with lmm() fits as in lme4", {
  calls <- c(sleep_calls[c("m0", "m1")],
             list(fm = quote(lm(Reaction ~ Days, data = sleepstudy))))
  pair <- fit_both(calls)
  res <- run_both(pair, quote(anova_compare(list(m0, fm, m1), c("m0", "fm", "m1"))),
                  quote(anova(m0, fm, m1)))
  expect_anova_parity(res$ours$value, res$ref$value)
  expect_identical(rownames(res$ours$value), c("fm", "m0", "m1"))
})

# --- generalized linear mixed models ------------------------------------------

test_that("binomial glmm fits: anova(g1, g0) as lme4", {
  pair <- fit_both(list(
    g0 = quote(glmm(cbind(incidence, size - incidence) ~ 1 + (1 | herd),
                    family = binomial, data = cbpp)),
    g1 = quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                    family = binomial, data = cbpp))
  ))
  res <- run_both(pair, quote(anova(g1, g0)))
  expect_identical(res$ours$msgs, character())
  expect_anova_parity(res$ours$value, res$ref$value)
  expect_identical(attr(res$ours$value, "heading"), c(
    "Data: cbpp", "Models:",
    "g0: cbind(incidence, size - incidence) ~ 1 + (1 | herd)",
    "g1: cbind(incidence, size - incidence) ~ period + (1 | herd)"))
  # with a glm() fit of the same data
  pair$ours$gl <- pair$ref$gl <- glm(cbind(incidence, size - incidence) ~ period,
                                     family = binomial, data = cbpp)
  res <- run_both(pair, quote(anova(g1, gl)))
  expect_anova_parity(res$ours$value, res$ref$value)
  # model.names, as lme4's argument
  res <- run_both(pair, quote(anova(g0, g1, model.names = c("null", "period"))))
  expect_anova_parity(res$ours$value, res$ref$value)
  expect_identical(rownames(res$ours$value), c("null", "period"))
})

test_that("Poisson glmm fits with an offset: anova(p0, p1) as lme4", {
  pair <- fit_both(list(
    p0 = quote(glmm(incidence ~ 1 + offset(log(size)) + (1 | herd),
                    family = poisson, data = cbpp)),
    p1 = quote(glmm(incidence ~ period + offset(log(size)) + (1 | herd),
                    family = poisson, data = cbpp))
  ))
  res <- run_both(pair, quote(anova(p0, p1)))
  expect_anova_parity(res$ours$value, res$ref$value)
  expect_identical(res$ours$value$Df, c(NA, 3))
})

test_that("an lmm mixed with a glmm: REML refit, then lme4's table", {
  pair <- fit_both(list(
    pois = quote(glmm(incidence ~ period + (1 | herd), family = poisson, data = cbpp)),
    gaus = quote(lmm(incidence ~ period + (1 | herd), data = cbpp))
  ))
  res <- run_both(pair, quote(anova(pois, gaus)))
  expect_identical(res$ours$msgs, paste0(refit_msg, "\n"))
  expect_anova_parity(res$ours$value, res$ref$value)
  # the larger model fits worse here: chi-square 0, p-value 1, as lme4
  expect_identical(res$ours$value$Chisq[2L], 0)
  expect_identical(res$ours$value$`Pr(>Chisq)`[2L], 1)
  # and with the lmm first (anova_compare() as anova.lmm() will call it)
  res <- run_both(pair, quote(anova_compare(list(gaus, pois), c("gaus", "pois"))),
                  quote(anova(gaus, pois)))
  expect_anova_parity(res$ours$value, res$ref$value)
})

test_that("lme4's own fits can be compared with ours", {
  g1 <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
             family = binomial, data = cbpp)
  r0 <- glmer_tight(quote(lme4::glmer(cbind(incidence, size - incidence) ~ 1 + (1 | herd),
                                      family = binomial, data = cbpp)), environment())
  r1 <- glmer_tight(quote(lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                                      family = binomial, data = cbpp)), environment())
  ours <- anova(g1, r0)
  ref <- anova(r1, r0, model.names = c("g1", "r0"))
  expect_anova_parity(ours, ref)
  # an lmer REML fit is refitted by lme4's refitML()
  m1 <- suppressMessages(eval(sleep_calls$m1))
  l0 <- suppressMessages(lme4::lmer(Reaction ~ Days + (1 | Subject), data = sleepstudy))
  l1 <- suppressMessages(lme4::lmer(Reaction ~ Days + (Days || Subject), data = sleepstudy))
  expect_message(ours <- anova_compare(list(m1 = m1, l0 = l0)), refit_msg, fixed = TRUE)
  ref <- suppressMessages(anova(l1, l0, model.names = c("m1", "l0")))
  expect_anova_parity(ours, ref)
})

test_that("nAGQ > 1 fits are not compared with glm() fits", {
  g5 <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
             family = binomial, data = cbpp, nAGQ = 5)
  gl <- glm(cbind(incidence, size - incidence) ~ period, family = binomial, data = cbpp)
  expect_error(anova(g5, gl), "GLMMs with nAGQ>1 have log-likelihoods incommensurate",
               fixed = TRUE)
  expect_error(anova(g5, gl), "g5 with nAGQ > 1; gl fitted by glm()", fixed = TRUE)
})

# --- checks and names ---------------------------------------------------------

test_that("models fitted to different data are refused, naming the models", {
  m0 <- suppressMessages(eval(sleep_calls$m0))
  m1 <- suppressMessages(eval(sleep_calls$m1))
  short <- lme4::sleepstudy[1:170, ]
  ms <- lmm(Reaction ~ Days + (1 | Subject), data = short)
  expect_error(anova_compare(list(m0, m1, ms), c("m0", "m1", "ms")),
               "models were not all fitted to the same size of dataset (m0, m1: 180 observations; ms: 170 observations)",
               fixed = TRUE)
  copy <- lme4::sleepstudy
  mc <- lmm(Reaction ~ Days + (1 | Subject), data = copy)
  expect_error(anova_compare(list(m0, mc), c("m0", "mc")),
               "all models must be fit to the same data object (m0: data = sleepstudy; mc: data = copy)",
               fixed = TRUE)
  # lme4 refuses the same (its messages do not name the models)
  r0 <- suppressMessages(lme4::lmer(Reaction ~ Days + (1 | Subject), data = sleepstudy))
  rs <- suppressMessages(lme4::lmer(Reaction ~ Days + (1 | Subject), data = short))
  rc <- suppressMessages(lme4::lmer(Reaction ~ Days + (1 | Subject), data = copy))
  expect_error(suppressMessages(anova(r0, rs)), "same size of dataset")
  expect_error(suppressMessages(anova(r0, rc)), "same data object")
  # subsets must agree too
  m_sub <- lmm(Reaction ~ Days + (1 | Subject), data = sleepstudy, subset = Days >= 0)
  expect_error(anova_compare(list(m0, m_sub), c("m0", "m_sub")),
               "all models must use the same subset (m0: no subset; m_sub: subset = Days >= 0)",
               fixed = TRUE)
  # glmm dispatch checks the same
  g1 <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
             family = binomial, data = cbpp)
  expect_error(anova(g1, m0), "(g1: 56 observations; m0: 180 observations)", fixed = TRUE)
})

test_that("a common subset appears in the heading, as lme4", {
  calls <- lapply(sleep_calls[c("m0", "m2")], function(cl) {
    cl$subset <- quote(Days > 1)
    cl
  })
  pair <- fit_both(calls)
  res <- run_both(pair, quote(anova_compare(list(m0, m2), c("m0", "m2"))),
                  quote(anova(m0, m2)))
  expect_anova_parity(res$ours$value, res$ref$value)
  expect_identical(attr(res$ours$value, "heading")[1:2], c("Data: sleepstudy", "Subset: Days > 1"))
})

test_that("different responses give a warning naming the models", {
  m0 <- suppressMessages(eval(sleep_calls$m0))
  mlog <- lmm(log(Reaction) ~ Days + (1 | Subject), data = sleepstudy)
  expect_warning(
    tab <- suppressMessages(anova_compare(list(m0, mlog), c("m0", "mlog"))),
    "models have different responses (m0: Reaction; mlog: log(Reaction))", fixed = TRUE)
  expect_s3_class(tab, "anova")
})

test_that("model names come from the call, also through wrappers", {
  g0 <- glmm(cbind(incidence, size - incidence) ~ 1 + (1 | herd),
             family = binomial, data = cbpp)
  g1 <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
             family = binomial, data = cbpp)
  expect_identical(rownames(anova(g0, g1)), c("g0", "g1"))
  # lme4 names these ..1 and ..2; the expressions as written are kept here
  wrapper <- function(...) anova(...)
  expect_identical(rownames(wrapper(g0, g1)), c("g0", "g1"))
  # arguments that are not models (lme4 leaves them out silently) are an
  # error naming them, except test = "Chisq" / "LRT", which is the table's
  # test anyway
  expect_error(anova(g0, "not a model", g1),
               "does not use an unnamed character (not a fitted model)", fixed = TRUE)
  expect_error(anova(g0, g1, test = "F"), "does not use 'test'", fixed = TRUE)
  expect_error(anova(g0, g1, refti = FALSE), "does not use 'refti'", fixed = TRUE)
  expect_identical(anova(g0, g1, test = "Chisq"), anova(g0, g1))
  expect_identical(anova(g0, g1, test = "LRT"), anova(g0, g1))
  # values instead of names, or duplicates: generic names with lme4's warning
  expect_warning(tab <- do.call(anova, list(g0, g1)),
                 "failed to find model names, assigning generic names")
  expect_identical(rownames(tab), c("MODEL1", "MODEL2"))
  expect_warning(tab <- anova_compare(list(g0, g1), c("a", "a")), "generic names")
  expect_identical(rownames(tab), c("MODEL1", "MODEL2"))
  expect_error(anova(g0, g1, model.names = "one"),
               "model names vector and model list have different lengths (1 names for 2 models)",
               fixed = TRUE)
  expect_error(anova_compare(list(g0, 1), c("g0", "x")),
               "cannot compare x: not a fitted model", fixed = TRUE)
  expect_error(anova_compare(list(g0), "g0"), "at least two fitted models")
  expect_error(anova_compare(list(g0, g1), c("g0", "g1"), refit = NA), "'refit' must be")
})

# --- the one-model table ------------------------------------------------------

test_that("anova_single_lme4() gives lme4's table for an lmm with factor and numeric terms", {
  cake <- lme4::cake
  pair <- fit_both(list(
    fit = quote(lmm(angle ~ recipe * temp + (1 | recipe:replicate), data = cake)),
    # (with a random slope too this model's optimum is so flat that lmer stops
    # 2e-5 away in theta, which moves the sums of squares by 1e-4)
    fit2 = quote(lmm(Reaction ~ 0 + Days + I(Days^2) + (1 | Subject), data = sleepstudy,
                     REML = FALSE))
  ))
  for (nm in c("fit", "fit2")) {
    ours <- anova_single_lme4(pair$ours[[nm]])
    ref <- anova(pair$ref[[nm]])
    expect_identical(class(ours), class(ref))
    expect_identical(dimnames(ours), dimnames(ref))
    expect_identical(attr(ours, "heading"), attr(ref, "heading"))
    expect_identical(ours$npar, ref$npar)
    for (col in c("Sum Sq", "Mean Sq", "F value")) {
      expect_rel_equal(ours[[col]], ref[[col]], 1e-4, paste(nm, col))
    }
    expect_printed_alike(ours, ref)
  }
  expect_identical(rownames(anova_single_lme4(pair$ours$fit)),
                   c("recipe", "temp", "recipe:temp"))
})

test_that("anova(glmm) gives lme4's one-model table for glmer fits", {
  pair <- fit_both(list(
    g1 = quote(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                    family = binomial, data = cbpp)),
    p1 = quote(glmm(incidence ~ period + offset(log(size)) + (1 | herd),
                    family = poisson, data = cbpp))
  ))
  for (nm in c("g1", "p1")) {
    ours <- anova(pair$ours[[nm]])
    ref <- anova(pair$ref[[nm]])
    expect_identical(class(ours), class(ref))
    expect_identical(dimnames(ours), dimnames(ref))
    expect_identical(attr(ours, "heading"), "Analysis of Variance Table")
    expect_identical(ours$npar, ref$npar)
    for (col in c("Sum Sq", "Mean Sq", "F value")) {
      expect_rel_equal(ours[[col]], ref[[col]], 1e-4, paste(nm, col))
    }
    expect_printed_alike(ours, ref)
  }
  # an intercept-only model has an empty table; a named argument that is not
  # a model (a misspelled option or another method's) is an error, and so is
  # an unnamed one (lme4 ignores it with a warning)
  g0 <- glmm(cbind(incidence, size - incidence) ~ 1 + (1 | herd),
             family = binomial, data = cbpp)
  expect_identical(nrow(anova(g0)), 0L)
  expect_error(anova(pair$ours$g1, test = "Chisq"),
               "anova() for one glmm fit has no argument 'test'", fixed = TRUE)
  expect_error(anova(pair$ours$g1, type = "III"),
               "anova() for one glmm fit has no argument 'type'", fixed = TRUE)
  expect_error(anova(pair$ours$g1, "x"), "unnamed argument that is not a fitted model")
  expect_error(anova(pair$ours$g1, refit = FALSE),
               "'refit' only applies when comparing several models", fixed = TRUE)
  expect_error(anova(pair$ours$g1, model.names = "a"),
               "'model.names' only applies when comparing several models", fixed = TRUE)
  expect_error(anova_single_lme4(lm(incidence ~ period, cbpp)), "must be a fit of lmm() or glmm()",
               fixed = TRUE)
})

test_that("glmer-style and glmmTMB-style fits of a dispersion family are not compared", {
  skip_if_not_installed("glmmTMB")
  sleepstudy <- lme4::sleepstudy
  m1 <- glmm(Reaction ~ Days + (1 | Subject), family = Gamma(link = "log"), data = sleepstudy)
  m2 <- glmm(Reaction ~ Days + (1 | Subject), family = Gamma(link = "log"),
             dispformula = ~ Days, data = sleepstudy)
  # the two criteria differ: glmer's for m1, glmmTMB's Laplace likelihood for m2
  ref1 <- tmb_tight(glmmTMB::glmmTMB(Reaction ~ Days + (1 | Subject), family = Gamma(link = "log"),
                                     data = sleepstudy, control = tmb_tight_control()))
  expect_gt(abs(as.numeric(logLik(m1)) - as.numeric(logLik(ref1))), 1)
  expect_error(anova(m1, m2), "m1 is fitted by glmer's criterion for the Gamma family, m2 by")
  # with dispformula = ~1 both are glmmTMB's: the table is glmmTMB's
  m1t <- glmm(Reaction ~ Days + (1 | Subject), family = Gamma(link = "log"),
              dispformula = ~ 1, data = sleepstudy)
  ref2 <- tmb_tight(glmmTMB::glmmTMB(Reaction ~ Days + (1 | Subject), family = Gamma(link = "log"),
                                     dispformula = ~ Days, data = sleepstudy,
                                     control = tmb_tight_control()))
  ours <- anova(m1t, m2)
  theirs <- anova(ref1, ref2)
  expect_equal(ours$Chisq[2], theirs$Chisq[2], tolerance = 1e-4)
  expect_equal(ours$logLik, theirs$logLik, tolerance = 1e-6)
  # a Poisson glmer-style fit and a negative binomial are comparable
  gt <- lme4::grouseticks
  p1 <- glmm(TICKS ~ YEAR + (1 | BROOD), family = poisson, data = gt)
  p2 <- glmm(TICKS ~ YEAR + (1 | BROOD), family = "nbinom2", data = gt)
  expect_s3_class(anova(p1, p2), "anova")
})
