# The fixed-effects checks of lmm() (check.rankX, check.scaleX) and the
# type III hypotheses of terms contained in others, for a model fitted from
# grouped sums, i.e. without the rows of X.
#
# Rank. lmm() drops columns by R's LINPACK pivoted QR (dqrdc2, tolerance
# 1e-7): columns are taken left to right, and a column is set aside when the
# norm of what is left of it after projection on the columns kept before it
# is below 1e-7 times its own norm. With G = X'X, that residual's squared
# norm is the Schur complement G_jj - G_jS G_SS^-1 G_Sj (S the kept columns
# before j), which a Cholesky factor of G_SS grown column by column gives; so
# the same columns are dropped from the cross-products alone. The residual of
# a column given the intercept does not change when the column is shifted by
# a constant, so it is computed from the shifted (precise) sums, and only the
# columns' own norms are unshifted. G is the unweighted X'X (sums$xx, or the
# X block of ff without prior weights); where the sums have no unweighted
# X'X and the fit has prior weights, the same rule runs on X'WX (the same
# columns in exact arithmetic, as W is positive definite; only columns within
# rounding of the tolerance may be decided differently).
#
# Scale. lmm() warns when the standard deviations of the columns that are
# not all 0/1 are far from 1 or from each other; the standard deviation of a
# column is sqrt((sum x_c^2 - (sum x_c)^2 / n) / (n - 1)) from the unweighted
# sums of its shifted values x_c, and whether it is all 0/1 is sums$x_binary.
#
# Type III with containment. contrasts_type3() builds the hypotheses from
# the model frame: they are the map from the over-parameterized coding of
# the terms to the fit's coding, with the parts in the span of containing
# terms projected out. For a full-rank X that map does not depend on the
# rows, so it is computed from a prototype frame: every combination of the
# levels of the fixed-effect factors, each with several rows of generic
# (pseudo-random, not collinear) values of the numeric variables.

# The unweighted cross-product of g = (1, x_1 - x_shift_1, ..., x_p -
# x_shift_p), a (p+1) x (p+1) matrix: sums$xx; without prior weights the X
# block of ff and, when X has an intercept, its sums (row 1); entries the
# sums cannot give are NA. NULL with prior weights and no sums$xx.
sums_plain_xx <- function(sums, has_weights, X_names) {
  p <- sums$p
  if (!is.null(sums$xx)) return(matrix(sums$xx, p + 1L, p + 1L))
  if (has_weights) return(NULL)
  ff <- matrix(sums$ff, p + 1L, p + 1L)
  xx <- matrix(NA_real_, p + 1L, p + 1L)
  xx[1L, 1L] <- sums$n
  idx <- seq_len(p)
  xx[idx + 1L, idx + 1L] <- ff[idx, idx]
  if (p && identical(X_names[1L], "(Intercept)")) {
    xx[1L, idx + 1L] <- ff[1L, idx]
    xx[idx + 1L, 1L] <- ff[idx, 1L]
  }
  xx
}

# The columns of X kept by the pivoted-QR rule (tolerance `tol`) from the
# Gram matrix G of the shifted columns and the squared norms `norm2` of the
# unshifted ones; at most `n` columns (the QR of an n-row matrix).
gram_pivot_keep <- function(G, norm2, n, tol = 1e-7) {
  p <- ncol(G)
  keep <- integer()
  R <- matrix(0, 0L, 0L)
  for (j in seq_len(p)) {
    if (length(keep) >= n) break
    r <- if (length(keep)) backsolve(R, G[keep, j], transpose = TRUE) else numeric()
    res2 <- G[j, j] - sum(r^2)
    ref <- if (norm2[j] > 0) norm2[j] else 1
    if (is.finite(res2) && res2 >= tol^2 * ref) {
      R <- rbind(cbind(R, r), c(rep(0, length(keep)), sqrt(res2)))
      keep <- c(keep, j)
    }
  }
  keep
}

# Drops the collinear fixed-effect columns of sums inputs as lmm() drops them
# from X (see the top of this file), reporting it per check.rankX `level`;
# the inputs (X_names, X_assign, x_shift, the sums' ff, fz, xx, x_binary)
# restricted to the kept columns, with X_attributes col.dropped and
# msgRankdrop as lmm()'s X carries them.
sums_drop_deficient <- function(inputs, level, tol = 1e-7) {
  sums <- inputs$sums
  p <- sums$p
  if (p == 0L) return(inputs)
  all_names <- inputs$X_names
  xx <- sums_plain_xx(sums, inputs$has_weights, all_names)
  idx <- seq_len(p)
  G <- if (is.null(xx)) matrix(sums$ff, p + 1L)[idx, idx, drop = FALSE] else
    xx[idx + 1L, idx + 1L, drop = FALSE]
  s <- inputs$x_shift
  # ||x_j||^2 = ||x_c_j + s_j 1||^2, column 1 being the intercept when shifted
  norm2 <- diag(G) + if (any(s != 0)) 2 * s * G[1L, ] + s^2 * G[1L, 1L] else 0
  if (!all(is.finite(G))) {
    stop("the sums of the fixed-effect columns are not all finite", call. = FALSE)
  }
  keep <- gram_pivot_keep(G, norm2, inputs$n, tol)
  if (length(keep) == p) return(inputs)
  dropped <- setdiff(idx, keep)
  msg <- report_rank_drop(level, length(keep), p, inputs$X_names[dropped])
  pf <- p + 1L
  fidx <- c(keep, pf)
  sums$ff <- as.double(matrix(sums$ff, pf, pf)[fidx, fidx])
  sums$factors <- lapply(sums$factors, function(f) {
    fz <- array(f$fz, c(pf, f$q, f$n_levels))
    f$fz <- as.double(fz[fidx, , , drop = FALSE])
    f
  })
  if (!is.null(sums$xx)) sums$xx <- as.double(xx[c(1L, keep + 1L), c(1L, keep + 1L)])
  if (!is.null(sums$x_binary)) sums$x_binary <- sums$x_binary[keep]
  sums$p <- length(keep)
  inputs$sums <- sums
  inputs$X_names <- inputs$X_names[keep]
  inputs$X_assign <- inputs$X_assign[keep]
  inputs$x_shift <- inputs$x_shift[keep]
  inputs$X_attributes$msgRankdrop <- msg
  inputs$X_attributes$col.dropped <- stats::setNames(dropped, all_names[dropped])
  inputs
}

# TRUE for each fixed-effect column that takes only the values 0 and 1:
# sums$x_binary when the sums carry it; otherwise read from the coding: the
# intercept and the columns of terms made only of factors coded by
# contr.treatment (a numeric 0/1 variable is then taken as not 0/1).
sums_binary_columns <- function(inputs) {
  if (!is.null(inputs$sums$x_binary)) return(as.logical(inputs$sums$x_binary))
  tt <- stats::terms(parse_lmm_formula(inputs$formula)$fixed_formula)
  fac <- attr(tt, "factors")
  ctr <- inputs$X_contrasts
  treatment <- names(ctr)[vapply(ctr, function(cc) identical(cc, "contr.treatment"), NA)]
  vapply(inputs$X_assign, function(a) {
    if (a == 0L) return(TRUE)
    vars <- rownames(fac)[fac[, a] != 0]
    all(vars %in% treatment)
  }, NA)
}

# lmm()'s check.scaleX on sums inputs (see the top of this file); sets
# X_attributes$msgScaleX as lmm() sets it on X.
sums_check_scale <- function(inputs, level, tol = 1000) {
  p <- inputs$sums$p
  if (level == "ignore" || p == 0L) return(inputs)
  xx <- sums_plain_xx(inputs$sums, inputs$has_weights, inputs$X_names)
  continuous <- which(!sums_binary_columns(inputs))
  if (length(continuous) &&
      (is.null(xx) || anyNA(xx[1L, continuous + 1L]))) {
    stop("check.scaleX needs the unweighted sums and sums of squares of the ",
         "fixed-effect columns (inputs$sums$xx), which these sums ",
         if (is.null(xx)) "(weighted by the prior weights) " else "(of a model without intercept) ",
         "do not hold; add them, or set check.scaleX = \"ignore\"", call. = FALSE)
  }
  n <- inputs$n
  log_sd <- vapply(continuous, function(j) {
    s1 <- xx[1L, j + 1L]
    v <- (xx[j + 1L, j + 1L] - s1 * s1 / n) / (n - 1)
    log(sqrt(max(v, 0)))
  }, 1)
  inputs$X_attributes$msgScaleX <- report_scale(log_sd, level, tol)
  inputs
}

# Checked sums inputs (check_sums_inputs()) put through lmm()'s
# fixed-effects checks, in lmm()'s order: collinear columns dropped, then
# the scales.
sums_fixed_checks <- function(inputs, control) {
  inputs <- sums_drop_deficient(inputs, control$check.rankX)
  inputs <- sums_check_scale(inputs, control$check.scaleX)
  sums_check_cancellation(inputs$sums)
  inputs
}

# Above this ratio of the response's sum of squares to its residual sum of
# squares on the fixed effects, the sums lose enough digits for the warning
# of sums_check_cancellation().
sums_cancellation_limit <- 1e5

# Warns when the criterion computed from the sums loses digits to
# cancellation: its residual sum of squares is the response's sum of
# squares `y'Wy` (in `ff`, after the shifts) less what the fixed and random
# effects explain, a difference that keeps about 16 - log10(y'Wy / r'Wr)
# digits, r'Wr the residual sum of squares of the response on X alone. lmm()
# on the rows moves X's fit out of the response before summing
# (src/rust/linalg/assemble.rs); sums computed elsewhere cannot be summed
# again, so a response that X explains almost entirely (a trend over a
# covariate of large values) gets a warning saying what to do.
sums_check_cancellation <- function(sums) {
  p <- sums$p
  if (p == 0L) return(invisible(NULL))
  ff <- matrix(sums$ff, p + 1L, p + 1L)
  yy <- ff[p + 1L, p + 1L]
  xy <- ff[seq_len(p), p + 1L]
  fit <- tryCatch(solve(ff[seq_len(p), seq_len(p), drop = FALSE], xy),
                  error = function(e) NULL)
  if (is.null(fit) || !is.finite(yy) || yy <= 0) return(invisible(NULL))
  ratio <- yy / (yy - sum(fit * xy))
  if (ratio > 0 && ratio <= sums_cancellation_limit) return(invisible(NULL))
  digits <- if (ratio > 0) sprintf("about %.0f", log10(ratio)) else "all"
  warning("the response's sum of squares in the sums is ",
          if (ratio > 0) sprintf("%.2g times", ratio) else "not above",
          " its residual sum of squares on the fixed effects, so ", digits,
          " of the criterion's 16 digits cancel, and where the likelihood is ",
          "flat the optimizer can stop away from the optimum (lmm() on the rows ",
          "in R removes that fit first); subtract the trend from the response ",
          "where the data live (e.g. dplyr::mutate(y = y - 2 * x)) and add it ",
          "back to the fixed effects", call. = FALSE)
  invisible(NULL)
}

# Type III hypotheses of a sums fit whose terms are contained in others:
# contrasts_type3() run on a prototype frame (see the top of this file) with
# the fit's formula and coding.
sums_contrasts_type3_prototype <- function(fit, tc, nested) {
  X <- fit$X
  fail <- function(why) {
    stop("type III hypotheses for terms contained in others (", quote_names(nested),
         ") of a model fitted from aggregates: ", why, "; use type = \"I\" or \"II\", ",
         "or fit the pulled rows with lmm()", call. = FALSE)
  }
  if (length(attr(X, "col.dropped"))) {
    fail("its fixed-effects matrix lost collinear columns, and then the hypotheses depend on the rows")
  }
  ctr <- attr(X, "contrasts")
  xlev <- fit$xlevels
  if (length(ctr) && (is.null(xlev) || !all(names(ctr) %in% names(xlev)))) {
    fail("they need the levels of its fixed-effect factors (inputs$xlevels), which the inputs lack")
  }
  tt <- tc$terms
  labels <- vapply(as.list(attr(tt, "variables"))[-1L], deparse_var, "")
  factors <- intersect(labels, names(ctr))
  combos <- if (length(factors)) {
    expand.grid(lapply(xlev[factors], function(l) factor(l, levels = l)),
                KEEP.OUT.ATTRS = FALSE, stringsAsFactors = FALSE)
  } else data.frame(row.names = 1L)
  reps <- max(2L, ncol(X))
  m <- nrow(combos) * reps
  rows <- combos[rep(seq_len(nrow(combos)), each = reps), , drop = FALSE]
  primes <- c(2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53)
  numerics <- setdiff(labels, factors)
  d <- lapply(labels, function(v) {
    if (v %in% factors) return(rows[[v]])
    k <- match(v, numerics)
    step <- sqrt(primes[(k - 1L) %% length(primes) + 1L]) + (k - 1L) %/% length(primes)
    1 + (seq_len(m) * step) %% 1
  })
  names(d) <- labels
  d <- structure(d, class = "data.frame", row.names = seq_len(m))
  attr(tt, "dataClasses") <- vapply(d, stats::.MFclass, "")
  attr(d, "terms") <- tt
  Xp <- tryCatch(stats::model.matrix(tt, d, contrasts.arg = ctr),
                 error = function(e) fail(paste("its prototype design failed:", conditionMessage(e))))
  if (!identical(unname(colnames(Xp)), colnames(X))) {
    fail("its prototype design does not give the fit's columns")
  }
  if (qr(Xp, tol = 1e-7, LAPACK = FALSE)$rank < ncol(Xp)) {
    fail("its prototype design is not of full rank")
  }
  contrasts_type3(list(formula = fit$formula, X = Xp, frame = d))
}
