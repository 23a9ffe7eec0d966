# Satterthwaite and Kenward-Roger degrees of freedom for t and F tests of the
# fixed effects of a linear mixed model, as lmerTest and pbkrtest define them.
# The expensive ingredients (derivatives of the deviance and of vcov(beta) in
# the variance parameters; the Kenward-Roger P, Q and trace terms formed in
# the random-effects space) come from the Rust core (src/rust/inference/ddf.rs); the
# contrast algebra, all p x p, is done here.

# The engine's ingredients for `method` at the estimates of `fit`.
ddf_parts <- function(fit, method) {
  if (method == "Kenward-Roger" && !isTRUE(fit$REML)) {
    stop("Kenward-Roger's method is only available for REML fits: refit with ",
         "REML = TRUE or use ddf = \"Satterthwaite\"", call. = FALSE)
  }
  inp <- fit_engine_inputs(fit)
  raw <- lmm_ddf_rs(inp, isTRUE(fit$REML), unname(cov_par(fit)), fit$sigma, method,
                    engine_threads(0L, control_of(fit, parent.frame())))
  p <- inp$p
  square <- function(v, d) matrix(v, d, d)
  parts <- if (method == "Satterthwaite") {
    list(vcov_beta = square(raw$vcov_beta, p),
         jacobian = lapply(raw$jacobian, square, d = p),
         vcov_varpar = square(raw$vcov_varpar, raw$k))
  } else {
    kr_adjust(phi = square(raw$phi, p), P = lapply(raw$P, square, d = p),
              Q = lapply(raw$Q, square, d = p), ktrace = square(raw$ktrace, raw$k),
              R = lapply(raw$R, function(r) if (length(r)) square(r, p)))
  }
  # A fit from shifted sums: the ingredients are in the shifted columns' beta.
  if (is_sums_fit(fit)) parts <- unshift_ddf_parts(parts, fit)
  c(parts, list(method = method, beta = unname(fit$beta), sigma = fit$sigma))
}

# Kenward-Roger's adjusted covariance of beta, from pbkrtest's ingredients:
# W = 2 I_E^-1 with I_E[r, s] = K_rs - 2 tr(Phi Q_rs) + tr(Phi P_r Phi P_s),
# Phi_A = Phi + 2 Phi (sum_rs W_rs (Q_rs - P_r Phi P_s - R_rs / 4)) Phi, where
# R_rs (second derivatives of V) is NULL for a covariance linear in its
# parameters (pbkrtest's case) and given for nonlinear structures (ar1, ...).
kr_adjust <- function(phi, P, Q, ktrace, R = NULL) {
  k <- length(P)
  q_index <- function(r, s) {
    if (r > s) { t <- r; r <- s; s <- t }
    (r - 1L) * k - (r - 1L) * (r - 2L) / 2L + (s - r + 1L)
  }
  info <- matrix(0, k, k)
  for (r in seq_len(k)) for (s in r:k) {
    v <- ktrace[r, s] - 2 * sum(phi * Q[[q_index(r, s)]]) +
      sum((phi %*% P[[r]]) * (P[[s]] %*% phi))
    info[r, s] <- info[s, r] <- v
  }
  ev <- eigen(info, symmetric = TRUE, only.values = TRUE)$values
  W <- if (min(abs(ev)) > 1e-10) 2 * solve(info) else 2 * pseudo_inverse(info)
  U <- matrix(0, nrow(phi), ncol(phi))
  for (r in seq_len(k)) for (s in seq_len(k)) {
    U <- U + W[r, s] * (Q[[q_index(r, s)]] - P[[r]] %*% phi %*% P[[s]])
    Rrs <- if (length(R)) R[[q_index(r, s)]]
    if (!is.null(Rrs)) U <- U - W[r, s] * Rrs / 4
  }
  U <- (U + t(U)) / 2
  list(vcov_beta = phi, vcov_adj = phi + 2 * phi %*% U %*% phi, P = P, W = W)
}

pseudo_inverse <- function(m, tol = 1e-10) {
  e <- eigen(m, symmetric = TRUE)
  keep <- abs(e$values) > tol * max(abs(e$values))
  e$vectors[, keep, drop = FALSE] %*% diag(1 / e$values[keep], sum(keep)) %*%
    t(e$vectors[, keep, drop = FALSE])
}

qform <- function(x, A) sum(x * (A %*% x))

# Estimate, standard error, df, t value and p-value of the contrast l'beta.
contrast_1d <- function(parts, l) {
  est <- sum(l * parts$beta)
  if (parts$method == "Satterthwaite") {
    var_con <- qform(l, parts$vcov_beta)
    grad <- vapply(parts$jacobian, function(J) qform(l, J), 0)
    df <- 2 * var_con^2 / qform(grad, parts$vcov_varpar)
  } else {
    var_con <- qform(l, parts$vcov_adj)
    df <- kr_ddf(parts, matrix(l, nrow = 1L))$ddf
  }
  se <- sqrt(var_con)
  tval <- est / se
  c(Estimate = est, "Std. Error" = se, df = df, "t value" = tval,
    "Pr(>|t|)" = 2 * stats::pt(abs(tval), df, lower.tail = FALSE))
}

# Kenward-Roger's statistics for the hypothesis L beta = 0 (L with full row
# rank q), from the adjusted covariance's P and W: pbkrtest's A1, A2, V0, V1,
# V2, rho, its denominator df and its F scaling.
kr_statistics <- function(parts, L) {
  phi <- parts$vcov_beta
  q <- nrow(L)
  Theta <- t(L) %*% solve(L %*% phi %*% t(L), L)
  k <- length(parts$P)
  A1 <- A2 <- 0
  TP <- Theta %*% phi
  for (r in seq_len(k)) for (s in r:k) {
    e <- if (r == s) 1 else 2
    ur <- TP %*% parts$P[[r]] %*% phi
    us <- TP %*% parts$P[[s]] %*% phi
    A1 <- A1 + e * parts$W[r, s] * sum(diag(ur)) * sum(diag(us))
    A2 <- A2 + e * parts$W[r, s] * sum(ur * t(us))
  }
  B <- (A1 + 6 * A2) / (2 * q)
  g <- ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
  denom <- 3 * q + 2 * (1 - g)
  c1 <- g / denom
  c2 <- (q - g) / denom
  c3 <- (q + 2 - g) / denom
  V0 <- 1 + c1 * B
  if (abs(V0) < 1e-10) V0 <- 0
  V1 <- 1 - c2 * B
  V2 <- 1 - c3 * B
  ratio <- if (abs(1 - A2 / q) < 1e-14 && abs(V1) < 1e-14) 1 else (1 - A2 / q) / V1
  rho <- ratio^2 * V0 / (V2 * q)
  ddf <- 4 + (q + 2) / (q * rho - 1)
  scaling <- if (abs(ddf - 2) < 0.01) 1 else ddf * (1 - A2 / q) / (ddf - 2)
  list(q = q, A1 = A1, A2 = A2, V0 = V0, V1 = V1, V2 = V2, rho = rho, ddf = ddf,
       scaling = scaling)
}

# Kenward-Roger's denominator df and F scaling for the hypothesis L beta = 0.
kr_ddf <- function(parts, L) {
  kr <- kr_statistics(parts, L)
  list(ddf = kr$ddf, scaling = kr$scaling)
}

# The F test of L beta = 0 as lmerTest reports it: Sum Sq, Mean Sq, NumDF,
# DenDF, F value, Pr(>F). Satterthwaite's multi-df F uses the eigen
# decomposition of L C L' (Fai and Cornelius); Kenward-Roger's the adjusted
# covariance and pbkrtest's scaled F.
contrast_md <- function(parts, L, eps = sqrt(.Machine$double.eps)) {
  empty <- c("Sum Sq" = NA, "Mean Sq" = NA, NumDF = NA, DenDF = NA,
             "F value" = NA, "Pr(>F)" = NA)
  if (!is.matrix(L)) L <- matrix(L, nrow = 1L)
  if (nrow(L) == 0L || anyNA(L)) return(empty)
  sigma2 <- parts$sigma^2
  ftable <- function(f_unscaled, ndf, ddf, scale = 1) {
    ms <- f_unscaled * sigma2
    f <- f_unscaled * scale
    c("Sum Sq" = ms * ndf, "Mean Sq" = ms, NumDF = ndf, DenDF = ddf,
      "F value" = f, "Pr(>F)" = stats::pf(f, ndf, ddf, lower.tail = FALSE))
  }
  if (parts$method == "Kenward-Roger") {
    # keep linearly independent rows (pbkrtest tests on rank(L) rows)
    qrL <- qr(t(L))
    L <- L[qrL$pivot[seq_len(qrL$rank)], , drop = FALSE]
    q <- nrow(L)
    Lb <- L %*% parts$beta
    wald <- drop(t(Lb) %*% solve(L %*% parts$vcov_adj %*% t(L), Lb))
    kr <- kr_ddf(parts, L)
    return(ftable(wald / q, q, kr$ddf, kr$scaling))
  }
  if (nrow(L) == 1L) {
    r <- contrast_1d(parts, drop(L))
    return(ftable(r[["t value"]]^2, 1L, r[["df"]]))
  }
  VL <- L %*% parts$vcov_beta %*% t(L)
  e <- eigen(VL, symmetric = TRUE)
  d <- e$values
  pos <- d > max(eps * d[1L], 0)
  q <- sum(pos)
  if (q == 0L) return(empty)
  PtL <- crossprod(e$vectors, L)[seq_len(q), , drop = FALSE]
  if (q == 1L) {
    r <- contrast_1d(parts, drop(PtL))
    return(ftable(r[["t value"]]^2, 1L, r[["df"]]))
  }
  t2 <- drop(PtL %*% parts$beta)^2 / d[seq_len(q)]
  nu <- vapply(seq_len(q), function(m) {
    grad <- vapply(parts$jacobian, function(J) qform(PtL[m, ], J), 0)
    2 * d[m]^2 / qform(grad, parts$vcov_varpar)
  }, 0)
  ftable(sum(t2) / q, q, f_test_ddf(nu))
}

# Degrees of freedom of the F statistic from those of its independent t
# components (Fai and Cornelius): 2E / (E - q), E = sum nu / (nu - 2).
f_test_ddf <- function(nu, tol = 1e-8) {
  if (length(nu) == 1L) return(nu)
  if (all(abs(diff(nu)) < tol)) return(mean(nu))
  if (any(nu <= 2)) return(2)
  E <- sum(nu / (nu - 2))
  2 * E / (E - length(nu))
}

# The fixed-effects table of summary() with df and Pr(>|t|) columns.
ddf_coef_table <- function(fit, method) {
  parts <- ddf_parts(fit, method)
  p <- length(parts$beta)
  tab <- t(vapply(seq_len(p), function(i) contrast_1d(parts, diag(p)[i, ]), numeric(5)))
  dimnames(tab) <- list(names(fit$beta),
                        c("Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"))
  tab
}
