# lmm()'s own arguments, its errors, and what it leaves untouched.

ss <- data.frame(
  Reaction = c(249.56, 258.70, 250.80, 321.44, 356.85, 414.69, 382.20, 290.15, 430.59, 466.35,
               222.73, 205.27, 202.98, 204.71, 207.72, 215.96, 213.63, 217.73, 224.29, 237.31,
               199.05, 194.33, 234.32, 232.84, 229.31, 220.46, 235.42, 255.75, 261.01, 247.52,
               321.54, 300.40, 283.86, 285.13, 285.80, 297.59, 280.24, 318.26, 305.35, 354.05),
  Days = rep(0:9, 4),
  Subject = rep(c("308", "309", "310", "330"), each = 10)
)

test_that("invalid arguments of lmm() give errors naming the argument", {
  f <- Reaction ~ Days + (1 | Subject)
  expect_error(lmm(f, ss, REML = "yes"), "'REML' must be TRUE or FALSE")
  expect_error(lmm(f, ss, REML = NA), "'REML' must be TRUE or FALSE")
  expect_error(lmm(f, ss, REML = c(TRUE, FALSE)), "'REML' must be TRUE or FALSE")
  # a plain list of settings is taken as lme4 takes it; unknown names are errors
  expect_error(lmm(f, ss, control = list(maxfn = 10)), "'control': unknown setting maxfn")
  expect_error(lmm(f, ss, control = glmmControl()), "'control' must be built by lmmControl")
  expect_error(lmm(f, ss, verbose = "loud"), "'verbose'")
  expect_error(lmm(f, ss, start = c(1, 2)), "'start' must be the covariance parameters theta as a numeric vector of length 1")
  expect_error(lmm(f, ss, start = -1), "'start' has negative values")
  expect_error(lmm(f, ss, start = list(theta = 1, beta = 2)), "incorrect components in 'start': beta")
  expect_error(lmm(f, as.matrix(ss)), "'data' must be a data frame")
  expect_error(lmm(Reaction ~ Days, ss), "no random-effects term")
  expect_error(lmm(Reaction ~ Days + (1 | nobody), ss), "'nobody'")
  expect_error(lmm(Reaction ~ Days + (1 | Subject), ss[0, ]), "no rows")
  expect_error(lmmControl(optimizer = "Nelder_Meat"), "nor a function that can be found")
  expect_error(lmmControl(rhobeg = -1), "'rhobeg'")
  expect_error(lmmControl(check.rankX = "drop"), "'check.rankX' should be one of")
})

test_that("the caller's data is never modified", {
  copy <- ss
  fit <- lmm(Reaction ~ Days + (Days | Subject), ss, weights = Days + 1)
  expect_identical(ss, copy)
  expect_s3_class(fit, "lmm")
})

test_that("start values are used and lead to the same optimum", {
  f <- Reaction ~ Days + (Days | Subject)
  a <- suppressMessages(lmm(f, ss))
  b <- suppressMessages(lmm(f, ss, start = a$theta))
  c <- suppressMessages(lmm(f, ss, start = list(theta = c(2, 0, 1))))
  expect_equal(REMLcrit(b), REMLcrit(a), tolerance = 1e-8)
  expect_equal(REMLcrit(c), REMLcrit(a), tolerance = 1e-6)
  expect_equal(b$optinfo$start, unname(a$theta))
})

test_that("verbose prints the criterion and theta at each evaluation", {
  out <- capture.output(fit <- lmm(Reaction ~ Days + (1 | Subject), ss, verbose = TRUE))
  expect_true(any(grepl("^iteration: 1$", out)))
  expect_true(any(grepl("f\\(x\\) = ", out)))
  expect_true(any(grepl("theta = ", out)))
  quiet <- capture.output(fit2 <- lmm(Reaction ~ Days + (1 | Subject), ss))
  expect_length(quiet, 0)
})

test_that("errors inside the Rust core arrive as ordinary R errors", {
  terms <- list(list(codes = c(1L, 3L), n_levels = 2L, z = c(1, 1), q = 1L, factor_id = 1L))
  expect_error(lmm_fit_rs(c(1, 2), c(1, 1), 1L, NULL, NULL, terms, TRUE, NULL,
                          unclass(lmmControl()), 0L),
               "outside 1..2")
  terms[[1]]$codes <- c(1L, 2L)
  expect_error(lmm_fit_rs("a", c(1, 1), 1L, NULL, NULL, terms, TRUE, NULL,
                          unclass(lmmControl()), 0L),
               "must be a double vector")
  # the session still fits models afterwards
  expect_s3_class(lmm(Reaction ~ Days + (1 | Subject), ss), "lmm")
})

test_that("a singular fit is reported once, as lme4 does, and can be silenced", {
  set.seed(3)
  d <- data.frame(y = rnorm(60), g = rep(letters[1:6], 10))
  expect_message(fit <- lmm(y ~ 1 + (1 | g), d), "boundary \\(singular\\) fit")
  expect_true(isSingular(fit))
  expect_silent(lmm(y ~ 1 + (1 | g), d,
                    control = lmmControl(check.conv.singular = "ignore")))
})

test_that("a well-behaved fit raises no convergence warning", {
  skip_if_not_installed("lme4")
  data("sleepstudy", package = "lme4", envir = environment())
  expect_silent(fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy))
  expect_length(fit$optinfo$conv$lme4$messages, 0)
  expect_identical(fit$optinfo$conv$opt, 0L)
})

test_that("methods are registered: they dispatch from outside the package", {
  fit <- lmm(Reaction ~ Days + (Days | Subject), ss)
  # Evaluated in the global environment, S3 dispatch can only find registered
  # methods, as for a user (inside the package namespace it would find any).
  from_user <- function(expr) eval(substitute(expr), list(fit = fit), globalenv())
  expect_s3_class(from_user(summary(fit)), "summary.lmm")
  expect_s3_class(from_user(VarCorr(fit)), "VarCorr.lmm")
  expect_s3_class(from_user(ranef(fit)), "ranef.lmm")
  expect_s3_class(from_user(coef(fit)), "coef.lmm")
  expect_s3_class(from_user(logLik(fit)), "logLik")
  expect_true(is.data.frame(from_user(as.data.frame(VarCorr(fit)))))
  expect_true(is.data.frame(from_user(as.data.frame(ranef(fit)))))
  printed <- from_user(capture.output(print(fit)))
  expect_match(printed[1], "Linear mixed model fit by REML \\['lmm'\\]")
  printed <- from_user(capture.output(print(summary(fit))))
  expect_true(any(grepl("^Scaled residuals:", printed)))
  printed <- from_user(capture.output(print(VarCorr(fit))))
  expect_match(printed[1], "Groups")
  printed <- from_user(capture.output(print(lmmControl())))
  expect_match(printed[1], "lmm control settings")
})
