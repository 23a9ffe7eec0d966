# rePCA(): principal components of each grouping factor's relative
# covariance factor, as lme4::rePCA(): the singular value decomposition of
# the factor T (Sigma = sigma^2 T T'), its singular values the standard
# deviations of the components in units of the residual standard deviation.

#' Principal components of the random-effects covariance matrices
#'
#' As `lme4::rePCA()`: for each grouping factor, the singular value
#' decomposition of its relative covariance factor (the factors of all its
#' terms joined block-diagonally; [getME()]'s `"Tlist"`). The singular values
#' (`sdev`) are the standard deviations of the principal components of the
#' random effects, relative to the residual standard deviation for linear
#' mixed models (and for GLMM families with a scale); `rotation` holds their
#' directions. Components whose `sdev` is near 0 show a covariance matrix of
#' less than full rank (a singular fit, see [isSingular()]): the data support
#' a simpler random-effects structure.
#'
#' @param x A fitted model.
#' @return A list with one `"prcomp"` object per grouping factor (`sdev`,
#'   `rotation`, `center = FALSE`, `scale = FALSE`), of class
#'   `c("mixedrs_prcomplist", "prcomplist")`; `summary()` gives each
#'   component's share of the variance, as for lme4's result.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' pcs <- rePCA(fit)
#' pcs$Subject$sdev
#' summary(pcs)
#' @export
rePCA <- function(x) UseMethod("rePCA")

#' @rdname rePCA
#' @export
rePCA.mixedrs_fit <- function(x) {
  factors <- getME(x, "Tlist")
  groups <- unique(names(factors))
  names(groups) <- groups
  components <- lapply(groups, function(g) {
    blocks <- factors[names(factors) == g]
    svd_of <- svd(as.matrix(Matrix::bdiag(unname(blocks))), nv = 0L)
    structure(list(sdev = svd_of$d, rotation = svd_of$u, center = FALSE, scale = FALSE),
              class = "prcomp")
  })
  structure(components, class = c("mixedrs_prcomplist", "prcomplist"))
}

#' @rdname rePCA
#' @export
rePCA.default <- function(x) lme4_fallback("rePCA", x)

#' @rdname rePCA
#' @param object The result of `rePCA()`.
#' @param ... Not used.
#' @method summary mixedrs_prcomplist
#' @export
summary.mixedrs_prcomplist <- function(object, ...) {
  check_no_dots(..., caller = "summary() of rePCA()")
  lapply(unclass(object), summary)
}

#' @rdname rePCA
#' @param x For `print()`: the result of `rePCA()`.
#' @method print mixedrs_prcomplist
#' @export
print.mixedrs_prcomplist <- function(x, ...) {
  # as lme4's result prints (its class "prcomplist" shown, ours not)
  shown <- x
  class(shown) <- "prcomplist"
  print.default(shown, ...)
  invisible(x)
}

# Registered on lme4's generic when lme4's namespace is loaded (see
# R/generics.R).
#' @rawNamespace S3method(lme4::rePCA, mixedrs_fit)
NULL
