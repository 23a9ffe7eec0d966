# lattice plots of a likelihood profile ("lmmprofile", from profile()), as
# lme4 draws its "thpr" objects: xyplot() of zeta against each parameter,
# densityplot() of the profile-based densities, and splom() of the pairwise
# profile traces and joint confidence contours (Bates & Watts, 1988, ch. 6).
# Each parameter's profile is interpolated by a spline of zeta on the
# parameter ("forward") and its inverse ("backward"), as lme4's profile()
# stores them.

# The forward (zeta as a function of the parameter) and backward (the
# parameter as a function of zeta) interpolating splines of every profiled
# parameter. A profile that is not monotonic has no backward spline: its
# entry is the error, and its forward entry NULL.
profile_splines <- function(x) {
  pars <- levels(x$.par)
  fwd <- stats::setNames(vector("list", length(pars)), pars)
  bwd <- fwd
  for (p in pars) {
    rows <- x[x$.par == p, , drop = FALSE]
    ok <- is.finite(rows[[p]]) & is.finite(rows$.zeta)
    v <- rows[[p]][ok]
    z <- rows$.zeta[ok]
    o <- order(v)
    res <- tryCatch({
      f <- splines::interpSpline(v[o], z[o])
      list(f = f, b = splines::backSpline(f))
    }, error = function(e) list(f = NULL, b = e))
    if (!is.null(res$f)) fwd[[p]] <- res$f
    bwd[[p]] <- res$b
  }
  list(forward = fwd, backward = bwd)
}

# Values of a spline at `v` (NA for a missing spline).
spline_at <- function(s, v) {
  if (!inherits(s, "spline")) return(rep(NA_real_, length(v)))
  stats::predict(s, v)$y
}

# Parameters selected by `which` (indices, names, "theta_", "beta_"; NULL:
# all) among the profiled ones.
profile_which <- function(x, which) {
  pars <- levels(x$.par)
  if (is.null(which)) return(pars)
  nvp <- sum(grepl("^(\\.sig[0-9]+|\\.sigma|(zi\\.)?sd_|(zi\\.)?cor_|sigma$)", pars))
  if (is.numeric(which)) {
    if (anyNA(which) || any(which < 1 | which > length(pars) | which != round(which))) {
      stop("'which' must hold indices between 1 and ", length(pars),
           " (the profiled parameters)", call. = FALSE)
    }
    return(pars[sort(unique(which))])
  }
  if (!is.character(which)) {
    stop("'which' must be indices or names of profiled parameters", call. = FALSE)
  }
  sel <- pars %in% which
  if ("theta_" %in% which) sel[seq_len(nvp)] <- TRUE
  if ("beta_" %in% which && length(pars) > nvp) sel[-seq_len(nvp)] <- TRUE
  unknown <- setdiff(which, c(pars, "theta_", "beta_"))
  if (length(unknown)) {
    stop("'which' names parameters that were not profiled: ",
         paste(sQuote(unknown, FALSE), collapse = ", "), "; the profile has ",
         paste(pars, collapse = ", "), call. = FALSE)
  }
  if (!any(sel)) stop("'which' selects no profiled parameter", call. = FALSE)
  pars[sel]
}

# Strip labels as lme4 writes them: sigma[1], ..., sigma for .sig01, ...,
# .sigma, and log(sigma[1]), sigma[1]^2, ... for the names logProf() and
# varianceProf() give; other names as they are.
profile_strip <- function(nms) {
  lattice::strip.custom(factor.levels = as.expression(profile_strip_labels(nms)))
}

# The expressions of profile_strip() as a list.
profile_strip_labels <- function(nms) {
  lapply(nms, function(n) {
    switch(n,
      .sigma = quote(sigma),
      .lsigma = quote(log(sigma)),
      .sigmasq = quote(sigma^2),
      if (grepl("^\\.sig[0-9]+$", n)) {
        bquote(sigma[.(as.integer(substring(n, 5L)))])
      } else if (grepl("^\\.lsig[0-9]+$", n)) {
        bquote(log(sigma[.(as.integer(substring(n, 6L)))]))
      } else if (grepl("^\\.sigsq[0-9]+$", n)) {
        bquote({sigma[.(as.integer(substring(n, 7L)))]}^2)
      } else {
        n
      })
  })
}

check_conf <- function(conf) {
  if (!is.numeric(conf) || !length(conf) || any(!is.finite(conf) | conf <= 0 | conf >= 1)) {
    stop("values of 'conf' must be strictly between 0 and 1", call. = FALSE)
  }
  invisible(NULL)
}

#' lattice plots of a likelihood profile
#'
#' Plots of a profile from [profile.lmm()], as lme4 draws the profiles of its
#' fits:
#' * `xyplot()` (and `plot()`): for each parameter, the signed square root
#'   of the deviance increase, `zeta`, against the parameter, with vertical
#'   lines at the ends of the profile confidence intervals of levels `conf`
#'   (`absVal = TRUE` plots `|zeta|`). A straight line means that the Wald
#'   interval is accurate.
#' * `densityplot()`: the densities that the profiles imply for the
#'   parameters (`dnorm(zeta)` times the slope of `zeta`).
#' * `splom()`: for every pair of parameters, the profile traces (each
#'   parameter's conditional estimate along the other's profile) and the
#'   approximate joint confidence contours of levels `conf`; above the
#'   diagonal on the parameters' scales, below it on the `zeta` scales.
#'
#' Each profile is interpolated by a spline of `zeta` on the parameter and by
#' its inverse; a profile that is not monotonic is drawn from its points
#' (with lme4's warning) in `xyplot()`, and skipped, with a warning, by
#' `densityplot()`.
#'
#' @param x An object of class `"lmmprofile"` from [profile.lmm()].
#' @param data Not used (lattice's generics have it); an error if given.
#' @param levels Values of `zeta` (for `splom()`, radii of the contours on
#'   the `zeta` scale) at which to draw the intervals; by default those of
#'   the confidence levels `conf`.
#' @param conf Confidence levels.
#' @param absVal Logical: plot `|zeta|`?
#' @param scales lattice's `scales`; the x scales are free by default.
#' @param which Parameters to plot: indices or names among the profiled
#'   ones, or `"theta_"` (all variance parameters) and `"beta_"` (all fixed
#'   effects); default all.
#' @param npts,upper For `densityplot()`: the number of points of each
#'   curve, which spans the central `2 * upper - 1` of the density.
#' @param draw.lower,draw.upper For `splom()`: draw the panels below and
#'   above the diagonal?
#' @param y Not used (present for the `plot()` generic); an error if given.
#' @param ... Further arguments passed to [lattice::xyplot()] or
#'   [lattice::splom()] (`layout`, `main`, `col`, ...).
#' @return A `"trellis"` object, which prints the plot.
#' @seealso [profile.lmm()], [confint.lmm()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' library(lattice)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' pr <- profile(fit)
#' xyplot(pr)
#' xyplot(pr, absVal = TRUE, which = "theta_")
#' densityplot(pr)
#' splom(pr)
#' plot(pr)
#' @name lattice-profile
#' @aliases xyplot.lmmprofile densityplot.lmmprofile splom.lmmprofile
#'   plot.lmmprofile
NULL

#' @rdname lattice-profile
#' @exportS3Method lattice::xyplot lmmprofile
xyplot.lmmprofile <- function(x, data = NULL,
                              levels = sqrt(stats::qchisq(pmax.int(0, pmin.int(1, conf)), 1)),
                              conf = c(50, 80, 90, 95, 99) / 100, absVal = FALSE,
                              scales = NULL, which = NULL, ...) {
  if (!is.null(data)) stop("xyplot() of a profile does not use 'data'", call. = FALSE)
  check_conf(conf)
  check_flag(absVal, "absVal", "xyplot()")
  pars <- profile_which(x, which)
  if (!is.numeric(levels)) stop("'levels' must be numeric", call. = FALSE)
  levels <- sort(levels[is.finite(levels) & levels > 0])
  spl <- profile_splines(x)
  fwd <- spl$forward[pars]
  bwd <- spl$backward[pars]
  # a profile without splines: its points, joined by straight lines
  raw <- lapply(stats::setNames(pars, pars), function(p) {
    rows <- x[x$.par == p, , drop = FALSE]
    data.frame(x = rows[[p]], y = rows$.zeta)
  })
  zeta <- c(-rev(levels), 0, levels)
  pval <- unlist(lapply(pars, function(p) {
    if (inherits(bwd[[p]], "spline")) return(spline_at(bwd[[p]], zeta))
    r <- raw[[p]]
    if (length(r$x) >= 2L) suppressWarnings(stats::approx(r$y, r$x, xout = zeta)$y)
    else rep(NA_real_, length(zeta))
  }))
  fr <- data.frame(zeta = rep.int(zeta, length(pars)), pval = pval,
                   pnm = factor(rep(pars, each = length(zeta)), levels = pars))
  # as lme4: an end that cannot be read off is drawn at the spline's left end
  for (i in which(is.na(fr$pval))) {
    fr$zeta[i] <- 0
    f <- fwd[[as.character(fr$pnm[i])]]
    if (inherits(f, "spline")) fr$pval[i] <- min(f$knots)
  }
  ylab <- if (absVal) {
    fr$zeta <- abs(fr$zeta)
    expression("|" * zeta * "|")
  } else {
    expression(zeta)
  }
  sc <- list(x = list(relation = "free"))
  if (!is.null(scales)) {
    if (!is.list(scales)) stop("'scales' must be a list", call. = FALSE)
    if (!is.null(scales$x)) sc$x <- utils::modifyList(sc$x, scales$x)
    sc <- c(sc, scales[setdiff(names(scales), "x")])
  }
  panel <- function(x, y, ...) {
    lattice::panel.grid(h = -1, v = -1)
    p <- pars[lattice::packet.number()]
    lattice::lsegments(x, y, x, 0, ...)
    if (absVal) {
      y[y == 0] <- NA
      lattice::lsegments(x, y, rev(x), y)
    } else {
      lattice::panel.abline(h = 0, ...)
    }
    f <- fwd[[p]]
    if (inherits(f, "spline")) {
      lims <- lattice::current.panel.limits()$xlim
      k <- range(f$knots)
      pr <- stats::predict(f, seq(max(lims[1L], k[1L]), min(lims[2L], k[2L]), length.out = 101))
      lattice::panel.lines(pr$x, if (absVal) abs(pr$y) else pr$y)
    } else {
      r <- raw[[p]]
      lattice::panel.lines(r$x, if (absVal) abs(r$y) else r$y)
      lattice::panel.points(r$x, if (absVal) abs(r$y) else r$y, pch = "+")
      warning("bad profile for ", p, ": using linear interpolation", call. = FALSE)
    }
  }
  args <- list(...)
  if (is.null(args$strip)) args$strip <- profile_strip(pars)
  do.call(lattice::xyplot,
          c(list(zeta ~ pval | pnm, data = fr, scales = sc, ylab = ylab, xlab = NULL,
                 panel = panel), args))
}

#' @rdname lattice-profile
#' @export
plot.lmmprofile <- function(x, y, ...) {
  if (!missing(y)) stop("plot() of a profile does not use 'y'", call. = FALSE)
  xyplot.lmmprofile(x, ...)
}

#' @rdname lattice-profile
#' @exportS3Method lattice::densityplot lmmprofile
densityplot.lmmprofile <- function(x, data, npts = 201, upper = 0.999, which = NULL, ...) {
  if (!missing(data)) stop("densityplot() of a profile does not use 'data'", call. = FALSE)
  if (!is.numeric(npts) || length(npts) != 1L || is.na(npts) || npts < 2) {
    stop("'npts' must be a number of at least 2", call. = FALSE)
  }
  npts <- as.integer(npts)
  if (!is.numeric(upper) || length(upper) != 1L || is.na(upper) || upper <= 0.5 ||
      upper >= 1) {
    stop("'upper' must be a number between 0.5 and 1", call. = FALSE)
  }
  pars <- profile_which(x, which)
  spl <- profile_splines(x)
  bad <- character()
  rng <- stats::setNames(vector("list", length(pars)), pars)
  dens <- rng
  for (p in pars) {
    b <- spl$backward[[p]]
    if (!inherits(b, "spline")) {
      bad <- c(bad, p)
      rng[[p]] <- dens[[p]] <- rep(NA_real_, npts)
      next
    }
    ends <- spline_at(b, c(-1, 1) * stats::qnorm(upper))
    if (is.na(ends[1L])) ends[1L] <- 0
    if (is.na(ends[2L])) {
      for (u in 1 - 10^seq(-4, -1, length.out = 21)) {
        if (!is.na(ends[2L] <- spline_at(b, stats::qnorm(u)))) break
      }
    }
    if (is.na(ends[2L])) {
      bad <- c(bad, p)
      rng[[p]] <- dens[[p]] <- rep(NA_real_, npts)
      next
    }
    v <- seq(ends[1L], ends[2L], length.out = npts)
    f <- spl$forward[[p]]
    rng[[p]] <- v
    dens[[p]] <- stats::dnorm(spline_at(f, v)) * stats::predict(f, v, deriv = 1L)$y
  }
  if (length(bad)) {
    warning("unreliable profiles for some variables skipped: ", paste(bad, collapse = ", "),
            call. = FALSE)
  }
  fr <- data.frame(pval = unlist(rng, use.names = FALSE),
                   pnm = factor(rep(pars, each = npts), levels = pars),
                   density = unlist(dens, use.names = FALSE))
  args <- list(...)
  if (is.null(args$strip)) args$strip <- profile_strip(pars)
  do.call(lattice::xyplot,
          c(list(density ~ pval | pnm, data = fr, type = c("l", "g"),
                 scales = list(relation = "free"), xlab = NULL), args))
}
