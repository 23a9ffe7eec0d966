# pbkrtest's comparisons of nested mixed models for mixedrs fits:
# KRmodcomp() (the F test with Kenward-Roger's adjusted covariance, scaled
# statistic and denominator df) and SATmodcomp() (Satterthwaite's F test) of
# "lmm" fits, and PBmodcomp() (the parametric bootstrap of the likelihood
# ratio) of "lmm" and "glmm" fits, with pbkrtest's result objects, so that
# pbkrtest's print() and summary() show them. The hypothesis is L beta = 0 in the large model, L spanning the
# part of its fixed-effects space that the small model lacks (or given as a
# matrix); the statistics come from the df machinery of R/ddf.R.
# Registered on pbkrtest's generics when pbkrtest is loaded.

#' pbkrtest's F tests of nested models for `lmm()` fits
#'
#' `pbkrtest::KRmodcomp()` and `pbkrtest::SATmodcomp()` for `"lmm"` fits:
#' the F test that the fixed effects of `largeModel` missing from
#' `smallModel` are zero, with Kenward-Roger's or Satterthwaite's
#' denominator degrees of freedom, as pbkrtest computes it for lme4's fits
#' (the same statistics, in pbkrtest's result objects). `smallModel` is a
#' fit with the same random effects and fewer fixed effects, a formula
#' (`update(largeModel, smallModel)`), or a restriction matrix `L` (one
#' column per fixed effect) for the hypothesis `L beta = betaH`. The two
#' fits may be given in either order. A fit by maximum likelihood is refitted
#' by REML first, as pbkrtest does.
#'
#' @param largeModel,smallModel Nested `"lmm"` fits (or `smallModel` a
#'   formula or a restriction matrix).
#' @param betaH The hypothesized value of `L beta` (`KRmodcomp()` only).
#' @param details pbkrtest's printing of intermediate results: only `0` for
#'   `KRmodcomp()` and `SATmodcomp()` (an error otherwise); for
#'   `PBmodcomp()`, above 0 prints the reference distribution's size and
#'   computing time, as pbkrtest does.
#' @param eps Relative tolerance below which an eigenvalue of
#'   `L vcov(beta) L'` counts as zero (`SATmodcomp()`).
#' @return For `KRmodcomp()`, a `"KRmodcomp"` object: `test` (rows `Ftest`
#'   and `FtestU`, columns `stat`, `ndf`, `ddf`, `F.scaling`, `p.value`),
#'   `type`, `aux`, `stats`, the formulas, `ctime` and `L`. For
#'   `SATmodcomp()`, a `"SATmodcomp"` object: `test` (`statistic`, `ndf`,
#'   `ddf`, `p.value`), `sigma`, the formulas, `ctime` and `L`.
#'
#' `pbkrtest::PBmodcomp()` for `"lmm"` and `"glmm"` fits: the parametric
#' bootstrap of the likelihood-ratio statistic, as pbkrtest computes it for
#' lme4's fits: `nsim` responses simulated from the small model (fitted by
#' maximum likelihood), each refitted by both models, and the share of
#' simulated statistics above the observed one. The small model must be a
#' fit or a formula.
#'
#' @param nsim Number of simulated responses (`PBmodcomp()`).
#' @param ref A reference distribution computed before (`PBmodcomp()`); with
#'   it, `nsim` and `seed` must not be given.
#' @param seed Seed of the simulation (`PBmodcomp()`), or `NULL` (the
#'   session's random numbers). pbkrtest 0.5.2 does not use its `seed`.
#' @param cl Not available for mixedrs fits: must be `NULL` (the refits
#'   run one after the other).
#' @return For `PBmodcomp()`, a `"PBmodcomp"` object: `test` (rows `LRT` and
#'   `PBtest`, columns `stat`, `df`, `p.value`), `type`, `samples`,
#'   `n.extreme`, `ctime`, `LRTstat`, `ref` and the formulas.
#' @examplesIf requireNamespace("pbkrtest", quietly = TRUE) && requireNamespace("lme4", quietly = TRUE)
#' fm1 <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' fm0 <- lmm(Reaction ~ 1 + (Days | Subject), lme4::sleepstudy)
#' pbkrtest::KRmodcomp(fm1, fm0)
#' pbkrtest::SATmodcomp(fm1, fm0)
#' pbkrtest::PBmodcomp(fm1, fm0, nsim = 50, seed = 1)
#' @name pbkrtest-methods
#' @aliases KRmodcomp.lmm SATmodcomp.lmm PBmodcomp.mixedrs_fit
NULL

#' @rdname pbkrtest-methods
#' @exportS3Method pbkrtest::KRmodcomp
KRmodcomp.lmm <- function(largeModel, smallModel, betaH = 0, details = 0) {
  check_no_details(details, "KRmodcomp()")
  models <- modcomp_models(largeModel, smallModel, "KRmodcomp()", parent.frame())
  large <- models$large
  t0 <- proc.time()
  L <- models$L
  parts <- ddf_parts(large, "Kenward-Roger")
  kr <- kr_statistics(parts, L)
  q <- kr$q
  diff_beta <- unname(large$beta) - betaH
  Ld <- L %*% diff_beta
  stat_u <- drop(t(Ld) %*% solve(L %*% parts$vcov_adj %*% t(L), Ld)) / q
  stat <- kr$scaling * stat_u
  stats <- list(ndf = q, ddf = kr$ddf, Fstat = stat,
                p.value = stats::pf(stat, q, kr$ddf, lower.tail = FALSE),
                F.scaling = kr$scaling, FstatU = stat_u,
                p.valueU = stats::pf(stat_u, q, kr$ddf, lower.tail = FALSE),
                aux = c(A1 = kr$A1, A2 = kr$A2, V0 = kr$V0, V1 = kr$V1, V2 = kr$V2,
                        rho = kr$rho, F.scaling = kr$scaling))
  test <- data.frame(
    stat = c(stats$Fstat, stats$FstatU), ndf = as.integer(c(q, q)),
    ddf = c(kr$ddf, kr$ddf), F.scaling = c(kr$scaling, NA),
    p.value = c(stats$p.value, stats$p.valueU), row.names = c("Ftest", "FtestU"))
  formula_small <- if (is.null(models$small)) {
    list(L = L, betaH = betaH)
  } else {
    bare_formula(models$small)
  }
  structure(list(test = test, type = "F", aux = stats$aux, stats = stats,
                 formula.large = bare_formula(large), formula.small = formula_small,
                 ctime = (proc.time() - t0)[[3L]], L = L),
            class = "KRmodcomp")
}

#' @rdname pbkrtest-methods
#' @exportS3Method pbkrtest::SATmodcomp
SATmodcomp.lmm <- function(largeModel, smallModel, details = 0,
                           eps = sqrt(.Machine$double.eps)) {
  check_no_details(details, "SATmodcomp()")
  models <- modcomp_models(largeModel, smallModel, "SATmodcomp()", parent.frame())
  large <- models$large
  t0 <- proc.time()
  L <- models$L
  row <- contrast_md(ddf_parts(large, "Satterthwaite"), L, eps)
  test <- data.frame(statistic = row[["F value"]], ndf = row[["NumDF"]],
                     ddf = row[["DenDF"]], p.value = row[["Pr(>F)"]])
  structure(list(test = test, sigma = large$sigma, formula.large = stats::formula(large),
                 formula.small = L, ctime = (proc.time() - t0)[[3L]], L = L),
            class = "SATmodcomp")
}

#' @rdname pbkrtest-methods
#' @exportS3Method pbkrtest::PBmodcomp
PBmodcomp.mixedrs_fit <- function(largeModel, smallModel, nsim = 1000, ref = NULL,
                                  seed = NULL, cl = NULL, details = 0) {
  env <- parent.frame()
  if (!is.null(cl)) {
    stop("PBmodcomp(): 'cl' is not available for mixedrs fits (the refits run one after ",
         "the other); leave it NULL", call. = FALSE)
  }
  if (inherits(smallModel, "formula")) smallModel <- update_in(largeModel, env, smallModel)
  if (!inherits(smallModel, class(largeModel)[1L])) {
    stop("PBmodcomp(): 'smallModel' must be a fit of the same kind as 'largeModel' (",
         class(largeModel)[1L], ") or a formula; a restriction matrix is not available ",
         "for mixedrs fits", call. = FALSE)
  }
  if (!is.null(ref) && (!missing(nsim) || !is.null(seed))) {
    stop("PBmodcomp(): with 'ref' (a reference distribution computed before) ",
         "'nsim' and 'seed' are not used; leave them out", call. = FALSE)
  }
  nsim <- check_nsim(nsim)
  by_ml <- function(fit) if (isTRUE(fit$REML)) update_in(fit, env, REML = FALSE) else fit
  large <- by_ml(largeModel)
  small <- by_ml(smallModel)
  ll_large <- stats::logLik(large)
  ll_small <- stats::logLik(small)
  tobs <- 2 * (as.numeric(ll_large) - as.numeric(ll_small))
  ndf <- attr(ll_large, "df") - attr(ll_small, "df")
  lrt <- c(tobs = tobs, df = ndf, p.value = stats::pchisq(tobs, ndf, lower.tail = FALSE))
  if (is.null(ref)) {
    t0 <- proc.time()
    responses <- stats::simulate(small, nsim = nsim, seed = seed)
    ref <- vapply(responses, function(y) {
      small_y <- suppressMessages(refit(small, y))
      large_y <- suppressMessages(refit(large, y))
      2 * (as.numeric(stats::logLik(large_y)) - as.numeric(stats::logLik(small_y)))
    }, numeric(1L), USE.NAMES = FALSE)
    ctime <- (proc.time() - t0)[[3L]]
    ref <- structure(ref, cl = 1L, ctime = ctime, stat = lrt,
                     samples = c(nsim = nsim, npos = sum(ref > 0),
                                 n.extreme = sum(ref > tobs),
                                 pPB = (1 + sum(ref > tobs)) / (1 + sum(ref > 0))),
                     class = "refdist")
    if (details > 0) {
      cat(sprintf("Reference distribution with %5i samples; computing time: %5.2f secs. \n",
                  length(ref), ctime))
    }
  }
  positive <- ref[ref > 0]
  n_extreme <- sum(tobs < positive)
  test <- data.frame(stat = c(tobs, tobs), df = c(ndf, NA),
                     p.value = c(lrt[["p.value"]], (1 + n_extreme) / (1 + length(positive))),
                     row.names = c("LRT", "PBtest"))
  structure(list(test = test, type = "X2test",
                 samples = c(nsim = length(ref), npos = length(positive)),
                 n.extreme = n_extreme, ctime = attr(ref, "ctime"), LRTstat = lrt, ref = ref,
                 formula.large = bare_formula(largeModel), formula.small = bare_formula(smallModel)),
            class = "PBmodcomp")
}

# The large model (refitted by REML if it was fitted by ML), the small one
# (NULL when a restriction matrix was given) and the restriction matrix of
# a comparison, as pbkrtest sets them up: the fits may come in either
# order; a formula is update()d from the large fit. Refits are evaluated in
# `env`, the caller's frame (where the data are found).
modcomp_models <- function(large, small, caller, env) {
  if (inherits(small, "formula")) small <- update_in(large, env, small)
  if (is.matrix(small) && is.numeric(small)) {
    if (ncol(small) != length(large$beta)) {
      stop(caller, ": the restriction matrix has ", ncol(small), " columns; the model has ",
           length(large$beta), " fixed effects", call. = FALSE)
    }
    L <- small
    small <- NULL
  } else {
    if (!inherits(small, "lmm")) {
      stop(caller, ": 'smallModel' must be an lmm() fit, a formula or a restriction ",
           "matrix, not an object of class '", class(small)[1L], "'", call. = FALSE)
    }
    rank_of <- function(m) qr(m)$rank
    X1 <- large$X
    X2 <- small$X
    r1 <- rank_of(X1)
    r2 <- rank_of(X2)
    r12 <- rank_of(cbind(X1, X2))
    if (r12 == r2 && r2 > r1) {
      swap <- large
      large <- small
      small <- swap
    } else if (!(r12 == r1 && r1 > r2)) {
      stop(caller, ": the models' fixed effects are the same or not nested",
           call. = FALSE)
    }
    L <- NULL
  }
  if (!isTRUE(large$REML)) large <- update_in(large, env, REML = TRUE)
  if (is.null(L)) L <- nested_restriction_matrix(large$X, small$X)
  list(large = large, small = small, L = L)
}

#' Kenward-Roger's adjusted covariance and degrees of freedom, pbkrtest's way
#'
#' Methods for pbkrtest's `vcovAdj()` and `get_Lb_ddf()` on `lmm()` fits:
#' the Kenward-Roger adjusted covariance matrix of the fixed effects (a
#' `Matrix` with pbkrtest's attributes `P` and `W`, so that
#' `pbkrtest::Lb_ddf(L, vcov(fit), vcovAdj(fit))` works on it too) and the
#' denominator degrees of freedom of the hypothesis `L beta = 0`. As pbkrtest
#' does, an ML fit is refitted by REML for the adjustment, and the degrees of
#' freedom combine that with the ML fit's own covariance.
#'
#' @param object A linear mixed model fitted by [lmm()].
#' @param details Must be 0 (pbkrtest's printing of intermediate results).
#' @param L A contrast: a vector with one value per fixed effect, or a matrix
#'   with one row per contrast.
#' @return `vcovAdj()`: a `dgeMatrix`; `get_Lb_ddf()`: a number.
#' @examplesIf requireNamespace("pbkrtest", quietly = TRUE) && requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' pbkrtest::vcovAdj(fit)
#' pbkrtest::get_Lb_ddf(fit, c(0, 1))
#' @name pbkrtest-vcovAdj
NULL

#' @rdname pbkrtest-vcovAdj
#' @exportS3Method pbkrtest::vcovAdj
vcovAdj.lmm <- function(object, details = 0) {
  check_no_details(details, "vcovAdj()")
  parts <- kr_parts_as_pbkrtest(object, parent.frame())
  nms <- names(object$beta)
  if (is.null(nms)) nms <- colnames(object$X)
  out <- methods::new("dgeMatrix", Dim = dim(parts$vcov_adj), Dimnames = list(nms, nms),
                      x = as.vector(parts$vcov_adj))
  attr(out, "P") <- parts$P
  attr(out, "W") <- parts$W
  out
}

#' @rdname pbkrtest-vcovAdj
#' @exportS3Method pbkrtest::get_Lb_ddf
get_Lb_ddf.lmm <- function(object, L) {
  p <- length(object$beta)
  L <- if (is.matrix(L)) L else matrix(L, nrow = 1L)
  if (!is.numeric(L) || ncol(L) != p) {
    stop("get_Lb_ddf(): 'L' must have one column per fixed effect (", p, "), not ", ncol(L),
         call. = FALSE)
  }
  kr_ddf(kr_parts_as_pbkrtest(object, parent.frame()), L)$ddf
}

# Kenward-Roger's ingredients as pbkrtest computes them for `fit`: for an ML
# fit those of its REML refit (pbkrtest's vcovAdj() refits by REML), with the
# ML fit's own covariance as the unadjusted one (pbkrtest's Lb_ddf() is given
# vcov() of the fit). `env`: where the fit's control is looked up.
kr_parts_as_pbkrtest <- function(fit, env) {
  if (isTRUE(fit$REML)) return(ddf_parts(fit, "Kenward-Roger"))
  if (is_sums_fit(fit)) {
    stop("Kenward-Roger's method for an ML fit uses its REML refit, which a fit from ",
         "database sums does not provide; fit with REML = TRUE", call. = FALSE)
  }
  reml <- refit_criterion(fit, REML = TRUE, control_of(fit, env))
  parts <- ddf_parts(reml, "Kenward-Roger")
  parts$vcov_beta <- unname(as.matrix(stats::vcov(fit)))
  parts
}

# Stops unless `details` is 0: pbkrtest's printing of intermediate results,
# which KRmodcomp() and SATmodcomp() do not do here.
check_no_details <- function(details, caller) {
  if (!identical(as.numeric(details), 0)) {
    stop(caller, ": 'details' (pbkrtest's printing of intermediate results) is not ",
         "available for mixedrs fits; leave it 0", call. = FALSE)
  }
  invisible(NULL)
}

# update(fit, ...) evaluated in `env` (the caller of the pbkrtest function,
# where the fit's data are found).
update_in <- function(fit, env, ...) {
  eval_model_call(stats::update(fit, ..., evaluate = FALSE), fit, env)
}

# The restriction matrix L of the large model for the small one: L beta = 0
# exactly when X beta lies in the span of X_small. Its rows are an
# orthonormal basis of X' Q2, Q2 an orthonormal basis of the part of the
# large model's column space orthogonal to the small model's (the columns
# of a QR decomposition of cbind(X_small, X) after the first rank(X_small)),
# with negligible elements set to zero, as pbkrtest builds it.
nested_restriction_matrix <- function(X, X_small) {
  r_small <- qr(X_small)$rank
  r <- qr(X)$rank
  Q <- qr.Q(qr(cbind(X_small, X)))
  Q2 <- Q[, (r_small + 1L):r, drop = FALSE]
  L <- crossprod(Q2, X)
  L <- t(qr.Q(qr(t(L))))
  zapsmall(unname(L))
}

# A fit's formula without attributes, as pbkrtest stores it.
bare_formula <- function(fit) {
  f <- stats::formula(fit)
  attributes(f) <- NULL
  f
}
