# The random-effect components of glmmTMB-style fits (glmm() fits whose
# `extended$style` is "glmmTMB"): VarCorr(), ranef() and coef() return, as
# glmmTMB 1.1.5 does, one element per model component (`cond`, `zi`; random
# effects in `ziformula` are an error at fit time, so `zi` is always empty),
# with their print and as.data.frame() methods, and the conditional
# variances of the random effects as glmmTMB's sdreport() gives them (the
# conditional variance at the estimates plus the uncertainty of the
# estimated parameters, Kass & Steffey 1989). Internal code that needs
# lme4's list of covariance matrices for any fit calls varcorr_lme4().

#' Random-effect components of glmmTMB-style fits
#'
#' For fits of [glmm()] in glmmTMB's parameterisation (the `nbinom2`,
#' `nbinom1`, `beta_family` and `betabinomial` families, and any fit with a
#' `ziformula` or a `dispformula`), `VarCorr()`, `ranef()` and `coef()` return
#' what glmmTMB 1.1.5 returns: a list with one element per model component,
#' `cond` (the conditional model) and `zi` (the zero-inflation model, always
#' empty: random effects in `ziformula` are not supported).
#'
#' * `VarCorr(fit, sigma)` (`sigma`: optional, the scale shown as the
#'   residual standard deviation, `sigma(fit)` by default): class
#'   `"VarCorr_components"`. `$cond` is lme4's
#'   list of covariance matrices (one per random-effects term, named by the
#'   grouping factor, with attributes `"stddev"`, `"correlation"` and
#'   glmmTMB's `"blockCode"`), carrying attributes `"sc"` (`sigma(fit)`, or
#'   `sigma` when given) and `"useSc"` (whether a `Residual` row is shown:
#'   `TRUE` for the gaussian family, or when `sigma` is given); `$zi` is
#'   `NULL`. The list's own attribute `"sc"` says, as glmmTMB's, whether the
#'   family has a dispersion parameter. Printing shows, per component, a
#'   "Conditional model:" header and lme4's table (`comp` chooses
#'   `"Variance"` and/or `"Std.Dev."`). As in glmmTMB there is no
#'   `as.data.frame()` method.
#' * `ranef(fit, condVar = TRUE)` (`condVar`: attach the conditional
#'   covariance matrices of the random effects?): class `"ranef_components"`,
#'   a list
#'   `cond` (one data frame of conditional modes per grouping factor, levels
#'   as row names) and `zi` (an empty list). With `condVar = TRUE` each data
#'   frame has attribute `"condVar"`: the array (`q x q x levels`) of the
#'   conditional covariance matrices of the level's random effects (a list
#'   of arrays, one per term, when a factor has several terms). They are
#'   glmmTMB's: the covariance of the random effects given the data at the
#'   estimates, plus the part due to the uncertainty of all estimated
#'   parameters (fixed effects, zero-inflation and dispersion coefficients,
#'   variance parameters; as TMB's `sdreport()`), so they are larger than
#'   lme4-style conditional variances. glmmTMB fills only the diagonal (the
#'   off-diagonal elements are `NA` there); here the covariances are given
#'   too. Not available (an error) for fits with structured covariance terms
#'   (`diag()`, `cs()`, `ar1()`, `toep()`): use `condVar = FALSE`. `print()`
#'   shows the `cond` list alone when `zi` is empty (`simplify = TRUE`);
#'   `as.data.frame()` gives glmmTMB's long format: columns `component`,
#'   `grpvar`, `term`, `grp`, `condval` and, with conditional variances,
#'   `condsd`.
#' * `coef(fit)`: class `"coef_components"`, a list `cond` (per grouping
#'   factor, the conditional model's fixed effects plus the conditional
#'   modes of each level, as [coef.mixedrs_fit()]) and `zi` (an empty list).
#'   `condVar = TRUE` is an error, as in glmmTMB.
#'
#' [glmm.nb()] fits and the other [glmm()] fits keep lme4's objects.
#'
#' @param x For `VarCorr()`: the fit; for the methods: the object to print
#'   or convert.
#' @param digits Number of significant digits.
#' @param comp Components of the printed table: any of `"Variance"` and
#'   `"Std.Dev."` (partial matching allowed).
#' @param formatter Function formatting the numbers (default [format()]).
#' @param simplify Logical: print only the `cond` component when `zi` is
#'   empty?
#' @param row.names,optional The generic's arguments: only their defaults
#'   (`NULL`, `FALSE`) are available (the layout is glmmTMB's).
#' @param ... `VarCorr()`, `ranef()`, `coef()`, `as.data.frame()`: an error
#'   when given (`as.data.frame()` takes `stringsAsFactors = FALSE`, which
#'   describes its text columns); `print()`: passed to [print()].
#' @return `VarCorr()`, `ranef()`, `coef()`: the classed lists described
#'   above; `as.data.frame()`: a data frame; `print()`: `x`, invisibly.
#' @name glmm_extended_random
#' @aliases VarCorr_components ranef_components coef_components
#' @seealso [glmmTMB-style methods][glmm_extended_methods], [VarCorr.glmm()],
#'   [ranef.mixedrs_fit()].
#' @examplesIf requireNamespace("glmmTMB", quietly = TRUE)
#' data(Salamanders, package = "glmmTMB")
#' fit <- glmm(count ~ mined + (1 | site), data = Salamanders,
#'             family = "nbinom2", ziformula = ~ mined)
#' vc <- VarCorr(fit)
#' vc
#' print(vc, comp = c("Variance", "Std.Dev."))
#' attr(vc$cond$site, "stddev")
#' re <- ranef(fit)
#' head(re$cond$site)
#' head(as.data.frame(re))
#' head(coef(fit)$cond$site)
#' sleep <- glmm(Reaction ~ Days + (Days | Subject), data = lme4::sleepstudy,
#'               family = gaussian, dispformula = ~ 1)
#' VarCorr(sleep)
NULL

# ---------------------------------------------------------------------------
# lme4-style objects for internal callers.

# lme4's VarCorr of any fit ("VarCorr.lmm" / c("VarCorr.glmm", "VarCorr.lmm")):
# for glmmTMB-style fits the standard deviations are the absolute ones
# (their `sigma` field is 1).
varcorr_lme4 <- function(object, sigma = object$sigma) {
  if (inherits(object, "lmm")) {
    return(mer_varcorr(object, sigma, use_sc = TRUE, class = "VarCorr.lmm"))
  }
  mer_varcorr(object, sigma, use_sc = mer_use_sc(object),
              class = c("VarCorr.glmm", "VarCorr.lmm"))
}

# ---------------------------------------------------------------------------
# VarCorr().

# glmmTMB's codes of the covariance structures (its "blockCode" attribute).
glmmtmb_block_codes <- c(diag = 0, us = 1, cs = 2, ar1 = 3, toep = 8)

# VarCorr() of a glmmTMB-style fit; `sigma` NULL when not given.
varcorr_components <- function(x, sigma = NULL, ...) {
  check_no_dots(..., caller = "VarCorr() of a glmmTMB-style fit")
  fam <- x$extended$family
  if (is.null(sigma)) {
    sigma <- x$extended$sigma
    use_sc <- identical(fam, "gaussian")
  } else {
    if (!is.numeric(sigma) || length(sigma) != 1L || is.na(sigma)) {
      stop("VarCorr(): 'sigma' must be a single number, not ", deparse1(sigma),
           call. = FALSE)
    }
    use_sc <- TRUE
  }
  cond <- NULL
  if (length(x$reterms)) {
    cond <- unclass(mer_varcorr(x, x$sigma, use_sc = use_sc, class = NULL))
    for (i in seq_along(cond)) {
      type <- term_structure_of(x$reterms[[i]])$type
      attr(cond[[i]], "blockCode") <- glmmtmb_block_codes[type]
    }
    attr(cond, "sc") <- unname(sigma)
    attr(cond, "useSc") <- use_sc
  }
  structure(list(cond = cond, zi = NULL), sc = extended_has_dispersion(fam),
            class = "VarCorr_components")
}

#' @rdname glmm_extended_random
#' @method print VarCorr_components
#' @export
print.VarCorr_components <- function(x, digits = max(3, getOption("digits") - 2),
                                     comp = "Std.Dev.", formatter = format, ...) {
  # Every table is formatted before anything is printed, so that a bad 'comp'
  # is an error with no partial output.
  shown <- Filter(Negate(is.null), x)
  tables <- lapply(shown, format_varcorr_components, digits, comp, formatter)
  for (cc in names(tables)) {
    cat("\n", component_titles[[cc]], ":\n", sep = "")
    print(tables[[cc]], quote = FALSE, ...)
  }
  invisible(x)
}

# lme4's table of one component (format_varcorr()), with the correlation
# block as wide as the largest term, as glmmTMB lays it out (lme4 leaves out
# its last, always empty, column).
format_varcorr_components <- function(vc, digits, comp, formatter) {
  m <- format_varcorr(vc, digits = digits, comp = comp, formatter = formatter)
  n_corr <- ncol(m) - 2L - length(intersect(colnames(m), c("Variance", "Std.Dev.")))
  if (n_corr == 0L) return(m)
  width <- max(vapply(vc, function(v) length(varcorr_rows_shown(v)), 1L))
  if (width <= n_corr) return(m)
  cbind(m, matrix("", nrow(m), width - n_corr, dimnames = list(NULL, rep("", width - n_corr))))
}

# ---------------------------------------------------------------------------
# ranef() and coef().

# ranef() of a glmmTMB-style fit; `lme4_args`: names of lme4's arguments
# given (drop, whichel, postVar), which glmmTMB's ranef() does not take.
ranef_components <- function(object, condVar = TRUE, lme4_args = character(0), ...) {
  check_no_dots(..., caller = "ranef() of a glmmTMB-style fit")
  if (length(lme4_args)) {
    stop("ranef() of a glmmTMB-style fit takes 'condVar' only (as glmmTMB's); ",
         "not available: ", paste(sQuote(lme4_args, FALSE), collapse = ", "), call. = FALSE)
  }
  check_flag(condVar, "condVar", "ranef()")
  cond <- list()
  if (length(object$reterms)) {
    cond <- unclass(mer_ranef(object, condVar = FALSE, drop = FALSE, whichel = NULL,
                              class = NULL))
    if (condVar) {
      cv <- extended_factor_condvar(object)
      for (nm in names(cond)) attr(cond[[nm]], "condVar") <- cv[[nm]]
    }
  }
  structure(list(cond = cond, zi = list()), class = "ranef_components")
}

#' @rdname glmm_extended_random
#' @method print ranef_components
#' @export
print.ranef_components <- function(x, simplify = TRUE, ...) {
  check_flag(simplify, "simplify", "print()")
  print(if (simplify && length(x$zi) == 0L) unclass(x$cond) else unclass(x), ...)
  invisible(x)
}

#' @rdname glmm_extended_random
#' @method as.data.frame ranef_components
#' @export
as.data.frame.ranef_components <- function(x, row.names = NULL, optional = FALSE, ...) {
  dots <- list(...)
  # glmmTMB's layout: text columns component and grpvar, factors term and grp;
  # the generic's arguments are taken only where they describe that.
  if (!is.null(row.names) || !isFALSE(optional) || isTRUE(dots$stringsAsFactors)) {
    stop("as.data.frame() of a ranef() of a glmmTMB-style fit has glmmTMB's fixed layout: ",
         "'row.names', 'optional = TRUE' and 'stringsAsFactors = TRUE' are not available",
         call. = FALSE)
  }
  dots$stringsAsFactors <- NULL
  if (length(dots)) {
    stop("as.data.frame() of a ranef() of a glmmTMB-style fit: unknown arguments: ",
         paste(names(dots), collapse = ", "), call. = FALSE)
  }
  per_comp <- lapply(names(x), function(cc) {
    pieces <- lapply(names(x[[cc]]), function(gv) ranef_factor_long(x[[cc]][[gv]], gv))
    if (!length(pieces)) return(NULL)
    d <- do.call(rbind, pieces)
    d$component <- rep(cc, nrow(d))
    d
  })
  names(per_comp) <- names(x)
  out <- do.call(rbind, per_comp)
  cols <- c("component", "grpvar", "term", "grp", "condval")
  if (is.null(out)) {
    return(data.frame(component = character(0), grpvar = character(0),
                      term = factor(character(0)), grp = factor(character(0)),
                      condval = numeric(0)))
  }
  out[c(cols, intersect("condsd", names(out)))]
}

# The long rows of one grouping factor's data frame of conditional modes:
# every column (term, a factor in column order), every level (grp, a factor
# ordered by the first column's values), with the conditional standard
# deviations when the frame has its "condVar".
ranef_factor_long <- function(d, gv) {
  nterm <- ncol(d)
  grp <- stats::reorder(factor(rownames(d)), d[[1L]], FUN = mean)
  out <- data.frame(condval = unlist(d, use.names = FALSE),
                    term = factor(rep(colnames(d), each = nrow(d)), levels = colnames(d)),
                    grp = rep(grp, nterm), stringsAsFactors = FALSE)
  cv <- attr(d, "condVar")
  if (!is.null(cv)) out$condsd <- condvar_sd(cv)
  out$grpvar <- rep(gv, nrow(out))
  out
}

# coef() of a glmmTMB-style fit.
coef_components <- function(object, condVar = FALSE, ...) {
  check_no_dots(..., caller = "coef() of a glmmTMB-style fit")
  check_flag(condVar, "condVar", "coef()")
  if (condVar) {
    stop("coef(condVar = TRUE) is not available (nor in glmmTMB): the conditional ",
         "variances of the random effects are those of ranef(fit, condVar = TRUE)",
         call. = FALSE)
  }
  cond <- if (length(object$reterms)) mer_coef(object) else list()
  structure(list(cond = cond, zi = list()), class = "coef_components")
}

#' @rdname glmm_extended_random
#' @method print coef_components
#' @export
print.coef_components <- function(x, simplify = TRUE, ...) {
  print.ranef_components(x, simplify = simplify, ...)
}

# ---------------------------------------------------------------------------
# Conditional variances as glmmTMB's sdreport() gives them.

# Per grouping factor, the conditional covariance arrays of glmmTMB's
# ranef(condVar = TRUE): the factor's array when it has one term, else the
# unnamed list of its terms' arrays (as glmmTMB).
extended_factor_condvar <- function(object) {
  arrays <- extended_condvar(object)
  term_factor <- attr(object$flist, "assign")
  out <- lapply(seq_along(object$flist), function(i) {
    idx <- which(term_factor == i)
    if (length(idx) == 1L) arrays[[idx]] else arrays[idx]
  })
  names(out) <- names(object$flist)
  out
}

# Per term, the arrays (q x q x levels) of Var(b_j | y) at the estimates (the
# engine's term_condvar(), from the fit's Laplace weights) plus the part due
# to the estimated parameters phi = (variance parameters, dispersion,
# zero-inflation and fixed-effect coefficients): J V J', with J = d b^/d phi
# the derivative of the conditional modes (implicit function theorem on the
# mode equation in the spherical u, b = Lambda u) and V = 2 H^-1 the
# covariance of phi (H the fit's Hessian of the deviance). This is TMB's
# sdreport() for random effects, as glmmTMB's ranef() reports them.
extended_condvar <- function(object) {
  if (has_structured_terms(object$reterms)) {
    stop("the conditional variances of the random effects (ranef(condVar = TRUE)) ",
         "are not available for glmmTMB-style fits with structured covariance ",
         "terms (diag, cs, ar1, toep) yet; use condVar = FALSE", call. = FALSE)
  }
  base <- term_condvar(object)
  s <- extended_mode_sensitivity(object)
  JV <- s$J %*% s$V
  lapply(seq_along(object$reterms), function(t) {
    a <- base[[t]]
    q <- s$q_t[t]
    for (j in seq_len(s$L_t[t])) {
      r <- s$offs[t] + (j - 1L) * q + seq_len(q)
      a[, , j] <- a[, , j] + JV[r, , drop = FALSE] %*% t(s$J[r, , drop = FALSE])
    }
    a
  })
}

# What the parameter-uncertainty part of sdreport() needs, for a fit without
# structured terms: the random-effects design `Z` (n x Q, lme4's column
# order: terms, then levels, then the term's columns) and `Lambda` (b =
# Lambda u); `Huu`, the Hessian of minus the log joint density in the
# spherical u at the modes (Z Lambda)' W (Z Lambda) + I with W the observed
# weights; `J` = d b^/d phi (Q x k), the derivative of the conditional modes
# in phi = c(theta, dispersion, zero-inflation and fixed-effect
# coefficients), by the implicit function theorem on the mode equation; `V`
# = 2 H^-1 (k x k), the covariance of phi from the fit's Hessian of the
# deviance (NA when there is none or it cannot be inverted); and the layout
# `q_t`, `L_t` (columns and levels per term), `offs` (each term's first
# column - 1).
extended_mode_sensitivity <- function(object) {
  ext <- object$extended
  reterms <- object$reterms
  nth <- length(object$theta)
  kd <- length(ext$disp$beta)
  kz <- length(ext$zi$beta)
  p <- length(object$beta)
  k <- nth + kd + kz + p
  H <- ext$hessian
  V <- if (is.null(H)) NULL else tryCatch(solve(H), error = function(e) NULL)
  V <- if (is.null(V)) matrix(NA_real_, k, k) else V + t(V)

  # Design of the random effects and Lambda, both in lme4's column order
  # (terms, then levels, then the term's columns).
  q_t <- vapply(reterms, function(rt) length(rt$cnms), 1L)
  L_t <- vapply(reterms, function(rt) nlevels(rt$factor), 1L)
  offs <- cumsum(c(0L, q_t * L_t))
  n <- length(object$eta)
  Z <- Matrix::sparseMatrix(
    i = unlist(lapply(reterms, function(rt) rep(seq_len(n), length(rt$cnms)))),
    j = unlist(Map(function(rt, o) {
      q <- length(rt$cnms)
      o + (as.integer(rt$factor) - 1L) * q + rep(seq_len(q), each = n)
    }, reterms, offs[seq_along(reterms)])),
    x = unlist(lapply(reterms, function(rt) as.vector(rt$Z))),
    dims = c(n, offs[length(offs)]))
  thetas <- split_theta(object$theta, reterms)
  # theta element -> (term, row, column) of the term's factor
  th_pos <- do.call(rbind, lapply(seq_along(reterms), function(t) {
    q <- q_t[t]
    idx <- which(lower.tri(diag(q), diag = TRUE), arr.ind = TRUE)
    cbind(term = t, row = idx[, 1L], col = idx[, 2L])
  }))
  block_mat <- function(t, M) {
    # the block-diagonal matrix of term t with M in every level's block
    q <- q_t[t]
    nz <- which(M != 0, arr.ind = TRUE)
    lev <- rep(seq_len(L_t[t]) - 1L, each = nrow(nz))
    Matrix::sparseMatrix(i = offs[t] + lev * q + nz[, 1L], j = offs[t] + lev * q + nz[, 2L],
                         x = rep(M[nz], L_t[t]), dims = rep(offs[length(offs)], 2L))
  }
  Lambda <- Reduce(`+`, lapply(seq_along(reterms), function(t) {
    Tm <- matrix(0, q_t[t], q_t[t])
    Tm[lower.tri(Tm, diag = TRUE)] <- thetas[[t]]
    block_mat(t, Tm)
  }))
  u <- as.vector(object$u)

  # Derivatives of each observation's log-density in its linear predictors.
  d <- extended_loglik_derivs(object)
  w <- if (is.null(ext$prior_weights)) rep(1, n) else as.vector(ext$prior_weights)
  W <- -w * d$ee
  ZL <- Z %*% Lambda
  Huu <- Matrix::crossprod(ZL, W * ZL) + Matrix::Diagonal(ncol(ZL))
  s <- as.vector(Matrix::crossprod(Z, w * d$e))
  rhs <- matrix(0, ncol(ZL), k)
  dL_u <- matrix(0, ncol(ZL), k)
  for (m in seq_len(nth)) {
    E <- matrix(0, q_t[th_pos[m, 1L]], q_t[th_pos[m, 1L]])
    E[th_pos[m, 2L], th_pos[m, 3L]] <- 1
    dL <- block_mat(th_pos[m, 1L], E)
    dLu <- as.vector(dL %*% u)
    dL_u[, m] <- dLu
    rhs[, m] <- as.vector(-Matrix::crossprod(dL, s) +
                            Matrix::crossprod(ZL, W * as.vector(Z %*% dLu)))
  }
  cross <- function(v, M) as.matrix(Matrix::crossprod(ZL, v * M))
  if (kd) rhs[, nth + seq_len(kd)] <- cross(-w * d$ed, ext$disp$X)
  if (kz) rhs[, nth + kd + seq_len(kz)] <- cross(-w * d$ez, ext$zi$X)
  rhs[, nth + kd + kz + seq_len(p)] <- cross(W, object$X)
  du <- -as.matrix(Matrix::solve(Huu, rhs))
  J <- dL_u + as.matrix(Lambda %*% du)
  list(Z = Z, Lambda = Lambda, Huu = Huu, J = J, V = V, q_t = q_t, L_t = L_t, offs = offs)
}

# First and second derivatives of each observation's conditional
# log-density (the zero-inflated mixture where there is zero inflation) in
# its linear predictors: eta (conditional mean), zeta (logit of the
# zero-inflation probability) and delta (log of the dispersion parameter),
# by central differences of the log-density at the fitted values (step 1e-4:
# truncation and rounding errors both near 1e-8, far below the tolerances
# these variances are used with). Returns e, ee, ez, ed (zeros where a
# component is absent).
extended_loglik_derivs <- function(object) {
  ext <- object$extended
  eta <- as.vector(object$eta)
  zeta <- if (is.null(ext$zi)) NULL else as.vector(ext$zi$eta)
  delta <- if (is.null(ext$disp)) NULL else as.vector(ext$disp$eta)
  ntr <- if (is.null(ext$n_trials)) rep(1, length(eta)) else as.vector(ext$n_trials)
  y <- extended_observed(object)
  f <- function(de = 0, dz = 0, dd = 0) {
    extended_logdens(ext$family, object$family$linkinv, y, ntr, eta + de,
                     if (!is.null(zeta)) zeta + dz, if (!is.null(delta)) delta + dd)
  }
  h <- 1e-4
  f0 <- f()
  fp <- f(de = h)
  fm <- f(de = -h)
  mixed <- function(dz = 0, dd = 0) {
    (f(h, dz * h, dd * h) - f(h, -dz * h, -dd * h) - f(-h, dz * h, dd * h) +
       f(-h, -dz * h, -dd * h)) / (4 * h^2)
  }
  zero <- rep(0, length(eta))
  list(e = (fp - fm) / (2 * h), ee = (fp - 2 * f0 + fm) / h^2,
       ez = if (is.null(zeta)) zero else mixed(dz = 1),
       ed = if (is.null(delta)) zero else mixed(dd = 1))
}

# Log-density of each observation given its linear predictors, in glmmTMB's
# parameterisation (y on the scale of the fitted means: proportions for the
# binomial-type families, with `ntr` trials).
extended_logdens <- function(family, linkinv, y, ntr, eta, zeta, delta) {
  mu <- linkinv(eta)
  phi <- if (is.null(delta)) NULL else exp(delta)
  k <- y * ntr
  ld <- switch(family,
    poisson = stats::dpois(y, mu, log = TRUE),
    binomial = stats::dbinom(round(k), round(ntr), mu, log = TRUE),
    nbinom2 = stats::dnbinom(y, size = phi, mu = mu, log = TRUE),
    nbinom1 = stats::dnbinom(y, size = mu / phi, mu = mu, log = TRUE),
    beta = stats::dbeta(y, mu * phi, (1 - mu) * phi, log = TRUE),
    betabinomial = lchoose(ntr, k) + lbeta(k + mu * phi, ntr - k + (1 - mu) * phi) -
      lbeta(mu * phi, (1 - mu) * phi),
    gaussian = stats::dnorm(y, mu, sqrt(phi), log = TRUE),
    Gamma = stats::dgamma(y, shape = phi, scale = mu / phi, log = TRUE),
    stop("conditional variances are not available for the family '", family, "'",
         call. = FALSE))
  if (is.null(zeta)) return(ld)
  lp <- stats::plogis(zeta, log.p = TRUE)
  l1p <- stats::plogis(zeta, lower.tail = FALSE, log.p = TRUE)
  nz <- l1p + ld
  hi <- pmax(lp, nz)
  ifelse(y == 0, hi + log1p(exp(pmin(lp, nz) - hi)), nz)
}
