# The .Call glue to the Rust core (kept tiny and mechanical; see src/rust/rbind.rs).

#' @useDynLib mixedrs, .registration = TRUE
NULL

lmm_fit_rs <- function(y, x, p, weights, offset, terms, reml, start, control, verbose) {
  .Call(wrap__lmm_fit_rs, y, x, p, weights, offset, terms, reml, start, control, verbose)
}

lmm_deviance_rs <- function(y, x, p, weights, offset, terms, reml, theta) {
  .Call(wrap__lmm_deviance_rs, y, x, p, weights, offset, terms, reml, theta)
}

covariance_layout_rs <- function(terms) {
  .Call(wrap__covariance_layout_rs, terms)
}

covariance_theta_rs <- function(terms, par) {
  .Call(wrap__covariance_theta_rs, terms, par)
}

glmm_fit_rs <- function(y, x, p, weights, offset, terms, family, link, n_trials,
                        eta_start, n_agq, start_theta, start_beta, control, verbose) {
  .Call(wrap__glmm_fit_rs, y, x, p, weights, offset, terms, family, link, n_trials,
        eta_start, n_agq, start_theta, start_beta, control, verbose)
}

panic_probe_rs <- function() {
  .Call(wrap__panic_probe_rs)
}
