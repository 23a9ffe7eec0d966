# Variance components of fitted "lmm" and "glmm" models: computing
# (VarCorr.lmm, VarCorr.glmm, both through mer_varcorr), formatting
# (format_varcorr) and the data-frame view (as.data.frame.VarCorr.lmm).
#
# Everything here reads stored fields of the fit (theta, sigma, reterms,
# flist), so it works on objects restored with readRDS(). The result of
# VarCorr.glmm() has class c("VarCorr.glmm", "VarCorr.lmm"): it has the same
# layout, so it is printed and converted by the "VarCorr.lmm" methods; its
# attribute "useSc" says whether there is a residual row (lme4's rule).

#' Variance and correlation components of a linear mixed model
#'
#' Extracts the estimated covariance matrices of the random effects, one per
#' random-effects term, in the layout of `lme4::VarCorr()`: each element is a
#' covariance matrix with attributes `"stddev"` (standard deviations) and
#' `"correlation"` (correlation matrix); the list carries the residual
#' standard deviation as attribute `"sc"` and `"useSc"` (`TRUE` for linear
#' mixed models).
#'
#' @param x A fitted model of class `"lmm"` (from [lmm()]).
#' @param sigma Residual standard deviation used to scale the relative
#'   covariance factors. When missing, the estimate `sigma(x)` is used (as
#'   lme4 does); give `sigma = 1` to get the relative covariance matrices.
#' @param ... Ignored.
#' @return An object of class `"VarCorr.lmm"`: a named list of covariance
#'   matrices (names are the grouping factors of the terms, made unique with
#'   [make.names()] when a factor has several terms, as in lme4).
#' @seealso [print.VarCorr.lmm()], [as.data.frame.VarCorr.lmm()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' vc <- VarCorr(fit)
#' vc
#' print(vc, comp = c("Variance", "Std.Dev."))
#' attr(vc$Subject, "correlation")
#' @export
VarCorr.lmm <- function(x, sigma = 1, ...) {
  if (missing(sigma)) sigma <- x$sigma
  mer_varcorr(x, sigma, use_sc = TRUE, class = "VarCorr.lmm")
}

#' Variance and correlation components of a generalized linear mixed model
#'
#' The covariance matrices of the random effects of a [glmm()] fit, in the
#' layout of `lme4::VarCorr()` for `glmer()` fits: one covariance matrix per
#' random-effects term with attributes `"stddev"` and `"correlation"`. For
#' families with a scale parameter (`Gamma`, `inverse.gaussian`, `gaussian`)
#' the relative covariance factors are scaled by `sigma(x)` and the printed
#' table has a `Residual` row, as in lme4; for `binomial` and `poisson` there
#' is no residual row (attribute `"useSc"` is `FALSE`).
#'
#' @param x A fitted model of class `"glmm"` (from [glmm()]).
#' @param sigma Scale used for the relative covariance factors; by default
#'   `sigma(x)` (1 for the binomial and Poisson families).
#' @param ... Ignored.
#' @return An object of class `c("VarCorr.glmm", "VarCorr.lmm")`: printed by
#'   [print.VarCorr.lmm()] and turned into lme4's long format by
#'   [as.data.frame.VarCorr.lmm()].
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
#'             family = binomial, data = lme4::cbpp)
#' vc <- VarCorr(fit)
#' vc
#' print(vc, comp = c("Variance", "Std.Dev."))
#' as.data.frame(vc)
#' @method VarCorr glmm
#' @export
VarCorr.glmm <- function(x, sigma = 1, ...) {
  if (is_extended_fit(x)) return(varcorr_components(x, if (!missing(sigma)) sigma, ...))
  if (missing(sigma)) sigma <- x$sigma
  mer_varcorr(x, sigma, use_sc = mer_use_sc(x), class = c("VarCorr.glmm", "VarCorr.lmm"))
}

# Covariance matrices sigma^2 Lambda_i Lambda_i' of every term, named by
# grouping factor, with lme4's attributes "sc" and "useSc".
mer_varcorr <- function(x, sigma, use_sc, class) {
  if (!is.numeric(sigma) || length(sigma) != 1L || !is.finite(sigma) || sigma < 0) {
    stop("VarCorr(): 'sigma' must be a single non-negative number, not ", deparse1(sigma),
         call. = FALSE)
  }
  cnms <- lapply(x$reterms, function(term) term$cnms)
  fl <- x$flist
  grp_names <- names(fl)[attr(fl, "assign")]
  if (anyDuplicated(grp_names)) grp_names <- make.names(grp_names, unique = TRUE)
  thetas <- split_theta(x$theta, x$reterms)
  mats <- Map(function(th, nms) term_covariance(th, nms, sigma), thetas, cnms)
  # Structured terms (lme4 2.x) say so: their table shows the structure's
  # correlation parameter instead of the whole correlation matrix.
  mats <- Map(function(m, rt) {
    if (!is.null(rt$structure)) {
      attr(m, "structure") <- rt$structure$type
      attr(m, "hom") <- isTRUE(rt$structure$hom)
    }
    m
  }, mats, x$reterms)
  names(mats) <- grp_names
  structure(mats, sc = unname(sigma), useSc = use_sc, class = class)
}

# Splits lme4's theta vector into one piece per term (each term's lower
# triangle of its relative covariance factor, column-major; the sizes come
# from the engine's covariance layout, theta_sizes()).
split_theta <- function(theta, reterms) {
  sizes <- theta_sizes(reterms)
  ends <- cumsum(sizes)
  lapply(seq_along(sizes), function(i) theta[seq.int(ends[i] - sizes[i] + 1L, length.out = sizes[i])])
}

# Covariance matrix sigma^2 T T' of one term from its part of theta, with the
# standard deviations and correlations attached as attributes.
term_covariance <- function(theta_part, cnms, sigma) {
  q <- length(cnms)
  relfac <- matrix(0, q, q)
  relfac[lower.tri(relfac, diag = TRUE)] <- theta_part
  covmat <- sigma^2 * tcrossprod(relfac)
  dimnames(covmat) <- list(cnms, cnms)
  sds <- sqrt(diag(covmat))
  names(sds) <- cnms
  corr <- covmat / outer(sds, sds)
  diag(corr) <- 1
  structure(covmat, stddev = sds, correlation = corr)
}

#' Print variance components
#'
#' Prints the table of variance components as lme4 does: one row per random
#' effect (and the residual), with group, name, the requested components and
#' the correlations in lower-triangular form.
#'
#' @param x An object of class `"VarCorr.lmm"` from [VarCorr.lmm()].
#' @param digits Number of significant digits.
#' @param comp Which components to show: any of `"Variance"` and
#'   `"Std.Dev."` (partial matching allowed).
#' @param formatter Function used to format the numbers (default [format()]),
#'   called with the values and `digits`.
#' @param ... Passed on to [print()] for the character matrix.
#' @return `x`, invisibly.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' print(VarCorr(fit), comp = "Variance")
#' @method print VarCorr.lmm
#' @export
print.VarCorr.lmm <- function(x, digits = max(3, getOption("digits") - 2),
                              comp = "Std.Dev.", formatter = format, ...) {
  print(format_varcorr(x, digits = digits, comp = comp, formatter = formatter),
        quote = FALSE, ...)
  invisible(x)
}

# Character matrix shown under "Random effects:" (and by print.VarCorr.lmm):
# columns Groups, Name, the chosen components and, when some term has more
# than one column, a block of correlation columns headed "Corr".
format_varcorr <- function(varcor, digits = max(3, getOption("digits") - 2),
                           comp = "Std.Dev.", formatter = format,
                           useScale = attr(varcor, "useSc"), ...) {
  components <- c("Variance", "Std.Dev.")
  which_comp <- pmatch(comp, components)
  if (anyNA(which_comp)) stop("Illegal 'comp': ", comp[is.na(which_comp)])
  comp <- components[which_comp]
  if (length(comp) == 0L) stop("Must *either* show variances or standard deviations")

  shown <- lapply(varcor, varcorr_rows_shown)
  sds <- Map(function(v, k) attr(v, "stddev")[k], varcor, shown)
  grp <- names(varcor)
  nms <- Map(function(v, k) colnames(v)[k], varcor, shown)
  if (isTRUE(useScale)) {
    sds <- c(sds, list(Residual = unname(attr(varcor, "sc"))))
    grp <- c(grp, "Residual")
    nms <- c(nms, list(""))
  }
  sizes <- lengths(sds)
  nrows <- sum(sizes)
  first_row <- cumsum(sizes) - sizes + 1L
  all_sds <- unlist(sds, use.names = FALSE)

  out <- matrix("", nrows, 2L + length(comp),
                dimnames = list(rep("", nrows), c("Groups", "Name", comp)))
  out[first_row, "Groups"] <- grp
  out[, "Name"] <- unlist(nms, use.names = FALSE)
  if ("Variance" %in% comp) out[, "Variance"] <- formatter(all_sds^2, digits = digits, ...)
  if ("Std.Dev." %in% comp) out[, "Std.Dev."] <- formatter(all_sds, digits = digits, ...)

  widths <- vapply(varcor, corr_width, 1L)
  if (any(widths > 1L)) out <- cbind(out, format_corr_block(varcor, max(widths), nrows, digits))
  out
}

# Rows of a term shown in the table: all its random effects, or only the
# first for a homogeneous cs() or ar1() term (one standard deviation and one
# correlation say everything), as lme4 2.x prints them.
varcorr_rows_shown <- function(v) {
  s <- attr(v, "structure")
  if (!is.null(s) && s %in% c("cs", "ar1") && isTRUE(attr(v, "hom"))) 1L else seq_len(nrow(v))
}

# Columns a term needs in the correlation block (the diagonal included):
# the whole lower triangle for unstructured and Toeplitz terms, one
# correlation for cs() and ar1(), none for diag().
corr_width <- function(v) {
  s <- attr(v, "structure")
  if (is.null(s) || s %in% c("us", "toep")) return(nrow(v))
  if (s == "diag") 1L else 2L
}

# Lower-triangular correlation entries of every term, stacked: one row per
# random effect, `width - 1` columns (the diagonal is never shown), padded
# with "" for narrower terms and the residual row(s).
format_corr_block <- function(varcor, width, nrows, digits) {
  ndig <- max(2, digits - 2)
  blocks <- lapply(varcor, function(v) {
    corr <- as.matrix(attr(v, "correlation"))
    q <- nrow(corr)
    s <- attr(v, "structure")
    if (!is.null(s) && !(s %in% c("us", "toep"))) {
      # cs() and ar1(): the correlation parameter, tagged, on the term's first row.
      rows <- length(varcorr_rows_shown(v))
      cells <- matrix("", rows, width - 1L)
      if (s != "diag" && q > 1L) {
        cells[1L, 1L] <- paste0(format(round(corr[2L, 1L], ndig), nsmall = ndig), " (", s, ")")
      }
      return(cells)
    }
    cells <- matrix(format(round(corr, ndig), nsmall = ndig), q, q)
    cells[!lower.tri(cells)] <- ""
    padded <- matrix("", q, width)
    padded[, seq_len(q)] <- cells
    padded[, seq_len(width - 1L), drop = FALSE]
  })
  block <- do.call(rbind, blocks)
  if (nrow(block) < nrows) {
    block <- rbind(block, matrix("", nrows - nrow(block), ncol(block)))
  }
  colnames(block) <- c("Corr", rep("", ncol(block) - 1L))
  block
}

#' Variance components as a data frame
#'
#' One row per variance or covariance parameter, with lme4's columns: `grp`
#' (grouping factor, or `"Residual"`), `var1`, `var2` (names of the random
#' effects; `var2` is `NA` for variances), `vcov` (variance or covariance) and
#' `sdcor` (standard deviation or correlation).
#'
#' @param x An object of class `"VarCorr.lmm"`.
#' @param row.names,optional Ignored (present for the generic).
#' @param order `"cov.last"` (per term: all variances, then the covariances)
#'   or `"lower.tri"` (per term: the lower triangle in column-major order).
#' @param ... Ignored.
#' @return A data frame with columns `grp`, `var1`, `var2`, `vcov`, `sdcor`.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' as.data.frame(VarCorr(fit))
#' as.data.frame(VarCorr(fit), order = "lower.tri")
#' @method as.data.frame VarCorr.lmm
#' @export
as.data.frame.VarCorr.lmm <- function(x, row.names = NULL, optional = FALSE,
                                      order = c("cov.last", "lower.tri"), ...) {
  order <- match_choice(order)
  pieces <- Map(function(v, grp) varcorr_term_rows(v, grp, lower_tri = order == "lower.tri"),
                x, names(x))
  if (isTRUE(attr(x, "useSc"))) {
    sc <- attr(x, "sc")
    pieces <- c(pieces, list(data.frame(grp = "Residual", var1 = NA_character_,
                                        var2 = NA_character_, vcov = sc^2,
                                        sdcor = sc, stringsAsFactors = FALSE)))
  }
  out <- do.call(rbind, unname(pieces))
  rownames(out) <- NULL
  out
}

# Rows of as.data.frame.VarCorr.lmm for one term: the variances, then the
# covariances (lower triangle, column-major), or with `lower_tri = TRUE` the
# whole lower triangle in column-major order.
varcorr_term_rows <- function(v, grp, lower_tri) {
  q <- nrow(v)
  nm <- rownames(v)
  corr <- attr(v, "correlation")
  sds <- attr(v, "stddev")
  low <- which(lower.tri(v), arr.ind = TRUE) # column-major: by column, then row
  rows <- data.frame(
    grp = grp,
    var1 = c(nm, nm[low[, "col"]]),
    var2 = c(rep(NA_character_, q), nm[low[, "row"]]),
    vcov = unname(c(diag(v), v[low])),
    sdcor = unname(c(sds, corr[low])),
    stringsAsFactors = FALSE
  )
  if (lower_tri) {
    # position of each lower-triangle element (incl. diagonal) in `rows`
    pos <- matrix(0L, q, q)
    diag(pos) <- seq_len(q)
    pos[low] <- q + seq_len(nrow(low))
    rows <- rows[pos[lower.tri(pos, diag = TRUE)], , drop = FALSE]
  }
  rows
}
