# Satterthwaite and Kenward-Roger degrees of freedom, summary() tables and
# type III / type I anova() tables against lmerTest and pbkrtest, side by side.
#
# The references are fitted to full precision (helper-reference.R).
# Tolerances: degrees of freedom, F values and p-values 1e-3 relative (the
# issue's requirement; lmerTest and pbkrtest differentiate numerically);
# standard errors 1e-4 relative.

skip_if_not_installed("lmerTest")
skip_if_not_installed("pbkrtest")

ddf_models <- function() {
  data("sleepstudy", "cake", "Penicillin", "Pastes", package = "lme4", envir = environment())
  set.seed(7)
  sim <- data.frame(
    g = factor(rep(1:25, each = 12)),
    h = factor(sample(letters[1:8], 300, replace = TRUE)),
    trt = factor(rep(c("a", "b", "c"), 100)),
    x = rnorm(300), z = runif(300)
  )
  sim$y <- 1 + 0.5 * sim$x + as.numeric(sim$trt) * 0.3 + 0.2 * sim$x * (sim$trt == "b") +
    rnorm(25)[sim$g] + 0.5 * rnorm(8)[sim$h] + rnorm(300)
  list(
    slopes = list(Reaction ~ Days + (Days | Subject), sleepstudy),
    slopes_ML = list(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE),
    factorial = list(angle ~ recipe * temperature + (1 | recipe:replicate), cake),
    crossed = list(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin),
    nested = list(strength ~ 1 + (1 | batch/cask), Pastes),
    numeric_by_factor = list(y ~ trt * x + z + (1 | g) + (1 | h), sim),
    uncorrelated = list(y ~ trt + x + (x || g), sim)
  )
}

fit_lmerTest_pair <- function(spec) {
  extra <- spec[-(1:2)]
  data <- spec[[2]]
  ours <- as.call(c(list(quote(lmm), formula = spec[[1]], data = quote(data)), extra))
  ref <- ours
  ref[[1]] <- quote(lmerTest::lmer)
  ref$control <- lmer_full_control_call
  env <- environment()
  list(fit = suppressMessages(eval(ours, env)), ref = suppressMessages(eval(ref, env)))
}

test_that("summary() t tests match lmerTest (Satterthwaite) and pbkrtest (Kenward-Roger)", {
  models <- ddf_models()
  expect_gte(length(models), 6)
  for (name in names(models)) {
    pair <- fit_lmerTest_pair(models[[name]])
    for (ddf in c("Satterthwaite", "Kenward-Roger")) {
      if (ddf == "Kenward-Roger" && !isTRUE(pair$fit$REML)) {
        expect_error(summary(pair$fit, ddf = ddf), "only available for REML fits")
        next
      }
      ours <- coef(summary(pair$fit, ddf = ddf))
      ref <- coef(summary(pair$ref, ddf = ddf))
      info <- paste(name, ddf)
      expect_identical(colnames(ours), c("Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"))
      expect_identical(rownames(ours), rownames(ref))
      expect_equal(ours[, "Std. Error"], ref[, "Std. Error"], tolerance = 1e-4, label = info)
      expect_equal(ours[, "df"], ref[, "df"], tolerance = 1e-3, label = paste(info, "df"))
      expect_equal(ours[, "t value"], ref[, "t value"], tolerance = 1e-3, label = info)
      expect_equal(ours[, "Pr(>|t|)"], ref[, "Pr(>|t|)"], tolerance = 1e-3, label = paste(info, "p"))
    }
  }
})

test_that("anova() type III and type I tables match lmerTest", {
  models <- ddf_models()
  for (name in c("slopes", "factorial", "numeric_by_factor", "uncorrelated", "slopes_ML")) {
    pair <- fit_lmerTest_pair(models[[name]])
    for (type in c("III", "I")) for (ddf in c("Satterthwaite", "Kenward-Roger")) {
      if (ddf == "Kenward-Roger" && !isTRUE(pair$fit$REML)) next
      ours <- anova(pair$fit, type = type, ddf = ddf)
      ref <- anova(pair$ref, type = type, ddf = ddf)
      info <- paste(name, type, ddf)
      expect_s3_class(ours, "anova")
      expect_identical(rownames(ours), rownames(ref), label = info)
      expect_identical(colnames(ours), colnames(ref), label = info)
      expect_identical(attr(ours, "heading"), attr(ref, "heading"), label = info)
      expect_equal(ours$NumDF, ref$NumDF, label = info)
      for (col in c("Sum Sq", "Mean Sq", "DenDF", "F value", "Pr(>F)")) {
        expect_equal(ours[[col]], ref[[col]], tolerance = 1e-3, label = paste(info, col))
      }
    }
  }
})

test_that("edge cases match lmerTest: rank-deficient X, singular fit, no terms", {
  ss <- lme4::sleepstudy
  ss$Days2 <- 2 * ss$Days
  fit <- suppressMessages(lmm(Reaction ~ Days + Days2 + (1 | Subject), ss))
  ref <- suppressMessages(lmerTest_full(Reaction ~ Days + Days2 + (1 | Subject), ss))
  expect_equal(coef(summary(fit)), coef(summary(ref)), tolerance = 1e-4)
  expect_equal(as.data.frame(anova(fit)), as.data.frame(anova(ref)), tolerance = 1e-4,
               ignore_attr = TRUE)
  d2 <- lme4::Dyestuff2
  fit <- suppressMessages(lmm(Yield ~ 1 + (1 | Batch), d2))
  ref <- suppressMessages(lmerTest_full(Yield ~ 1 + (1 | Batch), d2))
  for (ddf in c("Satterthwaite", "Kenward-Roger")) {
    expect_equal(coef(summary(fit, ddf = ddf)), coef(summary(ref, ddf = ddf)), tolerance = 1e-4)
  }
  a <- anova(fit)
  expect_identical(dim(a), dim(anova(ref)))
  expect_identical(colnames(a), colnames(anova(ref)))
})

test_that("Kenward-Roger with prior weights uses V = sigma^2 (W^-1 + Z G Z')", {
  # pbkrtest builds V with an identity residual part whatever the weights; its
  # own algorithm (vcovAdj_internal, Lb_ddf) given the weighted V is the
  # reference here.
  data("sleepstudy", package = "lme4", envir = environment())
  ss <- sleepstudy
  ss$w <- 1 + as.integer(ss$Subject) %% 3
  fit <- lmm(Reaction ~ Days + (Days | Subject), ss, weights = w)
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), ss, weights = w)
  sg <- pbkrtest:::get_SigmaG(ref)
  k <- sg$n.ggamma
  sg$G[[k]] <- Matrix::Diagonal(x = 1 / ss$w)
  gamma <- c(unlist(lapply(lme4::VarCorr(ref), function(m) m[lower.tri(m, diag = TRUE)])),
             sigma(ref)^2)
  sg$Sigma <- Reduce(`+`, Map(`*`, gamma, sg$G))
  X <- lme4::getME(ref, "X")
  v_adj <- pbkrtest:::vcovAdj_internal(as.matrix(vcov(ref)), sg, X)
  ours <- coef(summary(fit, ddf = "Kenward-Roger"))
  expect_equal(unname(ours[, "Std. Error"]), unname(sqrt(diag(as.matrix(v_adj)))),
               tolerance = 1e-4)
  for (j in seq_len(ncol(X))) {
    L <- matrix(diag(ncol(X))[j, ], nrow = 1L)
    ddf <- pbkrtest::Lb_ddf(L, as.matrix(vcov(ref)), v_adj)
    expect_equal(unname(ours[j, "df"]), ddf, tolerance = 1e-3, label = colnames(X)[j])
  }
})

test_that("the lmerTest-style summary prints lmerTest's table layout", {
  data("sleepstudy", package = "lme4", envir = environment())
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  ref <- lmerTest_full(Reaction ~ Days + (Days | Subject), sleepstudy)
  ours <- capture.output(print(summary(fit)))
  theirs <- capture.output(print(summary(ref)))
  expect_match(ours[1], "Linear mixed model fit by REML. t-tests use Satterthwaite's method \\['lmm'\\]")
  fixed_ours <- ours[grep("^Fixed effects", ours) + 0:3]
  fixed_theirs <- theirs[grep("^Fixed effects", theirs) + 0:3]
  expect_identical(fixed_ours[1:2], fixed_theirs[1:2])
  expect_identical(sub("\\s+$", "", substr(fixed_ours[3:4], 1, 60)),
                   sub("\\s+$", "", substr(fixed_theirs[3:4], 1, 60)))
  # ddf = "lme4" gives lme4's table
  expect_identical(colnames(coef(summary(fit, ddf = "lme4"))),
                   c("Estimate", "Std. Error", "t value"))
})

test_that("bad ddf and type arguments are errors naming them", {
  data("sleepstudy", package = "lme4", envir = environment())
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  expect_error(summary(fit, ddf = "Wald"), "'ddf' should be one of .*not \"Wald\"")
  expect_error(anova(fit, type = "IV"), "'type' should be one of .*not \"IV\"")
  expect_error(anova(fit, ddf = NA), "'ddf' should be one of")
  ml <- update(fit, REML = FALSE)
  expect_error(anova(ml, ddf = "Kenward-Roger"), "only available for REML fits")
  # A non-model argument to a one-model anova() is an error (lme4 ignores it
  # with a warning: the table would not be the one asked for).
  expect_error(anova(fit, "x"), "unnamed argument that is not a fitted model")
})
