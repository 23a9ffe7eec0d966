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
# times z_k: the check costs one pass over the rows per column checked, and
# only terms whose factor has at most ncol(X) levels are checked.
# Each column b is tested with X's columns scaled to length 1 (cosine
# matrix C, Cholesky factor R): what is left of b outside span(X), relative
# to its squared length, is 1 - |R^-T X's'b|^2 / b'b; below `tol` = 1e-9 (a
# residual length of 3e-5 of b's) it counts as 0. Exact repetition leaves
# rounding errors of the order of C's condition number times 1e-16 there,
# and a column that X does not repeat leaves far more.

# The messages (one per term with such columns, empty when none) for
# the fit of `reterms` with fixed-effects matrix `X` and cross-product `XtX`.
confounded_term_messages <- function(reterms, X, XtX = crossprod(X), tol = 1e-9) {
  p <- ncol(X)
  # (A term whose factor has more levels than X has columns is not checked,
  # although one whose z_k is 0 in all but ncol(X) levels could repeat X:
  # telling which are would take a pass over the rows for every term.)
  candidates <- Filter(function(t) nlevels(t$factor) <= p, reterms)
  if (p == 0L || !length(candidates)) return(character())
  len <- sqrt(diag(XtX))
  R <- if (all(is.finite(len) & len > 0)) {
    tryCatch(chol(XtX / outer(len, len)), error = function(e) NULL)
  }
  if (is.null(R)) return(character())
  out <- character()
  for (t in candidates) {
    confounded <- vapply(seq_len(ncol(t$Z)), function(k) {
      z <- t$Z[, k]
      bb <- rowsum(z * z, t$factor, reorder = FALSE)[, 1L]
      used <- bb > 0
      if (!any(used) || sum(used) > p) return(FALSE)
      Xb <- rowsum(X * z, t$factor, reorder = FALSE)[used, , drop = FALSE]
      projected <- backsolve(R, t(Xb) / len, transpose = TRUE)
      all(1 - colSums(projected^2) / bb[used] < tol)
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

# Reports confounded_term_messages() of an LMM fitted by REML from `inputs`
# (lmm_inputs()), each by the action of check.conv.hess.
report_confounded_terms <- function(inputs, REML, control) {
  if (!REML || is.null(control$check.conv.hess)) return(invisible(NULL))
  for (m in confounded_term_messages(inputs$reterms, inputs$X)) {
    signal_check(control$check.conv.hess, m)
  }
  invisible(NULL)
}
