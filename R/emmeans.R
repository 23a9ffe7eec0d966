# Support for the emmeans package: recover_data() and emm_basis() methods
# for "lmm" and "glmm" fits, registered with emmeans (its documented
# .emm_register()) when emmeans is loaded -- at once if it already is,
# otherwise from a hook on its loading (see .onLoad in R/zzz.R), so that
# loading mixedrs never loads emmeans.

#' emmeans support for mixed models
#'
#' Methods that let `emmeans::emmeans()`, `emmeans::ref_grid()` and the rest
#' of the emmeans package work on `"lmm"` and `"glmm"` fits as they do on
#' lme4's fits. They are not called directly: emmeans finds them when it is
#' loaded.
#'
#' `recover_data()` rebuilds the data of the fixed-effects part from the
#' call and the model frame. `emm_basis()` gives the fixed-effects estimates
#' and covariance and, for `"lmm"` fits, the degrees of freedom of each
#' linear function by `mode`:
#' * `"kenward-roger"` (the default, unless emmeans' option `lmer.df` says
#'   otherwise, as for lme4 fits): Kenward-Roger's adjusted covariance of the
#'   fixed effects (so standard errors are the adjusted ones) and
#'   Kenward-Roger degrees of freedom, as pbkrtest gives them. For an ML fit,
#'   as emmeans computes them with pbkrtest: the adjusted covariance of the
#'   model refitted by REML, and degrees of freedom from it and the ML fit's
#'   covariance.
#' * `"satterthwaite"`: the unadjusted covariance and Satterthwaite's
#'   degrees of freedom, as lmerTest gives them.
#' * `"asymptotic"`: the unadjusted covariance and infinite degrees of
#'   freedom (z tests).
#'
#' Unlike emmeans for lme4 fits there is no limit on the number of
#' observations above which the degrees of freedom are switched off
#' (`pbkrtest.limit`, `lmerTest.limit`): the computation works in the space
#' of the random effects and does not grow with n x n matrices. With a
#' user-supplied covariance (`vcov.`), Kenward-Roger's method is replaced by
#' Satterthwaite's, with a message, as emmeans does. `"glmm"` fits always
#' use asymptotic (z) inference, and the link function is recorded so that
#' `type = "response"` back-transforms.
#'
#' @param object A fitted model of class `"lmm"` or `"glmm"`.
#' @param trms,xlev,grid The terms, factor levels and reference grid, as
#'   emmeans passes them.
#' @param mode Degrees-of-freedom method for `"lmm"` fits, see Details.
#' @param lmer.df Synonym of `mode` (emmeans' name for lme4 fits).
#' @param options Options of the reference grid, as emmeans passes them; a
#'   given `options$df` selects `"asymptotic"` unless the mode is
#'   `"kenward-roger"` (emmeans' rule).
#' @param ... Passed on by emmeans (e.g. `vcov.`, `data`, `params`).
#' @return `recover_data()`: the data frame emmeans needs; `emm_basis()`: the
#'   list of `X`, `bhat`, `nbasis`, `V`, `dffun`, `dfargs`, `misc` and
#'   `model.matrix` described in emmeans' "extending" documentation.
#' @name emmeans-support
#' @examplesIf requireNamespace("lme4", quietly = TRUE) && requireNamespace("emmeans", quietly = TRUE)
#' fit <- lmm(angle ~ recipe * temperature + (1 | recipe:replicate),
#'            data = lme4::cake)
#' emmeans::emmeans(fit, ~ recipe)
#' emmeans::emmeans(fit, ~ recipe, mode = "satterthwaite")
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' emmeans::emmeans(gfit, ~ period, type = "response")
NULL

#' @rdname emmeans-support
recover_data.lmm <- function(object, component = "cond", ...) {
  fcall <- object$call
  # (a component the fit lacks is reported by emm_basis(): emmeans turns an
  # error here into a message about missing data)
  part <- if (is.character(component) && length(component) == 1L && component != "cond") {
    object$extended[[component]]
  }
  trms <- if (is.null(part$terms)) mer_fixed_terms(object) else part$terms
  emmeans::.recover_data(fcall, stats::delete.response(trms), mer_na_action(object),
                         frame = object$frame, ...)
}

#' @rdname emmeans-support
recover_data.glmm <- recover_data.lmm

# The model part `component` names, checked: "cond" (the conditional
# model), or for glmmTMB-style fits "zi" (zero inflation, logit link) and
# "disp" (dispersion, log link) when the fit has that part, as glmmTMB's
# emmeans support offers them.
emm_component <- function(object, component) {
  if (!is.character(component) || length(component) != 1L || is.na(component)) {
    stop("emmeans: 'component' must be one of \"cond\", \"zi\", \"disp\", not ",
         deparse1(component), call. = FALSE)
  }
  if (component == "cond") return(component)
  parts <- if (is_extended_fit(object)) {
    c(if (!is.null(object$extended$zi)) "zi",
      if (!is.null(object$extended$disp) && extended_has_dispersion(object$extended$family)) "disp")
  }
  if (!component %in% parts) {
    stop("emmeans: component = \"", component, "\" is not a part of this model; it has ",
         paste0("\"", c("cond", parts), "\"", collapse = ", "),
         " (zero-inflation and dispersion parts are those of glm()-style ",
         "fits with 'ziformula' or 'dispformula')", call. = FALSE)
  }
  component
}

#' @rdname emmeans-support
emm_basis.lmm <- function(object, trms, xlev, grid,
                          mode = emmeans::get_emm_option("lmer.df"),
                          lmer.df, options, component = "cond", ...) {
  emm_component(object, component)
  if (!missing(lmer.df)) mode <- lmer.df
  V <- as.matrix(emmeans::.my.vcov(object, ...))
  mode <- match.arg(tolower(mode), c("kenward-roger", "satterthwaite", "asymptotic"))
  if (!missing(options) && !is.null(options$df) && mode != "kenward-roger") {
    mode <- "asymptotic"
  }
  user_vcov <- "vcov." %in% names(list(...))
  if (mode == "kenward-roger" && user_vcov) {
    message("Kenward-Roger method can't be used with user-supplied covariances")
    mode <- "satterthwaite"
  }
  # emmeans calls dffun() outside this package's namespace: the functions it
  # needs travel in dfargs
  dfargs <- list()
  if (mode == "kenward-roger") {
    # as emmeans with pbkrtest (for an ML fit through its REML refit)
    parts <- kr_parts_as_pbkrtest(object, parent.frame())
    V <- parts$vcov_adj
    dfargs <- list(parts = parts, kr_ddf = kr_ddf)
    dffun <- function(k, dfargs) {
      dfargs$kr_ddf(dfargs$parts, matrix(k, nrow = 1L))$ddf
    }
  } else if (mode == "satterthwaite") {
    dfargs <- list(parts = ddf_parts(object, "Satterthwaite"), contrast_1d = contrast_1d)
    dffun <- function(k, dfargs) unname(dfargs$contrast_1d(dfargs$parts, k)[["df"]])
  } else {
    dffun <- function(k, dfargs) Inf
  }
  attr(dffun, "mesg") <- mode
  emm_basis_common(object, trms, xlev, grid, V, dffun, dfargs, misc = list())
}

#' @rdname emmeans-support
#' @param component For glmmTMB-style fits (with `ziformula` or
#'   `dispformula`, or a glmmTMB family): `"cond"` (the conditional model,
#'   default), `"zi"` (the zero-inflation model, on the logit scale) or
#'   `"disp"` (the dispersion model, on the log scale), as glmmTMB's emmeans
#'   support offers them; other fits have only `"cond"`.
emm_basis.glmm <- function(object, trms, xlev, grid, component = "cond", ...) {
  component <- emm_component(object, component)
  V <- if (is_extended_fit(object) && is.null(list(...)$vcov.)) {
    # a glmmTMB-style fit's vcov() is a list of components
    as.matrix(object$extended$vcov[[component]])
  } else {
    as.matrix(emmeans::.my.vcov(object, ...))
  }
  link <- switch(component, cond = object$family, zi = list(link = "logit"),
                 disp = list(link = "log"))
  misc <- emmeans::.std.link.labels(link, list())
  # glmmTMB's emmeans support tests with the residual degrees of freedom;
  # glmer's with z tests
  if (is_extended_fit(object)) {
    dfargs <- list(df = stats::df.residual(object))
    dffun <- function(k, dfargs) dfargs$df
  } else {
    dfargs <- list()
    dffun <- function(k, dfargs) Inf
  }
  emm_basis_common(object, trms, xlev, grid, V, dffun, dfargs, misc, component)
}

# The part of emm_basis() shared by both classes: the grid's model matrix,
# the estimates (with NA for columns dropped as rank deficient and the
# non-estimable basis), and the compact model matrix, of the model part
# `component`.
emm_basis_common <- function(object, trms, xlev, grid, V, dffun, dfargs, misc,
                             component = "cond") {
  if (component == "cond") {
    model_X <- object$X
    beta <- mer_fixef(object)
  } else {
    model_X <- object$extended[[component]]$X
    beta <- object$extended[[component]]$beta
  }
  contrasts <- attr(model_X, "contrasts")
  m <- stats::model.frame(trms, grid, na.action = stats::na.pass, xlev = xlev)
  X <- stats::model.matrix(trms, m, contrasts.arg = contrasts)
  V <- unname(V)
  if (length(beta) < ncol(X)) {
    kept <- match(names(beta), colnames(X))
    bhat <- stats::setNames(rep(NA_real_, ncol(X)), colnames(X))
    bhat[kept] <- beta
    modmat <- stats::model.matrix(trms, object$frame, contrasts.arg = contrasts)
    nbasis <- estimability::nonest.basis(modmat)
  } else {
    bhat <- beta
    nbasis <- estimability::all.estble
  }
  # (The Laplace weights of a family with extra parameters can be negative:
  # its prior weights instead.)
  w <- if (is_glmm(object) && is.null(object$extended) && component == "cond") {
    weights.glmm(object, type = "working")
  } else {
    as.vector(object$weights)
  }
  mm <- emmeans::.cmpMM(model_X, w, attr(model_X, "assign"))
  list(X = X, bhat = bhat, nbasis = nbasis, V = V, dffun = dffun,
       dfargs = dfargs, misc = misc, model.matrix = mm)
}

# Terms of the fixed-effects part of the model, with the model frame's
# variable transformations (predvars) when the frame records them.
mer_fixed_terms <- function(object) {
  tt <- stats::terms(mer_formula(object, fixed.only = TRUE))
  pv <- attr(attr(object$frame, "terms"), "predvars.fixed")
  if (is.null(pv)) pv <- attr(attr(object$frame, "terms"), "predvars")
  if (!is.null(pv) && length(pv) == length(attr(tt, "variables"))) {
    attr(tt, "predvars") <- pv
  }
  tt
}

# Registers the methods with emmeans (once it is loaded).
register_emmeans <- function(...) {
  emmeans::.emm_register(c("lmm", "glmm"), "mixedrs")
}
