# GLMMs of lme4's families on data whose rows repeat: binary responses and
# counts with factor covariates, as designed experiments give them (subjects
# x conditions x items x trials). mixedrs fits each distinct row once with
# its prior weights summed (src/rust/fit/merged_rows.rs), which leaves the
# likelihood unchanged; glmer works on every row. Both with their defaults
# (glmm() and glmer()), alternating in one R process; reports the median of K
# repetitions, the ratio glmer / mixedrs, the number of distinct rows and
# the logLik difference (positive = mixedrs at a better optimum).
#
# Run from the repository root after installing the package:
#   Rscript bench/repeated-rows.R [--reps=K] [--no-write]
# Writes the table to bench/RESULTS.md and between the README's
# bench:repeated-rows markers unless --no-write.
suppressPackageStartupMessages({
  library(mixedrs)
  library(lme4)
})
source(file.path("bench", "suite.R"))  # bench_options(), write_results_section(), write_readme_block()

opts <- bench_options(commandArgs(trailingOnly = TRUE), reps = 5L)
reps <- opts$reps
write <- opts$write

# Binary responses: n_subj subjects x the conditions x n_item items x
# n_trial trials, with random intercepts for subjects and items.
binary_design <- function(n_subj, n_cond, n_item, n_trial, seed) {
  set.seed(seed)
  d <- expand.grid(cond = factor(seq_len(n_cond)), subj = factor(seq_len(n_subj)),
                   item = factor(seq_len(n_item)), trial = seq_len(n_trial))
  eta <- -0.3 + 0.4 * as.integer(d$cond) + rnorm(n_subj, sd = 0.9)[d$subj] +
    rnorm(n_item, sd = 0.5)[d$item]
  d$y <- rbinom(nrow(d), 1, plogis(eta))
  d
}

# Counts: sites x treatments x replicate plots.
count_design <- function(n_site, n_trt, n_rep, seed) {
  set.seed(seed)
  d <- expand.grid(trt = factor(seq_len(n_trt)), site = factor(seq_len(n_site)),
                   rep = seq_len(n_rep))
  d$y <- rpois(nrow(d), exp(0.5 + 0.3 * as.integer(d$trt) + rnorm(n_site, sd = 0.6)[d$site]))
  d
}

cases <- list(
  list(name = "binary, 50 subjects x 2 conditions x 4 items x 10 trials",
       formula = y ~ cond + (1 | subj) + (1 | item), family = binomial,
       data = binary_design(50, 2, 4, 10, 1), key = c("cond", "subj", "item", "y")),
  list(name = "binary, 400 subjects x 4 conditions x 25 trials",
       formula = y ~ cond + (1 | subj), family = binomial,
       data = binary_design(400, 4, 1, 25, 2), key = c("cond", "subj", "y")),
  list(name = "counts, 40 sites x 3 treatments x 20 plots",
       formula = y ~ trt + (1 | site), family = poisson,
       data = count_design(40, 3, 20, 3), key = c("trt", "site", "y"))
)

fit_with <- function(case, pkg) {
  fun <- if (pkg == "lme4") lme4::glmer else mixedrs::glmm
  suppressMessages(suppressWarnings(
    fun(case$formula, data = case$data, family = case$family)))
}

rows <- lapply(cases, function(case) {
  fits <- list(mixedrs = fit_with(case, "mixedrs"), lme4 = fit_with(case, "lme4"))
  times <- list(mixedrs = numeric(), lme4 = numeric())
  for (r in seq_len(reps)) {
    for (pkg in names(times)) {
      times[[pkg]] <- c(times[[pkg]], system.time(fit_with(case, pkg))[["elapsed"]])
    }
  }
  row <- data.frame(
    model = case$name, rows = nrow(case$data),
    distinct = nrow(unique(case$data[case$key])),
    mixedrs_s = median(times$mixedrs), glmer_s = median(times$lme4),
    loglik_diff = as.numeric(logLik(fits$mixedrs)) - as.numeric(logLik(fits$lme4)))
  cat(sprintf("%-58s mixedrs %.4f s  glmer %.4f s  (%.1fx)  logLik - glmer %+.2e\n",
              case$name, row$mixedrs_s, row$glmer_s, row$glmer_s / row$mixedrs_s,
              row$loglik_diff))
  row
})
res <- do.call(rbind, rows)

table_lines <- c(
  "| model | rows | distinct rows | glmer (s) | mixedrs (s) | glmer / mixedrs | logLik − glmer's |",
  "|---|---:|---:|---:|---:|---:|---:|",
  sprintf("| %s | %d | %d | %.4f | %.4f | %.1f× | %s |", res$model, res$rows, res$distinct,
          res$glmer_s, res$mixedrs_s, res$glmer_s / res$mixedrs_s,
          formatC(res$loglik_diff, format = "e", digits = 1))
)
info <- sprintf(paste("Median of %d alternating repetitions in one R %s process on %d cores (%s);",
                      "glmer() and glmm() with their defaults; mixedrs %s, lme4 %s."),
                reps, format(getRversion()), parallel::detectCores(), format(Sys.Date()),
                packageVersion("mixedrs"), packageVersion("lme4"))
cat("\n", paste(c(info, "", table_lines), collapse = "\n"), "\n", sep = "")

if (write) {
  write_results_section("## Repeated rows (vs glmer)", c(info, "", table_lines))
  write_readme_block("bench:repeated-rows", c(info, "", table_lines))
  cat("\nwrote bench/RESULTS.md and the README's repeated-rows table\n")
}
