#' Fit a linear mixed model
#'
#' Fits a linear mixed model with the formula syntax of `lme4::lmer()` and
#' returns the same estimates, computed by a Rust core: the cross-products of
#' the data are formed once, and each evaluation of the profiled REML or ML
#' criterion refactors a blocked Cholesky factor whose cost does not grow with
#' the number of observations. The covariance parameters are optimized by
#' BOBYQA with lme4's bounds.
#'
#' @param formula A two-sided formula with fixed effects and at least one
#'   random-effects term in parentheses, as in lme4: `(1 | g)`, `(x | g)`,
#'   `(0 + x | g)`, `(x || g)` (uncorrelated), `(1 | a/b)` (nested),
#'   `(1 | a:b)`, crossed terms, factor-valued slopes, `offset()` terms.
#'   A term may be given a covariance structure as lme4 2.x writes it:
#'   `us(x | g)` (the same as `(x | g)`), `diag(x | g)` (independent
#'   columns), `cs(x | g)` (one common correlation), `ar1(0 + time | g)`
#'   (correlation `rho^|i - j|` between columns `i` and `j`, for equally
#'   spaced times) or `toep(0 + time | g)` (a correlation per lag, as
#'   glmmTMB's `toep`), each with `hom = TRUE` for one common standard
#'   deviation (lme4's defaults: `ar1` homogeneous, the others
#'   heterogeneous). Structured and plain terms mix freely, crossed or
#'   nested. Their parameters (`fit$par`, named as lme4 2.x names them) are
#'   relative standard deviations and the correlation parameters (`rho` in
#'   `[-1/(q-1), 1]` for `cs`, `[-1, 1]` for `ar1`, partial autocorrelations
#'   in `[-1, 1]` for `toep`); `fit$theta` remains lme4's relative Cholesky
#'   factor.
#' @param data A data frame containing the variables of the model (or `NULL`
#'   to take them from the formula's environment).
#' @param REML Logical: fit by REML (default) or maximum likelihood.
#' @param weights Optional prior weights (positive), evaluated in `data`:
#'   the residual variance of observation `i` is `sigma^2 / weights[i]`.
#' @param offset Optional offset of the linear predictor, evaluated in
#'   `data` (added to any `offset()` terms in the formula).
#' @param subset Optional expression selecting the rows of `data` to use.
#' @param na.action Function handling missing values (default `na.omit`,
#'   or `getOption("na.action")`).
#' @param control Settings from [lmmControl()].
#' @param start Optional starting values of the covariance parameters
#'   `theta` (lme4's parameterization): a numeric vector or `list(theta = )`;
#'   for a model with structured terms their parameters `par` in the order of
#'   `fit$par` (lme4 2.x's form): a numeric vector or `list(par = )`.
#'   Without one, a small model (at most 2,000 random effects) starts from
#'   lme4's start (`theta` = identity), a larger one from a method-of-moments
#'   (ANOVA) estimate of the variance components, computed from the
#'   cross-products the fit needs anyway, with the first trust-region radius
#'   scaled to it (about half the evaluations on large crossed models). The
#'   other start is tried too, and the better optimum kept, when the first run
#'   did not converge cleanly, when its optimum puts a variance near 0, or
#'   (large models) when the moment estimate does; an optimum where a
#'   vector-valued term is singular is restarted off that face of the
#'   boundary (on small models again from its standard deviations as they
#'   are, where the first restart raised a small one, and from its covariance
#'   lifted off the face, where another face is within reach), and one where a residual
#'   standard deviation tends to 0 is restarted nearer in along the same direction (when a
#'   random effect's sd is over 100 times the residual's, where the optimizer can no longer
#'   turn that direction) and followed along its ray. So a fit never ends worse than the one from lme4's start on
#'   small models, and on larger ones wherever the boundary is near.
#'   `optinfo$starts` counts the runs. From a given (or lme4's) start the
#'   first trust-region radius is `min(rhobeg, 0.2 * max(start))`, as lme4's
#'   `bobyqa` takes it.
#' @param devFunOnly Logical: return the deviance function of the model
#'   instead of fitting it (see [as.function.lmm()]), as
#'   `lme4::lmer(devFunOnly = TRUE)`.
#' @param contrasts Optional list of contrasts for factors of the fixed
#'   effects, as the `contrasts.arg` of [stats::model.matrix()] (and lme4's
#'   `contrasts` argument): e.g. `list(f = "contr.sum")`, values being
#'   contrast function names, functions or matrices. `NULL` (default) uses
#'   `getOption("contrasts")`. The fit keeps them (in the `"contrasts"`
#'   attribute of its fixed-effects matrix), and `predict()` with `newdata`
#'   codes new data with them.
#' @param verbose Logical or integer: print the criterion and `theta` at each
#'   optimizer evaluation. A fit can be interrupted with Ctrl-C (checked after
#'   every evaluation; an error, and the session stays usable).
#' @details
#' Where the random effects can absorb the residual (a structured term with
#' one observation per group and column, say), the likelihood may rise as
#' the residual standard deviation goes to 0: its supremum lies at
#' `sigma = 0`, where glmmTMB's `dispformula = ~0` puts it. The fit then
#' follows the profiled criterion out along that direction to random-effect
#' standard deviations of 500 to 1,000 times sigma (beyond, the criterion's
#' rounding is as large as what is left to gain), reports `sigma` there, sets
#' `optinfo$residual_limit`, and says so with a "boundary fit" message (its
#' action is `check.conv.singular`'s, see [lmmControl()]).
#' @return An object of class `"lmm"`, a list holding the model frame, the
#'   design matrices, the estimates (`theta`, `beta`, the conditional modes
#'   `b` per term, `sigma`), their covariance `vcov`, the deviance components
#'   `devcomp` (as lme4's), fitted values and the optimizer record `optinfo`.
#'   Use the methods [fixef()], [ranef()], [VarCorr()], `summary()`,
#'   `vcov()`, `logLik()`, `fitted()`, `residuals()` and friends rather than
#'   reading it directly.
#' @seealso [lmmControl()], [summary.lmm()], [VarCorr.lmm()], [ranef.lmm()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' data("sleepstudy", package = "lme4")
#' fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
#' fit
#' summary(fit)
#' fixef(fit)
#' VarCorr(fit)
#' ml <- lmm(Reaction ~ Days + (1 | Subject), sleepstudy, REML = FALSE)
#' logLik(ml)
#' # repeated measures with an AR(1) correlation over days
#' ar <- lmm(Reaction ~ Days + ar1(0 + factor(Days) | Subject), sleepstudy)
#' ar
#' ar$par
#' @export
lmm <- function(formula, data = NULL, REML = TRUE, weights, offset, subset,
                na.action, control = lmmControl(), start = NULL,
                verbose = FALSE, devFunOnly = FALSE, contrasts = NULL) {
  mc <- match.call()
  if (missing(control)) control <- default_control("lmm")
  if (!is.logical(REML) || length(REML) != 1L || is.na(REML)) {
    stop("'REML' must be TRUE or FALSE, not ", deparse1(REML), call. = FALSE)
  }
  check_flag(devFunOnly, "devFunOnly")
  control <- as_fit_control(control, "lmm")
  verbose <- max(check_verbose(verbose), control$opt_verbose)
  # (evaluated once, here: `data = read.csv(...)` reads the file once)
  data <- data_value(mc, parent.frame())
  if (is_sql_data(data)) {
    # The model's sums are computed where the data live; no row moves.
    return(lmm_sql_fit(mc, data, parent.frame(), REML, control, start, verbose,
                       devFunOnly, contrasts))
  }
  inputs <- lmm_inputs(mc, parent.frame(), control, data = data)
  check_nlev_gtreq_5(inputs$flist, control$check.nlev.gtreq.5)
  # As lme4: the call and the fit carry the formula itself, with `||` expanded.
  inputs$formula <- with_rhs(inputs$formula, expand_double_bars(inputs$formula[[3L]]))
  mc$formula <- inputs$formula
  if (devFunOnly) {
    return(make_lmm_devfun(lmm_model_list(inputs), inputs$reterms, REML, control$threads))
  }
  theta_start <- check_start(start, inputs$reterms)
  raw <- lmm_fit_raw(inputs, REML, control, theta_start, verbose)
  fit <- lmm_object(mc, inputs, raw, REML, control$optimizer)
  report_convergence(fit$optinfo, control)
  report_confounded_terms(inputs, REML, control)
  fit
}

check_verbose <- function(verbose) {
  if ((!is.logical(verbose) && !is.numeric(verbose)) || length(verbose) != 1L ||
      is.na(verbose) || verbose < 0) {
    stop("'verbose' must be TRUE, FALSE or a single non-negative number, not ",
         deparse1(verbose),
         call. = FALSE)
  }
  as.integer(verbose)
}

# The covariance structure codes the engine reads (see covariance.rs).
structure_codes <- c(us = 0L, diag = 1L, cs = 2L, ar1 = 3L, toep = 4L)

# A term's structure (lme4's unstructured form when it has none).
term_structure_of <- function(rt) {
  if (is.null(rt$structure)) list(type = "us", hom = FALSE) else rt$structure
}

# TRUE when some term of a fit (or of a list of reterms) has a structure
# other than the unstructured one.
has_structured_terms <- function(reterms) {
  any(vapply(reterms, function(rt) !identical(term_structure_of(rt)$type, "us"), TRUE))
}

# The covariance structure elements of a term as the engine reads them.
engine_structure <- function(rt) {
  s <- term_structure_of(rt)
  list(cov = structure_codes[[s$type]], hom = isTRUE(s$hom),
       label = paste0(if (s$type != "us") paste0(s$type, "(") else "(", rt$term, ")"))
}

# The engine's covariance parameterisation of each term (covariance.rs): per
# term `structure`, `hom`, `n_par`, `lower`, `upper`, `start` and each
# parameter's `role` ("factor", "sd", "rho", "pacf"), `row`, `col`.
covariance_layout <- function(reterms) {
  covariance_layout_rs(lapply(reterms, function(rt) {
    c(list(q = length(rt$cnms)), engine_structure(rt))
  }))
}

# theta of the terms `reterms` at their covariance parameters `par` (the
# engine's map, covariance.rs), one term's after another.
theta_of_par <- function(reterms, par) {
  covariance_theta_rs(lapply(reterms, function(rt) {
    c(list(q = length(rt$cnms)), engine_structure(rt))
  }), par)
}

# The optimizer's parameters `par` of every term, named as lme4 2.x names
# them: group.name for standard deviations and factor diagonals,
# group.row.col for other factor elements, group.* for a homogeneous
# standard deviation, group.rho for a correlation, group.pacf<k> for the
# partial autocorrelation at lag k (toep).
par_names <- function(reterms, layout = covariance_layout(reterms)) {
  unlist(Map(function(rt, lay) {
    cn <- rt$cnms
    vapply(seq_along(lay$role), function(k) {
      role <- lay$role[k]
      if (role == "factor") {
        if (lay$row[k] == lay$col[k]) paste(rt$group, cn[lay$row[k]], sep = ".")
        else paste(rt$group, cn[lay$row[k]], cn[lay$col[k]], sep = ".")
      } else if (role == "sd") {
        paste(rt$group, if (lay$row[k] == 0L) "*" else cn[lay$row[k]], sep = ".")
      } else if (role == "rho") {
        paste(rt$group, "rho", sep = ".")
      } else {
        paste0(rt$group, ".pacf", lay$row[k])
      }
    }, "")
  }, reterms, layout), use.names = FALSE)
}

# Number of elements of theta of each term (its relative covariance factor's
# lower triangle), from the engine's covariance layout.
theta_sizes <- function(reterms) {
  vapply(covariance_layout(reterms), `[[`, 1L, "n_theta")
}

# Number of covariance parameters `par` of each term, from the engine's
# covariance layout.
par_sizes <- function(reterms) {
  vapply(covariance_layout(reterms), function(l) as.integer(l$n_par), 1L)
}

check_start <- function(start, reterms) {
  if (is.null(start)) return(NULL)
  structured <- has_structured_terms(reterms)
  if (is.list(start)) {
    extra <- setdiff(names(start), c("theta", "par"))
    if (length(extra) > 0L) {
      stop("incorrect components in 'start': ", paste(extra, collapse = ", "),
           "; lmm() takes 'theta' (or 'par' for structured terms)", call. = FALSE)
    }
    if (length(start) != 1L) {
      stop("'start' must give one of 'theta' and 'par'", call. = FALSE)
    }
    if (structured && identical(names(start), "theta")) {
      stop("'start': the model has structured covariance terms, whose ",
           "parameters are not theta; give them as list(par = ) (",
           paste(par_names(reterms), collapse = ", "), ")", call. = FALSE)
    }
    start <- start[[1L]]
  }
  layout <- covariance_layout(reterms)
  npar <- sum(vapply(layout, `[[`, 1L, "n_par"))
  what <- if (structured) "par" else "theta"
  if (!is.numeric(start) || length(start) != npar || anyNA(start) ||
      any(!is.finite(start))) {
    stop("'start' must be the covariance parameters ", what, " as a numeric vector of ",
         "length ", npar, " (finite values",
         if (structured) paste0(": ", paste(par_names(reterms, layout), collapse = ", ")),
         "), or a list with element '", what, "'", call. = FALSE)
  }
  lower <- unlist(lapply(layout, `[[`, "lower"))
  upper <- unlist(lapply(layout, `[[`, "upper"))
  if (any(start < lower)) {
    stop("'start' has negative values for standard deviations or diagonal ",
         "elements of the relative covariance factors, or correlation ",
         "parameters below their lower bound (positions ",
         paste(which(start < lower), collapse = ", "), ")", call. = FALSE)
  }
  if (any(start > upper)) {
    stop("'start' has correlation parameters above their upper bound 1 ",
         "(positions ", paste(which(start > upper), collapse = ", "), ")",
         call. = FALSE)
  }
  as.double(start)
}

# Row and column of each element of a q x q lower triangle (diagonal
# included) in column-major order, the order of theta within a term.
lower_tri_index <- function(q) {
  list(row = sequence(q:1, from = seq_len(q)), col = rep.int(seq_len(q), q:1))
}

# lme4's lower bounds: 0 for diagonal elements of each term's factor.
theta_lower <- function(reterms) theta_layout(reterms)$lower

# lme4's theta names: group.name for diagonal, group.row.col otherwise.
theta_names <- function(reterms) theta_layout(reterms)$names

# theta's `names` and `lower` bounds (see theta_names(), theta_lower()) in one
# pass over the terms.
theta_layout <- function(reterms) {
  names <- vector("list", length(reterms))
  lower <- vector("list", length(reterms))
  for (i in seq_along(reterms)) {
    t <- reterms[[i]]
    q <- length(t$cnms)
    if (q == 1L) {
      names[[i]] <- paste(t$group, t$cnms, sep = ".")
      lower[[i]] <- 0
      next
    }
    idx <- lower_tri_index(q)
    diag <- idx$row == idx$col
    out <- paste(t$group, t$cnms[idx$row], t$cnms[idx$col], sep = ".")
    out[diag] <- paste(t$group, t$cnms[idx$row[diag]], sep = ".")
    names[[i]] <- out
    lower[[i]] <- ifelse(diag, 0, -Inf)
  }
  list(names = unlist(names), lower = unlist(lower))
}

# The random-effects terms as the Rust engine reads them.
engine_terms <- function(inputs) {
  assign <- attr(inputs$flist, "assign")
  lapply(seq_along(inputs$reterms), function(i) {
    t <- inputs$reterms[[i]]
    # The engine reads the factor's codes and Z's values; neither is copied
    # (`storage.mode<-` copies even a double matrix).
    c(list(codes = t$factor, n_levels = nlevels(t$factor), z = double_storage(t$Z),
           q = ncol(t$Z), factor_id = as.integer(assign[i])),
      if (!is.null(t$structure)) engine_structure(t))
  })
}

# The engine's result for `inputs`: its own BOBYQA, or (Nelder-Mead, a
# function optimizer, none) the deviance function's fit.
lmm_fit_raw <- function(inputs, REML, control, start, verbose) {
  with_exact_fit_check(function() {
    if (control$optimizer %in% c("bobyqa", "nloptwrap")) {
      lmm_engine_fit(inputs, REML, control, start, verbose)
    } else {
      lmm_devfun_fit(inputs, REML, control, start, verbose)
    }
  }, inputs)
}

# `fit()`, whose failure to evaluate the deviance anywhere is explained when
# the fixed effects fit the response exactly (a constant response, say):
# no variance is left for the residuals, where the profiled deviance has
# log(0). (lme4 returns a fit with REML criterion -Inf and sigma 0.)
with_exact_fit_check <- function(fit, inputs) {
  tryCatch(fit(), error = function(e) {
    if (grepl("could not be evaluated at any value", conditionMessage(e), fixed = TRUE) &&
        !is.null(inputs$y) && length(inputs$y) > 0L) {
      r <- stats::lm.fit(as.matrix(inputs$X), inputs$y - if (is.null(inputs$offset)) 0 else inputs$offset)$residuals
      if (all(abs(r) <= 1e-10 * max(1, abs(inputs$y)))) {
        what <- if (length(unique(inputs$y)) == 1L) {
          paste0("the response is constant (every value is ", format(inputs$y[1L]), ")")
        } else {
          "the fixed effects fit the response exactly"
        }
        stop(what, ": no variance is left for the random effects and the residuals, so a ",
             "linear mixed model cannot be fitted", call. = FALSE)
      }
    }
    stop(e)
  })
}

lmm_engine_fit <- function(inputs, REML, control, start, verbose) {
  if (!is.null(inputs$sums)) {
    return(lmm_fit_model_rs(sums_model_list(inputs), REML, start, unclass(control), verbose))
  }
  X <- inputs$X
  X <- double_storage(X)
  lmm_fit_rs(as.double(inputs$y), X, ncol(X),
             if (is.null(inputs$weights)) NULL else as.double(inputs$weights),
             if (is.null(inputs$offset)) NULL else as.double(inputs$offset),
             engine_terms(inputs), REML, start, unclass(control), verbose)
}

# Assembles the "lmm" object from the model inputs and the engine's result.
lmm_object <- function(mc, inputs, raw, REML, optimizer = "bobyqa") {
  parts <- fit_parts(mc, inputs, raw)
  n <- nrow(inputs$X)
  p <- ncol(inputs$X)
  obs_names <- rownames(inputs$frame)
  opt <- raw$optinfo
  specific <- list(
    REML = REML,
    sigma = raw$sigma,
    vcov = raw$sigma^2 * unscaled_vcov(raw$vcov_unscaled, inputs$X),
    fitted = stats::setNames(raw$fitted, obs_names),
    resid = stats::setNames(inputs$y - raw$fitted, obs_names),
    devcomp = lmm_devcomp(raw, n, p, REML, length(parts$theta), length(inputs$reterms)),
    optinfo = optimizer_record(optimizer, list(opt), raw$par, opt$gradient,
                               opt$hessian, opt$messages, opt$singular)
  )
  structure(c(parts, specific), class = fit_class("lmm"))
}

# The message of a linear mixed model whose likelihood rises as sigma goes to 0
# (the engine's `residual_limit`: the fit followed the criterion out to relative
# standard deviations of 500 to 1,000).
residual_limit_message <- paste0(
  "boundary fit: the likelihood rises as the residual standard deviation goes to 0 ",
  "(the random effects absorb the residual); sigma is where the fit stopped on the way, ",
  "below 1/500 of the largest random-effect standard deviation: see help('lmm')")

# Turns the optimizer's record into the messages and warnings lme4 users know.
report_convergence <- function(optinfo, control) {
  if (optinfo$conv$opt == 1L && grepl("maximum number of evaluations", optinfo$message)) {
    # Hitting the evaluation limit says it all; the gradient check that follows would only
    # repeat it less plainly.
    warning("the optimizer stopped at its limit of maxfun = ", control$maxfun,
            " deviance evaluations before converging, so the estimates may not be at the ",
            "optimum; raise ", class(control)[1L], "(maxfun = )", call. = FALSE)
    return(invisible(NULL))
  }
  if (optinfo$conv$opt != 0L && optinfo$conv$opt != 1000L) {
    warning("convergence code ", optinfo$conv$opt, " from ",
            optinfo$optimizer[length(optinfo$optimizer)], ": ",
            optinfo$message, call. = FALSE)
  }
  if (isTRUE(optinfo$singular)) {
    signal_check(control$check.conv.singular,
                 "boundary (singular) fit: see help('isSingular')")
  }
  if (isTRUE(optinfo$residual_limit)) {
    signal_check(control$check.conv.singular, residual_limit_message)
  }
  for (m in optinfo$grad_messages) {
    signal_check(control$check.conv.grad, m)
  }
  if (!isTRUE(optinfo$singular) && !is.null(optinfo$derivs)) {
    g <- optinfo$derivs$gradient
    rel_tol <- control$grad.relTol
    if (!is.null(rel_tol) && length(g) &&
        (rel <- max(abs(g / optinfo$val))) > rel_tol) {
      signal_check(control$check.conv.grad, sprintf(
        "Model failed to converge with max|relative grad| = %g (tol = %g)", rel, rel_tol))
    }
    if (!is.null(control$check.conv.hess)) {
      m <- hessian_message(optinfo$derivs$Hessian, control$hess.tol)
      if (!is.null(m)) signal_check(control$check.conv.hess, m)
    }
  }
  invisible(NULL)
}
