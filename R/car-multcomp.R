# Methods for car's and multcomp's generics whose default methods read
# coef() as the vector of fixed effects. On a mixed model coef() is the table
# of per-group coefficients, so those defaults fail, or worse, compute on the
# wrong numbers (car::vif() gave GVIFs with the intercept left in the
# correlation matrix). The methods here work on the fixed effects and their
# covariance, as car's and multcomp's methods for lme4's fits do:
# * vif(): generalized variance inflation factors (Fox and Monette 1992),
#   GVIF_j = det(R_jj) det(R_-j-j) / det(R), R the correlation matrix of the
#   coefficients without the intercept, j the columns of term j;
# * linearHypothesis(): the Wald chi-square test of L beta = rhs, or for REML
#   fits of linear mixed models Kenward-Roger's F test (R/ddf.R);
# * deltaMethod(), Confint(), matchCoefs(): on the fixed effects;
# * multcomp's modelparm(), which glht() reads.
# For glmmTMB-style fits they use the conditional model, as car and multcomp
# do for glmmTMB's fits. Registered when car or multcomp is loaded.

# The conditional model's fixed effects and their covariance matrix.
conditional_estimates <- function(fit) {
  beta <- mer_fixef(fit)
  V <- if (is_extended_fit(fit)) as.matrix(fit$vcov) else as.matrix(stats::vcov(fit))
  dimnames(V) <- list(names(beta), names(beta))
  list(beta = beta, vcov = V)
}

# A covariance given as `vcov.` (NULL, a matrix or a function of the fit).
given_vcov <- function(vcov., fit, default) {
  if (is.null(vcov.)) return(default)
  V <- as.matrix(if (is.function(vcov.)) vcov.(fit) else vcov.)
  if (!identical(dim(V), dim(default))) {
    stop("'vcov.' must be a ", nrow(default), " x ", ncol(default), " matrix (one row and ",
         "column per fixed effect), not ", paste(dim(V), collapse = " x "), call. = FALSE)
  }
  V
}

#' car's and multcomp's tools on mixed model fits
#'
#' Methods for the car and multcomp generics that lme4's fits have methods
#' for, so that they work on `"lmm"` and `"glmm"` fits with the same results
#' (on glmmTMB-style fits, on the conditional model):
#' * `car::vif()`: generalized variance inflation factors of the fixed-effect
#'   terms, from the correlation matrix of the coefficients without the
#'   intercept; a named vector when every term has one coefficient, otherwise
#'   a matrix with columns `GVIF`, `Df` and `GVIF^(1/(2*Df))`.
#' * `car::linearHypothesis()`: the Wald chi-square test of
#'   `hypothesis.matrix %*% beta = rhs` (hypotheses may be written as
#'   character strings, e.g. `"x = 0"`), or with `test = "F"` for a linear
#'   mixed model fitted by REML Kenward-Roger's F test, as car computes it
#'   with pbkrtest. Unlike car, a non-zero `rhs` is honoured by the F test
#'   (car sets it to 0 with a warning).
#' * `car::deltaMethod()`: the delta-method estimate and standard error of a
#'   function of the fixed effects.
#' * `car::Confint()`: Wald confidence intervals of the fixed effects, with
#'   their estimates (for GLMMs with a log or logit link optionally
#'   exponentiated).
#' * `car::matchCoefs()`: the names of the fixed effects matching a pattern.
#' * multcomp's `modelparm()`, which `multcomp::glht()` reads, so that
#'   `glht(fit, linfct = mcp(f = "Tukey"))` works as on lme4's fits.
#' * `car::outlierTest()`, `car::influencePlot()` and `car::powerTransform()`
#'   of a linear mixed model: car's methods for lme4's fits, run on
#'   [as_lmerMod()] of the fit (lme4's object at the same estimates);
#'   `powerTransform()` refits the model with lme4.
#'
#' @param mod,model,object A fit of class `"lmm"` or `"glmm"`.
#' @param hypothesis.matrix A matrix (or vector) of contrasts with one column
#'   per fixed effect, or a character vector of hypotheses, as
#'   `car::linearHypothesis()` takes.
#' @param rhs Right-hand side of the hypotheses (default 0).
#' @param vcov. Covariance of the fixed effects to use instead of `vcov()`:
#'   a matrix or a function of the fit (not with `test = "F"`, whose
#'   covariance is Kenward-Roger's).
#' @param test `"Chisq"` (default) or `"F"`.
#' @param singular.ok Accepted for car's signature: mixedrs' fits have no
#'   aliased coefficients (dropped columns are not coefficients).
#' @param verbose Print the hypothesis matrix, right-hand side and estimate.
#' @param g. The function of the coefficients, as a character string (see
#'   `car::deltaMethod()`).
#' @param parameterNames Names to give the coefficients in `g.`.
#' @param envir Environment in which `g.` is evaluated.
#' @param estimate Include the estimates as the first column.
#' @param level Confidence level.
#' @param exponentiate For GLMMs with a log or logit link: exponentiate the
#'   estimates and limits.
#' @param silent With `exponentiate`, leave out the heading car prints.
#' @param pattern A regular expression.
#' @param coef.,df Passed on to multcomp's default method (`coef.` defaults
#'   to the fixed effects).
#' @param ... For `deltaMethod()` passed to car's default method (e.g.
#'   `constants`, `level`); for `matchCoefs()` to [grep()]; for `modelparm()`
#'   to multcomp's default method; otherwise not used (an error if given).
#' @return As the car and multcomp functions: see their help pages.
#' @examplesIf requireNamespace("car", quietly = TRUE) && requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(angle ~ recipe + temperature + (1 | recipe:replicate), lme4::cake)
#' car::vif(fit)
#' car::linearHypothesis(fit, c("recipeB = 0", "recipeC = 0"))
#' car::linearHypothesis(fit, "recipeB = recipeC", test = "F")
#' car::deltaMethod(fit, "recipeB / recipeC")
#' car::Confint(fit)
#' @examplesIf requireNamespace("multcomp", quietly = TRUE) && requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(angle ~ recipe + temperature + (1 | recipe:replicate), lme4::cake)
#' summary(multcomp::glht(fit, linfct = multcomp::mcp(recipe = "Tukey")))
#' @name car-methods
NULL

#' @rdname car-methods
#' @exportS3Method car::vif
vif.lmm <- function(mod, ...) {
  check_no_dots(..., caller = "vif()")
  est <- conditional_estimates(mod)
  V <- est$vcov
  assign <- attr(stats::model.matrix(mod), "assign")
  if (length(est$beta) && names(est$beta)[1L] == "(Intercept)") {
    V <- V[-1L, -1L, drop = FALSE]
    assign <- assign[-1L]
  } else {
    warning("No intercept: vifs may not be sensible.", call. = FALSE)
  }
  labels <- attr(mer_fixed_terms(mod), "term.labels")
  if (length(labels) < 2L) {
    stop("vif(): the model has fewer than 2 fixed-effect terms", call. = FALSE)
  }
  R <- stats::cov2cor(V)
  det_R <- det(R)
  out <- matrix(0, length(labels), 3L,
                dimnames = list(labels, c("GVIF", "Df", "GVIF^(1/(2*Df))")))
  for (j in seq_along(labels)) {
    cols <- which(assign == j)
    out[j, 1L] <- det(R[cols, cols, drop = FALSE]) * det(R[-cols, -cols, drop = FALSE]) / det_R
    out[j, 2L] <- length(cols)
  }
  if (all(out[, 2L] == 1)) return(out[, 1L])
  out[, 3L] <- out[, 1L]^(1 / (2 * out[, 2L]))
  out
}

#' @rdname car-methods
#' @exportS3Method car::vif
vif.glmm <- vif.lmm

#' @rdname car-methods
#' @exportS3Method car::linearHypothesis
linearHypothesis.lmm <- function(model, hypothesis.matrix, rhs = NULL, vcov. = NULL,
                                 test = c("Chisq", "F"), singular.ok = FALSE,
                                 verbose = FALSE, ...) {
  check_no_dots(..., caller = "linearHypothesis()")
  test <- match.arg(test)
  check_flag(verbose, "verbose", "linearHypothesis()")
  est <- conditional_estimates(model)
  b <- est$beta
  if (is.character(hypothesis.matrix)) {
    L <- car::makeHypothesis(names(b), hypothesis.matrix, rhs)
    if (is.null(dim(L))) L <- t(L)
    rhs <- L[, ncol(L)]
    L <- L[, -ncol(L), drop = FALSE]
    rownames(L) <- hypothesis.matrix
  } else {
    L <- if (is.null(dim(hypothesis.matrix))) t(hypothesis.matrix) else hypothesis.matrix
    if (!is.numeric(L) || ncol(L) != length(b)) {
      stop("linearHypothesis(): 'hypothesis.matrix' must have one column per fixed effect (",
           length(b), "), not ", ncol(L), call. = FALSE)
    }
    if (is.null(rhs)) rhs <- rep(0, nrow(L))
  }
  q <- nrow(L)
  if (verbose) {
    cat("\nHypothesis matrix:\n")
    print(L)
    cat("\nRight-hand-side vector:\n")
    print(rhs)
    cat("\nEstimated linear function (hypothesis.matrix %*% coef - rhs)\n")
    print(drop(L %*% b - rhs))
    cat("\n")
  }
  if (test == "Chisq") {
    V <- given_vcov(vcov., model, est$vcov)
    d <- L %*% b - rhs
    chisq <- drop(crossprod(d, solve(L %*% V %*% t(L), d)))
    table <- data.frame(Df = c(NA, q), Chisq = c(NA, chisq),
                        `Pr(>Chisq)` = c(NA, stats::pchisq(chisq, q, lower.tail = FALSE)),
                        check.names = FALSE, row.names = 1:2)
  } else {
    if (!is.null(vcov.)) {
      stop("linearHypothesis(): 'vcov.' cannot be used with test = \"F\" (the F test ",
           "uses Kenward-Roger's adjusted covariance)", call. = FALSE)
    }
    if (!inherits(model, "lmm") || !isTRUE(model$REML)) {
      stop("linearHypothesis(): the F test is available only for linear mixed models ",
           "fitted by REML", call. = FALSE)
    }
    res <- joint_contrast_test(ddf_parts(model, "Kenward-Roger"), L, rhs)
    table <- data.frame(Res.Df = c(res$DenDF + q, res$DenDF), Df = c(NA, q),
                        F = c(NA, res$`F value`), `Pr(>F)` = c(NA, res$`Pr(>F)`),
                        check.names = FALSE, row.names = 1:2)
  }
  heading <- c("Linear hypothesis test\n\nHypothesis:", car::printHypothesis(L, rhs, names(b)),
               "", paste0("Model 1: restricted model\nModel 2: ",
                          paste(deparse(stats::formula(model)), collapse = "\n")),
               if (is.null(vcov.)) "" else "\nNote: Coefficient covariance matrix supplied.\n")
  structure(table, heading = heading, class = c("anova", "data.frame"))
}

#' @rdname car-methods
#' @exportS3Method car::linearHypothesis
linearHypothesis.glmm <- linearHypothesis.lmm

#' @rdname car-methods
#' @exportS3Method car::deltaMethod
deltaMethod.lmm <- function(object, g., vcov. = NULL, parameterNames = NULL, ...,
                            envir = parent.frame()) {
  est <- conditional_estimates(object)
  para <- est$beta
  if (!is.null(parameterNames)) {
    if (length(parameterNames) != length(para)) {
      stop("deltaMethod(): 'parameterNames' must name all ", length(para),
           " fixed effects", call. = FALSE)
    }
    names(para) <- parameterNames
  }
  V <- given_vcov(vcov., object, est$vcov)
  dimnames(V) <- list(names(para), names(para))
  car::deltaMethod(para, g., V, ..., envir = envir)
}

#' @rdname car-methods
#' @exportS3Method car::deltaMethod
deltaMethod.glmm <- deltaMethod.lmm

#' @rdname car-methods
#' @exportS3Method car::Confint
Confint.lmm <- function(object, estimate = TRUE, level = 0.95, exponentiate = FALSE,
                        silent = FALSE, ...) {
  check_no_dots(..., caller = "Confint()")
  check_level(level, "Confint()")
  check_flag(estimate, "estimate", "Confint()")
  check_flag(exponentiate, "exponentiate", "Confint()")
  est <- conditional_estimates(object)
  a <- (1 - level) / 2
  a <- c(a, 1 - a)
  se <- sqrt(diag(est$vcov))
  ci <- matrix(est$beta + se %o% stats::qnorm(a), length(se), 2L,
               dimnames = list(names(est$beta), format_perc(a)))
  if (estimate) ci <- cbind(Estimate = est$beta, ci)
  if (!exponentiate) return(ci)
  link <- if (is_glmm(object)) object$family$link else "identity"
  if (!link %in% c("log", "logit")) {
    stop("Confint(): exponentiated coefficients are available only for a log or logit ",
         "link, not the ", link, " link", call. = FALSE)
  }
  if (!isTRUE(silent)) cat("\nExponentiated Coefficients and Confidence Bounds\n")
  exp(ci)
}

#' @rdname car-methods
#' @exportS3Method car::Confint
Confint.glmm <- Confint.lmm

#' @rdname car-methods
#' @exportS3Method car::matchCoefs
matchCoefs.lmm <- function(model, pattern, ...) {
  grep(pattern, names(mer_fixef(model)), value = TRUE, ...)
}

#' @rdname car-methods
#' @exportS3Method car::matchCoefs
matchCoefs.glmm <- matchCoefs.lmm

#' @rdname car-methods
#' @exportS3Method multcomp::modelparm
modelparm.lmm <- function(model, coef. = NULL, vcov. = NULL, df = NULL, ...) {
  est <- conditional_estimates(model)
  NextMethod(coef. = if (is.null(coef.)) est$beta else coef.,
             vcov. = if (is.null(vcov.)) est$vcov else vcov., df = df)
}

#' @rdname car-methods
#' @exportS3Method multcomp::modelparm
modelparm.glmm <- modelparm.lmm

# car's methods for lme4's linear mixed models that read lme4's residual and
# influence methods or refit with lme4 (powerTransform()): run on the fit's
# lme4 object, so the numbers are theirs at our estimates.

#' @rdname car-methods
#' @exportS3Method car::outlierTest
outlierTest.lmm <- function(model, ...) car::outlierTest(as_lmerMod(model), ...)

#' @rdname car-methods
#' @exportS3Method car::influencePlot
influencePlot.lmm <- function(model, ...) car::influencePlot(as_lmerMod(model), ...)

#' @rdname car-methods
#' @exportS3Method car::powerTransform
powerTransform.lmm <- function(object, ...) car::powerTransform(as_lmerMod(object), ...)
