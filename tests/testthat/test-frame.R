# Model-frame stage: frame, response, X, weights, offset, missing values,
# subset, rank and scale checks, grouping-factor checks and input errors,
# side by side with lme4.

# Small simulated data: groups of several types, weights, an offset and
# some missing values.
frame_data <- function(n = 80, seed = 2) {
  set.seed(seed)
  d <- data.frame(
    y = rnorm(n, 10),
    x = runif(n, 1, 3),
    z = rnorm(n),
    g = rep(sprintf("s%02d", 1:10), length.out = n),
    h = rep(c(3, 1, 2, 5), each = n / 4),
    w = runif(n, 0.5, 2),
    e = rnorm(n, sd = 0.1),
    stringsAsFactors = FALSE
  )
  d$f <- factor(rep(c("a", "b", "c", "unused"), length.out = n),
                levels = c("a", "b", "c", "unused", "never"))
  d
}

test_that("lmm_inputs() returns exactly the documented elements", {
  d <- frame_data()
  inp <- call_inputs(y ~ x + (1 | g), d)
  expect_identical(names(inp), c("formula", "model_formula", "frame", "y", "X",
                                 "fixed_formula", "weights", "offset", "reterms",
                                 "flist", "na.action"))
  expect_identical(inp$formula, y ~ x + (1 | g))
  expect_identical(inp$model_formula, inp$formula)
  expect_identical(deparse1(inp$fixed_formula), "y ~ x")
  expect_true(is.data.frame(inp$frame))
  expect_false(is.null(attr(inp$frame, "terms")))
  expect_type(inp$y, "double")
  expect_type(inp$X, "double")
  expect_identical(dim(inp$X), c(80L, 2L))
  expect_false(is.null(attr(inp$X, "assign")))
  expect_null(inp$weights)
  expect_null(inp$offset)
  expect_null(inp$na.action)
  expect_identical(names(inp$reterms[[1]]),
                   c("group", "term", "factor", "cnms", "Z"))
  expect_identical(dim(inp$reterms[[1]]$Z), c(80L, 1L))
  expect_identical(colnames(inp$reterms[[1]]$Z), "(Intercept)")
})

test_that("weights (cbpp) and integer responses match lme4", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("Matrix")
  cbpp <- lme4::cbpp
  inp <- call_inputs(incidence / size ~ period + (1 | herd), cbpp,
                     weights = size)
  lf <- lme4::lFormula(incidence / size ~ period + (1 | herd), cbpp,
                       weights = size)
  expect_lme4_parity(inp, lf)
  expect_equal(inp$weights, cbpp$size, tolerance = 1e-12)
  expect_true("(weights)" %in% names(inp$frame))
  # weights from the calling environment, an expression of data columns
  d <- frame_data()
  ww <- d$w * 2
  inp <- call_inputs(y ~ x + (1 | g), d, weights = ww)
  expect_equal(inp$weights, ww, tolerance = 1e-12)
  inp <- call_inputs(y ~ x + (1 | g), d, weights = 1 / w)
  expect_equal(inp$weights, 1 / d$w, tolerance = 1e-12)
})

test_that("offset terms and the offset argument are summed as in lme4", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("Matrix")
  d <- frame_data()
  f <- y ~ x + offset(e) + offset(log(x)) + (1 | g)
  inp <- call_inputs(f, d, offset = z)
  lf <- lme4::lFormula(f, d, offset = z)
  expect_lme4_parity(inp, lf)
  expect_equal(inp$offset, d$e + log(d$x) + d$z, tolerance = 1e-12)
  expect_identical(colnames(inp$X), c("(Intercept)", "x"))
  expect_identical(deparse1(inp$fixed_formula),
                   "y ~ x + offset(e) + offset(log(x))")
  inp <- call_inputs(y ~ x + (1 | g), d, offset = e)
  expect_equal(inp$offset, d$e, tolerance = 1e-12)
  expect_true("(offset)" %in% names(inp$frame))
})

test_that("missing values, na.action and subset match lme4", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("Matrix")
  d <- frame_data()
  d$y[c(3, 17)] <- NA
  d$x[40] <- NA
  d$g[55] <- NA
  d$w[60] <- NA
  f <- y ~ x + (x | g) + (1 | h)
  inp <- call_inputs(f, d, weights = w)
  lf <- lme4::lFormula(f, d, weights = w)
  expect_lme4_parity(inp, lf)
  expect_identical(nrow(inp$frame), 75L)
  expect_identical(unname(as.integer(inp$na.action)), c(3L, 17L, 40L, 55L, 60L))
  expect_s3_class(inp$na.action, "omit")
  expect_identical(inp$na.action, attr(inp$frame, "na.action"))

  inp <- call_inputs(f, d, na.action = na.exclude)
  expect_s3_class(inp$na.action, "exclude")
  inp <- call_inputs(f, d, na.action = "na.exclude")
  expect_s3_class(inp$na.action, "exclude")

  old <- options(na.action = "na.fail")
  res <- tryCatch(call_inputs(f, d), error = identity)
  options(old)
  expect_match(conditionMessage(res), "model frame: missing values")

  # The option's na.action is applied where values are missing (the frame is
  # first built with na.pass), and so is an option that names another function.
  inp <- withr::with_options(list(na.action = "na.exclude"), call_inputs(f, d))
  expect_s3_class(inp$na.action, "exclude")
  expect_identical(nrow(inp$frame), nrow(stats::na.exclude(d[c("y", "x", "g", "h")])))
  keep_first <- function(object, ...) object[1:40, , drop = FALSE]
  inp <- withr::with_options(list(na.action = keep_first), call_inputs(f, frame_data()))
  expect_identical(nrow(inp$frame), 40L)

  inp <- call_inputs(f, d, subset = h != 5 & z < 1)
  lf <- lme4::lFormula(f, d, subset = h != 5 & z < 1)
  expect_lme4_parity(inp, lf)
  keep <- seq(1, 80, by = 2)
  inp <- call_inputs(f, d, subset = keep)
  expect_identical(nrow(inp$frame), 37L)
})

test_that("unused levels are dropped and grouping variables keep their type", {
  d <- frame_data()
  inp <- call_inputs(y ~ f + (1 | g) + (1 | f) + (1 | h), d, subset = f != "unused")
  expect_identical(levels(inp$frame$f), c("a", "b", "c"))
  expect_identical(colnames(inp$X), c("(Intercept)", "fb", "fc"))
  expect_type(inp$frame$g, "character")
  expect_type(inp$frame$h, "double")
  expect_identical(levels(inp$flist$f), c("a", "b", "c"))
  expect_identical(levels(inp$flist$h), c("1", "2", "3", "5"))
})

test_that("a tibble and data = NULL give the same inputs as a data frame", {
  d <- frame_data()
  ref <- call_inputs(y ~ x + (x | g), d)
  # a data frame subclass as tibbles are (tibble is not a dependency)
  tbl <- structure(d, class = c("tbl_df", "tbl", "data.frame"))
  tb <- call_inputs(y ~ x + (x | g), tbl)
  expect_equal(tb$X, ref$X)
  expect_equal(tb$y, ref$y)
  expect_equal(tb$reterms, ref$reterms)
  fun <- function(d) {
    y <- d$y; x <- d$x; g <- d$g
    call_inputs(y ~ x + (x | g))
  }
  env_inp <- fun(d)
  expect_equal(env_inp$X, ref$X)
  expect_equal(env_inp$reterms, ref$reterms)
})

test_that("the caller's data is never modified", {
  d <- frame_data()
  d$y[5] <- NA
  copy <- d
  call_inputs(y ~ x + offset(e) + (x | g) + (1 | h:g), d, weights = w,
              subset = z < 1.5)
  call_inputs(y ~ f + (1 | f), d)
  expect_identical(d, copy)
})

test_that("rank-deficient X drops the columns lme4 drops, with its message", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  sleepstudy$Days2 <- 2 * sleepstudy$Days
  sleepstudy$Days3 <- sleepstudy$Days + 1
  f <- Reaction ~ Days + Days2 + (1 | Subject)
  expect_message(inp <- call_inputs(f, sleepstudy),
                 "^fixed-effect model matrix is rank deficient so dropping 1 column / coefficient")
  expect_message(lf <- lme4::lFormula(f, sleepstudy),
                 "dropping 1 column / coefficient")
  expect_identical(colnames(inp$X), colnames(lf$X))
  expect_identical(attr(inp$X, "col.dropped"), attr(lf$X, "col.dropped"))
  expect_identical(attr(inp$X, "col.dropped"), c(Days2 = 3L))
  expect_identical(attr(inp$X, "msgRankdrop"), attr(lf$X, "msgRankdrop"))
  expect_identical(attr(inp$X, "assign"), attr(lf$X, "assign"))
  expect_equal(unname(inp$X[, ]), unname(lf$X[, ]), tolerance = 1e-12)

  f2 <- Reaction ~ Days + Days2 + Days3 + (1 | Subject)
  expect_message(inp <- call_inputs(f2, sleepstudy),
                 "dropping 2 columns / coefficients")
  expect_message(lf <- lme4::lFormula(f2, sleepstudy),
                 "dropping 2 columns / coefficients")
  expect_identical(colnames(inp$X), colnames(lf$X))
  expect_identical(attr(inp$X, "col.dropped"), attr(lf$X, "col.dropped"))

  # factor interactions with an empty cell (cake without one combination)
  cake <- lme4::cake
  cake <- cake[!(cake$recipe == "C" & cake$temperature == "225"), ]
  f3 <- angle ~ recipe * temperature + (1 | replicate)
  expect_message(inp <- call_inputs(f3, cake), "dropping 1 column")
  expect_message(lf <- lme4::lFormula(f3, cake), "dropping 1 column")
  expect_identical(colnames(inp$X), colnames(lf$X))
  expect_identical(attr(inp$X, "col.dropped"), attr(lf$X, "col.dropped"))
  expect_identical(attr(inp$X, "contrasts"), attr(lf$X, "contrasts"))

  expect_warning(call_inputs(f, sleepstudy,
                             control = lmmControl(check.rankX = "warn+drop.cols")),
                 "dropping 1 column")
  expect_silent(inp <- call_inputs(f, sleepstudy,
                          control = lmmControl(check.rankX = "silent.drop.cols")))
  expect_identical(colnames(inp$X), c("(Intercept)", "Days"))
  expect_error(call_inputs(f, sleepstudy,
                           control = lmmControl(check.rankX = "stop.deficient")),
               "rank deficient.*'Days2'")
})

test_that("predictors on very different scales are reported per check.scaleX", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  f <- Reaction ~ I(Days * 1e5) + (1 | Subject)
  msg <- "Some predictor variables are on very different scales: consider rescaling"
  expect_warning(inp <- call_inputs(f, sleepstudy), msg, fixed = TRUE)
  expect_warning(lf <- lme4::lFormula(f, sleepstudy), msg, fixed = TRUE)
  expect_identical(attr(inp$X, "msgScaleX"), attr(lf$X, "msgScaleX"))
  expect_message(call_inputs(f, sleepstudy,
                             control = lmmControl(check.scaleX = "message")),
                 msg, fixed = TRUE)
  expect_error(call_inputs(f, sleepstudy,
                           control = lmmControl(check.scaleX = "stop")),
               msg, fixed = TRUE)
  expect_silent(call_inputs(f, sleepstudy,
                            control = lmmControl(check.scaleX = "ignore")))
  expect_silent(inp <- call_inputs(Reaction ~ Days + (1 | Subject), sleepstudy))
  expect_identical(attr(inp$X, "msgScaleX"), character())
})

test_that("bad 'data' arguments are errors", {
  d <- frame_data()
  expect_error(call_inputs(y ~ x + (1 | g), 1:10),
               "'data' must be a data frame, not .*\"integer\"")
  expect_error(call_inputs(y ~ x + (1 | g), as.matrix(d)),
               "'data' must be a data frame, not .*\"matrix\"")
  expect_error(call_inputs(y ~ x + (1 | g), as.list(d)),
               "'data' must be a data frame, not .*\"list\"")
  expect_error(call_inputs(y ~ x + (1 | g), no_such_data),
               "'data' not found: there is no object 'no_such_data'")
  expect_error(call_inputs(y ~ x + (1 | g), d[, 1:1000]),
               "bad 'data': undefined columns selected \\(evaluating d\\[, 1:1000\\]\\)")
  # (the whole calls, as lme4 words them)
  expect_error(lmm(y ~ x + (1 | g), no_such_data), "'data' not found")
  # Called through lapply(), the data argument is `..2`, which only evaluation finds.
  forms <- list(y ~ x + (1 | g), y ~ 1 + (1 | g))
  fits <- lapply(forms, lmm, data = d)
  expect_equal(fixef(fits[[1]]), fixef(lmm(y ~ x + (1 | g), d)))
  gfits <- lapply(list(cbind(incidence, size - incidence) ~ period + (1 | herd)), glmm,
                  family = binomial, data = lme4::cbpp)
  expect_s3_class(gfits[[1]], "glmm")
  expect_error(glmm(y ~ x + (1 | g), d[, 1:1000], family = poisson),
               "bad 'data': undefined columns selected")
  # The data argument is evaluated once (`data = read.csv(...)` reads the file once).
  evaluations <- 0L
  counted <- function(data) {
    evaluations <<- evaluations + 1L
    data
  }
  lmm(y ~ x + (1 | g), counted(d))
  glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), counted(lme4::cbpp),
       family = binomial)
  glmm(TICKS ~ YEAR + (1 | BROOD), counted(lme4::grouseticks), family = nbinom2)
  glmm.nb(TICKS ~ YEAR + (1 | BROOD), counted(lme4::grouseticks))
  expect_identical(evaluations, 4L)
  expect_error(call_inputs(y ~ x + (1 | g), d[0, ]), "'data' has no rows")
  d_na <- d
  d_na$y <- NA_real_
  expect_error(call_inputs(y ~ x + (1 | g), d_na), "no observations")
  expect_error(call_inputs(y ~ x + (1 | g), d, subset = z > 100),
               "no observations")
})

test_that("a non-numeric or non-finite response is an error naming it", {
  d <- frame_data()
  d$fy <- factor(rep(c("a", "b"), 40))
  d$cy <- as.character(d$fy)
  d$ly <- d$z > 0
  expect_error(call_inputs(fy ~ x + (1 | g), d), "response 'fy' must be numeric, not factor")
  expect_error(call_inputs(cy ~ x + (1 | g), d), "response 'cy' must be numeric, not character")
  expect_error(call_inputs(ly ~ x + (1 | g), d), "response 'ly' must be numeric.*as.numeric")
  expect_error(call_inputs(cbind(y, z) ~ x + (1 | g), d), "response 'cbind\\(y, z\\)'.*2 columns")
  d$y[4] <- Inf
  expect_error(call_inputs(y ~ x + (1 | g), d), "response 'y' has 1 non-finite value")
  d$y[4] <- NA
  expect_error(call_inputs(y ~ x + (1 | g), d, na.action = na.pass),
               "response 'y' has 1 non-finite value")
  expect_error(call_inputs(I(x / 0) ~ x + (1 | g), d),
               "response 'I\\(x/0\\)' has 80 non-finite values")
})

test_that("non-finite values in X or Z are errors naming the column", {
  d <- frame_data()
  d$x0 <- c(0, d$x[-1])
  expect_error(call_inputs(y ~ log(x0) + (1 | g), d),
               "fixed-effects column 'log\\(x0\\)' has non-finite")
  expect_error(call_inputs(y ~ x + (log(x0) | g), d),
               "term \\(log\\(x0\\) \\| g\\), column 'log\\(x0\\)' has non-finite")
  d$z[7] <- NA
  expect_error(call_inputs(y ~ x + (z | g), d, na.action = na.pass),
               "column 'z' has non-finite")
})

test_that("bad weights and offsets are errors naming the argument", {
  d <- frame_data()
  w <- d$w
  expect_error(call_inputs(y ~ x + (1 | g), d, weights = -w), "'weights' must not be negative")
  w0 <- replace(w, 3, 0)
  expect_error(call_inputs(y ~ x + (1 | g), d, weights = w0), "zero 'weights' are not supported.*drop those rows")
  expect_error(call_inputs(y ~ x + (1 | g), d, weights = g), "'weights' must be a numeric vector")
  wi <- replace(w, 2, Inf)
  expect_error(call_inputs(y ~ x + (1 | g), d, weights = wi), "'weights' has 1 non-finite")
  wn <- replace(w, 2, NA)
  expect_error(call_inputs(y ~ x + (1 | g), d, weights = wn, na.action = na.pass),
               "'weights' has 1 non-finite")
  wshort <- w[-1]
  expect_error(call_inputs(y ~ x + (1 | g), d, weights = wshort), "\\(weights\\)")
  oshort <- d$e[-1]
  expect_error(call_inputs(y ~ x + (1 | g), d, offset = oshort), "\\(offset\\)")
  expect_error(call_inputs(y ~ x + (1 | g), d, offset = g), "'offset' must be a numeric vector")
  oi <- replace(d$e, 5, -Inf)
  expect_error(call_inputs(y ~ x + (1 | g), d, offset = oi), "'offset' has 1 non-finite")
  expect_error(call_inputs(y ~ x + offset(oi) + (1 | g), d),
               "offset term 'offset\\(oi\\)' has 1 non-finite")
})

test_that("grouping-factor checks follow lmmControl and name the factor or term", {
  d <- frame_data()
  d$one <- "same"
  d$id <- seq_len(nrow(d))
  d$pair <- rep(1:40, each = 2)
  expect_error(call_inputs(y ~ x + (1 | one), d),
               "grouping factor 'one' has only one sampled level")
  expect_warning(call_inputs(y ~ x + (1 | one), d,
                             control = lmmControl(check.nlev.gtr.1 = "warning")),
                 "'one' has only one sampled level")
  expect_error(call_inputs(y ~ x + (1 | g) + (1 | id), d),
               "grouping factor 'id' has as many levels as observations")
  expect_silent(call_inputs(y ~ x + (1 | g) + (1 | id), d,
                            control = lmmControl(check.nobs.vs.nlev = "ignore",
                                                 check.nobs.vs.nRE = "ignore")))
  expect_error(call_inputs(y ~ x + (x | pair), d),
               "number of observations \\(=80\\) <= number of random effects \\(=80\\) for term \\(x \\| pair\\)")
  expect_warning(call_inputs(y ~ x + (x | pair), d,
                             control = lmmControl(check.nobs.vs.nRE = "warning")),
                 "\\(x \\| pair\\)")
  d$g[9] <- NA
  expect_error(call_inputs(y ~ x + (1 | g), d, na.action = na.pass),
               "grouping variable 'g' of random-effects term \\(1 \\| g\\) has missing values")
})

test_that("the rows of data match lme4 after NA handling with interactions", {
  skip_if_not_installed("lme4")
  skip_if_not_installed("Matrix")
  d <- frame_data()
  d$h[c(2, 30)] <- NA
  d$ff <- factor(rep(c("m", "n"), 40))
  f <- y ~ x * ff + poly(z, 2) + (ff | g) + (1 | h:g) + (0 + z | h)
  inp <- call_inputs(f, d, weights = w, offset = e)
  lf <- lme4::lFormula(f, d, weights = w, offset = e)
  expect_lme4_parity(inp, lf)
})
