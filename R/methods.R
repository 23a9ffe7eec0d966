# Extractor methods of fitted mixed models: those that linear ("lmm") and
# generalized linear ("glmm") mixed models share, written once on their
# common parent class "mixedrs_fit" (see fit_class() in R/fit-object.R), and
# those specific to "lmm" fits; the "glmm"-specific ones are in
# R/glmm-methods.R. Also the internal mer_*() helpers used by both and by
# other files.
#
# Every method reads fields stored by lmm() or glmm() (see the object
# contracts in R/lmm.R and R/glmm.R); none calls back into the Rust engine,
# so a fit restored with readRDS() supports all of them. Results follow
# lme4's methods for "merMod" objects: same values, names and shapes.

# ---------------------------------------------------------------------------
# Generics: nlme's fixef/ranef/VarCorr (re-exported, shared with lme4) and
# three of our own.

#' @importFrom nlme fixef
#' @export
nlme::fixef

#' @importFrom nlme ranef
#' @export
nlme::ranef

#' @importFrom nlme VarCorr
#' @export
nlme::VarCorr

#' Number of levels of the grouping factors
#'
#' @param object A fitted model.
#' @param ... Passed to methods.
#' @return For `"lmm"` and `"glmm"` fits: a named integer vector, the number
#'   of levels of each distinct grouping factor (names as in the printed
#'   "groups" line).
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' ngrps(fit)
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' ngrps(gfit)
#' @export
ngrps <- function(object, ...) UseMethod("ngrps")

#' @rdname ngrps
#' @export
ngrps.mixedrs_fit <- function(object, ...) mer_ngrps(object)

#' @rdname ngrps
#' @export
ngrps.default <- function(object, ...) lme4_fallback("ngrps", object, ...)

#' Is a mixed-model fit singular?
#'
#' A fit is singular when some random-effects covariance matrix is not of
#' full rank: a variance estimated as zero, or correlations of +1 or -1. As
#' in lme4, this is detected from the diagonal elements of the relative
#' covariance factors (the elements of `theta` with lower bound 0) being
#' smaller than `tol`.
#'
#' @param x A fitted model.
#' @param tol Tolerance on the diagonal elements of the relative covariance
#'   factors.
#' @param ... Passed to methods; an error for `"lmm"` and `"glmm"` fits
#'   (lme4's `isSingular()` has no further arguments).
#' @return `TRUE` or `FALSE`.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' isSingular(fit)
#' # Dyestuff2's batch variance is estimated as 0: a singular fit
#' sing <- lmm(Yield ~ 1 + (1 | Batch), lme4::Dyestuff2)
#' VarCorr(sing)
#' isSingular(sing)
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' isSingular(gfit)
#' @export
isSingular <- function(x, tol = 1e-4, ...) UseMethod("isSingular")

#' @rdname isSingular
#' @export
isSingular.mixedrs_fit <- function(x, tol = 1e-4, ...) {
  check_no_dots(..., caller = "isSingular()")
  any(x$theta[x$lower == 0] < tol)
}

#' @rdname isSingular
#' @export
isSingular.default <- function(x, tol = 1e-4, ...) {
  lme4_fallback("isSingular", x, tol = tol, ...)
}

#' REML criterion of a linear mixed model
#'
#' The REML criterion (minus twice the restricted log-likelihood) at the
#' estimates. For a fit by maximum likelihood it is evaluated at the ML
#' estimates, as `lme4::REMLcrit()` does.
#'
#' @param object A fitted model.
#' @param ... Passed to methods; an error for `"lmm"` fits (lme4's
#'   `REMLcrit()` has no further arguments).
#' @return A number.
#' @seealso [deviance.lmm()], [logLik.lmm()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' REMLcrit(fit)
#' -2 * as.numeric(logLik(fit))   # the same number for a REML fit
#' @export
REMLcrit <- function(object, ...) UseMethod("REMLcrit")

#' @rdname REMLcrit
#' @export
REMLcrit.lmm <- function(object, ...) {
  check_no_dots(..., caller = "REMLcrit()")
  lmm_devcrit(object, REML = TRUE)
}

#' @rdname REMLcrit
#' @export
REMLcrit.default <- function(object, ...) lme4_fallback("REMLcrit", object, ...)

# mixedrs' generics mask lme4's functions of the same name when mixedrs is
# attached later; other objects (lme4 fits) are handed to lme4's version.
lme4_fallback <- function(fun, object, ...) {
  if (requireNamespace("lme4", quietly = TRUE)) {
    return(getExportedValue("lme4", fun)(object, ...))
  }
  stop(fun, "() has no method for an object of class '", class(object)[1L],
       "'", call. = FALSE)
}

# ---------------------------------------------------------------------------
# Small internal helpers shared by the methods of both classes and by print.R.

is_glmm <- function(object) inherits(object, "glmm")

lmm_is_reml <- function(object) isTRUE(object$REML)

# Does the model have a scale parameter (lme4's dims["useSc"])? Always for
# linear mixed models; for GLMMs not for the binomial and Poisson families.
mer_use_sc <- function(object) {
  dims <- object$devcomp$dims
  if (is.null(dims) || is.na(dims["useSc"])) return(!is_glmm(object))
  as.logical(dims[["useSc"]])
}

# Number of estimated parameters (lme4's npar): fixed effects, the
# covariance parameters (`par`: theta for unstructured terms, fewer for
# structured ones) and, when the model has one, the scale parameter.
mer_npar <- function(object) {
  if (is_extended_fit(object)) return(object$extended$df)
  # lme4 counts theta for every negative binomial family, fixed or not.
  extra <- if (identical(object$extended$style, "glmer.nb")) 1L else length(object$extended$extra)
  length(object$beta) + length(cov_par(object)) + as.integer(mer_use_sc(object)) + extra
}

# The optimizer's covariance parameters of a fit (lme4 2.x's `par`; theta
# for fits whose terms are all unstructured).
cov_par <- function(object) if (is.null(object$par)) object$theta else object$par

mer_nobs <- function(object) {
  if (is_sums_fit(object)) return(as.integer(object$sums$n))
  if (!is.null(object$table)) return(as.integer(object$table$n))
  nrow(object$frame)
}

mer_na_action <- function(object) {
  if (!is.null(object$na.action)) object$na.action else attr(object$frame, "na.action")
}

mer_obs_names <- function(object, n) {
  nm <- rownames(object$frame)
  if (is.null(nm)) as.character(seq_len(n)) else nm
}

# Per-observation values named by the rows of the model frame and padded to
# the data's length as the fit's na.action asks (na.exclude): napredict()
# for fitted values and predictions, naresid() for residuals.
mer_per_obs <- function(object, values, pad = c("predict", "resid")) {
  pad <- match_choice(pad)
  values <- as.vector(values)
  names(values) <- mer_obs_names(object, length(values))
  na_act <- mer_na_action(object)
  if (is.null(na_act)) return(values)
  if (pad == "predict") napredict(na_act, values) else naresid(na_act, values)
}

mer_ngrps <- function(object) vapply(object$flist, nlevels, 1L)

# Class of a result of `what` (e.g. "ranef") for a fit: "<what>.lmm", with
# "<what>.glmm" in front for "glmm" fits (whose results share the layout and
# the methods of the "lmm" ones).
mer_result_class <- function(object, what) {
  # (lme4's class last, so that code testing inherits(x, "ranef.mer") takes
  # them; our methods come first)
  c(if (is_glmm(object)) paste0(what, ".glmm"), paste0(what, ".lmm"), paste0(what, ".mer"))
}

# Deviance (REML = FALSE) or REML criterion (REML = TRUE). The criterion the
# fit optimized is stored; the other one is evaluated at the fitted values
# from the stored components (log-determinants and penalized weighted RSS),
# including the prior-weights term, as lme4 does.
lmm_devcrit <- function(object, REML = NULL) {
  if (is.null(REML) || is.na(REML[1L])) REML <- lmm_is_reml(object)
  cmp <- object$devcomp$cmp
  fit_reml <- lmm_is_reml(object)
  if (REML && fit_reml) return(unname(cmp[["REML"]]))
  if (!REML && !fit_reml) return(unname(cmp[["dev"]]))
  n <- object$devcomp$dims[["n"]]
  log_w <- if (is_sums_fit(object)) object$sums$sum_log_w else sum(log(object$weights))
  if (REML) {
    df <- n - length(object$beta)
    unname(cmp[["ldL2"]] + cmp[["ldRX2"]] - log_w +
             df * (1 + log(2 * pi * cmp[["pwrss"]] / df)))
  } else {
    unname(cmp[["ldL2"]] - log_w + n * (1 + log(2 * pi * cmp[["pwrss"]] / n)))
  }
}

# ---------------------------------------------------------------------------
# Fixed and random effects.

#' Fixed-effects estimates
#'
#' @param object A fitted model of class `"lmm"` or `"glmm"`.
#' @param add.dropped Logical: when columns of the fixed-effects model matrix
#'   were dropped because it was rank deficient (and the model matrix records
#'   them in attribute `"col.dropped"`), add them back as `NA`, in their
#'   original positions.
#' @param ... Ignored.
#' @return A named numeric vector of fixed-effects estimates.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' fixef(fit)
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' fixef(gfit)
#' @aliases fixef.lmm fixef.glmm
#' @method fixef mixedrs_fit
#' @export
fixef.mixedrs_fit <- function(object, add.dropped = FALSE, ...) {
  # glmmTMB-style fits: the list of components (R/methods-extended.R)
  if (is_extended_fit(object)) return(fixef_extended(object))
  mer_fixef(object, add.dropped)
}

mer_fixef <- function(object, add.dropped = FALSE) {
  check_flag(add.dropped, "add.dropped", "fixef()")
  est <- object$beta
  names(est) <- colnames(object$X)
  dropped <- attr(object$X, "col.dropped")
  if (add.dropped && length(dropped)) {
    full <- rep(NA_real_, length(est) + length(dropped))
    nms <- character(length(full))
    kept <- seq_along(full)[-dropped]
    full[kept] <- est
    nms[kept] <- names(est)
    nms[dropped] <- names(dropped)
    names(full) <- nms
    est <- full
  }
  est
}

#' Conditional modes of the random effects
#'
#' Returns the conditional modes (BLUPs) of the random effects as lme4's
#' `ranef()` does: one data frame per grouping factor, with one row per level
#' and one column per random effect. Terms that share a grouping factor (for
#' example from `(Days || Subject)`) are combined into one data frame, their
#' columns in term order.
#'
#' @param object A fitted model of class `"lmm"` or `"glmm"`.
#' @param condVar Logical: attach the conditional covariance matrices of the
#'   random effects, as lme4 does (and by default, as lme4), in attribute
#'   `"postVar"` of each data frame? For a grouping factor with one term it is a `q x q x nlevels`
#'   array (level `j`'s matrix in `[, , j]`); for a factor shared by several
#'   terms (e.g. `(Days || Subject)`) a list of such arrays, one per term,
#'   named by the terms' columns. The matrices are
#'   `sigma^2 [Lambda (Lambda'Z'WZ Lambda + I)^-1 Lambda']_jj`, at the PIRLS
#'   weights of the conditional modes for `"glmm"` fits (sigma = 1 for the
#'   binomial and Poisson families). With `drop = TRUE` a scalar term's array
#'   becomes a vector.
#' @param drop Logical: return a named vector instead of a one-column data
#'   frame?
#' @param whichel Names of the grouping factors to return (default: all); a
#'   name that is not a grouping factor of the model is an error.
#' @param postVar lme4's old name of `condVar`: used, with lme4's
#'   deprecation warning, when `condVar` is not given.
#' @param ... Ignored, with a warning.
#' @return An object of class `"ranef.lmm"` (for `"glmm"` fits
#'   `c("ranef.glmm", "ranef.lmm")`): a named list of data frames (or of
#'   vectors when `drop = TRUE`).
#' @seealso [coef.lmm()] for fixed plus random effects per level.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' re <- ranef(fit)
#' head(re$Subject)
#' head(as.data.frame(re))
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' head(ranef(gfit)$herd)
#' @aliases ranef.lmm ranef.glmm
#' @method ranef mixedrs_fit
#' @export
ranef.mixedrs_fit <- function(object, condVar = TRUE, drop = FALSE, whichel = NULL,
                              postVar = FALSE, ...) {
  if (is_extended_fit(object)) {
    return(ranef_components(object, condVar, lme4_args = intersect(
      names(match.call())[-1L], c("drop", "whichel", "postVar")), ...))
  }
  check_no_dots(..., caller = "ranef()")
  # lme4's `postVar`: the deprecated name of `condVar`, used (with lme4's
  # warning) when given without `condVar`
  if (!missing(postVar) && missing(condVar)) {
    warning("'postVar' is deprecated: please use 'condVar' instead", call. = FALSE)
    condVar <- postVar
  }
  mer_ranef(object, condVar, drop, whichel, class = mer_result_class(object, "ranef"))
}

# Conditional modes as one data frame per grouping factor (lme4's layout),
# given the class of the result.
mer_ranef <- function(object, condVar, drop, whichel, class) {
  check_flag(condVar, "condVar", "ranef()")
  check_flag(drop, "drop", "ranef()")
  fl <- object$flist
  term_factor <- attr(fl, "assign")
  out <- lapply(seq_along(fl), function(i) {
    blocks <- lapply(object$b[term_factor == i], as.matrix)
    vals <- do.call(cbind, blocks)
    data.frame(vals, row.names = levels(fl[[i]]), check.names = FALSE)
  })
  names(out) <- names(fl)
  if (!is.null(whichel)) {
    unknown <- setdiff(whichel, names(out))
    if (!is.character(whichel) || length(unknown)) {
      stop("'whichel' must name grouping factors of the model (",
           paste(sQuote(names(out), FALSE), collapse = ", "), "), not ",
           paste(sQuote(unknown, FALSE), collapse = ", "), call. = FALSE)
    }
    out <- out[names(out) %in% whichel]
  }
  if (condVar) {
    pv <- factor_condvar(object)
    for (nm in names(out)) attr(out[[nm]], "postVar") <- pv[[nm]]
  }
  if (drop) {
    out <- lapply(out, function(d) {
      if (ncol(d) > 1L) return(d)
      v <- stats::setNames(d[[1L]], rownames(d))
      pv <- attr(d, "postVar")
      if (!is.null(pv)) attr(v, "postVar") <- drop(pv)
      v
    })
  }
  class(out) <- class
  out
}

#' @rdname ranef.mixedrs_fit
#' @param x An object of class `"ranef.lmm"`.
#' @method print ranef.lmm
#' @export
print.ranef.lmm <- function(x, ...) {
  print(unclass(x), ...)
  has_pv <- vapply(x, function(el) !is.null(attr(el, "postVar")), NA)
  if (any(has_pv)) {
    cat("with conditional variances for",
        paste(dQuote(names(x)[has_pv]), collapse = " "), "\n")
  }
  invisible(x)
}

#' @rdname ranef.mixedrs_fit
#' @param row.names,optional Ignored (present for the generic).
#' @details `as.data.frame()` gives the long format of lme4: columns `grpvar`
#'   (grouping factor), `term` (random effect, a factor in column order),
#'   `grp` (level; a factor whose levels are ordered by the first random
#'   effect, as lme4 orders them for plotting) and `condval` (conditional
#'   mode), and, for `ranef(..., condVar = TRUE)`, `condsd` (conditional
#'   standard deviation: the square root of the diagonal of `"postVar"`).
#' @method as.data.frame ranef.lmm
#' @export
as.data.frame.ranef.lmm <- function(x, row.names = NULL, optional = FALSE, ...) {
  pieces <- lapply(names(x), function(gv) {
    d <- x[[gv]]
    if (!is.data.frame(d)) {
      stop("as.data.frame() needs the data frames of ranef(..., drop = FALSE)",
           call. = FALSE)
    }
    lev <- rownames(d)
    nterm <- ncol(d)
    grp <- stats::reorder(factor(lev), d[[1L]], FUN = mean)
    piece <- data.frame(
      grpvar = rep(gv, nrow(d) * nterm),
      term = factor(rep(colnames(d), each = nrow(d)), levels = unique(colnames(d))),
      grp = rep(grp, nterm),
      condval = unlist(d, use.names = FALSE),
      stringsAsFactors = FALSE
    )
    pv <- attr(d, "postVar")
    if (!is.null(pv)) piece$condsd <- condvar_sd(pv)
    piece
  })
  if (any(has_sd <- vapply(pieces, function(p) "condsd" %in% names(p), NA))) {
    pieces[!has_sd] <- lapply(pieces[!has_sd], function(p) {
      p$condsd <- rep(NA_real_, nrow(p))
      p
    })
  }
  out <- do.call(rbind, pieces)
  rownames(out) <- NULL
  out
}

#' Coefficients per level of the grouping factors
#'
#' For each grouping factor, the fixed effects plus the conditional modes of
#' the random effects of each level (as lme4's `coef()` for mixed models).
#' Random effects without a matching fixed effect get a fixed part of 0.
#' For `"glmm"` fits the coefficients are on the scale of the linear
#' predictor.
#'
#' @param object A fitted model of class `"lmm"` or `"glmm"`.
#' @param ... Ignored, with a warning.
#' @return An object of class `"coef.lmm"` (for `"glmm"` fits
#'   `c("coef.glmm", "coef.lmm")`): a named list of data frames, one per
#'   grouping factor, one row per level.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' head(coef(fit)$Subject)
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' head(coef(gfit)$herd)
#' @aliases coef.lmm coef.glmm
#' @method coef mixedrs_fit
#' @export
coef.mixedrs_fit <- function(object, ...) {
  if (is_extended_fit(object)) return(coef_components(object, ...))
  check_no_dots(..., caller = "coef()")
  mer_coef(object)
}

# Fixed plus random effects per level, one data frame per grouping factor
# (lme4's coef() of a merMod).
mer_coef <- function(object) {
  fe <- as.data.frame(t(mer_fixef(object)), check.names = FALSE)
  re <- mer_ranef(object, condVar = FALSE, drop = FALSE, whichel = NULL, class = NULL)
  re_names <- unique(unlist(lapply(re, colnames), use.names = FALSE))
  missing_fe <- setdiff(re_names, names(fe))
  if (length(missing_fe)) {
    zeros <- as.data.frame(matrix(0, 1L, length(missing_fe),
                                  dimnames = list(NULL, missing_fe)),
                           check.names = FALSE)
    fe <- cbind(zeros, fe)
  }
  out <- lapply(re, function(r) {
    val <- fe[rep.int(1L, nrow(r)), , drop = FALSE]
    rownames(val) <- rownames(r)
    for (nm in colnames(r)) val[[nm]] <- val[[nm]] + r[[nm]]
    val
  })
  class(out) <- mer_result_class(object, "coef")
  out
}

#' @rdname coef.mixedrs_fit
#' @param x An object of class `"coef.lmm"`.
#' @method print coef.lmm
#' @export
print.coef.lmm <- function(x, ...) {
  print(unclass(x), ...)
  invisible(x)
}

# ---------------------------------------------------------------------------
# Scale, covariance and likelihood.

#' Residual standard deviation
#'
#' @param object A fitted model of class `"lmm"` or `"glmm"`.
#' @param ... Ignored.
#' @return For `"lmm"` fits the estimated residual standard deviation (the
#'   REML estimate for REML fits, the ML estimate for ML fits). For `"glmm"`
#'   fits, as lme4: 1 for the binomial and Poisson families, otherwise the
#'   estimated scale `sqrt(pwrss / n)` (the penalized weighted residual sum
#'   of squares of the final iteration over the number of observations).
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' sigma(fit)
#' @aliases sigma.lmm sigma.glmm
#' @importFrom stats sigma
#' @method sigma mixedrs_fit
#' @export
sigma.mixedrs_fit <- function(object, ...) {
  if (is_extended_fit(object)) return(object$extended$sigma)
  object$sigma
}

#' Covariance matrix of the fixed-effects estimates
#'
#' @param object A fitted model of class `"lmm"`.
#' @param correlation Logical: attach the correlation matrix as attribute
#'   `"correlation"`?
#' @param sigm Residual standard deviation the covariance is scaled by
#'   (default: `sigma(object)`), as lme4's `sigm`.
#' @param use.hessian As lme4 for linear mixed models: `TRUE` is an error
#'   (the covariance of the fixed effects of an `"lmm"` comes from `R_X`;
#'   there is no Hessian in the fixed effects), `NULL` or `FALSE` give that
#'   covariance.
#' @param ... Ignored.
#' @return A p x p matrix (scaled by the residual variance) with the names
#'   of the fixed effects as dimnames. lme4 returns the same numbers as a
#'   `Matrix` package object; this is a base matrix.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' vcov(fit)
#' @importFrom stats vcov
#' @export
vcov.lmm <- function(object, correlation = FALSE, sigm = sigma(object),
                     use.hessian = NULL, ...) {
  if (!is.null(use.hessian)) {
    check_flag(use.hessian, "use.hessian", "vcov()")
    if (use.hessian) {
      stop("vcov(): use.hessian = TRUE is not available for linear mixed ",
           "models: their fixed-effects covariance comes from R_X (there is ",
           "no Hessian in the fixed effects), as in lme4", call. = FALSE)
    }
  }
  v <- as.matrix(object$vcov)
  if (!missing(sigm)) {
    if (!is.numeric(sigm) || length(sigm) != 1L || !is.finite(sigm) || sigm < 0) {
      stop("vcov(): 'sigm' must be a single non-negative number, not ",
           deparse1(sigm), call. = FALSE)
    }
    v <- v * (sigm / object$sigma)^2
  }
  nms <- colnames(object$X)
  dimnames(v) <- list(nms, nms)
  if (correlation) attr(v, "correlation") <- stats::cov2cor(v)
  v
}

#' Log-likelihood of a linear mixed model
#'
#' The restricted (REML) or maximum log-likelihood at the estimates, as
#' lme4's `logLik()`: by default the criterion the model was fitted with.
#'
#' @param object A fitted model of class `"lmm"`.
#' @param REML Logical: restricted log-likelihood? `NULL` (default) uses the
#'   fitting criterion.
#' @param ... Ignored.
#' @return An object of class `"logLik"` with attributes `df` (number of
#'   fixed effects + number of covariance parameters + 1 for the residual
#'   standard deviation) and `nobs`; [AIC()] and [BIC()] use it.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' logLik(fit)
#' AIC(fit)
#' BIC(fit)
#' @importFrom stats logLik
#' @export
logLik.lmm <- function(object, REML = NULL, ...) {
  mer_loglik(object, -lmm_devcrit(object, REML = REML) / 2)
}

# A "logLik" object with lme4's attributes: df = npar, nobs = nall = rows
# used in the fit.
mer_loglik <- function(object, value) {
  n <- mer_nobs(object)
  structure(value, nobs = n, nall = n, df = mer_npar(object), class = "logLik")
}

#' Deviance of a linear mixed model
#'
#' Follows lme4's `deviance()`: for a fit by maximum likelihood, minus twice
#' the maximized log-likelihood. For a REML fit, `deviance(fit)` warns that it
#' is deprecated and returns the REML criterion (see [REMLcrit()]), while
#' `deviance(fit, REML = FALSE)` (or any non-`NULL` `REML`, as in lme4) gives
#' the ML deviance evaluated at the REML estimates.
#'
#' @param object A fitted model of class `"lmm"`.
#' @param REML `NULL` or logical, see Description.
#' @param ... Ignored.
#' @return A number.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy,
#'            REML = FALSE)
#' deviance(fit)
#' @importFrom stats deviance
#' @export
deviance.lmm <- function(object, REML = NULL, ...) {
  if (lmm_is_reml(object) && is.null(REML)) {
    warning("deviance() is deprecated for REML fits; use REMLcrit for the REML ",
            "criterion or deviance(.,REML=FALSE) for deviance calculated at the ",
            "REML fit", call. = FALSE)
    return(lmm_devcrit(object, REML = TRUE))
  }
  lmm_devcrit(object, REML = FALSE)
}

#' Number of observations
#'
#' @param object A fitted model of class `"lmm"` or `"glmm"`.
#' @param ... Ignored.
#' @return The number of observations used in the fit (rows of the model
#'   frame).
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' nobs(fit)
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' nobs(gfit)
#' @aliases nobs.lmm nobs.glmm
#' @importFrom stats nobs
#' @method nobs mixedrs_fit
#' @export
nobs.mixedrs_fit <- function(object, ...) {
  mer_nobs(object)
}

#' Residual degrees of freedom
#'
#' @param object A fitted model of class `"lmm"` or `"glmm"`.
#' @param ... Ignored.
#' @return Number of observations minus the number of estimated parameters
#'   (fixed effects, covariance parameters and, except for binomial and
#'   Poisson GLMMs, the residual standard deviation or scale), as lme4
#'   defines it.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' df.residual(fit)
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' df.residual(gfit)
#' @aliases df.residual.lmm df.residual.glmm
#' @importFrom stats df.residual
#' @method df.residual mixedrs_fit
#' @export
df.residual.mixedrs_fit <- function(object, ...) {
  mer_df_residual(object)
}

mer_df_residual <- function(object) mer_nobs(object) - mer_npar(object)

# ---------------------------------------------------------------------------
# Fitted values, residuals, weights.

#' Fitted values of a linear mixed model
#'
#' @param object A fitted model of class `"lmm"`.
#' @param ... Ignored.
#' @return Fitted values (fixed plus random part plus offset), named by the
#'   row names of the model frame, padded with `NA` for omitted rows when
#'   `na.action = na.exclude` was used.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' head(fitted(fit))
#' @importFrom stats fitted napredict
#' @export
fitted.lmm <- function(object, ...) {
  require_rows(object, "fitted()")
  mer_per_obs(object, object$fitted, pad = "predict")
}

#' Residuals of a linear mixed model
#'
#' As lme4's `residuals()` for linear mixed models: `"response"` and
#' `"working"` residuals are observed minus fitted values; `"pearson"` and
#' `"deviance"` residuals are multiplied by the square root of the prior
#' weights. `"partial"` residuals are not available.
#'
#' @param object A fitted model of class `"lmm"`.
#' @param type Type of residuals (default `"response"`).
#' @param scaled Logical: divide by the residual standard deviation?
#' @param ... Ignored.
#' @return A named numeric vector, padded with `NA` for omitted rows when
#'   `na.action = na.exclude` was used.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' head(residuals(fit))
#' head(residuals(fit, type = "pearson", scaled = TRUE))
#' @importFrom stats residuals naresid
#' @export
residuals.lmm <- function(object,
                          type = c("response", "working", "deviance", "pearson", "partial"),
                          scaled = FALSE, ...) {
  type <- match_choice(type)
  require_rows(object, "residuals()")
  raw <- as.vector(object$y) - as.vector(object$fitted)
  r <- switch(type,
              response = ,
              working = raw,
              deviance = ,
              pearson = sqrt(as.vector(object$weights)) * raw,
              partial = stop("partial residuals are not implemented yet", call. = FALSE))
  if (scaled) r <- r / object$sigma
  mer_per_obs(object, r, pad = "resid")
}

#' Prior weights of a linear mixed model
#'
#' @param object A fitted model of class `"lmm"`.
#' @param type Only `"prior"` weights exist for linear mixed models.
#' @param ... Ignored.
#' @return The prior weights (all 1 when none were given), one per
#'   observation used in the fit.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' summary(weights(fit))
#' # with prior weights: the second half of each subject's days counts double
#' wfit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy,
#'             weights = ifelse(Days < 5, 1, 2))
#' head(weights(wfit), 10)
#' @importFrom stats weights
#' @export
weights.lmm <- function(object, type = c("prior", "working"), ...) {
  type <- match_choice(type)
  if (type != "prior") stop("working weights only available for GLMMs", call. = FALSE)
  require_rows(object, "weights()")
  as.vector(object$weights)
}

# ---------------------------------------------------------------------------
# Formula, model matrices and frame, call.

#' Model formula of a mixed model
#'
#' @param x A fitted model of class `"lmm"` or `"glmm"`.
#' @param fixed.only Logical: drop the random-effects terms?
#' @param random.only Logical: keep only the random-effects terms (expanded
#'   as lme4 does: `||` into independent terms, `g1/g2` into `g2:g1` and `g1`)
#'   and the response?
#' @param ... Ignored.
#' @return A formula.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' formula(fit)
#' formula(fit, fixed.only = TRUE)
#' formula(fit, random.only = TRUE)
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' formula(gfit, fixed.only = TRUE)
#' @aliases formula.lmm formula.glmm
#' @importFrom stats formula
#' @method formula mixedrs_fit
#' @export
formula.mixedrs_fit <- function(x, fixed.only = FALSE, random.only = FALSE, ...) {
  if (missing(fixed.only) && random.only) fixed.only <- FALSE
  mer_formula(x, fixed.only, random.only)
}

mer_formula <- function(x, fixed.only = FALSE, random.only = FALSE) {
  if (fixed.only && random.only) stop("can't specify 'only fixed' and 'only random' terms")
  form <- x$formula
  if (is.null(form)) form <- stats::as.formula(x$call$formula)
  if (!fixed.only && !random.only) return(form)
  # The parts of the formula the model was built from (a `.` written out).
  if (!is.null(x$model_formula)) form <- x$model_formula
  if (fixed.only) return(parse_lmm_formula(form)$fixed_formula)
  bars <- parse_lmm_formula(form)$bars
  rhs <- Reduce(function(a, b) call("+", a, b), lapply(bars, function(b) call("(", b)))
  with_rhs(form, rhs)
}

#' Model matrices of a mixed model
#'
#' @param object A fitted model of class `"lmm"` or `"glmm"`.
#' @param type `"fixed"` (the fixed-effects model matrix X, with its
#'   attributes `assign` and `contrasts`) or `"random"` (the random-effects
#'   model matrix Z as a sparse `Matrix::dgCMatrix`, columns in lme4's order:
#'   term by term, level by level, random effect by random effect).
#' @param ... Ignored.
#' @return A matrix.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' head(model.matrix(fit))
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' # the random-effects model matrix Z, sparse (15 herds, one column each)
#' Z <- model.matrix(gfit, type = "random")
#' dim(Z)
#' Z[1:8, 1:4]
#' @aliases model.matrix.lmm model.matrix.glmm
#' @importFrom stats model.matrix
#' @method model.matrix mixedrs_fit
#' @export
model.matrix.mixedrs_fit <- function(object, type = c("fixed", "random"), ...) {
  mer_model_matrix(object, match_choice(type))
}

mer_model_matrix <- function(object, type) {
  require_rows(object, "model.matrix()")
  if (type == "fixed") return(object$X)
  blocks <- lapply(object$reterms, expand_re_columns)
  do.call(cbind, blocks)
}

# Sparse n x (levels * q) block of Z for one term: column (l - 1) * q + j
# holds the term's j-th raw column on rows whose grouping level is l.
expand_re_columns <- function(term) {
  raw <- as.matrix(term$Z)
  lev <- as.integer(term$factor)
  q <- ncol(raw)
  n <- nrow(raw)
  Matrix::sparseMatrix(
    i = rep(seq_len(n), q),
    j = as.vector(outer((lev - 1L) * q, seq_len(q), `+`)),
    x = as.vector(raw),
    dims = c(n, nlevels(term$factor) * q),
    dimnames = list(rownames(raw), rep(levels(term$factor), each = q))
  )
}

#' Model frame of a mixed model
#'
#' @param formula A fitted model of class `"lmm"` or `"glmm"`.
#' @param fixed.only Logical: keep only the variables of the fixed-effects
#'   part of the formula, with the response? As lme4 does, the `(weights)`
#'   and `(offset)` columns are kept for `"lmm"` fits but not for `"glmm"`
#'   fits.
#' @param ... Ignored.
#' @return The model frame used in the fit (a data frame).
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' head(model.frame(fit))
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' head(model.frame(gfit))
#' @aliases model.frame.lmm model.frame.glmm
#' @importFrom stats model.frame
#' @method model.frame mixedrs_fit
#' @export
model.frame.mixedrs_fit <- function(formula, fixed.only = FALSE, ...) {
  require_rows(formula, "model.frame()")
  fr <- formula$frame
  if (fixed.only) {
    # the variables of the fixed-effects formula (response included), in the
    # frame's column order; lme4 keeps the "(weights)" and "(offset)" columns
    # for lmer() fits but not for glmer() fits (whose frames lack the
    # attribute that lists them)
    fixed <- mer_formula(formula, fixed.only = TRUE)
    vars <- vapply(as.list(attr(stats::terms(fixed), "variables"))[-1L], deparse1, "")
    extra <- if (is_glmm(formula)) character() else c("(weights)", "(offset)")
    keep <- c(gsub("`", "", vars, fixed = TRUE), extra)
    fr <- fr[names(fr) %in% keep]
  }
  fr
}

#' The call of a mixed model
#'
#' Lets [stats::update()] refit the model with changed arguments, e.g.
#' `update(fit, . ~ . - Days)`, `update(fit, REML = FALSE)` or, for a
#' [glmm()] fit, `update(gfit, nAGQ = 5)`.
#'
#' @param x A fitted model of class `"lmm"` or `"glmm"`.
#' @param ... Ignored.
#' @return The matched call of [lmm()] or [glmm()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' getCall(fit)
#' fit_ml <- update(fit, REML = FALSE)
#' getCall(fit_ml)
#' logLik(fit_ml)
#' fit_ri <- update(fit, . ~ . - (Days | Subject) + (1 | Subject))
#' formula(fit_ri)
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' gfit_agq <- update(gfit, nAGQ = 5)
#' getCall(gfit_agq)
#' @aliases getCall.lmm getCall.glmm
#' @importFrom stats getCall
#' @method getCall mixedrs_fit
#' @export
getCall.mixedrs_fit <- function(x, ...) {
  x$call
}


# ---------------------------------------------------------------------------
# lme4's family(), terms(), extractAIC() and getData() for both classes.

#' Family of a linear mixed model
#'
#' As lme4's `family()` on an `lmer()` fit: the Gaussian family with the
#' identity link.
#'
#' @param object A fitted model of class `"lmm"`.
#' @param ... Not used (an error if given).
#' @return `gaussian()`.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' family(fit)
#' @method family lmm
#' @export
family.lmm <- function(object, ...) {
  check_no_dots(..., caller = "family()")
  stats::gaussian()
}

#' Terms of a mixed model
#'
#' As lme4's `terms()`: by default the terms of the fixed-effects part of
#' the formula; with `random.only = TRUE` those of the random-effects part
#' (the bars replaced by `+`, so the grouping factors and the variables of
#' the random effects are terms); with `fixed.only = FALSE` those of the
#' model frame (every variable). The `predvars` attribute holds the
#' variables as the model frame evaluated them (for data-dependent bases
#' such as `poly()`).
#'
#' @param x A fitted model of class `"lmm"` or `"glmm"`.
#' @param fixed.only Logical: terms of the fixed-effects part only?
#' @param random.only Logical: terms of the random-effects part only?
#' @param ... Passed to [stats::terms.formula()] for the fixed-effects terms.
#' @return A `"terms"` object.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' attr(terms(fit), "term.labels")
#' attr(terms(fit, random.only = TRUE), "term.labels")
#' attr(terms(fit, fixed.only = FALSE), "term.labels")
#' @importFrom stats terms
#' @method terms mixedrs_fit
#' @export
terms.mixedrs_fit <- function(x, fixed.only = TRUE, random.only = FALSE, ...) {
  check_flag(fixed.only, "fixed.only", "terms()")
  check_flag(random.only, "random.only", "terms()")
  if (missing(fixed.only) && random.only) fixed.only <- FALSE
  if (fixed.only && random.only) {
    stop("can't specify 'only fixed' and 'only random' terms", call. = FALSE)
  }
  frame_terms <- attr(x$frame, "terms")
  if (fixed.only) {
    tt <- stats::terms.formula(mer_formula(x, fixed.only = TRUE), ...)
    attr(tt, "predvars") <- attr(frame_terms, "predvars.fixed")
    return(tt)
  }
  if (random.only) {
    form <- mer_formula(x, random.only = TRUE)
    tt <- stats::terms.formula(with_rhs(form, bars_to_sums(form[[3L]])))
    attr(tt, "predvars") <- attr(frame_terms, "predvars.random")
    return(tt)
  }
  frame_terms
}

#' AIC of a mixed model for model selection
#'
#' As lme4's `extractAIC()`: the equivalent degrees of freedom and the AIC
#' (with penalty `k` per parameter) of the model fitted by maximum
#' likelihood; a REML fit is refitted by ML first ([refitML()]), so that
#' models with different fixed effects are comparable (as [stats::step()]
#' and [stats::drop1()] compare them).
#'
#' @param fit A fitted model of class `"lmm"` or `"glmm"`.
#' @param scale Not used; must be 0 (as lme4 ignores it).
#' @param k Penalty per parameter (2 for AIC, `log(nobs(fit))` for BIC).
#' @param ... Not used (an error if given).
#' @return `c(edf, AIC)`.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' extractAIC(fit)
#' @importFrom stats extractAIC
#' @method extractAIC mixedrs_fit
#' @export
extractAIC.mixedrs_fit <- function(fit, scale = 0, k = 2, ...) {
  check_no_dots(..., caller = "extractAIC()")
  if (!identical(as.numeric(scale), 0)) {
    stop("extractAIC(): 'scale' is not used for mixed models; leave it at 0",
         call. = FALSE)
  }
  ll <- stats::logLik(refitML(fit))
  edf <- attr(ll, "df")
  c(edf, -2 * as.numeric(ll) + k * edf)
}

#' The data a mixed model was fitted to
#'
#' As lme4's `getData()`: the call's `data` evaluated again in the
#' environment of the model formula.
#'
#' @param object A fitted model of class `"lmm"` or `"glmm"`.
#' @return A data frame (an error when the data cannot be found, or the
#'   model was fitted without `data`).
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' head(getData(fit))
#' @method getData mixedrs_fit
#' @export
getData.mixedrs_fit <- function(object) {
  require_rows(object, "getData()")
  expr <- object$call$data
  if (is.null(expr)) {
    stop("getData(): the model was fitted without 'data'", call. = FALSE)
  }
  env <- environment(object$formula)
  if (is.null(env)) env <- parent.frame()
  data <- tryCatch(eval(expr, env), error = function(e) {
    stop("getData(): could not evaluate the fit's 'data' (", deparse1(expr),
         "): ", conditionMessage(e), call. = FALSE)
  })
  if (!is.data.frame(data) && !is.matrix(data)) {
    stop("getData(): 'data' (", deparse1(expr), ") is not a data frame or matrix",
         call. = FALSE)
  }
  data
}
