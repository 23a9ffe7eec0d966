# The .Call glue to the Rust core: one small wrapper per #[extendr] function
# of src/rust/rbind/, and nothing else; the rest of the package calls these
# wrappers, never .Call() itself.
#
# The engine takes a model as one list, list(y, X, p, weights, offset, terms)
# (src/rust/rbind/convert.rs): the inference wrappers take that list as
# fit_engine_inputs() returns it; the fit wrappers take its parts, as the fit
# pipelines and the tests hold them, and put them together.

#' @useDynLib mixedrs, .registration = TRUE
NULL

# Fits and the LMM criterion (R/lmm.R, R/glmm.R).
lmm_fit_rs <- function(y, x, p, weights, offset, terms, reml, start, control, verbose) {
  model <- list(y = y, X = x, p = p, weights = weights, offset = offset, terms = terms)
  .Call(wrap__lmm_fit_rs, model, reml, start, control, verbose)
}

# A fit of a model list as the engine reads it (rows or grouped sums).
lmm_fit_model_rs <- function(model, reml, start, control, verbose) {
  .Call(wrap__lmm_fit_rs, model, reml, start, control, verbose)
}

lmm_deviance_rs <- function(y, x, p, weights, offset, terms, reml, theta) {
  model <- list(y = y, X = x, p = p, weights = weights, offset = offset, terms = terms)
  .Call(wrap__lmm_deviance_rs, model, reml, theta)
}

covariance_layout_rs <- function(terms) {
  .Call(wrap__covariance_layout_rs, terms)
}

covariance_theta_rs <- function(terms, par) {
  .Call(wrap__covariance_theta_rs, terms, as.double(par))
}

toep_lag_correlations_rs <- function(pacf) {
  .Call(wrap__toep_lag_correlations_rs, as.double(pacf))
}

# Checks of the fixed-effects matrix (R/frame.R).
fixed_matrix_checks_rs <- function(x) {
  .Call(wrap__fixed_matrix_checks_rs, x)
}

treatment_matrix_rs <- function(columns, n_levels, intercept, n, attributes) {
  .Call(wrap__treatment_matrix_rs, columns, n_levels, intercept, n, attributes)
}

glmm_fit_rs <- function(y, x, p, weights, offset, terms, family, link, n_trials,
                        eta_start, n_agq, start_theta, start_beta, control, verbose) {
  model <- list(y = y, X = x, p = p, weights = weights, offset = offset, terms = terms)
  .Call(wrap__glmm_fit_rs, model, family, link, n_trials, eta_start, n_agq,
        start_theta, start_beta, control, verbose)
}

# A GLMM whose family has extra parameters (R/glmm-extended.R): `family` is
# list(family, link, laplace, disp, zi, start).
glmm_extended_fit_rs <- function(y, x, p, weights, offset, terms, family,
                                 n_trials, eta_start, n_agq, start_theta,
                                 start_beta, control, verbose) {
  model <- list(y = y, X = x, p = p, weights = weights, offset = offset, terms = terms)
  .Call(wrap__glmm_extended_fit_rs, model, family, n_trials, eta_start, n_agq,
        start_theta, start_beta, control, verbose)
}

# The same model's fits from several starts, `starts` a list of list(theta,
# beta, extra, nested_zi_theta), run at once, and (with `end_control`) the
# derivatives at their ends: list(fits, ends), each a list of results, or
# each failed one's message (`ends`: NULL where none was run).
glmm_extended_fit_starts_rs <- function(y, x, p, weights, offset, terms, family,
                                        n_trials, eta_start, n_agq, starts,
                                        control, nested_control, end_control, verbose) {
  model <- list(y = y, X = x, p = p, weights = weights, offset = offset, terms = terms)
  .Call(wrap__glmm_extended_fit_starts_rs, model, family, n_trials, eta_start, n_agq,
        starts, control, nested_control, end_control, verbose)
}

glmm_laplace_gradient_rs <- function(model, family, n_trials, eta_start, pars) {
  .Call(wrap__glmm_laplace_gradient_rs, model, family, n_trials, eta_start, pars)
}

# The LMM deviance function held by the engine (R/devfun.R).
lmm_devfun_rs <- function(model, reml, threads) {
  .Call(wrap__lmm_devfun_rs, model, reml, threads)
}

lmm_devfun_eval_rs <- function(engine, par) {
  .Call(wrap__lmm_devfun_eval_rs, engine, par)
}

lmm_devfun_fit_rs <- function(engine, optimizer, start, control, record, verbose) {
  .Call(wrap__lmm_devfun_fit_rs, engine, optimizer, start, control, record, verbose)
}

glmm_devfun_rs <- function(model, family, link, n_trials, eta_start, n_agq, control) {
  .Call(wrap__glmm_devfun_rs, model, family, link, n_trials, eta_start, n_agq, control)
}

glmm_devfun_eval_rs <- function(engine, pars) {
  .Call(wrap__glmm_devfun_eval_rs, engine, pars)
}

glmm_devfun_stage_rs <- function(engine, stage, theta) {
  .Call(wrap__glmm_devfun_stage_rs, engine, stage, theta)
}

glmm_devfun_optimize_rs <- function(engine, optimizer, start, control, verbose) {
  .Call(wrap__glmm_devfun_optimize_rs, engine, optimizer, start, control, verbose)
}

glmm_devfun_fit_rs <- function(engine, pars, control, check_gradient) {
  .Call(wrap__glmm_devfun_fit_rs, engine, pars, control, check_gradient)
}

# Conditional variances of the random effects (R/condvar.R).
lmm_condvar_rs <- function(model, reml, theta, threads) {
  .Call(wrap__lmm_condvar_rs, model, reml, theta, threads)
}

glmm_condvar_rs <- function(model, family, link, theta, eta, sigma, threads) {
  .Call(wrap__glmm_condvar_rs, model, family, link, theta, eta, sigma, threads)
}

glmm_condvar_weights_rs <- function(model, theta, weights, threads) {
  .Call(wrap__glmm_condvar_weights_rs, model, theta, weights, threads)
}

# Satterthwaite and Kenward-Roger ingredients (R/ddf.R).
lmm_ddf_rs <- function(model, reml, theta, sigma, method, threads) {
  .Call(wrap__lmm_ddf_rs, model, reml, theta, sigma, method, threads)
}

# Likelihood profiles and their intervals (R/confint.R).
lmm_profile_rs <- function(model, theta, which, settings, threads) {
  .Call(wrap__lmm_profile_rs, model, theta, which, settings, threads)
}

glmm_profile_rs <- function(model, family, link, n_trials, eta_start, n_agq, theta,
                            beta, control, which, settings, threads) {
  .Call(wrap__glmm_profile_rs, model, family, link, n_trials, eta_start, n_agq,
        theta, beta, control, which, settings, threads)
}

glmm_extended_profile_rs <- function(model, family, n_trials, eta_start, n_agq, theta,
                                     beta, extra_se, control, which, settings, threads) {
  .Call(wrap__glmm_extended_profile_rs, model, family, n_trials, eta_start, n_agq,
        theta, beta, extra_se, control, which, settings, threads)
}

profile_interval_rs <- function(par, zeta, targets) {
  .Call(wrap__profile_interval_rs, par, zeta, targets)
}

# Parametric bootstrap refits (R/bootstrap.R).
lmm_bootstrap_rs <- function(model, reml, responses, start, control, threads) {
  .Call(wrap__lmm_bootstrap_rs, model, reml, responses, start, control, threads)
}

glmm_bootstrap_rs <- function(model, family, link, n_trials, eta_start, n_agq,
                              responses, start_theta, start_beta, control, threads) {
  .Call(wrap__glmm_bootstrap_rs, model, family, link, n_trials, eta_start, n_agq,
        responses, start_theta, start_beta, control, threads)
}

# Case-deletion refits (R/influence.R).
lmm_deletion_rs <- function(model, reml, sets, n_sets, start, control, threads) {
  .Call(wrap__lmm_deletion_rs, model, reml, sets, n_sets, start, control, threads)
}

# A deliberate panic, for the test of the panic hook.
panic_probe_rs <- function() {
  .Call(wrap__panic_probe_rs)
}
