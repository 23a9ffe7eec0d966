# Model comparison tables in lme4's layout.
#
# Two tables come from here:
# * anova_compare(): the likelihood-ratio table of lme4's anova() for several
#   models (lmm, glmm, lm/glm and lme4's own fits in any mix). REML fits are
#   refitted by maximum likelihood first (without evaluating the call again,
#   as lme4's refitML() does), the models are sorted by their number of
#   parameters and each row tests the model against the one above it.
# * anova_single_lme4(): the sequential "Analysis of Variance Table" that
#   lme4's anova() gives for one model: per fixed-effects term, the squared
#   length of its block of R_X beta (its sum of squares), the mean square and
#   the F value mean square / sigma^2, without degrees of freedom or p-values.
#
# anova.glmm() chooses between them; anova.lmm() (R/anova.R) reuses both and
# the helpers that read the models and their names from the call.

#' Analysis of variance for generalized linear mixed models
#'
#' With one model, the sequential analysis of variance table of lme4's
#' `anova()` for a `glmer()` fit: for each fixed-effects term (in the order
#' of the formula) its number of parameters, sum of squares, mean square and
#' F value, without denominator degrees of freedom or p-values.
#'
#' With several models, lme4's likelihood-ratio comparison: the models are
#' sorted by their number of parameters, and each row gives the AIC, BIC,
#' log-likelihood and deviance of one model and the chi-square test of it
#' against the model in the row above. Models may be `glmm()` and `lmm()`
#' fits, `lm()`/`glm()` fits and fits of lme4, all fitted to the same data
#' object (the `data` argument of their calls), with the same `subset` and
#' the same number of observations. Fits by REML are refitted by maximum
#' likelihood first (unless `refit = FALSE`), with the message "refitting
#' model(s) with ML (instead of REML)". The rows are named by the models as
#' written in the call (or by `model.names`).
#'
#' @param object A fitted model of class `"glmm"`.
#' @param ... Further fitted models to compare with `object`. With one
#'   model, any other argument is an error naming it (`anova()` of a `glmm`
#'   fit has no `type` or `test` argument; lme4 ignores unnamed ones with a
#'   warning).
#' @param refit Logical: refit REML fits by maximum likelihood before
#'   comparing (default)? With `refit = FALSE` their REML log-likelihoods are
#'   used as they are. An error with one model.
#' @param model.names Optional character vector of names for the models, one
#'   per model in the order given. An error with one model.
#' @return An object of class `c("anova", "data.frame")` with attribute
#'   `heading`. For several models: columns `npar`, `AIC`, `BIC`, `logLik`,
#'   `deviance`, `Chisq`, `Df` and `Pr(>Chisq)`, one row per model; the
#'   heading gives the data, any subset and each model's formula. For one
#'   model: columns `npar`, `Sum Sq`, `Mean Sq` and `F value`, one row per
#'   fixed-effects term other than the intercept.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' data("cbpp", package = "lme4")
#' g0 <- glmm(cbind(incidence, size - incidence) ~ 1 + (1 | herd),
#'            family = binomial, data = cbpp)
#' g1 <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'            family = binomial, data = cbpp)
#' anova(g1)
#' anova(g0, g1)
#' @importFrom stats anova
#' @method anova glmm
#' @export
anova.glmm <- function(object, ..., refit = TRUE, model.names = NULL) {
  exprs <- c(list(substitute(object)), as.list(substitute(list(...)))[-1L])
  found <- anova_collect_models(object, list(...), exprs, model.names)
  if (!is.null(found)) {
    return(anova_compare(found$models, found$names, refit = refit))
  }
  anova_check_one_model_dots(list(...), "anova() for one glmm fit")
  anova_check_one_model_args(missing(refit), missing(model.names))
  anova_single_lme4(object)
}

# ---------------------------------------------------------------------------
# Reading the models and their names from an anova() call.

# Can the object be a row of a comparison table? Fits of mixedrs, of lm()
# and glm(), and of lme4 (merMod, an S4 class: inherits() follows is()).
is_comparable_model <- function(x) {
  inherits(x, c("lmm", "glmm", "lm", "merMod"))
}

# The models among the arguments of an anova() method and their names.
# `dots` are the values of `...`, `exprs` the expressions of `object` and of
# `...` as written in the call (substitute() sees through `...` passed on by
# wrappers, unlike match.call()). Other arguments beside the models are an
# error (see anova_check_extra(); lme4 leaves them out silently). Returns
# NULL when `dots` holds no model (a one-model table), else list(models,
# names).
anova_collect_models <- function(object, dots, exprs, model.names = NULL) {
  is_model <- vapply(dots, is_comparable_model, NA)
  if (!any(is_model)) return(NULL)
  anova_check_extra(dots[!is_model])
  keep <- c(TRUE, is_model)
  names <- if (is.null(model.names)) {
    vapply(exprs[keep], anova_expr_name, "")
  } else {
    model.names
  }
  list(models = c(list(object), dots[is_model]), names = names)
}

# Arguments besides the models in a comparison of several: the table is a
# likelihood-ratio (chi-square) test, so test = "Chisq" or "LRT" (what
# anova() of glm fits takes) only says so; anything else would be ignored
# and is an error naming it.
anova_check_extra <- function(extra) {
  if (length(extra) == 0L) return(invisible(NULL))
  nms <- names(extra)
  if (is.null(nms)) nms <- character(length(extra))
  harmless <- nms == "test" & vapply(extra, function(v) {
    is.character(v) && length(v) == 1L && v %in% c("Chisq", "LRT")
  }, NA)
  bad <- !harmless
  if (!any(bad)) return(invisible(NULL))
  shown <- ifelse(nzchar(nms[bad]), sQuote(nms[bad], FALSE),
                  paste0("an unnamed ", vapply(extra[bad], function(v) class(v)[1L], ""),
                         " (not a fitted model)"))
  stop("anova() comparing several models does not use ",
       paste(shown, collapse = ", "), ": its table is always the likelihood-ratio ",
       "(chi-square) test", call. = FALSE)
}

# A model's name: the deparsed expression it was given as. A value (from
# do.call() or an inlined object) is not deparsed, which could be slow; it
# gets NA, so that the table falls back to generic names.
anova_expr_name <- function(expr) {
  if (!is.symbol(expr) && !is.call(expr)) return(NA_character_)
  paste(deparse(expr, width.cutoff = 500L, nlines = 5L), collapse = " ")
}

# Arguments of a one-model anova() that are not models are an error naming
# them: named ones (a misspelled option, or one of another package's anova
# methods such as test = "Chisq") and unnamed ones alike (lme4 ignores the
# unnamed ones with a warning), since the table would not be the one asked for.
anova_check_one_model_dots <- function(dots, method = "anova() for one model") {
  if (length(dots) == 0L) return(invisible(NULL))
  nms <- names(dots)
  if (is.null(nms)) nms <- character(length(dots))
  named <- nms[!is.na(nms) & nzchar(nms)]
  if (length(named)) {
    stop(method, " has no argument", if (length(named) > 1L) "s", " ",
         paste(sQuote(named, FALSE), collapse = ", "), call. = FALSE)
  }
  stop(method, " was given ", length(dots), " unnamed argument",
       if (length(dots) > 1L) "s", " that ", if (length(dots) > 1L) "are" else "is",
       " not a fitted model", call. = FALSE)
}

# `refit` and `model.names` concern the comparison of several models; given
# with one model they would do nothing.
anova_check_one_model_args <- function(refit_missing, names_missing) {
  given <- c("refit", "model.names")[!c(refit_missing, names_missing)]
  if (length(given)) {
    stop(paste(sQuote(given, FALSE), collapse = " and "), " only ",
         if (length(given) > 1L) "apply" else "applies",
         " when comparing several models; anova() was given one model",
         call. = FALSE)
  }
  invisible(NULL)
}

# ---------------------------------------------------------------------------
# The likelihood-ratio table.

# lme4's anova() for several models: `models` a list of fits (see
# is_comparable_model()), `model_names` their row names, `refit` whether to
# refit REML fits by ML. Returns the "anova" data frame with lme4's heading.
anova_compare <- function(models, model_names = names(models), refit = TRUE) {
  if (!is.list(models) || is.object(models) || length(models) < 2L) {
    stop("anova_compare(): 'models' must be a list of at least two fitted models",
         call. = FALSE)
  }
  if (!is.logical(refit) || length(refit) != 1L || is.na(refit)) {
    stop("'refit' must be TRUE or FALSE, not ", deparse1(refit), call. = FALSE)
  }
  model_names <- anova_model_names(model_names, length(models))
  not_model <- !vapply(models, is_comparable_model, NA)
  if (any(not_model)) {
    stop("cannot compare ", paste(model_names[not_model], collapse = ", "),
         ": not a fitted model of lmm(), glmm(), lm(), glm() or lme4 (class ",
         paste(vapply(models[not_model], function(m) class(m)[1L], ""),
               collapse = ", "), ")", call. = FALSE)
  }
  names(models) <- model_names

  anova_check_nobs(models)
  calls <- lapply(models, stats::getCall)
  # a fit from grouped sums (lmm_sums_fit()) names its data by their source
  data_of <- lapply(models, function(m) {
    if (inherits(m, "mixedrs_fit") && is_table_fit(m)) list(data = m$source) else stats::getCall(m)
  })
  data_expr <- anova_check_same(data_of, "data", "all models must be fit to the same data object")
  subset_expr <- anova_check_same(calls, "subset", "all models must use the same subset")
  anova_check_quadrature(models)
  anova_check_likelihood_kind(models)
  anova_check_responses(models)

  reml <- vapply(models, anova_is_reml, NA)
  if (refit) {
    if (any(reml)) message("refitting model(s) with ML (instead of REML)")
    models[reml] <- lapply(models[reml], anova_refit_ml)
  } else if (any(reml) && !all(reml)) {
    warning("some models fit with REML = TRUE, some not (",
            anova_list_names(model_names[reml]), " by REML, ",
            anova_list_names(model_names[!reml]), " by ML): their ",
            "log-likelihoods are not comparable", call. = FALSE)
  }

  lls <- lapply(models, stats::logLik)
  npar <- vapply(lls, function(ll) as.numeric(attr(ll, "df")), 1)
  ord <- order(npar)
  models <- models[ord]
  lls <- lls[ord]
  npar <- npar[ord]
  ll <- vapply(lls, as.numeric, 1)
  chisq <- 2 * pmax(0, c(NA, diff(ll)))
  df <- c(NA, diff(npar))
  pval <- rep(NA_real_, length(df))
  test <- !is.na(df) & df != 0
  pval[test] <- stats::pchisq(chisq[test], df[test], lower.tail = FALSE)
  table <- data.frame(
    npar = npar,
    AIC = vapply(lls, stats::AIC, 1),
    BIC = vapply(lls, stats::BIC, 1),
    logLik = ll,
    deviance = -2 * ll,
    Chisq = chisq,
    Df = df,
    `Pr(>Chisq)` = pval,
    row.names = names(models),
    check.names = FALSE
  )
  formulas <- vapply(models, function(m) deparse1(stats::getCall(m)[["formula"]]), "")
  heading <- c(paste("Data:", anova_abbr_deparse(data_expr)),
               if (!is.null(subset_expr)) paste("Subset:", anova_abbr_deparse(subset_expr)),
               "Models:",
               paste(names(models), formulas, sep = ": "))
  structure(table, heading = heading, class = c("anova", "data.frame"))
}

# Row names: as given unless lme4 would not trust them (missing, empty,
# duplicated, an S4 constructor call, longer than 200 characters); then
# MODEL1, MODEL2, ... with lme4's warning.
anova_model_names <- function(model_names, n) {
  if (is.null(model_names)) model_names <- rep(NA_character_, n)
  if (!is.character(model_names)) {
    stop("'model.names' must be a character vector, not ",
         class(model_names)[1L], call. = FALSE)
  }
  if (length(model_names) != n) {
    stop("model names vector and model list have different lengths (",
         length(model_names), " names for ", n, " models)", call. = FALSE)
  }
  bad <- anyNA(model_names) || any(!nzchar(model_names)) ||
    any(duplicated(model_names)) || any(startsWith(model_names, "new(")) ||
    max(nchar(model_names)) > 200L
  if (bad) {
    warning("failed to find model names, assigning generic names", call. = FALSE)
    model_names <- paste0("MODEL", seq_len(n))
  }
  model_names
}

anova_list_names <- function(nms) paste(nms, collapse = ", ")

# lme4 compares likelihoods only of models fitted to the same number of
# observations; the error names the models and their sizes.
anova_check_nobs <- function(models) {
  n <- vapply(models, function(m) as.numeric(stats::nobs(m)), 1)
  if (length(unique(n)) == 1L) return(invisible(NULL))
  groups <- split(names(models), factor(n, levels = unique(n)))
  detail <- paste0(vapply(groups, anova_list_names, ""), ": ", names(groups),
                   " observations", collapse = "; ")
  stop("models were not all fitted to the same size of dataset (", detail, ")",
       call. = FALSE)
}

# The `data` (or `subset`) argument must be the same expression in every
# model's call, as lme4 requires; returns that expression.
anova_check_same <- function(calls, arg, msg) {
  exprs <- lapply(calls, `[[`, arg)
  same <- vapply(exprs, identical, NA, exprs[[1L]])
  if (all(same)) return(exprs[[1L]])
  shown <- vapply(exprs, function(e) {
    if (is.null(e)) paste("no", arg) else paste(arg, "=", anova_abbr_deparse(e))
  }, "")
  groups <- split(names(calls), factor(shown, levels = unique(shown)))
  detail <- paste0(vapply(groups, anova_list_names, ""), ": ", names(groups),
                   collapse = "; ")
  stop(msg, " (", detail, ")", call. = FALSE)
}

# The log-likelihood of adaptive Gauss-Hermite quadrature (nAGQ > 1) is on
# another scale than that of glm(): lme4 refuses that comparison.
anova_check_quadrature <- function(models) {
  agq <- vapply(models, anova_nagq, 1) > 1
  glm_fit <- vapply(models, inherits, NA, "glm")
  if (any(agq) && any(glm_fit)) {
    stop("GLMMs with nAGQ>1 have log-likelihoods incommensurate with glm() ",
         "objects (", anova_list_names(names(models)[agq]), " with nAGQ > 1; ",
         anova_list_names(names(models)[glm_fit]), " fitted by glm())",
         call. = FALSE)
  }
  invisible(NULL)
}

# A GLMM of a family with a dispersion parameter fitted as glmer fits it
# (Gamma, inverse.gaussian, gaussian with another link than the identity,
# without 'dispformula') has glmer's criterion as its log-likelihood, not the
# Laplace likelihood of glmmTMB-style fits (ziformula, dispformula, glmmTMB's
# families): comparing the two would test the criteria, not the models.
anova_check_likelihood_kind <- function(models) {
  glmer_dispersion <- vapply(models, function(m) {
    inherits(m, "glmm") && is.null(m$extended) && !m$family$family %in% c("binomial", "poisson")
  }, NA)
  tmb <- vapply(models, function(m) inherits(m, "glmm") && is_extended_fit(m), NA)
  if (!any(glmer_dispersion) || !any(tmb)) return(invisible(NULL))
  first <- models[[which(glmer_dispersion)[1L]]]
  stop("the log-likelihoods are not comparable: ",
       anova_list_names(names(models)[glmer_dispersion]), " ",
       if (sum(glmer_dispersion) > 1L) "are" else "is", " fitted by glmer's criterion for the ",
       first$family$family, " family, ", anova_list_names(names(models)[tmb]),
       " by glmmTMB's Laplace likelihood (glmmTMB's families, 'ziformula' or 'dispformula'); ",
       "fit the former with dispformula = ~1 to compare them on glmmTMB's likelihood",
       call. = FALSE)
}

anova_nagq <- function(m) {
  if (inherits(m, "glmm")) return(as.numeric(m$nAGQ))
  if (inherits(m, "glmerMod")) {
    return(as.numeric(lme4::getME(m, "devcomp")$dims[["nAGQ"]]))
  }
  1
}

# Likelihoods of different responses cannot be compared. lme4 does not
# check; we warn (and still give the table lme4 gives).
anova_check_responses <- function(models) {
  resp <- vapply(models, function(m) {
    f <- stats::formula(m)
    if (length(f) == 3L) deparse1(f[[2L]]) else ""
  }, "")
  if (length(unique(resp)) == 1L) return(invisible(NULL))
  groups <- split(names(models), factor(resp, levels = unique(resp)))
  detail <- paste0(vapply(groups, anova_list_names, ""), ": ", names(groups),
                   collapse = "; ")
  warning("models have different responses (", detail, "): their ",
          "log-likelihoods are not comparable", call. = FALSE)
  invisible(NULL)
}

anova_is_reml <- function(m) {
  if (inherits(m, "lmm")) return(lmm_is_reml(m))
  if (inherits(m, "merMod")) return(lme4::isREML(m))
  FALSE
}

# A REML fit refitted by maximum likelihood, as update(fit, REML = FALSE)
# would give, but from the data the fit holds rather than by evaluating its
# call again (so data local to a function need not be visible here), and
# starting from the REML estimates of theta, as lme4's refitML() does. The
# refit's call has REML = FALSE.
anova_refit_ml <- function(m) {
  if (inherits(m, "merMod")) return(lme4::refitML(m))
  if (!inherits(m, "lmm") || !lmm_is_reml(m)) return(m)
  if (is_sums_fit(m)) return(sums_refit_ml(m))
  inputs <- list(
    formula = m$formula, frame = m$frame, X = m$X, y = m$y,
    weights = if (isTRUE(m$has_weights)) m$weights,
    offset = if (isTRUE(m$has_offset)) m$offset,
    reterms = m$reterms, flist = m$flist, na.action = m$na.action
  )
  raw <- lmm_engine_fit(inputs, REML = FALSE, control = lmmControl(),
                        start = unname(cov_par(m)), verbose = 0L)
  mc <- m$call
  mc$REML <- FALSE
  fit <- lmm_object(mc, inputs, raw, REML = FALSE)
  if (fit$optinfo$conv$opt != 0L) {
    warning("refitting ", deparse1(mc$formula), " by ML: convergence code ",
            fit$optinfo$conv$opt, " from bobyqa: ", fit$optinfo$message,
            call. = FALSE)
  }
  fit
}

# The first line of a deparsed expression, with " ..." when there are more
# (lme4's way of showing the data in the heading).
anova_abbr_deparse <- function(x, width = 60L) {
  lines <- deparse(x, width.cutoff = width)
  if (length(lines) > 1L) paste(lines[1L], "...") else lines
}

# ---------------------------------------------------------------------------
# The one-model table.

# lme4's anova() of one lmer() or glmer() fit: the sequential sums of
# squares of the fixed-effects terms, computed from the Cholesky factor R_X
# of the fixed-effects block (R_X'R_X = the inverse of the unscaled
# covariance of beta), their mean squares and F values (mean square over
# sigma^2; sigma = 1 for binomial and Poisson GLMMs). The intercept's row is
# left out.
anova_single_lme4 <- function(object) {
  if (!inherits(object, c("lmm", "glmm"))) {
    stop("anova_single_lme4(): 'object' must be a fit of lmm() or glmm(), ",
         "not of class ", class(object)[1L], call. = FALSE)
  }
  X <- object$X
  asgn <- attr(X, "assign")
  if (length(asgn) != ncol(X)) {
    stop("anova(): the fixed-effects model matrix has no valid 'assign' ",
         "attribute; cannot group its columns into terms", call. = FALSE)
  }
  sigma <- object$sigma
  ss <- anova_rx_beta(object, sigma)^2
  labels <- attr(stats::terms(mer_formula(object, fixed.only = TRUE)), "term.labels")
  effects <- labels[unique(asgn[asgn > 0L])]
  if ("(Intercept)" %in% colnames(X)) effects <- c("(Intercept)", effects)
  ss <- vapply(split(ss, asgn), sum, 1)
  npar <- lengths(split(asgn, asgn))
  if (length(ss) != length(effects)) {
    stop("anova(): the columns of the fixed-effects model matrix do not ",
         "match the terms of the formula", call. = FALSE)
  }
  ms <- ss / npar
  table <- data.frame(npar, ss, ms, ms / sigma^2)
  dimnames(table) <- list(effects, c("npar", "Sum Sq", "Mean Sq", "F value"))
  table <- table[effects != "(Intercept)", , drop = FALSE]
  structure(table, heading = "Analysis of Variance Table",
            class = c("anova", "data.frame"))
}

# R_X beta, with R_X the upper-triangular Cholesky factor of the fixed-effects
# block at the estimates, recovered from the R_X-based covariance of beta,
# sigma^2 (R_X'R_X)^-1.
anova_rx_beta <- function(object, sigma) {
  v <- if (inherits(object, "glmm")) glmm_vcov_rx(object) else as.matrix(object$vcov)
  p <- length(object$beta)
  if (p == 0L) return(numeric())
  unscaled <- v / sigma^2
  rx <- chol(solve(unscaled))
  as.vector(rx %*% unname(object$beta))
}
