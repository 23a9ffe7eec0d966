# lme4's object API on mixedrs fits: getME() and the kind predicates
# isREML(), isLMM(), isGLMM(), isNLMM(). The generics are in R/generics.R.
#
# getME() reads the fit's stored pieces (X, the terms' raw columns and
# factors, theta, beta, u, devcomp) and builds from them what lme4 stores in
# its merPredD object: Zt and Lambdat as Matrix sparse matrices, Lind, Gp,
# and, when asked for, the blocks of the Cholesky factor of the penalized
# least squares system (L, RZX, RX), computed with the Matrix package as
# lme4's C++ computes them, at the fit's estimates.

# The names getME() knows, in lme4's order, then mixedrs' additions.
getME_names <- c("X", "Z", "Zt", "Ztlist", "mmList", "y", "mu", "u", "b",
                 "Gp", "Tp", "L", "Lambda", "Lambdat", "Lind", "Tlist", "A",
                 "RX", "RZX", "sigma", "flist", "fixef", "beta", "theta", "ST",
                 "REML", "is_REML", "n_rtrms", "n_rfacs", "N", "n", "p", "q",
                 "p_i", "l_i", "q_i", "k", "m_i", "m", "cnms", "devcomp",
                 "offset", "lower", "devfun", "glmer.nb.theta",
                 "weights", "upper", "par")

#' @rdname getME
#' @export
getME.mixedrs_fit <- function(object, name = getME_names, ...) {
  check_no_dots(..., caller = "getME()")
  if (missing(name)) stop("'name' must not be missing", call. = FALSE)
  name <- as.character(name)
  if (length(name) > 1L) {
    names(name) <- name
    return(lapply(name, getME.mixedrs_fit, object = object))
  }
  if (identical(name, "ALL")) {
    # (a glmmTMB-style or negative binomial fit has no deviance function yet:
    # getME(, "devfun") says so, "ALL" leaves it out)
    all <- if (!is.null(object$extended)) setdiff(getME_names, "devfun") else getME_names
    return(sapply(all, getME.mixedrs_fit, object = object, simplify = FALSE))
  }
  name <- match.arg(name, getME_names)
  if (name %in% c("X", "Z", "Zt", "Ztlist", "mmList", "y", "mu", "L", "A", "RX", "RZX",
                  "offset", "weights")) {
    require_rows(object, paste0("getME(, \"", name, "\")"))
  }
  switch(name,
         X = object$X,
         Z = Matrix::t(mer_Zt(object)),
         Zt = mer_Zt(object),
         Ztlist = mer_Ztlist(object),
         mmList = mer_mmList(object),
         y = as.vector(object$y),
         mu = unname(as.vector(if (is_glmm(object)) object$mu else object$fitted)),
         u = as.vector(object$u),
         b = Matrix::crossprod(mer_Lambdat(object), as.vector(object$u)),
         Gp = mer_Gp(object),
         Tp = mer_Tp(object),
         L = mer_pls_factors(object)$L,
         Lambda = Matrix::t(mer_Lambdat(object)),
         Lambdat = mer_Lambdat(object),
         Lind = mer_Lind(object),
         Tlist = mer_Tlist(object),
         A = mer_Lambdat(object) %*% mer_Zt(object),
         RX = mer_pls_factors(object)$RX,
         RZX = mer_pls_factors(object)$RZX,
         sigma = sigma(object),
         flist = object$flist,
         fixef = mer_fixef(object),
         beta = unname(object$beta),
         theta = object$theta,
         ST = mer_ST(object),
         REML = object$devcomp$dims[["REML"]],
         is_REML = isREML.mixedrs_fit(object),
         n_rtrms = length(object$reterms),
         n_rfacs = length(object$flist),
         N = object$devcomp$dims[["N"]],
         n = object$devcomp$dims[["n"]],
         p = object$devcomp$dims[["p"]],
         q = object$devcomp$dims[["q"]],
         p_i = mer_p_i(object),
         l_i = vapply(object$flist, nlevels, 1L),
         q_i = mer_p_i(object) * vapply(object$flist, nlevels, 1L),
         k = length(object$reterms),
         m_i = choose(mer_p_i(object) + 1, 2),
         m = object$devcomp$dims[["nth"]],
         cnms = mer_cnms(object),
         devcomp = mer_devcomp(object),
         offset = as.vector(object$offset),
         lower = object$lower,
         devfun = mer_devfun(object),
         glmer.nb.theta = if (identical(object$extended$style, "glmer.nb")) {
           object$extended$sigma
         } else {
           NA
         },
         weights = as.vector(object$weights),
         upper = stats::setNames(rep(Inf, length(object$theta)), names(object$theta)),
         par = cov_par(object))
}

# ---------------------------------------------------------------------------
# The kind of model.

#' @rdname isREML
#' @export
isREML.mixedrs_fit <- function(x, ...) {
  check_no_dots(..., caller = "isREML()")
  !is_glmm(x) && isTRUE(x$REML)
}

#' @rdname isREML
#' @export
isLMM.mixedrs_fit <- function(x, ...) {
  check_no_dots(..., caller = "isLMM()")
  !is_glmm(x)
}

#' @rdname isREML
#' @export
isGLMM.mixedrs_fit <- function(x, ...) {
  check_no_dots(..., caller = "isGLMM()")
  is_glmm(x)
}

#' @rdname isREML
#' @export
isNLMM.mixedrs_fit <- function(x, ...) {
  check_no_dots(..., caller = "isNLMM()")
  FALSE
}

# ---------------------------------------------------------------------------
# Pieces of getME().

# The grouping factor names of the terms, with each term's columns (lme4's
# cnms: a list named by grouping factor, a name repeated for terms that share
# a factor).
mer_cnms <- function(object) {
  stats::setNames(lapply(object$reterms, `[[`, "cnms"),
                  vapply(object$reterms, `[[`, "", "group"))
}

mer_term_q <- function(object) vapply(object$reterms, function(t) length(t$cnms), 1L)

mer_term_levels <- function(object) vapply(object$reterms, function(t) nlevels(t$factor), 1L)

# Where each term's random effects begin in u and b (and its last end).
mer_Gp <- function(object) {
  c(0L, cumsum(mer_term_q(object) * mer_term_levels(object)))
}

# Where each term's elements of theta begin, lme4's "Tp" (named beg__ then
# the grouping factors).
mer_Tp <- function(object) {
  stats::setNames(c(0, cumsum(as.double(theta_sizes(object$reterms)))),
                  c("beg__", vapply(object$reterms, `[[`, "", "group")))
}

# Number of columns of each term's raw model matrix, named by the term.
mer_p_i <- function(object) {
  stats::setNames(mer_term_q(object), vapply(object$reterms, `[[`, "", "term"))
}

# Each term's raw model matrix (its columns before they are spread over the
# levels), named by the term, rows named as the model frame's.
mer_mmList <- function(object) {
  obs <- mer_obs_names(object, nrow(object$X))
  stats::setNames(lapply(object$reterms, function(t) {
    z <- as.matrix(t$Z)
    rownames(z) <- obs
    z
  }), vapply(object$reterms, `[[`, "", "term"))
}

# Zt (q x n, Matrix::dgCMatrix): rows term by term, level by level, column
# by column within a level; columns named by the rows of the model frame.
# Zeros are not stored (as in lme4's Zt, e.g. for a slope at 0).
mer_Zt <- function(object) {
  Zt <- Matrix::drop0(Matrix::t(mer_model_matrix(object, "random")))
  dimnames(Zt) <- list(rownames(Zt), mer_obs_names(object, ncol(Zt)))
  Zt
}

# The rows of Zt that hold each column of each term, named group.column.
mer_Ztlist <- function(object) {
  Zt <- mer_Zt(object)
  Gp <- mer_Gp(object)
  pieces <- list()
  nms <- character()
  for (i in seq_along(object$reterms)) {
    t <- object$reterms[[i]]
    q <- length(t$cnms)
    for (j in seq_len(q)) {
      rows <- Gp[i] + seq.int(j, Gp[i + 1L] - Gp[i], by = q)
      pieces[[length(pieces) + 1L]] <- Zt[rows, , drop = FALSE]
      nms <- c(nms, paste(t$group, t$cnms[j], sep = "."))
    }
  }
  stats::setNames(pieces, nms)
}

# Each term's relative covariance factor T (lower triangular, from its part
# of theta).
mer_Tlist <- function(object, theta = object$theta) {
  parts <- split_theta(unname(theta), object$reterms)
  out <- lapply(seq_along(parts), function(i) {
    q <- length(object$reterms[[i]]$cnms)
    tm <- matrix(0, q, q)
    tm[lower.tri(tm, diag = TRUE)] <- parts[[i]]
    tm
  })
  stats::setNames(out, vapply(object$reterms, `[[`, "", "group"))
}

# lme4's old "ST" form of each term's factor: the diagonal of T, and below
# it T's columns divided by their diagonal elements.
mer_ST <- function(object) {
  lapply(mer_Tlist(object), function(tm) {
    d <- diag(tm)
    st <- tm %*% diag(1 / d, nrow = length(d))
    diag(st) <- d
    st
  })
}

# The positions, within Lambdat's non-zeros in storage (column-major) order,
# of each term's factor: for level after level, column c of the block holds
# t(T)[r, c] = T[c, r] for rows r <= c. Returns the row (within the block),
# the column and the index into the term's theta of each non-zero of one
# block.
lambdat_block_pattern <- function(q) {
  rows <- unlist(lapply(seq_len(q), seq_len))
  cols <- rep.int(seq_len(q), seq_len(q))
  # T[cols, rows] is element (row = cols, col = rows) of the lower triangle,
  # whose column-major position among the q(q+1)/2 is:
  i <- cols
  j <- rows
  idx <- (j - 1L) * q - (j - 1L) * (j - 2L) / 2L + (i - j + 1L)
  list(row = rows, col = cols, theta = as.integer(idx))
}

# For each non-zero of Lambdat in storage order, the element of theta it
# holds (lme4's Lind).
mer_Lind <- function(object) {
  offsets <- c(0L, cumsum(theta_sizes(object$reterms)))
  unlist(lapply(seq_along(object$reterms), function(i) {
    t <- object$reterms[[i]]
    pat <- lambdat_block_pattern(length(t$cnms))
    rep.int(pat$theta + offsets[i], nlevels(t$factor))
  }))
}

# Lambdat (q x q, Matrix::dgCMatrix): block diagonal, one block t(T) per
# level of each term. Every element of the upper triangles is stored, also
# when it is zero (as lme4 stores it), so the pattern does not depend on
# theta.
mer_Lambdat <- function(object, theta = object$theta) {
  th <- unname(as.double(theta))
  Gp <- mer_Gp(object)
  offsets <- c(0L, cumsum(theta_sizes(object$reterms)))
  i_all <- list()
  p_all <- list()
  x_all <- list()
  nnz <- 0L
  for (k in seq_along(object$reterms)) {
    t <- object$reterms[[k]]
    q <- length(t$cnms)
    nl <- nlevels(t$factor)
    pat <- lambdat_block_pattern(q)
    base <- Gp[k] + rep((seq_len(nl) - 1L) * q, each = length(pat$row))
    i_all[[k]] <- base + rep.int(pat$row, nl) - 1L
    x_all[[k]] <- rep.int(th[offsets[k] + pat$theta], nl)
    # column pointers: column c of a block holds c non-zeros
    p_all[[k]] <- nnz + cumsum(rep.int(seq_len(q), nl))
    nnz <- nnz + nl * length(pat$row)
  }
  qtot <- Gp[length(Gp)]
  methods::new("dgCMatrix", i = as.integer(unlist(i_all)),
               p = as.integer(c(0L, unlist(p_all))), x = as.double(unlist(x_all)),
               Dim = c(qtot, qtot))
}

# lme4's starting theta (identity factors), which fixes the pattern from
# which lme4 chooses the fill-reducing permutation of L.
mer_theta0 <- function(object) {
  unlist(lapply(object$reterms, function(t) {
    q <- length(t$cnms)
    idx <- lower_tri_index(q)
    as.double(idx$row == idx$col)
  }))
}

# The weights of the penalized least squares system: the prior weights of an
# LMM; for a GLMM the PIRLS weights at the conditional modes,
# w * mu.eta(eta)^2 / variance(mu); for a family with extra parameters the
# weights of the fit's Laplace factor (weights(fit, "working")).
mer_pls_weights <- function(object) {
  w <- as.vector(object$weights)
  if (!is_glmm(object)) return(w)
  if (!is.null(object$extended)) return(as.vector(object$extended$working_weights))
  fam <- object$family
  eta <- as.vector(object$eta)
  mu <- as.vector(object$mu)
  w * fam$mu.eta(eta)^2 / fam$variance(mu)
}

# L, RZX and RX at the estimates, as lme4's merPredD computes them: L the
# sparse Cholesky factor (CHOLMOD, permuted as analyzed at the starting
# theta) of Lambdat U'U Lambda + I with U = W^1/2 Z; RZX = L^-1 P Lambdat U'V
# with V = W^1/2 X; RX the upper triangular Cholesky factor of
# V'V - RZX'RZX.
mer_pls_factors <- function(object) {
  w <- mer_pls_weights(object)
  if (any(w < 0)) return(signed_pls_factors(object, w))
  sqrtw <- sqrt(w)
  Zt <- mer_Zt(object)
  Ut <- Zt %*% Matrix::Diagonal(x = sqrtw)
  Lambdat0 <- mer_Lambdat(object, mer_theta0(object))
  L <- Matrix::Cholesky(Matrix::tcrossprod(Lambdat0 %*% Ut), LDL = FALSE, Imult = 1)
  LamtUt <- mer_Lambdat(object) %*% Ut
  L <- Matrix::update(L, LamtUt, mult = 1)
  X <- object$X
  V <- sqrtw * unname(as.matrix(X))
  RZX <- Matrix::solve(L, Matrix::solve(L, LamtUt %*% V, system = "P"), system = "L")
  RZX <- as.matrix(RZX)
  dimnames(RZX) <- list(NULL, colnames(X))
  RX <- chol(crossprod(V) - crossprod(RZX))
  dimnames(RX) <- list(colnames(X), colnames(X))
  list(L = L, RZX = RZX, RX = RX)
}

# mer_pls_factors() where some weights are negative (the observed
# information of a glmmTMB-style fit's Laplace factor at some rows): the same
# factors from Lambdat Z'WZ Lambda + I and X'WX - RZX'RZX formed with W
# itself, which is positive definite as a whole; the fill-reducing
# permutation from the pattern with |W| at the starting theta.
signed_pls_factors <- function(object, w) {
  Zt <- mer_Zt(object)
  weighted <- function(A, v) A %*% Matrix::Diagonal(x = v) %*% Matrix::t(A)
  Lt0 <- mer_Lambdat(object, mer_theta0(object)) %*% Zt
  L <- Matrix::Cholesky(Matrix::forceSymmetric(weighted(Lt0, abs(w))), LDL = FALSE, Imult = 1)
  LamtZt <- mer_Lambdat(object) %*% Zt
  L <- Matrix::update(L, Matrix::forceSymmetric(weighted(LamtZt, w)), mult = 1)
  X <- unname(as.matrix(object$X))
  RZX <- as.matrix(Matrix::solve(L, Matrix::solve(L, LamtZt %*% (w * X), system = "P"),
                                 system = "L"))
  dimnames(RZX) <- list(NULL, colnames(object$X))
  RX <- chol(crossprod(X, w * X) - crossprod(RZX))
  dimnames(RX) <- list(colnames(object$X), colnames(object$X))
  list(L = L, RZX = RZX, RX = RX)
}

# lme4's devcomp: the components of the criterion and the model's
# dimensions, with lme4's names (for linear mixed models without the GLMM
# elements tolPwrss, nAGQ and compDev).
mer_devcomp <- function(object) {
  cmp <- object$devcomp$cmp
  dims <- object$devcomp$dims
  if (is_glmm(object)) {
    cmp_names <- c("ldL2", "ldRX2", "wrss", "ussq", "pwrss", "drsum", "REML",
                   "dev", "sigmaML", "sigmaREML", "tolPwrss")
    dim_names <- c("N", "n", "p", "nmp", "q", "nth", "nAGQ", "compDev", "useSc",
                   "reTrms", "spFe", "REML", "GLMM", "NLMM")
  } else {
    cmp_names <- c("ldL2", "ldRX2", "wrss", "ussq", "pwrss", "drsum", "REML",
                   "dev", "sigmaML", "sigmaREML")
    dim_names <- c("N", "n", "p", "nmp", "q", "nth", "useSc", "reTrms", "spFe",
                   "REML", "GLMM", "NLMM")
  }
  dims <- c(dims, spFe = 0L)[dim_names]
  storage.mode(dims) <- "integer"
  list(cmp = cmp[cmp_names], dims = dims)
}

# The deviance function of the fit's parameters, as as.function() builds it
# (lme4's devfun: of theta for an LMM or an nAGQ = 0 GLMM, of c(theta, beta)
# for a GLMM's Laplace or quadrature criterion).
mer_devfun <- function(object) as.function(object)

# lme4 code that reads a merMod's slots (`object@devcomp`, as lme4's own
# REMLcrit() and deviance criteria do): the slots that have a meaning for a
# mixedrs fit, by lme4's name, from getME(). From R 4.3.0 `@` dispatches to
# S3 methods for objects that are not S4, and .onLoad registers this one;
# earlier R versions have no such dispatch (there, lme4 functions that read
# slots need as_lmerMod()).
mer_slot <- function(object, name) {
  switch(name,
    devcomp = mer_devcomp(object),
    beta = unname(fixef(object)),
    theta = getME.mixedrs_fit(object, "theta"),
    u = getME.mixedrs_fit(object, "u"),
    lower = getME.mixedrs_fit(object, "lower"),
    flist = getME.mixedrs_fit(object, "flist"),
    cnms = getME.mixedrs_fit(object, "cnms"),
    Gp = getME.mixedrs_fit(object, "Gp"),
    call = object$call,
    frame = stats::model.frame(object),
    optinfo = object$optinfo,
    stop("a mixedrs fit has no slot \"", name, "\" of lme4's merMod (it is a list, ",
         "not an S4 object): use getME(), or as_lmerMod() for lme4's object",
         call. = FALSE))
}
