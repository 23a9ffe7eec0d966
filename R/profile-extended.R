# Likelihood profiles of fits with glmmTMB's families, zero inflation or a
# dispersion model (glmm() with those, and glmm.nb()): the profiled
# parameters are the random effects' standard deviations and correlations,
# the family's own parameters (the dispersion coefficients, log phi = X_d b_d,
# then the zero-inflation coefficients, logit pi = X_z b_z; for glmm.nb() its
# theta) and the conditional fixed effects. Every one is profiled against a
# joint re-optimization of all the others by the fit's own Laplace (or
# adaptive Gauss-Hermite) criterion, in the engine
# (src/rust/inference/profile/glmm.rs). glmer.nb's profile holds theta at its
# estimate instead; glmmTMB's profiles its internal parameters (log standard
# deviations) and cannot profile some fits whose Wald intervals it reports.

# Names of the family's own parameters in the engine's order: "disp.<col>"
# then "zi.<col>" (glmmTMB's rows), or "theta" for a glmm.nb() fit (profiled
# as log theta, reported as theta by extended_profile_theta()).
extended_par_names <- function(object) {
  ext <- object$extended
  if (is.null(ext)) return(character(0))
  if (identical(ext$style, "glmer.nb")) return(if (is_fixed_nb(object)) character(0) else "theta")
  c(if (length(ext$disp$beta)) paste0("disp.", names(ext$disp$beta)),
    if (length(ext$zi$beta)) paste0("zi.", names(ext$zi$beta)))
}

# Names of the profiled covariance parameters (standard deviations and
# correlations) in the engine's order: the conditional model's
# (mer_var_par_names()), then, with random effects in 'ziformula', the
# zero-inflation model's: with `signames` lme4's ".sigNN" numbered on from
# the conditional model's, else "zi.sd_<name>|<group>",
# "zi.cor_<a>.<b>|<group>".
profile_var_names <- function(object, signames) {
  vn <- mer_var_par_names(object, signames)
  zf <- zi_component_fit(object)
  if (is.null(zf)) return(vn)
  vz <- setdiff(mer_var_par_names(zf, FALSE), "sigma")
  if (signames) {
    nc <- length(cov_par(object))
    vz <- sprintf(".sig%02d", nc + seq_along(vz))
    # the residual scale (.sigma) of lme4's names stays last
    return(c(vn[seq_len(nc)], vz, vn[-seq_len(nc)]))
  }
  c(vn, paste0("zi.", vz))
}

# The engine's description of the family of an extended fit (as
# glmm_extended_fit_rs() takes it), its own parameters starting at the fit's.
extended_engine_family <- function(fit) {
  ext <- fit$extended
  part <- function(p) if (!is.null(p)) engine_part(p)
  list(family = ext$family, link = fit$family$link,
       laplace = if (ext$style == "glmer.nb") "expected" else "observed",
       disp = part(ext$disp), zi = part(ext$zi), start = as.double(ext$extra))
}

# The engine's model list (as fit_engine_inputs() returns it) of an extended
# fit with the response `y`: the prior weights are the family's (the trials
# of a beta-binomial are passed apart); the terms are the conditional
# model's, then the zero-inflation model's.
extended_engine_model <- function(fit, y = fit$y) {
  X <- fit$X
  X <- double_storage(X)
  list(y = as.double(y), X = X, p = ncol(X),
       weights = as.double(fit$extended$prior_weights),
       offset = if (isTRUE(fit$has_offset)) as.double(fit$offset),
       terms = engine_terms_with_zi(list(reterms = fit$reterms, flist = fit$flist),
                                    fit$extended$zi$random))
}

# The engine's profiles of an extended fit: parameters `which` (indices into
# c(variance parameters of the conditional model, then of the
# zero-inflation model (profile_var_names()), extended_par_names(), fixed
# effects)), the engine's order.
extended_profile_rs <- function(object, which, settings, threads, env) {
  ext <- object$extended
  full <- as.matrix(ext$vcov_full)
  labels <- if (identical(ext$style, "glmer.nb") && !is_fixed_nb(object)) {
    "disp.(Intercept)"
  } else {
    extended_par_names(object)
  }
  se <- vapply(labels, function(l) {
    if (l %in% rownames(full)) sqrt(max(full[l, l], 0)) else NA_real_
  }, numeric(1))
  control <- control_of(object, env)
  glmm_extended_profile_rs(
    extended_engine_model(object), extended_engine_family(object),
    as.double(ext$n_trials), as.double(object$eta), as.integer(object$nAGQ),
    as.double(c(cov_par(object), ext$zi$random$par)), as.double(object$beta), as.double(se),
    replicate_control(control, "profile()"), as.double(which), settings,
    engine_threads(threads, control))
}

# glmm.nb()'s theta column, profiled as log theta, put on the theta scale
# (profile intervals follow a monotone map exactly).
extended_profile_theta <- function(prof) {
  if (!"theta" %in% names(prof)) return(prof)
  prof$theta <- exp(prof$theta)
  for (a in c("lower", "upper", "optimum")) {
    v <- attr(prof, a)
    if ("theta" %in% names(v)) v[["theta"]] <- exp(v[["theta"]])
    attr(prof, a) <- v
  }
  prof
}

# Profile intervals for rows of confint()'s table of a glmmTMB-style fit
# (row names as the Wald table's: "cond.<coef>", "zi.<coef>", "disp.<coef>",
# "sigma", "cond.Std.Dev.<name>|<group>", "cond.Cor.<a>.<b>|<group>",
# "zi.Std.Dev.<name>|<group>", "zi.Cor.<a>.<b>|<group>"): a two-column
# matrix of the ends at `level`.
extended_profile_rows <- function(object, rows, level, threads) {
  vn <- profile_var_names(object, FALSE)
  var_rows <- sub("^(zi\\.)?cor_", "\\1Cor.", sub("^(zi\\.)?sd_", "\\1Std.Dev.", vn))
  var_rows <- ifelse(startsWith(var_rows, "zi."), var_rows, paste0("cond.", var_rows))
  an <- c(vn, extended_par_names(object), colnames(object$X))
  target <- vapply(rows, function(r) {
    if (r == "sigma") return("disp.(Intercept)")
    hit <- match(r, var_rows)
    if (!is.na(hit)) return(vn[hit])
    if (r %in% an) return(r)
    sub("^cond\\.", "", r)
  }, "")
  idx <- match(target, an)
  if (anyNA(idx)) {
    stop("internal: no profiled parameter for the row(s) ",
         paste(rows[is.na(idx)], collapse = ", "), call. = FALSE)
  }
  prof <- profile_lmm(object, unique(idx), FALSE, threads, "confint")
  ci <- confint.lmmprofile(prof, parm = unique(target), level = level)
  out <- ci[target, , drop = FALSE]
  sig <- rows == "sigma"
  if (any(sig)) {
    out[sig, ] <- sort(disp_scale(object$extended$family, exp(out[sig, ])))
  }
  rownames(out) <- rows
  out
}
