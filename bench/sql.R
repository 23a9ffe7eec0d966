# `make bench-sql`: lmm() on a table that stays in the database. A throwaway PostgreSQL cluster
# (tools/pg-test-cluster.sh) and, when asked, a local Spark session (the tests' helper) generate a
# crossed users x items table inside the engine (bench/sql-engines.R says how); then, per size:
# - lmm(y ~ x + (1 | user) + (1 | item), data = <the table>) split into its two stages, timed
#   separately: sql_model_inputs() -- the queries (the engine's work plus the transfer of each
#   result, summed from its verbose report) and R's assembly of what came back -- and
#   lmm_sums_fit(), the local fit from the aggregates;
# - the bytes moved to R (object.size() of the aggregates with the model's metadata);
# - R's peak memory, in a fresh R process per measurement (bench/sql_once.R): the kernel's
#   high-water mark of resident memory, restarted just before the fit;
# - for sizes up to --in-memory-max, the same model on all rows pulled into a data frame, with
#   the in-memory lmm() and lme4::lmer() in this same process (times as ratios to the database
#   fit; lme4 with its defaults), and a check that the database fit's logLik is the in-memory
#   one to 1e-8 relative (the run stops otherwise).
# Writes the section "Fitting where the data live" of bench/RESULTS.md and the README block
# `bench-sql`, and prints the tables. The machine's load average (1 minute) before and after each
# size is in the table: timings on a shared machine mean little without it.
# Run from the repository root after installing the package:
#   Rscript bench/sql.R [--rows=1e5,1e6] [--spark[=1e5,...]] [--designs=500:50,...]
#                       [--in-memory-max=1e6] [--lme4-max=1e6] [--reps=3] [--seed=20240]
#                       [--no-write]
# A design R:I has one user per R rows and I items (each row's user and item drawn uniformly);
# every size is run with every design.
# Environment: MIXEDRS_BENCH_SQL_ROWS and MIXEDRS_BENCH_SPARK_ROWS give --rows and --spark;
# --rows= (empty) runs no PostgreSQL sizes. Spark needs Java 17 and tools/spark-venv.sh's venv.
suppressPackageStartupMessages({
  library(mixedrs)
  library(lme4)
})
source(file.path("bench", "suite.R"))
source(file.path("bench", "sql-engines.R"))

# ---- options -----------------------------------------------------------------------------------
parse_sizes <- function(x, what) {
  if (!nzchar(x)) return(numeric())
  n <- suppressWarnings(as.numeric(strsplit(x, ",", fixed = TRUE)[[1]]))
  if (anyNA(n) || any(n < 1000) || any(n != round(n))) {
    stop(what, " must be whole numbers of rows (at least 1000) separated by commas, not '", x, "'")
  }
  n
}
# "500:50,100:2000" -> list(c(500, 50), c(100, 2000)): rows per user and items.
parse_designs <- function(x) {
  parts <- strsplit(strsplit(x, ",", fixed = TRUE)[[1]], ":", fixed = TRUE)
  lapply(parts, function(p) {
    v <- suppressWarnings(as.numeric(p))
    if (length(v) != 2L || anyNA(v) || any(v < 1) || any(v != round(v))) {
      stop("--designs takes rows-per-user:items pairs such as 500:50,100:2000, not '", x, "'")
    }
    v
  })
}
parse_options <- function(args) {
  opts <- list(rows = Sys.getenv("MIXEDRS_BENCH_SQL_ROWS", "1e5,1e6"),
               spark = Sys.getenv("MIXEDRS_BENCH_SPARK_ROWS", ""),
               designs = "500:50", `in-memory-max` = "1e6", `lme4-max` = NA, reps = "3",
               seed = "20240", write = "true")
  for (a in args) {
    m <- regmatches(a, regexec("^--([a-z0-9-]+)(=(.*))?$", a))[[1]]
    if (!length(m)) stop("unknown argument '", a, "' (see the head of bench/sql.R)")
    key <- m[2]
    value <- if (nzchar(m[3])) m[4] else NA
    if (key == "no-write") key <- "write"
    if (!key %in% names(opts)) stop("unknown option --", key, " (see the head of bench/sql.R)")
    if (is.na(value)) {
      value <- switch(key, spark = "1e5", write = "false",
                      stop("option --", key, " needs a value (--", key, "=...)"))
    }
    opts[[key]] <- value
  }
  num <- function(key) {
    v <- suppressWarnings(as.numeric(opts[[key]]))
    if (is.na(v) || v <= 0) stop("--", key, " must be a positive number, not '", opts[[key]], "'")
    v
  }
  list(rows = parse_sizes(opts$rows, "--rows"), spark = parse_sizes(opts$spark, "--spark"),
       in_memory_max = num("in-memory-max"),
       lme4_max = if (is.na(opts$`lme4-max`)) num("in-memory-max") else num("lme4-max"),
       designs = parse_designs(opts$designs),
       reps = as.integer(num("reps")), seed = as.integer(num("seed")),
       write = !identical(opts$write, "false"))
}

# ---- measurements ------------------------------------------------------------------------------
elapsed <- function() proc.time()[["elapsed"]]
load_1min <- function() as.numeric(strsplit(readLines("/proc/loadavg"), " ")[[1]][1])

# sql_model_inputs() with its verbose report captured: list(inputs, seconds, query_seconds,
# report), query_seconds being the sum of the queries' own times (run and result fetched).
timed_inputs <- function(table) {
  report <- character()
  t0 <- elapsed()
  inputs <- withCallingHandlers(
    sql_model_inputs(bench_formula, table, verbose = 1),
    message = function(m) {
      report <<- c(report, sub("\n$", "", conditionMessage(m)))
      invokeRestart("muffleMessage")
    })
  seconds <- elapsed() - t0
  lines <- grep("^mixedrs sql: .* in [0-9.]+ s$", report, value = TRUE)
  if (!length(lines)) stop("sql_model_inputs(verbose = 1) reported no query times")
  list(inputs = inputs, seconds = seconds, report = report,
       query_seconds = sum(as.numeric(sub("^.* in ([0-9.]+) s$", "\\1", lines))))
}

# One measurement in a fresh R process (bench/sql_once.R): list(mb = peak - before, seconds,
# loglik).
child <- function(task, child_args) {
  rscript <- file.path(R.home("bin"), "Rscript")
  err <- tempfile("sql-once-", fileext = ".txt")
  on.exit(unlink(err))
  out <- suppressWarnings(system2(rscript, c(file.path("bench", "sql_once.R"), task, child_args),
                                  stdout = TRUE, stderr = err))
  v <- if (length(out)) suppressWarnings(as.numeric(strsplit(utils::tail(out, 1L), " ")[[1]]))
  if (length(v) != 4L || anyNA(v)) {
    stop("the memory measurement '", task, "' in a child R process failed:\n",
         paste(c(out, readLines(err)), collapse = "\n"))
  }
  list(mb = v[2] - v[1], seconds = v[3], loglik = v[4])
}

rel_diff <- function(a, b) abs(a - b) / abs(b)

# Measures the fit of the table `events` of `engine` (its design `d`); `child_args` locate the
# table for bench/sql_once.R.
measure <- function(engine, label, d, opts, child_args) {
  load_before <- load_1min()
  in_memory <- d$n <= opts$in_memory_max
  with_lme4 <- in_memory && d$n <= opts$lme4_max
  table <- bench_table(engine, "events")
  t <- matrix(NA_real_, opts$reps, 6,
              dimnames = list(NULL, c("inputs", "queries", "fit", "pull", "lmm", "lmer")))
  for (r in seq_len(opts$reps)) {
    cat(sprintf("  %s, %s rows, repetition %d of %d\n", label, fmt_n(d$n),
                r, opts$reps))
    ti <- timed_inputs(table)
    t0 <- elapsed()
    fit <- lmm_sums_fit(ti$inputs)
    t[r, c("inputs", "queries", "fit")] <- c(ti$seconds, ti$query_seconds, elapsed() - t0)
    if (in_memory) {
      t0 <- elapsed()
      rows <- bench_pull(engine, "events")
      t[r, "pull"] <- elapsed() - t0
      t0 <- elapsed()
      fit_df <- lmm(bench_formula, data = rows)
      t[r, "lmm"] <- elapsed() - t0
      if (with_lme4) {
        t0 <- elapsed()
        fit_lme4 <- suppressMessages(lmer(bench_formula, data = rows))
        t[r, "lmer"] <- elapsed() - t0
      }
      df_mb <- as.numeric(object.size(rows)) / 2^20
      rm(rows)
    }
  }
  cat(paste0("    ", ti$report, collapse = "\n"), "\n")
  inputs <- ti$inputs
  ll_sql <- as.numeric(logLik(fit))
  res <- data.frame(
    engine = label, n = d$n, users = nlevels(inputs$flist$user),
    items = nlevels(inputs$flist$item), pairs = length(inputs$sums$pairs[[1]]$li),
    inputs_s = median(t[, "inputs"]), queries_s = median(t[, "queries"]),
    fit_s = median(t[, "fit"]), moved_mb = as.numeric(object.size(inputs)) / 2^20,
    pull_s = NA_real_, lmm_s = NA_real_, lmer_s = NA_real_, df_mb = NA_real_,
    loglik_rel = NA_real_, lmer_diff = NA_real_, peak_sql = NA_real_, peak_lmm = NA_real_,
    peak_lmer = NA_real_)
  res$total_s <- res$inputs_s + res$fit_s
  if (in_memory) {
    res$pull_s <- median(t[, "pull"])
    res$lmm_s <- median(t[, "lmm"])
    res$df_mb <- df_mb
    ll_df <- as.numeric(logLik(fit_df))
    res$loglik_rel <- rel_diff(ll_sql, ll_df)
    if (res$loglik_rel > 1e-8) {
      stop(sprintf("%s, %.0f rows: logLik from the database %.17g, in memory %.17g (relative %.1e)",
                   label, d$n, ll_sql, ll_df, res$loglik_rel))
    }
    if (with_lme4) {
      res$lmer_s <- median(t[, "lmer"])
      res$lmer_diff <- as.numeric(logLik(fit_lme4)) - ll_df
    }
  }
  cat("  peak memory in fresh R processes ...\n")
  m <- child("sql", child_args)
  # The child's lmm(data = table) runs the same queries: its logLik is this process's (the
  # engine may add the same numbers in another order, hence not to the last bit).
  if (rel_diff(m$loglik, ll_sql) > 1e-10) {
    stop(sprintf(paste("%s, %.0f rows: lmm(data = table) in a child process gave logLik %.17g,",
                       "here %.17g"), label, d$n, m$loglik, ll_sql))
  }
  res$peak_sql <- m$mb
  res$child_sql_s <- m$seconds
  if (in_memory) res$peak_lmm <- child("lmm", child_args)$mb
  if (with_lme4) res$peak_lmer <- child("lmer", child_args)$mb
  res$load <- sprintf("%.1f–%.1f", load_before, load_1min())
  res
}

# ---- report ------------------------------------------------------------------------------------
fmt <- function(x, d) ifelse(is.na(x), "–", formatC(x, format = "f", digits = d, big.mark = ","))
fmt_n <- function(x) formatC(x, format = "d", big.mark = ",")
fmt_e <- function(x) ifelse(is.na(x), "–", formatC(x, format = "e", digits = 1))
ratio <- function(a, b) ifelse(is.na(a), "–", sprintf("%.1f×", a / b))

report_lines <- function(res, opts, command) {
  fit_table <- c(
    paste("| engine | rows | users × items | user–item pairs | lmm(table) (s) | queries (s)",
          "| R: assembly (s) | R: fit (s) | moved to R (MB) | R peak (MB) | load |"),
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    sprintf("| %s | %s | %s × %s | %s | %s | %s | %s | %s | %s | %s | %s |",
            res$engine, fmt_n(res$n), fmt_n(res$users), fmt_n(res$items), fmt_n(res$pairs),
            fmt(res$total_s, 2), fmt(res$queries_s, 2), fmt(res$inputs_s - res$queries_s, 2),
            fmt(res$fit_s, 3), fmt(res$moved_mb, 2), fmt(res$peak_sql, 0), res$load))
  mem <- res[!is.na(res$lmm_s), ]
  memory_table <- if (nrow(mem)) c(
    "",
    paste("| engine | rows | users × items | data frame (MB) | pull (s) | lmm(data frame) (s)",
          "| lmer (s) | pull + lmm vs lmm(table) | pull + lmer vs lmm(table)",
          "| R peak: pull + lmm (MB) | R peak: pull + lmer (MB)",
          "| logLik: table vs data frame (relative) | logLik: lmer − lmm |"),
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    sprintf("| %s | %s | %s × %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |",
            mem$engine, fmt_n(mem$n), fmt_n(mem$users), fmt_n(mem$items), fmt(mem$df_mb, 1),
            fmt(mem$pull_s, 2), fmt(mem$lmm_s, 2),
            fmt(mem$lmer_s, 2), ratio(mem$pull_s + mem$lmm_s, mem$total_s),
            ratio(mem$pull_s + mem$lmer_s, mem$total_s), fmt(mem$peak_lmm, 0),
            fmt(mem$peak_lmer, 0), fmt_e(mem$loglik_rel), fmt_e(mem$lmer_diff)))
  c(sprintf(paste(
    "Measured %s with `%s` on %d cores shared with other work (the load column: the 1-minute",
    "load average before and after each size); R %s, mixedrs %s, lme4 %s%s%s."),
    format(Sys.Date()), command, parallel::detectCores(), format(getRversion()),
    packageVersion("mixedrs"), packageVersion("lme4"),
    if (!is.null(pg_version)) paste0(", PostgreSQL ", pg_version) else "",
    if (!is.null(spark_version)) paste0(", Spark ", spark_version, " (local[2])") else ""),
    "",
    sprintf(paste(
      "Model `%s` on a table generated in the engine (%s): each row's user and item drawn",
      "uniformly, y = 1 + 0.5 x + u_user + v_item + e, u ~ N(0, 0.6²), v ~ N(0, 0.4²),",
      "e ~ N(0, 1). lmm(table) = the queries",
      "(the engine's work and the transfer of each result, as `verbose = 1` reports them) +",
      "R's assembly of the aggregates + R's fit from them (`sql_model_inputs()` and",
      "`lmm_sums_fit()` timed apart; median of %s). Moved to R: `object.size()` of",
      "the aggregates with the model's metadata. R peak: the rise of the R process's resident",
      "memory during the fit, in a fresh process (`lmm(data = table)`; for the rows, their pull",
      "and the fit), after a warm-up fit. The in-memory columns fit all rows pulled into a data",
      "frame in the same process; ratios > 1 mean the database fit is faster."),
      deparse1(bench_formula),
      paste(vapply(opts$designs, function(v) sprintf("one user per %s rows and %s items",
                                                     fmt_n(v[1]), fmt_n(v[2])), ""),
            collapse = "; "),
      if (opts$reps == 1L) "1 repetition" else paste(opts$reps, "repetitions")),
    "", fit_table, memory_table)
}

# ---- run ---------------------------------------------------------------------------------------
pg_version <- NULL
spark_version <- NULL

run_postgres <- function(opts) {
  cat("starting a throwaway PostgreSQL cluster (tools/pg-test-cluster.sh) ...\n")
  pg <- bench_pg_start()
  on.exit(bench_pg_destroy(pg), add = TRUE)
  con <- bench_pg_connect(pg$port)
  on.exit(DBI::dbDisconnect(con), add = TRUE, after = FALSE)
  pg_version <<- DBI::dbGetQuery(con, "SHOW server_version")[[1]]
  engine <- bench_engine_postgres(con)
  bench_pg_generate(con, "events_warm", bench_design(5000, 25, 50), opts$seed + 1)
  warm_up(engine)
  rows <- lapply(bench_runs(opts$rows, opts$designs), function(d) {
    cat(sprintf("PostgreSQL: generating %s rows (%s users, %s items) ...",
                fmt_n(d$n), fmt_n(d$users), fmt_n(d$items)))
    cat(sprintf(" %.1f s\n", bench_pg_generate(con, "events", d, opts$seed)))
    measure(engine, "PostgreSQL", d, opts, c("postgres", pg$port))
  })
  do.call(rbind, rows)
}

run_spark <- function(opts) {
  cat("starting a local Spark session ...\n")
  sp <- bench_spark_start()
  on.exit(bench_spark_stop(sp), add = TRUE)
  spark_version <<- sp$session$version
  engine <- bench_engine_spark(sp)
  warm <- bench_spark_generate(sp, "events_warm", bench_design(5000, 25, 50), opts$seed + 1)
  warm_up(engine)
  rows <- lapply(bench_runs(opts$spark, opts$designs), function(d) {
    cat(sprintf("Spark: generating %s rows (%s users, %s items) ...",
                fmt_n(d$n), fmt_n(d$users), fmt_n(d$items)))
    gen <- bench_spark_generate(sp, "events", d, opts$seed)
    cat(sprintf(" %.1f s\n", gen$seconds))
    measure(engine, "Spark", d, opts, c("spark", gen$path, warm$path))
  })
  do.call(rbind, rows)
}

# The designs of the runs: each size with each design, by design then size.
bench_runs <- function(sizes, designs) {
  unlist(lapply(designs, function(v) lapply(sizes, bench_design, v[1], v[2])),
         recursive = FALSE)
}

# One fit of each kind on the small table, so that the timings do not count first-call costs.
warm_up <- function(engine) {
  table <- bench_table(engine, "events_warm")
  suppressWarnings(timed_inputs(table))
  rows <- bench_pull(engine, "events_warm")
  invisible(lmm(bench_formula, data = rows))
  invisible(suppressMessages(lmer(bench_formula, data = rows)))
}

main <- function() {
  args <- commandArgs(trailingOnly = TRUE)
  opts <- parse_options(args)
  if (!length(opts$rows) && !length(opts$spark)) stop("nothing to run: --rows= and no --spark")
  command <- paste(c("Rscript bench/sql.R", args), collapse = " ")
  res <- rbind(if (length(opts$rows)) run_postgres(opts),
               if (length(opts$spark)) run_spark(opts))
  lines <- report_lines(res, opts, command)
  cat("\n", paste(lines, collapse = "\n"), "\n", sep = "")
  if (opts$write) {
    write_results_section("## Fitting where the data live (PostgreSQL, Spark)", lines)
    write_readme_block("bench-sql", lines)
    cat("\nwrote bench/RESULTS.md and the README's bench-sql block\n")
  }
  invisible(res)
}

main()
