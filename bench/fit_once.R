# Child process of bench/bench.R: fits one saved model once with one package and prints the
# resident memory before the fit and the peak during it (MB), read from /proc/self/status after
# resetting the kernel's high-water mark (after a small warm-up fit, so one-off loading costs
# are not counted). Usage: Rscript bench/fit_once.R <lme4|mixedrs> <model.rds>
args <- commandArgs(TRUE)
pkg <- args[1]
source(file.path("bench", "suite.R"))
m <- readRDS(args[2])
suppressPackageStartupMessages(loadNamespace(pkg))
status_kb <- function(field) {
  line <- grep(paste0("^", field, ":"), readLines("/proc/self/status"), value = TRUE)
  as.numeric(sub("\\D*(\\d+).*", "\\1", line))
}
invisible(warm_up(m, pkg))
invisible(gc(FALSE))
before <- status_kb("VmRSS")
writeLines("5", "/proc/self/clear_refs") # the high-water mark restarts from the current RSS
fit <- fit_model(m, pkg)
cat(sprintf("%.1f %.1f\n", before / 1024, status_kb("VmHWM") / 1024))
