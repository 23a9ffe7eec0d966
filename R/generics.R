# The generics of lme4's object API that mixedrs exports itself (getME,
# refit, refitML, isREML, isGLMM, isLMM, isNLMM, isNested; ngrps, isSingular
# and REMLcrit are in R/methods.R), the re-exported generics of the
# 'generics' package (tidy, glance, augment) and of nlme (getData), and the
# registration of mixedrs' methods on lme4's own generics.
#
# Both packages may be attached, in either order. Whichever is attached last
# masks the other's functions of the same name:
# * mixedrs last: its generics dispatch on mixedrs fits; their default
#   methods hand any other object (an lme4 fit) to lme4's function.
# * lme4 last: lme4's generics are called; mixedrs' methods are registered on
#   them (delayed `S3method(lme4::getME, mixedrs_fit)` registrations in
#   NAMESPACE, made when lme4's namespace loads), so lme4's generics and the
#   lme4 functions built on them (isSingular() calls getME()) work on
#   mixedrs fits.

#' @importFrom generics tidy
#' @export
generics::tidy

#' @importFrom generics glance
#' @export
generics::glance

#' @importFrom generics augment
#' @export
generics::augment

#' @importFrom nlme getData
#' @export
nlme::getData

#' Extract components of a mixed model fit, as lme4's getME()
#'
#' `getME()` returns a named piece of a fitted mixed model in the form of
#' `lme4::getME()`: the model matrices, the relative covariance factor and
#' its parameters, the estimates, the factors of the penalized least squares
#' system and the sizes of the model. Values are those of lme4's `getME()` on
#' the `lmer()`/`glmer()` fit of the same model (to the agreement of the two
#' fits' estimates), with lme4's classes.
#'
#' The names, as in lme4:
#' * `"X"`: the fixed-effects model matrix; `"Z"`, `"Zt"`: the random-effects
#'   model matrix and its transpose (`Matrix::dgCMatrix`); `"Ztlist"`: the rows
#'   of `Zt` of each random-effects column of each term; `"mmList"`: the raw
#'   model matrix of each term (without `model.matrix()`'s `"assign"`
#'   attribute); `"A"`: `Lambdat %*% Zt`.
#' * `"y"`: the response (for binomial models the proportions); `"mu"`: the
#'   conditional means (fitted values); `"offset"`, `"weights"` (the prior
#'   weights; not in lme4, whose `weights()` gives them).
#' * `"u"`: the spherical random effects; `"b"`: the random effects
#'   `Lambda u` (a `Matrix` column as lme4's).
#' * `"theta"`, `"lower"`: the relative covariance parameters and their lower
#'   bounds; `"upper"` (not in lme4 1.1; `Inf` for every element); `"par"`:
#'   the optimizer's covariance parameters, lme4 2.x's `par` (for structured
#'   terms their standard deviations and correlation parameters, otherwise
#'   `theta`); `"Lambda"`, `"Lambdat"` (`dgCMatrix`), `"Lind"` (the element of
#'   `theta` of each non-zero of `Lambdat`); `"ST"`, `"Tlist"`: each term's
#'   factor in lme4's old `ST` form and as a lower triangle; `"Tp"`, `"Gp"`:
#'   where each term's `theta` and random effects begin.
#' * `"L"`: the sparse Cholesky factor of
#'   `Lambdat Zt W Z Lambda + I` (W: the prior weights of an LMM, the
#'   PIRLS weights at the conditional modes of a GLMM): the sparse factor
#'   itself (not a dense one), a `Matrix::CHMfactor` (`dCHMsimpl`) whose
#'   fill-reducing permutation CHOLMOD chooses, as for lme4, from the pattern
#'   at the starting `theta`; it is usually lme4's, but lme4's can depend on
#'   CHOLMOD settings left by earlier calls in the session, so compare
#'   factors through the matrix they factor, `P' L L' P` (from
#'   `Matrix::expand()`); `"RZX"`, `"RX"`: the other blocks of
#'   the Cholesky factor of the penalized least squares system (base
#'   matrices, `RX` upper triangular). These are computed from the fit with
#'   the Matrix package when asked for.
#' * `"beta"`, `"fixef"`, `"sigma"`, `"flist"`, `"cnms"`, `"devcomp"`
#'   (lme4's `cmp` and `dims`), `"REML"` (`p` for a REML fit, else 0),
#'   `"is_REML"`, `"n_rtrms"`, `"n_rfacs"`, `"N"`, `"n"`, `"p"`, `"q"`,
#'   `"p_i"`, `"l_i"`, `"q_i"`, `"k"`, `"m_i"`, `"m"`.
#' * `"devfun"`: for an `"lmm"` fit the profiled REML or ML criterion as a
#'   function of `theta` (of `par` for structured terms), evaluated by the
#'   Rust core; not available for `"glmm"` fits (an error).
#' * `"glmer.nb.theta"`: the negative binomial's `theta` of a [glmm.nb()]
#'   fit or of a [glmm()] fit with `family = MASS::negative.binomial(theta)`
#'   (held at that value); `NA` for other fits.
#'
#' Several names give a named list; `"ALL"` gives every component (without
#' `"devfun"` for fits of glmmTMB's families, with zero inflation or a
#' dispersion model, and negative binomial fits, which have no deviance
#' function yet: `getME(fit, "devfun")` is an error that says so). An unknown name is an error listing the
#' known ones, as in lme4 (names may be abbreviated, as `match.arg()` allows).
#'
#' @param object A fitted model of class `"lmm"` or `"glmm"` (other objects
#'   are passed to `lme4::getME()`).
#' @param name The name(s) of the components, see Details.
#' @param ... Not used (an error if given).
#' @return The component; a named list for several names or `"ALL"`.
#' @seealso [refit()], [isREML()], [ngrps()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' getME(fit, "theta")
#' getME(fit, "Lambdat")[1:4, 1:4]
#' getME(fit, c("n", "p", "q"))
#' getME(fit, "RX")
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' head(getME(gfit, "mu"))
#' @export
getME <- function(object, name, ...) UseMethod("getME")

#' @rdname getME
#' @export
getME.default <- function(object, name, ...) lme4_fallback("getME", object, name, ...)

#' Refit a mixed model to a new response
#'
#' `refit()` fits the model of `object` again with the response replaced by
#' `newresp`, as `lme4::refit()`: the same design, weights, offset,
#' family and criterion (REML or ML), starting from the estimates of
#' `object`. The optimizer runs as in the original fit, so the result is a
#' complete fit, the same as fitting the data with the new response from
#' scratch would give.
#'
#' `newresp` may be a numeric vector (for a binomial model: 0/1 values,
#' proportions when the model had the numbers of trials as weights, a factor
#' or logical), a two-column matrix of successes and failures for a binomial
#' model, or a one-column data frame such as a column of the result of
#' [simulate()]. It has one value per observation used in the fit or, when
#' the fit omitted rows with missing values, one per row of the data (the
#' omitted ones are dropped, as lme4 does). Without `newresp` the model is
#' refitted to its own response.
#'
#' @param object A fitted model of class `"lmm"` or `"glmm"`.
#' @param newresp The new response, see Details.
#' @param rename.response Logical: name the response of the refitted model's
#'   frame and call after the expression given as `newresp` (lme4's option)?
#' @param maxit lme4's maximum number of PIRLS iterations; only the default
#'   (100) is accepted, the GLMM engine's PIRLS limit being its own.
#' @param control Settings from [lmmControl()] or [glmmControl()]; by default
#'   the settings of the original fit (its call's `control`, evaluated
#'   again).
#' @param verbose As in [lmm()] and [glmm()].
#' @param ... Not used (an error if given).
#' @return A fit of the class of `object`; its call is the original call.
#' @seealso [refitML()], [simulate.lmm()], [bootmm()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' sim <- simulate(fit, seed = 1)
#' fixef(refit(fit, sim))
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' gsim <- simulate(gfit, seed = 1)
#' fixef(refit(gfit, gsim))
#' @export
refit <- function(object, newresp, ...) UseMethod("refit")

#' @rdname refit
#' @export
refit.default <- function(object, newresp, ...) {
  if (missing(newresp)) lme4_fallback("refit", object, ...)
  else lme4_fallback("refit", object, newresp, ...)
}

#' Refit a linear mixed model by maximum likelihood
#'
#' As `lme4::refitML()`: a REML fit is refitted by maximum likelihood (same
#' data and model, starting from the REML estimates); a fit by maximum
#' likelihood, and any `"glmm"` fit, is returned unchanged.
#'
#' @param x A fitted model of class `"lmm"` or `"glmm"`.
#' @param optimizer The optimizer of the refit, as `optimizer` of
#'   [lmmControl()] takes it (default `"bobyqa"`, as lme4's); the fit's
#'   other control settings are kept.
#' @param ... Not used (an error if given).
#' @return A fit by maximum likelihood; its call has `REML = FALSE`.
#' @seealso [refit()], [isREML()], [extractAIC.mixedrs_fit()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' isREML(fit)
#' ml <- refitML(fit)
#' isREML(ml)
#' logLik(ml)
#' @export
refitML <- function(x, ...) UseMethod("refitML")

#' @rdname refitML
#' @export
refitML.default <- function(x, ...) lme4_fallback("refitML", x, ...)

#' What kind of mixed model is a fit?
#'
#' As lme4's: `isREML()` is `TRUE` for a linear mixed model fitted by REML;
#' `isLMM()` for a linear mixed model ([lmm()]), `isGLMM()` for a
#' generalized linear mixed model ([glmm()]), `isNLMM()` for a nonlinear
#' mixed model (never, for mixedrs fits).
#'
#' @param x A fitted model (other than mixedrs fits, passed to lme4's
#'   function of the same name).
#' @param ... Not used (an error if given).
#' @return `TRUE` or `FALSE`.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' isREML(fit)
#' isLMM(fit)
#' isGLMM(fit)
#' isNLMM(fit)
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' isGLMM(gfit)
#' isREML(gfit)
#' @export
isREML <- function(x, ...) UseMethod("isREML")

#' @rdname isREML
#' @export
isREML.default <- function(x, ...) lme4_fallback("isREML", x, ...)

#' @rdname isREML
#' @export
isLMM <- function(x, ...) UseMethod("isLMM")

#' @rdname isREML
#' @export
isLMM.default <- function(x, ...) lme4_fallback("isLMM", x, ...)

#' @rdname isREML
#' @export
isGLMM <- function(x, ...) UseMethod("isGLMM")

#' @rdname isREML
#' @export
isGLMM.default <- function(x, ...) lme4_fallback("isGLMM", x, ...)

#' @rdname isREML
#' @export
isNLMM <- function(x, ...) UseMethod("isNLMM")

#' @rdname isREML
#' @export
isNLMM.default <- function(x, ...) lme4_fallback("isNLMM", x, ...)

#' Is one factor nested in another?
#'
#' As `lme4::isNested()`: `TRUE` when each level of `f1` occurs with only
#' one level of `f2` (so `f1` is nested within `f2`). Both are turned into
#' factors first and must have the same length.
#'
#' @param f1,f2 Factors (or vectors that [as.factor()] accepts) of the same
#'   length.
#' @return `TRUE` or `FALSE`.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' isNested(lme4::cake$replicate, lme4::cake$recipe)
#' isNested(interaction(lme4::cake$recipe, lme4::cake$replicate), lme4::cake$recipe)
#' @export
isNested <- function(f1, f2) {
  f1 <- as.factor(f1)
  f2 <- as.factor(f2)
  if (length(f1) != length(f2)) {
    stop("isNested(): 'f1' and 'f2' must have the same length (", length(f1),
         " and ", length(f2), ")", call. = FALSE)
  }
  if (anyNA(f1) || anyNA(f2)) {
    stop("isNested(): 'f1' and 'f2' must not have missing values", call. = FALSE)
  }
  # the number of distinct levels of f2 that each level of f1 occurs with
  pairs <- unique(cbind(as.integer(f1), as.integer(f2)))
  all(tabulate(pairs[, 1L], nbins = nlevels(f1)) <= 1L)
}

# Methods registered on lme4's generics when lme4's namespace is loaded
# (delayed registration: nothing happens while lme4 is not loaded).
#' @rawNamespace S3method(lme4::getME, mixedrs_fit)
#' @rawNamespace S3method(lme4::refit, mixedrs_fit)
#' @rawNamespace S3method(lme4::refitML, mixedrs_fit)
#' @rawNamespace S3method(lme4::isREML, mixedrs_fit)
#' @rawNamespace S3method(lme4::isLMM, mixedrs_fit)
#' @rawNamespace S3method(lme4::isGLMM, mixedrs_fit)
#' @rawNamespace S3method(lme4::isNLMM, mixedrs_fit)
#' @rawNamespace S3method(lme4::ngrps, mixedrs_fit)
NULL
