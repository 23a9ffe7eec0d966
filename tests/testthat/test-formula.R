# Formula stage: bar terms, `||`, nesting, interactions, fixed part, and the
# random-effects terms built from them, side by side with lme4.

# Runs both front ends on the same formula and data.
compare_lme4 <- function(formula, data, ...) {
  skip_if_not_installed("Matrix")
  inp <- call_inputs(formula, data, ...)
  lf <- lme4::lFormula(formula, data, ...)
  expect_lme4_parity(inp, lf)
  invisible(inp)
}

# Small simulated data with grouping variables of every type.
sim_data <- function(n = 120, seed = 1) {
  set.seed(seed)
  data.frame(
    y = rnorm(n),
    x = runif(n, 1, 2),
    z = rnorm(n),
    f = factor(sample(c("lo", "mid", "hi"), n, replace = TRUE)),
    ch = sample(c("u", "v", "w", "k"), n, replace = TRUE),
    num = sample(c(10, 2, 33, 4, 5), n, replace = TRUE),
    lg = rep(c(TRUE, FALSE), length.out = n),
    a = rep(c("p", "q", "r"), length.out = n),
    b = rep(1:4, each = n / 4),
    stringsAsFactors = FALSE
  )
}

test_that("bar terms are found and expanded as lme4::findbars does", {
  skip_if_not_installed("lme4")
  forms <- list(
    y ~ x + (1 | g),
    y ~ x + (x | g),
    y ~ (1 + x | g) + (0 + z | h),
    y ~ x + (x || g),
    y ~ x + (1 + x + z || g),
    y ~ x + (0 + x + z || g),
    y ~ x + (f || g),
    y ~ x + (x:z || g),
    y ~ x + (1 | a/b),
    y ~ x + (1 | a/b/c),
    y ~ x + (x || a/b),
    y ~ x + (1 | a:b) + (1 | a),
    y ~ x + ((1 | g)),
    y ~ 0 + (log(x) | g),
    y ~ x - 1 + (1 | g),
    y ~ x + (1|g) + (1|h:g)
  )
  for (f in forms) {
    parsed <- parse_lmm_formula(f)
    expect_identical(vapply(parsed$bars, deparse1, ""),
                     vapply(lme4::findbars(f), deparse1, ""))
    expect_identical(deparse1(parsed$fixed_formula), deparse1(lme4::nobars(f)))
    frame_f <- lme4::subbars(lme4::expandDoubleVerts(f))
    expect_identical(all.vars(parsed$frame_formula), all.vars(frame_f))
  }
})

test_that("parsing keeps the formula's class and environment", {
  env <- new.env()
  f <- local(y ~ x + offset(z) + (1 | g), env)
  parsed <- parse_lmm_formula(f)
  expect_identical(parsed$formula, f)
  expect_s3_class(parsed$fixed_formula, "formula")
  expect_identical(environment(parsed$fixed_formula), env)
  expect_identical(environment(parsed$frame_formula), env)
  expect_identical(deparse1(parsed$fixed_formula), "y ~ x + offset(z)")
  expect_identical(deparse1(read_bar_terms(quote((1 | g)), env)$fixed), "1")
  # lme4::nobars() turns `(1 | g) - 1` into `1`; the intercept is removed
  # here, as written
  expect_identical(deparse1(read_bar_terms(quote((1 | g) - 1), env)$fixed), "-1")
})

test_that("sleepstudy: correlated, uncorrelated and split slopes match lme4", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  inp <- compare_lme4(Reaction ~ Days + (Days | Subject), sleepstudy)
  expect_identical(inp$reterms[[1]]$group, "Subject")
  expect_identical(inp$reterms[[1]]$term, "Days | Subject")
  expect_identical(inp$reterms[[1]]$cnms, c("(Intercept)", "Days"))
  inp <- compare_lme4(Reaction ~ Days + (Days || Subject), sleepstudy)
  expect_identical(vapply(inp$reterms, `[[`, "", "term"),
                   c("1 | Subject", "0 + Days | Subject"))
  expect_identical(attr(inp$flist, "assign"), c(1L, 1L))
  compare_lme4(Reaction ~ 1 + Days + (1 | Subject) + (0 + Days | Subject),
               sleepstudy)
  compare_lme4(Reaction ~ Days + (1 + Days | Subject), sleepstudy)
})

test_that("functions in fixed part and slopes, parentheses, no spaces match lme4", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  inp <- compare_lme4(Reaction ~ Days + I(Days^2) + log(Days + 1) +
                        (log(Days + 1) | Subject), sleepstudy)
  expect_identical(inp$reterms[[1]]$cnms, c("(Intercept)", "log(Days + 1)"))
  compare_lme4(Reaction ~ poly(Days, 2) + ((1|Subject)), sleepstudy)
  compare_lme4(Reaction ~ Days + ((0+Days|Subject)), sleepstudy)
  # character formula
  inp <- call_inputs("Reaction ~ Days + (1|Subject)", sleepstudy)
  lf <- lme4::lFormula(Reaction ~ Days + (1 | Subject), sleepstudy)
  expect_lme4_parity(inp, lf)
  expect_s3_class(inp$formula, "formula")
})

test_that("crossed terms (Penicillin) and a single term (Dyestuff) match lme4", {
  skip_if_not_installed("lme4")
  Penicillin <- lme4::Penicillin
  inp <- compare_lme4(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin)
  expect_identical(names(inp$flist), c("plate", "sample"))
  compare_lme4(diameter ~ (1 | sample) + (1 | plate), Penicillin)
  compare_lme4(Yield ~ 1 + (1 | Batch), lme4::Dyestuff)
})

test_that("nesting and interaction grouping factors (Pastes, cake) match lme4", {
  skip_if_not_installed("lme4")
  Pastes <- lme4::Pastes
  inp <- compare_lme4(strength ~ 1 + (1 | batch/cask), Pastes)
  expect_identical(vapply(inp$reterms, `[[`, "", "group"),
                   c("cask:batch", "batch"))
  compare_lme4(strength ~ 1 + (1 | batch:cask) + (1 | batch), Pastes)
  compare_lme4(strength ~ 1 + (1 | sample) + (1 | batch), Pastes)
  cake <- lme4::cake
  inp <- compare_lme4(angle ~ recipe * temperature + (1 | recipe:replicate),
                      cake)
  expect_identical(levels(inp$reterms[[1]]$factor)[1:3],
                   c("A:1", "A:2", "A:3"))
  compare_lme4(angle ~ recipe + temp + (1 | replicate/recipe), cake)
})

test_that("InstEval subset with an interaction grouping factor matches lme4", {
  skip_if_not_installed("lme4")
  ie <- lme4::InstEval[1:3000, ]
  inp <- compare_lme4(y ~ service + lectage + (1 | s) + (1 | d) +
                        (1 | dept:service), ie)
  expect_identical(names(inp$flist), c("d", "s", "dept:service"))
})

test_that("character, numeric and logical grouping variables match lme4", {
  skip_if_not_installed("lme4")
  d <- sim_data()
  inp <- compare_lme4(y ~ x + (1 | ch) + (1 | num) + (1 | lg), d)
  expect_type(inp$frame$ch, "character")
  expect_type(inp$frame$num, "double")
  expect_type(inp$frame$lg, "logical")
  expect_identical(levels(inp$flist$num), c("2", "4", "5", "10", "33"))
  compare_lme4(y ~ x + (1 | a/b/lg), d)
  compare_lme4(y ~ x + (1 | ch:num) + (1 | num:ch), d)
})

test_that("factor-valued slopes and || over several terms match lme4", {
  skip_if_not_installed("lme4")
  d <- sim_data()
  inp <- compare_lme4(y ~ x + (0 + f | a), d)
  expect_identical(inp$reterms[[1]]$cnms, c("fhi", "flo", "fmid"))
  compare_lme4(y ~ x + (f | a), d)
  compare_lme4(y ~ x + (0 + ch | a), d)
  inp <- compare_lme4(y ~ x + (1 + x + z || a), d)
  expect_identical(vapply(inp$reterms, `[[`, "", "term"),
                   c("1 | a", "0 + x | a", "0 + z | a"))
  inp <- compare_lme4(y ~ x + (f || a), d)
  expect_identical(inp$reterms[[2]]$cnms, c("fhi", "flo", "fmid"))
  compare_lme4(y ~ x + (x || a/b), d)
  compare_lme4(y ~ x * z + f + (x | ch) + (1 | num), d)
})

test_that("term order follows lme4, ties included", {
  skip_if_not_installed("lme4")
  d <- sim_data()
  # levels 2, 3, 3: reordered by rev(order()), so the tied terms swap
  inp <- compare_lme4(y ~ x + (1 | lg) + (1 | a) + (0 + x | a), d)
  expect_identical(vapply(inp$reterms, `[[`, "", "term"),
                   c("0 + x | a", "1 | a", "1 | lg"))
  # levels 3, 3, 2: never increasing, so left as written
  inp <- compare_lme4(y ~ x + (1 | a) + (0 + x | a) + (1 | lg), d)
  expect_identical(vapply(inp$reterms, `[[`, "", "term"),
                   c("1 | a", "0 + x | a", "1 | lg"))
  # levels 4, 5, 4: reordered
  compare_lme4(y ~ x + (1 | ch) + (1 | num) + (1 | b), d)
})

test_that("malformed formulas give errors that name the problem", {
  d <- sim_data()
  expect_error(call_inputs(~ x + (1 | a), d), "no response")
  expect_error(call_inputs(42, d), "'formula' must be a formula")
  expect_error(call_inputs(no_such_formula, d),
               "could not evaluate 'formula' \\(no_such_formula\\)")
  expect_error(call_inputs(c("y ~ x", "y ~ z"), d), "'formula' must be")
  expect_error(call_inputs(y ~ x + z, d), "no random-effects term.*\\(1 \\| group\\).*lm\\(\\)")
  expect_error(call_inputs("y ~ x + (|a)", d), "could not parse 'formula'")
  expect_error(call_inputs("y ~ x + (x|)", d), "could not parse 'formula'")
  expect_error(call_inputs("y ~ x + (1|)", d), "could not parse 'formula'")
  expect_error(call_inputs(y ~ x + (1 | 1), d), "no grouping variable")
  expect_error(call_inputs(y ~ x * (1 | a), d), "with '\\+'")
  expect_error(call_inputs(y ~ x + (1 | a/(b/ch)), d), "nesting is written a/b")
  expect_error(call_inputs(y ~ x + (0 | a), d), "\\(0 \\| a\\) has no columns")
  expect_error(call_inputs(y ~ x + (1 | a + b), d),
               "grouping factor 'a \\+ b'.*interaction of variables")
  expect_error(call_inputs(y ~ x + (1 | nothere), d),
               "'nothere' in random-effects term \\(1 \\| nothere\\)")
  expect_error(call_inputs(y ~ x + (slope | a), d),
               "'slope' in random-effects term \\(slope \\| a\\)")
  expect_error(call_inputs(y ~ x + qq + (1 | a), d), "object 'qq' not found \\(variable 'qq' of the formula")
  expect_error(call_inputs(y ~ x + (1 | a), d, weights = ww),
               "'ww' used in 'weights'")
  expect_error(call_inputs(y ~ x + (1 | a), d, offset = oo),
               "'oo' used in 'offset'")
  expect_error(call_inputs(y ~ x + (1 | a), d, subset = ss > 1),
               "'ss' used in 'subset'")
})

test_that("a grouping factor may be a transformed variable of the frame", {
  # lme4 cannot evaluate (1 | factor(b)) inside its model frame; the frame
  # has a column "factor(b)", which is used here.
  d <- sim_data()
  inp <- call_inputs(y ~ x + (1 | factor(b)), d)
  expect_identical(inp$reterms[[1]]$group, "factor(b)")
  expect_identical(inp$reterms[[1]]$factor, factor(d$b))
})
