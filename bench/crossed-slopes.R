# What bounds a large crossed model with random slopes on both factors: y ~ x + (1 + x | subj) +
# (1 + x | item), 300,000 rows, 4,000 subjects x 2,500 items (item frequencies skewed as in
# bench/suite.R). After the subjects are eliminated, the items' 2 x 2,500 = 5,000 random effects
# form a dense block (every pair of items shares some subject), so each evaluation of the
# criterion factors a dense 5,000 x 5,000 matrix: 5000^3 / 3 = 4.2e10 floating-point operations.
# The fit takes Newton steps from the start with the exact gradient (each gradient also inverts
# the dense block, about two factorizations more) and the average-information Hessian (one solve
# per parameter). The script prints the time, the evaluations (gradient points included), the
# time per evaluation and the fit's log-likelihood.
# lme4 is not run: it did not finish this model in 20 minutes.
#
#   Rscript bench/crossed-slopes.R
suppressPackageStartupMessages(library(mixedrs))

simulate_both_slopes <- function(n, n_subj, n_item, seed) {
  set.seed(seed)
  subj <- sample.int(n_subj, n, replace = TRUE)
  item <- sample.int(n_item, n, replace = TRUE, prob = 1 / seq_len(n_item)^0.7)
  x <- rnorm(n)
  eta <- 0.3 * x + rnorm(n_subj, sd = 0.6)[subj] + rnorm(n_item, sd = 0.4)[item] +
    rnorm(n_subj, sd = 0.3)[subj] * x + rnorm(n_item, sd = 0.2)[item] * x
  data.frame(subj = factor(subj), item = factor(item), x = x, y = eta + rnorm(n))
}

data <- simulate_both_slopes(3e5, 4000, 2500, seed = 7)
form <- y ~ x + (1 + x | subj) + (1 + x | item)
m <- 2 * nlevels(data$item)
factor_flops <- m^3 / 3

invisible(gc())
time <- system.time(fit <- lmm(form, data))[["elapsed"]]
evals <- fit$optinfo$feval
cat(sprintf("%s rows, %d subjects x %d items; dense block of order %d (%.2g flops per factor); %s, R %s, %d cores\n\n",
            format(nrow(data), big.mark = ","), nlevels(data$subj), nlevels(data$item), m,
            factor_flops, format(Sys.Date()), getRversion(), parallel::detectCores()))
cat("| time (s) | evaluations | s per evaluation | logLik | optimizer |\n")
cat("|---:|---:|---:|---:|---|\n")
cat(sprintf("| %.1f | %d | %.3f | %.4f | %s |\n", time, evals, time / evals,
            as.numeric(logLik(fit)), fit$optinfo$message))
