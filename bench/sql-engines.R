# The engines of the database benchmark (bench/sql.R) and of its child processes
# (bench/sql_once.R), and the benchmark's table generated inside each engine, so that no row
# passes through R on the way in:
# - PostgreSQL: a throwaway cluster started and destroyed with tools/pg-test-cluster.sh
#   (loopback only, a free port, its directory under the temporary directory's parent, which
#   the `postgres` user can reach when we run as root).
# - Spark: the tests' local[2] SparkSession through reticulate (tests/testthat/helper-databases.R,
#   sourced into an environment of its own and used unchanged).
# The table `events` is a crossed design of users x items:
#   user uniform on 1..U, item uniform on 1..I, x ~ N(0, 1),
#   y = 1 + 0.5 x + u_user + v_item + e,  u ~ N(0, 0.6^2), v ~ N(0, 0.4^2), e ~ N(0, 1).
# PostgreSQL draws with random() after setseed() (normal deviates by Box-Muller; random() is
# parallel-restricted, so one process draws them in order); the users, the items and the rows are
# made by three statements in that order, so a seed gives the same table on every run. Spark draws
# with rand(seed) and randn(seed) over range() with a fixed number of partitions, which makes
# its draws reproducible too; the result is written once as Parquet and read from there.

bench_normal_pg <- "sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())"

# The design of a table of `n` rows: list(n, users, items).
bench_design <- function(n, rows_per_user, items) {
  users <- max(1, round(n / rows_per_user))
  list(n = n, users = users, items = items)
}

# ---- PostgreSQL -------------------------------------------------------------------------------

bench_cluster_script <- function(...) {
  out <- suppressWarnings(system2("bash", c(file.path("tools", "pg-test-cluster.sh"), ...),
                                  stdout = TRUE, stderr = TRUE))
  list(status = if (is.null(attr(out, "status"))) 0L else attr(out, "status"), output = out)
}

# Starts a throwaway cluster; returns list(dir, port).
bench_pg_start <- function() {
  dir <- tempfile("mixedrs-bench-pg-", tmpdir = dirname(tempdir()))
  port <- bench_test_helpers()$pg_free_port()
  res <- bench_cluster_script("start", dir, port)
  if (res$status != 0L) {
    bench_cluster_script("destroy", dir, port)
    stop("tools/pg-test-cluster.sh start failed:\n", paste(res$output, collapse = "\n"))
  }
  list(dir = dir, port = port)
}

# Stops the cluster and removes its directory.
bench_pg_destroy <- function(pg) {
  res <- bench_cluster_script("destroy", pg$dir, pg$port)
  if (res$status != 0L) {
    warning("tools/pg-test-cluster.sh destroy ", pg$dir, " failed: ",
            paste(res$output, collapse = "\n"))
  }
  invisible()
}

bench_pg_connect <- function(port) {
  con <- DBI::dbConnect(RPostgreSQL::PostgreSQL(), host = "127.0.0.1", port = port,
                        user = "postgres", dbname = "postgres")
  DBI::dbExecute(con, "SET client_min_messages = warning")
  con
}

# Makes table `name` of the design `d` in PostgreSQL (`seed`, a whole number, chooses the
# draws); returns the seconds it took.
bench_pg_generate <- function(con, name, d, seed) {
  t0 <- proc.time()[["elapsed"]]
  tab <- DBI::dbQuoteIdentifier(con, name)
  # setseed() takes a number in [-1, 1]; it returns void, which RPostgreSQL warns it cannot
  # convert.
  suppressWarnings(DBI::dbGetQuery(con, sprintf("SELECT setseed(%.4f)", (seed %% 10000) / 10000)))
  for (s in c(
    "DROP TABLE IF EXISTS bench_users, bench_items",
    sprintf("CREATE TABLE bench_users AS SELECT g AS id, 0.6 * %s AS eff
             FROM generate_series(1, %.0f) AS g", bench_normal_pg, d$users),
    sprintf("CREATE TABLE bench_items AS SELECT g AS id, 0.4 * %s AS eff
             FROM generate_series(1, %.0f) AS g", bench_normal_pg, d$items),
    paste("DROP TABLE IF EXISTS", tab),
    sprintf("CREATE TABLE %s AS
             SELECT r.u AS \"user\", r.i AS item, r.x, 1 + 0.5 * r.x + bu.eff + bi.eff + r.e AS y
             FROM (SELECT 1 + floor(random() * %.0f)::int AS u,
                          1 + floor(random() * %.0f)::int AS i,
                          %s AS x, %s AS e
                   FROM generate_series(1::bigint, %.0f::bigint) AS g) AS r
             JOIN bench_users AS bu ON bu.id = r.u JOIN bench_items AS bi ON bi.id = r.i",
            tab, d$users, d$items, bench_normal_pg, bench_normal_pg, d$n),
    "DROP TABLE bench_users, bench_items",
    paste("ANALYZE", tab)
  )) DBI::dbExecute(con, s)
  proc.time()[["elapsed"]] - t0
}

# ---- Spark ------------------------------------------------------------------------------------

# The tests' database helpers (tests/testthat/helper-databases.R: the free port, the Spark
# session), in an environment of their own (they are used as they are).
bench_test_helpers <- function() {
  h <- new.env()
  sys.source(file.path("tests", "testthat", "helper-databases.R"), envir = h)
  h
}

# Starts the local SparkSession (the tests' configuration); returns list(helpers, session).
bench_spark_start <- function() {
  # Spark's default 1 GB of driver memory runs out collecting the million level pairs of a
  # 10-million-row table; MIXEDRS_SPARK_DRIVER_MEMORY overrides this default.
  if (!nzchar(Sys.getenv("MIXEDRS_SPARK_DRIVER_MEMORY"))) {
    Sys.setenv(MIXEDRS_SPARK_DRIVER_MEMORY = "8g")
  }
  h <- bench_test_helpers()
  # Outside a test run the helpers register their clean-up in the global environment (withr
  # says so in a message); bench_spark_stop() stops the session itself.
  session <- suppressMessages(h$spark_test_session())
  list(h = h, session = session, dir = h$db_test_state$spark$dir)
}

bench_spark_stop <- function(sp) {
  if (!is.null(sp)) sp$h$spark_stop_session()
  invisible()
}

# Writes table `name` of the design `d` as Parquet under `dir` and registers it as a temporary
# view; returns list(path, seconds).
bench_spark_generate <- function(sp, name, d, seed, dir = sp$dir) {
  t0 <- proc.time()[["elapsed"]]
  parts <- max(2L, as.integer(ceiling(d$n / 2e6)))
  seeds <- as.integer(seed) + 0:5
  sql <- sprintf(
    "SELECT r.`user`, r.item, r.x, 1 + 0.5 * r.x + bu.eff + bi.eff + r.e AS y
     FROM (SELECT CAST(1 + floor(rand(%d) * %.0f) AS INT) AS `user`,
                  CAST(1 + floor(rand(%d) * %.0f) AS INT) AS item,
                  randn(%d) AS x, randn(%d) AS e
           FROM range(0, %.0f, 1, %d)) AS r
     JOIN (SELECT CAST(id AS INT) AS id, 0.6 * randn(%d) AS eff
           FROM range(1, %.0f, 1, 1)) AS bu ON bu.id = r.`user`
     JOIN (SELECT CAST(id AS INT) AS id, 0.4 * randn(%d) AS eff
           FROM range(1, %.0f, 1, 1)) AS bi ON bi.id = r.item",
    seeds[1], d$users, seeds[2], d$items, seeds[3], seeds[4], d$n, parts,
    seeds[5], d$users + 1, seeds[6], d$items + 1)
  path <- file.path(dir, sprintf("%s-%.0f-%.0fx%.0f.parquet", name, d$n, d$users, d$items))
  sp$session$sql(sql)$write$mode("overwrite")$parquet(path)
  bench_spark_register(sp, name, path)
  list(path = path, seconds = proc.time()[["elapsed"]] - t0)
}

bench_spark_register <- function(sp, name, path) {
  sp$session$read$parquet(path)$createOrReplaceTempView(name)
  invisible(path)
}

# ---- what the benchmark fits -------------------------------------------------------------------

bench_formula <- y ~ x + (1 | user) + (1 | item)

# The data argument of lmm() for table `name`: a lazy table (PostgreSQL) or an sql_source (Spark).
bench_table <- function(engine, name) {
  switch(engine$kind,
    postgres = dplyr::tbl(engine$con, name),
    spark = mixedrs::sql_source(engine$run, name, dialect = "spark"))
}

# All rows of table `name` as a data frame.
bench_pull <- function(engine, name) {
  switch(engine$kind,
    postgres = DBI::dbGetQuery(engine$con, sprintf('SELECT "user", item, x, y FROM %s',
                                                   DBI::dbQuoteIdentifier(engine$con, name))),
    spark = engine$run(sprintf("SELECT `user`, item, x, y FROM `%s`", name)))
}

# The engine handle that bench_table() and bench_pull() take: list(kind, con | run).
bench_engine_postgres <- function(con) list(kind = "postgres", con = con)
bench_engine_spark <- function(sp) {
  list(kind = "spark", run = sp$h$spark_sql_runner(sp$session))
}

# Resident memory now and its peak (MB) from /proc/self/status; bench_reset_peak() restarts
# the peak from the current resident size.
bench_status_mb <- function(field) {
  line <- grep(paste0("^", field, ":"), readLines("/proc/self/status"), value = TRUE)
  as.numeric(sub("\\D*(\\d+).*", "\\1", line)) / 1024
}
bench_reset_peak <- function() writeLines("5", "/proc/self/clear_refs")
