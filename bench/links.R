# Non-canonical links and families with a dispersion side by side: mixedrs's glmm() and lme4's
# glmer() (defaults) on a probit, a cloglog, a Gamma log and an inverse Gaussian log model with
# a random intercept, and the logit for comparison; time of each fit (median
# of `reps`), PIRLS iterations over the whole fit (mixedrs's from its optimizer record;
# glmer's counted from its `verbose = 3` trace, one "pwrssUpdate step" line per iteration, in
# an untimed extra fit) and the logLik difference, against glmer's default fit and against glmer run to full
# precision (not timed; glmer's default PIRLS tolerance leaves its reported Laplace value up
# to ~1e-2 off, in either direction). Run from the repository root after installing the package:
#   Rscript bench/links.R
# Writes the table to bench/RESULTS.md and between the README's bench-links markers.
suppressPackageStartupMessages({
  library(lme4)
  library(mixedrs)
})
source(file.path("bench", "suite.R"))  # write_results_section(), write_readme_block()
set.seed(20240601)
reps <- as.integer(Sys.getenv("MIXEDRS_LINKS_REPS", "3"))
n <- 20000
ng <- 1000
d <- data.frame(g = factor(sample(ng, n, TRUE)), x = rnorm(n))
b <- rnorm(ng, sd = 0.6)[d$g]
d$yp <- rbinom(n, 1, pnorm(-0.3 + 0.5 * d$x + b))
d$yc <- rbinom(n, 1, 1 - exp(-exp(-0.5 + 0.5 * d$x + b)))
d$yg <- rgamma(n, shape = 3, rate = 3 / exp(0.5 + 0.3 * d$x + 0.5 * b))
d$yl <- rbinom(n, 1, plogis(-0.3 + 0.5 * d$x + b))
d$yi <- exp(0.5 + 0.3 * d$x + 0.5 * b + rnorm(n, sd = 0.3))
models <- list(
  logit = list(f = yl ~ x + (1 | g), family = binomial),
  probit = list(f = yp ~ x + (1 | g), family = binomial("probit")),
  cloglog = list(f = yc ~ x + (1 | g), family = binomial("cloglog")),
  gamma_log = list(f = yg ~ x + (1 | g), family = Gamma("log")),
  inverse_gaussian_log = list(f = yi ~ x + (1 | g), family = inverse.gaussian("log"))
)
med_time <- function(expr_fun) {
  t <- numeric(reps)
  for (r in seq_len(reps)) {
    t0 <- proc.time()[["elapsed"]]
    fit <- expr_fun()
    t[r] <- proc.time()[["elapsed"]] - t0
  }
  list(time = median(t), fit = fit)
}
rows <- lapply(names(models), function(nm) {
  m <- models[[nm]]
  a <- med_time(function() suppressWarnings(suppressMessages(
    glmer(m$f, data = d, family = m$family))))
  b <- med_time(function() suppressWarnings(glmm(m$f, data = d, family = m$family)))
  trace <- utils::capture.output(suppressWarnings(suppressMessages(
    glmer(m$f, data = d, family = m$family, verbose = 3))))
  glmer_iter <- sum(grepl("pwrssUpdate step", trace, fixed = TRUE))
  full <- suppressWarnings(suppressMessages(glmer(m$f, data = d, family = m$family,
    control = glmerControl(optimizer = c("bobyqa", "bobyqa"), optCtrl = list(rhoend = 1e-10),
                           tolPwrss = 1e-12))))
  data.frame(model = nm, n = n, groups = ng, glmer_s = a$time, mixedrs_s = b$time,
             speedup = a$time / b$time,
             glmer_pirls_iter = glmer_iter,
             mixedrs_pirls_iter = b$fit$optinfo$pirls_iterations,
             mixedrs_evals = sum(b$fit$optinfo$feval_stages),
             loglik_diff = as.numeric(logLik(b$fit)) - as.numeric(logLik(a$fit)),
             loglik_diff_full = as.numeric(logLik(b$fit)) - as.numeric(logLik(full)))
})
res <- do.call(rbind, rows)
print(res, digits = 4, row.names = FALSE)

fmt <- function(x, d) formatC(x, format = "f", digits = d)
table_lines <- c(
  paste("| model | glmer (s) | mixedrs (s) | speedup | glmer PIRLS iterations |",
        "mixedrs PIRLS iterations | logLik − glmer's full-precision logLik |"),
  "|---|---:|---:|---:|---:|---:|---:|",
  sprintf("| %s, %d rows, %d groups | %s | %s | %s× | %d | %d | %s |", res$model, res$n, res$groups,
          fmt(res$glmer_s, 3), fmt(res$mixedrs_s, 3), fmt(res$speedup, 1),
          as.integer(res$glmer_pirls_iter), as.integer(res$mixedrs_pirls_iter),
          formatC(res$loglik_diff_full, format = "g", digits = 2))
)
info <- sprintf(paste("Median of %d fits in one R %s process on %d cores (%s); glmer with its",
                      "defaults; lme4 %s, mixedrs %s."),
                reps, format(getRversion()), parallel::detectCores(), format(Sys.Date()),
                packageVersion("lme4"), packageVersion("mixedrs"))

write_results_section("## Non-canonical links", c(info, "", table_lines))
write_readme_block("bench-links", c(info, "", table_lines))
cat("\nwrote bench/RESULTS.md and the README's links table\n")
