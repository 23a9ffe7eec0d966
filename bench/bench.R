# `make bench`: lme4, glmmTMB and mixedrs fit the suite of bench/suite.R in one R process,
# alternating, several repetitions each (small models several fits per repetition); then each
# model is fitted once more by lme4 and by mixedrs in a child R process (bench/fit_once.R) to
# read the peak memory of the fit (two children at a time); then, if a Python environment with
# the `glmm` crate's package can be set up (tools/peer-venv.sh), that package fits the same data
# as a further reference (fit time only, in its own process). Each model's row is kept in
# bench/results.csv (with its date and commit), so a run on part of the suite replaces only
# those rows; bench/RESULTS.md, bench/speedup.png and the README's table are written from all
# rows once every model of the suite has one.
# Run from the repository root after installing the package. MIXEDRS_BENCH_MODELS (a regular
# expression) restricts the suite; MIXEDRS_BENCH_PEER=0 skips the glmm crate and
# MIXEDRS_BENCH_TMB=0 skips glmmTMB. `Rscript bench/bench.R --report` measures nothing and
# writes the reports from bench/results.csv (rows measured elsewhere copied into it).
suppressPackageStartupMessages({
  library(lme4)
  library(mixedrs)
})
# glmmTMB is not timed above this many rows (MIXEDRS_BENCH_TMB_MAX_ROWS): on crossed 1M, with
# Debian's reference BLAS under CHOLMOD's supernodal factor of the 3,700 items, one fit was
# still running after at least 45 minutes, in 4 GB (lme4's takes 15-55 minutes).
tmb_max_rows <- as.numeric(Sys.getenv("MIXEDRS_BENCH_TMB_MAX_ROWS", "5e5"))
use_tmb <- !identical(Sys.getenv("MIXEDRS_BENCH_TMB"), "0") &&
  requireNamespace("glmmTMB", quietly = TRUE)
source(file.path("bench", "suite.R"))

suite <- bench_suite()
suite_names <- vapply(suite, `[[`, "", "name")
only <- Sys.getenv("MIXEDRS_BENCH_MODELS")
if (nzchar(only)) suite <- Filter(function(m) grepl(only, m$name), suite)
work <- tempfile("mixedrs-bench-")
dir.create(work)

report_only <- "--report" %in% commandArgs(TRUE)
# The checkout's commit when the run starts (a long run outlasts later commits); the installed
# package is taken to be built from it.
commit <- suppressWarnings(system2("git", c("describe", "--always", "--dirty"), stdout = TRUE,
                                   stderr = FALSE))
res <- NULL
if (!report_only && length(suite) > 0L) {
  # --- time: alternating repetitions in this process -------------------------------------------
  time_fits <- function(m, pkg) {
    gc(FALSE)
    t0 <- proc.time()[["elapsed"]]
    for (i in seq_len(m$inner)) fit <- fit_model(m, pkg)
    list(time = (proc.time()[["elapsed"]] - t0) / m$inner, fit = fit)
  }

  rows <- lapply(suite, function(m) {
    cat("timing", m$name, "...\n")
    t_lme4 <- t_ours <- t_tmb <- numeric(m$reps)
    tmb_here <- use_tmb && nrow(m$data) <= tmb_max_rows
    tmb <- NULL
    for (r in seq_len(m$reps)) {
      a <- time_fits(m, "lme4")
      if (tmb_here) tmb <- time_fits(m, "glmmTMB")
      b <- time_fits(m, "mixedrs")
      t_lme4[r] <- a$time
      t_tmb[r] <- if (tmb_here) tmb$time else NA_real_
      t_ours[r] <- b$time
    }
    loglik_lme4 <- as.numeric(logLik(a$fit))
    data.frame(model = m$name, n = nrow(m$data), lme4_s = median(t_lme4),
               mixedrs_s = median(t_ours), speedup = median(t_lme4) / median(t_ours),
               loglik_lme4 = loglik_lme4,
               loglik_diff = as.numeric(logLik(b$fit)) - loglik_lme4,
               tmb_s = median(t_tmb),
               tmb_loglik_diff = if (tmb_here) as.numeric(logLik(tmb$fit)) - loglik_lme4 else NA)
  })
  res <- do.call(rbind, rows)

  # --- memory: one fit per package in a child process -----------------------------------------
  rscript <- file.path(R.home("bin"), "Rscript")
  peak_mb <- function(path, pkg) {
    out <- suppressWarnings(system2(rscript, c(file.path("bench", "fit_once.R"), pkg, path),
                                    stdout = TRUE, stderr = FALSE))
    v <- suppressWarnings(as.numeric(strsplit(utils::tail(out, 1L), " ")[[1]]))
    if (length(v) != 2L || anyNA(v)) return(NA_real_)
    v[2] - v[1]
  }
  # The children only measure memory, so two run at a time (lme4 alone takes minutes on the
  # largest models).
  jobs <- expand.grid(pkg = c("lme4", "mixedrs"), i = seq_along(suite), stringsAsFactors = FALSE)
  paths <- vapply(seq_along(suite), function(i) {
    path <- file.path(work, sprintf("model-%02d.rds", i))
    saveRDS(suite[[i]], path)
    path
  }, "")
  cat("measuring the memory of each fit in child processes ...\n")
  peaks <- unlist(parallel::mclapply(seq_len(nrow(jobs)), function(k) {
    peak_mb(paths[jobs$i[k]], jobs$pkg[k])
  }, mc.cores = 2L, mc.preschedule = FALSE))
  mem <- matrix(peaks, ncol = 2L, byrow = TRUE)
  res$lme4_mb <- mem[, 1]
  res$mixedrs_mb <- mem[, 2]

  # --- second reference: the glmm crate's Python package ---------------------------------------
  peer_python <- if (!identical(Sys.getenv("MIXEDRS_BENCH_PEER"), "0")) {
    suppressWarnings(system2("bash", file.path("tools", "peer-venv.sh"), stdout = TRUE))
  }
  res$peer_s <- NA_real_
  res$peer_loglik_diff <- NA_real_
  peer_version <- NULL
  if (length(peer_python) == 1L && file.exists(peer_python)) {
    cat("fitting the suite with the glmm crate's Python package ...\n")
    manifest <- do.call(rbind, lapply(seq_along(suite), function(i) {
      m <- suite[[i]]
      file <- file.path(work, sprintf("model-%02d.csv", i))
      utils::write.csv(m$data, file, row.names = FALSE)
      formula <- if (!is.null(m$peer$formula)) m$peer$formula else deparse1(m$formula)
      factors <- names(m$data)[vapply(m$data, function(v) is.factor(v) || is.character(v), TRUE)]
      data.frame(name = m$name, file = file, formula = formula,
                 family = if (is.null(m$family)) "gaussian" else m$family,
                 factors = paste(factors, collapse = ";"), reps = max(m$reps, 3L))
    }))
    manifest_file <- file.path(work, "manifest.csv")
    utils::write.csv(manifest, manifest_file, row.names = FALSE)
    peer_out <- suppressWarnings(system2(peer_python, c(file.path("bench", "peer_glmm.py"),
                                                        manifest_file), stdout = TRUE))
    if (length(peer_out) > 1L) {
      peer <- utils::read.csv(text = peer_out)
      k <- match(res$model, peer$name)
      res$peer_s <- peer$seconds[k]
      res$peer_loglik_diff <- peer$loglik[k] - res$loglik_lme4
      peer_version <- suppressWarnings(system2(peer_python, c("-c", shQuote(
        "import importlib.metadata as m; print(m.version('glmm'))")), stdout = TRUE))
    }
  }

  # --- rows kept from earlier runs --------------------------------------------------------------
  res$date <- format(Sys.Date())
  res$commit <- if (length(commit) == 1L) commit else NA_character_
  res$versions <- sprintf("R %s, lme4 %s, glmmTMB %s, mixedrs %s", getRversion(),
                          packageVersion("lme4"),
                          if (use_tmb) format(packageVersion("glmmTMB")) else "-",
                          packageVersion("mixedrs"))
  res$peer_version <- if (is.null(peer_version)) NA_character_ else peer_version[1L]
  print(res, digits = 4)
}
results_csv <- file.path("bench", "results.csv")
if (file.exists(results_csv)) {
  old <- utils::read.csv(results_csv, stringsAsFactors = FALSE)
  res <- if (is.null(res)) old else rbind(old[!old$model %in% res$model, names(res), drop = FALSE],
                                          res)
}
if (is.null(res)) stop("no model measured and no bench/results.csv to report from")
res <- res[res$model %in% suite_names, , drop = FALSE]
res <- res[order(match(res$model, suite_names)), , drop = FALSE]
utils::write.csv(res, results_csv, row.names = FALSE)
complete <- all(suite_names %in% res$model)

# --- report -----------------------------------------------------------------------------------
fmt <- function(x, d) ifelse(is.na(x), "–", formatC(x, format = "f", digits = d))
fmt_e <- function(x) ifelse(is.na(x), "–", formatC(x, format = "e", digits = 1))
geo_mean <- exp(mean(log(res$speedup)))
have_peer <- any(!is.na(res$peer_s))
have_tmb <- any(!is.na(res$tmb_s))
dates <- unique(res$date)
mixed_dates <- length(dates) > 1L
table_lines <- c(
  paste0("| model | rows | lme4 (s) | ", if (have_tmb) "glmmTMB (s) | ",
         "mixedrs (s) | speedup | logLik: mixedrs − lme4 ",
         if (have_tmb) "| logLik: glmmTMB − lme4 ",
         "| memory lme4 (MB) | memory mixedrs (MB) |",
         if (have_peer) " glmm crate (s) | mixedrs vs glmm crate | logLik: glmm crate − lme4 |",
         if (mixed_dates) " measured |"),
  paste0("|---|---:|---:|", if (have_tmb) "---:|", "---:|---:|---:|", if (have_tmb) "---:|",
         "---:|---:|", if (have_peer) "---:|---:|---:|", if (mixed_dates) "---|"),
  paste0(sprintf("| %s | %d | %s | ", res$model, res$n, fmt(res$lme4_s, 3)),
         if (have_tmb) paste0(fmt(res$tmb_s, 3), " | "),
         sprintf("%s | %s× | %s |", fmt(res$mixedrs_s, 4), fmt(res$speedup, 1),
                 fmt_e(res$loglik_diff)),
         if (have_tmb) paste0(" ", fmt_e(res$tmb_loglik_diff), " |"),
         sprintf(" %s | %s |", fmt(res$lme4_mb, 1), fmt(res$mixedrs_mb, 1)),
         if (have_peer) sprintf(" %s | %s× | %s |", fmt(res$peer_s, 4),
                                fmt(res$peer_s / res$mixedrs_s, 1), fmt_e(res$peer_loglik_diff)),
         if (mixed_dates) sprintf(" %s (%s) |", res$date, res$commit))
)
peer_versions <- unique(stats::na.omit(res$peer_version))
info <- c(
  sprintf(paste("Median of alternating repetitions in one R process per run on %d cores (%s);",
                "%s. Geometric-mean speedup over lme4: %.1f×."),
          parallel::detectCores(),
          if (mixed_dates) paste("rows measured", paste(range(dates), collapse = " to "),
                                 "as the last column says") else dates,
          paste(unique(res$versions), collapse = "; "), geo_mean),
  "",
  paste("logLik: the log-likelihood (REML log-likelihood for the LMMs) at each package's",
        "optimum; positive = a better optimum than lme4's. Memory: the rise of the resident set",
        "size during one fit (peak minus before), in a fresh R process per fit.",
        if (have_tmb) paste("glmmTMB fits the linear models by REML, as lme4 and mixedrs do",
                            "(–: not timed, more rows than MIXEDRS_BENCH_TMB_MAX_ROWS)."),
        if (have_peer) sprintf(paste(
          "glmm crate: its Python package %s from PyPI fitting the same data (fit time only, own",
          "process, Satterthwaite df off); \"mixedrs vs glmm crate\" > 1 means mixedrs is",
          "faster."), paste(peer_versions, collapse = ", ")))
)
# This table heads bench/RESULTS.md; the other scripts' sections ("## ...") after it are kept.
results_md <- file.path("bench", "RESULTS.md")
sections <- if (file.exists(results_md)) readLines(results_md) else character()
first <- grep("^## ", sections)
sections <- if (length(first)) sections[first[1L]:length(sections)] else character()
writeLines(c("# Benchmark: mixedrs vs lme4", "", info, "", table_lines, "",
             "![speedup over lme4 per model](speedup.png)", if (length(sections)) "", sections),
           results_md)

# The plot: speedup over lme4 per model on a log scale (and the glmm crate's, where measured).
n_models <- nrow(res)
ys <- rev(seq_len(n_models))
peer_speedup <- res$lme4_s / res$peer_s
xmax <- max(c(res$speedup, peer_speedup, res$lme4_s / res$tmb_s), na.rm = TRUE) * 1.6
grDevices::png(file.path("bench", "speedup.png"), width = 1000, height = 150 + 36 * n_models,
               res = 110, type = if (capabilities("cairo")) "cairo" else "Xlib")
op <- graphics::par(mar = c(4.5, 13, 3, 1))
graphics::plot(NA, xlim = c(min(0.7, res$lme4_s / res$tmb_s, na.rm = TRUE), xmax), ylim = c(0.5, n_models + 1.7), log = "x", yaxt = "n",
               xlab = "speedup over lme4 (log scale; bars start at 1 = as fast as lme4)",
               ylab = "", main = "mixedrs vs lme4, full fit from R")
graphics::abline(v = c(1, 10, 100), lty = 3, col = "grey60")
graphics::rect(1, ys - 0.35, res$speedup, ys + 0.35, col = "steelblue", border = NA)
graphics::text(res$speedup, ys, sprintf("%.1f×", res$speedup), pos = 4, cex = 0.8)
graphics::axis(2, at = ys, labels = res$model, las = 1, tick = FALSE)
if (have_tmb) graphics::points(res$lme4_s / res$tmb_s, ys, pch = 17, col = "darkgreen")
if (have_peer) graphics::points(peer_speedup, ys, pch = 18, col = "darkorange", cex = 1.5)
graphics::legend("topright", c("mixedrs", if (have_tmb) "glmmTMB",
                               if (have_peer) "glmm crate (Python; fit only)"),
                 horiz = TRUE, pch = c(15, if (have_tmb) 17, if (have_peer) 18),
                 col = c("steelblue", if (have_tmb) "darkgreen", if (have_peer) "darkorange"),
                 bg = "white")
graphics::par(op)
invisible(grDevices::dev.off())

# The README shows the same table between its bench markers.
readme <- readLines("README.md")
start <- grep("<!-- bench:start -->", readme, fixed = TRUE)
end <- grep("<!-- bench:end -->", readme, fixed = TRUE)
if (length(start) == 1L && length(end) == 1L && end > start && complete) {
  readme <- c(readme[seq_len(start)], info, "", table_lines, "",
              "![speedup over lme4 per model](bench/speedup.png)", readme[end:length(readme)])
  writeLines(readme, "README.md")
}
cat("\nwrote bench/results.csv, bench/RESULTS.md, bench/speedup.png",
    if (complete) "and the README table" else "(the README's table waits for every model)", "\n")
