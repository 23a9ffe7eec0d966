# A second start for zero-inflated negative binomial models, on the side of
# their Poisson limit.
#
# Zeros in excess of a count model can be explained in two ways: by the
# zero-inflation probability, or by the negative binomial's overdispersion
# (phi small for nbinom2, whose variance is mu + mu^2/phi; phi large for
# nbinom1, variance mu (1 + phi)). The likelihood of a zero-inflated negative
# binomial can then have two optima: one with overdispersion and little zero
# inflation, and one in the Poisson limit (phi -> Inf for nbinom2, phi -> 0 for
# nbinom1) with the zeros in the zero-inflation model. A search started from a
# moment estimate of the dispersion (dispersion_start(): the zeros inflate the
# variance, so it says "overdispersed") ends in the first even where the second
# is higher (a random zero-inflated Poisson sample, 3 log-likelihood units
# below glmmTMB, which starts from phi = 1). So the fit also searches from the
# Poisson side, the dispersion at poisson_side_phi(), and keeps the better of
# the two ends; each search runs on a thread of its own.

# The dispersion where the search from the Poisson side starts: phi = 1e4 for
# nbinom2 (the variance within 1e-4 of the mean's square away from Poisson's),
# 1e-4 for nbinom1.
poisson_side_phi <- function(name) if (name == "nbinom2") 1e4 else 1e-4

# Which of the dispersion model's coefficients (columns `disp_columns`)
# start at log(poisson_side_phi()): its intercept, or each without one.
poisson_side_index <- function(disp_columns) {
  icpt <- match("(Intercept)", disp_columns)
  if (is.na(icpt)) seq_along(disp_columns) else icpt
}

# TRUE when the fit of `name` with zero inflation `has_zi` (fixed effects only)
# and an estimated dispersion searches from the Poisson side too.
needs_poisson_side_start <- function(name, has_zi, nb_theta_fixed) {
  has_zi && name %in% c("nbinom1", "nbinom2") && is.null(nb_theta_fixed)
}

# The engine's result for a zero-inflated negative binomial: the searches from
# the usual start (`engine_family$start`) and from the Poisson side (the
# dispersion model's intercept, or each of its coefficients without one, at
# log(poisson_side_phi())), and the better end: the lower deviance among the
# ends that pass the convergence checks (among all ends when none does). A
# search that fails is dropped; when both fail, the usual one's error is
# raised. `optinfo$starts` counts both searches.
poisson_side_fit_raw <- function(run_engine, terms, engine_family, start, control, name,
                                 disp_columns) {
  extra_usual <- engine_family$start
  extra_poisson <- extra_usual
  extra_poisson[poisson_side_index(disp_columns)] <- log(poisson_side_phi(name))
  starts <- list(
    usual = list(theta = start$theta, beta = start$fixef, extra = extra_usual),
    poisson_side = list(theta = start$theta, beta = start$fixef, extra = extra_poisson))
  starts <- lapply(starts, function(s) lapply(s, function(v) if (is.null(v)) NULL else as.double(v)))
  ctl <- unclass(control)
  fits <- attr(run_engine, "starts")(terms, engine_family, starts, ctl, ctl, NULL)
  ok <- vapply(fits, function(r) !inherits(r, "error") && is.finite(r$deviance), TRUE)
  if (!any(ok)) {
    if (inherits(fits$usual, "error")) stop(fits$usual)
    return(fits$usual)
  }
  pool <- fits[ok]
  dev <- vapply(pool, `[[`, 0, "deviance")
  checked <- vapply(pool, function(r) length(r$messages) == 0L, TRUE)
  candidates <- if (any(checked)) which(checked) else seq_along(pool)
  best <- pool[[candidates[which.min(dev[candidates])]]]
  others <- pool[setdiff(names(pool), names(pool)[candidates[which.min(dev[candidates])]])]
  for (other in others) {
    best$stage2$starts <- max(1L, as.integer(best$stage2$starts)) +
      max(1L, as.integer(other$stage2$starts))
  }
  best
}
