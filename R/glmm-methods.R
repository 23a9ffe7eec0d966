# Extractor methods specific to fitted generalized linear mixed models (class
# c("glmm", "mixedrs_fit"), from glmm(); the object contract is described in
# R/glmm.R).
#
# Methods whose logic is the same as for "lmm" fits are written once on the
# parent class "mixedrs_fit" in R/methods.R; the ones below differ and follow
# lme4's methods for "glmerMod" objects: the family, the response-scale
# fitted values, the four kinds of GLM residuals, prior and working weights,
# the deviance as the sum of squared deviance residuals, the log-likelihood
# -dev/2 of the Laplace or quadrature criterion, and the choice between
# Hessian- and R_X-based covariance of the fixed effects.
# Like the lmm methods, none of them calls back into the Rust engine.

# ---------------------------------------------------------------------------
# Family, fitted values, residuals, weights (predict() is in R/predict.R).

#' Family of a generalized linear mixed model
#'
#' @param object A fitted model of class `"glmm"`.
#' @param ... Ignored.
#' @return The [stats::family()] object the model was fitted with (e.g.
#'   `binomial(link = "logit")`), with its link function, inverse link,
#'   variance function and deviance residuals.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'             family = binomial, data = lme4::cbpp)
#' family(fit)
#' @importFrom stats family
#' @method family glmm
#' @export
family.glmm <- function(object, ...) object$family

#' Fitted values of a generalized linear mixed model
#'
#' The conditional means on the response scale, `mu = linkinv(eta)`, where
#' the linear predictor `eta` includes the fixed effects, the conditional
#' modes of the random effects and any offset (lme4's `fitted()` for
#' `glmer()` fits). For binomial models with a two-column or proportion
#' response these are fitted probabilities.
#'
#' @param object A fitted model of class `"glmm"`.
#' @param ... Ignored.
#' @return A numeric vector named by the row names of the model frame,
#'   padded with `NA` for omitted rows when `na.action = na.exclude` was
#'   used.
#' @seealso [predict.glmm()] for the linear predictor.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'             family = binomial, data = lme4::cbpp)
#' head(fitted(fit))
#' @method fitted glmm
#' @export
fitted.glmm <- function(object, ...) {
  require_rows(object, "fitted()")
  if (is_extended_fit(object)) return(stats::predict(object, type = "response"))
  mer_per_obs(object, object$mu, pad = "predict")
}

#' Residuals of a generalized linear mixed model
#'
#' The residuals of lme4's `residuals()` for `glmer()` fits, computed from
#' the response `y` (proportions for binomial models), the fitted means `mu`,
#' the linear predictor `eta` and the prior weights `w` with the family's
#' functions:
#' * `"deviance"` (default): `sign(y - mu) * sqrt(dev.resids(y, mu, w))`;
#' * `"pearson"`: `(y - mu) * sqrt(w / variance(mu))`;
#' * `"working"`: `(y - mu) / mu.eta(eta)`;
#' * `"response"`: `y - mu`.
#'
#' `"partial"` residuals are not available.
#'
#' @param object A fitted model of class `"glmm"`.
#' @param type Type of residuals, see Description.
#' @param scaled Logical: divide by `sigma(object)` (1 for the binomial and
#'   Poisson families)?
#' @param ... Ignored.
#' @return A numeric vector named by the row names of the model frame,
#'   padded with `NA` for omitted rows when `na.action = na.exclude` was
#'   used.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'             family = binomial, data = lme4::cbpp)
#' head(residuals(fit))
#' head(residuals(fit, type = "pearson"))
#' @method residuals glmm
#' @export
residuals.glmm <- function(object,
                           type = c("deviance", "pearson", "working", "response", "partial"),
                           scaled = FALSE, ...) {
  require_rows(object, "residuals()")
  if (is_extended_fit(object)) {
    # glmmTMB-style fits (R/methods-extended.R): glmmTMB's default is "response"
    if (!isFALSE(scaled)) stop("'scaled' is not available for glmmTMB-style fits", call. = FALSE)
    type <- if (missing(type)) "response" else match_choice(type)
    return(mer_per_obs(object, residuals_extended(object, type), pad = "resid"))
  }
  type <- match_choice(type)
  r <- glmm_residuals(object, type)
  if (scaled) r <- r / object$sigma
  mer_per_obs(object, r, pad = "resid")
}

# Unnamed, unpadded residuals of one type (see residuals.glmm()).
glmm_residuals <- function(object, type) {
  y <- as.vector(object$y)
  mu <- as.vector(object$mu)
  wt <- as.vector(object$weights)
  fam <- object$family
  switch(type,
         deviance = {
           d <- sqrt(pmax(fam$dev.resids(y, mu, wt), 0))
           ifelse(y > mu, d, -d)
         },
         pearson = (y - mu) * sqrt(wt / fam$variance(mu)),
         working = (y - mu) / fam$mu.eta(as.vector(object$eta)),
         response = y - mu,
         partial = stop("partial residuals are not implemented yet", call. = FALSE))
}

#' Prior and working weights of a generalized linear mixed model
#'
#' @param object A fitted model of class `"glmm"`.
#' @param type `"prior"` (default): the prior weights as glm's `initialize`
#'   sets them (the number of trials for a two-column binomial response,
#'   times any weights given); `"working"`: the weights of the final
#'   penalized iteratively reweighted least squares step,
#'   `prior * mu.eta(eta)^2 / variance(mu)`.
#' @param ... Ignored.
#' @return A numeric vector, one weight per observation used in the fit.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'             family = binomial, data = lme4::cbpp)
#' head(weights(fit))
#' head(weights(fit, type = "working"))
#' @method weights glmm
#' @export
weights.glmm <- function(object, type = c("prior", "working"), ...) {
  require_rows(object, "weights()")
  type <- match_choice(type)
  prior <- as.vector(object$weights)
  if (type == "prior") return(prior)
  # A family with extra parameters: the weights of the fit's Laplace factor.
  if (!is.null(object$extended)) return(as.vector(object$extended$working_weights))
  fam <- object$family
  prior * fam$mu.eta(as.vector(object$eta))^2 / fam$variance(as.vector(object$mu))
}

# ---------------------------------------------------------------------------
# Covariance of the fixed effects, likelihood and deviance.

#' Covariance matrix of the fixed-effects estimates of a GLMM
#'
#' As lme4's `vcov()` for `glmer()` fits. By default (when the fit computed
#' the finite-difference Hessian of the deviance over `(theta, beta)`, i.e.
#' for `nAGQ >= 1`), the covariance is twice the fixed-effects block of the
#' inverse Hessian; when that matrix is not positive definite a warning says
#' so and the covariance from the Cholesky factor `R_X` at the estimates,
#' `sigma^2 (R_X' R_X)^-1`, is returned instead. With `use.hessian = FALSE`
#' the `R_X`-based matrix is returned, with a warning when it differs from
#' the Hessian-based one by more than 1e-4 relatively. Fits by `nAGQ = 0`
#' have no Hessian and always use `R_X`.
#'
#' @param object A fitted model of class `"glmm"`.
#' @param correlation Logical: attach the correlation matrix as attribute
#'   `"correlation"`?
#' @param sigm Scale parameter at which to compute the `R_X`-based matrix
#'   (default `sigma(object)`; lme4's argument). Given, it selects the `R_X`
#'   matrix (`use.hessian = TRUE` with it is an error: the Hessian-based
#'   matrix has no scale to set).
#' @param use.hessian `NULL` (default: use the Hessian when available),
#'   `TRUE` (use it; an error when the fit has none) or `FALSE` (use `R_X`).
#' @param ... `full = TRUE` (glmmTMB's argument): the covariance of all
#'   parameters as glmmTMB's `vcov(full = TRUE)` gives it for the same model
#'   (a binomial or Poisson GLMM is the same model in both packages): the
#'   fixed effects, then rows `theta_<term>.<k>` for the covariance
#'   parameters of each random-effects term in glmmTMB's parameterization
#'   (log standard deviations, then its transformed correlations; see
#'   [vcov_components]), from the inverse Hessian by the delta method. It
#'   needs the fit's Hessian (not `nAGQ = 0`) and takes none of the other
#'   arguments. Anything else is not used: it is accepted because other
#'   packages' code passes its own arguments on to `vcov()` (emmeans passes
#'   `complete`, `misc` and `options`), as `vcov()` of an `lmm()` fit and
#'   lme4's method accept them.
#' @return A p x p matrix with the names of the fixed effects as dimnames.
#'   lme4 returns the same numbers as a `Matrix` package object; this is a
#'   base matrix. With `full = TRUE`, a square matrix over the fixed effects
#'   and the covariance parameters.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'             family = binomial, data = lme4::cbpp)
#' vcov(fit)
#' sqrt(diag(vcov(fit)))
#' # with the log standard deviation of the herd effect, as glmmTMB has it
#' vcov(fit, full = TRUE)
#' @importFrom stats vcov
#' @method vcov glmm
#' @export
vcov.glmm <- function(object, correlation = FALSE, sigm = sigma(object),
                      use.hessian = NULL, ...) {
  if (is_extended_fit(object)) {
    # glmmTMB-style fits: glmmTMB's list per component (R/methods-extended.R)
    if (!missing(correlation) || !missing(sigm) || !is.null(use.hessian)) {
      stop("'correlation', 'sigm' and 'use.hessian' are not available for glmmTMB-style fits",
           call. = FALSE)
    }
    return(vcov_extended(object, ...))
  }
  full <- list(...)$full
  if (!is.null(full)) {
    check_flag(full, "full", "vcov()")
    if (full) {
      if (!missing(correlation) || !missing(sigm) || !is.null(use.hessian)) {
        stop("vcov(full = TRUE) takes no 'correlation', 'sigm' or 'use.hessian'",
             call. = FALSE)
      }
      return(glmm_vcov_full(object))
    }
  }
  hess <- glmm_hessian_info(object)
  scale <- 1
  if (!missing(sigm)) {
    if (!is.numeric(sigm) || length(sigm) != 1L || !is.finite(sigm) || sigm < 0) {
      stop("vcov(): 'sigm' must be a single non-negative number, not ",
           deparse1(sigm), call. = FALSE)
    }
    if (isTRUE(use.hessian)) {
      stop("vcov(): 'sigm' scales the matrix computed from R_X; the Hessian-based ",
           "matrix (use.hessian = TRUE) has no scale to set", call. = FALSE)
    }
    use.hessian <- FALSE
    scale <- (sigm / sigma(object))^2
  }
  if (is.null(use.hessian)) use.hessian <- hess$available
  if (!is.logical(use.hessian) || length(use.hessian) != 1L || is.na(use.hessian)) {
    stop("'use.hessian' must be NULL, TRUE or FALSE", call. = FALSE)
  }
  if (use.hessian && !hess$available) {
    stop("'use.hessian' = TRUE specified, but the Hessian is unavailable ",
         "(the fit did not compute derivatives, e.g. nAGQ = 0)", call. = FALSE)
  }
  v <- glmm_vcov_rx(object)
  hess_ok <- hess$available && !hess$bad
  if (scale != 1) {
    v <- v * scale
  } else if (!use.hessian && hess_ok && any(abs(v - hess$V) > 1e-4 * abs(hess$V))) {
    warning("variance-covariance matrix computed from finite-difference Hessian\n",
            "and from RX differ by >1e-04: consider 'use.hessian=TRUE'", call. = FALSE)
  }
  if (use.hessian) {
    if (hess_ok) {
      v <- hess$V
    } else {
      warning("variance-covariance matrix computed from finite-difference Hessian is\n",
              "not positive definite or contains NA values: falling back to ",
              "var-cov estimated from RX", call. = FALSE)
    }
  }
  v <- check_covariance(v)
  nms <- colnames(object$X)
  dimnames(v) <- list(nms, nms)
  if (correlation) attr(v, "correlation") <- stats::cov2cor(v)
  v
}

# glmmTMB's vcov(full = TRUE) of an lme4-style fit (glmmTMB's model where
# its family is binomial or Poisson): the fixed effects' covariance, then the
# covariance parameters of the random effects as glmmTMB parameterizes them
# (R/glmmtmb-theta.R), from the inverse of the Hessian of the deviance over
# c(covariance parameters, fixed effects) that the fit stores.
glmm_vcov_full <- function(object) {
  hess <- glmm_hessian_info(object)
  if (!hess$available) {
    stop("vcov(full = TRUE) needs the fit's Hessian over the covariance parameters and ",
         "the fixed effects, which this fit did not compute (nAGQ = 0, or ",
         "calc.derivs = FALSE): refit with nAGQ >= 1 and calc.derivs = TRUE", call. = FALSE)
  }
  if (is.null(hess$V_all) || hess$bad) {
    stop("vcov(full = TRUE): the fit's Hessian is not positive definite, so it gives ",
         "no covariance matrix", call. = FALSE)
  }
  beta_rows <- length(cov_par(object)) + seq_along(object$beta)
  v <- hess$V
  nms <- colnames(object$X)
  dimnames(v) <- list(nms, nms)
  glmmtmb_full_vcov(v, hess$V_all, beta_rows, list(glmmtmb_cond_theta_part(object)))
}

# R_X-based covariance of the fixed effects (sigma^2 (R_X'R_X)^-1).
glmm_vcov_rx <- function(object) {
  v <- object$vcov_rx
  if (is.null(v)) v <- object$vcov
  as.matrix(v)
}

# The Hessian-based covariance of the fixed effects, from the Hessian of the
# deviance over c(theta, beta) stored by the fit: twice the beta block of its
# inverse (`V`; `V_all` the whole of it, NULL when H cannot be inverted).
# `available` is FALSE when the fit has no such Hessian; `bad` is TRUE when
# it cannot be inverted or the result is not positive definite.
glmm_hessian_info <- function(object) {
  H <- object$optinfo$derivs$Hessian
  nth <- length(cov_par(object))
  p <- length(object$beta)
  if (is.null(H) || NROW(H) <= nth || NROW(H) != nth + p) {
    return(list(available = FALSE, bad = TRUE, V = NULL, H = NULL))
  }
  H <- as.matrix(H)
  beta_idx <- nth + seq_len(p)
  # A positive definite Hessian (the rule) is inverted through its Cholesky
  # factor, whose success also says the fixed effects' block of the inverse
  # is positive definite: 0.03 ms less than solve() and eigen() on cbpp, a
  # fortieth of its whole fit. Any other goes the general way.
  R <- if (!anyNA(H)) tryCatch(chol(H), error = function(e) NULL)
  if (!is.null(R)) {
    V_all <- 2 * chol2inv(R)
    V <- V_all[beta_idx, beta_idx, drop = FALSE]
    return(list(available = TRUE, bad = anyNA(V), V = V, V_all = V_all, H = H))
  }
  inv <- tryCatch(solve(H), error = function(e) NULL)
  V_all <- if (!is.null(inv)) inv + t(inv)
  V <- if (is.null(V_all)) matrix(NA_real_, p, p) else V_all[beta_idx, beta_idx, drop = FALSE]
  bad <- anyNA(V) ||
    min(eigen(V, symmetric = TRUE, only.values = TRUE)$values) <= 0
  list(available = TRUE, bad = bad, V = V, V_all = V_all, H = H)
}

# A covariance matrix that is not symmetric positive definite becomes an NA
# matrix with a warning, as lme4's vcov() does.
check_covariance <- function(v) {
  if (length(v) == 0L) return(v)
  ok <- !anyNA(v) && isSymmetric(unname(v), tol = 1e-8) &&
    !inherits(tryCatch(chol(v), error = function(e) e), "error")
  if (ok) return(v)
  warning("Computed variance-covariance matrix problem: not a positive definite ",
          "symmetric matrix;\nreturning NA matrix", call. = FALSE)
  matrix(NA_real_, nrow(v), ncol(v))
}

#' Log-likelihood of a generalized linear mixed model
#'
#' Minus half the optimized criterion: the Laplace approximation (`nAGQ = 1`
#' or `0`) or the adaptive Gauss-Hermite approximation (`nAGQ > 1`) of the
#' deviance, as lme4's `logLik()` for `glmer()` fits.
#'
#' @param object A fitted model of class `"glmm"`.
#' @param REML Must be `NULL` or `FALSE`: there is no restricted likelihood
#'   for GLMMs.
#' @param ... Ignored.
#' @return An object of class `"logLik"` with attributes `df` (number of
#'   fixed effects + number of covariance parameters + 1 for families with a
#'   scale parameter) and `nobs`; [AIC()] and [BIC()] use it.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'             family = binomial, data = lme4::cbpp)
#' logLik(fit)
#' AIC(fit)
#' BIC(fit)
#' @importFrom stats logLik
#' @method logLik glmm
#' @export
logLik.glmm <- function(object, REML = NULL, ...) {
  if (isTRUE(REML)) {
    stop("can't compute the REML criterion of a generalized linear mixed model",
         call. = FALSE)
  }
  if (is_extended_fit(object)) return(logLik_extended(object))
  # A fit to a table's rows grouped by covariate pattern: plus the constant
  # that makes it the rows' log-likelihood (R/sql-compress.R).
  offset <- if (is.null(object$table)) 0 else object$table$loglik_offset
  mer_loglik(object, -unname(object$devcomp$cmp[["dev"]]) / 2 + offset)
}

#' Deviance of a generalized linear mixed model
#'
#' As lme4's `deviance()` for `glmer()` fits: the sum of the squared
#' deviance residuals (the conditional deviance given the random effects'
#' conditional modes). This is not minus twice the log-likelihood; that
#' number is the `deviance` column of the summary's criterion table and
#' `-2 * logLik(fit)`.
#'
#' @param object A fitted model of class `"glmm"`.
#' @param ... Ignored.
#' @return A number.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'             family = binomial, data = lme4::cbpp)
#' deviance(fit)
#' -2 * as.numeric(logLik(fit))
#' @importFrom stats deviance
#' @method deviance glmm
#' @export
deviance.glmm <- function(object, ...) {
  if (is_extended_fit(object)) {
    stop("deviance() is not defined for glmmTMB-style fits (glmmTMB has no deviance ",
         "method either); -2 * logLik(fit) is the 'deviance' of summary()'s table",
         call. = FALSE)
  }
  offset <- if (is.null(object$table)) 0 else object$table$deviance_offset
  sum(glmm_residuals(object, "deviance")^2) + offset
}
