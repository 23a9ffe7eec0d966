# Printing glmmTMB-style fits (glmm() fits whose `extended$style` is
# "glmmTMB": negative binomial, beta, beta-binomial, zero-inflated and
# dispersion models): print(), summary() and print(summary()) laid out section
# by section as glmmTMB 1.1.5 lays out its fits (family, formulas of the
# conditional, zero-inflation and dispersion models, criterion table, random
# effects, the dispersion-parameter line, one coefficient table per model
# component), and the print method of fixef()'s list of components. The
# numbers come from R/methods-extended.R; this file only computes the summary
# object and lays it out.

# Names of the model components as glmmTMB prints them.
component_titles <- c(cond = "Conditional model", zi = "Zero-inflation model",
                      disp = "Dispersion model")

# Short display (print() of a glmmTMB-style fit; called from print.mixedrs_fit()).
prt_fit_extended <- function(x, digits, ranef.comp, ...) {
  prt_call_extended(extended_call_lines(x))
  tab <- extended_criterion_table(x)
  prt_criterion(tab[c("AIC", "BIC", "logLik", "df.resid")], digits = digits + 1L)
  vc <- Filter(length, list(cond = varcorr_extended(x), zi = varcorr_extended_zi(x)))
  if (length(vc)) {
    cat("Random-effects (co)variances:\n")
    for (cc in names(vc)) {
      cat("\n", component_titles[[cc]], ":\n", sep = "")
      print(format_varcorr_components(vc[[cc]], digits, ranef.comp, format), quote = FALSE)
    }
  }
  ng <- list(cond = mer_ngrps(x), zi = extended_ngrps_zi(x))
  groups <- unlist(lapply(names(ng), function(cc) {
    if (length(ng[[cc]])) {
      paste0(component_titles[[cc]], ": ",
             paste(paste(names(ng[[cc]]), ng[[cc]], sep = ", "), collapse = "; "))
    }
  }))
  cat(paste(c(sprintf("\nNumber of obs: %d", as.integer(mer_nobs(x))), groups),
            collapse = " / "), fill = TRUE)
  if (extended_trivial_disp(x)) prt_dispersion_line(x$extended$family, x$extended$sigma)
  est <- fixef_extended(x)
  if (length(unlist(est))) {
    cat("\nFixed Effects:\n")
    print(est, digits = digits, ...)
  } else {
    cat("No fixed effect coefficients\n")
  }
  invisible(x)
}

# Formula lines of both displays: the conditional formula, then the
# zero-inflation and dispersion formulas (aligned under the right-hand side of
# the conditional one, as glmmTMB aligns them) when they are not the
# defaults, and the Data, Weights and Offset lines of the call.
prt_call_extended <- function(lines) {
  call <- lines$call
  f <- lines$formula
  indent <- 0L
  if (!is.null(f)) {
    cat("Formula:         ", deparse(f), fill = TRUE)
    if (length(f) == 3L) indent <- nchar(deparse(f[[2L]]))[1L]
  }
  pad <- strrep(" ", indent + 2L)
  if (!is.null(lines$zi)) {
    cat("Zero inflation:  ", pad, deparse(lines$zi), sep = "", fill = TRUE)
  }
  if (!is.null(lines$disp)) {
    cat("Dispersion:      ", pad, deparse(lines$disp), sep = "", fill = TRUE)
  }
  if (!is.null(call$data)) cat("Data:", deparse(call$data), fill = TRUE)
  if (!is.null(call$weights)) cat("Weights:", deparse(call$weights), fill = TRUE)
  if (!is.null(call$offset)) cat(" Offset:", deparse(call$offset), fill = TRUE)
}

# What the formula lines show: the conditional formula, the zero-inflation
# formula (NULL without zero inflation), the dispersion formula (NULL when it
# is ~1) and the call (for Data, Weights, Offset).
extended_call_lines <- function(x) {
  f <- x$formula
  if (is.null(f)) f <- x$call$formula
  list(formula = f, zi = zi_formula_shown(x),
       disp = if (!extended_trivial_disp(x)) x$extended$disp$formula, call = x$call)
}

# The zero-inflation formula of the formula lines (NULL without zero
# inflation): the formula of its fixed effects, or, when the zero-inflation
# model has random effects, the whole formula with its bars (as glmmTMB
# prints its call's).
zi_formula_shown <- function(x) {
  zi <- x$extended$zi
  if (!is.null(zi$formula_as_given)) return(zi$formula_as_given)
  if (has_zi_random(x)) zi$full_formula else zi$formula
}

# The zero-inflation model's variance components as glmmTMB shows them (as
# varcorr_extended() the conditional model's); NULL without random effects
# in the zero-inflation model.
varcorr_extended_zi <- function(x) {
  zf <- zi_random_fit(x)
  if (is.null(zf)) return(NULL)
  gaussian <- identical(x$extended$family, "gaussian")
  mer_varcorr(zf, zf$sigma, use_sc = gaussian, class = c("VarCorr.glmm", "VarCorr.lmm"))
}

# Number of levels of each grouping factor of the zero-inflation model (NULL
# without random effects there).
extended_ngrps_zi <- function(x) {
  zf <- zi_random_fit(x)
  if (is.null(zf)) NULL else mer_ngrps(zf)
}

# The variance components as glmmTMB shows them: a Residual row only for the
# gaussian family (its standard deviation sigma(), NA when the dispersion
# formula is not ~1).
varcorr_extended <- function(x) {
  vc <- varcorr_lme4(x)
  gaussian <- identical(x$extended$family, "gaussian")
  attr(vc, "useSc") <- gaussian
  if (gaussian) attr(vc, "sc") <- x$extended$sigma
  vc
}

# The line giving the dispersion parameter of a model with an intercept-only
# dispersion formula: glmmTMB's "Dispersion estimate for gaussian family
# (sigma^2): ..." for the gaussian and Gamma families (sigma() squared), else
# "Dispersion parameter for nbinom2 family (): ..." (sigma() itself: theta
# for nbinom2, phi for nbinom1, beta and betabinomial). Nothing for families
# without a dispersion parameter (poisson, binomial).
prt_dispersion_line <- function(family, sigma) {
  if (!extended_has_dispersion(family)) return(invisible())
  classic <- family %in% c("gaussian", "Gamma")
  cat(sprintf("\n%s for %s family (%s): %s",
              if (classic) "Dispersion estimate" else "Dispersion parameter",
              family, if (classic) "sigma^2" else "",
              formatC(if (classic) sigma^2 else sigma, digits = 3)), "\n")
}

#' Summary of a glmmTMB-style fit
#'
#' For fits of [glmm()] in glmmTMB's parameterisation (negative binomial,
#' beta and beta-binomial families, and any fit with a `ziformula` or a
#' `dispformula`), `summary()` computes what glmmTMB's `summary()` computes:
#' the criterion table (AIC, BIC, log-likelihood, deviance = minus twice the
#' log-likelihood, residual degrees of freedom), the variance components, the
#' dispersion parameter, and one coefficient table (estimate, standard error,
#' Wald z value and its normal p-value) per model component: the conditional
#' model, the zero-inflation model and the dispersion model (the last only
#' when the dispersion formula is not `~ 1`). Printing lays it out as glmmTMB
#' does, section by section.
#'
#' @param object A glmmTMB-style fit of class `"glmm"`.
#' @param x An object of class `"summary_components"`.
#' @param digits Number of significant digits.
#' @param signif.stars Logical: show significance stars?
#' @param ranef.comp Components of the random-effects table: any of
#'   `"Variance"` and `"Std.Dev."`.
#' @param ... Not used by `summary()` (an error if given); passed to
#'   [stats::printCoefmat()] by `print()`.
#' @return `summary()`: an object of class `"summary_components"`, a list
#'   with `logLik`, `family`, `link`, `ngrps`, `nobs`, `coefficients` (a list
#'   with the tables `cond`, `zi` and `disp`, `NULL` where the component has
#'   none to show), `sigma`, `vcov` (as [vcov()] of the fit), `varcor` (the
#'   conditional model's variance components), `varcor_zi` and `ngrps_zi`
#'   (the zero-inflation model's variance components and numbers of levels,
#'   `NULL` without random effects in `ziformula`), `AICtab`, `call`,
#'   `call_lines` (what the formula lines show) and `trivial_disp` (is the
#'   dispersion formula `~ 1`?). `coef()` of it gives the list of tables.
#'   `print()`: `x`, invisibly.
#' @seealso [glmmTMB-style methods][glmm_extended_methods].
#' @examplesIf requireNamespace("glmmTMB", quietly = TRUE)
#' data(Salamanders, package = "glmmTMB")
#' fit <- glmm(count ~ mined + (1 | site), data = Salamanders,
#'             family = "nbinom2", ziformula = ~ mined)
#' s <- summary(fit)
#' s
#' coef(s)$zi
#' @name summary_components
NULL

# summary() of a glmmTMB-style fit (called from summary.glmm()).
summary_extended <- function(object) {
  est <- fixef_extended(object)
  vc <- vcov_extended(object, full = FALSE)
  se_of <- function(comp) {
    v <- vcov_component(object, comp)
    if (is.null(v)) numeric(0) else sqrt(diag(v))
  }
  coefs <- lapply(stats::setNames(nm = names(est)), function(comp) {
    b <- est[[comp]]
    if (extended_trivial_fixef(names(b), comp)) return(NULL)
    se <- unname(se_of(comp))
    z <- b / se
    tab <- cbind(Estimate = b, "Std. Error" = se, "z value" = z,
                 "Pr(>|z|)" = 2 * stats::pnorm(abs(z), lower.tail = FALSE))
    rownames(tab) <- names(b)
    tab
  })
  tab <- extended_criterion_table(object)
  structure(
    list(logLik = logLik_extended(object), family = object$extended$family,
         link = object$family$link, ngrps = mer_ngrps(object),
         nobs = mer_nobs(object), coefficients = coefs,
         sigma = object$extended$sigma, vcov = vc, varcor = varcorr_extended(object),
         varcor_zi = varcorr_extended_zi(object), ngrps_zi = extended_ngrps_zi(object),
         AICtab = tab, call = object$call, call_lines = extended_call_lines(object),
         trivial_disp = extended_trivial_disp(object)),
    class = "summary_components"
  )
}

#' @rdname summary_components
#' @method print summary_components
#' @export
print.summary_components <- function(x, digits = max(3, getOption("digits") - 3),
                                     signif.stars = getOption("show.signif.stars"),
                                     ranef.comp = c("Variance", "Std.Dev."), ...) {
  prt_family(list(family = x$family, link = x$link))
  prt_call_extended(x$call_lines)
  cat("\n")
  prt_criterion(x$AICtab, digits = 1)
  cat("\n")
  vc <- Filter(length, list(cond = x$varcor, zi = x$varcor_zi))
  ngrps <- list(cond = x$ngrps, zi = x$ngrps_zi)
  if (length(vc)) {
    cat("Random effects:\n")
    for (cc in names(vc)) {
      cat("\n", component_titles[[cc]], ":\n", sep = "")
      print(format_varcorr_components(vc[[cc]], digits, ranef.comp, format), quote = FALSE,
            digits = digits)
      prt_groups(ngrps[[cc]], nobs = x$nobs)
    }
  }
  if (x$trivial_disp) prt_dispersion_line(x$family, x$sigma)
  for (comp in names(x$coefficients)) {
    tab <- x$coefficients[[comp]]
    if (length(tab)) {
      cat("\n", component_titles[[comp]], ":\n", sep = "")
      stats::printCoefmat(tab, zap.ind = 3, digits = digits, signif.stars = signif.stars, ...)
    }
  }
  invisible(x)
}

#' @rdname summary_components
#' @method coef summary_components
#' @export
coef.summary_components <- function(object, ...) {
  check_no_dots(..., caller = "coef()")
  object$coefficients
}

#' @rdname summary_components
#' @method vcov summary_components
#' @export
vcov.summary_components <- function(object, ...) {
  check_no_dots(..., caller = "vcov()")
  object$vcov
}

#' Fixed effects of the components of a glmmTMB-style fit
#'
#' `fixef()` of a glmmTMB-style [glmm()] fit returns, as glmmTMB's
#' `fixef()`, a list of the coefficients of the conditional model (`cond`),
#' the zero-inflation model (`zi`) and the dispersion model (`disp`, on the
#' log scale of the dispersion parameter), each a named numeric vector,
#' empty where the model has no such component. Its print method shows the
#' components that carry information: `disp` only when the dispersion
#' formula is not `~ 1`, unless `print_trivials = TRUE`.
#'
#' @param x An object of class `"fixef_components"`.
#' @param digits Number of significant digits.
#' @param print_trivials Logical: also show the empty components and an
#'   intercept-only dispersion model?
#' @param ... Ignored.
#' @return `x`, invisibly.
#' @seealso [glmmTMB-style methods][glmm_extended_methods].
#' @examplesIf requireNamespace("glmmTMB", quietly = TRUE)
#' data(Salamanders, package = "glmmTMB")
#' fit <- glmm(count ~ mined + (1 | site), data = Salamanders,
#'             family = "nbinom2", ziformula = ~ mined)
#' fixef(fit)
#' fixef(fit)$zi
#' print(fixef(fit), print_trivials = TRUE)
#' @method print fixef_components
#' @export
print.fixef_components <- function(x, digits = max(3, getOption("digits") - 3),
                                   print_trivials = FALSE, ...) {
  check_flag(print_trivials, "print_trivials", "print()")
  for (comp in names(x)) {
    if (print_trivials || !extended_trivial_fixef(names(x[[comp]]), comp)) {
      cat("\n", component_titles[[comp]], ":\n", sep = "")
      print.default(format(x[[comp]], digits = digits), print.gap = 2L, quote = FALSE)
    }
  }
  invisible(x)
}

#' @rdname vcov_components
#' @param x An object of class `"vcov_components"`.
#' @method print vcov_components
#' @export
print.vcov_components <- function(x, ...) {
  for (comp in names(x)) {
    cat(component_titles[[comp]], ":\n", sep = "")
    print(x[[comp]], ...)
    cat("\n")
  }
  invisible(x)
}
