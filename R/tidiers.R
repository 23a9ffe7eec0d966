# broom-style summaries of "lmm" and "glmm" fits: tidy() (one row per
# estimated quantity), glance() (one row per model) and augment() (one row
# per observation). They are methods for the generics of the 'generics'
# package (which 'broom' re-exports), registered when 'generics' is loaded,
# and they give the columns and values that broom.mixed gives for the
# corresponding lmerTest/lme4 fit. Hat values and Cook's distances, which
# augment() reports, are also available as hatvalues() and cooks.distance()
# methods.

# ---------------------------------------------------------------------------
# tidy()

#' Tidy summaries of a mixed model's estimates
#'
#' One row per estimated quantity, as broom.mixed's `tidy()` gives for the
#' corresponding lme4 fit (for `"lmm"` fits: the lmerTest fit, i.e. with
#' degrees of freedom and p-values for the fixed effects). The methods are
#' registered for the generic of the 'generics' package, so call them as
#' `tidy(fit)` (the generic is re-exported from the generics package).
#'
#' The kinds of rows (`effects`):
#' * `"fixed"`: the fixed effects, with `std.error`, `statistic` (t or z
#'   value) and, for `"lmm"` fits, `df` and `p.value` from the degrees-of-
#'   freedom method `ddf.method` (as [summary.lmm()]; `"lme4"` gives neither)
#'   and, for `"glmm"` fits, normal `p.value`s.
#' * `"ran_pars"`: the standard deviations and correlations (`scales =
#'   "sdcor"`, terms `sd__x`, `cor__x.y`) or variances and covariances
#'   (`"vcov"`, terms `var__x`, `cov__x.y`) of the random effects, per term
#'   the lower triangle column by column, and the residual standard deviation
#'   (`sd__Observation`, group `Residual`) when the model has one.
#' * `"ran_vals"`: the conditional modes of the random effects (`level`,
#'   `estimate`) with their conditional standard deviations (`std.error`).
#' * `"ran_coefs"`: fixed plus random effects per level ([coef.lmm()]).
#'
#' Confidence intervals (`conf.int = TRUE`): for the fixed effects by
#' `conf.method = "Wald"` the estimate plus or minus a t quantile with the
#' `ddf.method` degrees of freedom (normal quantiles for `"glmm"` fits and
#' `ddf.method = "lme4"`), as broom.mixed does; by `"profile"` or `"boot"`
#' the intervals of [confint.lmm()]. For `"ran_pars"` (on the `"sdcor"`
#' scale only) the intervals of [confint.lmm()] with `conf.method` (`NA` for
#' Wald). For `"ran_vals"` normal intervals from the conditional standard
#' deviations (Wald only). For `"ran_coefs"` none: `NA`, with a warning, as
#' in broom.mixed. Rows are ordered fixed, ran_pars, ran_vals, ran_coefs.
#'
#' Differences from broom.mixed: with `conf.method = "profile"` or `"boot"`
#' the fixed effects get profile or bootstrap intervals (broom.mixed warns
#' and gives t-based Wald intervals for lmerTest fits); `conf.int = TRUE`
#' with `scales = "vcov"` is an error (broom.mixed reports standard-deviation
#' intervals next to variance estimates).
#'
#' @param x A fitted model of class `"lmm"` or `"glmm"`.
#' @param effects Which rows: any of `"ran_pars"`, `"fixed"`, `"ran_vals"`,
#'   `"ran_coefs"`.
#' @param scales `NULL` or one value per element of `effects`: `"sdcor"` or
#'   `"vcov"` for `"ran_pars"`, `NA` for the others.
#' @param exponentiate Logical: exponentiate the fixed effects and their
#'   confidence limits (standard errors by the delta method,
#'   `exp(estimate) * std.error`)?
#' @param ran_prefix Prefixes of the `"ran_pars"` terms for variances and
#'   covariances (default `c("sd", "cor")` or `c("var", "cov")`).
#' @param conf.int Logical: add `conf.low` and `conf.high`?
#' @param conf.level Confidence level.
#' @param conf.method `"Wald"`, `"profile"` or `"boot"`.
#' @param ddf.method For `"lmm"` fits: `"Satterthwaite"` (default, as
#'   lmerTest), `"Kenward-Roger"` or `"lme4"` (no df or p-values).
#' @param ... For `conf.method = "profile"` or `"boot"`: passed to
#'   [confint.lmm()] (e.g. `nsim`, `seed`, `threads`); otherwise not allowed.
#' @return A data frame (a tibble when the tibble package is installed) with
#'   columns `effect`, `group`, `level` (for `"ran_vals"`/`"ran_coefs"`),
#'   `term`, `estimate`, `std.error`, `statistic`, `df`, `p.value`,
#'   `conf.low`, `conf.high`, those that apply.
#' @seealso [glance.lmm()], [augment.lmm()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' tidy(fit)
#' tidy(fit, conf.int = TRUE)
#' tidy(fit, effects = "ran_vals")
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' tidy(gfit, exponentiate = TRUE, conf.int = TRUE)
#' @export
tidy.lmm <- function(x, effects = c("ran_pars", "fixed"), scales = NULL,
                     exponentiate = FALSE, ran_prefix = NULL, conf.int = FALSE,
                     conf.level = 0.95, conf.method = c("Wald", "profile", "boot"),
                     ddf.method = c("Satterthwaite", "Kenward-Roger", "lme4"), ...) {
  ddf.method <- match_choice(ddf.method)
  conf.method <- match_choice(conf.method)
  mer_tidy(x, effects, scales, exponentiate, ran_prefix, conf.int, conf.level,
           conf.method, ddf.method, ...)
}

#' @rdname tidy.lmm
#' @export
tidy.glmm <- function(x, effects = c("ran_pars", "fixed"), scales = NULL,
                      exponentiate = FALSE, ran_prefix = NULL, conf.int = FALSE,
                      conf.level = 0.95, conf.method = c("Wald", "profile", "boot"),
                      ...) {
  conf.method <- match_choice(conf.method)
  # glmmTMB-style fits: broom.mixed's rows with a component column (R/methods-extended.R)
  if (is_extended_fit(x)) {
    return(tidy_extended(x, effects, scales, exponentiate, ran_prefix, conf.int,
                         conf.level, conf.method, ...))
  }
  mer_tidy(x, effects, scales, exponentiate, ran_prefix, conf.int, conf.level,
           conf.method, ddf.method = NULL, ...)
}

mer_tidy <- function(x, effects, scales, exponentiate, ran_prefix, conf.int,
                     conf.level, conf.method, ddf.method, ...) {
  kinds <- c("ran_pars", "fixed", "ran_vals", "ran_coefs")
  if (!is.character(effects) || !length(effects) || anyNA(effects)) {
    stop("'effects' must be a character vector with elements among ",
         paste(dQuote(kinds, FALSE), collapse = ", "), call. = FALSE)
  }
  unknown <- setdiff(effects, kinds)
  if (length(unknown)) {
    stop("unknown effect type(s) ", paste(dQuote(unknown, FALSE), collapse = ", "),
         "; 'effects' may hold ", paste(dQuote(kinds, FALSE), collapse = ", "),
         call. = FALSE)
  }
  rscale <- tidy_ran_scale(effects, scales)
  check_flag(exponentiate, "exponentiate", "tidy()")
  check_flag(conf.int, "conf.int", "tidy()")
  if (conf.int) check_level(conf.level)
  if (...length() && !(conf.int && conf.method != "Wald")) {
    stop("tidy() passes further arguments only to confint() for ",
         "conf.int = TRUE with conf.method = \"profile\" or \"boot\"; not used: ",
         paste(names(list(...)), collapse = ", "), call. = FALSE)
  }
  if (!is.null(ran_prefix) && (!is.character(ran_prefix) || length(ran_prefix) != 2L)) {
    stop("'ran_prefix' must be NULL or two strings (prefixes of the variance ",
         "and covariance terms)", call. = FALSE)
  }
  # one confint() call serves the fixed and the variance parameters
  ci <- NULL
  if (conf.int && conf.method != "Wald" && any(c("fixed", "ran_pars") %in% effects)) {
    parm <- c(if ("ran_pars" %in% effects) "theta_", if ("fixed" %in% effects) "beta_")
    ci <- stats::confint(x, parm = parm, level = conf.level, method = conf.method,
                         quiet = TRUE, ...)
  }
  out <- list()
  if ("fixed" %in% effects) {
    out$fixed <- tidy_fixed(x, ddf.method, conf.int, conf.level, conf.method, ci,
                            exponentiate)
  }
  if ("ran_pars" %in% effects) {
    out$ran_pars <- tidy_ran_pars(x, rscale, ran_prefix, conf.int, conf.level,
                                  conf.method, ci)
  }
  if ("ran_vals" %in% effects) {
    out$ran_vals <- tidy_ran_vals(x, conf.int, conf.level, conf.method)
  }
  if ("ran_coefs" %in% effects) {
    out$ran_coefs <- tidy_ran_coefs(x, conf.int)
  }
  tidy_bind(out)
}

# The scale of the "ran_pars" rows from `scales` (one entry per effect).
tidy_ran_scale <- function(effects, scales) {
  if (is.null(scales)) return("sdcor")
  if (length(scales) != length(effects)) {
    stop("if 'scales' is given it must have one value (or NA) for each ",
         "element of 'effects'", call. = FALSE)
  }
  other <- scales[effects != "ran_pars"]
  if (any(!is.na(other))) {
    stop("'scales' applies only to \"ran_pars\"; give NA for the other effects",
         call. = FALSE)
  }
  rs <- scales[effects == "ran_pars"]
  if (!length(rs)) return("sdcor")
  if (is.na(rs) || !rs %in% c("sdcor", "vcov")) {
    stop("the scale of \"ran_pars\" must be \"sdcor\" or \"vcov\", not ",
         deparse1(rs), call. = FALSE)
  }
  rs
}

# Rows of the fixed effects: summary()'s coefficient table renamed.
tidy_fixed <- function(x, ddf.method, conf.int, conf.level, conf.method, ci,
                       exponentiate) {
  tab <- if (is_glmm(x)) {
    stats::coef(summary.glmm(x, correlation = FALSE))
  } else {
    fixef_coef_table(x, ddf.method)
  }
  new_names <- c(Estimate = "estimate", "Std. Error" = "std.error",
                 "t value" = "statistic", "z value" = "statistic", df = "df",
                 "Pr(>|t|)" = "p.value", "Pr(>|z|)" = "p.value")
  res <- data.frame(effect = rep("fixed", nrow(tab)), term = rownames(tab),
                    stringsAsFactors = FALSE)
  for (cn in colnames(tab)) res[[new_names[[cn]]]] <- unname(tab[, cn])
  if (conf.int) {
    if (conf.method == "Wald") {
      a <- (1 + conf.level) / 2
      mult <- if ("df" %in% names(res)) stats::qt(a, res$df) else stats::qnorm(a)
      res$conf.low <- res$estimate - mult * res$std.error
      res$conf.high <- res$estimate + mult * res$std.error
    } else {
      lims <- ci[res$term, , drop = FALSE]
      res$conf.low <- unname(lims[, 1L])
      res$conf.high <- unname(lims[, 2L])
    }
  }
  if (exponentiate) {
    for (v in intersect(c("estimate", "conf.low", "conf.high"), names(res))) {
      res[[v]] <- exp(res[[v]])
    }
    res$std.error <- res$std.error * res$estimate
  }
  res
}

# Rows of the variance parameters from as.data.frame(VarCorr(x)), per term
# in `order`: "lower.tri" as broom.mixed orders merMod fits, "cov.last" (the
# standard deviations, then the correlations) as it orders glmmTMB's.
tidy_ran_pars <- function(x, rscale, ran_prefix, conf.int, conf.level,
                          conf.method, ci, order = "lower.tri") {
  vc <- as.data.frame(varcorr_lme4(x), order = order)
  if (is.null(ran_prefix)) {
    ran_prefix <- if (rscale == "sdcor") c("sd", "cor") else c("var", "cov")
  }
  term <- ifelse(is.na(vc$var1), paste0(ran_prefix[1L], "__Observation"),
                 ifelse(is.na(vc$var2), paste0(ran_prefix[1L], "__", vc$var1),
                        paste0(ran_prefix[2L], "__", vc$var1, ".", vc$var2)))
  res <- data.frame(effect = rep("ran_pars", nrow(vc)), group = vc$grp,
                    term = term, estimate = vc[[rscale]], stringsAsFactors = FALSE)
  if (conf.int) {
    if (rscale != "sdcor") {
      stop("confidence intervals of \"ran_pars\" are available on the \"sdcor\" ",
           "scale only", call. = FALSE)
    }
    if (conf.method == "Wald") {
      res$conf.low <- res$conf.high <- NA_real_
    } else {
      nvp <- nrow(vc)
      res$conf.low <- unname(ci[seq_len(nvp), 1L])
      res$conf.high <- unname(ci[seq_len(nvp), 2L])
    }
  }
  res
}

# Rows of the conditional modes and their conditional standard deviations.
tidy_ran_vals <- function(x, conf.int, conf.level, conf.method) {
  re <- as.data.frame(ranef(x, condVar = TRUE))
  res <- data.frame(effect = rep("ran_vals", nrow(re)), group = re$grpvar,
                    level = as.character(re$grp), term = as.character(re$term),
                    estimate = re$condval, std.error = re$condsd,
                    stringsAsFactors = FALSE)
  # glmmTMB-style fits: the model component of each row ("cond", "zi")
  if (!is.null(re$component)) res$component <- re$component
  if (conf.int) {
    if (conf.method != "Wald") {
      stop("only Wald intervals are available for the conditional modes ",
           "(\"ran_vals\")", call. = FALSE)
    }
    mult <- stats::qnorm((1 + conf.level) / 2)
    res$conf.low <- res$estimate - mult * res$std.error
    res$conf.high <- res$estimate + mult * res$std.error
  }
  res
}

# Rows of the coefficients per level: for each grouping factor, each column
# of coef(x), each level.
tidy_ran_coefs <- function(x, conf.int) {
  cf <- stats::coef(x)
  pieces <- lapply(names(cf), function(g) {
    d <- cf[[g]]
    data.frame(effect = "ran_coefs", group = g,
               level = rep(rownames(d), ncol(d)),
               term = rep(colnames(d), each = nrow(d)),
               estimate = unlist(d, use.names = FALSE), stringsAsFactors = FALSE)
  })
  res <- do.call(rbind, pieces)
  if (conf.int) {
    warning("confidence intervals are not available for the coefficients per ",
            "level (\"ran_coefs\"): returning NA", call. = FALSE)
    res$conf.low <- res$conf.high <- NA
  }
  res
}

# Stacks the pieces (missing columns filled with NA) in broom's column order.
tidy_bind <- function(pieces) {
  order <- c("effect", "group", "level", "term", "estimate", "std.error",
             "statistic", "df", "p.value", "conf.low", "conf.high")
  cols <- intersect(order, unique(unlist(lapply(pieces, names))))
  pieces <- lapply(pieces, function(p) {
    for (cn in setdiff(cols, names(p))) {
      p[[cn]] <- if (cn %in% c("group", "level")) NA_character_ else NA_real_
    }
    p[cols]
  })
  res <- do.call(rbind, unname(pieces))
  rownames(res) <- NULL
  as_tidy_frame(res)
}

# A tibble when the tibble package is installed (as broom returns), else the
# data frame itself.
as_tidy_frame <- function(df) {
  if (requireNamespace("tibble", quietly = TRUE)) tibble::as_tibble(df) else df
}

# ---------------------------------------------------------------------------
# glance()

#' One-row summary of a mixed model
#'
#' The model-level statistics that broom.mixed's `glance()` gives for the
#' corresponding lme4 fit. Registered for the generic of the 'generics'
#' package, which mixedrs re-exports: `glance(fit)` works after `library(mixedrs)`.
#'
#' @param x A fitted model of class `"lmm"` or `"glmm"`.
#' @param ... Not used (an error if given).
#' @return A one-row data frame (a tibble when the tibble package is
#'   installed) with columns `nobs`, `sigma`, `logLik`, `AIC`, `BIC`, then
#'   `REMLcrit` for REML fits or `deviance` otherwise (for `"glmm"` fits the
#'   conditional deviance of [deviance.glmm()]), and `df.residual`.
#' @seealso [tidy.lmm()], [augment.lmm()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' glance(fit)
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' glance(gfit)
#' @export
glance.lmm <- function(x, ...) {
  check_no_dots(..., caller = "glance()")
  if (is_extended_fit(x)) return(glance_extended(x))  # R/methods-extended.R
  ll <- stats::logLik(x)
  res <- data.frame(nobs = mer_nobs(x), sigma = stats::sigma(x),
                    logLik = as.numeric(ll), AIC = stats::AIC(ll),
                    BIC = stats::BIC(ll))
  if (!is_glmm(x) && lmm_is_reml(x)) {
    res$REMLcrit <- lmm_devcrit(x, REML = TRUE)
  } else {
    res$deviance <- if (is_glmm(x)) deviance.glmm(x) else lmm_devcrit(x, REML = FALSE)
  }
  res$df.residual <- mer_df_residual(x)
  as_tidy_frame(res)
}

#' @rdname glance.lmm
#' @export
glance.glmm <- glance.lmm

# ---------------------------------------------------------------------------
# augment()

#' Observation-level results of a mixed model
#'
#' The data with fitted values, residuals and diagnostics added, the columns
#' broom.mixed's `augment()` gives for the corresponding lme4 fit:
#' `.fitted` (predictions with all random effects; for `"glmm"` fits on the
#' scale `type.predict`), `.resid` (residuals of type `type.residuals`),
#' `.hat` ([hatvalues.lmm()]), `.cooksd` ([cooks.distance.lmm()]), `.fixed`
#' (population-level predictions, `re.form = NA`), and lme4's response-module
#' quantities: `.mu` (conditional mean), `.offset`, `.sqrtXwt` (square root
#' of the weights of the final penalized least squares problem: the prior
#' weights for `"lmm"`, the working weights for `"glmm"`), `.sqrtrwt`
#' (square root of the residual weights, prior weights over the variance
#' function), `.weights` (prior weights), `.wtres` (weighted residuals
#' `.sqrtrwt * (y - .mu)`) and, for `"glmm"` fits, `.eta` (linear
#' predictor).
#'
#' With `newdata`, the columns are those of `newdata` plus `.fitted` and
#' `.fixed` computed for `newdata` (broom.mixed adds the fitting data's
#' values of the other columns, which do not belong to the new rows; they
#' are left out here).
#'
#' Registered for the generic of the 'generics' package
#' (re-exported by mixedrs): `augment(fit)` works after `library(mixedrs)`.
#'
#' @param x A fitted model of class `"lmm"` or `"glmm"`.
#' @param data The data to add the columns to: by default the model frame.
#'   It must have one row per observation used in the fit or, for a fit with
#'   `na.action = na.exclude`, one row per row of the original data (the
#'   added columns are then padded with `NA`).
#' @param newdata Optional data frame to predict for.
#' @param type.predict For `"glmm"` fits: `"link"` (default, as lme4's
#'   `predict()`) or `"response"`.
#' @param type.residuals Type of residuals (see [residuals.lmm()] and
#'   [residuals.glmm()]); default `"response"` for `"lmm"` and `"deviance"`
#'   for `"glmm"` fits, lme4's defaults.
#' @param ... With `newdata`: passed to [predict.lmm()] (e.g.
#'   `allow.new.levels`); otherwise not allowed.
#' @return A data frame (a tibble when the tibble package is installed).
#' @seealso [tidy.lmm()], [glance.lmm()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' head(augment(fit))
#' nd <- data.frame(Days = 0:2, Subject = "308")
#' augment(fit, newdata = nd)
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' head(augment(gfit, type.predict = "response"))
#' @export
augment.lmm <- function(x, data = stats::model.frame(x), newdata = NULL,
                        type.residuals = c("response", "working", "deviance", "pearson"),
                        ...) {
  require_rows(x, "augment()")
  mer_augment(x, data, newdata, type.predict = "link",
              type.residuals = match_choice(type.residuals), ...)
}

#' @rdname augment.lmm
#' @export
augment.glmm <- function(x, data = stats::model.frame(x), newdata = NULL,
                         type.predict = c("link", "response"),
                         type.residuals = c("deviance", "pearson", "working", "response"),
                         ...) {
  if (is_extended_fit(x)) {
    return(extended_augment(
      x, data, newdata, if (missing(type.predict)) "link" else match_choice(type.predict),
      if (missing(type.residuals)) "response" else match_choice(type.residuals), ...))
  }
  mer_augment(x, data, newdata, type.predict = match_choice(type.predict),
              type.residuals = match_choice(type.residuals), ...)
}

# augment() of a glmmTMB-style fit, as broom.mixed's for glmmTMB (broom's
# augment_columns()): `.fitted` and `.se.fit` from predict(se.fit = TRUE)
# (link scale unless type.predict says otherwise) and, without newdata,
# `.resid` (response residuals unless type.residuals says otherwise);
# glmmTMB has no hat values or Cook's distances, so neither column.
extended_augment <- function(x, data, newdata, type.predict, type.residuals, ...) {
  if (!type.residuals %in% c("response", "pearson")) {
    stop("augment() of a glmmTMB-style fit takes type.residuals = \"response\" or ",
         "\"pearson\", not \"", type.residuals, "\"", call. = FALSE)
  }
  check_augment_dots(newdata, ...)
  if (!is.null(newdata)) {
    res <- as.data.frame(newdata)
    pred <- stats::predict(x, newdata = newdata, type = type.predict, se.fit = TRUE, ...)
    res$.fitted <- as.vector(pred$fit)
    res$.se.fit <- as.vector(pred$se.fit)
    rownames(res) <- NULL
    return(as_tidy_frame(res))
  }
  rows <- augment_rows(x, data)
  # predict() and residuals() pad an na.exclude fit's values to the original
  # rows; the columns are formed over the observations and padded as `data` needs.
  pred <- stats::predict(x, type = type.predict, se.fit = TRUE)
  cols <- list(.fitted = pred$fit, .se.fit = pred$se.fit,
               .resid = stats::residuals(x, type = type.residuals))
  res <- rows$data
  for (nm in names(cols)) res[[nm]] <- rows$pad(rows$unpad(as.vector(cols[[nm]])))
  rownames(res) <- NULL
  as_tidy_frame(res)
}

# Stops when augment() without newdata is given further arguments (they go to
# predict(), which only a prediction for newdata calls).
check_augment_dots <- function(newdata, ...) {
  if (is.null(newdata) && ...length()) {
    stop("augment() passes further arguments to predict() only with 'newdata'; ",
         "not used: ", paste(names(list(...)), collapse = ", "), call. = FALSE)
  }
  invisible(NULL)
}

# The rows augment() adds its columns to without newdata: `data`, with one
# row per observation used in the fit or, for a fit with na.action =
# na.exclude, one per row of the original data. `pad` turns a column over the
# observations into one over `data`'s rows (NA at the excluded ones);
# `unpad` takes a column padded to the original rows (as predict() and
# residuals() give it) back to the observations.
augment_rows <- function(x, data) {
  n <- mer_nobs(x)
  data <- as.data.frame(data)
  na_act <- mer_na_action(x)
  excluded <- inherits(na_act, "exclude")
  unpad <- function(v) if (excluded && length(v) == n + length(na_act)) v[-na_act] else v
  if (nrow(data) == n) return(list(data = data, pad = identity, unpad = unpad))
  if (excluded && nrow(data) == n + length(na_act)) {
    return(list(data = data, pad = function(v) stats::napredict(na_act, v), unpad = unpad))
  }
  stop("'data' has ", nrow(data), " rows; augment() needs one row per ",
       "observation used in the fit (", n, ")", call. = FALSE)
}

mer_augment <- function(x, data, newdata, type.predict, type.residuals, ...) {
  check_augment_dots(newdata, ...)
  if (!is.null(newdata)) {
    newdata <- as.data.frame(newdata)
    res <- newdata
    res$.fitted <- unname(stats::predict(x, newdata = newdata, type = type.predict, ...))
    res$.fixed <- unname(stats::predict(x, newdata = newdata, re.form = NA, ...))
    rownames(res) <- NULL
    return(as_tidy_frame(res))
  }
  rows <- augment_rows(x, data)
  pad <- rows$pad
  y <- as.vector(x$y)
  mu <- if (is_glmm(x)) as.vector(x$mu) else as.vector(x$fitted)
  prior <- as.vector(x$weights)
  sqrtrwt <- if (is_glmm(x)) sqrt(prior / x$family$variance(mu)) else sqrt(prior)
  sqrtxwt <- if (is_glmm(x)) sqrt(weights.glmm(x, type = "working")) else sqrt(prior)
  hat <- mer_hatvalues(x)
  fixed_part <- as.vector(x$X %*% x$beta) + as.vector(x$offset)
  fitted <- if (!is_glmm(x)) {
    as.vector(x$fitted)
  } else if (type.predict == "link") {
    as.vector(x$eta)
  } else {
    mu
  }
  cols <- list(
    .fitted = fitted,
    .resid = if (is_glmm(x)) glmm_residuals(x, type.residuals) else
      lmm_plain_residuals(x, type.residuals),
    .hat = hat,
    .cooksd = mer_cooks_distance(x, hat),
    .fixed = fixed_part,
    .mu = mu,
    .offset = as.vector(x$offset),
    .sqrtXwt = sqrtxwt,
    .sqrtrwt = sqrtrwt,
    .weights = prior,
    .wtres = sqrtrwt * (y - mu)
  )
  if (is_glmm(x)) cols$.eta <- as.vector(x$eta)
  res <- rows$data
  for (nm in names(cols)) res[[nm]] <- pad(unname(cols[[nm]]))
  rownames(res) <- NULL
  as_tidy_frame(res)
}

# Unpadded residuals of an "lmm" fit (see residuals.lmm()).
lmm_plain_residuals <- function(x, type) {
  raw <- as.vector(x$y) - as.vector(x$fitted)
  switch(type, response = , working = raw,
         deviance = , pearson = sqrt(as.vector(x$weights)) * raw)
}
