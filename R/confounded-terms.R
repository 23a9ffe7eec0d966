# Random effects that repeat fixed effects. When every column of a term's
# block B_k (the level indicators of its grouping factor times its k-th
# column z_k) lies in the column space of X, the fixed effects absorb those
# random effects: REML's criterion, which depends on y only through its part
# orthogonal to X, does not depend on their variance at all (nor on their
# covariances with the term's other columns), so the value the optimizer
# stops at is arbitrary. (ML's criterion rises with that variance, which
# goes to 0: a singular fit, already reported.) lme4 meets this flat
# direction as a degenerate Hessian or a failed gradient check, and says
# nothing when its finite differences miss it; here it is told by name.
#
# B_k's columns have disjoint supports, so B_k'B_k is diagonal (the
# levels' sums of z_k^2) and X'B_k is the levels' sums of the rows of X
# times z_k: from the rows, the check costs one pass over them per column
# checked; from grouped sums (a database table) both are among the sums.
# Only terms whose factor has at most ncol(X) levels are checked.
# Each column b is tested with X's columns scaled to length 1 (cosine
# matrix C, Cholesky factor R): what is left of b outside span(X), relative
# to its squared length, is 1 - |R^-T X's'b|^2 / b'b; below `tol` = 1e-9 (a
# residual length of 3e-5 of b's) it counts as 0. Exact repetition leaves
# rounding errors of the order of C's condition number times 1e-16 there,
# and a column that X does not repeat leaves far more.

# The messages (one per term with such columns, empty when none) for the
# terms `reterms` of a fit whose `p` fixed effects have cross-product `XtX`
# (evaluated only when some term is checked);
# `level_sums(i, k)` gives, for column k of term i, `bb` (per level, the sum
# of z_k^2) and `Xb` (levels x ncol(X), the sums of X's rows times z_k), in
# the same order of levels, from the rows or from grouped sums.
confounded_term_messages <- function(reterms, p, XtX, level_sums, tol = 1e-9) {
  # (A term whose factor has more levels than X has columns is not checked,
  # although one whose z_k is 0 in all but ncol(X) levels could repeat X:
  # telling which are would take a pass over the rows for every term.)
  candidates <- which(vapply(reterms, function(t) nlevels(t$factor) <= p, NA))
  if (p == 0L || !length(candidates)) return(character())
  len <- sqrt(diag(XtX))
  R <- if (all(is.finite(len) & len > 0)) {
    tryCatch(chol(XtX / outer(len, len)), error = function(e) NULL)
  }
  if (is.null(R)) return(character())
  out <- character()
  for (i in candidates) {
    t <- reterms[[i]]
    confounded <- vapply(seq_along(t$cnms), function(k) {
      sums <- level_sums(i, k)
      used <- sums$bb > 0
      if (!any(used) || sum(used) > p) return(FALSE)
      Xb <- sums$Xb[used, , drop = FALSE]
      projected <- backsolve(R, t(Xb) / len, transpose = TRUE)
      all(1 - colSums(projected^2) / sums$bb[used] < tol)
    }, logical(1))
    if (any(confounded)) {
      cols <- t$cnms[confounded]
      out <- c(out, sprintf(paste0(
        "the random effects of %s in term (%s) repeat the fixed effects (each level's ",
        "column lies in the space of X's columns), so the REML criterion does not depend ",
        "on their variance: its estimate is arbitrary, not identified by the data. ",
        "Remove the term or the fixed effects it repeats (with REML = FALSE that ",
        "variance goes to 0)"),
        if (identical(cols, "(Intercept)")) "the intercept" else
          paste0(ngettext(length(cols), "column ", "columns "), quote_names(cols)),
        t$term))
    }
  }
  out
}

# level_sums() of confounded_term_messages() from the rows: the model's
# `reterms` (each with its factor and Z) and X.
row_level_sums <- function(reterms, X) {
  function(i, k) {
    t <- reterms[[i]]
    z <- t$Z[, k]
    list(bb = rowsum(z * z, t$factor, reorder = FALSE)[, 1L],
         Xb = rowsum(X * z, t$factor, reorder = FALSE))
  }
}

# level_sums() of confounded_term_messages() from grouped sums (lmm_sums_fit()'s
# `inputs$sums`): a factor's columns are its terms' columns in term order;
# its `zz` holds per level sum(w z z'), its `fz` per level sum(w f z'), with
# f = (X shifted, y) (the shifts only where X has an intercept, so that the
# shifted X spans the same space).
sums_level_sums <- function(inputs) {
  sums <- inputs$sums
  p <- sums$p
  assign <- attr(inputs$flist, "assign")
  offsets <- vapply(seq_along(inputs$reterms), function(i) {
    before <- seq_len(i - 1L)
    sum(lengths(lapply(inputs$reterms[before[assign[before] == assign[i]]], `[[`, "cnms")))
  }, 0)
  function(i, k) {
    f <- sums$factors[[assign[i]]]
    col <- offsets[i] + k
    zz <- array(f$zz, c(f$q, f$q, f$n_levels))
    fz <- array(f$fz, c(p + 1L, f$q, f$n_levels))
    list(bb = zz[col, col, ],
         Xb = matrix(t(matrix(fz[seq_len(p), col, , drop = FALSE], p)), f$n_levels))
  }
}

# Reports confounded_term_messages() of an LMM fitted by REML from `inputs`
# (lmm_inputs()'s rows or lmm_sums_fit()'s sums), each by the action of
# check.conv.hess.
report_confounded_terms <- function(inputs, REML, control) {
  if (!REML || is.null(control$check.conv.hess)) return(invisible(NULL))
  messages <- if (is.null(inputs$sums)) {
    confounded_term_messages(inputs$reterms, ncol(inputs$X), crossprod(inputs$X),
                             row_level_sums(inputs$reterms, inputs$X))
  } else {
    p <- inputs$sums$p
    confounded_term_messages(inputs$reterms, p,
                             matrix(inputs$sums$ff, p + 1L)[seq_len(p), seq_len(p), drop = FALSE],
                             sums_level_sums(inputs))
  }
  for (m in messages) signal_check(control$check.conv.hess, m)
  invisible(NULL)
}
