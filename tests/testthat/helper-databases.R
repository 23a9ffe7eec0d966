# Real database engines for the tests (issue 16), started by the tests themselves and stopped
# when the test run ends, also when tests fail (testthat's teardown environment):
# - PostgreSQL: a throwaway cluster (initdb + pg_ctl) in a temporary directory, listening on TCP
#   127.0.0.1 only, on a free port, with trust authentication and its unix socket inside that
#   directory. Tables are loaded with COPY from text with 17 significant digits, the precision
#   at which every double reads back as itself (RPostgreSQL's dbWriteTable keeps 15).
# - Spark: a local[2] SparkSession of the pyspark in the virtualenv that tools/spark-venv.sh
#   makes, driven through reticulate (tests/testthat/spark_bridge.py is its Python side). Data
#   frames go in as CSV with 17 significant digits read with an explicit schema; query results
#   come back as Python floats, which reticulate copies into R doubles bit for bit.
# Each engine starts on first use, once per test run. A test skips only where an engine cannot
# run on this machine (no PostgreSQL programs; no Java 17 or no pyspark venv); anything else
# that goes wrong is an error.

db_test_state <- new.env(parent = emptyenv())

# Where the run's clean-ups go: the test run's teardown environment, or (outside a test run,
# e.g. when trying the helpers by hand) the global environment (withr::deferred_run() runs them).
db_teardown_env <- function() {
  if (testthat::is_testing()) testthat::teardown_env() else globalenv()
}

db_is_root <- function() identical(system2("id", "-u", stdout = TRUE), "0")

# Runs a program, as `user` when given (through runuser, for root); returns list(status, output).
db_run <- function(prog, args = character(), user = NULL) {
  cmd <- c(prog, args)
  if (!is.null(user)) cmd <- c("runuser", "-u", user, "--", cmd)
  out <- suppressWarnings(system2(cmd[1], shQuote(cmd[-1]), stdout = TRUE, stderr = TRUE))
  status <- attr(out, "status")
  list(status = if (is.null(status)) 0L else status, output = out)
}

# ---- PostgreSQL -------------------------------------------------------------------------------

# The directory with initdb and pg_ctl: $MIXEDRS_PG_BIN (an error if they are not there), else
# the newest /usr/lib/postgresql/*/bin (Debian's layout), else PATH's; "" when there is none.
pg_bin_dir <- function() {
  programs <- c("initdb", "pg_ctl")
  chosen <- Sys.getenv("MIXEDRS_PG_BIN")
  if (nzchar(chosen)) {
    if (!all(file.exists(file.path(chosen, programs)))) {
      stop("MIXEDRS_PG_BIN is ", chosen, ", which holds no initdb and pg_ctl")
    }
    return(chosen)
  }
  found <- Sys.glob("/usr/lib/postgresql/*/bin")
  dirs <- found[order(numeric_version(basename(dirname(found)), strict = FALSE),
                      decreasing = TRUE)]
  on_path <- Sys.which("pg_ctl")
  if (nzchar(on_path)) dirs <- c(dirs, dirname(on_path))
  for (d in dirs) {
    if (all(file.exists(file.path(d, programs)))) return(d)
  }
  ""
}

# A TCP port nothing listens on now. Derived from the process id and the clock rather than
# R's random numbers, so that starting the cluster leaves the tests' random stream untouched.
pg_free_port <- function() {
  base <- (Sys.getpid() * 7919 + as.integer(Sys.time())) %% 40000
  for (i in 0:199) {
    port <- 20000L + as.integer((base + i * 997) %% 40000)
    free <- tryCatch({
      close(serverSocket(port))
      TRUE
    }, error = function(e) FALSE)
    if (free) return(port)
  }
  stop("pg_test_connection: found no free TCP port between 20000 and 60000")
}

pg_start_cluster <- function() {
  bin <- pg_bin_dir()
  if (!nzchar(bin)) {
    testthat::skip(paste(
      "PostgreSQL tests skipped: no PostgreSQL server programs (initdb, pg_ctl) under",
      "/usr/lib/postgresql/*/bin or on PATH; tools/install-deps.sh installs Debian's postgresql"))
  }
  for (pkg in c("DBI", "RPostgreSQL")) {
    if (!requireNamespace(pkg, quietly = TRUE)) {
      stop("pg_test_connection: the PostgreSQL programs are here but R package ", pkg,
           " is not; tools/install-deps.sh installs it")
    }
  }
  # initdb and postgres refuse to run as root: then the `postgres` system user owns the cluster.
  owner <- NULL
  if (db_is_root()) {
    if (db_run("id", "postgres")$status != 0) {
      stop("pg_test_connection: running as root needs the 'postgres' system user, ",
           "as initdb refuses root (Debian's postgresql package creates it)")
    }
    owner <- "postgres"
  }
  dir <- tempfile("mixedrs-pg-", tmpdir = dirname(tempdir()))
  if (!dir.create(dir, mode = "0700")) stop("pg_test_connection: cannot create ", dir)
  db_test_state$pg <- list(dir = dir, bin = bin, owner = owner, running = FALSE)
  withr::defer(pg_stop_cluster(), envir = db_teardown_env())
  if (!is.null(owner)) {
    chown <- db_run("chown", c(owner, dir))
    if (chown$status != 0 || db_run("test", c("-w", dir), user = owner)$status != 0) {
      stop("pg_test_connection: the '", owner, "' user cannot write to ", dir,
           " (set TMPDIR to a directory it can reach)")
    }
  }
  data <- file.path(dir, "data")
  socket <- file.path(dir, "socket")
  log <- file.path(dir, "server.log")
  db_run("mkdir", socket, user = owner)
  init <- db_run(file.path(bin, "initdb"),
                 c("-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale",
                   "--no-sync"), user = owner)
  if (init$status != 0) {
    stop("pg_test_connection: initdb failed:\n", paste(init$output, collapse = "\n"))
  }
  # A port found free can be taken before the server binds it: then try another.
  for (attempt in 1:5) {
    port <- pg_free_port()
    opts <- paste0("-c listen_addresses=127.0.0.1 -p ", port,
                   " -c unix_socket_directories='", socket, "'",
                   " -c fsync=off -c full_page_writes=off -c synchronous_commit=off")
    start <- db_run(file.path(bin, "pg_ctl"),
                    c("-D", data, "-l", log, "-w", "-t", "60", "-o", opts, "start"), user = owner)
    if (start$status == 0) break
    server_log <- if (file.exists(log)) readLines(log, warn = FALSE) else character()
    if (attempt == 5 || !any(grepl("could not bind|already in use", server_log))) {
      stop("pg_test_connection: pg_ctl start failed:\n",
           paste(c(start$output, utils::tail(server_log, 20)), collapse = "\n"))
    }
  }
  db_test_state$pg$running <- TRUE
  params <- list(host = "127.0.0.1", port = port, user = "postgres", dbname = "postgres")
  db_test_state$pg$params <- params
  con <- DBI::dbConnect(RPostgreSQL::PostgreSQL(), host = params$host, port = params$port,
                        user = params$user, dbname = params$dbname)
  DBI::dbExecute(con, "SET client_min_messages = warning")
  db_test_state$pg$con <- con
  con
}

# Disconnects, stops the server and removes its directory; runs at the end of the test run.
pg_stop_cluster <- function() {
  pg <- db_test_state$pg
  if (is.null(pg)) return(invisible())
  db_test_state$pg <- NULL
  if (!is.null(pg$con)) try(DBI::dbDisconnect(pg$con), silent = TRUE)
  if (isTRUE(pg$running)) {
    stop_run <- db_run(file.path(pg$bin, "pg_ctl"),
                       c("-D", file.path(pg$dir, "data"), "-m", "fast", "-w", "-t", "60", "stop"),
                       user = pg$owner)
    if (stop_run$status != 0) {
      warning("the test PostgreSQL cluster in ", pg$dir, " did not stop: ",
              paste(stop_run$output, collapse = "\n"))
    }
  }
  unlink(pg$dir, recursive = TRUE, force = TRUE)
  invisible()
}

# The test run's PostgreSQL cluster's connection parameters, list(host, port, user, dbname),
# starting the cluster if needed.
pg_test_params <- function() {
  if (is.null(db_test_state$pg$con)) pg_start_cluster()
  db_test_state$pg$params
}

# A new connection to the test cluster (the caller disconnects it).
pg_test_connect <- function() {
  p <- pg_test_params()
  con <- DBI::dbConnect(RPostgreSQL::PostgreSQL(), host = p$host, port = p$port,
                        user = p$user, dbname = p$dbname)
  DBI::dbExecute(con, "SET client_min_messages = warning")
  con
}

# The test run's shared connection to its throwaway PostgreSQL cluster, started on first use and
# stopped at the end of the run. Do not disconnect it; use pg_test_connect() for a private one.
pg_test_connection <- function() {
  con <- db_test_state$pg$con
  if (is.null(con)) con <- pg_start_cluster()
  con
}

# The PostgreSQL column type and the COPY text of one R column (NA stays NA: COPY's NULL).
pg_column_type <- function(x, name) {
  if (!is.factor(x) && !is.null(oldClass(x))) {
    stop("pg_copy_table: column ", name, " is of class ", class(x)[1],
         "; supported are double, integer, logical, character and factor columns")
  }
  if (is.factor(x) || is.character(x)) return("text")
  switch(typeof(x),
         double = "double precision", integer = "integer", logical = "boolean",
         stop("pg_copy_table: column ", name, " is of type ", typeof(x), " (", class(x)[1],
              "); supported are double, integer, logical, character and factor columns"))
}

pg_copy_text <- function(x) {
  if (is.factor(x)) return(as.character(x))
  if (is.character(x)) return(enc2utf8(x))
  if (is.logical(x)) return(ifelse(x, "t", "f"))
  if (is.integer(x)) return(as.character(x))
  out <- sprintf("%.17g", x)
  out[is.nan(x)] <- "NaN"
  out[which(x == Inf)] <- "Infinity"
  out[which(x == -Inf)] <- "-Infinity"
  out[is.na(x) & !is.nan(x)] <- NA_character_
  out
}

# Creates table `name` (replacing one of that name) with a double precision, integer, boolean
# or text column per column of `df`, and loads the rows with COPY ... FROM STDIN. Doubles are
# sent with 17 significant digits, so each arrives as the same double; NA becomes NULL.
pg_copy_table <- function(con, name, df) {
  if (!is.character(name) || length(name) != 1L || is.na(name) || !nzchar(name)) {
    stop("pg_copy_table: `name` must be one table name")
  }
  if (!is.data.frame(df) || ncol(df) == 0L) {
    stop("pg_copy_table: `df` must be a data frame with at least one column")
  }
  types <- mapply(pg_column_type, df, names(df))
  table <- DBI::dbQuoteIdentifier(con, name)
  cols <- DBI::dbQuoteIdentifier(con, names(df))
  DBI::dbExecute(con, paste("DROP TABLE IF EXISTS", table))
  DBI::dbExecute(con, sprintf("CREATE TABLE %s (%s)", table,
                              paste(cols, types, collapse = ", ")))
  text <- as.data.frame(lapply(df, pg_copy_text), stringsAsFactors = FALSE,
                        check.names = FALSE)
  res <- DBI::dbSendQuery(con, sprintf("COPY %s (%s) FROM STDIN", table,
                                       paste(cols, collapse = ", ")))
  RPostgreSQL::postgresqlCopyInDataframe(con, text)
  DBI::dbClearResult(res)
  loaded <- DBI::dbGetQuery(con, paste("SELECT count(*) AS n FROM", table))$n
  if (loaded != nrow(df)) {
    stop("pg_copy_table: COPY loaded ", loaded, " of ", nrow(df), " rows into ", name)
  }
  invisible(name)
}

# ---- Spark ------------------------------------------------------------------------------------

# The virtualenv's python: $MIXEDRS_SPARK_VENV/bin/python, by default the one that
# tools/spark-venv.sh makes in ~/.cache/mixedrs/spark-venv.
spark_venv_python <- function() {
  venv <- Sys.getenv("MIXEDRS_SPARK_VENV",
                     file.path(path.expand("~"), ".cache", "mixedrs", "spark-venv"))
  file.path(venv, "bin", "python")
}

# The major version of the java that Spark will run ($JAVA_HOME's, else PATH's); NA if none.
java_major_version <- function() {
  home <- Sys.getenv("JAVA_HOME")
  java <- if (nzchar(home)) file.path(home, "bin", "java") else Sys.which("java")
  if (!nzchar(java) || !file.exists(java)) return(NA_integer_)
  out <- db_run(java, "-version")$output
  m <- regmatches(out, regexpr('version "[0-9.]+', out))
  if (length(m) == 0L) return(NA_integer_)
  parts <- as.integer(strsplit(sub('version "', "", m[1]), ".", fixed = TRUE)[[1]])
  if (parts[1] == 1L && length(parts) > 1L) parts[2] else parts[1] # "1.8.0" is Java 8
}

# The number of rows the Spark tests use: $MIXEDRS_SPARK_ROWS (`make test-spark` sets a large
# one), else `default`.
spark_test_rows <- function(default) {
  rows <- Sys.getenv("MIXEDRS_SPARK_ROWS")
  if (!nzchar(rows)) return(as.integer(default))
  n <- suppressWarnings(as.numeric(rows))
  if (is.na(n) || n < 1 || n != round(n) || n > .Machine$integer.max) {
    stop("MIXEDRS_SPARK_ROWS must be a positive whole number of rows, not '", rows, "'")
  }
  as.integer(n)
}

spark_bridge <- function() {
  if (is.null(db_test_state$spark_bridge)) {
    db_test_state$spark_bridge <- reticulate::import_from_path(
      "spark_bridge", path = testthat::test_path(), convert = TRUE)
  }
  db_test_state$spark_bridge
}

# Skips the test, saying why Spark cannot run here; an error instead where MIXEDRS_REQUIRE_SPARK
# is true (`make test-spark`, which is asked for Spark and must not pass by skipping).
spark_unavailable <- function(why) {
  if (isTRUE(as.logical(Sys.getenv("MIXEDRS_REQUIRE_SPARK")))) {
    stop(sub("skipped", "required (MIXEDRS_REQUIRE_SPARK is true) but cannot run", why),
         call. = FALSE)
  }
  testthat::skip(why)
}

# The test run's SparkSession (local[2], two shuffle partitions, no UI, quiet logs, driver on
# 127.0.0.1, scratch and warehouse directories in a temporary directory), a Python object
# through reticulate; started on first use and stopped, with its JVM, at the end of the run.
spark_test_session <- function() {
  if (!is.null(db_test_state$spark)) return(db_test_state$spark$session)
  if (!requireNamespace("reticulate", quietly = TRUE)) {
    spark_unavailable("Spark tests skipped: R package reticulate is not installed")
  }
  java <- java_major_version()
  if (is.na(java) || java < 17L) {
    spark_unavailable(paste0(
      "Spark tests skipped: Spark 4 needs Java 17 or later, and ",
      if (is.na(java)) "there is no java here" else paste("java here is", java),
      "; tools/install-deps.sh installs Debian's openjdk-17-jre-headless"))
  }
  python <- spark_venv_python()
  if (!file.exists(python)) {
    spark_unavailable(paste0(
      "Spark tests skipped: no pyspark virtualenv at ", dirname(dirname(python)),
      " (tools/spark-venv.sh makes it; MIXEDRS_SPARK_VENV chooses another place)"))
  }
  venv <- dirname(dirname(python))
  if (reticulate::py_available(initialize = FALSE)) {
    prefix <- reticulate::py_eval("__import__('sys').prefix")
    if (!identical(normalizePath(prefix), normalizePath(venv))) {
      stop("spark_test_session: reticulate already runs the Python in ", prefix,
           " in this R session; the Spark tests need the one in ", venv)
    }
  } else {
    reticulate::use_python(python, required = TRUE)
  }
  Sys.setenv(PYSPARK_PYTHON = python, PYSPARK_DRIVER_PYTHON = python)
  dir <- tempfile("mixedrs-spark-")
  dir.create(file.path(dir, "views"), recursive = TRUE)
  db_test_state$spark <- list(dir = dir, session = NULL)
  withr::defer(spark_stop_session(), envir = db_teardown_env())
  log4j <- file.path(dir, "log4j2.properties")
  # Warnings and errors only, less the native-Hadoop notice every local run gives. (A root level
  # other than WARN makes pyspark's gateway print a note on how to change it.)
  writeLines(c("rootLogger.level = warn", "rootLogger.appenderRef.stderr.ref = console",
               "appender.console.type = Console", "appender.console.name = console",
               "appender.console.target = SYSTEM_ERR",
               "appender.console.layout.type = PatternLayout",
               "appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n",
               "logger.hadoop.name = org.apache.hadoop.util.NativeCodeLoader",
               "logger.hadoop.level = error"), log4j)
  # Spark binds to what SPARK_LOCAL_IP names (else the first non-loopback address): loopback.
  # Its scratch space (shuffle files) goes into the session's directory.
  Sys.setenv(SPARK_LOCAL_IP = "127.0.0.1", SPARK_LOCAL_DIRS = file.path(dir, "scratch"))
  conf <- list(
    "spark.master" = "local[2]",
    "spark.app.name" = "mixedrs-tests",
    "spark.sql.shuffle.partitions" = "2",
    "spark.ui.enabled" = "false",
    "spark.ui.showConsoleProgress" = "false",
    "spark.driver.host" = "127.0.0.1",
    "spark.driver.bindAddress" = "127.0.0.1",
    "spark.sql.warehouse.dir" = file.path(dir, "warehouse"),
    "spark.driver.extraJavaOptions" = paste0("-Dlog4j2.configurationFile=file:", log4j)
  )
  memory <- Sys.getenv("MIXEDRS_SPARK_DRIVER_MEMORY")
  if (nzchar(memory)) conf[["spark.driver.memory"]] <- memory
  session <- spark_bridge()$start_session(reticulate::dict(conf))
  db_test_state$spark$session <- session
  session
}

# Stops the session and its JVM and removes its directory; runs at the end of the test run.
spark_stop_session <- function() {
  sp <- db_test_state$spark
  if (is.null(sp)) return(invisible())
  db_test_state$spark <- NULL
  if (!is.null(sp$session)) {
    stopped <- try(spark_bridge()$stop_session(sp$session), silent = TRUE)
    if (inherits(stopped, "try-error")) warning("the test SparkSession did not stop: ", stopped)
  }
  unlink(sp$dir, recursive = TRUE, force = TRUE)
  invisible()
}

# The Spark SQL type and the CSV text of one R column (NULL written as \N, strings quoted with
# doubled quotes, doubles with 17 significant digits, which Java parses back to the same double).
spark_column_type <- function(x, name) {
  if (!is.factor(x) && !is.null(oldClass(x))) {
    stop("spark_register_df: column ", name, " is of class ", class(x)[1],
         "; supported are double, integer, logical, character and factor columns")
  }
  if (is.factor(x) || is.character(x)) return("STRING")
  switch(typeof(x),
         double = "DOUBLE", integer = "INT", logical = "BOOLEAN",
         stop("spark_register_df: column ", name, " is of type ", typeof(x), " (", class(x)[1],
              "); supported are double, integer, logical, character and factor columns"))
}

spark_csv_text <- function(x, name) {
  if (is.factor(x)) x <- as.character(x)
  if (is.character(x)) {
    x <- enc2utf8(x)
    if (any(x == "\\N", na.rm = TRUE)) {
      stop("spark_register_df: column ", name, " holds the string \\N, which these helpers ",
           "use to write NULL")
    }
    out <- paste0('"', gsub('"', '""', x, fixed = TRUE), '"')
  } else if (is.logical(x)) {
    out <- ifelse(x, "true", "false")
  } else if (is.integer(x)) {
    out <- as.character(x)
  } else {
    out <- sprintf("%.17g", x)
    out[is.nan(x)] <- "NaN"
    out[which(x == Inf)] <- "Inf"
    out[which(x == -Inf)] <- "-Inf"
  }
  out[is.na(x) & !is.nan(x)] <- "\\N"
  out
}

# Registers `df` as the temporary view `name` of `spark`, each double exactly as in R (CSV with
# 17 significant digits, read with an explicit schema, kept as Parquet). Returns the view's
# Spark DataFrame (a Python object), invisibly.
spark_register_df <- function(spark, name, df) {
  if (!is.character(name) || length(name) != 1L || !grepl("^[A-Za-z_][A-Za-z0-9_]*$", name)) {
    stop("spark_register_df: `name` must be one plain view name (letters, digits, _)")
  }
  if (!is.data.frame(df) || ncol(df) == 0L) {
    stop("spark_register_df: `df` must be a data frame with at least one column")
  }
  types <- mapply(spark_column_type, df, names(df))
  ddl <- paste(sprintf("`%s` %s", gsub("`", "``", names(df), fixed = TRUE), types),
               collapse = ", ")
  text <- mapply(spark_csv_text, df, names(df), SIMPLIFY = FALSE, USE.NAMES = FALSE)
  header <- paste(sprintf('"%s"', gsub('"', '""', enc2utf8(names(df)), fixed = TRUE)),
                  collapse = ",")
  lines <- if (nrow(df) > 0L) do.call(paste, c(text, sep = ",")) else character()
  multiline <- any(vapply(df, function(x) {
    (is.character(x) || is.factor(x)) && any(grepl("[\r\n]", as.character(x)))
  }, logical(1)))
  dir <- db_test_state$spark$dir
  path <- tempfile(paste0(name, "-"), tmpdir = file.path(dir, "views"), fileext = ".csv")
  con <- file(path, open = "wb")
  writeLines(c(header, lines), con, useBytes = TRUE)
  close(con)
  invisible(spark_bridge()$register_csv(spark, name, path, ddl, multiline,
                                        sub("\\.csv$", ".parquet", path)))
}

# function(sql) running `sql` in `spark` and returning the result as an R data frame: DOUBLE,
# FLOAT, DECIMAL and BIGINT columns as doubles (exact; a BIGINT beyond 2^53 is an error), INT as
# integer, BOOLEAN as logical, STRING as character, NULL as NA; other types are an error.
spark_sql_runner <- function(spark) {
  force(spark)
  function(sql) {
    if (!is.character(sql) || length(sql) != 1L || is.na(sql)) {
      stop("the Spark SQL runner takes one SQL string")
    }
    res <- spark_bridge()$collect_columns(spark, sql)
    empty <- list(double = double(), integer = integer(), logical = logical(),
                  character = character())
    cols <- lapply(res$columns, function(col) {
      values <- if (res$n == 0) empty[[col$kind]] else col$values
      values[unlist(col$na)] <- NA
      values
    })
    names(cols) <- vapply(res$columns, function(col) col$name, character(1))
    as.data.frame(cols, stringsAsFactors = FALSE, check.names = FALSE)
  }
}
