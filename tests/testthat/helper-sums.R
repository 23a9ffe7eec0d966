# The grouped sums of the row-free fit (lmm_sums_fit()), computed here in R
# from the rows of an in-memory lmm() fit, so that the tests of the engine
# side do not depend on any database: per grouping factor and level the
# weighted Z'Z and F'Z blocks, per pair of factors and co-occurring level
# pair Z_i'WZ_j, and F'WF, F = [X - x_shift, y - offset - y_shift] (see
# ?lmm_sums_fit). Sums are formed with rowsum() over products of columns.

# Per group, the column-major a x b block sum(w u v') of every group, laid
# out group after group (rowsum() sorts the groups).
sums_blocks <- function(u, v, w, g) {
  prods <- do.call(cbind, lapply(seq_len(ncol(v)), function(b) w * u * v[, b]))
  as.vector(t(rowsum(prods, g, reorder = TRUE)))
}

# The "sums inputs" of the model of `fit` (an lmm() fit): what a database
# would send, with optional shifts of the fixed-effect columns (`x_shift`,
# one per column, 0 for the intercept) and of the response (`y_shift`), and
# the level pairs listed in a scrambled order (the engine must not rely on
# the order of a GROUP BY's result). With `unweighted` (default) also the
# optional entries a database sends: sums$xx, sums$x_binary and xlevels.
sums_inputs_of_fit <- function(fit, x_shift = NULL, y_shift = 0,
                               source = "rows summed in R (test)", unweighted = TRUE) {
  X <- unclass(fit$X)
  p <- ncol(X)
  if (is.null(x_shift)) x_shift <- rep(0, p)
  n <- nrow(X)
  w <- if (isTRUE(fit$has_weights)) as.vector(fit$weights) else rep(1, n)
  off <- if (isTRUE(fit$has_offset)) as.vector(fit$offset) else rep(0, n)
  f <- cbind(sweep(X[, seq_len(p), drop = FALSE], 2L, x_shift), fit$y - off - y_shift)
  assign <- attr(fit$flist, "assign")
  k <- length(fit$flist)
  zs <- lapply(seq_len(k), function(i) {
    do.call(cbind, lapply(fit$reterms[assign == i], function(rt) rt$Z))
  })
  codes <- lapply(seq_len(k), function(i) as.integer(fit$reterms[[which(assign == i)[1L]]]$factor))
  factors <- lapply(seq_len(k), function(i) {
    z <- zs[[i]]
    list(n_levels = nlevels(fit$flist[[i]]), q = ncol(z),
         zz = sums_blocks(z, z, w, codes[[i]]),
         fz = sums_blocks(f, z, w, codes[[i]]))
  })
  pairs <- list()
  for (i in seq_len(k)) for (j in seq_len(k)) if (i < j) {
    lj_n <- nlevels(fit$flist[[j]])
    key <- (codes[[i]] - 1) * lj_n + codes[[j]]
    zz <- matrix(sums_blocks(zs[[i]], zs[[j]], w, key), ncol = length(unique(key)))
    keys <- sort(unique(key))
    scramble <- rev(seq_along(keys))
    pairs[[length(pairs) + 1L]] <- list(
      i = i, j = j, li = as.integer((keys[scramble] - 1) %/% lj_n + 1),
      lj = as.integer((keys[scramble] - 1) %% lj_n + 1),
      zz = as.vector(zz[, scramble]))
  }
  reterms <- lapply(fit$reterms, function(rt) {
    rt$factor <- rt$factor[0L]
    rt$Z <- NULL
    rt
  })
  flist <- lapply(fit$flist, function(fl) fl[0L])
  attr(flist, "assign") <- assign
  sums <- list(n = n, sum_log_w = sum(log(w)), p = p, ff = crossprod(f * sqrt(w)),
               factors = factors, pairs = pairs)
  xlevels <- NULL
  if (unweighted) {
    # the optional unweighted sums of (1, X - x_shift) and the 0/1 columns
    sums$xx <- crossprod(cbind(1, f[, seq_len(p), drop = FALSE]))
    sums$x_binary <- apply(X, 2L, function(z) all(z == 0 | z == 1))
    ctr <- names(attr(fit$X, "contrasts"))
    xlevels <- lapply(stats::setNames(ctr, ctr), function(v) {
      z <- fit$frame[[v]]
      if (is.logical(z)) c("FALSE", "TRUE") else levels(factor(z))
    })
  }
  list(formula = fit$formula, n = n, n_dropped = 0,
       X_names = colnames(X), X_assign = attr(fit$X, "assign"),
       X_contrasts = attr(fit$X, "contrasts"),
       reterms = reterms, flist = flist,
       has_weights = isTRUE(fit$has_weights), has_offset = isTRUE(fit$has_offset),
       x_shift = x_shift, y_shift = y_shift,
       sums = sums, xlevels = xlevels, source = source)
}
