# Refitting a fitted model: refit() to a new response and refitML() by
# maximum likelihood, as lme4's refit() and refitML(). Both run the fit
# pipeline's engine call again on the fit's own design (X, the terms, weights,
# offset), starting from the fit's estimates, and assemble the result with
# the same functions lmm() and glmm() use, so a refitted model is a complete
# fit. The generics are in R/generics.R.

#' @rdname refit
#' @export
refit.mixedrs_fit <- function(object, newresp = NULL, rename.response = FALSE,
                              maxit = 100L, control = NULL, verbose = FALSE, ...) {
  require_rows(object, "refit()")
  check_no_dots(..., caller = "refit()")
  newresp_expr <- substitute(newresp)
  if (!is.null(object$extended)) {
    # glmmTMB's families, zero inflation, dispersion models, glmm.nb(): the
    # engine refits the stored design (R/refit-extended.R).
    if (rename.response) {
      stop("refit(): 'rename.response' is not available for fits of the ",
           object$extended$family, " family or with 'ziformula'/'dispformula'",
           call. = FALSE)
    }
    y <- if (is.null(newresp)) object$y else newresp
    if (is.data.frame(y)) y <- y[[1L]]
    if (is.matrix(y)) {
      if (ncol(y) != 2L || object$extended$family != "betabinomial") {
        stop("refit(): a matrix response is cbind(successes, failures) of a ",
             "betabinomial fit", call. = FALSE)
      }
      if (any(abs(rowSums(y) - object$extended$n_trials) > 1e-8)) {
        stop("refit(): the new cbind(successes, failures) must keep the fit's ",
             "numbers of trials", call. = FALSE)
      }
      y <- y[, 1L]
    }
    if (!is.numeric(y)) {
      stop("refit(): 'newresp' must be numeric for this fit", call. = FALSE)
    }
    return(refit_extended(object, y, control, check_verbose(verbose)))
  }
  check_flag(rename.response, "rename.response", "refit()")
  if (!is.numeric(maxit) || length(maxit) != 1L || maxit != 100) {
    stop("refit(): 'maxit' (lme4's limit on PIRLS iterations) is not supported; ",
         "the engine's PIRLS limit is its own", call. = FALSE)
  }
  verbose <- check_verbose(verbose)
  if (is.null(control)) control <- control_of(object, parent.frame())
  want <- if (is_glmm(object)) "glmmControl" else "lmmControl"
  if (!inherits(control, want)) {
    stop("refit(): 'control' must be built by ", want, "(), not a ",
         class(control)[1L], call. = FALSE)
  }
  frame <- object$frame
  formula <- object$formula
  call <- object$call
  if (!is.null(newresp)) {
    frame <- refit_frame(object, newresp)
    if (rename.response) {
      label <- deparse1(newresp_expr)
      rcol <- attr(attr(frame, "terms"), "response")
      names(frame)[rcol] <- label
      formula[[2L]] <- newresp_expr
      call$formula <- formula
    }
  }
  inputs <- list(formula = formula, frame = frame, X = object$X,
                 offset = if (isTRUE(object$has_offset)) object$offset,
                 reterms = object$reterms, flist = object$flist,
                 na.action = object$na.action)
  if (is_glmm(object)) refit_glmm(object, inputs, call, control, verbose)
  else refit_lmm(object, inputs, call, isTRUE(object$REML), control, verbose)
}

# The model frame with `newresp` as its response (in the form of the
# original response where it is a matrix of successes and failures).
refit_frame <- function(object, newresp) {
  if (is.list(newresp)) {
    if (length(newresp) != 1L) {
      stop("refit(): refit not implemented for several responses in lists: 'newresp' ",
           "must be one response (a vector, matrix or one-column data frame), not a list of ",
           length(newresp), "; use lapply(newresp, refit, object = fit) for several",
           call. = FALSE)
    }
    na_act <- attr(newresp, "na.action")
    newresp <- newresp[[1L]]
    attr(newresp, "na.action") <- na_act
  }
  frame <- object$frame
  n <- nrow(frame)
  len <- NROW(newresp)
  na_act <- mer_na_action(object)
  if (!is.null(na_act) && is.null(attr(newresp, "na.action")) &&
      len == n + length(na_act)) {
    # one value per row of the data: drop the rows the fit omitted
    newresp <- if (is.matrix(newresp)) newresp[-na_act, , drop = FALSE] else newresp[-na_act]
    len <- NROW(newresp)
  }
  attr(newresp, "na.action") <- NULL
  if (len != n) {
    stop("refit(): 'newresp' has ", len, " values but the model was fitted to ",
         n, " observations", call. = FALSE)
  }
  if (!is.numeric(newresp) && !is.factor(newresp) && !is.logical(newresp)) {
    stop("refit(): 'newresp' must be numeric, logical or a factor, not ",
         describe_class(newresp), call. = FALSE)
  }
  rcol <- attr(attr(frame, "terms"), "response")
  old <- frame[[rcol]]
  if (is.matrix(old) && ncol(old) == 2L && !is.matrix(newresp) && is.numeric(newresp) &&
      all(newresp >= 0 & newresp <= 1, na.rm = TRUE) && is_glmm(object)) {
    # proportions for a model of successes and failures: with the fit's
    # numbers of trials
    trials <- rowSums(old)
    succ <- newresp * trials
    if (any(abs(succ - round(succ)) > 1e-8 * pmax(1, trials))) {
      stop("refit(): 'newresp' gives proportions that are not whole numbers of ",
           "successes out of the model's trials (the row sums of its response)",
           call. = FALSE)
    }
    m <- cbind(round(succ), trials - round(succ))
    dimnames(m) <- dimnames(old)
    newresp <- m
  } else if (is.matrix(newresp) && is.null(rownames(newresp))) {
    rownames(newresp) <- rownames(frame)
  }
  if (!is.matrix(newresp) && !is.null(rownames(frame))) names(newresp) <- NULL
  frame[[rcol]] <- newresp
  frame
}

refit_lmm <- function(object, inputs, call, REML, control, verbose) {
  inputs$y <- frame_response(inputs$frame)
  inputs$weights <- if (isTRUE(object$has_weights)) object$weights
  raw <- lmm_fit_raw(inputs, REML, control, as.double(cov_par(object)), verbose)
  fit <- lmm_object(call, inputs, raw, REML, control$optimizer)
  report_convergence(fit$optinfo, control)
  report_confounded_terms(inputs, REML, control)
  fit
}

refit_glmm <- function(object, inputs, call, control, verbose) {
  family <- object$family
  not_const <- control$check.response.not.const
  resp <- glmm_response(inputs$frame, family, frame_weights(inputs$frame, zero_ok = TRUE),
                        if (is.null(not_const)) "stop" else not_const)
  inputs <- c(inputs, list(y = resp$y, weights = resp$weights, n_trials = resp$n,
                           mustart = resp$mustart, etastart = resp$etastart,
                           family = family))
  nagq <- object$nAGQ
  start <- list(theta = as.double(cov_par(object)),
                fixef = if (nagq > 0L) as.double(object$beta))
  raw <- glmm_fit_raw(inputs, family, nagq, control, start, verbose)
  fit <- glmm_object(call, inputs, raw, family, nagq, control)
  report_convergence(fit$optinfo, control)
  report_hessian(fit)
  fit
}

#' @rdname refitML
#' @export
refitML.mixedrs_fit <- function(x, optimizer = "bobyqa", ...) {
  check_no_dots(..., caller = "refitML()")
  opt <- check_optimizer(optimizer, substitute(optimizer), "refitML()", parent.frame())
  if (!isREML.mixedrs_fit(x)) return(x)
  control <- control_of(x, parent.frame())
  control$optimizer <- opt$name
  control["optimizer_fun"] <- list(opt$fun)
  if (is_sums_fit(x)) return(sums_refit_ml(x, control))
  refit_criterion(x, REML = FALSE, control)
}

# A linear mixed model refitted to the data it holds by REML (TRUE) or ML
# (FALSE), starting from its estimates of theta; the refit's call says which.
refit_criterion <- function(x, REML, control) {
  call <- x$call
  call$REML <- REML
  inputs <- list(formula = x$formula, frame = x$frame, X = x$X,
                 offset = if (isTRUE(x$has_offset)) x$offset,
                 reterms = x$reterms, flist = x$flist, na.action = x$na.action)
  inputs$y <- as.vector(x$y)
  inputs$weights <- if (isTRUE(x$has_weights)) x$weights
  raw <- lmm_fit_raw(inputs, REML, control, as.double(cov_par(x)), 0L)
  fit <- lmm_object(call, inputs, raw, REML, control$optimizer)
  report_convergence(fit$optinfo, control)
  report_confounded_terms(inputs, REML, control)
  fit
}
