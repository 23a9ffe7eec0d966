# `make bench`: lme4 and mixedrs fit the suite of bench/suite.R in one R process, alternating,
# several repetitions each (small models several fits per repetition); then each model is fitted
# once more by each package in a child R process (bench/fit_once.R) to read the peak memory of
# the fit (two children at a time); then, if a Python environment with the `glmm` crate's package can be set up
# (tools/peer-venv.sh), that package fits the same data as a second reference (fit time only, in
# its own process). Writes bench/RESULTS.md, bench/speedup.png and the README's table.
# Run from the repository root after installing the package. MIXEDRS_BENCH_MODELS (a regular
# expression) restricts the suite; MIXEDRS_BENCH_PEER=0 skips the second reference.
suppressPackageStartupMessages({
  library(lme4)
  library(mixedrs)
})
source(file.path("bench", "suite.R"))

suite <- bench_suite()
only <- Sys.getenv("MIXEDRS_BENCH_MODELS")
if (nzchar(only)) suite <- Filter(function(m) grepl(only, m$name), suite)
work <- tempfile("mixedrs-bench-")
dir.create(work)

# --- time: alternating repetitions in this process -------------------------------------------
time_fits <- function(m, pkg) {
  gc(FALSE)
  t0 <- proc.time()[["elapsed"]]
  for (i in seq_len(m$inner)) fit <- fit_model(m, pkg)
  list(time = (proc.time()[["elapsed"]] - t0) / m$inner, fit = fit)
}

rows <- lapply(suite, function(m) {
  cat("timing", m$name, "...\n")
  t_lme4 <- t_ours <- numeric(m$reps)
  for (r in seq_len(m$reps)) {
    a <- time_fits(m, "lme4")
    b <- time_fits(m, "mixedrs")
    t_lme4[r] <- a$time
    t_ours[r] <- b$time
  }
  data.frame(model = m$name, n = nrow(m$data), lme4_s = median(t_lme4),
             mixedrs_s = median(t_ours), speedup = median(t_lme4) / median(t_ours),
             loglik_lme4 = as.numeric(logLik(a$fit)),
             loglik_diff = as.numeric(logLik(b$fit)) - as.numeric(logLik(a$fit)))
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
print(res, digits = 4)

# --- report -----------------------------------------------------------------------------------
fmt <- function(x, d) ifelse(is.na(x), "–", formatC(x, format = "f", digits = d))
fmt_e <- function(x) ifelse(is.na(x), "–", formatC(x, format = "e", digits = 1))
geo_mean <- exp(mean(log(res$speedup)))
have_peer <- any(!is.na(res$peer_s))
table_lines <- c(
  paste0("| model | rows | lme4 (s) | mixedrs (s) | speedup | logLik: mixedrs − lme4 ",
         "| memory lme4 (MB) | memory mixedrs (MB) |",
         if (have_peer) " glmm crate (s) | mixedrs vs glmm crate | logLik: glmm crate − lme4 |"),
  paste0("|---|---:|---:|---:|---:|---:|---:|---:|", if (have_peer) "---:|---:|---:|"),
  paste0(sprintf("| %s | %d | %s | %s | %s× | %s | %s | %s |", res$model, res$n,
                 fmt(res$lme4_s, 3), fmt(res$mixedrs_s, 4), fmt(res$speedup, 1),
                 fmt_e(res$loglik_diff), fmt(res$lme4_mb, 1), fmt(res$mixedrs_mb, 1)),
         if (have_peer) sprintf(" %s | %s× | %s |", fmt(res$peer_s, 4),
                                fmt(res$peer_s / res$mixedrs_s, 1), fmt_e(res$peer_loglik_diff)))
)
info <- c(
  sprintf(paste("Median of alternating repetitions in one R %s process on %d cores (%s);",
                "lme4 %s, mixedrs %s. Geometric-mean speedup over lme4: %.1f×."),
          format(getRversion()), parallel::detectCores(), format(Sys.Date()),
          packageVersion("lme4"), packageVersion("mixedrs"), geo_mean),
  "",
  paste("logLik: the log-likelihood (REML log-likelihood for the LMMs) at each package's",
        "optimum; positive = a better optimum than lme4's. Memory: the rise of the resident set",
        "size during one fit (peak minus before), in a fresh R process per fit.",
        if (have_peer) sprintf(paste(
          "glmm crate: its Python package %s from PyPI fitting the same data (fit time only, own",
          "process, Satterthwaite df off); \"mixedrs vs glmm crate\" > 1 means mixedrs is",
          "faster."), peer_version))
)
writeLines(c("# Benchmark: mixedrs vs lme4", "", info, "", table_lines, "",
             "![speedup over lme4 per model](speedup.png)"),
           file.path("bench", "RESULTS.md"))

# The plot: speedup over lme4 per model on a log scale (and the glmm crate's, where measured).
n_models <- nrow(res)
ys <- rev(seq_len(n_models))
peer_speedup <- res$lme4_s / res$peer_s
xmax <- max(c(res$speedup, peer_speedup), na.rm = TRUE) * 1.6
grDevices::png(file.path("bench", "speedup.png"), width = 1000, height = 150 + 36 * n_models,
               res = 110, type = if (capabilities("cairo")) "cairo" else "Xlib")
op <- graphics::par(mar = c(4.5, 13, 3, 1))
graphics::plot(NA, xlim = c(0.7, xmax), ylim = c(0.5, n_models + 1.7), log = "x", yaxt = "n",
               xlab = "speedup over lme4 (log scale; bars start at 1 = as fast as lme4)",
               ylab = "", main = "mixedrs vs lme4, full fit from R")
graphics::abline(v = c(1, 10, 100), lty = 3, col = "grey60")
graphics::rect(1, ys - 0.35, res$speedup, ys + 0.35, col = "steelblue", border = NA)
graphics::text(res$speedup, ys, sprintf("%.1f×", res$speedup), pos = 4, cex = 0.8)
graphics::axis(2, at = ys, labels = res$model, las = 1, tick = FALSE)
if (have_peer) {
  graphics::points(peer_speedup, ys, pch = 18, col = "darkorange", cex = 1.5)
  graphics::legend("topright", c("mixedrs", "glmm crate (Python; fit only)"), horiz = TRUE,
                   pch = c(15, 18), col = c("steelblue", "darkorange"), bg = "white")
}
graphics::par(op)
invisible(grDevices::dev.off())

# The README shows the same table between its bench markers.
readme <- readLines("README.md")
start <- grep("<!-- bench:start -->", readme, fixed = TRUE)
end <- grep("<!-- bench:end -->", readme, fixed = TRUE)
if (length(start) == 1L && length(end) == 1L && end > start && !nzchar(only)) {
  readme <- c(readme[seq_len(start)], info, "", table_lines, "",
              "![speedup over lme4 per model](bench/speedup.png)", readme[end:length(readme)])
  writeLines(readme, "README.md")
}
cat("\nwrote bench/RESULTS.md, bench/speedup.png", if (!nzchar(only)) "and the README table", "\n")
