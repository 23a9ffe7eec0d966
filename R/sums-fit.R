# Linear mixed models fitted from grouped sums, without the rows.
#
# An LMM depends on its rows only through the weighted cross-products
# A = [Z X y]'W[Z X y], and those are GROUP BY sums: per level of each
# grouping factor (Z_g'WZ_g and F'WZ_g, F = [X, y - offset]), per co-occurring
# level pair of two factors (Z_g'WZ_h) and totals (F'WF), with n and
# sum(log w) for the criterion. A database computes them, only these
# aggregates reach R, and the engine (src/rust/linalg/grouped_sums.rs) fits
# the model from them. Everything that needs only A works on such a fit:
# estimates, vcov, logLik, VarCorr, ranef with conditional variances,
# Satterthwaite and Kenward-Roger df, profiles; what needs rows (fitted
# values, residuals, simulation, bootstrap, influence) is an error that says so.
#
# Shifts: the sums may be of x_j - x_shift[j] and y - offset - y_shift (for
# precision; the intercept column is never shifted). With X_c = X T,
# T = I - e_1 x_shift', the engine estimates beta_c and
# beta = T beta_c + e_1 y_shift, vcov(beta) = T vcov(beta_c) T';
# theta, sigma, the likelihood and the random effects are unchanged.

#' Fit a linear mixed model from grouped sums
#'
#' Fits the model that [lmm()] would fit to a set of rows, from the weighted
#' sums that determine it (computed where the data live, e.g. by a database's
#' `GROUP BY`): per level of each grouping factor, per co-occurring pair of
#' levels of two grouping factors, and totals. The result is an `"lmm"` fit
#' whose estimates, standard errors, log-likelihood, variance components,
#' conditional modes and variances, Satterthwaite and Kenward-Roger degrees
#' of freedom and likelihood profiles equal those of `lmm()` on the rows.
#' Methods that need the rows themselves (fitted values, residuals,
#' `simulate()`, [bootmm()], influence measures, plots) are errors that say
#' so; `predict()` needs `newdata` (a data frame, or a database table for
#' predictions computed there: see [predict.lmm()]).
#'
#' @param inputs The row-free model inputs: a list with `formula` (as
#'   `lmm()` stores it, `||` expanded), `n` (rows used), `n_dropped` (rows
#'   dropped for missing values), `X_names`, `X_assign` and `X_contrasts` (the
#'   column names and the `"assign"` and `"contrasts"` attributes of the
#'   fixed-effects model matrix), `reterms` (per random-effects term
#'   `list(group, term, factor, cnms)` and optionally `structure`, with
#'   `factor` a length-0 factor carrying the levels), `flist` (named list of
#'   length-0 factors with the attribute `"assign"` mapping terms to
#'   factors), `has_weights`, `has_offset`, `x_shift` (one per fixed-effect
#'   column, 0 for the intercept), `y_shift`, `sums` (see Details),
#'   `source` (a short description of where the sums were computed, shown by
#'   `print()`) and optionally `xlevels` (a named list: the levels of the
#'   factor variables, needed by type III hypotheses of terms contained
#'   in others and by predictions for new data).
#' @param REML Logical: fit by REML (default) or maximum likelihood.
#' @param control Settings from [lmmControl()].
#' @param start Optional starting values of the covariance parameters, as
#'   for [lmm()].
#' @param verbose Logical or integer: print each optimizer evaluation.
#' @details `inputs$sums` is a list, all sums weighted by the prior weights
#'   `w` over the rows used: `n`, `sum_log_w` (the sum of `log(w)`, 0
#'   without weights), `p` (fixed-effect columns), `ff` (the
#'   `(p+1) x (p+1)` matrix of `sum(w f f')` with
#'   `f = (x_1, ..., x_p, y - offset - y_shift)`), `factors` (per grouping
#'   factor in the order of `flist`: `n_levels`, `q` (its terms' columns
#'   together), `zz` (per level the `q x q` matrix `sum(w z z')`,
#'   column-major, level after level) and `fz` (per level the `(p+1) x q`
#'   matrix `sum(w f z')`)) and `pairs` (per pair of factors `i < j`: `i`,
#'   `j`, the level codes `li`, `lj` of each co-occurring level pair and `zz`,
#'   per pair the `q_i x q_j` matrix `sum(w z_i z_j')`), and optionally
#'   `xx` (the `(p+1) x (p+1)` matrix of unweighted sums `sum(g g')`,
#'   `g = (1, x_1 - x_shift_1, ..., x_p - x_shift_p)`) and `x_binary` (per
#'   fixed-effect column, `TRUE` when it takes only the values 0 and 1).
#'
#'   As [lmm()], the fit drops collinear fixed-effect columns (the rule of
#'   R's pivoted QR, applied to the unweighted `X'X`) according to
#'   `check.rankX`, and checks the columns' scales according to
#'   `check.scaleX`. Both use `xx` when given; without it they use the
#'   sums in `ff`, which with prior weights are weighted: the rank rule then
#'   runs on `X'WX` (the same columns unless one is within rounding of the
#'   tolerance), and the scale check is an error (set `check.scaleX =
#'   "ignore"`). Without `x_binary`, the 0/1 columns are read from the
#'   coding (the intercept and columns of factors coded by
#'   `contr.treatment`), so a numeric 0/1 variable counts as continuous.
#'   `anova()`'s type I and II hypotheses use the unweighted `X'X` (as
#'   lmerTest), from `xx` or, without prior weights, from `ff`.
#' @return An object of class `c("lmm", "mixedrs_fit")` as from [lmm()], with
#'   `sums` (the sums), `source`, `x_shift`, `y_shift`, `n_dropped`, and
#'   without the rows (`frame`, `y`, `fitted`, `resid`, `weights`, `offset`
#'   are `NULL`; `X` has no rows but its column names and attributes).
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' # the sums of sleepstudy's rows, formed here in R (a database would
#' # compute them with GROUP BY)
#' data("sleepstudy", package = "lme4")
#' X <- cbind("(Intercept)" = 1, Days = sleepstudy$Days)
#' f <- cbind(X, sleepstudy$Reaction)
#' g <- sleepstudy$Subject
#' z <- X
#' zz <- unlist(lapply(split(seq_len(nrow(z)), g), function(i) crossprod(z[i, ])))
#' fz <- unlist(lapply(split(seq_len(nrow(z)), g), function(i) crossprod(f[i, ], z[i, ])))
#' flist <- list(Subject = factor(levels = levels(g)))
#' attr(flist, "assign") <- 1L
#' inputs <- list(
#'   formula = Reaction ~ Days + (Days | Subject), n = 180, n_dropped = 0,
#'   X_names = colnames(X), X_assign = c(0L, 1L), X_contrasts = NULL,
#'   reterms = list(list(group = "Subject", term = "Days | Subject",
#'                       factor = flist$Subject, cnms = colnames(X))),
#'   flist = flist, has_weights = FALSE, has_offset = FALSE,
#'   x_shift = c(0, 0), y_shift = 0,
#'   sums = list(n = 180, sum_log_w = 0, p = 2L, ff = crossprod(f),
#'               factors = list(list(n_levels = 18L, q = 2L, zz = zz, fz = fz)),
#'               pairs = list()),
#'   source = "sleepstudy, summed in R")
#' fit <- lmm_sums_fit(inputs)
#' fit
#' fixef(fit)
#' all.equal(fixef(fit), fixef(lmm(Reaction ~ Days + (Days | Subject), sleepstudy)))
#' @export
lmm_sums_fit <- function(inputs, REML = TRUE, control = lmmControl(), start = NULL,
                         verbose = FALSE) {
  mc <- match.call()
  if (missing(control)) control <- default_control("lmm")
  if (!is.logical(REML) || length(REML) != 1L || is.na(REML)) {
    stop("'REML' must be TRUE or FALSE, not ", deparse1(REML), call. = FALSE)
  }
  control <- as_fit_control(control, "lmm")
  verbose <- max(check_verbose(verbose), control$opt_verbose)
  inputs <- check_sums_inputs(inputs)
  check_nlev_gtreq_5(inputs$flist, control$check.nlev.gtreq.5)
  check_grouping(inputs$flist, lapply(inputs$reterms, function(rt) {
    rt$Z <- matrix(0, 0L, length(rt$cnms))
    rt
  }), inputs$n, control)
  # lmm()'s fixed-effects checks, after the grouping checks as in lmm()
  inputs <- sums_fixed_checks(inputs, control)
  theta_start <- check_start(start, inputs$reterms)
  raw <- lmm_fit_raw(inputs, REML, control, theta_start, verbose)
  # The call shows the formula, as an lmm() call does (print, anova's headings).
  mc$formula <- inputs$formula
  fit <- sums_fit_object(mc, inputs, raw, REML, control$optimizer)
  report_convergence(fit$optinfo, control)
  report_confounded_terms(inputs, REML, control)
  fit
}

# TRUE for a fit made from grouped sums (no rows).
is_sums_fit <- function(object) !is.null(object$sums)

# TRUE for a fit to a database table: from grouped sums (lmm) or to the
# rows grouped by covariate pattern (glmm, R/sql-compress.R).
is_table_fit <- function(object) is_sums_fit(object) || !is.null(object$table)

# Where a fit to a database table was computed, for print()'s Data line.
table_source <- function(object) {
  paste0(object$source, if (is_sums_fit(object)) {
    " (fitted from aggregates: grouped sums, no rows in R)"
  } else {
    paste0(" (fitted to its ", format(object$table$n, big.mark = ","), " rows grouped ",
           "into ", format(object$table$patterns, big.mark = ","),
           " covariate patterns; no rows in R)")
  })
}

# An error for `what` on a fit to a database table: it needs the rows.
require_rows <- function(object, what) {
  if (!is_table_fit(object)) return(invisible(NULL))
  if (is_sums_fit(object)) {
    how <- "from aggregates computed where the data live"
    moved <- "only grouped sums reached R"
  } else {
    how <- "to the rows grouped by covariate pattern where the data live"
    moved <- "only the patterns reached R"
  }
  stop(what, " needs the rows of the data, but this model was fitted ", how,
       " (", object$source, "): ", moved, ". To get it, pull the rows into R ",
       "(e.g. with dplyr::collect()) and fit them with ",
       if (inherits(object, "glmm")) "glmm()" else "lmm()", call. = FALSE)
}

# The inputs checked, with every number in the type the engine reads.
check_sums_inputs <- function(inputs) {
  if (!is.list(inputs)) {
    stop("'inputs' must be a list (the row-free model inputs), not ",
         describe_class(inputs), call. = FALSE)
  }
  need <- c("formula", "n", "X_names", "X_assign", "reterms", "flist",
            "has_weights", "has_offset", "x_shift", "y_shift", "sums", "source")
  missing_el <- setdiff(need, names(inputs))
  if (length(missing_el)) {
    stop("'inputs' lacks ", quote_names(missing_el), call. = FALSE)
  }
  if (!inherits(inputs$formula, "formula")) {
    stop("'inputs$formula' must be a formula", call. = FALSE)
  }
  p <- length(inputs$X_names)
  sums <- inputs$sums
  if (!is.list(sums) || !all(c("n", "sum_log_w", "p", "ff", "factors") %in% names(sums))) {
    stop("'inputs$sums' must be a list with n, sum_log_w, p, ff, factors and pairs",
         call. = FALSE)
  }
  number <- function(x, what) {
    if (!is.numeric(x) || length(x) != 1L || !is.finite(x)) {
      stop("'", what, "' must be a single finite number, not ", deparse1(x), call. = FALSE)
    }
    as.double(x)
  }
  n <- number(inputs$n, "inputs$n")
  if (!identical(n, number(sums$n, "inputs$sums$n"))) {
    stop("'inputs$n' (", n, ") and 'inputs$sums$n' (", sums$n, ") differ", call. = FALSE)
  }
  if (!identical(as.integer(sums$p), p)) {
    stop("'inputs$sums$p' (", deparse1(sums$p), ") must equal the number of ",
         "fixed-effect columns, length(inputs$X_names) = ", p, call. = FALSE)
  }
  if (length(inputs$X_assign) != p) {
    stop("'inputs$X_assign' must have one entry per fixed-effect column (", p, ")",
         call. = FALSE)
  }
  x_shift <- inputs$x_shift
  if (!is.numeric(x_shift) || length(x_shift) != p || any(!is.finite(x_shift))) {
    stop("'inputs$x_shift' must be ", p, " finite numbers (one per fixed-effect column)",
         call. = FALSE)
  }
  y_shift <- number(inputs$y_shift, "inputs$y_shift")
  if (any(x_shift != 0) || y_shift != 0) {
    if (p == 0L || !identical(inputs$X_names[1L], "(Intercept)") || x_shift[1L] != 0) {
      stop("shifts ('x_shift', 'y_shift') need an intercept as the first fixed-effect ",
           "column, itself unshifted", call. = FALSE)
    }
  }
  for (flag in c("has_weights", "has_offset")) {
    if (!is.logical(inputs[[flag]]) || length(inputs[[flag]]) != 1L || is.na(inputs[[flag]])) {
      stop("'inputs$", flag, "' must be TRUE or FALSE", call. = FALSE)
    }
  }
  if (!is.character(inputs$source) || length(inputs$source) != 1L) {
    stop("'inputs$source' must be a single string", call. = FALSE)
  }
  flist <- inputs$flist
  assign <- attr(flist, "assign")
  if (!is.list(flist) || !length(flist) || !all(vapply(flist, is.factor, NA)) ||
      length(assign) != length(inputs$reterms)) {
    stop("'inputs$flist' must be a named list of factors with an \"assign\" ",
         "attribute giving each random-effects term's factor", call. = FALSE)
  }
  for (rt in inputs$reterms) {
    if (!is.list(rt) || !is.factor(rt$factor) || !is.character(rt$cnms) ||
        !is.character(rt$group) || !is.character(rt$term)) {
      stop("each of 'inputs$reterms' must be a list(group, term, factor, cnms)",
           call. = FALSE)
    }
  }
  if (length(sums$factors) != length(flist)) {
    stop("'inputs$sums$factors' has ", length(sums$factors), " entries for the ",
         length(flist), " grouping factors of 'inputs$flist'", call. = FALSE)
  }
  as_int <- function(v) {
    if (!is.numeric(v) || anyNA(v) || any(v != round(v))) {
      stop("the level codes and counts of 'inputs$sums' must be whole numbers",
           call. = FALSE)
    }
    as.integer(v)
  }
  as_dbl <- function(v, what) {
    if (!is.numeric(v)) stop("'", what, "' of 'inputs$sums' must be numeric", call. = FALSE)
    as.double(v)
  }
  # optional: the unweighted cross-product of (1, X shifted) and the 0/1
  # columns (R/sums-checks.R)
  if (!is.null(sums$xx) && (!is.numeric(sums$xx) || length(sums$xx) != (p + 1L)^2)) {
    stop("'inputs$sums$xx' must be a (p+1) x (p+1) numeric matrix, p = ", p, call. = FALSE)
  }
  if (!is.null(sums$x_binary) && (!is.logical(sums$x_binary) ||
                                  length(sums$x_binary) != p || anyNA(sums$x_binary))) {
    stop("'inputs$sums$x_binary' must be ", p, " TRUE/FALSE values (one per ",
         "fixed-effect column)", call. = FALSE)
  }
  if (!is.null(inputs$xlevels) && (!is.list(inputs$xlevels) ||
                                   !all(vapply(inputs$xlevels, is.character, NA)))) {
    stop("'inputs$xlevels' must be a named list of character vectors (the levels ",
         "of the fixed-effect factors)", call. = FALSE)
  }
  inputs$sums <- list(
    n = n, sum_log_w = number(sums$sum_log_w, "inputs$sums$sum_log_w"), p = p,
    ff = as_dbl(sums$ff, "ff"),
    factors = lapply(sums$factors, function(f) {
      list(n_levels = as_int(f$n_levels), q = as_int(f$q),
           zz = as_dbl(f$zz, "zz"), fz = as_dbl(f$fz, "fz"))
    }),
    pairs = lapply(sums$pairs, function(pr) {
      list(i = as_int(pr$i), j = as_int(pr$j), li = as_int(pr$li), lj = as_int(pr$lj),
           zz = as_dbl(pr$zz, "zz"))
    }),
    xx = if (!is.null(sums$xx)) as_dbl(sums$xx, "xx"),
    x_binary = sums$x_binary)
  inputs$x_shift <- as.double(x_shift)
  inputs$y_shift <- y_shift
  inputs$n <- n
  if (is.null(inputs$n_dropped)) inputs$n_dropped <- 0
  inputs
}

# The engine's model list for grouped sums (src/rust/rbind/convert.rs):
# list(p, terms, sums), the terms without rows.
sums_model_list <- function(inputs) {
  assign <- attr(inputs$flist, "assign")
  terms <- lapply(seq_along(inputs$reterms), function(i) {
    rt <- inputs$reterms[[i]]
    c(list(n_levels = nlevels(rt$factor), q = length(rt$cnms),
           factor_id = as.integer(assign[i])),
      if (!is.null(rt$structure)) engine_structure(rt))
  })
  list(p = as.integer(inputs$sums$p), terms = terms, sums = inputs$sums)
}

# The linear map T of the shifts (beta = T beta_c + e_1 y_shift).
shift_map <- function(x_shift) {
  p <- length(x_shift)
  T <- diag(p)
  if (p) T[1L, ] <- T[1L, ] - x_shift
  T
}

# The fixed-effects matrix of a sums fit: no rows, its names and attributes.
sums_design <- function(inputs) {
  X <- matrix(0, 0L, length(inputs$X_names), dimnames = list(NULL, inputs$X_names))
  attr(X, "assign") <- as.integer(inputs$X_assign)
  if (!is.null(inputs$X_contrasts)) attr(X, "contrasts") <- inputs$X_contrasts
  for (nm in names(inputs$X_attributes)) attr(X, nm) <- inputs$X_attributes[[nm]]
  X
}

# Assembles the "lmm" object of a fit from sums: as lmm_object() without the
# rows, beta and vcov back-transformed from the shifted columns.
sums_fit_object <- function(mc, inputs, raw, REML, optimizer = "bobyqa") {
  X <- sums_design(inputs)
  n <- inputs$n
  p <- ncol(X)
  reterms <- inputs$reterms
  theta <- stats::setNames(raw$theta, theta_names(reterms))
  b <- term_modes(reterms, raw$b)
  T <- shift_map(inputs$x_shift)
  beta <- drop(T %*% raw$beta)
  if (p) beta[1L] <- beta[1L] + inputs$y_shift
  vc_unscaled <- T %*% matrix(raw$vcov_unscaled, p, p) %*% t(T)
  dimnames(vc_unscaled) <- list(colnames(X), colnames(X))
  opt <- raw$optinfo
  structure(list(
    call = mc,
    formula = inputs$formula,
    frame = NULL,
    X = X,
    y = NULL,
    weights = NULL,
    offset = NULL,
    has_weights = inputs$has_weights,
    has_offset = inputs$has_offset,
    reterms = reterms,
    flist = inputs$flist,
    theta = theta,
    par = fit_par(raw, reterms, theta),
    lower = stats::setNames(theta_lower(reterms), names(theta)),
    beta = stats::setNames(beta, colnames(X)),
    b = b,
    u = raw$u,
    na.action = NULL,
    REML = REML,
    sigma = raw$sigma,
    vcov = raw$sigma^2 * vc_unscaled,
    fitted = NULL,
    resid = NULL,
    devcomp = lmm_devcomp(raw, n, p, REML, length(theta), length(reterms)),
    optinfo = optimizer_record(optimizer, list(opt), raw$par, opt$gradient,
                               opt$hessian, opt$messages, opt$singular),
    sums = inputs$sums,
    source = inputs$source,
    x_shift = stats::setNames(inputs$x_shift, colnames(X)),
    y_shift = inputs$y_shift,
    xlevels = inputs$xlevels,
    n_dropped = inputs$n_dropped
  ), class = fit_class("lmm"))
}

# The row-free inputs of a sums fit, from the fit (to refit it, e.g. by ML).
sums_inputs_of <- function(fit) {
  X <- fit$X
  list(formula = fit$formula, n = fit$sums$n, n_dropped = fit$n_dropped,
       X_names = colnames(X), X_assign = attr(X, "assign"),
       X_contrasts = attr(X, "contrasts"), reterms = fit$reterms, flist = fit$flist,
       has_weights = fit$has_weights, has_offset = fit$has_offset,
       x_shift = unname(fit$x_shift), y_shift = fit$y_shift, sums = fit$sums,
       source = fit$source, xlevels = fit$xlevels,
       X_attributes = attributes(X)[intersect(c("col.dropped", "msgRankdrop", "msgScaleX"),
                                              names(attributes(X)))])
}

# A sums fit refitted by maximum likelihood from its REML estimates (lme4's
# refitML()), with the optimizer settings `control`.
sums_refit_ml <- function(fit, control = lmmControl()) {
  sums_refit(fit, FALSE, control)
}

# A sums fit refitted by REML or ML from its estimates.
sums_refit <- function(fit, REML, control = lmmControl()) {
  inputs <- sums_inputs_of(fit)
  raw <- lmm_fit_raw(inputs, REML, control, as.double(cov_par(fit)), 0L)
  mc <- fit$call
  mc$REML <- REML
  out <- sums_fit_object(mc, inputs, raw, REML, control$optimizer)
  report_convergence(out$optinfo, control)
  report_confounded_terms(inputs, REML, control)
  out
}

# The sums with the fixed-effect columns unshifted (x_j = x_c_j + x_shift_j,
# the response still shifted by y_shift): F' = F M, M = I + e_1 x_shift'. In
# these coordinates beta is the fit's except for its intercept, less y_shift;
# the likelihood profiles of a shifted fit run on them.
unshift_x_sums <- function(sums, x_shift) {
  p <- sums$p
  M <- diag(p + 1L)
  M[1L, seq_len(p)] <- M[1L, seq_len(p)] + x_shift
  pf <- p + 1L
  sums$ff <- as.double(crossprod(M, matrix(sums$ff, pf, pf)) %*% M)
  sums$factors <- lapply(sums$factors, function(f) {
    fz <- matrix(f$fz, nrow = pf)
    f$fz <- as.double(crossprod(M, fz))
    f
  })
  sums
}

# The shifts' map applied to the engine's Satterthwaite or Kenward-Roger
# ingredients (ddf_parts()), which are in the shifted columns' beta_c:
# covariances of beta become T C T', the Kenward-Roger P_r (forms in X)
# T^-T P_r T^-1.
unshift_ddf_parts <- function(parts, fit) {
  T <- shift_map(unname(fit$x_shift))
  Ti <- solve(T)
  cov_map <- function(m) T %*% m %*% t(T)
  form_map <- function(m) t(Ti) %*% m %*% Ti
  for (nm in intersect(c("vcov_beta", "vcov_adj"), names(parts))) {
    parts[[nm]] <- cov_map(parts[[nm]])
  }
  if (!is.null(parts$jacobian)) parts$jacobian <- lapply(parts$jacobian, cov_map)
  if (!is.null(parts$P)) parts$P <- lapply(parts$P, form_map)
  parts
}

# X'X of the fixed effects (unweighted, as the type I and II hypotheses of
# anova() use it, as lmerTest's) of a sums fit, unshifted: from the
# unweighted sums xx, or from ff when the fit had no prior weights; with
# weights and without xx the sums hold only X'WX.
sums_fixed_crossprod <- function(fit) {
  xx <- sums_plain_xx(fit$sums, isTRUE(fit$has_weights), colnames(fit$X))
  if (is.null(xx)) {
    stop("type I and II hypotheses use the unweighted X'X, and this model was fitted ",
         "from sums weighted by its prior weights without the unweighted sums ",
         "(inputs$sums$xx); use type = \"III\", add them, or fit the pulled rows ",
         "with lmm()", call. = FALSE)
  }
  p <- fit$sums$p
  Ti <- solve(shift_map(unname(fit$x_shift)))
  xtx <- xx[seq_len(p) + 1L, seq_len(p) + 1L, drop = FALSE]
  out <- t(Ti) %*% xtx %*% Ti
  dimnames(out) <- list(colnames(fit$X), colnames(fit$X))
  out
}

# The data classes of the fixed-effects variables of a sums fit, as the
# model frame's terms would give them: variables with contrasts are factors,
# the others numeric.
sums_data_classes <- function(fit, trms) {
  vars <- rownames(attr(trms, "factors"))
  factors <- names(attr(fit$X, "contrasts"))
  stats::setNames(ifelse(vars %in% factors, "factor", "numeric"), vars)
}

# Type III hypotheses of a sums fit. Where no term is contained in another
# (see containing_terms()), each term's hypothesis is that its coefficients
# are zero, whatever the coding: that is what contrasts_type3() finds from
# the rows. With containment they are built from a prototype frame
# (sums_contrasts_type3_prototype(), R/sums-checks.R).
sums_contrasts_type3 <- function(fit, tc) {
  X <- fit$X
  contains <- containing_terms(fit, tc)
  nested <- names(contains)[lengths(contains) > 0L]
  if (length(nested)) return(sums_contrasts_type3_prototype(fit, tc, nested))
  p <- ncol(X)
  lapply(tc$cols, function(cols) {
    h <- diag(p)[cols, , drop = FALSE]
    dimnames(h) <- list(colnames(X)[cols], colnames(X))
    h
  })
}

#' @rdname lmm_sums_fit
#' @param object A fitted model. For a fit from sums, `update()` takes only
#'   `REML` (refitting from the sums); any other change is an error, since
#'   the call cannot be evaluated on the rows. Other fits are updated as by
#'   [stats::update()], the new call evaluated in the caller's frame or, if
#'   that fails, where the model's formula was written (a model fitted
#'   inside a function), as lme4's `update()` looks there too.
#' @param ... For `update()`: the arguments to change.
#' @param evaluate For `update()`: `FALSE` returns the new call instead.
#' @importFrom stats update
#' @method update mixedrs_fit
#' @export
update.mixedrs_fit <- function(object, ..., evaluate = TRUE) {
  # An lmm() call on a database table queries it again.
  if (!is_sums_fit(object) || !is.null(object$call$data)) {
    # the new call as stats::update() writes it (the arguments as written)
    call <- match.call()
    call[[1L]] <- utils::getS3method("update", "default")
    call$object <- object
    call$evaluate <- FALSE
    call <- eval(call, parent.frame())
    if (!evaluate) return(call)
    # evaluated in the caller's frame, or where the model's formula was
    # written (a model fitted inside a function), as lme4's update() does
    return(eval_model_call(call, object, parent.frame(), same_data = FALSE))
  }
  args <- list(...)
  if (length(args) != 1L || !identical(names(args), "REML") || !is.logical(args$REML)) {
    stop("update() of a model fitted from aggregates can only change REML: its call ",
         "cannot be evaluated on other data or another formula, since only grouped ",
         "sums reached R; compute the sums for the new model, or fit the pulled rows ",
         "with lmm()", call. = FALSE)
  }
  if (isTRUE(args$REML) == isTRUE(object$REML)) return(object)
  sums_refit(object, isTRUE(args$REML))
}
