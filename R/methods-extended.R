# Extractor methods of glmmTMB-style fits: glmm() fits whose
# `extended$style` is "glmmTMB" (negative binomial, beta, beta-binomial,
# zero-inflation and dispersion models; the layout of `extended` is described
# in R/glmm-extended.R). The generic methods of "glmm" fits hand these fits to
# the functions below, which give what glmmTMB 1.1.5 gives: fixef() as the
# list of the conditional, zero-inflation and dispersion coefficients, vcov()
# per component, sigma(), logLik() counting every estimated parameter,
# predict() of the link, the conditional mean, the zero-inflated mean, the
# zero-inflation probability and the dispersion, response and Pearson
# residuals, Wald confint() and the tidiers with a `component` column.
# Nothing here calls the Rust engine. Printing is in R/print-extended.R.

#' Methods for glmmTMB-style fits
#'
#' Fits of [glmm()] in glmmTMB's parameterisation (the `nbinom2`, `nbinom1`,
#' `beta_family` and `betabinomial` families, and any fit with a
#' `ziformula` or a `dispformula`) have the methods of glmmTMB 1.1.5 fits:
#'
#' * `fixef()`: a list with the coefficients of the conditional model
#'   (`cond`), the zero-inflation model (`zi`) and the dispersion model
#'   (`disp`, on the log scale of the dispersion parameter); see
#'   [print.fixef_components()].
#' * `vcov(fit, full = FALSE)`: a list with the covariance matrices of the
#'   components' coefficients (`cond`; `zi` when there is zero inflation;
#'   `disp` when the dispersion formula is not `~ 1`), named as glmmTMB names
#'   them (`"zi~(Intercept)"`, `"d~(Intercept)"`). `full = TRUE` gives one
#'   matrix for all the coefficients of the three components, the
#'   dispersion intercept included (glmmTMB's also has rows for the
#'   random-effects parameters; this one has them only when the fit carries
#'   their covariance).
#' * `sigma()`: glmmTMB's dispersion parameter: theta for `nbinom2`, phi for
#'   `nbinom1`, `beta_family` and `betabinomial`, the residual standard
#'   deviation for `gaussian`, `1/sqrt(shape)` for `Gamma`, 1 for `poisson`
#'   and `binomial`; `NA` when the dispersion formula is not `~ 1`.
#' * `logLik()`: the maximized Laplace log-likelihood, with `df` counting
#'   every estimated parameter (coefficients of all components and the
#'   variance parameters) and `nobs`; hence `AIC()`, `BIC()`, and
#'   `df.residual()` = observations minus `df`.
#' * `predict(fit, newdata, type, re.form, se.fit)`: `type = "link"` the
#'   conditional model's linear predictor (offset included);
#'   `"conditional"` its mean `mu`; `"response"` the mean of the response,
#'   `(1 - p) mu` with the zero-inflation probability `p` (`mu` without zero
#'   inflation); `"zprob"` `p` (0 without zero inflation); `"zlink"` its
#'   logit (`-Inf` without zero inflation); `"disp"` the dispersion on the
#'   scale glmmTMB 1.1.5 reports it (as `sigma()`, per observation).
#'   `re.form = NA` (or `~ 0`) leaves the random effects out. With
#'   `newdata`, the zero-inflation and dispersion designs are rebuilt from
#'   the stored terms and factor levels. `se.fit = TRUE` gives the standard
#'   errors glmmTMB's `sdreport()` gives, for the types `"link"`,
#'   `"conditional"`, `"zlink"`, `"zprob"`, `"response"` and `"disp"` (`NA`
#'   for `"zlink"` and `"zprob"` without zero inflation; for `"disp"` the
#'   delta method on the dispersion coefficients, 0 for families without a
#'   dispersion parameter): for population-level
#'   predictions (`re.form = NA`) the delta method on the coefficients; with
#'   the random effects (`re.form = NULL`) the delta method on the joint
#'   uncertainty of the random effects and all estimated parameters (their
#'   conditional variance given the data, plus the part due to the estimated
#'   parameters, the conditional modes moving with them); a level of
#'   `newdata` not in the fit (`allow.new.levels = TRUE`) has random effect
#'   0 and contributes its prior variance, as in glmmTMB. Random effects in
#'   the zero-inflation model (`ziformula = ~ x + (1 | g)`) enter as the
#'   conditional model's do (all of them with `re.form = NULL`; with
#'   `re.form = NA` the fixed parts of both models alone), structured
#'   covariance terms (`diag()`, `cs()`, `ar1()`, `toep()`) included. Not
#'   available (an error) for a `re.form` selecting some of the terms.
#'   `fitted()` is `predict(type = "response")`.
#' * `residuals(fit, type)`: `"response"` (the default, as glmmTMB): `y`
#'   minus the fitted mean (proportions for binomial-type responses);
#'   `"pearson"`: that divided by the standard deviation of the response,
#'   `Var(y) = (1 - p) V + p (1 - p) mu^2` with the family's variance `V`:
#'   `mu` (poisson), `mu (1 + mu / theta)` (nbinom2), `mu (1 + phi)`
#'   (nbinom1), `mu (1 - mu) / (1 + phi)` (beta), `mu (1 - mu) (phi + n) /
#'   (n (phi + 1))` (betabinomial proportions of `n` trials), `mu (1 - mu)
#'   / n` (binomial), `sigma^2` (gaussian), `mu^2 / shape` (Gamma), and
#'   multiplied by the square root of the prior weights. glmmTMB 1.1.5 gives
#'   the same for poisson, nbinom1 and nbinom2; for beta, betabinomial,
#'   gaussian and Gamma its variance function leaves the dispersion out
#'   (a known glmmTMB problem, corrected in later versions), so its Pearson
#'   residuals differ there. `"working"`: response residuals over `mu.eta`.
#'   `"deviance"` is an error, as in glmmTMB.
#' * `confint(fit, parm, level = 0.95, method = "Wald", component, estimate
#'   = TRUE, full = FALSE, threads = NULL)`: Wald (glmmTMB's default) or
#'   profile intervals: rows
#'   `cond.<coefficient>`, `zi.<coefficient>`, `disp.<coefficient>` (when the
#'   dispersion formula is not `~ 1`; otherwise a row `sigma`, shown with
#'   `full = TRUE` or when asked for in `parm`, whose interval is the image
#'   of the log-scale interval), then `cond.Std.Dev.<name>|<group>` and
#'   `cond.Cor.<a>.<b>|<group>` for the standard deviations and correlations
#'   of the random effects (Wald: glmmTMB's intervals, from its log standard
#'   deviations and correlation parameters all moved at once by their
#'   standard errors, for every covariance structure; no correlation rows for
#'   `diag()` terms, as in glmmTMB; `NA` where an estimate is on its boundary,
#'   a standard deviation of 0 or a correlation of -1 or 1), and likewise
#'   `zi.Std.Dev.<name>|<group>` and `zi.Cor.<a>.<b>|<group>` for the random
#'   effects of the zero-inflation model. When every row belongs to the
#'   conditional model the `cond.` prefix is dropped, as glmmTMB does. A
#'   third column `Estimate` unless `estimate = FALSE`. `parm`: row names or
#'   numbers, `"beta_"` (conditional coefficients) or `"theta_"` (standard
#'   deviations and correlations of both models). `component`: any of `"all"`, `"cond"`,
#'   `"zi"`, `"other"` (dispersion). `method = "profile"`: likelihood-profile
#'   intervals for the same rows, each parameter profiled against a joint
#'   re-optimization of all the others by the fit's Laplace criterion (on
#'   `threads` threads); a profile that levels off before its cutoff (a
#'   zero-inflation coefficient whose zero inflation can vanish) gives an
#'   infinite end, with a warning that says so. glmmTMB's profiles report the
#'   standard deviations on its log scale and hold no rows for correlations;
#'   these are on the scale of the Wald rows.
#' * `tidy(fit, effects, component = c("cond", "zi"), ...)`: the rows of
#'   broom.mixed's `tidy()` for glmmTMB fits, with a `component` column
#'   (`"disp"` may be asked for too; `"ran_pars"` and `"ran_vals"` rows of
#'   the zero-inflation model's random effects have component `"zi"`); `glance()`: `nobs`, `sigma` (left out
#'   when `NA`), `logLik`, `AIC`, `BIC`, `df.residual`.
#'
#' @name glmm_extended_methods
#' @aliases glmmTMB-style-methods
#' @seealso [summary_components], [print.fixef_components()].
#' @examplesIf requireNamespace("glmmTMB", quietly = TRUE)
#' data(Salamanders, package = "glmmTMB")
#' fit <- glmm(count ~ mined + (1 | site), data = Salamanders,
#'             family = "nbinom2", ziformula = ~ mined)
#' fixef(fit)
#' vcov(fit)
#' sigma(fit)
#' logLik(fit)
#' head(predict(fit, type = "response"))
#' predict(fit, data.frame(mined = c("yes", "no")), re.form = NA,
#'         type = "zprob", se.fit = TRUE)
#' predict(fit, data.frame(mined = c("yes", "no"), site = c("R-1", "R-2")),
#'         type = "response", se.fit = TRUE)
#' head(residuals(fit, type = "pearson"))
#' confint(fit)
#' confint(fit, method = "profile", parm = c("cond.minedno", "theta_"))
#' tidy(fit)
NULL

# ---------------------------------------------------------------------------
# What kind of fit, which components.

# Is `object` a glmmTMB-style fit?
is_extended_fit <- function(object) {
  ext <- object$extended
  !is.null(ext) && identical(ext$style, "glmmTMB")
}

# Families with a dispersion parameter (glmmTMB's usesDispersion()).
extended_has_dispersion <- function(family) {
  !family %in% c("poisson", "binomial")
}

# Is the dispersion model intercept-only without an offset (glmmTMB's
# trivialDisp(): a dispformula of ~1)? TRUE also for families without one.
extended_trivial_disp <- function(x) {
  disp <- x$extended$disp
  is.null(disp) || (identical(colnames(disp$X), "(Intercept)") && is.null(disp$offset))
}

# A component's coefficients carry nothing to show (glmmTMB's trivialFixef):
# none, or the intercept alone of the dispersion model.
extended_trivial_fixef <- function(names, comp) {
  length(names) == 0L || (comp == "disp" && identical(names, "(Intercept)"))
}

extended_component <- function(object, comp) {
  switch(comp, zi = object$extended$zi, disp = object$extended$disp)
}

# Named coefficients of the zero-inflation or dispersion model.
component_coef <- function(part) {
  if (is.null(part)) return(numeric(0))
  b <- as.vector(part$beta)
  names(b) <- if (!is.null(colnames(part$X))) colnames(part$X) else names(part$beta)
  b
}

# ---------------------------------------------------------------------------
# Coefficients, covariance, dispersion, likelihood.

# fixef() of a glmmTMB-style fit.
fixef_extended <- function(object) {
  ext <- object$extended
  structure(list(cond = mer_fixef(object), zi = component_coef(ext$zi),
                 disp = component_coef(ext$disp)),
            class = "fixef_components")
}

# The covariance of one component's coefficients, named by the coefficients
# (NULL when the component has none).
vcov_component <- function(object, comp) {
  v <- object$extended$vcov[[comp]]
  if (is.null(v) || length(v) == 0L) return(NULL)
  nms <- if (comp == "cond") colnames(object$X) else colnames(extended_component(object, comp)$X)
  v <- as.matrix(v)
  dimnames(v) <- list(nms, nms)
  v
}

#' Covariance of the coefficients of a glmmTMB-style fit
#'
#' `vcov(fit, full = FALSE)` of a glmmTMB-style fit (a `"glmm"` object with
#' glmmTMB's families, `ziformula` or `dispformula`): with `full = TRUE` one
#' matrix for the coefficients of all components and the covariance
#' parameters of the random effects, as glmmTMB's. Other arguments are an
#' error (emmeans' `complete` is accepted and ignored).
#'
#' The covariance parameters' rows, `theta_<term>.<k>` (the term's bar
#' without spaces, in formula order, `(x || g)` one term `x|g`), first of
#' the conditional model, then of the zero-inflation model, are in glmmTMB's
#' parameterization: a term's log standard deviations, then for an
#' unstructured term the elements below the diagonal of the unit
#' lower-triangular `L` with correlation matrix `cov2cor(L L')` (row by
#' row), for `cs()` `x` with correlation `plogis(x) (1 + a) - a`, `a = 1 /
#' (q - 1)`, for `ar1()` `x` with correlation `x / sqrt(1 + x^2)`, for
#' `toep()` one such `x` per lag. They come by the delta method from the
#' covariance of the fit's own parameters. A parameter on its boundary (a
#' standard deviation of 0, a correlation of -1 or 1) is infinite in that
#' parameterization: its row and column are `NA`, with a warning.
#'
#' @param ... Not used by `print()`.
#' @return `full = FALSE`: an object of class `"vcov_components"`, a list of
#'   covariance matrices `cond`, `zi` (with zero inflation) and `disp` (when
#'   the dispersion formula is not `~ 1`), the last two named as glmmTMB
#'   names them (`"zi~x"`, `"d~x"`). `full = TRUE`: one matrix.
#' @name vcov_components
#' @seealso [glmmTMB-style methods][glmm_extended_methods].
#' @examplesIf requireNamespace("glmmTMB", quietly = TRUE)
#' data(Salamanders, package = "glmmTMB")
#' fit <- glmm(count ~ mined + (1 | site), data = Salamanders,
#'             family = "nbinom2", ziformula = ~ mined)
#' vcov(fit)
#' vcov(fit, full = TRUE)
NULL

# vcov() of a glmmTMB-style fit.
vcov_extended <- function(object, full = FALSE, ...) {
  dots <- list(...)
  dots$complete <- NULL
  if (length(dots)) {
    stop("vcov() of a glmmTMB-style fit takes 'full' only; not used: ",
         paste(names(dots), collapse = ", "), call. = FALSE)
  }
  check_flag(full, "full", "vcov()")
  tag <- c(cond = "", zi = "zi~", disp = "d~")
  if (full) {
    v <- as.matrix(object$extended$vcov_full)
    nms <- rownames(v)
    for (comp in names(tag)) {
      hit <- startsWith(nms, paste0(comp, "."))
      nms[hit] <- paste0(tag[[comp]], substring(nms[hit], nchar(comp) + 2L))
    }
    dimnames(v) <- list(nms, nms)
    return(with_glmmtmb_theta_rows(object, v))
  }
  comps <- c("cond", if (!is.null(object$extended$zi)) "zi",
             if (!extended_trivial_disp(object)) "disp")
  out <- lapply(stats::setNames(nm = comps), function(comp) {
    v <- vcov_component(object, comp)
    if (!is.null(v)) dimnames(v) <- rep(list(paste0(tag[[comp]], rownames(v))), 2L)
    v
  })
  structure(out[lengths(out) > 0L], class = "vcov_components")
}

# vcov(full = TRUE) of a glmmTMB-style fit: its matrix `v` of the
# coefficients with the rows of the covariance parameters appended
# (glmmtmb_full_vcov()).
with_glmmtmb_theta_rows <- function(object, v) {
  V <- object$extended$vcov_all
  zr <- object$extended$zi$random
  parts <- list(
    glmmtmb_cond_theta_part(object),
    if (!is.null(zr)) {
      zf <- object$extended$zi$full_formula
      glmmtmb_theta_part(unname(zr$par), zr$reterms, zf[[length(zf)]])
    })
  glmmtmb_full_vcov(v, V, match(rownames(object$extended$vcov_full), rownames(V)), parts)
}

# The coefficients' covariance `v` with rows and columns for the covariance
# parameters of the random effects appended as glmmTMB has them
# (R/glmmtmb-theta.R; `parts`: glmmtmb_theta_part() of the conditional
# model, then of the zero-inflation model), by the delta method from `V`,
# the covariance of all parameters with mixedrs's covariance parameters
# first; `coef_rows`: the rows of `V` that `v` holds, in its order. Rows of
# parameters on the boundary, where glmmTMB's are infinite, are NA with a
# warning.
glmmtmb_full_vcov <- function(v, V, coef_rows, parts) {
  parts <- parts[lengths(parts) > 0L]
  if (length(parts) == 0L) return(v)
  J <- as.matrix(Matrix::bdiag(lapply(parts, `[[`, "jacobian")))
  names <- unlist(lapply(parts, `[[`, "names"))
  value <- unlist(lapply(parts, `[[`, "value"))
  idx <- seq_len(ncol(J))
  tt <- J %*% V[idx, idx, drop = FALSE] %*% t(J)
  tc <- J %*% V[idx, coef_rows, drop = FALSE]
  k <- nrow(v)
  out <- matrix(NA_real_, k + length(names), k + length(names),
                dimnames = rep(list(c(rownames(v), names)), 2L))
  out[seq_len(k), seq_len(k)] <- v
  out[k + seq_along(names), seq_len(k)] <- tc
  out[seq_len(k), k + seq_along(names)] <- t(tc)
  out[k + seq_along(names), k + seq_along(names)] <- tt
  boundary <- names[!is.finite(value) | rowSums(is.na(J)) > 0L]
  if (length(boundary)) {
    warning("vcov(full = TRUE): no covariance for ", paste(boundary, collapse = ", "),
            ": the estimate is on the boundary of the parameter space (a standard ",
            "deviation of 0 or a correlation of -1 or 1), where glmmTMB's ",
            "parameterization (log standard deviations, transformed correlations) is ",
            "infinite", call. = FALSE)
  }
  out
}

# logLik() of a glmmTMB-style fit: df = every estimated parameter.
logLik_extended <- function(object) {
  n <- mer_nobs(object)
  structure(object$extended$loglik, nobs = n, nall = n, df = object$extended$df,
            class = "logLik")
}

# AIC, BIC, log-likelihood, deviance (minus twice the log-likelihood) and
# residual degrees of freedom, as glmmTMB's summary table.
extended_criterion_table <- function(object) {
  ll <- logLik_extended(object)
  c(AIC = stats::AIC(ll), BIC = stats::BIC(ll), logLik = as.vector(ll),
    deviance = -2 * as.vector(ll), df.resid = mer_nobs(object) - attr(ll, "df"))
}

# The dispersion on glmmTMB 1.1.5's reporting scale (sigma() and
# predict(type = "disp")) from phi = exp(dispersion linear predictor).
disp_scale <- function(family, phi) {
  switch(family, gaussian = sqrt(phi), Gamma = 1 / sqrt(phi), phi)
}

# ---------------------------------------------------------------------------
# Predictions.

extended_predict_types <- c("link", "response", "conditional", "zprob", "zlink", "disp")

# predict() of a glmmTMB-style fit (arguments checked by predict.glmm()).
# As glmmTMB's: without allow.new.levels, a missing grouping value in newdata
# is predicted at the population level for that term (glmmTMB's documented
# way to ask for population-level predictions), and a level not in the fit
# too, with glmmTMB's warning naming the terms.
predict_extended <- function(object, newdata, re.form, allow.new.levels, type, se.fit,
                             na.action, explicit_na, newparams, random.only) {
  check_flag(allow.new.levels, "allow.new.levels", "predict()")
  if (allow.new.levels || is.null(newdata)) {
    return(predict_extended_levels(object, newdata, re.form, allow.new.levels, type, se.fit,
                                   na.action, explicit_na, newparams, random.only))
  }
  new_terms <- character()
  out <- withCallingHandlers(
    predict_extended_levels(object, newdata, re.form, TRUE, type, se.fit, na.action,
                            explicit_na, newparams, random.only),
    mixedrs_new_levels = function(cond) new_terms <<- union(new_terms, cond$term))
  if (length(new_terms)) {
    warning("Predicting new random effect levels for terms: ",
            paste(new_terms, collapse = ", "),
            "\nDisable this warning with 'allow.new.levels=TRUE'", call. = FALSE)
  }
  out
}

predict_extended_levels <- function(object, newdata, re.form, allow.new.levels, type, se.fit,
                                    na.action, explicit_na, newparams, random.only) {
  type <- match.arg(type, extended_predict_types)
  if (!is.null(newparams)) {
    stop("'newparams' is not available for glmmTMB-style fits", call. = FALSE)
  }
  check_flag(random.only, "random.only", "predict()")
  if (random.only) {
    stop("'random.only' is not available for glmmTMB-style fits", call. = FALSE)
  }
  check_flag(se.fit, "se.fit", "predict()")
  population <- !is.null(re.form) && (identical(re.form, NA) || is_zero_formula(re.form))
  zi_random <- has_zi_random(object)
  if (zi_random && !is.null(re.form) && !population) {
    stop("with random effects in 'ziformula', re.form must be NULL (every random ",
         "effect) or NA/~0 (none), as in glmmTMB; not ", deparse1(re.form), call. = FALSE)
  }
  na.action <- check_na_action(na.action)
  # the conditional model's linear predictor, padded and named as lme4-style
  # predictions are
  eta <- mer_predict(object, newdata, re.form, allow.new.levels, "link", FALSE,
                     na.action, explicit_na)
  ext <- object$extended
  if (is.null(newdata)) {
    na_act <- fit_na_action(object, na.action, explicit_na)
    pad <- function(v) {
      v <- as.vector(v)
      names(v) <- mer_obs_names(object, length(v))
      stats::napredict(na_act, v)
    }
    zeta <- if (!is.null(ext$zi)) {
      pad(if (zi_random && population) zi_fixed_eta(ext$zi) else ext$zi$eta)
    }
    phi <- if (!is.null(ext$disp)) pad(ext$disp$phi)
    X <- if (se.fit) pad_rows(object$X, na_act)
    Xz <- if (se.fit && !is.null(ext$zi)) pad_rows(ext$zi$X, na_act)
  } else {
    newdata <- check_newdata(newdata)
    rows <- match(names(eta), rownames(newdata))
    if (anyNA(rows)) rows <- seq_along(eta)
    zeta <- phi <- X <- Xz <- NULL
    if (!is.null(ext$zi)) {
      d <- component_design(ext$zi, newdata, "zero-inflation")
      zeta <- d$eta[rows]
      if (zi_random && !population) {
        zeta <- zeta + zi_random_part(object, newdata[rows, , drop = FALSE],
                                      allow.new.levels)
      }
      Xz <- d$X[rows, , drop = FALSE]
    }
    if (!is.null(ext$disp)) phi <- exp(component_design(ext$disp, newdata, "dispersion")$eta[rows])
    if (se.fit) X <- fixed_design(object, newdata, stats::na.pass)$X[rows, , drop = FALSE]
  }
  nms <- names(eta)
  eta <- as.vector(eta)
  fam <- object$family
  mu <- fam$linkinv(eta)
  p <- if (is.null(zeta)) rep(0, length(eta)) else stats::plogis(zeta)
  fit <- switch(type,
                link = eta,
                conditional = mu,
                response = (1 - p) * mu,
                zprob = p,
                zlink = if (is.null(zeta)) rep(-Inf, length(eta)) else zeta,
                disp = if (is.null(phi)) rep(1, length(eta)) else disp_scale(ext$family, phi))
  names(fit) <- nms
  if (!se.fit) return(fit)
  pred_rows <- if (is.null(newdata)) list(na_action = na_act) else
    list(newdata = newdata[rows, , drop = FALSE])
  se <- if (type == "disp") predict_se_extended_disp(object, pred_rows, phi, length(fit)) else
    if (population) predict_se_extended(object, type, X, Xz, eta, zeta, mu, p) else
      predict_se_extended_re(object, type, X, Xz, eta, zeta, mu, p, re.form, pred_rows,
                             allow.new.levels)
  names(se) <- nms
  list(fit = fit, se.fit = se)
}

# re.form = ~0 (population-level predictions, as re.form = NA).
is_zero_formula <- function(f) {
  inherits(f, "formula") && length(f) == 2L && is.numeric(f[[2L]]) && f[[2L]] == 0
}

# The rows of a model matrix padded with NA rows as napredict() pads vectors.
pad_rows <- function(X, na_act) {
  if (is.null(na_act) || !inherits(na_act, "exclude")) return(X)
  idx <- stats::napredict(na_act, seq_len(nrow(X)))
  out <- X[idx, , drop = FALSE]
  out[is.na(idx), ] <- NA_real_
  out
}

# Linear predictor and model matrix of the zero-inflation or dispersion model
# for `newdata`, from the terms, factor levels and contrasts stored with the
# fit (offset included).
component_design <- function(part, newdata, what) {
  tt <- part$terms
  if (is.null(tt)) {
    stop("the fit does not carry the terms of its ", what, " model, needed to predict ",
         "for newdata", call. = FALSE)
  }
  tt <- stats::delete.response(tt)
  missing_vars <- setdiff(all.vars(tt), names(newdata))
  env <- environment(tt)
  missing_vars <- missing_vars[!vapply(missing_vars, exists, logical(1),
                                       envir = if (is.null(env)) globalenv() else env)]
  if (length(missing_vars)) {
    stop("'newdata' lacks the variable(s) ", paste(sQuote(missing_vars, FALSE), collapse = ", "),
         " of the ", what, " model (", deparse1(part$formula), ")", call. = FALSE)
  }
  mf <- stats::model.frame(tt, newdata, na.action = stats::na.pass, xlev = part$xlevels)
  X <- stats::model.matrix(tt, mf, contrasts.arg = attr(part$X, "contrasts"))
  if (!identical(colnames(X), colnames(part$X))) {
    stop("the ", what, " model's columns built from 'newdata' (",
         paste(colnames(X), collapse = ", "), ") differ from the fit's (",
         paste(colnames(part$X), collapse = ", "), ")", call. = FALSE)
  }
  off <- stats::model.offset(mf)
  eta <- drop(X %*% as.vector(part$beta)) + if (is.null(off)) 0 else off
  list(eta = eta, X = X)
}

# Delta-method standard errors of population-level predictions from the
# covariance of the conditional and zero-inflation coefficients.
predict_se_extended <- function(object, type, X, Xz, eta, zeta, mu, p) {
  fam <- object$family
  n <- length(eta)
  zero <- function(k) matrix(0, n, k)
  pz <- if (is.null(Xz)) 0L else ncol(Xz)
  if (type %in% c("zlink", "zprob") && is.null(Xz)) return(rep(NA_real_, n))
  dmu <- fam$mu.eta(eta)
  G <- switch(type,
              link = cbind(X, zero(pz)),
              conditional = cbind(X * dmu, zero(pz)),
              zlink = cbind(zero(ncol(X)), Xz),
              zprob = cbind(zero(ncol(X)), Xz * stats::dlogis(zeta)),
              response = cbind(X * ((1 - p) * dmu),
                               if (pz) Xz * (-mu * stats::dlogis(zeta)) else zero(0)))
  V <- extended_coef_vcov(object, with_zi = pz > 0L)
  sqrt(pmax(rowSums((G %*% V) * G), 0))
}

# Covariance of c(cond, zi) coefficients from the fit's full covariance.
extended_coef_vcov <- function(object, with_zi) {
  full <- as.matrix(object$extended$vcov_full)
  keep <- c(paste0("cond.", colnames(object$X)),
            if (with_zi) paste0("zi.", colnames(object$extended$zi$X)))
  missing_rows <- setdiff(keep, rownames(full))
  if (length(missing_rows)) {
    stop("the fit's covariance lacks rows ", paste(missing_rows, collapse = ", "),
         call. = FALSE)
  }
  full[keep, keep, drop = FALSE]
}

# ---------------------------------------------------------------------------
# Residuals.

# The observed response on the scale of the fitted means (proportions for a
# two-column binomial-type response, 0/1 for a factor), one per fitted row.
extended_observed <- function(object) {
  y <- stats::model.response(object$frame)
  if (!is.null(dim(y)) && ncol(y) == 2L) {
    y <- y[, 1L] / (y[, 1L] + y[, 2L])
  } else if (is.factor(y)) {
    y <- as.numeric(as.integer(y) > 1L)
  }
  as.vector(y)
}

# Variance of one unit of the response given the random effects, before
# zero inflation, on the fitted-mean scale (see glmm_extended_methods).
extended_variance <- function(family, mu, phi, n) {
  switch(family,
         poisson = mu,
         nbinom2 = mu * (1 + mu / phi),
         nbinom1 = mu * (1 + phi),
         beta = mu * (1 - mu) / (1 + phi),
         betabinomial = mu * (1 - mu) * (phi + n) / (phi + 1),
         binomial = mu * (1 - mu),
         gaussian = phi,
         Gamma = mu^2 / phi,
         stop("Pearson residuals are not available for the family '", family, "'",
              call. = FALSE))
}

# residuals() of a glmmTMB-style fit (unpadded, unnamed).
residuals_extended <- function(object, type) {
  ext <- object$extended
  y <- extended_observed(object)
  mu <- as.vector(object$mu)
  p <- if (is.null(ext$zi)) 0 else as.vector(ext$zi$prob)
  r <- y - (1 - p) * mu
  switch(type,
         response = r,
         working = r / object$family$mu.eta(as.vector(object$eta)),
         pearson = {
           phi <- if (is.null(ext$disp)) 1 else as.vector(ext$disp$phi)
           n <- if (is.null(ext$n_trials)) 1 else as.vector(ext$n_trials)
           v <- extended_variance(ext$family, mu, phi, n)
           v <- (1 - p) * v + p * (1 - p) * mu^2
           w <- if (is.null(ext$prior_weights)) 1 else as.vector(ext$prior_weights)
           if (ext$family %in% c("binomial", "betabinomial")) w <- w * n
           r * sqrt(w / v)
         },
         deviance = stop("deviance residuals are not defined for glmmTMB-style fits ",
                         "(nor by glmmTMB for these families): use type = \"response\" ",
                         "or \"pearson\"", call. = FALSE),
         partial = stop("partial residuals are not available for glmmTMB-style fits",
                        call. = FALSE))
}

# ---------------------------------------------------------------------------
# Confidence intervals.

# confint() of a glmmTMB-style fit.
confint_extended <- function(object, parm, level = 0.95, method = "Wald",
                             component = c("all", "cond", "zi", "other"),
                             estimate = TRUE, full = FALSE, threads = NULL, ...) {
  # (the method first: with method = "boot" an 'nsim' is not the problem)
  method <- match.arg(method, c("Wald", "wald", "profile", "uniroot", "boot"))
  if (method %in% c("uniroot", "boot")) {
    stop("confint(method = \"", method, "\") is not available for glmmTMB-style fits; ",
         "use method = \"Wald\" or \"profile\"", call. = FALSE)
  }
  check_no_dots(..., caller = "confint() of a glmmTMB-style fit")
  n_threads <- check_threads(threads)
  check_level(level)
  check_flag(estimate, "estimate", "confint()")
  check_flag(full, "full", "confint()")
  component <- match.arg(component, several.ok = TRUE)
  has <- function(comp) any(c(comp, "all") %in% component)
  a <- (1 - level) / 2
  a <- c(a, 1 - a)
  q <- stats::qnorm(a)
  pct <- paste(format(100 * a, trim = TRUE, scientific = FALSE, digits = 3), "%")
  est <- fixef_extended(object)
  full_v <- as.matrix(object$extended$vcov_full)
  rows <- list()
  wald_rows <- function(comp) {
    b <- est[[comp]]
    if (!length(b)) return(NULL)
    v <- vcov_component(object, comp)
    se <- sqrt(diag(v))
    m <- cbind(b + se %o% q, b)
    rownames(m) <- paste(comp, names(b), sep = ".")
    m
  }
  for (comp in c("cond", "zi")) if (has(comp)) rows[[comp]] <- wald_rows(comp)
  fam <- object$extended$family
  if (has("other") && extended_has_dispersion(fam)) {
    if (!extended_trivial_disp(object)) {
      rows$disp <- wald_rows("disp")
    } else {
      bd <- est$disp[[1L]]
      se <- sqrt(full_v["disp.(Intercept)", "disp.(Intercept)"])
      ends <- sort(disp_scale(fam, exp(bd + q * se)))
      rows$sigma <- matrix(c(ends, object$extended$sigma), 1L,
                           dimnames = list("sigma", NULL))
    }
  }
  if (has("cond")) rows$sd <- sd_wald_rows(object, q)
  if (has("zi")) rows$zi_sd <- sd_wald_rows(object, q, "zi")
  ci <- do.call(rbind, unname(rows))
  colnames(ci) <- c(pct, "Estimate")
  if (missing(parm) || is.null(parm)) {
    if (!full) ci <- ci[rownames(ci) != "sigma", , drop = FALSE]
  } else {
    ci <- ci[confint_rows(parm, ci, object), , drop = FALSE]
  }
  if (method == "profile" && nrow(ci)) {
    ci[, 1:2] <- extended_profile_rows(object, rownames(ci), level, n_threads)
  }
  if (!estimate) ci <- ci[, 1:2, drop = FALSE]
  if (nrow(ci) && all(startsWith(rownames(ci), "cond."))) {
    rownames(ci) <- substring(rownames(ci), 6L)
  }
  ci
}

# Wald rows of the random effects' standard deviations and correlations,
# as glmmTMB computes them: every one of a term's parameters in glmmTMB's
# parameterization (R/glmmtmb-theta.R: log standard deviations, transformed
# correlations) is moved at once by -+ q times its standard error and the
# standard deviations and correlations are read off at both ends (each end
# sorted); a diag() term has no correlation rows, as in glmmTMB. The
# standard errors come by the delta method from the covariance of the fit's
# own covariance parameters (par_covariance()). NA where that covariance is
# not available or the term's estimate is on its boundary (a standard
# deviation of 0, a correlation of -1 or 1), where glmmTMB's parameters are
# infinite. `comp`: "cond" (rows "cond.Std.Dev.<name>|<group>",
# "cond.Cor.<a>.<b>|<group>") or "zi" (the zero-inflation model's random
# effects, rows "zi.Std.Dev.<name>|<group>", "zi.Cor.<a>.<b>|<group>" as
# glmmTMB names them; NULL when it has none).
sd_wald_rows <- function(object, q, comp = "cond") {
  fit <- if (comp == "zi") zi_component_fit(object) else object
  if (is.null(fit)) return(NULL)
  vc <- varcorr_lme4(fit)
  if (!length(vc)) return(NULL)
  par <- unname(cov_par(fit))
  v_par <- par_covariance(object, comp)
  n_par <- par_sizes(fit$reterms)
  starts <- cumsum(c(0L, n_par))[seq_along(n_par)]
  grp <- names(fit$flist)[attr(fit$flist, "assign")]
  out <- list()
  for (i in seq_along(vc)) {
    rt <- fit$reterms[[i]]
    sds <- attr(vc[[i]], "stddev")
    nc <- length(sds)
    cc <- attr(vc[[i]], "correlation")
    with_cor <- nc > 1L && term_structure_of(rt)$type != "diag"
    lab <- c(paste0(comp, ".Std.Dev.", names(sds)),
             if (with_cor) {
               nn <- outer(colnames(cc), rownames(cc), paste, sep = ".")
               paste0(comp, ".Cor.", nn[lower.tri(nn)])
             })
    est <- c(sds, if (with_cor) cc[lower.tri(cc)])
    lims <- matrix(NA_real_, length(est), 2L)
    idx <- starts[i] + seq_len(n_par[i])
    internal_of <- function(p) glmmtmb_term_theta(rt, p)
    internal <- internal_of(par[idx])
    values_at <- function(v) glmmtmb_term_values(rt, v)[seq_along(est)]
    ok <- all(is.finite(internal)) && !is.null(v_par) && all(is.finite(v_par[idx, idx])) &&
      isTRUE(all.equal(unname(values_at(internal)), unname(est), tolerance = 1e-8))
    if (ok) {
      J <- numeric_jacobian(internal_of, par[idx])
      v <- J %*% v_par[idx, idx, drop = FALSE] %*% t(J)
      se <- sqrt(pmax(diag(v), 0))
      ends <- cbind(values_at(internal + q[1L] * se), values_at(internal + q[2L] * se))
      if (all(is.finite(ends))) lims <- t(apply(ends, 1L, sort))
    }
    out[[i]] <- matrix(c(lims, est), length(est),
                       dimnames = list(paste0(lab, "|", grp[i]), NULL))
  }
  do.call(rbind, out)
}

# The fit seen as a model of its zero-inflation random effects, for what
# reads a fit's terms and covariance parameters (varcorr_lme4(),
# mer_var_par_names(), tidy_ran_pars()): zi_random_view() with the
# zero-inflation model's theta (absolute: the fit's sigma is 1) and par.
# NULL without random effects in 'ziformula'.
zi_component_fit <- function(object) {
  zr <- object$extended$zi$random
  if (is.null(zr)) return(NULL)
  view <- zi_random_view(object)
  view$theta <- stats::setNames(zr$theta, theta_names(zr$reterms))
  view$par <- zr$par
  view$sigma <- 1
  view
}

# Covariance of a glmmTMB-style fit's estimated covariance parameters (its
# `par`) of the conditional model (`comp = "cond"`) or of the zero-inflation
# model ("zi"): their block of twice the inverse Hessian of the deviance over
# all parameters (extended_covariance()). NULL where the fit has none.
par_covariance <- function(object, comp = "cond") {
  V <- object$extended$vcov_all
  if (is.null(V)) return(NULL)
  n_cond <- length(cov_par(object))
  idx <- if (comp == "zi") {
    zr <- object$extended$zi$random
    if (is.null(zr)) return(NULL)
    n_cond + seq_len(zr$n_par)
  } else {
    seq_len(n_cond)
  }
  unname(V[idx, idx, drop = FALSE])
}

# Rows of the interval table selected by `parm`: numbers, row names (with or
# without the "cond." prefix), "beta_" (conditional coefficients) or
# "theta_" (random-effects standard deviations and correlations of the
# conditional and the zero-inflation model).
confint_rows <- function(parm, ci, object) {
  rn <- rownames(ci)
  if (is.numeric(parm)) {
    bad <- parm[parm < 1 | parm > length(rn) | parm != round(parm)]
    if (length(bad)) stop("'parm' numbers must be between 1 and ", length(rn), call. = FALSE)
    return(rn[parm])
  }
  if (!is.character(parm)) stop("'parm' must be row numbers or names", call. = FALSE)
  out <- character(0)
  for (p in parm) {
    hit <- if (p == "beta_") {
      paste0("cond.", colnames(object$X))
    } else if (p == "theta_") {
      # as glmmTMB's "theta_": the variance parameters of both models
      rn[grepl("^(cond|zi)\\.(Std\\.Dev|Cor)\\.", rn)]
    } else if (p %in% rn) {
      p
    } else if (paste0("cond.", p) %in% rn) {
      paste0("cond.", p)
    } else {
      stop("unknown 'parm' ", sQuote(p, FALSE), "; the rows are ",
           paste(rn, collapse = ", "), call. = FALSE)
    }
    out <- c(out, hit)
  }
  out
}

# ---------------------------------------------------------------------------
# Tidiers.

# tidy() of a glmmTMB-style fit, with broom.mixed's `component` column.
tidy_extended <- function(x, effects = c("ran_pars", "fixed"), scales = NULL,
                          exponentiate = FALSE, ran_prefix = NULL, conf.int = FALSE,
                          conf.level = 0.95, conf.method = "Wald",
                          component = c("cond", "zi"), ...) {
  check_no_dots(..., caller = "tidy() of a glmmTMB-style fit")
  kinds <- c("ran_pars", "fixed", "ran_vals")
  unknown <- setdiff(effects, kinds)
  if (length(unknown)) {
    stop("unknown effect type(s) ", paste(dQuote(unknown, FALSE), collapse = ", "),
         "; for glmmTMB-style fits 'effects' may hold ",
         paste(dQuote(kinds, FALSE), collapse = ", "), call. = FALSE)
  }
  bad <- setdiff(component, c("cond", "zi", "disp"))
  if (length(bad)) {
    stop("unknown component(s) ", paste(dQuote(bad, FALSE), collapse = ", "),
         "; 'component' may hold \"cond\", \"zi\", \"disp\"", call. = FALSE)
  }
  rscale <- tidy_ran_scale(effects, scales)
  check_flag(exponentiate, "exponentiate", "tidy()")
  check_flag(conf.int, "conf.int", "tidy()")
  if (conf.int) check_level(conf.level)
  if (!identical(conf.method, "Wald")) {
    stop("only Wald intervals are available for glmmTMB-style fits", call. = FALSE)
  }
  tabs <- summary_extended(x)$coefficients
  out <- list()
  if ("fixed" %in% effects) {
    pieces <- lapply(intersect(component, names(tabs)), function(comp) {
      tab <- tabs[[comp]]
      if (!length(tab)) return(NULL)
      res <- data.frame(effect = "fixed", component = comp, term = rownames(tab),
                        estimate = unname(tab[, 1L]), std.error = unname(tab[, 2L]),
                        statistic = unname(tab[, 3L]), p.value = unname(tab[, 4L]),
                        stringsAsFactors = FALSE)
      if (conf.int) {
        m <- stats::qnorm((1 + conf.level) / 2)
        res$conf.low <- res$estimate - m * res$std.error
        res$conf.high <- res$estimate + m * res$std.error
      }
      if (exponentiate) {
        for (v in intersect(c("estimate", "conf.low", "conf.high"), names(res))) {
          res[[v]] <- exp(res[[v]])
        }
        res$std.error <- res$std.error * res$estimate
      }
      res
    })
    out$fixed <- do.call(rbind, pieces)
  }
  if ("ran_pars" %in% effects) {
    # the conditional model's rows, then the zero-inflation model's (as
    # broom.mixed lays out a glmmTMB fit's)
    pieces <- lapply(intersect(c("cond", "zi"), component), function(comp) {
      tidy_ran_pars_component(x, comp, rscale, ran_prefix, conf.int, conf.level)
    })
    out$ran_pars <- do.call(rbind, pieces)
  }
  if ("ran_vals" %in% effects && any(c("cond", "zi") %in% component)) {
    rv <- tidy_ran_vals(x, conf.int, conf.level, "Wald")
    if (is.null(rv$component)) rv$component <- rep("cond", nrow(rv))
    out$ran_vals <- rv[rv$component %in% component, , drop = FALSE]
  }
  out <- out[lengths(out) > 0L]
  order <- c("effect", "component", "group", "level", "term", "estimate", "std.error",
             "statistic", "p.value", "conf.low", "conf.high")
  cols <- intersect(order, unique(unlist(lapply(out, names))))
  out <- lapply(out, function(p) {
    for (cn in setdiff(cols, names(p))) {
      p[[cn]] <- if (cn %in% c("group", "level")) NA_character_ else NA_real_
    }
    p[cols]
  })
  res <- do.call(rbind, unname(out))
  rownames(res) <- NULL
  as_tidy_frame(res)
}

# The "ran_pars" rows of tidy() of a glmmTMB-style fit for one model
# component (`comp`: "cond", or "zi" for the random effects of the
# zero-inflation model), with `component` set; NULL when it has none. With
# `conf.int` the standard deviations get the Wald intervals of confint()
# (glmmTMB's), the correlations NA.
tidy_ran_pars_component <- function(x, comp, rscale, ran_prefix, conf.int, conf.level) {
  fit <- if (comp == "zi") zi_component_fit(x) else x
  if (is.null(fit) || !length(varcorr_lme4(fit))) return(NULL)
  rp <- tidy_ran_pars(fit, rscale, ran_prefix, conf.int = FALSE, conf.level, "Wald", NULL,
                      order = "cov.last")
  rp <- rp[rp$group != "Residual", , drop = FALSE]
  if (comp == "cond" && identical(x$extended$family, "gaussian")) {
    # the residual standard deviation (NA with a dispersion model), as
    # broom.mixed shows it for glmmTMB's gaussian fits
    s <- x$extended$sigma
    rp[nrow(rp) + 1L, ] <- list("ran_pars", "Residual",
                                paste0(if (!is.null(ran_prefix)) ran_prefix[1L]
                                       else if (rscale == "sdcor") "sd" else "var",
                                       "__Observation"),
                                if (rscale == "sdcor") s else s^2)
  }
  rp$component <- rep(comp, nrow(rp))
  if (conf.int) {
    ci <- confint_extended(x, level = conf.level, component = comp)
    sd_rows <- ci[grepl(paste0("^(", comp, "\\.)?Std\\.Dev\\."), rownames(ci)), , drop = FALSE]
    rp$conf.low <- rp$conf.high <- NA_real_
    is_sd <- startsWith(rp$term, paste0(if (is.null(ran_prefix)) "sd" else ran_prefix[1L], "__"))
    if (rscale == "sdcor" && sum(is_sd) == nrow(sd_rows)) {
      rp$conf.low[is_sd] <- unname(sd_rows[, 1L])
      rp$conf.high[is_sd] <- unname(sd_rows[, 2L])
    }
  }
  rp
}

# glance() of a glmmTMB-style fit (broom.mixed's columns; sigma left out
# when NA, as there).
glance_extended <- function(x) {
  ll <- logLik_extended(x)
  res <- data.frame(nobs = mer_nobs(x), sigma = x$extended$sigma,
                    logLik = as.numeric(ll), AIC = stats::AIC(ll), BIC = stats::BIC(ll),
                    df.residual = as.integer(mer_nobs(x) - attr(ll, "df")))
  if (is.na(res$sigma)) res$sigma <- NULL
  as_tidy_frame(res)
}
