# glmm.nb(): lme4::glmer.nb()'s interface on the negative binomial family
# with theta estimated jointly with the other parameters.

#' Fit a negative binomial mixed model as `lme4::glmer.nb()`
#'
#' Fits a generalized linear mixed model for overdispersed counts with the
#' negative binomial distribution (variance `mu + mu^2 / theta`), as
#' `lme4::glmer.nb()` does, and prints it as glmer.nb does (family
#' "Negative Binomial(theta)"). Unlike glmer.nb, which alternates between a
#' one-dimensional search for `theta` and `glmer()` fits at fixed `theta`,
#' `theta` is estimated jointly with the covariance parameters and the fixed
#' effects by the same Laplace approximation (lme4's, with the expected
#' information in the determinant, so that the criterion is glmer.nb's): one
#' optimization, and its standard errors account for the uncertainty of
#' `theta`. Prior weights multiply each observation's log-density, as in
#' `MASS::negative.binomial()$aic`; lme4 1.1.31's compiled version of that
#' aic weights only its first term, so glmer.nb's criterion with prior
#' weights is not that likelihood and its fit differs. [glmm()] with `family = nbinom2` fits the same model with
#' glmmTMB's Laplace approximation (the observed information) and printout.
#'
#' @inheritParams glmm
#' @param link The link of the mean: `"log"` (default), `"sqrt"` or
#'   `"identity"`.
#' @param initCtrl Optional `list(theta = )`: the starting value of `theta`
#'   (glmer.nb's argument; its other elements configure glmer.nb's
#'   alternation, which is not used here, and are an error).
#' @param ... Not used: glmer.nb's `interval`, `tol` and `nb.control`
#'   configure its alternation between theta and the other parameters, which
#'   mixedrs does not use (an error says so), and `family` is fixed.
#' @return A `"glmm"` object; `getME(fit, "glmer.nb.theta")` gives `theta`
#'   (as for glmer.nb), `fit$extended$disp$beta` its logarithm.
#' @seealso [glmm()] with `family = nbinom2` for glmmTMB's version.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' data("grouseticks", package = "lme4")
#' fit <- glmm.nb(TICKS ~ YEAR + (1 | BROOD), data = grouseticks)
#' fit
#' getME(fit, "glmer.nb.theta")
#' @export
glmm.nb <- function(formula, data = NULL, weights, offset, subset, na.action,
                    control = glmmControl(), start = NULL, verbose = FALSE,
                    nAGQ = 1L, contrasts = NULL, mustart, etastart,
                    link = "log", initCtrl = NULL, ...) {
  dots <- list(...)
  if (length(dots) > 0L) {
    alternation <- intersect(names(dots), c("interval", "tol", "nb.control"))
    if (length(alternation) > 0L) {
      stop("glmm.nb() estimates theta jointly with the other parameters, not ",
           "by glmer.nb()'s alternation, so '", paste(alternation, collapse = "', '"),
           "' (which configure that alternation) cannot be used", call. = FALSE)
    }
    if ("family" %in% names(dots)) {
      stop("glmm.nb() fits the negative binomial family; use glmm() for other ",
           "families", call. = FALSE)
    }
    stop("unused argument", if (length(dots) > 1L) "s", " to glmm.nb(): ",
         paste(if (is.null(names(dots))) "(unnamed)" else names(dots), collapse = ", "),
         call. = FALSE)
  }
  theta_start <- NULL
  if (!is.null(initCtrl)) {
    if (!is.list(initCtrl) || !identical(setdiff(names(initCtrl), c("theta")), character(0))) {
      stop("'initCtrl' may only give 'theta' (the starting value of theta); its ",
           "other elements configure glmer.nb()'s alternation, which glmm.nb() ",
           "does not use", call. = FALSE)
    }
    theta_start <- initCtrl$theta
    if (!is.null(theta_start) && (!is.numeric(theta_start) || length(theta_start) != 1L ||
                                  !is.finite(theta_start) || theta_start <= 0)) {
      stop("'initCtrl$theta' must be a single positive number", call. = FALSE)
    }
  }
  if (!is.character(link) || length(link) != 1L || !link %in% c("log", "sqrt", "identity")) {
    stop("'link' must be \"log\", \"sqrt\" or \"identity\" for the negative ",
         "binomial family", call. = FALSE)
  }
  mc <- match.call()
  mc$link <- NULL
  mc$initCtrl <- NULL
  env <- parent.frame()
  if (missing(control)) control <- default_control("glmm")
  control <- as_fit_control(control, "glmm")
  nAGQ <- check_nagq(nAGQ)
  verbose <- max(check_verbose(verbose), control$opt_verbose)
  data <- data_value(mc, env)
  if (is_sql_data(data)) {
    stop("glmm.nb() needs a data frame; database tables support glmm() with ",
         "the binomial and Poisson families", call. = FALSE)
  }
  family <- nb_engine_family(link)
  glmm_extended(mc, env, family, ~0, ~1, nAGQ, control, start, verbose,
                devFunOnly = FALSE, style = "glmer.nb", nb_theta_start = theta_start,
                data = data)
}

# The nbinom2 family object with `link` that glmm.nb() (and glmm() with a
# fixed theta) hand to the engine; the fit's own family is nb_family().
nb_engine_family <- function(link = "log") {
  family <- extended_family("nbinom2")
  if (link != "log") {
    lk <- stats::make.link(link)
    family[c("link", "linkfun", "linkinv", "mu.eta", "valideta")] <-
      list(link, lk$linkfun, lk$linkinv, lk$mu.eta, lk$valideta)
  }
  family
}
