# Printing fitted "lmm" and "glmm" objects and their summaries.
#
# summary.lmm() and summary.glmm() compute everything into a classed list
# (the parts both share are built by mer_summary()); the print methods,
# written once for both on the parent classes "mixedrs_fit" and
# "summary.mixedrs_fit", only lay it out, section by section, with the small
# prt_*() helpers below: prt_fit() is the short display, prt_summary() the
# long one. The layout reproduces lme4's print methods for "merMod" objects
# line for line (only the class tag in the title differs), so output of
# lmer() and lmm(), or of glmer() and glmm(), can be compared directly.

#' Print a fitted mixed model
#'
#' The short display of lme4 for `lmer()` and `glmer()` fits: title (for
#' `"glmm"` fits the Laplace approximation or adaptive Gauss-Hermite
#' quadrature with its number of points, then family and link), formula and
#' data, the REML criterion (or, for fits by maximum likelihood, the
#' AIC/BIC/log-likelihood/deviance table), random-effects standard
#' deviations and correlations (with a `Residual` row only for models with a
#' scale parameter), numbers of observations and groups, fixed-effects
#' estimates and, when the fit produced any, the optimizer and convergence
#' messages.
#'
#' @param x A fitted model of class `"lmm"` or `"glmm"`.
#' @param digits Number of significant digits.
#' @param ranef.comp Components of the random-effects table: any of
#'   `"Variance"` and `"Std.Dev."`.
#' @param ... Passed to [print()] for the random-effects table and the
#'   fixed effects.
#' @return `x`, invisibly.
#' @seealso [summary.lmm()] and [summary.glmm()] for the longer display.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' fit
#' print(fit, ranef.comp = c("Variance", "Std.Dev."))
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' gfit
#' @aliases print.lmm print.glmm
#' @method print mixedrs_fit
#' @export
print.mixedrs_fit <- function(x, digits = max(3, getOption("digits") - 3),
                              ranef.comp = "Std.Dev.", ...) {
  # glmmTMB-style fits print as glmmTMB does (R/print-extended.R)
  if (is_extended_fit(x)) return(prt_fit_extended(x, digits, ranef.comp, ...))
  prt_fit(x, digits = digits, ranef.comp = ranef.comp, ...)
  invisible(x)
}

#' Summarize a fitted linear mixed model
#'
#' Computes the quantities of lme4's `summary()` for mixed models: the
#' fitting criterion, scaled residuals, variance components, the
#' fixed-effects table (estimates, standard errors, t values) and the
#' correlation of the fixed-effects estimates.
#'
#' @param object A fitted model of class `"lmm"`.
#' @param ddf Method for the denominator degrees of freedom of the t tests:
#'   `"Satterthwaite"` (default) or `"Kenward-Roger"` (REML fits only) add
#'   `df` and `Pr(>|t|)` columns computed as lmerTest and pbkrtest compute
#'   them (Kenward-Roger also adjusts the standard errors); `"lme4"` gives
#'   lme4's table without degrees of freedom or p-values.
#' @param correlation Logical: compute the correlation matrix of the
#'   fixed-effects estimates? `NULL` (default) computes it when there are at
#'   most `getOption("lme4.summary.cor.max", 12)` fixed effects, as lme4
#'   does.
#' @param use.hessian As for [vcov.lmm()]: `NULL` or `FALSE` (the
#'   standard errors come from `R_X`, as lme4's for linear mixed models);
#'   `TRUE` is an error, as in lme4.
#' @param ... Ignored, with a warning.
#' @return An object of class `c("summary.lmm", "summary.mixedrs_fit")`: a
#'   list with components
#'   `methTitle` (title line), `objClass` (class of the fit), `devcomp`,
#'   `useScale`, `logLik`, `ngrps`, `coefficients` (the fixed-effects
#'   table, also returned by `coef()`), `sigma`, `vcov` (covariance matrix of
#'   the fixed effects), `correlation` (their correlation matrix or `NULL`),
#'   `varcor` (the [VarCorr.lmm()] object), `AICtab` (REML criterion, or
#'   AIC, BIC, logLik, deviance and df.resid), `call`, `residuals` (scaled
#'   Pearson residuals), `fitMsgs`, `optinfo` and `ddf`.
#' @seealso [print.summary.lmm()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' s <- summary(fit)
#' s
#' coef(s)
#' @method summary lmm
#' @export
summary.lmm <- function(object, ddf = c("Satterthwaite", "Kenward-Roger", "lme4"),
                        correlation = NULL, use.hessian = NULL, ...) {
  stop_unused(..., caller = "summary()")
  # lme4's argument: its standard errors of an LMM come from R_X whatever
  # use.hessian says, and TRUE is an error (no Hessian in beta); as vcov()
  vcov.lmm(object, use.hessian = use.hessian)
  ddf <- match_choice(ddf)
  title <- paste0(mer_method_title(object),
                  switch(ddf, lme4 = "",
                         Satterthwaite = ". t-tests use Satterthwaite's method",
                         "Kenward-Roger" = ". t-tests use Kenward-Roger's method"))
  mer_summary(object, title, coefs = fixef_coef_table(object, ddf),
              vc = vcov.lmm(object), correlation = correlation, ddf = ddf)
}

#' Summarize a fitted generalized linear mixed model
#'
#' Computes the quantities of lme4's `summary()` for `glmer()` fits: the
#' AIC/BIC/log-likelihood/deviance table, scaled Pearson residuals, variance
#' components, the fixed-effects table and the correlation of the
#' fixed-effects estimates. As in lme4, the table has Wald `z value`s for the
#' binomial and Poisson families and `t value`s for families with a scale
#' parameter, and always a `Pr(>|z|)` column from the normal distribution.
#'
#' @param object A fitted model of class `"glmm"`.
#' @param correlation Logical: compute the correlation matrix of the
#'   fixed-effects estimates? `NULL` (default) computes it when there are at
#'   most `getOption("lme4.summary.cor.max", 12)` fixed effects.
#' @param use.hessian Logical: standard errors from the finite-difference
#'   Hessian of the deviance over `(theta, beta)` (`TRUE`) or from the
#'   Cholesky factor `R_X` at the estimates (`FALSE`)? `NULL` (default) uses
#'   the Hessian when the fit computed it, as lme4 does; see [vcov.glmm()].
#' @param ... Ignored, with a warning.
#' @return An object of class `c("summary.glmm", "summary.mixedrs_fit")`: a
#'   list with the components
#'   of [summary.lmm()] (`methTitle`, `objClass`, `devcomp`, `useScale`,
#'   `logLik`, `ngrps`, `coefficients`, `sigma`, `vcov`, `correlation`,
#'   `varcor`, `AICtab`, `call`, `residuals`, `fitMsgs`, `optinfo`) plus
#'   `family` and `link`.
#' @seealso [print.summary.glmm()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'             family = binomial, data = lme4::cbpp)
#' s <- summary(fit)
#' s
#' coef(s)
#' @method summary glmm
#' @export
summary.glmm <- function(object, correlation = NULL, use.hessian = NULL, ...) {
  stop_unused(..., caller = "summary()")
  # glmmTMB-style fits: glmmTMB's summary (R/print-extended.R)
  if (is_extended_fit(object)) {
    if (!is.null(correlation) || !is.null(use.hessian)) {
      stop("summary(): 'correlation' and 'use.hessian' are not available for glmmTMB-style fits",
           call. = FALSE)
    }
    return(summary_extended(object))
  }
  # lme4 takes the standard errors from vcov(use.hessian = use.hessian) and
  # the correlation shown from the default vcov(); the same matrix unless
  # use.hessian is given
  vc <- vcov.glmm(object)
  vc_se <- if (is.null(use.hessian) ||
               identical(as.logical(use.hessian), glmm_hessian_info(object)$available)) {
    vc
  } else {
    vcov.glmm(object, use.hessian = use.hessian)
  }
  mer_summary(object, mer_method_title(object), coefs = glmm_coef_table(object, vc_se),
              vc = vc, correlation = correlation)
}

# The summary object of either class, its components in lme4's order:
# `title` is the title line, `coefs` the fixed-effects table, `vc` the
# covariance of the fixed effects (shown as their correlation), computed when
# `correlation` is TRUE or, for NULL, when there are at most
# summary_cor_max() fixed effects. A GLMM's family and link follow the
# log-likelihood; further components in `...` (summary.lmm()'s `ddf`) come
# last.
mer_summary <- function(object, title, coefs, vc, correlation, ...) {
  p <- nrow(coefs)
  if (is.null(correlation)) correlation <- p <= summary_cor_max()
  famlink <- if (is_glmm(object)) mer_famlink(object)
  structure(
    c(
      list(
        methTitle = title,
        objClass = class(object)[1L],
        devcomp = object$devcomp,
        useScale = mer_use_sc(object),
        logLik = stats::logLik(object)
      ),
      famlink,
      list(
        ngrps = mer_ngrps(object),
        coefficients = coefs,
        sigma = object$sigma,
        vcov = vc,
        correlation = if (isTRUE(correlation) && p > 0L) stats::cov2cor(vc),
        varcor = VarCorr(object),
        AICtab = mer_criterion_table(object),
        call = object$call,
        residuals = if (!is_table_fit(object)) {
          stats::residuals(object, type = "pearson", scaled = TRUE)
        },
        fitMsgs = mer_fit_messages(object),
        optinfo = object$optinfo
      ),
      # a fit to a database table: where (no residuals)
      if (is_table_fit(object)) list(source = table_source(object)),
      list(...)
    ),
    class = c(paste0("summary.", class(object)[1L]), "summary.mixedrs_fit")
  )
}

#' Print the summary of a mixed model
#'
#' Lays out a [summary.lmm()] or [summary.glmm()] object as lme4 prints the
#' summary of an `lmer()` or `glmer()` fit, line for line: title, family and
#' link (`"glmm"` fits), call (Formula, Data, Weights, Offset, Control,
#' Subset), criterion, scaled residuals, random effects, numbers of
#' observations and groups, fixed-effects table (with p-values and
#' significance stars when it has p-values), correlation of the fixed
#' effects and any fit and convergence messages.
#'
#' @param x An object of class `"summary.lmm"` or `"summary.glmm"`.
#' @param digits Number of significant digits.
#' @param correlation Logical: print the correlation of the fixed effects?
#'   `NULL` (default): print it when it was computed and there are at most
#'   `getOption("lme4.summary.cor.max", 12)` fixed effects (otherwise a
#'   message says how to get it).
#' @param symbolic.cor Logical: show the correlations symbolically with
#'   [symnum()]?
#' @param signif.stars Logical: show significance stars (only relevant when
#'   the table has p-values)?
#' @param ranef.comp Components of the random-effects table: any of
#'   `"Variance"` and `"Std.Dev."`.
#' @param show.resids Logical: show the quantiles of the scaled residuals?
#' @param ... Passed to [print()] for the random-effects table.
#' @return `x`, invisibly.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' print(summary(fit), show.resids = FALSE, ranef.comp = "Std.Dev.")
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' print(summary(gfit), show.resids = FALSE, signif.stars = FALSE)
#' @aliases print.summary.lmm print.summary.glmm
#' @method print summary.mixedrs_fit
#' @export
print.summary.mixedrs_fit <- function(x, digits = max(3, getOption("digits") - 3),
                                      correlation = NULL, symbolic.cor = FALSE,
                                      signif.stars = getOption("show.signif.stars"),
                                      ranef.comp = c("Variance", "Std.Dev."),
                                      show.resids = TRUE, ...) {
  prt_summary(x, obj_name = deparse(substitute(x)), digits = digits,
              correlation = correlation, symbolic.cor = symbolic.cor,
              signif.stars = signif.stars, ranef.comp = ranef.comp,
              show.resids = show.resids, ...)
  invisible(x)
}

#' Fixed-effects table and covariance from a model summary
#'
#' @param object An object of class `"summary.lmm"` or `"summary.glmm"`.
#' @param ... Ignored.
#' @return `coef()`: the fixed-effects table (a matrix with columns
#'   `Estimate`, `Std. Error` and `t value`, then `df` and `Pr(>|t|)` with
#'   degrees of freedom, for `"lmm"` fits; `Estimate`, `Std. Error`,
#'   `z value` or `t value` and `Pr(>|z|)` for `"glmm"` fits). `vcov()`: the
#'   covariance matrix of the fixed-effects estimates.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' coef(summary(fit))
#' vcov(summary(fit))
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' coef(summary(gfit))
#' @aliases coef.summary.lmm coef.summary.glmm
#' @method coef summary.mixedrs_fit
#' @export
coef.summary.mixedrs_fit <- function(object, ...) {
  object$coefficients
}

#' @rdname coef.summary.mixedrs_fit
#' @aliases vcov.summary.lmm vcov.summary.glmm
#' @method vcov summary.mixedrs_fit
#' @export
vcov.summary.mixedrs_fit <- function(object, ...) {
  object$vcov
}

# Fixed-effects table of summary.glmm(): Wald statistics from `vc`, named
# "t value" when the family has a scale parameter (lme4's rule), and normal
# p-values in either case.
glmm_coef_table <- function(object, vc) {
  est <- mer_fixef(object)
  stat_name <- if (mer_use_sc(object)) "t value" else "z value"
  cols <- c("Estimate", "Std. Error", stat_name, "Pr(>|z|)")
  if (length(est) == 0L) {
    return(matrix(numeric(0), 0L, 4L, dimnames = list(NULL, cols)))
  }
  se <- sqrt(diag(vc))
  stat <- est / se
  tab <- cbind(est, se, stat, 2 * stats::pnorm(abs(stat), lower.tail = FALSE))
  dimnames(tab) <- list(names(est), cols)
  tab
}

# ---------------------------------------------------------------------------
# Computing helpers (no printing).

# Title line of either class (without the class tag).
mer_method_title <- function(object) {
  if (is_glmm(object)) glmm_method_title(object) else lmm_method_title(object)
}

# "Linear mixed model fit by REML" or, for ML fits, lme4's "... by maximum
# likelihood " -- lme4's title carries a trailing space for LMMs fitted by
# ML, which shows as two spaces before the class tag.
lmm_method_title <- function(object) {
  if (lmm_is_reml(object)) {
    "Linear mixed model fit by REML"
  } else {
    "Linear mixed model fit by maximum likelihood "
  }
}

# "Generalized linear mixed model fit by maximum likelihood (Laplace
# Approximation)" for nAGQ = 1; any other nAGQ (including 0) is named as
# adaptive Gauss-Hermite quadrature with that number of points, as lme4 does.
glmm_method_title <- function(object) {
  nagq <- glmm_nagq(object)
  paste("Generalized linear mixed model fit by maximum likelihood",
        if (nagq == 1L) {
          "(Laplace Approximation)"
        } else {
          sprintf("(Adaptive Gauss-Hermite Quadrature, nAGQ = %d)", nagq)
        })
}

glmm_nagq <- function(object) {
  nagq <- object$nAGQ
  if (is.null(nagq)) nagq <- object$devcomp$dims[["nAGQ"]]
  as.integer(nagq)
}

# Criterion shown under the call: the REML criterion for REML fits; AIC, BIC,
# log-likelihood, deviance (minus twice the log-likelihood, also for GLMMs)
# and residual degrees of freedom for maximum-likelihood fits.
mer_criterion_table <- function(object) {
  if (lmm_is_reml(object)) {
    return(c(REML = lmm_devcrit(object, REML = TRUE)))
  }
  ll <- stats::logLik(object)
  c(AIC = stats::AIC(ll), BIC = stats::BIC(ll), logLik = as.vector(ll),
    deviance = -2 * as.vector(ll), df.resid = mer_df_residual(object))
}

# Fixed-effects table of summary(). Each `ddf` method returns the same first
# three columns; methods with degrees of freedom will append "df" and
# "Pr(>|t|)" columns, which printCoefmat() then formats (with stars).
fixef_coef_table <- function(object, ddf) {
  est <- mer_fixef(object)
  se <- sqrt(diag(vcov.lmm(object)))
  tab <- cbind(Estimate = est, "Std. Error" = se, "t value" = est / se)
  if (length(est) == 0L) {
    tab <- matrix(numeric(0), 0L, 3L,
                  dimnames = list(NULL, c("Estimate", "Std. Error", "t value")))
  }
  if (ddf == "lme4" || length(est) == 0L) return(tab)
  ddf_coef_table(object, ddf)
}

# Messages attached to the fixed-effects model matrix (attributes "msg*",
# e.g. "msgRankdrop"), shown under "fit warnings:".
mer_fit_messages <- function(object) {
  attrs <- attributes(object$X)
  msgs <- unlist(attrs[grep("^msg", names(attrs))], use.names = FALSE)
  msgs <- as.character(msgs)
  msgs[nchar(msgs) > 0L]
}

# Largest number of fixed effects for which the correlation matrix is
# computed and shown by default (lme4's option and default).
summary_cor_max <- function() {
  getOption("lme4.summary.cor.max", 12L)
}

# ---------------------------------------------------------------------------
# The two displays, shared by "lmm" and "glmm" fits.

# Short display of a fit (print() of an "lmm" or "glmm" fit).
prt_fit <- function(x, digits, ranef.comp, ...) {
  prt_header(mer_method_title(x), class(x)[1L], mer_famlink(x), x$call, long = FALSE,
             source = if (is_table_fit(x)) table_source(x))
  prt_criterion(mer_criterion_table(x), digits = 4)
  prt_random(VarCorr(x), digits = digits, comp = ranef.comp, ...)
  prt_groups(mer_ngrps(x), nobs = x$devcomp$dims[["n"]])
  prt_fixef_estimates(mer_fixef(x), digits = digits, ...)
  prt_messages(mer_fit_messages(x), x$optinfo, short = TRUE,
               nAGQ = x$devcomp$dims[["nAGQ"]])
}

# Long display of a model summary (print() of a "summary.lmm" or
# "summary.glmm" object). `obj_name` is the expression the user printed,
# named in the message shown instead of a large correlation matrix.
prt_summary <- function(x, obj_name, digits, correlation, symbolic.cor,
                        signif.stars, ranef.comp, show.resids, ...) {
  prt_header(x$methTitle, x$objClass, list(family = x$family, link = x$link), x$call,
             long = TRUE, source = x$source)
  cat("\n")
  prt_criterion(x$AICtab, digits = 1)
  cat("\n")
  if (show.resids && !is.null(x$residuals)) prt_resids(x$residuals, digits = digits)
  prt_random(x$varcor, digits = digits, comp = ranef.comp, ...)
  prt_groups(x$ngrps, nobs = x$devcomp$dims[["n"]])
  if (nrow(x$coefficients) > 0L) {
    prt_coef_table(x$coefficients, digits = digits, signif.stars = signif.stars)
    prt_summary_corr(x, correlation, obj_name, symbolic = symbolic.cor)
  }
  prt_messages(x$fitMsgs, x$optinfo, short = FALSE, nAGQ = x$devcomp$dims[["nAGQ"]])
}

# Family and link of a GLMM (list(family = NULL, link = NULL) for an LMM).
mer_famlink <- function(object) {
  if (!is_glmm(object)) return(list(family = NULL, link = NULL))
  object$family[c("family", "link")]
}

# ---------------------------------------------------------------------------
# Printing helpers, one per section of the output.

# Head of both displays: title, family (GLMMs) and the lines from the call.
prt_header <- function(title, class, famlink, call, long, source = NULL) {
  prt_title(title, class)
  prt_family(famlink)
  prt_call(call, long = long, source = source)
}

# Title line, e.g. "Linear mixed model fit by REML ['lmm']"; wrapped (and the
# tag unquoted) when it does not fit the console width, as in lme4.
prt_title <- function(title, class) {
  width <- getOption("width")
  if (nchar(title) + 5L + nchar(class) > width) {
    cat(strwrap(title, width = width - 2L, exdent = 2L), " [", class, "]",
        sep = "", fill = TRUE)
  } else {
    cat(title, " ['", class, "']\n", sep = "")
  }
}

# " Family: binomial  ( logit )" for GLMMs; nothing for LMMs.
prt_family <- function(famlink) {
  if (is.null(famlink$family)) return(invisible())
  cat(" Family:", famlink$family,
      if (!is.null(famlink$link)) paste(" (", famlink$link, ")"), fill = TRUE)
}

# Formula, Data, Weights, Offset, (Control,) Subset lines from the call; the
# labels are right-aligned to the colon.
prt_call <- function(call, long = TRUE, source = NULL) {
  show <- function(label, expr) {
    if (!is.null(expr)) cat(label, deparse(expr), fill = TRUE)
  }
  show("Formula:", call$formula)
  if (is.null(source)) {
    show("   Data:", call$data)
  } else {
    # A fit from grouped sums: where they were computed.
    cat("   Data: ", if (!is.null(call$data)) paste0(deparse1(call$data), ", "), source,
        "\n", sep = "")
  }
  show("Weights:", call$weights)
  show(" Offset:", call$offset)
  if (long && length(call$control)) {
    ctrl <- deparse(call$control)
    if (!identical(ctrl, "lmmControl()")) cat("Control:", ctrl, fill = TRUE)
  }
  show(" Subset:", call$subset)
}

# "REML criterion at convergence: ..." or the AIC/BIC/logLik/deviance/df.resid
# table, rounded to `digits` decimals.
prt_criterion <- function(tab, digits) {
  rounded <- round(tab, digits)
  if (identical(names(tab), "REML")) {
    cat("REML criterion at convergence:", rounded, fill = TRUE)
  } else {
    txt <- format(rounded)
    txt["df.resid"] <- format(rounded["df.resid"])
    print(txt, quote = FALSE)
  }
}

# "Scaled residuals:" and their five-number summary.
prt_resids <- function(resids, digits) {
  cat("Scaled residuals:", "\n")
  qs <- zapsmall(stats::quantile(resids, na.rm = TRUE), digits + 1L)
  names(qs) <- c("Min", "1Q", "Median", "3Q", "Max")
  print(qs, digits = digits)
  cat("\n")
}

# "Random effects:" and the variance-components table.
prt_random <- function(varcor, digits, comp, ...) {
  cat("Random effects:\n")
  print(format_varcorr(varcor, digits = digits, comp = comp), quote = FALSE,
        digits = digits, ...)
}

# "Number of obs: 180, groups:  Subject, 18" (wrapped at the console width).
prt_groups <- function(ngrps, nobs) {
  groups <- paste(paste(names(ngrps), ngrps, sep = ", "), collapse = "; ")
  cat(sprintf("Number of obs: %d, groups: ", as.integer(nobs)), groups, fill = TRUE)
}

# "Fixed Effects:" and the bare estimates (short display).
prt_fixef_estimates <- function(est, digits, ...) {
  if (length(est) == 0L) {
    cat("No fixed effect coefficients\n")
    return(invisible())
  }
  cat("Fixed Effects:\n")
  print.default(format(est, digits = digits), print.gap = 2L, quote = FALSE, ...)
}

# "Fixed effects:" and the coefficient table (summary display).
prt_coef_table <- function(coefs, digits, signif.stars) {
  cat("\nFixed effects:\n")
  stats::printCoefmat(coefs, digits = digits, signif.stars = signif.stars)
}

# The correlation of the fixed effects in a summary display. `correlation`
# NULL shows it when summary() computed it and there are at most
# summary_cor_max() fixed effects (above that, a message names `obj_name`
# and how to get it); TRUE shows it, computed from the covariance when
# summary() did not.
prt_summary_corr <- function(x, correlation, obj_name, symbolic) {
  p <- nrow(x$coefficients)
  cor_max <- summary_cor_max()
  if (is.null(correlation)) {
    correlation <- !is.null(x$correlation) && p <= cor_max
    if (!correlation && p > cor_max) {
      if (length(obj_name) > 1L || nchar(obj_name) >= 32L) obj_name <- "...."
      msg_cor_not_shown(p, cor_max, obj_name)
    }
  } else if (!is.logical(correlation)) {
    stop("'correlation' must be NULL or logical")
  }
  if (correlation) {
    corr <- x$correlation
    if (is.null(corr)) {
      message("\nCorrelation of fixed effects could have been required in summary()")
      corr <- stats::cov2cor(x$vcov)
    }
    prt_fixef_corr(corr, rownames(x$coefficients), symbolic = symbolic)
  }
}

# Message shown instead of a large correlation matrix.
msg_cor_not_shown <- function(p, cor_max, obj_name) {
  message(sprintf(paste("\nCorrelation matrix not shown by default, as p = %d > %d.",
                        "Use print(%s, correlation=TRUE)  or",
                        "    vcov(%s)        if you need it\n", sep = "\n"),
                  as.integer(p), as.integer(cor_max), obj_name, obj_name))
}

# "Correlation of Fixed Effects:": strictly lower triangle with three
# decimals, row names abbreviated to 11 and column names to 6 characters.
prt_fixef_corr <- function(corr, coef_names, symbolic = FALSE) {
  p <- ncol(corr)
  if (p <= 1L) return(invisible())
  row_lab <- abbreviate(coef_names, minlength = 11)
  cat("\nCorrelation of Fixed Effects:\n")
  if (is.logical(symbolic) && isTRUE(symbolic)) {
    m <- as.matrix(corr)
    dimnames(m) <- list(row_lab, abbreviate(coef_names, minlength = 1, strict = TRUE))
    print(stats::symnum(m))
  } else {
    cells <- matrix(format(round(as.vector(as.matrix(corr)), 3), nsmall = 3), p, p,
                    dimnames = list(row_lab, abbreviate(coef_names, minlength = 6)))
    cells[!lower.tri(cells)] <- ""
    print(cells[-1L, -p, drop = FALSE], quote = FALSE)
  }
}

# "fit warnings:" block (e.g. dropped columns of a rank-deficient X).
prt_fit_messages <- function(msgs) {
  if (length(msgs) && any(nchar(msgs) > 0L)) {
    cat("fit warnings:\n")
    writeLines(msgs)
  }
}

# Tail of both displays: fit warnings, then the optimizer status.
prt_messages <- function(fit_msgs, optinfo, short, nAGQ) {
  prt_fit_messages(fit_msgs)
  prt_convergence(optinfo, short = short, nAGQ = nAGQ)
}

# Optimizer status line, shown when the optimizer reported a problem or the
# fit carries convergence messages (e.g. a singular fit). `short = TRUE` is
# the one-line form of print(); otherwise the messages follow one per line.
# A GLMM records the optimizers of its two stages; as lme4, the line names
# the one of the last stage run: the first for nAGQ = 0, else the second.
prt_convergence <- function(optinfo, short, nAGQ = NA) {
  if (length(optinfo) == 0L) return(invisible())
  optimizer <- optinfo$optimizer
  if (length(optimizer) > 1L) {
    optimizer <- if (isTRUE(nAGQ == 0)) optimizer[1L] else optimizer[length(optimizer)]
  }
  code <- optinfo$conv$opt
  if (is.null(code)) code <- 0L
  msgs <- unlist(optinfo$conv$lme4$messages)
  warns <- optinfo$warnings
  if (code == 0 && length(msgs) == 0L && length(warns) == 0L) return(invisible())
  status <- if (code == 0) {
    "(OK)"
  } else if (!is.null(optinfo$message)) {
    sprintf("(%s)", optinfo$message)
  } else {
    ""
  }
  head <- sprintf("optimizer (%s) convergence code: %d %s", optimizer,
                  as.integer(code), status)
  if (short) {
    cat(head, sprintf("; %d optimizer warnings; %d lme4 warnings",
                      length(warns), length(msgs)), "\n")
  } else {
    cat(head, msgs, unlist(warns), sep = "\n")
    cat("\n")
  }
}
