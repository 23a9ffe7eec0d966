# glmmTMB's parameters of the random effects' covariances: the rows
# "theta_<term>.<k>" of vcov(full = TRUE) and the scale of confint()'s Wald
# rows of standard deviations and correlations of a glmmTMB-style fit.
#
# glmmTMB (1.1.5) keeps its terms in formula order (no reordering by number
# of levels), reads `(x || g)` as one diagonal term "x | g", and names a term
# by its bar without spaces. Its parameters of a term with q columns are the
# log standard deviations, then per structure
#
#   us    the elements below the diagonal of the unit lower-triangular L with
#         C = cov2cor(L L'), row by row (re_internal())
#   cs    x with rho = plogis(x) (1 + a) - a, a = 1 / (q - 1)
#   ar1   x with rho = x / sqrt(1 + x^2)
#   toep  x_k with rho_k = x_k / sqrt(1 + x_k^2), rho_k the lag-k correlation
#
# mixedrs's `par` of a term (src/rust/model/covariance.rs) holds the standard
# deviations themselves, the correlation rho (cs, ar1), the partial
# autocorrelations of the lags (toep) or, for an unstructured term, the
# Cholesky factor of its covariance matrix. The map between the two is
# smooth inside the parameter space; on its boundary (a standard deviation
# of 0, a correlation of +-1) glmmTMB's parameters are infinite.

# glmmTMB's terms of the random part `rhs` (a formula's right-hand side)
# matched to `reterms` (mixedrs's terms of that part, in the fit's order):
# per glmmTMB term its row-name stem "theta_<bar>" and the indices of its
# members in `reterms` (several for `||`). NULL when some term of `reterms`
# finds no place (which does not happen for a fit's own formula).
glmmtmb_theta_terms <- function(rhs, reterms) {
  labels <- vapply(reterms, `[[`, "", "term")
  used <- logical(length(reterms))
  out <- list()
  for (term in split_bars(rhs)$bars) {
    # glmmTMB names a nested term after its expansion, `||` after its bar
    groups <- if (is_call_to(term, "||")) {
      members <- unlist(lapply(split_bars(double_bar_terms(term))$bars, expand_nesting),
                        recursive = FALSE)
      list(list(bar = call("|", term[[2L]], term[[3L]]), members = members))
    } else {
      lapply(expand_nesting(unwrap_structure(term)), function(m) list(bar = m, members = list(m)))
    }
    for (g in groups) {
      idx <- match(vapply(g$members, bar_label, ""), labels)
      if (anyNA(idx) || any(used[idx])) return(NULL)
      used[idx] <- TRUE
      out <- c(out, list(list(stem = glmmtmb_term_stem(g$bar), members = idx)))
    }
  }
  if (!all(used)) return(NULL)
  out
}

# "theta_" and the bar as glmmTMB deparses it, without spaces.
glmmtmb_term_stem <- function(bar) {
  paste0("theta_", gsub(" ", "", paste(deparse(bar, width.cutoff = 500L), collapse = "")))
}

# glmmTMB's parameters of one of mixedrs's terms `rt` from its `par`.
glmmtmb_term_theta <- function(rt, par) {
  s <- term_structure_of(rt)
  q <- length(rt$cnms)
  if (s$type == "us") {
    internal <- re_internal(par, q)
    return(if (is.null(internal)) rep(NA_real_, length(par)) else internal)
  }
  n_sd <- if (isTRUE(s$hom)) 1L else q
  log_sd <- log(par[seq_len(n_sd)])
  corr <- par[-seq_len(n_sd)]
  switch(s$type,
    diag = log_sd,
    cs = {
      a <- 1 / (q - 1)
      c(log_sd, stats::qlogis((corr + a) / (1 + a)))
    },
    ar1 = c(log_sd, corr / sqrt(1 - corr^2)),
    toep = {
      rho <- toep_lag_correlations_rs(corr)
      c(log_sd, rho / sqrt(1 - rho^2))
    })
}

# A term's standard deviations (one per column) and correlations (the
# column-major lower triangle; zeros for diag()) from glmmTMB's parameters
# `v` of that term (glmmtmb_term_theta()'s inverse).
glmmtmb_term_values <- function(rt, v) {
  s <- term_structure_of(rt)
  q <- length(rt$cnms)
  if (s$type == "us") return(re_from_internal(v, q))
  n_sd <- if (isTRUE(s$hom)) 1L else q
  sds <- rep_len(exp(v[seq_len(n_sd)]), q)
  x <- v[-seq_len(n_sd)]
  lag <- abs(outer(seq_len(q), seq_len(q), "-"))
  C <- switch(s$type,
    diag = diag(q),
    cs = {
      a <- 1 / (q - 1)
      rho <- stats::plogis(x) * (1 + a) - a
      ifelse(lag == 0, 1, rho)
    },
    ar1 = (x / sqrt(1 + x^2))^lag,
    toep = {
      rho <- c(1, x / sqrt(1 + x^2))
      matrix(rho[lag + 1L], q, q)
    })
  c(sds, if (q > 1L) C[lower.tri(C)])
}

# glmmTMB's parameters of a part's terms from `par` (mixedrs's, in the order
# of `reterms`, `n_par` of them per term), in glmmTMB's order (`tmb_terms`
# from glmmtmb_theta_terms()).
glmmtmb_theta <- function(par, reterms, n_par, tmb_terms) {
  ends <- cumsum(n_par)
  pieces <- lapply(seq_along(reterms), function(i) {
    glmmtmb_term_theta(reterms[[i]], par[(ends[i] - n_par[i]) + seq_len(n_par[i])])
  })
  unlist(lapply(tmb_terms, function(t) unlist(pieces[t$members])))
}

# glmmTMB's covariance parameters of one part of a fit: `value` (its
# estimates), `names` ("theta_<bar>.<k>") and `jacobian`, their derivatives
# in mixedrs's `par` of that part (numeric_jacobian(); NA rows where the
# estimate is on the boundary). NULL without random effects, or with a
# warning when the terms cannot be matched to the formula's.
glmmtmb_theta_part <- function(par, reterms, rhs) {
  if (length(reterms) == 0L) return(NULL)
  tmb_terms <- glmmtmb_theta_terms(rhs, reterms)
  if (is.null(tmb_terms)) {
    warning("the covariance parameters in glmmTMB's parameterization are left out: the ",
            "fit's random-effects terms could not be matched to the terms of ",
            deparse1(rhs), call. = FALSE)
    return(NULL)
  }
  n_par <- par_sizes(reterms)
  f <- function(p) glmmtmb_theta(p, reterms, n_par, tmb_terms)
  value <- f(par)
  sizes <- vapply(tmb_terms, function(t) sum(n_par[t$members]), 1L)
  names <- unlist(Map(function(t, k) paste0(t$stem, ".", seq_len(k)), tmb_terms, sizes))
  J <- numeric_jacobian(f, par)
  J[!is.finite(value), ] <- NA_real_
  list(value = value, names = names, jacobian = J)
}

# glmmtmb_theta_part() of a fit's conditional model.
glmmtmb_cond_theta_part <- function(object) {
  glmmtmb_theta_part(unname(cov_par(object)), object$reterms,
                     object$formula[[length(object$formula)]])
}

# glmmTMB's parameters of an unstructured term with `nc` columns from the
# column-major lower triangle `th` of the Cholesky factor of its covariance
# matrix: log standard deviations, then the elements below the diagonal of
# the unit lower-triangular factor of the correlation matrix, row by row.
# NULL when the correlation matrix is singular.
re_internal <- function(th, nc) {
  L <- matrix(0, nc, nc)
  L[lower.tri(L, diag = TRUE)] <- th
  S <- tcrossprod(L)
  sds <- sqrt(diag(S))
  if (nc == 1L) return(log(sds))
  if (any(sds <= 0)) return(NULL)
  M <- tryCatch(t(chol(S / outer(sds, sds))), error = function(e) NULL)
  if (is.null(M)) return(NULL)
  unit <- M / diag(M)
  c(log(sds), t(unit)[upper.tri(unit)])
}

# The standard deviations, then the correlations (column-major lower
# triangle), of glmmTMB's parameters `v` of a term with `nc` columns.
re_from_internal <- function(v, nc) {
  sds <- exp(v[seq_len(nc)])
  if (nc == 1L) return(sds)
  unit <- diag(nc)
  tu <- t(unit)
  tu[upper.tri(tu)] <- v[-seq_len(nc)]
  unit <- t(tu)
  C <- stats::cov2cor(tcrossprod(unit))
  c(sds, C[lower.tri(C)])
}

# Jacobian of `f` at `x` by central differences, steps of 1e-6 relative
# (the maps of this file are smooth inside the parameter space, where this
# gives ~1e-10 relative accuracy, far below a standard error's), a step
# shrunk by 100 up to three times where it leaves the space (a non-finite
# difference); entries that stay non-finite are NA.
numeric_jacobian <- function(f, x) {
  J <- NULL
  for (j in seq_along(x)) {
    h <- 1e-6 * max(abs(x[j]), 1e-2)
    for (attempt in 1:4) {
      up <- x
      dn <- x
      up[j] <- up[j] + h
      dn[j] <- dn[j] - h
      d <- suppressWarnings((f(up) - f(dn)) / (2 * h))
      if (all(is.finite(d))) break
      h <- h / 100
    }
    if (is.null(J)) J <- matrix(NA_real_, length(d), length(x))
    J[, j] <- d
  }
  J[!is.finite(J)] <- NA_real_
  J
}
