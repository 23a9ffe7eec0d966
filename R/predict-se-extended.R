# Standard errors of the predictions of glmmTMB-style fits that include the
# random effects (predict(se.fit = TRUE) with re.form = NULL), as glmmTMB
# 1.1.5 gives them: TMB's sdreport() of the prediction, i.e. the delta method
# on the joint uncertainty of the estimated parameters and the random
# effects (those of the conditional model and, with random effects in
# 'ziformula', of the zero-inflation model). For a prediction f(eta, zeta)
# of one row, with eta = x beta + z b (+ offset) and zeta = x_zi beta_zi +
# z_zi b (+ offset) the zero-inflation linear predictor (b all random
# effects, z and z_zi zero in the other model's columns),
#   Var f = g_u Huu^-1 g_u'                      (b given the data, at the estimates)
#         + (df/dphi + g_b db^/dphi) V (...)'    (the estimated parameters phi,
#                                                 b^ moving with them)
#         + f_eta^2 z_new Sigma z_new'           (levels not in the fit: prior variance;
#         + f_zeta^2 z_zi,new Sigma_zi z_zi,new'  likewise for the zero-inflation terms)
# where g_b = f_eta z + f_zeta z_zi, g_u = g_b Lambda, V = 2 H^-1 (H the
# fit's Hessian of the deviance) and Huu, db^/dphi come from
# extended_mode_sensitivity() (R/varcorr-extended.R). Population-level
# standard errors are predict_se_extended() (R/methods-extended.R).

# Standard errors for the types link, conditional, response, zlink, zprob.
# X, Xz, eta, zeta, mu, p: the prediction's rows (as predict_extended()
# builds them; X and Xz padded with NA rows for rows the fit dropped).
# `re_rows`: list(na_action = ) for the fitted rows (no newdata), or
# list(newdata = ) the rows of newdata predicted. With random effects in the
# zero-inflation model they enter as the conditional model's do: the
# prediction's derivative in the random effects is f_eta z + f_zeta z_zi
# (z_zi the row of the zero-inflation model's random-effects design), the
# joint Hessian Huu and db^/dphi of extended_mode_sensitivity() cover both
# models' random effects, and a level of newdata not in the fit adds
# f_zeta^2 z_zi Sigma_zi z_zi'.
predict_se_extended_re <- function(object, type, X, Xz, eta, zeta, mu, p, re.form,
                                   re_rows, allow.new.levels) {
  n <- length(eta)
  if (!is.null(re.form)) {
    stop("se.fit = TRUE with random effects is available for glmmTMB-style fits with ",
         "re.form = NULL (all random effects, as glmmTMB) or NA / ~0 (none), not ",
         "re.form = ", deparse1(re.form), call. = FALSE)
  }
  zi_re <- has_zi_random(object)
  if (type %in% c("zlink", "zprob") && !zi_re) {
    # the zero-inflation model has no random effects: these are the
    # population-level standard errors
    return(predict_se_extended(object, type, X, Xz, eta, zeta, mu, p))
  }
  re <- extended_re_terms(object)
  ext <- object$extended
  # The prediction's derivatives in eta and zeta.
  dzeta <- if (is.null(zeta)) rep(0, n) else stats::dlogis(zeta)
  a_e <- switch(type, link = rep(1, n), conditional = object$family$mu.eta(eta),
                response = (1 - p) * object$family$mu.eta(eta), rep(0, n))
  a_z <- switch(type,
                response = if (is.null(zeta)) rep(0, n) else -mu * dzeta,
                zlink = rep(1, n), zprob = dzeta, rep(0, n))

  s <- extended_mode_sensitivity(object)
  zp <- extended_prediction_z(object, s, re_rows, allow.new.levels)
  # (the covariance parameters as the fit's Hessian has them: theta for
  # unstructured terms, the structures' own parameters for the others)
  nth <- length(re$par)
  kd <- length(ext$disp$beta)
  kz <- length(ext$zi$beta)
  # Rows of the prediction that can have a standard error.
  ok <- which(!is.na(zp$row) & is.finite(a_e) & is.finite(a_z) &
                is.finite(rowSums(X)) & (if (kz) is.finite(rowSums(Xz)) else TRUE))
  se <- rep(NA_real_, n)
  if (!length(ok)) return(se)
  ae <- a_e[ok]
  az <- a_z[ok]
  # d f / d b of each row (b-scale, every random effect of both models)
  Zb <- ae * zp$Z[zp$row[ok], , drop = FALSE]
  if (!is.null(zp$Zz)) Zb <- Zb + az * zp$Zz[zp$row[ok], , drop = FALSE]
  # b given the data: |R^-T (d f / d b Lambda)'|^2, R the Cholesky factor of
  # Huu, in chunks of rows (no dense block above ~1e7 numbers).
  Rt <- Matrix::t(Matrix::chol(Matrix::forceSymmetric(s$Huu)))
  Gu <- Matrix::t(Zb %*% s$Lambda)
  cond_part <- numeric(length(ok))
  chunk <- max(1L, floor(1e7 / max(1L, nrow(Gu))))
  for (start in seq.int(1L, length(ok), by = chunk)) {
    idx <- seq.int(start, min(length(ok), start + chunk - 1L))
    cond_part[idx] <- Matrix::colSums(Matrix::solve(Rt, Gu[, idx, drop = FALSE])^2)
  }
  # The parameters, the modes moving with them.
  G <- cbind(matrix(0, length(ok), nth + kd),
             if (kz) az * Xz[ok, , drop = FALSE],
             ae * X[ok, , drop = FALSE]) +
    as.matrix(Zb %*% s$J)
  par_part <- rowSums((G %*% s$V) * G)
  new_part <- ae^2 * zp$new_var[zp$row[ok]] +
    if (is.null(zp$new_var_z)) 0 else az^2 * zp$new_var_z[zp$row[ok]]
  se[ok] <- sqrt(pmax(cond_part + par_part + new_part, 0))
  se
}

# The random-effects design of the prediction, columns as
# extended_mode_sensitivity()'s (b-scale, every term of both models, levels
# of the fit only): `Z` the rows of the conditional linear predictor eta,
# `Zz` (with random effects in the zero-inflation model; else NULL) those of
# the zero-inflation logit zeta (one row per row of the fit or of newdata);
# `new_var`, `new_var_z` (per row, z Sigma z' summed over the terms of each
# model whose level is not in the fit: their random effect is 0 with its
# prior covariance Sigma, as in glmmTMB's prediction model, where such a
# level is a random effect without data; a missing level adds nothing, its
# term being left out as glmmTMB leaves it) and `row` (the row of Z of each
# prediction, NA for rows the fit dropped).
extended_prediction_z <- function(object, s, re_rows, allow.new.levels) {
  zr <- object$extended$zi$random
  Q <- ncol(s$Z)
  if (is.null(re_rows$newdata)) {
    n <- length(object$eta)
    row <- stats::napredict(re_rows$na_action, seq_len(n))
    two <- nrow(s$Z) > n
    return(list(Z = s$Z[seq_len(n), , drop = FALSE],
                Zz = if (two) s$Z[n + seq_len(n), , drop = FALSE],
                new_var = rep(0, n), new_var_z = if (two) rep(0, n), row = row))
  }
  newdata <- re_rows$newdata
  bars <- model_bars(object)
  rfd <- random_data(object, bars, newdata)
  n <- nrow(rfd)
  Zc <- prediction_z(object, bars, rfd, n, allow.new.levels, "newdata", FALSE)
  Qc <- ncol(Zc)
  pad <- function(M, before) {
    zero <- function(k) Matrix::sparseMatrix(i = integer(0), j = integer(0), x = numeric(0),
                                             dims = c(n, k))
    if (before) cbind(zero(Q - ncol(M)), M) else cbind(M, zero(Q - ncol(M)))
  }
  out <- list(Z = pad(Zc, FALSE),
              new_var = new_level_variance(object, bars, rfd, object$theta, object$sigma),
              row = seq_len(n))
  if (!is.null(zr)) {
    view <- zi_random_view(object)
    zbars <- split_part_formula(object$extended$zi$full_formula)$bars
    rfd_z <- random_data(view, zbars, newdata)
    out$Zz <- pad(prediction_z(view, zbars, rfd_z, n, allow.new.levels, "newdata", FALSE),
                  TRUE)
    out$new_var_z <- new_level_variance(view, zbars, rfd_z, zr$theta, 1)
  }
  out
}

# Per row of `rfd`, z Sigma z' summed over the terms `bars` of `fit` (the
# fit, or zi_random_view() of it) whose level is not among the fitted ones;
# `theta` the terms' covariance parameters (relative to `sigma`).
new_level_variance <- function(fit, bars, rfd, theta, sigma) {
  n <- nrow(rfd)
  new_var <- rep(0, n)
  reterms <- fit$reterms
  thetas <- split_theta(theta, reterms)
  for (bar in bars) {
    d <- term_design(fit, bar, rfd, FALSE)
    known <- levels(fit$flist[[d$group]])
    lev <- as.character(d$factor)
    # (a missing grouping value is glmmTMB's population-level prediction for
    # that term: no random effect, and none of a new level's variance)
    new <- which(!is.na(lev) & !lev %in% known)
    if (!length(new)) next
    t <- which(vapply(reterms, function(rt) {
      identical(rt$group, d$group) && all(colnames(d$Z) %in% rt$cnms)
    }, NA))[1L]
    Sigma <- term_covariance(thetas[[t]], reterms[[t]]$cnms, sigma)
    Zn <- d$Z[new, , drop = FALSE]
    S <- Sigma[colnames(Zn), colnames(Zn), drop = FALSE]
    new_var[new] <- new_var[new] + rowSums((Zn %*% S) * Zn)
  }
  new_var
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
