# Child process of bench/sql.R: one measurement of R's peak memory in a fresh process. Fits
# bench_formula to the table `events` of a running engine once, after a warm-up fit to the small
# table `events_warm` (so one-off loading costs are not counted), and prints
#   <resident MB before> <peak MB during> <seconds> <logLik>
# where the peak is the kernel's high-water mark of this process's resident memory, restarted
# just before the fit. Usage, from the repository root:
#   Rscript bench/sql_once.R <sql|lmm|lmer> postgres <port>
#   Rscript bench/sql_once.R <sql|lmm|lmer> spark <events.parquet> <events_warm.parquet>
# sql: lmm(data = the table) (aggregates only); lmm / lmer: all rows pulled into a data frame,
# then lmm() or lme4::lmer() on it (the pull is part of the measurement).
args <- commandArgs(TRUE)
task <- match.arg(args[1], c("sql", "lmm", "lmer"))
kind <- match.arg(args[2], c("postgres", "spark"))
suppressPackageStartupMessages(library(mixedrs))
source(file.path("bench", "sql-engines.R"))

sp <- NULL
if (kind == "postgres") {
  con <- bench_pg_connect(as.integer(args[3]))
  engine <- bench_engine_postgres(con)
} else {
  sp <- bench_spark_start()
  bench_spark_register(sp, "events", args[3])
  bench_spark_register(sp, "events_warm", args[4])
  engine <- bench_engine_spark(sp)
}

fit_table <- function(name) {
  suppressMessages(suppressWarnings(switch(task,
    sql = lmm(bench_formula, data = bench_table(engine, name)),
    lmm = lmm(bench_formula, data = bench_pull(engine, name)),
    lmer = lme4::lmer(bench_formula, data = bench_pull(engine, name)))))
}

invisible(fit_table("events_warm"))
invisible(gc(FALSE))
before <- bench_status_mb("VmRSS")
bench_reset_peak()
t0 <- proc.time()[["elapsed"]]
fit <- fit_table("events")
seconds <- proc.time()[["elapsed"]] - t0
peak <- bench_status_mb("VmHWM")
if (kind == "postgres") DBI::dbDisconnect(con) else bench_spark_stop(sp)
cat(sprintf("%.1f %.1f %.3f %.17g\n", before, peak, seconds, as.numeric(logLik(fit))))
