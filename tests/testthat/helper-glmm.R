# Helpers shared by the glmm() tests: lme4 reference fits and data sets.

skip_if_no_glmm <- function() {
  skip_if_not_installed("lme4")
}

# lme4's glmer() run to full precision (helper-reference.R): bobyqa in both
# stages to rhoend = 1e-10 and a tight PIRLS tolerance. With its defaults
# glmer stops up to ~1e-3 above the optimum of the Laplace criterion (its
# Nelder-Mead stage 2 and the PIRLS tolerance 1e-7), which moves standard
# errors by up to 1% and, for families with a dispersion, makes its
# finite-difference Hessian noise.
glmer_reference_control <- function(tolPwrss = 1e-12) {
  lme4::glmerControl(optimizer = c("bobyqa", "bobyqa"), optCtrl = list(rhoend = 1e-10),
                     tolPwrss = tolPwrss)
}

# Evaluates a glmer() call with the full-precision control. Where glmer's
# PIRLS cannot reach tolPwrss = 1e-12 (glmer stops with an error), the next
# looser tolerance is used.
glmer_tight <- function(ref_call, env) {
  for (tol in c(1e-12, 1e-10, 1e-8, 1e-7)) {
    ref_call$control <- glmer_reference_control(tol)
    ref <- tryCatch(suppressWarnings(suppressMessages(eval(ref_call, env))),
                    error = function(e) NULL)
    if (!is.null(ref)) return(ref)
  }
  stop("glmer failed at every PIRLS tolerance")
}

# Fits the quoted glmm() call, and the same call with lme4::glmer() run to
# its optimum; the reference's stored call drops that control so that both
# print the same call. Messages (e.g. singular fit) are silenced.
fit_glmm_pair <- function(call, env = parent.frame()) {
  ref_call <- call
  ref_call[[1L]] <- quote(lme4::glmer)
  ref <- if (is.null(ref_call$control)) {
    glmer_tight(ref_call, env)
  } else {
    suppressWarnings(suppressMessages(eval(ref_call, env)))
  }
  ref@call$control <- call$control
  list(fit = suppressMessages(eval(call, env)), ref = ref)
}

# Gamma responses with a log link and a random intercept.
gamma_data <- function() {
  set.seed(1)
  d <- data.frame(g = factor(rep(1:12, each = 10)), x = stats::rnorm(120))
  d$y <- stats::rgamma(120, shape = 5,
                       rate = 5 / exp(0.5 + 0.3 * d$x + stats::rnorm(12, sd = 0.4)[d$g]))
  d
}

# Binary responses with a correlated random intercept and slope.
slope_data <- function() {
  set.seed(1)
  d <- data.frame(g = factor(rep(1:30, each = 30)), x = stats::runif(900, -1, 1))
  b0 <- stats::rnorm(30, sd = 1)
  b1 <- stats::rnorm(30, sd = 0.7)
  d$y <- stats::rbinom(900, 1, stats::plogis(-0.3 + 0.8 * d$x + b0[d$g] + b1[d$g] * d$x))
  d
}

# Binary responses without a group effect: a singular fit.
singular_data <- function() {
  set.seed(2)
  d <- data.frame(g = factor(rep(1:8, each = 15)), x = stats::rnorm(120))
  d$y <- stats::rbinom(120, 1, stats::plogis(0.2 + 0.5 * d$x))
  d
}
