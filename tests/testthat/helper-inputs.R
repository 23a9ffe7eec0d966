# Helpers shared by the formula and model-frame tests: they run lmm_inputs()
# as lmm() does and compare its result with lme4::lFormula().

# Calls lmm_inputs() with a matched call built as lmm() builds it.
call_inputs <- function(formula, data = NULL, ..., control = lmmControl()) {
  mc <- match.call()
  mc[[1L]] <- quote(lmm)
  lmm_inputs(mc, parent.frame(), control)
}

# Dense n x (levels * q) matrix of a term, laid out as lme4's t(Zt):
# column (level - 1) * q + k holds column k of Z for the rows of that level.
expand_term <- function(rt) {
  n <- length(rt$factor)
  q <- ncol(rt$Z)
  out <- matrix(0, n, nlevels(rt$factor) * q)
  base <- (as.integer(rt$factor) - 1L) * q
  for (k in seq_len(q)) out[cbind(seq_len(n), base + k)] <- rt$Z[, k]
  out
}

# Every part of lmm_inputs() that lme4::lFormula() also produces must agree.
expect_lme4_parity <- function(inp, lf) {
  n <- nrow(lf$fr)
  expect_identical(nrow(inp$frame), n)
  expect_identical(length(inp$y), n)
  expect_equal(inp$y, unname(as.double(stats::model.response(lf$fr))),
               tolerance = 1e-12)
  expect_identical(colnames(inp$X), colnames(lf$X))
  expect_equal(unname(inp$X[, ]), unname(lf$X[, ]), tolerance = 1e-12)
  expect_identical(attr(inp$X, "assign"), attr(lf$X, "assign"))
  expect_identical(attr(inp$X, "contrasts"), attr(lf$X, "contrasts"))
  expect_identical(attr(inp$X, "col.dropped"), attr(lf$X, "col.dropped"))
  rt <- lf$reTrms
  expect_identical(vapply(inp$reterms, `[[`, "", "term"), names(rt$Ztlist))
  expect_identical(vapply(inp$reterms, `[[`, "", "group"), names(rt$cnms))
  expect_identical(lapply(inp$reterms, `[[`, "cnms"), unname(rt$cnms))
  for (i in seq_along(inp$reterms)) {
    term <- inp$reterms[[i]]
    expect_identical(length(term$factor), n)
    expect_identical(colnames(term$Z), term$cnms)
    expect_true(is.double(term$Z))
    zt <- methods::as(Matrix::t(rt$Ztlist[[i]]), "matrix")
    expect_equal(expand_term(term), unname(zt), tolerance = 1e-12)
  }
  expect_identical(names(inp$flist), names(rt$flist))
  expect_identical(lapply(inp$flist, levels), lapply(rt$flist, levels))
  expect_identical(lapply(inp$flist, as.integer), lapply(rt$flist, as.integer))
  expect_identical(attr(inp$flist, "assign"), attr(rt$flist, "assign"))
  for (i in seq_along(inp$reterms)) {
    expect_identical(inp$reterms[[i]]$factor,
                     inp$flist[[attr(inp$flist, "assign")[i]]])
  }
  w <- stats::model.weights(lf$fr)
  if (is.null(w)) expect_null(inp$weights) else
    expect_equal(inp$weights, unname(as.double(w)), tolerance = 1e-12)
  off <- stats::model.offset(lf$fr)
  if (is.null(off)) expect_null(inp$offset) else
    expect_equal(inp$offset, unname(as.double(off)), tolerance = 1e-12)
}
