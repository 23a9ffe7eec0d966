# Count and proportion models side by side: every model of the test catalogue
# (tests/testthat/helper-glmm-families.R: negative binomial, zero inflation,
# dispersion models, beta, beta-binomial on Salamanders, Owls, grouseticks,
# epil, cbpp, sleepstudy and simulated data) fitted by mixedrs (glmm(), or
# glmm.nb() for the glmer.nb models), glmmTMB, and lme4's glmer.nb() where
# glmer.nb can fit the model (negative binomial 2, no zero inflation, no
# dispersion model), each with its defaults, in one R process, the packages
# alternating within each repetition. Reports the median time of K
# repetitions, the ratios glmmTMB / mixedrs and glmer.nb / mixedrs, and the
# logLik difference from the model's reference (glmmTMB's Laplace
# approximation for glmm() fits, glmer.nb's for glmm.nb() fits; the two
# approximations differ for the negative binomial, so each fit is compared
# with its own kind).
#
# Run from the repository root after installing the package:
#   Rscript bench/glmm-families.R [--reps=K] [--no-write]
# Writes the table to bench/RESULTS.md and between the README's
# bench:glmm-families markers unless --no-write.
suppressPackageStartupMessages({
  library(mixedrs)
  library(lme4)
  library(glmmTMB)
})
source(file.path("bench", "suite.R"))  # bench_options(), write_results_section(), write_readme_block()
source(file.path("tests", "testthat", "helper-glmm-families.R"))  # family_cases(), case_call()

opts <- bench_options(commandArgs(trailingOnly = TRUE), reps = 3L)
reps <- opts$reps
write <- opts$write

quiet <- function(expr) suppressWarnings(suppressMessages(expr))

# Whether glmer.nb fits the same model: a negative binomial 2 (log link)
# without zero inflation or a dispersion model.
glmer_nb_can_fit <- function(case) {
  case$family == "nbinom2" && case$link == "log" && !has_zi(case) && !has_disp_model(case)
}

# The calls timed for `case`, each package with its defaults.
bench_calls <- function(case) {
  calls <- list(mixedrs = case_call(case, "mixedrs"), glmmTMB = case_call(case, "glmmTMB"))
  if (glmer_nb_can_fit(case)) calls$glmer.nb <- case_call(case, "glmer.nb")
  calls
}

# One untimed fit per package first, so that no timing counts lazy loading,
# TMB's first tape or the shared library's pages.
warm <- family_cases()[["Salamanders nbinom2"]]
for (cl in bench_calls(warm)) quiet(eval(cl, case_env(warm)))

# A fit that fails is recorded (time NA, its message) and reported in the
# table rather than ending the run.
time_once <- function(cl, env) {
  t0 <- proc.time()[["elapsed"]]
  fit <- tryCatch(quiet(eval(cl, env)), error = function(e) e)
  if (inherits(fit, "error")) return(list(time = NA_real_, fit = NULL, error = conditionMessage(fit)))
  list(time = proc.time()[["elapsed"]] - t0, fit = fit, error = NULL)
}

rows <- lapply(family_cases(), function(case) {
  env <- case_env(case)
  calls <- bench_calls(case)
  times <- matrix(NA_real_, reps, length(calls), dimnames = list(NULL, names(calls)))
  fits <- list()
  errors <- list()
  for (r in seq_len(reps)) {
    for (pkg in names(calls)) {
      if (!is.null(errors[[pkg]])) next
      res <- time_once(calls[[pkg]], env)
      times[r, pkg] <- res$time
      fits[[pkg]] <- res$fit
      errors[[pkg]] <- res$error
    }
  }
  med <- apply(times, 2L, stats::median)
  ref_pkg <- case$reference
  ll <- function(pkg) {
    if (is.null(fits[[pkg]])) NA_real_ else as.numeric(stats::logLik(fits[[pkg]]))
  }
  row <- data.frame(
    model = case$name, rows = nrow(family_data(case$data)),
    mixedrs_s = med[["mixedrs"]], glmmTMB_s = med[["glmmTMB"]],
    glmer_nb_s = if ("glmer.nb" %in% names(med)) med[["glmer.nb"]] else NA_real_,
    reference = ref_pkg,
    loglik_diff = ll("mixedrs") - ll(ref_pkg),
    error = if (length(errors)) paste(sprintf("%s: %s", names(errors), unlist(errors)),
                                      collapse = "; ") else NA_character_
  )
  row$tmb_ratio <- row$glmmTMB_s / row$mixedrs_s
  row$nb_ratio <- row$glmer_nb_s / row$mixedrs_s
  cat(sprintf("%-42s mixedrs %.3f s  glmmTMB %.3f s  glmer.nb %s  logLik - %s %+.2e%s\n",
              case$name, row$mixedrs_s, row$glmmTMB_s,
              if (is.na(row$glmer_nb_s)) "-" else sprintf("%.3f s", row$glmer_nb_s),
              ref_pkg, row$loglik_diff, if (is.na(row$error)) "" else paste0("  ", row$error)))
  row
})
res <- do.call(rbind, rows)
rownames(res) <- NULL

fmt <- function(x, d) ifelse(is.na(x), "–", formatC(x, format = "f", digits = d))
fmt_ll <- function(x) ifelse(is.na(x), "–", formatC(x, format = "e", digits = 1))
fmt_ratio <- function(x) ifelse(is.na(x), "–", paste0(formatC(x, format = "f", digits = 1), "×"))
gmean <- function(x) exp(mean(log(x[!is.na(x)])))
# A model name in a markdown table: its bars (random-effects terms of a
# ziformula) escaped so that they do not split the row.
md <- function(x) gsub("|", "\\|", x, fixed = TRUE)
table_lines <- c(
  paste("| model | rows | mixedrs (s) | glmmTMB (s) | glmer.nb (s) | glmmTMB / mixedrs |",
        "glmer.nb / mixedrs | logLik: mixedrs − reference |"),
  "|---|---:|---:|---:|---:|---:|---:|---:|",
  sprintf("| %s | %d | %s | %s | %s | %s | %s | %s (%s) |", md(res$model), res$rows,
          fmt(res$mixedrs_s, 3), fmt(res$glmmTMB_s, 3), fmt(res$glmer_nb_s, 3),
          fmt_ratio(res$tmb_ratio), fmt_ratio(res$nb_ratio),
          fmt_ll(res$loglik_diff), res$reference),
  if (any(!is.na(res$error))) c("", paste0("Fits that failed: ",
    paste(sprintf("%s (%s)", res$model[!is.na(res$error)], res$error[!is.na(res$error)]),
          collapse = "; "), "."))
)
info <- c(
  sprintf(paste("Median of %d alternating repetitions in one R %s process on %d cores (%s);",
                "each package with its defaults; mixedrs %s, glmmTMB %s, lme4 %s.",
                "Geometric-mean ratio glmmTMB / mixedrs: %.1f×; glmer.nb / mixedrs: %.1f×;",
                "slowest against glmmTMB: %s (%.1f×); against glmer.nb: %s (%.1f×)."),
          reps, format(getRversion()), parallel::detectCores(), format(Sys.Date()),
          packageVersion("mixedrs"), packageVersion("glmmTMB"), packageVersion("lme4"),
          gmean(res$tmb_ratio), gmean(res$nb_ratio),
          res$model[which.min(res$tmb_ratio)], min(res$tmb_ratio, na.rm = TRUE),
          res$model[which.min(res$nb_ratio)], min(res$nb_ratio, na.rm = TRUE)),
  "",
  paste("The logLik column compares each fit with its reference at that package's optimum:",
        "glmm() fits with glmmTMB's (the same Laplace approximation, observed Hessian),",
        "glmm.nb() fits with glmer.nb's (lme4's, expected weights); positive = a better optimum.",
        "glmer.nb is timed only where it fits the same model (nbinom2 without zero inflation",
        "or dispersion model); for glmm() rows it is the same model with lme4's approximation.")
)
cat("\n", paste(c(info, "", table_lines), collapse = "\n"), "\n", sep = "")

if (write) {
  write_results_section("## Counts and proportions (vs glmmTMB and glmer.nb)",
                        c(info, "", table_lines))
  write_readme_block("bench:glmm-families", c(info, "", table_lines))
  cat("\nwrote bench/RESULTS.md and the README's glmm-families table\n")
}
