# Reference "sums" for the SQL front end, formed in R from the same rows:
# lmm_inputs() (the in-memory path of lmm()) on the pulled data frame gives
# X, y, weights, offset, Z and the grouping factors; the sums are then
# crossprod()/rowsum() of the shifted columns, with the shifts the SQL side
# reports (any constants give an equivalent model; the test checks they are
# the means separately). Alongside each sum, the same sum of absolute values,
# the scale of its rounding error.

# lmm_inputs() of lmm(formula, data, ...) with the extra arguments given as
# expressions (weights = quote(w), ...).
sql_ref_inputs <- function(formula, data, ...) {
  args <- list(...)
  args <- args[!vapply(args, is.null, TRUE)]
  mc <- as.call(c(list(quote(lmm), formula = formula, data = quote(.ref_data)), args))
  env <- new.env()
  env$.ref_data <- data
  mixedrs:::lmm_inputs(mc, env, lmmControl())
}

sql_ref_sums <- function(ri, x_shift, y_shift) {
  X <- ri$X
  n <- nrow(X)
  w <- if (is.null(ri$weights)) rep(1, n) else ri$weights
  off <- if (is.null(ri$offset)) 0 else ri$offset
  F <- cbind(sweep(X, 2L, x_shift), ri$y - off - y_shift)
  both <- function(f) list(value = f(identity), abs = f(abs))
  ff <- both(function(g) crossprod(g(F), g(F) * w))
  assign <- attr(ri$flist, "assign")
  Zs <- lapply(seq_along(ri$flist), function(k) {
    terms <- ri$reterms[assign == k]
    list(Z = do.call(cbind, lapply(terms, `[[`, "Z")),
         codes = as.integer(terms[[1L]]$factor), L = nlevels(terms[[1L]]$factor))
  })
  # per level l: the A x B matrix sum w a b' (column-major), level-major
  blocks <- function(A, B, codes, L, g) {
    out <- matrix(0, L, ncol(A) * ncol(B))
    for (b in seq_len(ncol(B))) for (a in seq_len(ncol(A))) {
      rs <- rowsum(w * g(A[, a]) * g(B[, b]), codes, reorder = TRUE)
      out[as.integer(rownames(rs)), (b - 1L) * ncol(A) + a] <- rs
    }
    out
  }
  factors <- lapply(Zs, function(z) {
    list(n_levels = z$L, q = ncol(z$Z),
         zz = both(function(g) as.vector(t(blocks(z$Z, z$Z, z$codes, z$L, g)))),
         fz = both(function(g) as.vector(t(blocks(F, z$Z, z$codes, z$L, g)))))
  })
  pairs <- list()
  for (i in seq_along(Zs)) for (j in seq_along(Zs)) {
    if (j <= i) next
    zi <- Zs[[i]]
    zj <- Zs[[j]]
    key <- (zi$codes - 1) * zj$L + zj$codes
    ukey <- sort(unique(key))
    codes <- match(key, ukey)
    pairs[[length(pairs) + 1L]] <- list(
      i = i, j = j, li = as.integer((ukey - 1) %/% zj$L + 1),
      lj = as.integer((ukey - 1) %% zj$L + 1),
      zz = both(function(g) as.vector(t(blocks(zi$Z, zj$Z, codes, length(ukey), g)))))
  }
  list(n = n, sum_log_w = sum(log(w)), p = ncol(X), ff = ff, factors = factors,
       pairs = pairs)
}

# Elementwise: |got - want| <= tol * (|want| + sum of absolute values).
expect_sums_close <- function(got, ref, tol = 1e-10, what = "") {
  err <- abs(as.vector(got) - as.vector(ref$value))
  scale <- abs(as.vector(ref$value)) + as.vector(ref$abs)
  testthat::expect_equal(length(got), length(ref$value), label = paste(what, "length"))
  worst <- max(c(0, err / pmax(scale, .Machine$double.xmin)))
  testthat::expect_lt(worst, tol, label = paste(what, "largest relative error"))
}

# Compares SQL inputs `inp` with the in-memory lmm_inputs() `ri`: metadata
# identical, sums within 1e-10 of the reference sums.
expect_sql_inputs_match <- function(inp, ri) {
  testthat::expect_identical(inp$X_names, colnames(ri$X))
  testthat::expect_identical(inp$X_assign, attr(ri$X, "assign"))
  testthat::expect_identical(inp$X_contrasts, attr(ri$X, "contrasts"))
  testthat::expect_identical(inp$n, as.double(nrow(ri$X)))
  testthat::expect_identical(inp$n_dropped, as.double(length(ri$na.action)))
  testthat::expect_identical(length(inp$reterms), length(ri$reterms))
  for (k in seq_along(ri$reterms)) {
    a <- inp$reterms[[k]]
    b <- ri$reterms[[k]]
    testthat::expect_identical(a$group, b$group)
    testthat::expect_identical(a$term, b$term)
    testthat::expect_identical(a$cnms, b$cnms)
    testthat::expect_identical(a$structure, b$structure)
    testthat::expect_identical(levels(a$factor), levels(b$factor))
    testthat::expect_length(a$factor, 0L)
  }
  testthat::expect_identical(names(inp$flist), names(ri$flist))
  testthat::expect_identical(attr(inp$flist, "assign"), attr(ri$flist, "assign"))
  testthat::expect_identical(lapply(inp$flist, levels), lapply(ri$flist, levels))
  ref <- sql_ref_sums(ri, inp$x_shift, inp$y_shift)
  s <- inp$sums
  testthat::expect_identical(s$p, ref$p)
  testthat::expect_identical(s$n, as.double(ref$n))
  testthat::expect_equal(s$sum_log_w, ref$sum_log_w, tolerance = 1e-12)
  expect_sums_close(s$ff, ref$ff, what = "ff")
  testthat::expect_identical(length(s$factors), length(ref$factors))
  for (k in seq_along(ref$factors)) {
    testthat::expect_identical(s$factors[[k]]$n_levels, ref$factors[[k]]$n_levels)
    testthat::expect_identical(s$factors[[k]]$q, ref$factors[[k]]$q)
    expect_sums_close(s$factors[[k]]$zz, ref$factors[[k]]$zz, what = paste("zz", k))
    expect_sums_close(s$factors[[k]]$fz, ref$factors[[k]]$fz, what = paste("fz", k))
  }
  testthat::expect_identical(length(s$pairs), length(ref$pairs))
  for (k in seq_along(ref$pairs)) {
    a <- s$pairs[[k]]
    b <- ref$pairs[[k]]
    testthat::expect_identical(c(a$i, a$j), c(b$i, b$j))
    # entries may come in any order: sort both by (li, lj)
    oa <- order(a$li, a$lj)
    testthat::expect_identical(a$li[oa], b$li)
    testthat::expect_identical(a$lj[oa], b$lj)
    qq <- length(a$zz) / length(a$li)
    za <- as.vector(matrix(a$zz, qq)[, oa])
    expect_sums_close(za, b$zz, what = paste("pair", k))
  }
  # the shifts are the means of the shifted columns over the rows used
  if ("(Intercept)" %in% colnames(ri$X)) {
    off <- if (is.null(ri$offset)) 0 else ri$offset
    testthat::expect_equal(inp$y_shift, mean(ri$y - off), tolerance = 1e-12)
  } else {
    testthat::expect_identical(inp$y_shift, 0)
  }
}

# An in-memory SQLite database with the math functions (log, exp, sqrt).
sql_test_con <- function() {
  con <- DBI::dbConnect(RSQLite::SQLite(), ":memory:")
  RSQLite::initExtension(con, "math")
  con
}

# sql_source() over a DBI connection.
sql_test_source <- function(con, table) {
  sql_source(function(sql) DBI::dbGetQuery(con, sql), table)
}
