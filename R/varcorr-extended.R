# The random-effect components of glmmTMB-style fits (glmm() fits whose
# `extended$style` is "glmmTMB"): VarCorr(), ranef() and coef() return, as
# glmmTMB 1.1.5 does, one element per model component (`cond`, `zi`: the
# random effects of the conditional and of the zero-inflation model, `zi`
# empty when `ziformula` has none), with their print and as.data.frame()
# methods, and the conditional
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
#' `cond` (the conditional model) and `zi` (the zero-inflation model: the
#' random effects of `ziformula`, such as `~ x + (1 | g)`; empty when it has
#' none).
#'
#' * `VarCorr(fit, sigma)` (`sigma`: optional, the scale shown as the
#'   residual standard deviation, `sigma(fit)` by default): class
#'   `"VarCorr_components"`. `$cond` is lme4's
#'   list of covariance matrices (one per random-effects term, named by the
#'   grouping factor, with attributes `"stddev"`, `"correlation"` and
#'   glmmTMB's `"blockCode"`), carrying attributes `"sc"` (`sigma(fit)`, or
#'   `sigma` when given) and `"useSc"` (whether a `Residual` row is shown:
#'   `TRUE` for the gaussian family, or when `sigma` is given); `$zi` is
#'   the same for the zero-inflation model's terms (as in glmmTMB, its
#'   `"blockCode"` is an attribute of the list, not of each matrix), `NULL`
#'   when that model has no random effects. The list's own attribute `"sc"`
#'   says, as glmmTMB's, whether the family has a dispersion parameter. Printing shows, per component, a
#'   "Conditional model:" header and lme4's table (`comp` chooses
#'   `"Variance"` and/or `"Std.Dev."`). As in glmmTMB there is no
#'   `as.data.frame()` method.
#' * `ranef(fit, condVar = TRUE)` (`condVar`: attach the conditional
#'   covariance matrices of the random effects?): class `"ranef_components"`,
#'   a list
#'   `cond` (one data frame of conditional modes per grouping factor, levels
#'   as row names) and `zi` (the same for the zero-inflation model's grouping
#'   factors; an empty list without random effects there). With `condVar =
#'   TRUE` each data frame has attribute `"condVar"`: the array (`q x q x levels`) of the
#'   conditional covariance matrices of the level's random effects (a list
#'   of arrays, one per term, when a factor has several terms). They are
#'   glmmTMB's: the covariance of the random effects given the data at the
#'   estimates, plus the part due to the uncertainty of all estimated
#'   parameters (fixed effects, zero-inflation and dispersion coefficients,
#'   variance parameters; as TMB's `sdreport()`), so they are larger than
#'   lme4-style conditional variances. glmmTMB fills only the diagonal (the
#'   off-diagonal elements are `NA` there); here the covariances are given
#'   too; for every covariance structure (`diag()`, `cs()`, `ar1()`,
#'   `toep()` too). `print()`
#'   shows the `cond` list alone when `zi` is empty (`simplify = TRUE`);
#'   `as.data.frame()` gives glmmTMB's long format: columns `component`,
#'   `grpvar`, `term`, `grp`, `condval` and, with conditional variances,
#'   `condsd`.
#' * `coef(fit)`: class `"coef_components"`, a list `cond` (per grouping
#'   factor, the conditional model's fixed effects plus the conditional
#'   modes of each level, as [coef.mixedrs_fit()]) and `zi` (the same for the
#'   zero-inflation model; an empty list without random effects there).
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
      cond[[i]] <- as_glmmtmb_printed(cond[[i]])
    }
    attr(cond, "sc") <- unname(sigma)
    attr(cond, "useSc") <- use_sc
  }
  structure(list(cond = cond, zi = varcorr_zi_component(x, sigma, use_sc)),
            sc = extended_has_dispersion(fam), class = "VarCorr_components")
}

# A term's covariance matrix printed as glmmTMB prints it: a diag() term
# with its (zero) correlations, as an unstructured one, where lme4 2.x
# leaves them out.
as_glmmtmb_printed <- function(m) {
  if (identical(attr(m, "structure"), "diag")) attr(m, "structure") <- NULL
  m
}

# The `zi` element of VarCorr(): the zero-inflation model's covariance
# matrices (NULL without random effects there), with the attributes "sc"
# and "useSc" of the `cond` element. As glmmTMB 1.1.5 lays it out, the
# "blockCode" (of the last term) is an attribute of the list, not of each
# matrix.
varcorr_zi_component <- function(x, sigma, use_sc) {
  zf <- zi_random_fit(x)
  if (is.null(zf)) return(NULL)
  zi <- unclass(mer_varcorr(zf, zf$sigma, use_sc = use_sc, class = NULL))
  zi[] <- lapply(zi, as_glmmtmb_printed)
  attr(zi, "sc") <- unname(sigma)
  attr(zi, "useSc") <- use_sc
  for (rt in zf$reterms) {
    attr(zi, "blockCode") <- glmmtmb_block_codes[term_structure_of(rt)$type]
  }
  zi
}

# The zero-inflation model's random effects of a glmmTMB-style fit as a
# stand-in fit holding what mer_varcorr(), mer_ranef(), mer_coef() and
# mer_ngrps() read (reterms, flist, theta, sigma = 1, b as term_modes()
# gives it, the fixed effects beta with their design X); NULL when the
# zero-inflation model has no random effects.
zi_random_fit <- function(x) {
  zr <- x$extended$zi$random
  if (is.null(zr)) return(NULL)
  list(reterms = zr$reterms, flist = zr$flist,
       theta = stats::setNames(zr$theta, theta_names(zr$reterms)), sigma = 1,
       b = term_modes(zr$reterms, zr$b), beta = x$extended$zi$beta, X = x$extended$zi$X)
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
  modes <- function(fit) {
    if (is.null(fit) || !length(fit$reterms)) return(list())
    unclass(mer_ranef(fit, condVar = FALSE, drop = FALSE, whichel = NULL, class = NULL))
  }
  out <- list(cond = modes(object), zi = modes(zi_random_fit(object)))
  if (condVar && (length(out$cond) || length(out$zi))) {
    cv <- extended_factor_condvar(object)
    for (cc in names(out)) {
      for (nm in names(out[[cc]])) attr(out[[cc]][[nm]], "condVar") <- cv[[cc]][[nm]]
    }
  }
  structure(out, class = "ranef_components")
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
  zi <- list()
  zf <- zi_random_fit(object)
  if (!is.null(zf)) {
    zi <- mer_coef(zf)
    class(zi) <- mer_result_class(object, "coef")
  }
  structure(list(cond = cond, zi = zi), class = "coef_components")
}

#' @rdname glmm_extended_random
#' @method print coef_components
#' @export
print.coef_components <- function(x, simplify = TRUE, ...) {
  print.ranef_components(x, simplify = simplify, ...)
}

# ---------------------------------------------------------------------------
# Conditional variances as glmmTMB's sdreport() gives them.

# Per model component (`cond`, `zi`; `zi` NULL when the zero-inflation model
# has no random effects) and grouping factor, the conditional covariance
# arrays of glmmTMB's ranef(condVar = TRUE).
extended_factor_condvar <- function(object) {
  arrays <- extended_condvar(object)
  nc <- length(object$reterms)
  zr <- object$extended$zi$random
  list(cond = condvar_by_factor(arrays[seq_len(nc)], object$flist),
       zi = if (!is.null(zr)) condvar_by_factor(arrays[nc + seq_along(zr$reterms)], zr$flist))
}

# The term arrays of one component grouped by grouping factor: the factor's
# array when it has one term, else the unnamed list of its terms' arrays
# (as glmmTMB).
condvar_by_factor <- function(arrays, flist) {
  term_factor <- attr(flist, "assign")
  out <- lapply(seq_along(flist), function(i) {
    idx <- which(term_factor == i)
    if (length(idx) == 1L) arrays[[idx]] else arrays[idx]
  })
  names(out) <- names(flist)
  out
}

# The random-effects terms of both linear predictors in the engine's order
# (the conditional model's, then the zero-inflation model's): `reterms`,
# `theta` (lme4's layout, one vector), `u` (the spherical modes) and `zi`
# (per term: is it a term of the zero-inflation logit?).
extended_re_terms <- function(object) {
  zr <- object$extended$zi$random
  list(reterms = c(object$reterms, zr$reterms),
       theta = c(unname(object$theta), zr$theta),
       par = c(unname(cov_par(object)), zr$par),
       u = c(as.vector(object$u), zr$u),
       zi = rep(c(FALSE, TRUE), c(length(object$reterms), length(zr$reterms))))
}

# Per term (the conditional model's, then the zero-inflation model's), the
# arrays (q x q x levels) of Var(b_j | y) at the estimates (the engine's
# term_condvar() from the fit's Laplace weights; with random effects in the
# zero-inflation model, joint_term_condvar() from the joint Hessian of
# both predictors' random effects) plus the part due to the estimated
# parameters phi = (variance parameters, dispersion, zero-inflation and
# fixed-effect coefficients): J V J', with J = d b^/d phi the derivative of
# the conditional modes (implicit function theorem on the mode equation in
# the spherical u, b = Lambda u) and V = 2 H^-1 the covariance of phi (H the
# fit's Hessian of the deviance). This is TMB's sdreport() for random
# effects, as glmmTMB's ranef() reports them.
extended_condvar <- function(object) {
  re <- extended_re_terms(object)
  s <- extended_mode_sensitivity(object)
  base <- if (any(re$zi)) joint_term_condvar(s) else term_condvar(object)
  JV <- s$J %*% s$V
  lapply(seq_along(re$reterms), function(t) {
    a <- base[[t]]
    q <- s$q_t[t]
    for (j in seq_len(s$L_t[t])) {
      r <- s$offs[t] + (j - 1L) * q + seq_len(q)
      a[, , j] <- a[, , j] + JV[r, , drop = FALSE] %*% t(s$J[r, , drop = FALSE])
    }
    a
  })
}

# Per term, the arrays (q x q x levels) of Var(b_j | y) at the estimates as
# the diagonal blocks of Lambda Huu^-1 Lambda' (`s` from
# extended_mode_sensitivity(): Huu the joint Hessian in the spherical u of
# both predictors' random effects, which each row's 2 x 2 information in
# (eta, zeta) couples), by solves on the sparse Cholesky factor of Huu, a
# chunk of levels at a time (no dense block above ~1e7 numbers).
joint_term_condvar <- function(s) {
  Q <- ncol(s$Huu)
  fac <- Matrix::Cholesky(Matrix::forceSymmetric(s$Huu))
  lapply(seq_along(s$q_t), function(t) {
    q <- s$q_t[t]
    L <- s$L_t[t]
    a <- array(0, c(q, q, L))
    per <- max(1L, min(floor(2000 / q), floor(1e7 / (Q * q))))
    for (start in seq.int(1L, L, by = per)) {
      lev <- seq.int(start, min(L, start + per - 1L))
      cols <- s$offs[t] + rep((lev - 1L) * q, each = q) + rep(seq_len(q), length(lev))
      E <- Matrix::sparseMatrix(i = cols, j = seq_along(cols), x = 1,
                                dims = c(Q, length(cols)))
      Hinv <- as.matrix(Matrix::solve(fac, E, system = "A"))[cols, , drop = FALSE]
      Lc <- as.matrix(s$Lambda[cols, cols, drop = FALSE])
      Vb <- Lc %*% Hinv %*% t(Lc)
      for (l in seq_along(lev)) {
        idx <- (l - 1L) * q + seq_len(q)
        a[, , lev[l]] <- Vb[idx, idx, drop = FALSE]
      }
    }
    a
  })
}

# The random-effects design of both linear predictors stacked (rows 1..n:
# the conditional predictor eta; rows n+1..2n, only when some term is a
# zero-inflation term: the zero-inflation logit zeta), columns in lme4's
# order (terms, then levels, then the term's columns; `offs`: each term's
# first column - 1).
stacked_re_design <- function(re, n, offs) {
  reterms <- re$reterms
  Matrix::sparseMatrix(
    i = unlist(Map(function(rt, z) rep(seq_len(n) + z * n, length(rt$cnms)),
                   reterms, re$zi)),
    j = unlist(Map(function(rt, o) {
      q <- length(rt$cnms)
      o + (as.integer(rt$factor) - 1L) * q + rep(seq_len(q), each = n)
    }, reterms, offs[seq_along(reterms)])),
    x = unlist(lapply(reterms, function(rt) as.vector(rt$Z))),
    dims = c(n * (1L + any(re$zi)), offs[length(offs)]))
}

# The observed information of each row in its linear predictors as a
# function applying it to stacked rows (a vector or matrix with the rows of
# stacked_re_design()): W = -w d2 log f / d(eta, zeta)^2 per row, only its
# (eta, eta) element when `two` is FALSE (no zero-inflation random effects).
stacked_weights <- function(d, w, two) {
  ee <- -w * d$ee
  if (!two) return(function(M) ee * M)
  ez <- -w * d$ez
  zz <- -w * d$zz
  n <- length(ee)
  function(M) {
    if (is.null(dim(M))) {
      top <- M[seq_len(n)]
      bot <- M[n + seq_len(n)]
      return(c(ee * top + ez * bot, ez * top + zz * bot))
    }
    top <- M[seq_len(n), , drop = FALSE]
    bot <- M[n + seq_len(n), , drop = FALSE]
    rbind(ee * top + ez * bot, ez * top + zz * bot)
  }
}

# What the parameter-uncertainty part of sdreport() needs, for a fit without
# structured terms: the random-effects design `Z` (stacked_re_design(): n x
# Q, or 2n x Q with zero-inflation random effects) and `Lambda` (b = Lambda
# u), over the terms of extended_re_terms(); `Huu`, the Hessian of minus the
# log joint density in the spherical u at the modes (Z Lambda)' W (Z
# Lambda) + I with W the observed weights (per row 2 x 2 in (eta, zeta) with
# zero-inflation random effects); `J` = d b^/d phi (Q x k), the derivative of
# the conditional modes in phi = c(theta (the conditional model's, then the
# zero-inflation model's), dispersion, zero-inflation and fixed-effect
# coefficients), by the implicit function theorem on the mode equation; `V`
# = 2 H^-1 (k x k), the covariance of phi from the fit's Hessian of the
# deviance (NA when there is none or it cannot be inverted); and the layout
# `q_t`, `L_t` (columns and levels per term), `offs` (each term's first
# column - 1).
extended_mode_sensitivity <- function(object) {
  ext <- object$extended
  re <- extended_re_terms(object)
  reterms <- re$reterms
  two <- any(re$zi)
  nth <- length(re$theta)
  kd <- length(ext$disp$beta)
  kz <- length(ext$zi$beta)
  p <- length(object$beta)
  k <- nth + kd + kz + p
  H <- ext$hessian
  V <- if (is.null(H)) NULL else tryCatch(solve(H), error = function(e) NULL)
  k_par <- length(re$par) + kd + kz + p
  V <- if (is.null(V)) matrix(NA_real_, k_par, k_par) else V + t(V)

  # Design of the random effects and Lambda, both in lme4's column order
  # (terms, then levels, then the term's columns).
  q_t <- vapply(reterms, function(rt) length(rt$cnms), 1L)
  L_t <- vapply(reterms, function(rt) nlevels(rt$factor), 1L)
  offs <- cumsum(c(0L, q_t * L_t))
  n <- length(object$eta)
  Z <- stacked_re_design(re, n, offs)
  thetas <- split_theta(re$theta, reterms)
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
  u <- re$u

  # Derivatives of each observation's log-density in its linear predictors.
  d <- extended_loglik_derivs(object, zeta_terms = two)
  w <- if (is.null(ext$prior_weights)) rep(1, n) else as.vector(ext$prior_weights)
  Wx <- stacked_weights(d, w, two)
  ZL <- Z %*% Lambda
  Huu <- Matrix::crossprod(ZL, Wx(ZL)) + Matrix::Diagonal(ncol(ZL))
  s <- as.vector(Matrix::crossprod(Z, w * c(d$e, if (two) d$z)))
  rhs <- matrix(0, ncol(ZL), k)
  dL_u <- matrix(0, ncol(ZL), k)
  for (m in seq_len(nth)) {
    E <- matrix(0, q_t[th_pos[m, 1L]], q_t[th_pos[m, 1L]])
    E[th_pos[m, 2L], th_pos[m, 3L]] <- 1
    dL <- block_mat(th_pos[m, 1L], E)
    dLu <- as.vector(dL %*% u)
    dL_u[, m] <- dLu
    rhs[, m] <- as.vector(-Matrix::crossprod(dL, s) +
                            Matrix::crossprod(ZL, Wx(as.vector(Z %*% dLu))))
  }
  # minus d(score)/d(coefficients): each block moves eta (beta), zeta (the
  # zero-inflation coefficients) or the log-dispersion (its coefficients)
  cross <- function(M) as.matrix(Matrix::crossprod(ZL, M))
  on_rows <- function(v_eta, v_zeta, M) if (two) rbind(v_eta * M, v_zeta * M) else v_eta * M
  if (kd) rhs[, nth + seq_len(kd)] <- cross(on_rows(-w * d$ed, -w * d$zd, ext$disp$X))
  if (kz) rhs[, nth + kd + seq_len(kz)] <- cross(on_rows(-w * d$ez, -w * d$zz, ext$zi$X))
  rhs[, nth + kd + kz + seq_len(p)] <- cross(on_rows(-w * d$ee, -w * d$ez, object$X))
  du <- -as.matrix(Matrix::solve(Huu, rhs))
  J <- dL_u + as.matrix(Lambda %*% du)
  # V is over the covariance parameters `par`: for structured terms, which
  # are not theta itself, the derivatives in theta go through d theta / d par
  # (the engine's map, by central differences)
  if (has_structured_terms(reterms)) {
    D <- numeric_jacobian(function(x) theta_of_par(reterms, x), re$par)
    J <- cbind(J[, seq_len(nth), drop = FALSE] %*% D, J[, -seq_len(nth), drop = FALSE])
  }
  # A covariance parameter on its bound (a standard deviation of 0, a
  # correlation of -1 or 1) is infinite in glmmTMB's parameterization, where
  # the modes do not move with it: as in glmmTMB, it adds no uncertainty
  # (the delta method does not hold there either way).
  layout <- covariance_layout(reterms)
  on_bound <- re$par <= unlist(lapply(layout, `[[`, "lower")) |
    re$par >= unlist(lapply(layout, `[[`, "upper"))
  J[, which(on_bound)] <- 0
  list(Z = Z, Lambda = Lambda, Huu = Huu, J = J, V = V, q_t = q_t, L_t = L_t, offs = offs)
}

# First and second derivatives of each observation's conditional
# log-density (the zero-inflated mixture where there is zero inflation) in
# its linear predictors: eta (conditional mean), zeta (logit of the
# zero-inflation probability) and delta (log of the dispersion parameter),
# by central differences of the log-density at the fitted values (step 1e-4:
# truncation and rounding errors both near 1e-8, far below the tolerances
# these variances are used with). Returns e, ee, ez, ed (zeros where a
# component is absent) and, when `zeta_terms` (random effects in the
# zero-inflation model), also z, zz and zd.
extended_loglik_derivs <- function(object, zeta_terms = FALSE) {
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
  out <- list(e = (fp - fm) / (2 * h), ee = (fp - 2 * f0 + fm) / h^2,
              ez = if (is.null(zeta)) zero else mixed(dz = 1),
              ed = if (is.null(delta)) zero else mixed(dd = 1))
  if (zeta_terms) {
    zp <- f(dz = h)
    zm <- f(dz = -h)
    out$z <- (zp - zm) / (2 * h)
    out$zz <- (zp - 2 * f0 + zm) / h^2
    out$zd <- if (is.null(delta)) zero else
      (f(0, h, h) - f(0, h, -h) - f(0, -h, h) + f(0, -h, -h)) / (4 * h^2)
  }
  out
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
