# The model-input stage builds common pieces without model.matrix() and
# factor(): intercept and plain numeric columns of random-effects terms, a
# fixed part of plain numeric main effects, grouping factors from integer
# codes, interaction factors, and the theta names and bounds. Each shortcut
# must give exactly what the general route gives, also after missing-value
# handling, subset, weights and offsets.

fast_data <- function(n = 60, seed = 11) {
  set.seed(seed)
  d <- data.frame(
    y = rnorm(n, 5),
    x = runif(n, 1, 3),
    k = sample.int(7L, n, replace = TRUE),
    z = rnorm(n),
    w = runif(n, 0.5, 2),
    o = rnorm(n, sd = 0.1),
    g = factor(sample(sprintf("g%02d", 1:8), n, replace = TRUE)),
    h = sample(c(12L, -3L, 5L, 40L), n, replace = TRUE),
    s = sample(c("b", "a", "c"), n, replace = TRUE),
    stringsAsFactors = FALSE
  )
  d$x[c(3, 17)] <- NA
  d$z[25] <- NA
  rownames(d) <- paste0("r", seq_len(n))
  d
}

# The matrix term_matrix() builds through model.matrix().
reference_term_matrix <- function(lhs, frame) {
  mm <- stats::model.matrix(stats::as.formula(call("~", lhs)), frame)
  matrix(as.double(mm), nrow(mm), ncol(mm), dimnames = list(NULL, colnames(mm)))
}

test_that("simple random-effects columns equal model.matrix() columns", {
  d <- fast_data()
  lhss <- list(quote(1), quote(1L), quote(x), quote(k), quote(1 + x),
               quote(1L + k), quote(0 + x), quote(0L + k), quote(0 + z))
  setups <- list(
    list(),
    list(subset = quote(y > 4.5)),
    list(weights = quote(w), offset = quote(o)),
    list(na.action = quote(na.exclude)),
    list(subset = quote(k != 3L), na.action = quote(na.omit), weights = quote(w))
  )
  for (setup in setups) {
    for (lhs in lhss) {
      f <- eval(bquote(y ~ z + (.(lhs) | g)))
      inp <- do.call(call_inputs, c(list(f, d), setup))
      Z <- inp$reterms[[1]]$Z
      expect_false(is.null(simple_term_matrix(lhs, inp$frame, "t")))
      expect_identical(Z, reference_term_matrix(lhs, inp$frame))
      expect_identical(inp$reterms[[1]]$cnms, colnames(Z))
      expect_identical(inp$reterms[[1]]$term, deparse1(f[[3]][[3]][[2]]))
    }
  }
})

test_that("other random-effects left-hand sides still use model.matrix()", {
  d <- fast_data()
  d$lg <- d$y > 5
  d$xm <- I(d$x)
  frame <- call_inputs(y ~ 1 + (1 | g), d[, c("y", "g")])$frame
  others <- list(quote(x + 0), quote(x - 1), quote(log(x)), quote(s), quote(lg),
                 quote(xm), quote(1 + x + z), quote(0), quote(2), quote(x + 1))
  full <- call_inputs(y ~ lg + s + z + (1 | g) + (xm | g), d)$frame
  for (lhs in others) {
    expect_null(simple_term_matrix(lhs, full, "t"))
  }
  expect_null(simple_term_matrix(quote(absent), frame, "t"))
  # and the term is then built as before
  inp <- call_inputs(y ~ 1 + (x + 0 | g) + (lg | g), d)
  expect_identical(inp$reterms[[1]]$Z, reference_term_matrix(quote(x + 0), inp$frame))
  expect_identical(inp$reterms[[2]]$Z, reference_term_matrix(quote(lg), inp$frame))
})

test_that("non-finite values in a simple random-effects column give the same error", {
  d <- fast_data()
  msg <- "NA in Z.*term \\(x \\| g\\), column 'x' has non-finite values"
  expect_error(call_inputs(y ~ 1 + (x | g), d, na.action = na.pass), msg)
  expect_error(call_inputs(y ~ 1 + (0 + x | g), d, na.action = na.pass),
               "NA in Z.*term \\(0 \\+ x \\| g\\), column 'x' has non-finite")
  d$x[5] <- Inf
  expect_error(call_inputs(y ~ 1 + (1 + x | g), d), "column 'x' has non-finite")
})

test_that("grouping factors from codes equal factor()", {
  f <- factor(c("b", "a", "c", "a"), levels = c("c", "a", "b"))
  named <- stats::setNames(f, c("w", "x", "y", "z"))
  cases <- list(
    f,
    named,
    factor(c("lo", "hi", "lo"), levels = c("lo", "hi"), ordered = TRUE),
    structure(f, contrasts = "contr.sum"),
    factor(c("a", "b"), levels = c("a", "b", "unused")),
    addNA(factor(c("a", NA, "b"))),
    c(12L, -3L, 5L, 12L, 40L),
    stats::setNames(c(3L, 1L, 3L), c("a", "b", "c")),
    c(2.5, 1, 2.5),
    c("b", "a", "B", "a"),
    c(TRUE, FALSE, TRUE),
    structure(c(3L, 1L), class = "myint"),
    structure(factor(c("x", "y")), class = c("myfactor", "factor"))
  )
  for (x in cases) {
    expect_identical(as_group_factor(x), factor(x))
  }
})

test_that("interaction factors equal the label-based interaction", {
  label_interaction <- function(f1, f2) {
    labels <- paste(f1, f2, sep = ":")
    first <- !duplicated(labels)
    ord <- order(as.integer(f1)[first], as.integer(f2)[first])
    factor(labels, levels = labels[first][ord])
  }
  set.seed(3)
  f1 <- factor(sample(c("p", "q", "r"), 40, replace = TRUE), levels = c("r", "p", "q"))
  f2 <- factor(sample(1:5, 40, replace = TRUE))
  expect_identical(interact_factors(f1, f2), label_interaction(f1, f2))
  expect_identical(interact_factors(f2, f1), label_interaction(f2, f1))
  # levels containing ':' whose labels collide are merged, as by labels
  g1 <- factor(c("a:b", "a", "a:b", "a"))
  g2 <- factor(c("c", "b:c", "c", "d"))
  expect_identical(interact_factors(g1, g2), label_interaction(g1, g2))
  expect_identical(nlevels(interact_factors(g1, g2)), 2L)
  # through lmm_inputs: nested and crossed grouping of several types
  d <- fast_data()
  inp <- call_inputs(y ~ 1 + (1 | g/h) + (1 | s:k), d)
  fr <- inp$frame
  rt <- stats::setNames(inp$reterms, vapply(inp$reterms, `[[`, "", "group"))
  expect_identical(rt[["h:g"]]$factor,
                   label_interaction(factor(fr$h), factor(fr$g)))
  expect_identical(rt[["s:k"]]$factor,
                   label_interaction(factor(fr$s), factor(fr$k)))
  expect_identical(rt[["g"]]$factor, factor(fr$g))
})

test_that("a plain numeric fixed part equals model.matrix()", {
  d <- fast_data()
  forms <- list(y ~ x, y ~ 1, y ~ 0 + x, y ~ x + k + z, y ~ x + offset(o),
                y ~ k - 1 + z, y ~ log(x) + k)
  setups <- list(
    list(),
    list(subset = quote(y > 4.5), weights = quote(w)),
    list(na.action = quote(na.exclude), offset = quote(o))
  )
  for (setup in setups) {
    for (f in forms) {
      full <- eval(bquote(.(f[[2]]) ~ .(f[[3]]) + (1 | g)))
      inp <- do.call(call_inputs, c(list(full, d), setup))
      X <- stats::model.matrix(f, inp$frame)
      storage.mode(X) <- "double"
      expect_false(is.null(simple_fixed_matrix(f, inp$frame)))
      expect_identical(simple_fixed_matrix(f, inp$frame), X)
      X_inp <- inp$X
      attr(X_inp, "msgScaleX") <- NULL
      expect_identical(X_inp, X)
    }
  }
  # compact row names
  d2 <- d
  rownames(d2) <- NULL
  inp <- call_inputs(y ~ x + (1 | g), d2)
  expect_identical(simple_fixed_matrix(y ~ x, inp$frame),
                   stats::model.matrix(y ~ x, inp$frame))
  fr <- call_inputs(y ~ k + (1 | g), d2[, c("y", "k", "g")])$frame
  expect_identical(simple_fixed_matrix(y ~ k, fr), {
    X <- stats::model.matrix(y ~ k, fr)
    storage.mode(X) <- "double"
    X
  })
  # everything else goes through model.matrix()
  d$lg <- d$y > 5
  fr <- call_inputs(y ~ x + s + lg + k + (1 | g), d)$frame
  for (f in list(y ~ s, y ~ x:k, y ~ lg, y ~ x + s, y ~ poly(x, 2), y ~ 0)) {
    expect_null(simple_fixed_matrix(f, fr))
  }
})

test_that("theta names and lower bounds are lme4's", {
  terms <- list(
    list(group = "g", cnms = "(Intercept)"),
    list(group = "h", cnms = c("(Intercept)", "x", "z")),
    list(group = "s", cnms = c("a", "b"))
  )
  expect_identical(theta_names(terms), c(
    "g.(Intercept)", "h.(Intercept)", "h.x.(Intercept)", "h.z.(Intercept)",
    "h.x", "h.z.x", "h.z", "s.a", "s.b.a", "s.b"))
  expect_identical(theta_lower(terms), c(0, 0, -Inf, -Inf, 0, -Inf, 0, 0, -Inf, 0))
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  ref <- lmer_full(Reaction ~ Days + (Days | Subject), sleepstudy)
  expect_identical(names(fit$theta), names(lme4::getME(ref, "theta")))
  expect_identical(fit$lower, lme4::getME(ref, "lower"))
})

test_that("the response is model.response() without the row names", {
  d <- fast_data()
  d$ym <- matrix(d$y, ncol = 1)
  d$fac <- factor(d$s)
  d$succ <- d$k
  d$fail <- 8L - d$k
  for (f in list(y ~ x + g, ym ~ x + g, fac ~ x + g, cbind(succ, fail) ~ x + g,
                 log(y) ~ x + g)) {
    fr <- stats::model.frame(f, d, subset = k > 1)
    ref <- stats::model.response(fr)
    got <- response_values(fr)
    if (is.matrix(ref)) {
      expect_identical(unname(got), unname(ref))
    } else {
      expect_identical(got, unname(ref))
    }
  }
  fr <- stats::model.frame(~ x + g, d)
  expect_null(response_values(fr))
  inp <- call_inputs(log(y) ~ x + (1 | g), d)
  expect_identical(inp$y, as.double(unname(stats::model.response(inp$frame))))
})

test_that("factors coded by treatment contrasts in the fixed part equal model.matrix()", {
  d <- fast_data()
  d$fa <- factor(sample(c("lo", "mid", "hi"), nrow(d), replace = TRUE),
                 levels = c("mid", "lo", "hi", "none"))
  d$fb <- factor(sample(letters[1:4], nrow(d), replace = TRUE))
  d$fb[7] <- NA
  forms <- list(y ~ fa, y ~ x + fa + k, y ~ fb + fa, y ~ fa + offset(o) + z,
                y ~ fb)
  setups <- list(
    list(),
    list(subset = quote(fb != "b"), weights = quote(w)),
    list(na.action = quote(na.exclude))
  )
  for (setup in setups) {
    for (f in forms) {
      full <- eval(bquote(.(f[[2]]) ~ .(f[[3]]) + (1 | g)))
      inp <- suppressMessages(do.call(call_inputs, c(list(full, d), setup)))
      X <- stats::model.matrix(f, inp$frame)
      expect_false(is.null(simple_fixed_matrix(f, inp$frame)))
      expect_identical(simple_fixed_matrix(f, inp$frame), X)
    }
  }
  fr <- call_inputs(y ~ fa + fb + x + s + (1 | g), d)$frame
  fr$fo <- factor(fr$fa, ordered = TRUE)
  fr$fc <- fr$fa
  contrasts(fr$fc) <- "contr.sum"
  fr$f1 <- factor(rep("one", nrow(fr)))
  for (f in list(y ~ 0 + fa, y ~ fa - 1 + x, y ~ fo, y ~ fc, y ~ f1,
                 y ~ x + s - s, y ~ x + fa - fa, y ~ fa:x)) {
    expect_null(simple_fixed_matrix(f, fr))
  }
  # other contrasts: model.matrix()
  old <- options(contrasts = c("contr.sum", "contr.poly"))
  on.exit(options(old))
  expect_null(simple_fixed_matrix(y ~ fa, fr))
  inp <- call_inputs(y ~ fa + (1 | g), d)
  X <- stats::model.matrix(y ~ fa, inp$frame)
  expect_identical(attr(inp$X, "contrasts"), list(fa = "contr.sum"))
  expect_identical(unclass(inp$X)[, ], unclass(X)[, ])
  options(old)
  # missing factor values kept by na.pass: the same error as model.matrix()
  expect_error(call_inputs(y ~ fb + (1 | g), d, na.action = na.pass),
               "fixed-effects column 'fbb', 'fbc', 'fbd' has non-finite values")
})

test_that("unused factor levels are dropped as model.frame(drop.unused.levels = TRUE) does", {
  d <- fast_data()
  d$fa <- factor(sample(c("lo", "mid", "hi"), nrow(d), replace = TRUE),
                 levels = c("mid", "lo", "hi", "none"))
  d$fo <- factor(d$fa, levels = c("hi", "mid", "lo", "none"), ordered = TRUE)
  d$fc <- d$fa
  contrasts(d$fc) <- contr.sum(4)
  d$fn <- d$fa
  d$fn[c(2, 9)] <- NA
  reference <- function(formula, data, ...) {
    stats::model.frame(formula, data, ..., drop.unused.levels = TRUE)
  }
  for (f in list(y ~ fa + fo + g, y ~ fa + x + fn, y ~ fc + g)) {
    for (args in list(list(), list(subset = quote(fa != "lo")),
                      list(na.action = na.pass), list(na.action = na.exclude))) {
      mc <- as.call(c(list(quote(lmm), formula = f, data = quote(d)), args))
      got <- withCallingHandlers(lmm_frame(f, d, mc, environment()),
                                 warning = function(w) invokeRestart("muffleWarning"))
      ref <- suppressWarnings(do.call(reference, c(list(f, d), args)))
      expect_identical(got, ref)
      expect_identical(names(attributes(got)), names(attributes(ref)))
      for (nm in names(ref)) {
        expect_identical(names(attributes(got[[nm]])), names(attributes(ref[[nm]])))
      }
    }
  }
  mc <- quote(lmm(formula = y ~ fc + g, data = d, subset = fa != "lo"))
  expect_warning(lmm_frame(y ~ fc + g, d, mc, environment()),
                 "contrasts dropped from factor fc due to missing levels")
  expect_true(has_unused_levels(factor(c("a", NA), levels = c("a", "b"))))
  expect_false(has_unused_levels(factor(c("a", NA, "b"))))
  expect_false(has_unused_levels(factor(c(NA, NA), levels = character())))
  odd <- structure(c(1L, 3L), levels = c("a", "b"), class = "factor")
  expect_identical(has_unused_levels(odd),
                   length(unique(odd[!is.na(odd)])) < length(levels(odd)))
})

test_that("bars become sums as the call-by-call rewrite makes them", {
  by_call <- function(expr) {
    if (!is.call(expr)) return(expr)
    if (is_bar(expr)) expr[[1L]] <- as.name("+")
    for (i in seq_along(expr)[-1L]) {
      if (is.call(expr[[i]])) expr[[i]] <- by_call(expr[[i]])
    }
    expr
  }
  exprs <- list(quote(x), quote(1 + (1 | plate) + (1 | sample)),
                quote(x + (x || g) + log(z) + (0 + z | a:b)),
                quote(a + (1 | g/h) - 1), quote((f(`|`, a) | g)),
                quote(1 | g), quote(x * z + ((x | g))), quote(y ~ x + (1 | g)))
  for (x in exprs) expect_identical(bars_to_sums(x), by_call(x))
})

test_that("a clearly full-rank X skips the QR with the same result", {
  clearly <- function(X, tol) {
    clearly_full_rank(fixed_matrix_checks_rs(X)$min_cosine_eigenvalue, tol)
  }
  set.seed(5)
  n <- 200
  X <- cbind(1, x = rnorm(n), z = runif(n), k = rpois(n, 3))
  expect_true(clearly(X, 1e-7))
  expect_identical(qr(X, tol = 1e-7, LAPACK = FALSE)$rank, 4L)
  expect_identical(drop_deficient_columns(X, "message+drop.cols"), X)
  # nearly collinear, zero and exactly collinear columns go to the QR
  near <- cbind(X, w = X[, "x"] + 1e-5 * rnorm(n))
  expect_false(clearly(near, 1e-7))
  expect_identical(qr(near, tol = 1e-7, LAPACK = FALSE)$rank, 5L)
  expect_identical(drop_deficient_columns(near, "message+drop.cols"), near)
  expect_false(clearly(cbind(X, 0), 1e-7))
  collinear <- cbind(X, v = 2 * X[, "x"] - X[, "z"])
  expect_false(clearly(collinear, 1e-7))
  expect_message(out <- drop_deficient_columns(collinear, "message+drop.cols"),
                 "dropping 1 column")
  expect_identical(colnames(out), colnames(X))
  expect_true(clearly(matrix(3, 5, 1), 1e-7))
  # the decision as R's eigen() of the cosine matrix would make it
  by_r <- function(X, tol) {
    len <- sqrt(colSums(X^2))
    if (any(len == 0)) return(FALSE)
    ev <- eigen(crossprod(X) / tcrossprod(len), symmetric = TRUE, only.values = TRUE)$values
    min(ev) > max(1e-6, (1000 * tol)^2)
  }
  for (M in list(X, near, cbind(X, 0), collinear, matrix(3, 5, 1),
                 cbind(X, w = X[, "x"] + 1e-2 * rnorm(n)))) {
    expect_identical(clearly(M, 1e-7), by_r(M, 1e-7))
  }
})

test_that("the scale check finds the same continuous columns as a full scan", {
  reference <- function(X, tol = 1000) {
    continuous <- apply(X, 2L, function(z) !all(z %in% c(0, 1)))
    log_sd <- log(apply(X[, continuous, drop = FALSE], 2L, stats::sd))
    spread <- c(abs(log_sd), abs(outer(log_sd, log_sd, "-")))
    any(spread > log(tol), na.rm = TRUE)
  }
  set.seed(8)
  for (n in c(5L, 100L, 101L, 500L)) {
    late <- c(rep(c(0, 1), length.out = n - 1L), 1e4)
    X <- cbind(1, d = rbinom(n, 1, 0.5), late = late, big = rnorm(n, sd = 1e5),
               small = rnorm(n))
    for (cols in list(1:2, c(1, 3), c(1, 2, 5), c(1, 4, 5), 1:5, 3)) {
      Xc <- X[, cols, drop = FALSE]
      warned <- FALSE
      msg <- withCallingHandlers(
        report_scale(fixed_matrix_checks_rs(Xc)$log_sd, "warning"),
        warning = function(w) {
          warned <<- TRUE
          invokeRestart("muffleWarning")
        })
      expect_identical(warned, reference(Xc))
      expect_identical(length(msg), as.integer(warned))
    }
  }
})

test_that("the checks of X in Rust agree with R's crossprod(), is.finite() and sd()", {
  set.seed(12)
  n <- 300
  X <- cbind(1, d = rbinom(n, 1, 0.3), x = rnorm(n, 5, 3), k = rpois(n, 4))
  checks <- fixed_matrix_checks_rs(X)
  expect_identical(checks$finite, rep(TRUE, 4))
  expect_equal(checks$crossprod, unname(crossprod(X)), tolerance = 1e-14)
  expect_identical(is.na(checks$log_sd), c(TRUE, TRUE, FALSE, FALSE))
  expect_equal(checks$log_sd[3:4], log(apply(X[, 3:4], 2, stats::sd)), tolerance = 1e-13,
               ignore_attr = TRUE)
  # the smallest eigenvalue of the columns' cosine matrix, as R's eigen() gives it
  cosine <- function(X) crossprod(X) / tcrossprod(sqrt(colSums(X^2)))
  smallest <- function(X) min(eigen(cosine(X), symmetric = TRUE, only.values = TRUE)$values)
  expect_equal(checks$min_cosine_eigenvalue, smallest(X), tolerance = 1e-12)
  near <- cbind(X, w = X[, "x"] + 1e-3 * rnorm(n))
  # (an eigenvalue's error is absolute, rounding times the matrix's norm)
  expect_lt(abs(fixed_matrix_checks_rs(near)$min_cosine_eigenvalue - smallest(near)), 1e-14)
  expect_true(is.na(fixed_matrix_checks_rs(cbind(X, 0))$min_cosine_eigenvalue))
  X[7, 3] <- NA
  X[9, 4] <- Inf
  checks <- fixed_matrix_checks_rs(X)
  expect_identical(checks$finite, c(TRUE, TRUE, FALSE, FALSE))
  expect_true(all(is.nan(checks$crossprod)))
  expect_true(is.na(checks$min_cosine_eigenvalue))
})

test_that("the fixed-effects matrix carries lme4's attributes in lme4's order", {
  skip_if_not_installed("lme4")
  d <- fast_data()
  d$fa <- factor(sample(c("lo", "mid", "hi"), nrow(d), replace = TRUE))
  d$x2 <- 2 * d$x
  d$big <- d$x * 1e5
  forms <- list(
    y ~ x + fa + (1 | g),            # filled in Rust
    y ~ x * fa + (1 | g),            # model.matrix()
    y ~ x + x2 + fa + (1 | g),       # a column dropped
    y ~ big + x2 + x + (1 | g)       # a column dropped and the scales reported
  )
  for (f in forms) {
    ours <- suppressWarnings(suppressMessages(call_inputs(f, d)))$X
    ref <- suppressWarnings(suppressMessages(lme4::lFormula(f, d)))$X
    expect_identical(names(attributes(ours)), names(attributes(ref)), info = deparse(f))
    expect_identical(attributes(ours), attributes(ref), info = deparse(f))
    expect_identical(unclass(ours)[, ], unclass(ref)[, ], info = deparse(f))
  }
})

# Data with a column of every type the direct model frame takes, and others.
plain_data <- function(n = 48, seed = 5) {
  set.seed(seed)
  d <- data.frame(
    y = rnorm(n, 5),
    x = runif(n),
    k = sample.int(5L, n, replace = TRUE),
    lg = sample(c(TRUE, FALSE), n, replace = TRUE),
    s = sample(c("b", "a", "c"), n, replace = TRUE),
    g = factor(sample(sprintf("g%d", 1:6), n, replace = TRUE)),
    h = sample(c(3L, 9L, 1L, 12L), n, replace = TRUE),
    o = ordered(sample(c("lo", "mid", "hi"), n, replace = TRUE), c("lo", "mid", "hi")),
    u = factor(sample(c("p", "q"), n, replace = TRUE), levels = c("p", "q", "unused")),
    succ = sample.int(4L, n, replace = TRUE),
    stringsAsFactors = FALSE
  )
  d$m <- cbind(a = d$x, b = d$y)   # a numeric matrix column
  d$lm <- cbind(d$lg, !d$lg)       # a logical one
  d$sc <- scale(d$x)               # a column with attributes: model.frame()'s route
  d
}

test_that("the model frame built from the columns is model.frame()'s", {
  d <- plain_data()
  d_names <- d
  rownames(d_names) <- paste0("row", seq_len(nrow(d)))
  forms <- list(
    y ~ x + (1 | g), y ~ x + k + lg + s + (x | g), y ~ o + u + (1 | h),
    y ~ x * s + (1 + x | g) + (1 | s), y ~ 0 + k + (0 + x | g:s), y ~ 1 + (1 | g),
    y ~ log(x) + (1 | g), y ~ m + (1 | g), y ~ sc + (1 | g), y ~ x + offset(k) + (1 | g),
    y ~ poly(x, 2) + (1 | g), y ~ I(k^2) + (1 | g), y ~ x + (k || g)
  )
  direct <- 0L
  for (data in list(d, d_names)) {
    for (f in forms) {
      parsed <- parse_lmm_formula(f)
      simple <- simple_model_frame(parsed$frame_formula, data)
      if (!is.null(simple)) {
        direct <- direct + 1L
        reference <- drop_unused_levels(stats::model.frame(parsed$frame_formula, data))
        expect_identical(simple, reference, info = deparse(f))
        # identical() takes attributes as a set: their order too
        expect_identical(names(attributes(simple)), names(attributes(reference)))
        expect_identical(names(attributes(attr(simple, "terms"))),
                         names(attributes(attr(reference, "terms"))))
      }
      # The whole inputs as lmm() and glmm() see them, against those of the
      # general route (which an explicit na.action takes).
      fast <- suppressWarnings(suppressMessages(call_inputs(f, data)))
      general <- suppressWarnings(suppressMessages(call_inputs(f, data, na.action = na.omit)))
      expect_identical(fast, general, info = deparse(f))
    }
  }
  # The forms of plain columns, pure functions of them and matrix columns
  # (the first eight and the last; `||` is expanded into plain bars) take
  # the direct route; a column with attributes (scale()), offset(), poly()
  # and I() do not.
  expect_identical(direct, 18L)
  # a logical matrix (which model.matrix() cannot take) in the frame alone
  expect_identical(simple_model_frame(y ~ lm + g, d),
                   drop_unused_levels(stats::model.frame(y ~ lm + g, d)))
  control <- as_fit_control(default_control("glmm"), "glmm")
  for (f in list(cbind(succ, 4L - succ) ~ x + s + (1 | g),
                 cbind(succ, 4L - succ) ~ log(x) + sqrt(k) + (1 | g))) {
    parsed <- parse_lmm_formula(f)
    expect_false(is.null(simple_model_frame(parsed$frame_formula, d)))
    mc_fast <- bquote(glmm(formula = .(f), data = d, family = binomial))
    mc_general <- bquote(glmm(formula = .(f), data = d, family = binomial, na.action = na.omit))
    expect_identical(lmm_inputs(mc_fast, environment(), control, family = stats::binomial()),
                     lmm_inputs(mc_general, environment(), control, family = stats::binomial()),
                     info = deparse(f))
  }
})

test_that("calls the direct model frame cannot take are left to model.frame()", {
  d <- plain_data()
  tot <- 4L
  nope <- function(x) stop("not evaluated")
  for (f in list(y ~ log(x - 0.5) + g,        # warns (NaN): model.frame() warns
                 y ~ log(s) + g,              # fails: model.frame() says why
                 cbind(succ, tot - succ) ~ g, # a variable outside the data
                 y ~ nope(x) + g)) {          # a function not known to be pure
    expect_null(suppressWarnings(simple_model_frame(f, d)), info = deparse(f))
  }
  expect_error(call_inputs(y ~ log(s) + (1 | g), d), "could not build the model frame")
})

test_that("the direct model frame leaves data with missing values or unused levels to model.frame()", {
  d <- plain_data()
  d$x[4] <- NA
  f <- y ~ x + u + (1 | g)
  expect_null(simple_model_frame(y ~ x + u + g, d))
  expect_identical(call_inputs(f, d), call_inputs(f, d, na.action = na.omit))
  expect_identical(nrow(call_inputs(f, d)$frame), nrow(d) - 1L)
  d <- plain_data()
  frame <- simple_model_frame(y ~ x + u + g, d)
  expect_identical(levels(frame$u), c("p", "q"))
  expect_identical(levels(d$u), c("p", "q", "unused"))
  # a factor with contrasts of its own keeps model.frame()'s warning
  contrasts(d$u) <- contr.sum(3)
  expect_null(simple_model_frame(y ~ u + g, d))
})

test_that("common formulas are read in one walk exactly as the general reader reads them", {
  forms <- list(
    y ~ x + (1 | g), y ~ (1 | g), y ~ (1 | g) + x, y ~ x + (x | g) + z,
    y ~ 0 + x + (1 | g) + (0 + x | h), y ~ x * z + (1 + x | g:h),
    y ~ x - 1 + (1 | g) + (1 | h), y ~ log(x) + (poly(x, 2) | g) + I(z^2),
    y ~ 1 + (1 | g), y ~ -1 + (1 | g), y ~ (1 | g) + (1 | h) + (x | g),
    cbind(a, b - a) ~ period + (1 | herd), y ~ x + (1 | g) + offset(o),
    y ~ (x + z | g) + x:z
  )
  for (f in forms) {
    simple <- parse_simple_formula(f)
    expect_false(is.null(simple), info = deparse(f))
    expect_identical(simple, parse_any_formula(f), info = deparse(f))
  }
  others <- list(y ~ x + (1 || g), y ~ x + (1 | a/b), y ~ cs(1 + x | g), y ~ x + 1 | g,
                 y ~ x - (1 | g), y ~ x, y ~ (1 | g) * x, y ~ x + ((1 | g)))
  for (f in others) expect_null(parse_simple_formula(f), info = deparse(f))
})

test_that("terms' labels pasted together are their deparsed text", {
  bars <- list(quote(1 | g), quote(x | g), quote(1 + x | g), quote(0 + x | g),
               quote(1L | g), quote(x | g:h), quote(`my x` | g), quote(x | `if`),
               quote(poly(x, 2) | g), quote(0 + x + z | g), quote(x + 1 | g),
               quote(2 | g), quote(-1 + x | g), quote(.x | g), quote(x.1_a | g),
               quote(TRUE | g), quote(`1x` | g), quote(x | (g)))
  for (b in bars) expect_identical(bar_label(b), deparse1(b), info = deparse1(b))
})

test_that("the parts' variables of a frame whose predvars are its variables are those picked out of them", {
  d <- plain_data()
  forms <- list(y ~ x + k + (x | g), y ~ 1 + (1 | g) + (0 + k | s), y ~ s + (1 | h),
                cbind(succ, 4L - succ) ~ log(x) + s + (1 | g),
                log(y) ~ sqrt(k) * x + (log(x) | g) + (1 | s))
  for (f in forms) {
    parsed <- parse_lmm_formula(f)
    frame <- stats::model.frame(parsed$frame_formula, d)
    trms <- attr(frame, "terms")
    random_formula <- with_rhs(f, Reduce(function(a, b) call("+", a, b),
                                         lapply(parsed$bars, bars_to_sums)))
    wanted <- list(fixed = as.list(attr(stats::terms(parsed$fixed_formula), "variables"))[-1L],
                   random = formula_variables(random_formula), extras = "(weights)")
    simple <- simple_part_variables(trms, wanted, names(frame))
    expect_false(is.null(simple))
    expect_identical(simple, part_variables(trms, wanted), info = deparse(f))
  }
  # predvars other than the variables (poly()'s coefficients): the general route
  frame <- stats::model.frame(y ~ poly(x, 2) + g, d)
  expect_null(simple_part_variables(attr(frame, "terms"),
                                    list(fixed = list(quote(y), quote(poly(x, 2))),
                                         random = list(quote(y), quote(g))), names(frame)))
  # a call of a part that is not one of the frame's variables: the general route
  frame <- stats::model.frame(y ~ log(x) + g, d)
  expect_null(simple_part_variables(attr(frame, "terms"),
                                    list(fixed = list(quote(y), quote(exp(x))),
                                         random = list(quote(y), quote(g))), names(frame)))
})

test_that("a formula terms() rejects gets model.frame()'s error through either route", {
  d <- plain_data()
  expect_null(simple_model_frame(y ~ (x + k)^x + g, d))
  expect_error(call_inputs(y ~ (x + k)^x + (1 | g), d), "could not build the model frame")
})

test_that("the random part's variables are those terms() lists", {
  forms <- list(
    y ~ x + (1 | g), y ~ (x | g) + (1 | h), y ~ (1 + x + z | g:h) + (0 + z | g),
    y ~ (x | g) + (y | x), y ~ (z:x | g), y ~ (g | g), cbind(a, b) ~ (1 | g),
    y ~ (log(x) | g), y ~ (1 | a/b), y ~ (-1 + x | g), y ~ (x || g), y ~ cs(x | g),
    log(y) ~ (1 | g), y ~ (poly(x, 2) | g), cbind(a, n - a) ~ (1 | g) + (1 | a),
    cbind(a, n - a) ~ (x | g:h), sqrt(y + 1) ~ (1 | g), (y) ~ (1 | g), I(y) ~ (1 | g)
  )
  for (f in forms) {
    parsed <- parse_lmm_formula(f)
    random_rhs <- Reduce(function(a, b) call("+", a, b), lapply(parsed$bars, bars_to_sums))
    expect_identical(random_part_variables(parsed),
                     formula_variables(with_rhs(f, random_rhs)), info = deparse(f))
  }
})

test_that("random formulas give the same inputs by the direct route and the general one", {
  set.seed(20261206)
  n <- 60
  fixed_terms <- c("a", "b", "k", "lg", "s", "f", "o", "log(a)", "sqrt(b + 1)", "a:c", "a*s",
                   "I(c^2)", "poly(c, 2)", "exp(c/10)", "abs(c)", "0", "-1")
  lhs_terms <- c("1", "a", "1 + a", "0 + c", "a + c", "0 + k", "log(a)")
  groups <- c("g", "h", "s", "g:s", "f", "g/h")
  control <- as_fit_control(default_control("glmm"), "glmm")
  family <- stats::binomial()
  direct <- 0L
  for (it in 1:120) {
    d <- data.frame(
      y = rnorm(n, 10), a = runif(n, 1, 2), b = rpois(n, 3), c = rnorm(n),
      k = sample.int(4L, n, TRUE), lg = sample(c(TRUE, FALSE), n, TRUE),
      s = sample(c("u", "v", "w"), n, TRUE),
      f = factor(sample(letters[1:5], n, TRUE), levels = letters[1:6]),
      o = ordered(sample(1:3, n, TRUE)), g = factor(sample(sprintf("G%02d", 1:10), n, TRUE)),
      h = sample(c(5L, 2L, 9L), n, TRUE), succ = rbinom(n, 6, 0.4), stringsAsFactors = FALSE)
    if (it %% 3 == 0) rownames(d) <- paste0("r", sample(1e5, n))
    if (it %% 5 == 0) d$a[sample(n, 2)] <- NA
    fixed <- paste(sample(fixed_terms, sample(0:3, 1)), collapse = " + ")
    bars <- vapply(seq_len(sample(1:2, 1)), function(i) {
      sprintf("(%s %s %s)", sample(lhs_terms, 1), sample(c("|", "|", "||"), 1), sample(groups, 1))
    }, "")
    rhs <- paste(c(if (nzchar(fixed)) fixed, bars), collapse = " + ")
    f <- stats::as.formula(paste(sample(c("y", "log(y)"), 1), "~", rhs))
    parsed <- parse_lmm_formula(f)
    if (!is.null(simple_model_frame(parsed$frame_formula, d))) direct <- direct + 1L
    quietly <- function(expr) tryCatch(suppressWarnings(suppressMessages(expr)),
                                       error = function(e) conditionMessage(e))
    expect_identical(quietly(call_inputs(f, d)), quietly(call_inputs(f, d, na.action = na.omit)),
                     info = deparse(f))
    fg <- stats::as.formula(paste("cbind(succ, 6L - succ) ~", rhs))
    mc_fast <- bquote(glmm(formula = .(fg), data = d, family = binomial))
    mc_general <- bquote(glmm(formula = .(fg), data = d, family = binomial, na.action = na.omit))
    expect_identical(quietly(lmm_inputs(mc_fast, environment(), control, family = family)),
                     quietly(lmm_inputs(mc_general, environment(), control, family = family)),
                     info = deparse(fg))
  }
  # most of them take the direct route (a column with missing values, poly() and I() do not)
  expect_gt(direct, 60L)
})
