# Type II anova() tables (and the forms of `type` lmerTest accepts) against
# lmerTest, side by side. The references are lmerTest::lmer() fits run to
# full precision (bobyqa, rhoend = 1e-12), so both fits sit at the same
# optimum to ~1e-7 relative.
#
# Tolerances: the hypothesis matrices depend only on X, so they must agree to
# rounding (1e-10). Sums of squares, F values, denominator df and p-values
# move with the ~1e-7 differences between the two optima; 1e-5 relative
# leaves a margin of 100 and still catches any wrong hypothesis (a type III
# or type I row in place of a type II one changes them by far more: see the
# check that the three types differ on every model).

skip_if_not_installed("lmerTest")
skip_if_not_installed("pbkrtest")

type2_data <- function() {
  set.seed(7)
  d <- data.frame(
    g = factor(rep(1:25, each = 12)),
    h = factor(sample(letters[1:8], 300, replace = TRUE)),
    trt = factor(rep(c("a", "b", "c"), 100)),
    f2 = factor(sample(c("u", "v"), 300, replace = TRUE)),
    f3 = factor(sample(c("p", "q", "r", "s"), 300, replace = TRUE)),
    x = rnorm(300), z = runif(300)
  )
  d$y <- 1 + 0.5 * d$x + as.numeric(d$trt) * 0.3 + 0.2 * d$x * (d$trt == "b") +
    0.3 * (d$f2 == "v") * (d$f3 == "q") + rnorm(25)[d$g] + 0.5 * rnorm(8)[d$h] +
    rnorm(300)
  # unbalanced: drop 37 rows at random
  d[-sample(300, 37), ]
}

type2_models <- function() {
  d <- type2_data()
  data("cake", "sleepstudy", package = "lme4", envir = environment())
  sum_coded <- d
  contrasts(sum_coded$trt) <- stats::contr.sum(3)
  contrasts(sum_coded$f2) <- stats::contr.sum(2)
  list(
    numeric_by_factor = list(y ~ trt * x + z + (1 | g) + (1 | h), d),
    three_way = list(y ~ trt * f2 * f3 + (1 | g), d),
    numeric_by_numeric = list(y ~ x * z + trt + (x | g), d),
    two_way_and_covariate = list(y ~ trt * f2 + x + (1 | g), d),
    # temperature is an ordered factor: polynomial contrasts
    cake = list(angle ~ recipe * temperature + (1 | recipe:replicate), cake),
    sum_coded = list(y ~ trt * f2 + (1 | g), sum_coded),
    no_intercept = list(y ~ 0 + trt + x + trt:x + (1 | g), d),
    # an empty cell: X loses a column of the interaction
    empty_cell = list(y ~ trt * f3 + (1 | g), d[!(d$trt == "c" & d$f3 == "s"), ]),
    poly_by_factor = list(y ~ poly(x, 2) * trt + (1 | g), d),
    one_term = list(Reaction ~ Days + (Days | Subject), sleepstudy),
    ML = list(y ~ trt * x + (1 | g), d, REML = FALSE)
  )
}

fit_type2_pair <- function(spec) {
  extra <- spec[-(1:2)]
  data <- spec[[2]]
  ours <- as.call(c(list(quote(lmm), formula = spec[[1]], data = quote(data)), extra))
  ref <- as.call(c(list(quote(lmerTest::lmer), formula = spec[[1]], data = quote(data)),
                   extra, list(control = lmer_full_control_call)))
  env <- environment()
  list(fit = suppressMessages(eval(ours, env)), ref = suppressMessages(eval(ref, env)))
}

expect_anova_match <- function(ours, ref, info) {
  expect_s3_class(ours, "anova")
  expect_identical(rownames(ours), rownames(ref), label = info)
  expect_identical(colnames(ours), colnames(ref), label = info)
  expect_identical(attr(ours, "heading"), attr(ref, "heading"), label = info)
  expect_equal(ours$NumDF, as.integer(ref$NumDF), label = paste(info, "NumDF"))
  for (col in c("Sum Sq", "Mean Sq", "DenDF", "F value", "Pr(>F)")) {
    expect_equal(ours[[col]], ref[[col]], tolerance = 1e-5, label = paste(info, col))
  }
  hyp_ours <- attr(ours, "hypotheses")
  hyp_ref <- attr(ref, "hypotheses")
  expect_identical(names(hyp_ours), names(hyp_ref), label = info)
  for (term in names(hyp_ref)) {
    expect_equal(unname(hyp_ours[[term]]), unname(hyp_ref[[term]]), tolerance = 1e-10,
                 label = paste(info, term, "hypotheses"))
  }
}

test_that("type II tables match lmerTest (Satterthwaite and Kenward-Roger)", {
  models <- type2_models()
  for (name in names(models)) {
    pair <- fit_type2_pair(models[[name]])
    for (ddf in c("Satterthwaite", "Kenward-Roger")) {
      if (ddf == "Kenward-Roger" && !isTRUE(pair$fit$REML)) {
        expect_error(anova(pair$fit, type = "II", ddf = ddf), "only available for REML fits")
        next
      }
      ref <- anova(pair$ref, type = "II", ddf = ddf)
      for (type in list("II", "2", 2, 2L)) {
        expect_anova_match(anova(pair$fit, type = type, ddf = ddf), ref,
                           paste(name, ddf, deparse(type)))
      }
    }
  }
})

test_that("type II differs from types I and III where lmerTest's do", {
  # The models above are only a check of type II if its table is not also
  # the type I or type III table: here it differs from both (in lmerTest and
  # in ours) on the main effects of the interactions.
  pair <- fit_type2_pair(type2_models()$three_way)
  t1 <- anova(pair$fit, type = 1)
  t2 <- anova(pair$fit, type = 2)
  t3 <- anova(pair$fit, type = 3)
  for (term in c("trt", "f2", "f3", "trt:f2")) {
    expect_gt(abs(t2[term, "F value"] / t3[term, "F value"] - 1), 1e-2)
    expect_gt(abs(t2[term, "F value"] / t1[term, "F value"] - 1), 1e-2)
  }
  r1 <- anova(pair$ref, type = 1)
  r2 <- anova(pair$ref, type = 2)
  r3 <- anova(pair$ref, type = 3)
  expect_equal(t1$`F value`, r1$`F value`, tolerance = 1e-5)
  expect_equal(t2$`F value`, r2$`F value`, tolerance = 1e-5)
  expect_equal(t3$`F value`, r3$`F value`, tolerance = 1e-5)
})

test_that("numeric and character forms of type give the same tables as lmerTest's", {
  pair <- fit_type2_pair(type2_models()$three_way)
  for (type in c("I", "III")) {
    ref <- anova(pair$ref, type = type)
    numeric_form <- if (type == "I") 1 else 3
    for (form in list(type, as.character(numeric_form), numeric_form)) {
      expect_anova_match(anova(pair$fit, type = form), ref, paste(type, deparse(form)))
    }
  }
  # the default is type III
  expect_identical(anova(pair$fit), anova(pair$fit, type = "III"))
})

test_that("bad or inapplicable type arguments are errors naming them", {
  pair <- fit_type2_pair(type2_models()$two_way_and_covariate)
  fit <- pair$fit
  expect_error(anova(fit, type = "IV"), "'type' should be one of .*not \"IV\"")
  expect_error(anova(fit, type = 4), "'type' should be one of .*not 4")
  expect_error(anova(fit, type = c(2, 3)), "'type' should be one of .*not c\\(2, 3\\)")
  expect_error(anova(fit, type = NA), "'type' should be one of .*not NA")
  # no partial matching: "ii" or "T" is not a type
  expect_error(anova(fit, type = "ii"), "'type' should be one of .*not \"ii\"")
  # lme4's table is sequential: other types with it are an error
  expect_error(anova(fit, type = "II", ddf = "lme4"), "type II hypotheses need")
  expect_error(anova(fit, type = 3, ddf = "lme4"), "type III hypotheses need")
  lme4_tab <- anova(fit, ddf = "lme4")
  expect_identical(anova(fit, type = "I", ddf = "lme4"), lme4_tab)
  ref_lme4 <- anova(lmer_full(formula(pair$ref), data = stats::model.frame(pair$ref)))
  expect_equal(lme4_tab$`F value`, ref_lme4$`F value`, tolerance = 1e-5)
  # with several models the table is a likelihood-ratio test: type and ddf
  # do not apply
  small <- lmm(y ~ trt + f2 + x + (1 | g), type2_data())
  expect_error(suppressMessages(anova(small, fit, type = "II")),
               "'type' and 'ddf' apply to the F tests of one model")
  expect_error(suppressMessages(anova(small, fit, ddf = "Kenward-Roger")),
               "'type' and 'ddf' apply to the F tests of one model")
})
