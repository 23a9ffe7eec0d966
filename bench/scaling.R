# How the cost of one crossed model grows with the data: y ~ x + (1 | subj) + (1 | item) at
# 10^5, 10^6 and 10^7 rows, with the numbers of levels growing with the rows as in real data
# (one subject per 100 rows; items growing as the cube root of the rows, 300 at 10^5; item
# frequencies skewed as in bench/suite.R's simulate_crossed()). Each fit runs in a fresh R
# process that first simulates the data, makes a small warm-up fit, then times the fit and
# reads the rise of its resident memory (peak during the fit minus before it, from
# /proc/self/status after resetting the kernel's high-water mark). lme4 runs up to
# --lme4-max rows (its crossed fits take minutes at 10^6 here).
#
#   Rscript bench/scaling.R [--rows=1e5,1e6,1e7] [--lme4-max=1e6] [--no-write]
#
# Writes the table between the README's bench:scaling markers and into bench/RESULTS.md unless
# --no-write. Child mode (used by the script itself):
#   Rscript bench/scaling.R --child <mixedrs|lme4> <rows>
source(file.path("bench", "suite.R"))

design <- function(n) {
  list(n_subj = round(n / 100), n_item = round(300 * (n / 1e5)^(1 / 3)))
}

child <- function(pkg, n) {
  d <- design(n)
  data <- simulate_crossed(n, d$n_subj, d$n_item, seed = 7)
  m <- list(formula = y ~ x + (1 | subj) + (1 | item), data = data)
  suppressPackageStartupMessages(loadNamespace(pkg))
  r <- measure_fit(m, pkg)
  t <- r$time
  fit <- r$fit
  ll <- as.numeric(stats::logLik(fit))
  cat(sprintf("RESULT %.3f %.1f %.1f %.10f %d %d\n", t, r$peak_mb - r$before_mb,
              as.numeric(utils::object.size(data)) / 2^20, ll,
              length(unique(data$subj)), length(unique(data$item))))
}

args <- commandArgs(TRUE)
if (length(args) >= 1L && args[1] == "--child") {
  child(args[2], as.numeric(args[3]))
  quit(save = "no")
}

rows <- c(1e5, 1e6, 1e7)
lme4_max <- 1e6
write <- TRUE
for (a in args) {
  if (startsWith(a, "--rows=")) {
    rows <- as.numeric(strsplit(sub("^--rows=", "", a), ",")[[1]])
    if (anyNA(rows) || any(rows < 1e3)) stop("--rows needs numbers of at least 1000, not ", a)
  } else if (startsWith(a, "--lme4-max=")) {
    lme4_max <- as.numeric(sub("^--lme4-max=", "", a))
    if (is.na(lme4_max)) stop("--lme4-max needs a number, not ", a)
  } else if (a == "--no-write") {
    write <- FALSE
  } else {
    stop("unknown argument ", a, " (use --rows=, --lme4-max= and --no-write)")
  }
}

run_child <- function(pkg, n) {
  out <- system2(file.path(R.home("bin"), "Rscript"),
                 c("bench/scaling.R", "--child", pkg, format(n, scientific = FALSE)),
                 stdout = TRUE, stderr = TRUE)
  line <- grep("^RESULT ", out, value = TRUE)
  if (length(line) != 1L) {
    stop(pkg, " at ", n, " rows failed:\n", paste(out, collapse = "\n"))
  }
  v <- as.numeric(strsplit(sub("^RESULT ", "", line), " ")[[1]])
  list(time = v[1], mem = v[2], data_mb = v[3], loglik = v[4], subj = v[5], item = v[6])
}

fmt_int <- function(x) formatC(x, format = "d", big.mark = ",")
lines <- character()
res <- list()
for (n in rows) {
  ours <- run_child("mixedrs", n)
  ref <- if (n <= lme4_max) run_child("lme4", n)
  res[[length(res) + 1L]] <- list(n = n, ours = ours, ref = ref)
  cat(sprintf("%.0e rows: mixedrs %.2f s, +%.0f MB; lme4 %s\n", n, ours$time, ours$mem,
              if (is.null(ref)) "-" else sprintf("%.2f s, +%.0f MB", ref$time, ref$mem)))
}
header <- c(
  sprintf(paste("Measured %s with `Rscript bench/scaling.R --rows=%s --lme4-max=%s` on 2 cores;",
                "R %s, mixedrs %s, lme4 %s. Each fit in a fresh R process; memory: the rise of",
                "its resident set size during the fit (peak minus before)."),
          format(Sys.Date()), paste(format(rows, scientific = TRUE), collapse = ","),
          format(lme4_max, scientific = TRUE), getRversion(), utils::packageVersion("mixedrs"),
          utils::packageVersion("lme4")),
  "",
  "| rows | subjects × items | data frame (MB) | mixedrs (s) | mixedrs memory (MB) | lme4 (s) | lme4 memory (MB) | logLik: mixedrs − lme4 |",
  "|---:|---:|---:|---:|---:|---:|---:|---:|")
for (r in res) {
  lines <- c(lines, sprintf("| %s | %s × %s | %.1f | %.2f | %.0f | %s | %s | %s |",
    fmt_int(r$n), fmt_int(r$ours$subj), fmt_int(r$ours$item), r$ours$data_mb, r$ours$time,
    r$ours$mem, if (is.null(r$ref)) "–" else sprintf("%.2f", r$ref$time),
    if (is.null(r$ref)) "–" else sprintf("%.0f", r$ref$mem),
    if (is.null(r$ref)) "–" else sprintf("%.1e", r$ours$loglik - r$ref$loglik)))
}
table <- c(header, lines)
cat(table, sep = "\n")
if (write) {
  write_results_section("## Scaling of one crossed model", table)
  write_readme_block("bench:scaling", table)
}
