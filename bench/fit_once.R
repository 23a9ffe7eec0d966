# Child process of bench/bench.R: fits one saved model once with one package and prints the
# resident memory before the fit and the peak during it (MB), read from /proc/self/status after
# resetting the kernel's high-water mark (after a small warm-up fit, so one-off loading costs
# are not counted). Usage: Rscript bench/fit_once.R <lme4|mixedrs> <model.rds>
args <- commandArgs(TRUE)
pkg <- args[1]
source(file.path("bench", "suite.R"))
m <- readRDS(args[2])
suppressPackageStartupMessages(loadNamespace(pkg))
r <- measure_fit(m, pkg)
cat(sprintf("%.1f %.1f\n", r$before_mb, r$peak_mb))
