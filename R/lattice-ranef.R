# lattice plots of the conditional modes of the random effects, as lme4 draws
# them for a "ranef.mer" object: dotplot() gives one caterpillar plot per
# grouping factor (levels ordered by the first random effect, intervals from
# the conditional variances) and qqmath() one normal QQ plot per grouping
# factor. Registered on lattice's generics (delayed S3 registration).

#' lattice caterpillar and QQ plots of the random effects
#'
#' `dotplot()` and `qqmath()` of a `ranef()` result draw, as lme4 does for
#' its `ranef.mer` objects, one trellis plot per grouping factor with one
#' panel per random effect. `dotplot()` is a caterpillar plot: the levels on
#' the vertical axis, ordered by their conditional mode of the first random
#' effect (the same order in every panel), each mode with its conditional
#' interval `mode +/- qnorm((1 + level) / 2) * condsd`. `qqmath()` plots
#' every random effect's modes against standard normal quantiles
#' `qnorm((i - 0.5) / n)`, with the same intervals. The intervals need
#' `ranef(fit, condVar = TRUE)` (the default); without conditional
#' variances `dotplot()` draws the modes alone and `qqmath()` draws lattice's
#' normal QQ plot of the modes (as lme4 does).
#'
#' lme4 uses the multiplier 1.96; `level = 0.95` gives `qnorm(0.975)`
#' (1.959964). Grouping factors shared by several terms (`(Days ||
#' Subject)`) are drawn like the others.
#'
#' @param x An object of class `"ranef.lmm"` (or `"ranef.glmm"`) from
#'   [ranef.lmm()] with `drop = FALSE` (the default).
#' @param data Not used (lattice's generics have it); an error if given.
#' @param main Logical: title each plot with the name of its grouping factor?
#' @param transf For `dotplot()`: a function applied to the modes and the
#'   interval ends before they are drawn (e.g. `exp` for the odds-ratio scale
#'   of a logistic model), as lme4's `transf`.
#' @param level Coverage of the intervals.
#' @param ... Further arguments passed to [lattice::dotplot()] or
#'   [lattice::xyplot()] (e.g. `scales`, `layout`, `pch`, `col`).
#' @return A named list of `"trellis"` objects, one per grouping factor; it
#'   prints the plots.
#' @seealso [plot.ranef.lmm()] for the same plots in base graphics.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' library(lattice)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' dotplot(ranef(fit, condVar = TRUE))
#' qqmath(ranef(fit, condVar = TRUE))
#' gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'              family = binomial, data = lme4::cbpp)
#' dotplot(ranef(gfit), transf = exp)$herd
#' @name lattice-ranef
#' @aliases dotplot.ranef.lmm qqmath.ranef.lmm
NULL

#' @rdname lattice-ranef
#' @exportS3Method lattice::dotplot ranef.lmm
dotplot.ranef.lmm <- function(x, data, main = TRUE, transf = I, level = 0.95, ...) {
  if (!missing(data)) stop("dotplot() of a ranef object does not use 'data'", call. = FALSE)
  check_flag(main, "main", "dotplot()")
  if (!is.function(transf)) stop("'transf' must be a function, such as exp", call. = FALSE)
  check_level(level)
  z <- stats::qnorm((1 + level) / 2)
  ranef_check_frames(x, "dotplot()")
  # the interval's half-width on the scale of the modes (NULL: no intervals)
  prepanel <- function(x, y, se, subscripts, ...) {
    if (is.null(se)) return(list())
    x <- as.numeric(x)
    hw <- z * as.numeric(se[subscripts])
    list(xlim = range(transf(x - hw), transf(x + hw), finite = TRUE))
  }
  panel <- function(x, y, se, subscripts, pch = 16, col.line = dot.line$col,
                    lty = dot.line$lty, lwd = dot.line$lwd, ...) {
    dot.line <- lattice::trellis.par.get("dot.line")
    x <- as.numeric(x)
    y <- as.numeric(y)
    lattice::panel.abline(h = unique(y), col = col.line, lty = lty, lwd = lwd)
    lattice::panel.abline(v = transf(0), col = col.line, lty = lty, lwd = lwd)
    if (!is.null(se)) {
      s <- as.numeric(se[subscripts])
      lattice::panel.segments(transf(x - z * s), y, transf(x + z * s), y, col = "black")
    }
    lattice::panel.xyplot(transf(x), y, pch = pch, ...)
  }
  one <- function(gv) {
    d <- ranef_long(x, gv)
    lattice::dotplot(.nn ~ values | ind, data = d, se = d$se, prepanel = prepanel,
                     panel = panel, xlab = NULL, main = if (main) gv, ...)
  }
  stats::setNames(lapply(names(x), one), names(x))
}

#' @rdname lattice-ranef
#' @exportS3Method lattice::qqmath ranef.lmm
qqmath.ranef.lmm <- function(x, data, main = TRUE, level = 0.95, ...) {
  if (!missing(data)) stop("qqmath() of a ranef object does not use 'data'", call. = FALSE)
  check_flag(main, "main", "qqmath()")
  check_level(level)
  z <- stats::qnorm((1 + level) / 2)
  ranef_check_frames(x, "qqmath()")
  prepanel <- function(x, y, se, subscripts, ...) {
    hw <- z * as.numeric(se[subscripts])
    list(xlim = range(as.numeric(x) - hw, as.numeric(x) + hw, finite = TRUE))
  }
  panel <- function(x, y, se, subscripts, pch = 16, ...) {
    lattice::panel.grid(h = -1, v = -1)
    lattice::panel.abline(v = 0)
    x <- as.numeric(x)
    y <- as.numeric(y)
    s <- as.numeric(se[subscripts])
    lattice::panel.segments(x - z * s, y, x + z * s, y, col = "black")
    lattice::panel.xyplot(x, y, pch = pch, ...)
  }
  one <- function(gv) {
    d <- ranef_long(x, gv)
    if (is.null(d$se)) {
      return(lattice::qqmath(~values | ind, data = d,
                             scales = list(y = list(relation = "free")),
                             xlab = "Standard normal quantiles", ylab = NULL,
                             main = if (main) gv, ...))
    }
    # each panel's modes in increasing order against the normal quantiles
    n <- nlevels(d$.nn)
    ord <- order(d$ind, d$values)
    d <- d[ord, , drop = FALSE]
    d$quantile <- rep(stats::qnorm((seq_len(n) - 0.5) / n), nlevels(d$ind))
    lattice::xyplot(quantile ~ values | ind, data = d, se = d$se, prepanel = prepanel,
                    panel = panel, scales = list(x = list(relation = "free")),
                    ylab = "Standard normal quantiles", xlab = NULL,
                    main = if (main) gv, ...)
  }
  stats::setNames(lapply(names(x), one), names(x))
}

# The plots need the data frames of ranef(drop = FALSE).
#' @rdname lattice-ranef
#' @param component For the `ranef()` of a glmmTMB-style fit (class
#'   `"ranef_components"`): the random effects of the conditional model
#'   (`"cond"`, the default) or of the zero-inflation model (`"zi"`); their
#'   intervals come from glmmTMB's conditional variances (`"condVar"`).
#' @exportS3Method lattice::dotplot ranef_components
dotplot.ranef_components <- function(x, data, component = c("cond", "zi"), ...) {
  if (!missing(data)) stop("dotplot() of a ranef object does not use 'data'", call. = FALSE)
  dotplot.ranef.lmm(component_ranef(x, match_choice(component), "dotplot()"), ...)
}

#' @rdname lattice-ranef
#' @exportS3Method lattice::qqmath ranef_components
qqmath.ranef_components <- function(x, data, component = c("cond", "zi"), ...) {
  if (!missing(data)) stop("qqmath() of a ranef object does not use 'data'", call. = FALSE)
  qqmath.ranef.lmm(component_ranef(x, match_choice(component), "qqmath()"), ...)
}

# One component of a glmmTMB-style fit's ranef() as a "ranef.lmm" object:
# its conditional variances ("condVar") as lme4's "postVar".
component_ranef <- function(x, component, caller) {
  modes <- x[[component]]
  if (!length(modes)) {
    stop(caller, ": the ", if (component == "cond") "conditional" else "zero-inflation",
         " model has no random effects", call. = FALSE)
  }
  modes <- lapply(modes, function(d) {
    cv <- attr(d, "condVar")
    attr(d, "condVar") <- NULL
    if (!is.null(cv)) attr(d, "postVar") <- cv
    d
  })
  structure(modes, class = "ranef.lmm")
}

ranef_check_frames <- function(x, caller) {
  if (!all(vapply(x, is.data.frame, NA))) {
    stop(caller, " needs the data frames of ranef(..., drop = FALSE), not the vectors ",
         "of drop = TRUE", call. = FALSE)
  }
  invisible(NULL)
}

# One grouping factor's modes in long format: `values` (the mode), `ind`
# (the random effect, a factor in column order), `.nn` (the level, a factor
# ordered by the mean of the first random effect) and `se` (the conditional
# standard deviation; absent without conditional variances).
ranef_long <- function(x, gv) {
  d <- x[[gv]]
  k <- ncol(d)
  lev <- rownames(d)
  out <- data.frame(
    values = unlist(d, use.names = FALSE),
    ind = factor(rep(colnames(d), each = nrow(d)), levels = colnames(d)),
    .nn = rep(stats::reorder(factor(lev), d[[1L]], FUN = mean), k)
  )
  pv <- attr(d, "postVar")
  if (!is.null(pv)) out$se <- condvar_sd(pv)
  out
}
