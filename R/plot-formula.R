# lme4's diagnostic plots of a fitted merMod, drawn with lattice: plot(fit,
# form) evaluates a formula in which `.` stands for the fit (resid(.) ~
# fitted(.) | g, y ~ fitted(.), g ~ resid(.), ~ resid(.)) over the model's data
# and draws an xyplot, bwplot or histogram; qqmath(fit) draws the normal QQ
# plot of the scaled Pearson residuals. Both can label outlying observations
# (`id`, `idLabels`).

#' Diagnostic plots of a mixed model, as lme4's `plot.merMod()`
#'
#' `plot()` of a fit draws, with lattice, the formula `form` evaluated over
#' the model's data, in which `.` stands for the fitted model: the default
#' `resid(., type = "pearson") ~ fitted(.)` plots the Pearson residuals
#' against the fitted values with a horizontal line at 0. A formula
#' `y ~ x | g` draws one panel per level of `g` (several conditioning
#' factors joined by `*`); a numeric left-hand side gives a scatter plot
#' ([lattice::xyplot()]), a factor one a box plot ([lattice::bwplot()]) and a
#' one-sided formula a histogram ([lattice::histogram()]). Variables of the
#' model's `data` (re-read, as lme4's `getData()` does, from the call) and
#' `.obs` (the observation number) can be used, as can any function of the
#' fit (`sqrt(abs(resid(.)))`, `resid(., type = "pearson")`, `fitted(.)`,
#' `predict(.)`).
#'
#' @param x A fitted model of class `"lmm"` or `"glmm"`.
#' @param form A formula: what to plot (see Details).
#' @param abline Line(s) to add: two numbers are an intercept and a slope,
#'   one number a vertical line for box plots and histograms or a
#'   horizontal one (`abline = 0`) for scatter plots. By default, a line at 0
#'   when `form` is not given, none otherwise (as lme4).
#' @param id Observations to label: a number `alpha` in (0, 1) labels those
#'   whose absolute standardized Pearson residual exceeds
#'   `qnorm(1 - alpha / 2)`; a one-sided formula (e.g. `~ abs(resid(.)) > 50`)
#'   gives a logical condition evaluated like `form`.
#' @param idLabels Labels of the observations selected by `id`: a vector
#'   with one element per observation, or a one-sided formula of data
#'   variables (`~ .obs` numbers them); by default the levels of the grouping
#'   factors.
#' @param grid Logical: draw a background grid? (default: for scatter plots
#'   only).
#' @param ... Further arguments passed to the lattice function (`type`,
#'   `col`, `pch`, `xlab`, `ylab`, `main`, `layout`, ...).
#' @return A `"trellis"` object, which prints the plot.
#' @seealso [qqmath.mixedrs_fit()], [plot.ranef.lmm()], [qqnorm.lmm()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' plot(fit)
#' plot(fit, resid(.) ~ fitted(.) | Subject, abline = 0)
#' plot(fit, Reaction ~ fitted(.), abline = c(0, 1))
#' plot(fit, sqrt(abs(resid(.))) ~ fitted(.), type = c("p", "smooth"))
#' plot(fit, Subject ~ resid(.), abline = 0)
#' plot(fit, id = 0.05, idLabels = ~ .obs)
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' plot(gfit, resid(., type = "pearson") ~ fitted(.) | period, abline = 0)
#' @importFrom stats resid fitted
#' @export
plot.lmm <- function(x, form = resid(., type = "pearson") ~ fitted(.), abline,
                     id = NULL, idLabels = NULL, grid, ...) {
  require_rows(x, "plot()")
  if (!inherits(form, "formula")) stop("'form' must be a formula", call. = FALSE)
  env <- environment(form)
  if (is.null(env)) env <- parent.frame()
  data <- plot_formula_data(x, form, id, idLabels, env)
  args <- list(...)
  parts <- plot_form_parts(form)
  covar <- parts$covariate
  .x <- eval(covar, data, env)
  if (!is.numeric(.x)) {
    stop("the covariate (right-hand side) of 'form' must be numeric: ", deparse1(covar),
         call. = FALSE)
  }
  n <- length(data$.obs)
  check_plot_length(.x, n, covar)
  arg_data <- data.frame(.x = as.vector(.x))
  if (is.null(args$xlab)) args$xlab <- deparse1(covar)
  lhs <- parts$response
  plot_form <- ~.x
  if (!is.null(lhs)) {
    .y <- eval(lhs, data, env)
    check_plot_length(.y, n, lhs)
    if (is.null(args$ylab)) args$ylab <- deparse1(lhs)
    arg_data$.y <- if (is.numeric(.y)) as.vector(.y) else .y
    plot_form <- .y ~ .x
  }
  grps <- parts$groups
  if (!is.null(grps)) {
    for (v in all.vars(grps)) {
      g <- eval(as.name(v), data, env)
      check_plot_length(g, n, as.name(v))
      arg_data[[v]] <- g
    }
    plot_form <- stats::as.formula(paste(if (is.null(lhs)) "~ .x |" else ".y ~ .x |",
                                         deparse1(grps)), env = environment())
  }
  ids <- plot_id(x, id, idLabels, data, env, n)
  abl <- if (missing(abline)) {
    if (missing(form)) c(0, 0) else NULL
  } else {
    if (!is.null(abline) && (!is.numeric(abline) || !length(abline) %in% 1:2 || anyNA(abline))) {
      stop("'abline' must be one number or two (intercept and slope)", call. = FALSE)
    }
    abline
  }
  kind <- if (is.null(lhs)) "histogram" else if (is.numeric(arg_data$.y)) "xyplot" else "bwplot"
  if (missing(grid)) grid <- kind == "xyplot"
  check_flag(grid, "grid", "plot()")
  if (is.null(args$strip)) {
    args$strip <- function(...) lattice::strip.default(..., style = 1)
  }
  # lme4 passes the base graphics' default symbol size and text adjustment
  if (is.null(args$cex)) args$cex <- 1
  if (is.null(args$adj)) args$adj <- 0.5
  if (!is.null(ids)) ids[c("cex", "adj")] <- args[c("cex", "adj")]
  if (is.null(args$panel)) args$panel <- plot_formula_panel(kind, grid, abl, ids)
  fun <- switch(kind, xyplot = lattice::xyplot, bwplot = lattice::bwplot,
                histogram = lattice::histogram)
  do.call(fun, c(list(plot_form, data = arg_data), args))
}

#' @rdname plot.lmm
#' @export
plot.glmm <- plot.lmm

# The parts of `y ~ x | g`: response (NULL for a one-sided formula),
# covariate and conditioning expression (NULL without `|`).
plot_form_parts <- function(form) {
  rhs <- form[[length(form)]]
  groups <- NULL
  if (is.call(rhs) && identical(rhs[[1L]], as.name("|"))) {
    groups <- rhs[[3L]]
    rhs <- rhs[[2L]]
  }
  list(response = if (length(form) == 3L) form[[2L]], covariate = rhs, groups = groups)
}

# The panel function of plot(fit, form): points (or boxes, or bars), labels
# of the observations selected by `id`, and the reference line.
plot_formula_panel <- function(kind, grid, abl, ids) {
  switch(kind,
    xyplot = function(x, y, subscripts, ...) {
      x <- as.numeric(x)
      y <- as.numeric(y)
      if (grid) lattice::panel.grid()
      lattice::panel.xyplot(x, y, ...)
      if (!is.null(ids) && any(sel <- ids$id[subscripts])) {
        lattice::ltext(x[sel], y[sel], ids$labels[subscripts][sel], cex = ids$cex,
                       adj = ids$adj)
      }
      if (length(abl) == 2L) lattice::panel.abline(a = abl, ...)
      if (length(abl) == 1L) lattice::panel.abline(h = abl, ...)
    },
    bwplot = function(x, y, ...) {
      if (grid) lattice::panel.grid()
      lattice::panel.bwplot(x, y, ...)
      if (!is.null(abl)) lattice::panel.abline(v = abl[1L], ...)
    },
    histogram = function(x, ...) {
      if (grid) lattice::panel.grid()
      lattice::panel.histogram(x, ...)
      if (!is.null(abl)) lattice::panel.abline(v = abl[1L], ...)
    })
}

# The values `form`, `id` and `idLabels` are evaluated in: the data
# variables they name (from the fit's data, or from the calling environment
# when the fit was given none), `.obs` and `.` (the fit).
plot_formula_data <- function(x, form, id, idLabels, env) {
  forms <- list(form)
  if (inherits(id, "formula")) forms <- c(forms, list(id))
  if (inherits(idLabels, "formula")) forms <- c(forms, list(idLabels))
  vars <- unique(unlist(lapply(forms, all.vars)))
  vars <- setdiff(vars, c(".", "pi", "T", "F", "TRUE", "FALSE", ".obs"))
  n <- length(stats::residuals(x))
  data <- if (length(vars)) fit_plot_data(x, n) else NULL
  if (length(vars)) {
    if (is.null(data)) {
      data <- lapply(stats::setNames(vars, vars), function(v) {
        if (!exists(v, envir = env)) stop("variable '", v, "' not found", call. = FALSE)
        get(v, envir = env)
      })
    } else if (length(miss <- setdiff(vars, names(data)))) {
      stop(paste(sQuote(miss, FALSE), collapse = ", "), " not found in the model's data",
           call. = FALSE)
    }
  }
  c(as.list(data), list(.obs = seq_len(n), . = x))
}

# The fit's data as lme4's getData() finds it: the call's `data` evaluated in
# the formula's environment, less the rows na.omit dropped. NULL when the
# call has no data.
fit_plot_data <- function(x, n) {
  expr <- x$call$data
  if (is.null(expr)) return(NULL)
  data <- tryCatch(eval(expr, environment(x$formula)), error = function(e) {
    stop("cannot find the model's data ", sQuote(deparse1(expr), FALSE), " again: ",
         conditionMessage(e), call. = FALSE)
  })
  if (!is.data.frame(data) && !is.matrix(data)) {
    stop("the model's data ", sQuote(deparse1(expr), FALSE), " is not a data frame ",
         "(plot formulas need the rows in memory)", call. = FALSE)
  }
  data <- as.data.frame(data)
  na_act <- mer_na_action(x)
  if (nrow(data) != n && !is.null(na_act)) data <- data[-as.integer(na_act), , drop = FALSE]
  if (nrow(data) != n) {
    stop("the model's data has ", nrow(data), " rows but the fit has ", n,
         " observations (was the data changed after the fit?)", call. = FALSE)
  }
  data
}

check_plot_length <- function(v, n, expr) {
  if (NROW(v) != n) {
    stop("'", deparse1(expr), "' has ", NROW(v), " values, not one per observation (",
         n, ")", call. = FALSE)
  }
  invisible(NULL)
}

# Which observations to label and their labels (NULL: none).
plot_id <- function(x, id, idLabels, data, env, n, values = NULL) {
  if (is.null(id)) return(NULL)
  if (is.numeric(id)) {
    if (length(id) != 1L || is.na(id) || id <= 0 || id >= 1) {
      stop("'id' must be a number between 0 and 1 or a one-sided formula", call. = FALSE)
    }
    if (is.null(values)) {
      values <- stats::residuals(x, type = "pearson") / stats::sigma(x)
    }
    sel <- abs(as.vector(values)) > -stats::qnorm(id / 2)
  } else if (inherits(id, "formula") && length(id) == 2L) {
    sel <- eval(id[[2L]], data, env)
    if (!is.logical(sel)) stop("'id' must give a logical value per observation", call. = FALSE)
    check_plot_length(sel, n, id[[2L]])
  } else {
    stop("'id' must be a number between 0 and 1 or a one-sided formula", call. = FALSE)
  }
  labels <- if (is.null(idLabels)) {
    do.call(interaction, lapply(x$reterms, function(t) t$factor))
  } else if (inherits(idLabels, "formula")) {
    if (length(idLabels) != 2L) stop("'idLabels' must be a one-sided formula", call. = FALSE)
    v <- all.vars(idLabels)
    if (identical(v, ".obs")) seq_len(n) else do.call(interaction, lapply(v, function(nm) {
      eval(as.name(nm), data, env)
    }))
  } else if (is.atomic(idLabels) || is.list(idLabels)) {
    lab <- unlist(idLabels)
    if (length(lab) != n) {
      stop("'idLabels' has ", length(lab), " elements, not one per observation (", n, ")",
           call. = FALSE)
    }
    lab
  } else {
    stop("'idLabels' must be a vector or a one-sided formula", call. = FALSE)
  }
  list(id = as.vector(sel) %in% TRUE, labels = as.character(labels), cex = 1, adj = 0.5)
}

#' Normal QQ plot of a mixed model's residuals, with lattice
#'
#' `qqmath()` of a fit draws, as lme4's `qqmath()` of a merMod, the
#' standardized Pearson residuals (Pearson residuals divided by `sigma`)
#' against standard normal quantiles, with the line through their quartiles.
#'
#' @param x A fitted model of class `"lmm"` or `"glmm"`.
#' @param data Not used (lattice's generic has it); an error if given.
#' @param id,idLabels Observations to label and their labels, as for
#'   [plot.lmm()] (a number `alpha` labels the residuals beyond
#'   `qnorm(1 - alpha / 2)`).
#' @param ... Further arguments passed to [lattice::qqmath()].
#' @return A `"trellis"` object, which prints the plot.
#' @seealso [qqnorm.lmm()] for the base-graphics plot.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' library(lattice)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' qqmath(fit)
#' qqmath(fit, id = 0.05, idLabels = ~ .obs)
#' @exportS3Method lattice::qqmath mixedrs_fit
qqmath.mixedrs_fit <- function(x, data, id = NULL, idLabels = NULL, ...) {
  if (!missing(data)) stop("qqmath() of a fitted model does not use 'data'", call. = FALSE)
  values <- stats::residuals(x, type = "pearson", scaled = TRUE)
  n <- length(values)
  ids <- NULL
  if (!is.null(id)) {
    forms <- Filter(function(f) inherits(f, "formula"), list(id, idLabels))
    env <- if (length(forms)) environment(forms[[1L]]) else parent.frame()
    d <- plot_formula_data(x, ~1, id, idLabels, env)
    ids <- plot_id(x, id, idLabels, d, env, n, values = values)
    dots <- list(...)
    if (!is.null(dots$cex)) ids$cex <- dots$cex
    if (!is.null(dots$adj)) ids$adj <- dots$adj
  }
  panel <- function(x, subscripts, ...) {
    lattice::panel.qqmathline(x, ...)
    lattice::panel.qqmath(x, ...)
    if (!is.null(ids) && any(sel <- ids$id[subscripts])) {
      xs <- x[subscripts]
      q <- stats::qnorm(stats::ppoints(length(xs)))[rank(xs, ties.method = "first")]
      lattice::ltext(q[sel], xs[sel], ids$labels[subscripts][sel], cex = ids$cex,
                     adj = ids$adj)
    }
  }
  lattice::qqmath(values, xlab = "Standard normal quantiles",
                  ylab = "Standardized residuals", prepanel = lattice::prepanel.qqmathline,
                  panel = panel, ...)
}
