# splom() of a likelihood profile ("lmmprofile"): the profile-pair plot of
# lme4's splom.thpr (Bates & Watts, 1988, sec. 6.1). For parameters i < j,
# the profile traces (j's conditional estimate along i's profile and i's
# along j's, on the zeta scale of each parameter's own profile) and the
# approximate joint confidence contours through the four points where a
# contour of radius `level` meets the traces, interpolated as periodic
# splines in the angle parametrisation zeta_i = level * cos(angle_i).

#' @rdname lattice-profile
#' @exportS3Method lattice::splom lmmprofile
splom.lmmprofile <- function(x, data,
                             levels = sqrt(stats::qchisq(pmax.int(0, pmin.int(1, conf)), 2)),
                             conf = c(50, 80, 90, 95, 99) / 100, which = NULL,
                             draw.lower = TRUE, draw.upper = TRUE, ...) {
  if (!missing(data)) stop("splom() of a profile does not use 'data'", call. = FALSE)
  check_conf(conf)
  check_flag(draw.lower, "draw.lower", "splom()")
  check_flag(draw.upper, "draw.upper", "splom()")
  if (!is.numeric(levels) || !length(levels) || any(!is.finite(levels) | levels <= 0)) {
    stop("'levels' must be positive numbers", call. = FALSE)
  }
  pars <- profile_which(x, which)
  np <- length(pars)
  if (np < 2L) stop("a scatterplot matrix needs at least two profiled parameters", call. = FALSE)
  sds <- grep("^(\\.sig[0-9]+|(zi\\.)?sd_)", pars, value = TRUE)
  if (any(vapply(sds, function(p) any(x$.zeta == 0 & x[[p]] == 0), NA))) {
    warning("splom is unreliable for singular fits", call. = FALSE)
  }
  spl <- profile_splines(x)
  bad <- pars[!vapply(spl$backward[pars], inherits, NA, what = "spline")]
  if (length(bad)) {
    stop("the profile of ", paste(bad, collapse = ", "), " is not monotonic: ",
         "no profile-pair plot (drop it with 'which')", call. = FALSE)
  }
  fwd <- spl$forward[pars]
  bwd <- spl$backward[pars]
  mlev <- max(levels)
  # each parameter's range: its values at zeta = -+max(levels), within its profile
  lims <- vapply(pars, function(p) {
    k <- range(fwd[[p]]$knots)
    e <- spline_at(bwd[[p]], c(-mlev, mlev))
    c(max(e[1L], k[1L], na.rm = TRUE), min(e[2L], k[2L], na.rm = TRUE))
  }, numeric(2))
  # the profiles with every parameter on the zeta scale of its own profile
  zt <- x[x$.par %in% pars, c(pars, ".par"), drop = FALSE]
  for (p in pars) zt[[p]] <- spline_at(fwd[[p]], zt[[p]])
  trace_spline <- function(along, other) {
    rows <- zt[zt$.par == along & is.finite(zt[[along]]) & is.finite(zt[[other]]), ,
               drop = FALSE]
    rows <- rows[order(rows[[along]]), , drop = FALSE]
    rows <- rows[!duplicated(rows[[along]]), , drop = FALSE]
    splines::interpSpline(rows[[along]], rows[[other]])
  }
  # pairs[[hi]][[lo]] for lo < hi: the traces (zeta_hi along lo's profile,
  # zeta_lo along hi's) and the contours
  pairs <- lapply(seq_len(np), function(hi) {
    lapply(seq_len(np), function(lo) {
      if (lo >= hi) return(NULL)
      s_lo <- trace_spline(pars[lo], pars[hi])
      s_hi <- trace_spline(pars[hi], pars[lo])
      list(s_lo = s_lo, s_hi = s_hi, contours = pair_contours(s_lo, s_hi, levels))
    })
  })
  zlim <- c(-1.07, 1.07) * mlev
  # below the diagonal (i < j): x = parameter j, y = parameter i, zeta scales
  lower <- function(x, y, i, j, ...) {
    tr <- pairs[[j]][[i]]
    grid::pushViewport(grid::viewport(xscale = zlim, yscale = zlim))
    on.exit(grid::popViewport(1))
    tick <- diff(zlim) / 50
    lattice::panel.grid(h = -1, v = -1)
    a <- stats::predict(tr$s_lo)
    lattice::llines(a$y, a$x, ...)
    b <- stats::predict(tr$s_hi)
    lattice::llines(b$x, b$y, ...)
    levs <- c(-rev(levels), 0, levels)
    ta <- stats::predict(tr$s_lo, levs)
    lattice::lsegments(ta$y - tick, ta$x, ta$y + tick, ta$x, ...)
    tb <- stats::predict(tr$s_hi, levs)
    lattice::lsegments(tb$x, tb$y - tick, tb$x, tb$y + tick, ...)
    for (k in seq_along(levels)) {
      lattice::llines(tr$contours[k, , "hi"], tr$contours[k, , "lo"], ...)
    }
  }
  # above the diagonal (i > j): x = parameter j, y = parameter i, their scales
  upper <- function(x, y, i, j, ...) {
    tr <- pairs[[i]][[j]]
    lo <- pars[j]
    hi <- pars[i]
    lattice::panel.grid(h = -1, v = -1)
    a <- stats::predict(tr$s_lo)
    lattice::llines(spline_at(bwd[[lo]], a$x), spline_at(bwd[[hi]], a$y), ...)
    b <- stats::predict(tr$s_hi)
    lattice::llines(spline_at(bwd[[lo]], b$y), spline_at(bwd[[hi]], b$x), ...)
    for (k in seq_along(levels)) {
      lattice::llines(spline_at(bwd[[lo]], tr$contours[k, , "lo"]),
                      spline_at(bwd[[hi]], tr$contours[k, , "hi"]), ...)
    }
  }
  blank <- function(...) NULL
  labels <- profile_strip_labels(pars)
  # the diagonal: the parameter's name, its own scale on the sides next to
  # the panels above and to the left, the zeta scale next to those below and
  # to the right
  diag <- function(x = NULL, varname = NULL, limits, i, j, ...) {
    add_text <- lattice::trellis.par.get("add.text")
    grid::grid.text(labels[[j]], gp = grid::gpar(col = add_text$col, cex = add_text$cex))
    at <- pretty(limits)
    sides <- if (j == 1L) "top" else if (j == np) "left" else c("left", "top")
    # half axes where both scales meet, so that their labels do not overlap
    for (side in sides) {
      lattice::panel.axis(side = side, at = at, labels = format(at, trim = TRUE),
                          check.overlap = TRUE, half = side == "top" && j > 1L, tck = 1,
                          rot = 0)
    }
    grid::pushViewport(grid::viewport(xscale = zlim, yscale = zlim))
    on.exit(grid::popViewport(1))
    zat <- pretty(zlim)
    lattice::panel.axis(side = if (j == 1L) "right" else "bottom", at = zat,
                        labels = format(zat, trim = TRUE), check.overlap = TRUE, half = TRUE,
                        which.half = if (j == 1L) "lower" else "upper", tck = 1, rot = 0)
  }
  pfr <- lims
  colnames(pfr) <- pars
  lattice::splom(~pfr, lower.panel = if (draw.lower) lower else blank,
                 upper.panel = if (draw.upper) upper else blank, diag.panel = diag, ...)
}

# The contours of radii `levels` (on the zeta scales) of a pair of
# parameters, from the trace s_lo (zeta_hi as a function of zeta_lo along
# lo's profile) and s_hi (zeta_lo along hi's). With zeta_lo = r cos(a_lo)
# and zeta_hi = r cos(a_hi), the contour of radius r meets the traces at
# four known angle pairs (a_lo = 0 or pi on s_lo, a_hi = 0 or pi on s_hi).
# In the coordinates m = (a_lo + a_hi) / 2 and d = a_lo - a_hi, folded so
# that d >= 0 (m takes d's sign), the difference d is a smooth periodic
# function of m, interpolated by a periodic spline through the four points.
# Returns an array [level, point, c("lo", "hi")] of zeta values.
pair_contours <- function(s_lo, s_hi, levels, nseg = 101L) {
  angle <- function(v) acos(pmax.int(-0.999, pmin.int(0.999, v)))
  out <- array(0, c(length(levels), nseg + 1L, 2L),
               dimnames = list(NULL, NULL, c("lo", "hi")))
  for (k in seq_along(levels)) {
    r <- levels[k]
    a_lo <- c(0, angle(spline_at(s_hi, r) / r), pi, angle(spline_at(s_hi, -r) / r))
    a_hi <- c(angle(spline_at(s_lo, r) / r), 0, angle(spline_at(s_lo, -r) / r), pi)
    d <- a_lo - a_hi
    m <- sign(d) * (a_lo + a_hi) / 2
    o <- order(m)
    ps <- splines::periodicSpline(m[o], abs(d)[o], period = 2 * pi)
    pr <- stats::predict(ps, nseg = nseg)
    out[k, , "lo"] <- r * cos(pr$x + pr$y / 2)
    out[k, , "hi"] <- r * cos(pr$x - pr$y / 2)
  }
  out
}
