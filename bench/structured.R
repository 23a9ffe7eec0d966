# Structured covariance terms (diag, cs, ar1, toep): mixedrs and glmmTMB fit the same models
# side by side in this process (median of `reps` alternating fits each), with the log-likelihood
# of each at its optimum; and, for mixedrs alone, the cost of one deviance evaluation of each
# structure against the unstructured term of the same size on the same data (fit time divided
# by the optimizer's evaluations). Writes a section of bench/RESULTS.md and the README block
# `bench-structured`. Run from the repository root after installing the package:
# `Rscript bench/structured.R [reps]`.
suppressPackageStartupMessages({
  library(mixedrs)
  library(glmmTMB)
})
source(file.path("bench", "suite.R"))

args <- commandArgs(trailingOnly = TRUE)
reps <- if (length(args)) as.integer(args[1]) else 5L

# Repeated measures: n_subj subjects, n_time occasions with AR(1)-like correlated effects,
# `reps_per_cell` observations per subject and occasion.
repeated_data <- function(n_subj, n_time, reps_per_cell, seed = 1) {
  set.seed(seed)
  d <- expand.grid(rep = seq_len(reps_per_cell), t = factor(seq_len(n_time)),
                   s = factor(seq_len(n_subj)))
  S <- 0.8 * 0.6^abs(outer(seq_len(n_time), seq_len(n_time), "-"))
  b <- t(t(chol(S)) %*% matrix(rnorm(n_time * n_subj), n_time))
  d$x <- rnorm(nrow(d))
  d$y <- 1 + 0.3 * d$x + b[cbind(as.integer(d$s), as.integer(d$t))] + rnorm(nrow(d), sd = 0.5)
  d$count <- rpois(nrow(d), exp(0.2 + 0.3 * d$x + 0.5 * b[cbind(as.integer(d$s), as.integer(d$t))]))
  # Drawn after the others, which stay as they were.
  d$overdispersed <- rnbinom(nrow(d), mu = d$count + 0.5, size = 2)
  d$binary <- rbinom(nrow(d), 1, plogis(0.2 + 0.3 * d$x + b[cbind(as.integer(d$s), as.integer(d$t))]))
  d
}

data("sleepstudy", package = "lme4")
small <- repeated_data(100, 4, 2)
medium <- repeated_data(300, 5, 2)
large <- repeated_data(2000, 5, 2)

cases <- list(
  list(name = "sleepstudy ar1", f = Reaction ~ Days + ar1(0 + factor(Days) | Subject),
       data = sleepstudy, family = NULL),
  list(name = "sleepstudy cs", f = Reaction ~ Days + cs(Days | Subject),
       data = sleepstudy, family = NULL),
  list(name = "800 rows diag", f = y ~ x + diag(0 + t | s), data = small, family = NULL),
  list(name = "800 rows toep", f = y ~ x + toep(0 + t | s), data = small, family = NULL),
  list(name = "20k rows ar1", f = y ~ x + ar1(0 + t | s), data = large, family = NULL),
  list(name = "20k rows cs", f = y ~ x + cs(0 + t | s), data = large, family = NULL),
  list(name = "800 rows Poisson ar1", f = count ~ x + ar1(0 + t | s), data = small,
       family = poisson),
  list(name = "3000 rows nbinom2 diag", f = overdispersed ~ x + diag(0 + t | s), data = medium,
       family = nbinom2),
  list(name = "3000 rows nbinom2 toep", f = overdispersed ~ x + toep(0 + t | s), data = medium,
       family = nbinom2),
  list(name = "3000 rows binomial cs", f = binary ~ x + cs(0 + t | s), data = medium,
       family = binomial)
)

fit_ours <- function(m) {
  if (is.null(m$family)) lmm(m$f, m$data) else glmm(m$f, data = m$data, family = m$family)
}
fit_tmb <- function(m) {
  if (is.null(m$family)) glmmTMB(m$f, m$data, REML = TRUE)
  else glmmTMB(m$f, data = m$data, family = m$family)
}
timed <- function(f) {
  t0 <- proc.time()[["elapsed"]]
  v <- suppressWarnings(suppressMessages(f()))
  list(time = proc.time()[["elapsed"]] - t0, fit = v)
}

rows <- lapply(cases, function(m) {
  cat("timing", m$name, "...\n")
  t_tmb <- t_ours <- numeric(reps)
  for (r in seq_len(reps)) {
    a <- timed(function() fit_tmb(m))
    b <- timed(function() fit_ours(m))
    t_tmb[r] <- a$time
    t_ours[r] <- b$time
  }
  data.frame(model = m$name, n = nrow(m$data), glmmTMB_s = median(t_tmb),
             mixedrs_s = median(t_ours), speedup = median(t_tmb) / median(t_ours),
             loglik_diff = as.numeric(logLik(b$fit)) - as.numeric(logLik(a$fit)))
})
res <- do.call(rbind, rows)
print(res, digits = 4)

# Cost of one evaluation: each structure against the unstructured term of the same size, on the
# same data (20k rows, 2,000 subjects, 5 occasions): the engine's deviance at the fit's
# parameters evaluated k + 1 times and once in one call each (the set-up cancels out).
per_eval <- lapply(c("us", "diag", "cs", "ar1", "toep"), function(s) {
  f <- stats::as.formula(sprintf("y ~ x + %s(0 + t | s)", s))
  fit <- suppressWarnings(lmm(f, large))
  inp <- mixedrs:::fit_engine_inputs(fit)
  k <- 200L
  run <- function(times) {
    par <- rep(unname(fit$par), times)
    t0 <- proc.time()[["elapsed"]]
    mixedrs:::lmm_deviance_rs(inp$y, inp$X, inp$p, inp$weights, inp$offset, inp$terms,
                              TRUE, par)
    proc.time()[["elapsed"]] - t0
  }
  per <- vapply(seq_len(reps), function(r) (run(k + 1L) - run(1L)) / k, 0)
  # Newton and quasi-Newton steps evaluate the gradient (Newton's also the average
  # information) at each point, a few deviance evaluations' worth each; BOBYQA evaluates the
  # deviance alone.
  message <- fit$optinfo$message
  search <- if (startsWith(message, "Newton steps")) "Newton steps" else
    if (startsWith(message, "quasi-Newton")) "quasi-Newton steps" else "BOBYQA"
  data.frame(structure = s, parameters = length(fit$par), evaluations = fit$optinfo$feval,
             search = search,
             fit_s = NA_real_, ms_per_evaluation = 1000 * stats::median(per))
})
per_eval <- do.call(rbind, per_eval)
per_eval$relative_to_us <- per_eval$ms_per_evaluation / per_eval$ms_per_evaluation[1]
print(per_eval, digits = 4)

fmt <- function(x, d = 3) formatC(x, digits = d, format = "g")
table_lines <- c(
  "| model | rows | glmmTMB | mixedrs | speed-up | logLik(mixedrs) − logLik(glmmTMB) |",
  "|---|---:|---:|---:|---:|---:|",
  sprintf("| %s | %d | %s s | %s s | %.1f× | %s |", res$model, res$n, fmt(res$glmmTMB_s),
          fmt(res$mixedrs_s), res$speedup, formatC(res$loglik_diff, digits = 2, format = "e")),
  "",
  "| structure (20k rows, q = 5) | parameters | search | evaluations in the fit | one deviance evaluation | vs us |",
  "|---|---:|---|---:|---:|---:|",
  sprintf("| %s | %d | %s | %d | %.3f ms | %.2f |", per_eval$structure, per_eval$parameters,
          per_eval$search, as.integer(per_eval$evaluations), per_eval$ms_per_evaluation,
          per_eval$relative_to_us),
  "",
  paste("Evaluations: of the deviance alone by BOBYQA; of the deviance with its gradient",
        "(and by Newton steps the average information) by Newton and quasi-Newton steps, each",
        "costing a few deviance evaluations.")
)
stamp <- sprintf("Measured %s with `Rscript bench/structured.R %d` (median of %d fits each; %s).",
                 format(Sys.Date()), reps, reps, R.version.string)
write_results_section("## Structured covariance terms (vs glmmTMB)", c(stamp, "", table_lines))
write_readme_block("bench-structured", c(stamp, "", table_lines))
