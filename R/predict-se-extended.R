# Standard errors of the predictions of glmmTMB-style fits that include the
# random effects (predict(se.fit = TRUE) with re.form = NULL), as glmmTMB
# 1.1.5 gives them: TMB's sdreport() of the prediction, i.e. the delta method
# on the joint uncertainty of the estimated parameters and the random
# effects. For a prediction f(eta, zeta) of one row, with eta = x beta + z b
# (+ offset) and zeta the zero-inflation linear predictor,
#   Var f = g_u Huu^-1 g_u'                      (b given the data, at the estimates)
#         + (df/dphi + g_b db^/dphi) V (...)'    (the estimated parameters phi,
#                                                 b^ moving with them)
#         + f_eta^2 z_new Sigma z_new'           (levels not in the fit: prior variance)
# where g_u = f_eta z Lambda, g_b = f_eta z, V = 2 H^-1 (H the fit's Hessian
# of the deviance) and Huu, db^/dphi come from extended_mode_sensitivity()
# (R/varcorr-extended.R). Population-level standard errors are
# predict_se_extended() (R/methods-extended.R).

# Standard errors for the types link, conditional, response, zlink, zprob.
# X, Xz, eta, zeta, mu, p: the prediction's rows (as predict_extended()
# builds them; X and Xz padded with NA rows for rows the fit dropped).
# `re_rows`: list(na_action = ) for the fitted rows (no newdata), or
# list(newdata = ) the rows of newdata predicted.
predict_se_extended_re <- function(object, type, X, Xz, eta, zeta, mu, p, re.form,
                                   re_rows, allow.new.levels) {
  n <- length(eta)
  if (!is.null(re.form)) {
    stop("se.fit = TRUE with random effects is available for glmmTMB-style fits with ",
         "re.form = NULL (all random effects, as glmmTMB) or NA / ~0 (none), not ",
         "re.form = ", deparse1(re.form), call. = FALSE)
  }
  if (type %in% c("zlink", "zprob")) {
    # the zero-inflation model has no random effects (glmm() refuses them),
    # so these are the population-level standard errors
    return(predict_se_extended(object, type, X, Xz, eta, zeta, mu, p))
  }
  if (has_structured_terms(object$reterms)) {
    stop("se.fit = TRUE with random effects (re.form = NULL) is not available for ",
         "glmmTMB-style fits with structured covariance terms (diag, cs, ar1, toep) ",
         "yet; use re.form = NA for standard errors of the population-level predictions",
         call. = FALSE)
  }
  ext <- object$extended
  # The prediction's derivatives in eta and zeta.
  a_e <- object$family$mu.eta(eta)
  a_e <- switch(type, link = rep(1, n), conditional = a_e, response = (1 - p) * a_e)
  a_z <- if (type == "response" && !is.null(zeta)) -mu * stats::dlogis(zeta) else rep(0, n)

  s <- extended_mode_sensitivity(object)
  zp <- extended_prediction_z(object, s, re_rows, allow.new.levels)
  nth <- length(object$theta)
  kd <- length(ext$disp$beta)
  kz <- length(ext$zi$beta)
  # Rows of the prediction that can have a standard error.
  ok <- which(!is.na(zp$row) & is.finite(a_e) & is.finite(a_z) &
                is.finite(rowSums(X)) & (if (kz) is.finite(rowSums(Xz)) else TRUE))
  se <- rep(NA_real_, n)
  if (!length(ok)) return(se)
  Zb <- zp$Z[zp$row[ok], , drop = FALSE]
  ae <- a_e[ok]
  # b given the data: |R^-T (f_eta z Lambda)'|^2, R the Cholesky factor of
  # Huu, in chunks of rows (no dense block above ~1e7 numbers).
  Rt <- Matrix::t(Matrix::chol(Matrix::forceSymmetric(s$Huu)))
  Gu <- Matrix::t(ae * (Zb %*% s$Lambda))
  cond_part <- numeric(length(ok))
  chunk <- max(1L, floor(1e7 / max(1L, nrow(Gu))))
  for (start in seq.int(1L, length(ok), by = chunk)) {
    idx <- seq.int(start, min(length(ok), start + chunk - 1L))
    cond_part[idx] <- Matrix::colSums(Matrix::solve(Rt, Gu[, idx, drop = FALSE])^2)
  }
  # The parameters, the modes moving with them.
  G <- cbind(matrix(0, length(ok), nth + kd),
             if (kz) a_z[ok] * Xz[ok, , drop = FALSE],
             ae * X[ok, , drop = FALSE]) +
    ae * as.matrix(Zb %*% s$J)
  par_part <- rowSums((G %*% s$V) * G)
  new_part <- ae^2 * zp$new_var[zp$row[ok]]
  se[ok] <- sqrt(pmax(cond_part + par_part + new_part, 0))
  se
}

# The random-effects design of the prediction: `Z` (one row per row of the
# fit or of newdata, columns as extended_mode_sensitivity()'s: b-scale,
# levels of the fit only), `new_var` (per row, z Sigma z' summed over the
# terms whose level is not in the fit: their random effect is 0 with its
# prior covariance Sigma, as in glmmTMB's prediction model, where such a
# level is a random effect without data) and `row` (the row of Z of each
# prediction, NA for rows the fit dropped).
extended_prediction_z <- function(object, s, re_rows, allow.new.levels) {
  bars <- model_bars(object)
  if (is.null(re_rows$newdata)) {
    n <- nrow(s$Z)
    row <- stats::napredict(re_rows$na_action, seq_len(n))
    return(list(Z = s$Z, new_var = rep(0, n), row = row))
  }
  rfd <- random_data(object, bars, re_rows$newdata)
  n <- nrow(rfd)
  Z <- prediction_z(object, bars, rfd, n, allow.new.levels, "newdata", FALSE)
  new_var <- rep(0, n)
  reterms <- object$reterms
  thetas <- split_theta(object$theta, reterms)
  for (bar in bars) {
    d <- term_design(object, bar, rfd, FALSE)
    known <- levels(object$flist[[d$group]])
    lev <- as.character(d$factor)
    if (anyNA(lev)) {
      rows <- utils::head(rownames(rfd)[is.na(lev)], 10L)
      stop("se.fit = TRUE: grouping factor '", d$group, "' has missing values in ",
           "newdata (rows ", paste(rows, collapse = ", "), "), so those rows have ",
           "neither an estimated random effect nor a new level's; drop them or use ",
           "re.form = NA", call. = FALSE)
    }
    new <- which(!lev %in% known)
    if (!length(new)) next
    t <- which(vapply(reterms, function(rt) {
      identical(rt$group, d$group) && all(colnames(d$Z) %in% rt$cnms)
    }, NA))[1L]
    Sigma <- term_covariance(thetas[[t]], reterms[[t]]$cnms, object$sigma)
    Zn <- d$Z[new, , drop = FALSE]
    S <- Sigma[colnames(Zn), colnames(Zn), drop = FALSE]
    new_var[new] <- new_var[new] + rowSums((Zn %*% S) * Zn)
  }
  list(Z = Z, new_var = new_var, row = seq_len(n))
}

# Standard errors of type = "disp" (the dispersion on glmmTMB's reporting
# scale, which does not depend on the random effects): the delta method on
# the dispersion model's coefficients; 0 for families without a dispersion
# parameter (as glmmTMB). `phi`: exp(dispersion linear predictor) of the
# prediction's `n` rows; `pred_rows` as predict_se_extended_re()'s `re_rows`.
predict_se_extended_disp <- function(object, pred_rows, phi, n) {
  disp <- object$extended$disp
  if (is.null(disp)) return(rep(0, n))
  Xd <- if (is.null(pred_rows$newdata)) pad_rows(disp$X, pred_rows$na_action) else
    component_design(disp, pred_rows$newdata, "dispersion")$X
  full <- as.matrix(object$extended$vcov_full)
  keep <- paste0("disp.", colnames(disp$X))
  if (!all(keep %in% rownames(full))) {
    stop("the fit's covariance lacks rows ", paste(setdiff(keep, rownames(full)), collapse = ", "),
         call. = FALSE)
  }
  Vd <- full[keep, keep, drop = FALSE]
  # derivative of the reported dispersion in log(phi)
  slope <- switch(object$extended$family, gaussian = sqrt(phi) / 2,
                  Gamma = -1 / (2 * sqrt(phi)), phi)
  abs(slope) * sqrt(pmax(rowSums((Xd %*% Vd) * Xd), 0))
}
