# Randomized comparison with lme4 at full precision, larger than the test suite's
# (tests/testthat/test-random-models.R, same generators and checks from
# tests/testthat/helper-random-models.R). Not part of `make test` or `make bench`.
#
# Run from the repository root after installing the package:
#   Rscript bench/random-models.R [LMM seeds per kind] [GLMM seeds per kind] [first seed]
# Defaults: 100 seeds for each of the 8 LMM kinds (800 LMMs) and 50 for each of
# the 7 GLMM kinds (350 GLMMs), seeds 1001 onwards (the test uses 1 to 60);
# about 2 minutes on a 2-core machine.
# Prints, per kind, the number of models, of failed models, the worst
# log-likelihood shortfall against lme4 (lme4 - ours; negative: ours better),
# the worst fixed-effect difference in lme4's standard errors (where the optima
# agree) and the worst relative standard-error difference; then every failed
# check with its seed, as the test reports it.
suppressPackageStartupMessages({
  library(lme4)
  library(mixedrs)
})
for (f in c("helper-reference.R", "helper-glmm.R", "helper-random-models.R")) {
  source(file.path("tests", "testthat", f))
}

options(width = 120)
args <- as.integer(commandArgs(trailingOnly = TRUE))
n_lmm <- if (length(args) >= 1L) args[[1L]] else 100L
n_glmm <- if (length(args) >= 2L) args[[2L]] else 50L
first <- if (length(args) >= 3L) args[[3L]] else 1001L

run_kind <- function(kind, seeds, generate, compare) {
  rows <- lapply(seeds, function(seed) {
    t0 <- proc.time()[["elapsed"]]
    r <- tryCatch(compare(generate(kind, seed)), error = function(e) e)
    el <- proc.time()[["elapsed"]] - t0
    if (inherits(r, "error")) {
      return(list(row = data.frame(kind = kind, seed = seed, failed = TRUE, shortfall = NA_real_,
                                   beta_se = NA_real_, se_rel = NA_real_, seconds = el),
                  problems = sprintf("%s seed %d: error: %s", kind, seed, conditionMessage(r))))
    }
    problems <- random_model_problems(r)
    list(row = data.frame(kind = kind, seed = seed, failed = length(problems) > 0L,
                          shortfall = -r$dll, beta_se = r$beta_se, se_rel = r$se_rel,
                          seconds = el),
         problems = problems)
  })
  list(rows = do.call(rbind, lapply(rows, `[[`, "row")),
       problems = unlist(lapply(rows, `[[`, "problems")))
}

worst <- function(v) if (all(is.na(v))) NA_real_ else max(v, na.rm = TRUE)

summarise <- function(what, kinds, n, generate, compare) {
  seeds <- first - 1L + seq_len(n)
  res <- lapply(kinds, run_kind, seeds = seeds, generate = generate, compare = compare)
  rows <- do.call(rbind, lapply(res, `[[`, "rows"))
  problems <- unlist(lapply(res, `[[`, "problems"))
  tab <- do.call(rbind, lapply(kinds, function(k) {
    r <- rows[rows$kind == k, ]
    data.frame(kind = k, models = nrow(r), failed = sum(r$failed),
               worst_shortfall = worst(r$shortfall), worst_beta_se = worst(r$beta_se),
               worst_se_rel = worst(r$se_rel), seconds = sum(r$seconds))
  }))
  cat(sprintf("\n%s: seeds %d to %d\n", what, min(seeds), max(seeds)))
  print(format(tab, digits = 3), row.names = FALSE)
  if (length(problems)) {
    cat(sprintf("\n%d failed checks:\n", length(problems)))
    cat(problems, sep = "\n")
  }
  invisible(list(table = tab, problems = problems))
}

# A count of 0 skips that family of models.
lmm_res <- if (n_lmm > 0L) summarise("LMMs", random_lmm_kinds, n_lmm, random_lmm, compare_random_lmm)
glmm_res <- if (n_glmm > 0L) summarise("GLMMs", random_glmm_kinds, n_glmm, random_glmm, compare_random_glmm)
