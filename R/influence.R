# Leverages (hat values) and Cook's distances of "lmm" and "glmm" fits, as
# lme4's hatvalues() and cooks.distance() for merMod objects compute them.
#
# The penalized least squares problem at the estimates has the augmented
# design A = W^1/2 [Z Lambda, X] and the system matrix
#   M = [Lambda'Z'WZ Lambda + I, Lambda'Z'WX; X'WZ Lambda, X'WX],
# so the hat matrix is A M^-1 A' and its diagonal is h_i = |L^-1 P a_i|^2
# for the sparse Cholesky factor P'LL'P = M and a_i the i-th row of A. The
# rows are solved in chunks, so memory stays O(n q) (the sparse A) plus
# O(chunk (q + p)) for the solves; the n x n hat matrix is only formed when
# asked for. For GLMMs, as in lme4, M is built with the working weights of
# the final PIRLS iteration while the rows a_i carry the prior weights.

#' Leverages and Cook's distances of a mixed model
#'
#' `hatvalues()` gives the diagonal of the hat matrix of the penalized least
#' squares problem at the estimates (fixed effects and conditional modes
#' together), `cooks.distance()` the Cook's distances computed from them, as
#' lme4's methods for `lmer()` and `glmer()` fits do:
#' `(r / (1 - h))^2 h / (sigma^2 p)` with `r` the Pearson residuals and `p`
#' the number of fixed effects. For `"glmm"` fits the system matrix uses the
#' working weights of the final PIRLS iteration and the rows the prior
#' weights (lme4's definition, for which lme4 warns that "the hat matrix may
#' not make sense for GLMMs"; values above 1 can occur).
#'
#' The leverages are computed with a sparse Cholesky factor and solved in
#' chunks of observations, in memory proportional to the number of
#' observations times the number of random effects per observation; the
#' n x n hat matrix is never formed unless `fullHatMatrix = TRUE`.
#'
#' @param model A fitted model of class `"lmm"` or `"glmm"`.
#' @param fullHatMatrix Logical: return the whole n x n hat matrix (only
#'   sensible for small n) instead of its diagonal?
#' @param ... Not used (an error if given).
#' @return A named numeric vector, one value per observation (padded with
#'   `NA` for rows omitted with `na.action = na.exclude`), or with
#'   `fullHatMatrix = TRUE` a matrix.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' head(hatvalues(fit))
#' sum(hatvalues(fit))   # effective number of parameters
#' head(cooks.distance(fit))
#' @importFrom stats hatvalues
#' @export
hatvalues.lmm <- function(model, fullHatMatrix = FALSE, ...) {
  check_no_dots(..., caller = "hatvalues()")
  check_flag(fullHatMatrix, "fullHatMatrix", "hatvalues()")
  if (fullHatMatrix) return(mer_hatvalues(model, full = TRUE))
  mer_per_obs(model, mer_hatvalues(model), pad = "predict")
}

#' @rdname hatvalues.lmm
#' @method hatvalues glmm
#' @export
hatvalues.glmm <- hatvalues.lmm

#' @rdname hatvalues.lmm
#' @importFrom stats cooks.distance
#' @export
cooks.distance.lmm <- function(model, ...) {
  check_no_dots(..., caller = "cooks.distance()")
  mer_per_obs(model, mer_cooks_distance(model, mer_hatvalues(model)), pad = "resid")
}

#' @rdname hatvalues.lmm
#' @method cooks.distance glmm
#' @export
cooks.distance.glmm <- cooks.distance.lmm

# Relative covariance factor Lambda (Q x Q, sparse), columns in the order of
# model.matrix(x, "random"): term by term, level by level, effect by effect.
mer_lambda <- function(x) {
  cnms <- lapply(x$reterms, `[[`, "cnms")
  thetas <- split_theta(unname(as.double(x$theta)), x$reterms)
  blocks <- lapply(seq_along(cnms), function(i) {
    q <- length(cnms[[i]])
    tm <- matrix(0, q, q)
    tm[lower.tri(tm, diag = TRUE)] <- thetas[[i]]
    Matrix::kronecker(Matrix::Diagonal(nlevels(x$reterms[[i]]$factor)),
                      Matrix::Matrix(tm, sparse = TRUE))
  })
  methods::as(Matrix::bdiag(blocks), "CsparseMatrix")
}

# Unpadded leverages (or, with `full`, the hat matrix) of a fit.
mer_hatvalues <- function(x, full = FALSE) {
  ZL <- methods::as(mer_model_matrix(x, "random") %*% mer_lambda(x), "CsparseMatrix")
  X <- x$X
  storage.mode(X) <- "double"
  prior <- as.vector(x$weights)
  fit_w <- if (is_glmm(x)) weights.glmm(x, type = "working") else prior
  sw <- sqrt(fit_w)
  U <- Matrix::Diagonal(x = sw) %*% ZL
  V <- Matrix::Matrix(sw * X, sparse = TRUE)
  Q <- ncol(ZL)
  M <- rbind(cbind(Matrix::crossprod(U) + Matrix::Diagonal(Q), Matrix::crossprod(U, V)),
             cbind(Matrix::crossprod(V, U), Matrix::crossprod(V)))
  M <- Matrix::forceSymmetric(methods::as(M, "CsparseMatrix"), uplo = "U")
  factor <- Matrix::Cholesky(M, perm = TRUE, LDL = FALSE)
  sp <- sqrt(prior)
  At <- Matrix::t(cbind(Matrix::Diagonal(x = sp) %*% ZL,
                        Matrix::Matrix(sp * X, sparse = TRUE)))
  solve_rows <- function(idx) {
    b <- At[, idx, drop = FALSE]
    Matrix::solve(factor, Matrix::solve(factor, b, system = "P"), system = "L")
  }
  n <- nrow(X)
  obs <- mer_obs_names(x, n)
  if (full) {
    B <- solve_rows(seq_len(n))
    H <- as.matrix(Matrix::crossprod(B))
    dimnames(H) <- list(obs, obs)
    return(H)
  }
  h <- numeric(n)
  chunk <- max(1L, floor(1e7 / (Q + ncol(X))))
  for (start in seq.int(1L, n, by = chunk)) {
    idx <- seq.int(start, min(n, start + chunk - 1L))
    h[idx] <- Matrix::colSums(solve_rows(idx)^2)
  }
  h
}

# Unpadded Cook's distances from the leverages `hat`.
mer_cooks_distance <- function(x, hat) {
  r <- if (is_glmm(x)) glmm_residuals(x, "pearson") else
    sqrt(as.vector(x$weights)) * (as.vector(x$y) - as.vector(x$fitted))
  p <- ncol(x$X)
  d <- (r / (1 - hat))^2 * hat / (stats::sigma(x)^2 * p)
  d[is.infinite(d)] <- NaN
  d
}
