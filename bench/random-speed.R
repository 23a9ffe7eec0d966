# Speed of glmm() against glmer() with its defaults on the random GLMMs of the test suite's
# generator (tests/testthat/helper-random-models.R): for each kind and seed, both fits timed
# (median of 3, whole call), and the ratio glmer / glmm. Prints per kind the median and the
# smallest ratio and the seeds where glmm() was slower. Not part of `make bench`.
# Run from the repository root after installing the package:
#   Rscript bench/random-speed.R [seeds per kind] [first seed]
suppressPackageStartupMessages({
  library(lme4)
  library(mixedrs)
})
source(file.path("tests", "testthat", "helper-random-models.R"))
args <- as.integer(commandArgs(trailingOnly = TRUE))
n_seeds <- if (length(args) >= 1L) args[[1L]] else 20L
first <- if (length(args) >= 2L) args[[2L]] else 5001L

time_it <- function(f) {
  median(vapply(1:3, function(i) {
    t0 <- proc.time()[["elapsed"]]
    suppressWarnings(suppressMessages(f()))
    proc.time()[["elapsed"]] - t0
  }, 0))
}
rows <- list()
for (kind in random_glmm_kinds) {
  for (seed in first - 1L + seq_len(n_seeds)) {
    m <- random_glmm(kind, seed)
    t_ref <- time_it(function() glmer(m$formula, m$data, family = m$family, nAGQ = m$nAGQ))
    t_ours <- time_it(function() glmm(m$formula, m$data, family = m$family, nAGQ = m$nAGQ))
    rows[[length(rows) + 1L]] <- data.frame(kind = kind, seed = seed, nAGQ = m$nAGQ,
                                            glmer_s = t_ref, glmm_s = t_ours,
                                            ratio = t_ref / t_ours)
  }
}
res <- do.call(rbind, rows)
tab <- do.call(rbind, lapply(split(res, res$kind), function(r) {
  data.frame(kind = r$kind[1], models = nrow(r), median_ratio = median(r$ratio),
             min_ratio = min(r$ratio), slower = sum(r$ratio < 1))
}))
print(format(tab, digits = 3), row.names = FALSE)
slow <- res[res$ratio < 1, ]
if (nrow(slow)) {
  cat("\nglmm() slower than glmer():\n")
  print(slow, row.names = FALSE, digits = 3)
}
