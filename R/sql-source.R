# SQL sources: where the rows of a model fitted in a database live, and how
# to talk to that database. A source is either a dbplyr lazy table (any DBI
# connection; its query is rendered by dbplyr and used as a subquery) or a
# `sql_source()` (a function that runs SQL and returns a data frame, a table
# and a dialect). Both become one "backend" list: run a query, quote
# identifiers and strings, cast to double precision and translate R
# expressions to SQL (dbplyr's translation for the connection or, for
# sql_source(), for a simulated connection of the dialect). Nothing here
# writes to the database.

#' A table in a database reached through a function that runs SQL
#'
#' Describes where the rows of a model live when the database has no DBI
#' driver in R (Spark through reticulate and pyspark, a REST endpoint, ...):
#' mixedrs writes the SQL of the aggregates it needs (sums grouped by the
#' levels of the grouping factors) and calls `run` on each query; only
#' those aggregates come back to R. For a database with a DBI driver, pass
#' a dbplyr lazy table (`dplyr::tbl(con, "events")`) instead.
#'
#' @param run A function of one argument, a string of SQL, returning the
#'   query's result as a data frame (columns in the order of the `SELECT`).
#'   It is called only with `SELECT` queries.
#' @param table The table: a name (`"events"`, `"db.events"`; a name that is
#'   not a plain dotted identifier is quoted) or a parenthesized subquery
#'   (`"(SELECT * FROM events WHERE year = 2024)"`).
#' @param dialect The SQL dialect of the engine: `"ansi"` (dbplyr's generic
#'   SQL translation, double-quoted identifiers), `"postgres"` (dbplyr's
#'   PostgreSQL translation) or `"spark"` (dbplyr's Hive translation, which
#'   Spark SQL follows; backtick-quoted identifiers).
#' @return An object of class `"sql_source"`: a list with `run`, `table` and
#'   `dialect`.
#' @seealso [sql_model_inputs()], which computes a model's aggregates from
#'   a source.
#' @examplesIf requireNamespace("RSQLite", quietly = TRUE) && requireNamespace("dbplyr", quietly = TRUE) && requireNamespace("lme4", quietly = TRUE)
#' con <- DBI::dbConnect(RSQLite::SQLite(), ":memory:")
#' data("sleepstudy", package = "lme4")
#' DBI::dbWriteTable(con, "sleep", sleepstudy)
#' src <- sql_source(function(sql) DBI::dbGetQuery(con, sql), "sleep")
#' src
#' inputs <- sql_model_inputs(Reaction ~ Days + (Days | Subject), src)
#' inputs$n
#' inputs$sums$ff
#' DBI::dbDisconnect(con)
#' @export
sql_source <- function(run, table, dialect = c("ansi", "postgres", "spark")) {
  if (!is.function(run)) {
    stop("'run' must be a function that takes a string of SQL and returns ",
         "a data frame, not ", describe_class(run), call. = FALSE)
  }
  if (!is.character(table) || length(table) != 1L || is.na(table) ||
      !nzchar(trimws(table))) {
    stop("'table' must be a single table name or a parenthesized subquery",
         call. = FALSE)
  }
  dialect <- match.arg(dialect)
  structure(list(run = run, table = table, dialect = dialect),
            class = "sql_source")
}

#' @rdname sql_source
#' @param x An `sql_source` object.
#' @param ... Not used.
#' @method print sql_source
#' @export
print.sql_source <- function(x, ...) {
  cat("<sql_source> ", sql_source_label(x), "\n", sep = "")
  cat("dialect: ", x$dialect, "\n", sep = "")
  invisible(x)
}

# "table events" or "subquery (SELECT ...)" (shortened) for messages.
sql_source_label <- function(x) {
  tab <- trimws(x$table)
  if (startsWith(tab, "(")) {
    one_line <- gsub("[[:space:]]+", " ", tab)
    if (nchar(one_line) > 60L) one_line <- paste0(substr(one_line, 1L, 57L), "...")
    paste("subquery", one_line)
  } else {
    paste("table", tab)
  }
}

# The backend of a data source (a dbplyr lazy table or an sql_source): a
# list with `run(sql)`, `from` (the FROM clause, aliased), `ident(x)` and
# `string(x)` (quoted identifiers and literals), `dbl` (the double-precision
# type name), `con` (the connection dbplyr translates R expressions for),
# `columns()` (the column names, queried once) and `label`.
sql_backend <- function(data) {
  if (inherits(data, "sql_source")) return(sql_source_backend(data))
  if (inherits(data, "tbl_sql")) return(lazy_table_backend(data))
  if (inherits(data, "tbl_lazy")) {
    stop("'data' is a lazy table without a database connection (",
         class(data)[1L], "): build it with dplyr::tbl(con, \"table\") on a ",
         "DBI connection", call. = FALSE)
  }
  stop("'data' must be a dbplyr lazy table (dplyr::tbl(con, \"table\")) or ",
       "an sql_source(), not ", describe_class(data), call. = FALSE)
}

need_package <- function(pkg, why) {
  if (!requireNamespace(pkg, quietly = TRUE)) {
    stop("package '", pkg, "' is needed ", why, ": install it with ",
         "install.packages(\"", pkg, "\")", call. = FALSE)
  }
}

lazy_table_backend <- function(data) {
  need_package("dbplyr", "to fit models to lazy database tables")
  need_package("DBI", "to fit models to lazy database tables")
  con <- dbplyr::remote_con(data)
  if (is.null(con)) {
    stop("'data' is a lazy table without a database connection",
         call. = FALSE)
  }
  query <- as.character(dbplyr::sql_render(data))
  name <- dbplyr::remote_name(data)
  what <- if (is.null(name)) "lazy query" else paste("table", as.character(name))
  engine <- sub("Connection$", "", class(con)[1L])
  cols <- colnames(data)
  list(
    run = function(sql) DBI::dbGetQuery(con, sql),
    from = paste0("(", query, ") AS mixedrs_base"),
    ident = function(x) as.character(DBI::dbQuoteIdentifier(con, x)),
    string = function(x) as.character(DBI::dbQuoteString(con, x)),
    dbl = double_type(con),
    con = con,
    columns = function() cols,
    label = paste(engine, what)
  )
}

sql_source_backend <- function(src) {
  need_package("dbplyr", "for the SQL translation of sql_source()")
  con <- switch(src$dialect,
                ansi = dbplyr::simulate_dbi(),
                postgres = dbplyr::simulate_postgres(),
                spark = dbplyr::simulate_hive())
  quote_char <- if (src$dialect == "spark") "`" else "\""
  ident <- function(x) {
    paste0(quote_char, gsub(quote_char, strrep(quote_char, 2L), x, fixed = TRUE),
           quote_char)
  }
  tab <- trimws(src$table)
  from <- if (startsWith(tab, "(") || grepl("^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*$", tab)) {
    tab
  } else {
    ident(tab)
  }
  from <- paste(from, "AS mixedrs_base")
  label <- sql_source_label(src)
  backend <- list(
    run = src$run,
    from = from,
    ident = ident,
    string = function(x) as.character(dbplyr::escape(x, con = con, parens = FALSE)),
    dbl = double_type(con),
    con = con,
    label = label
  )
  backend$columns <- function() {
    res <- sql_run(backend, paste("SELECT * FROM", from, "WHERE 1 = 0"),
                   "the column names", 0L)
    names(res)
  }
  backend
}

# The double-precision type for CAST(): dbplyr's translation of as.double()
# for the connection, unless that is an exact decimal type (dbplyr's generic
# and PostgreSQL translations give NUMERIC, which PostgreSQL computes in
# arbitrary-precision decimal), in which case SQL's DOUBLE PRECISION.
double_type <- function(con) {
  cast <- as.character(dbplyr::translate_sql_(list(quote(as.double(x))), con = con))
  type <- sub("^CAST\\(.* AS (.*)\\)$", "\\1", cast)
  if (identical(type, cast) || grepl("NUMERIC|DECIMAL", toupper(type))) {
    return("DOUBLE PRECISION")
  }
  type
}

# Runs one query on a backend; `purpose` names the statistic in messages
# and, with verbose >= 1, in the progress line (>= 2 also prints the SQL).
sql_run <- function(backend, sql, purpose, verbose = 0L) {
  if (verbose >= 2L) message("mixedrs sql: ", sql)
  start <- proc.time()[["elapsed"]]
  # Warnings of the run are kept (and still shown): a driver that loses its
  # connection may only warn and return NULL (RPostgreSQL does).
  warned <- character()
  res <- withCallingHandlers(
    tryCatch(backend$run(sql), error = function(e) {
      stop("the query for ", purpose, " failed on ", backend$label, ": ",
           conditionMessage(e), call. = FALSE)
    }),
    warning = function(w) warned <<- c(warned, conditionMessage(w)))
  if (!is.data.frame(res)) {
    stop("the query for ", purpose, " failed on ", backend$label, ": it returned ",
         describe_class(res), ", not a data frame",
         if (length(warned)) paste0(" (the driver warned: ", paste(unique(warned), collapse = "; "), ")")
         else if (is.null(res)) " (a lost connection?)",
         call. = FALSE)
  }
  if (verbose >= 1L) {
    message(sprintf("mixedrs sql: %s: %d row%s in %.3f s", purpose, nrow(res),
                    if (nrow(res) == 1L) "" else "s",
                    proc.time()[["elapsed"]] - start))
  }
  res
}

# The columns an expression uses (`where` names its place in the model),
# each checked to be one of the data's `columns`.
sql_used_columns <- function(expr, where, columns, label) {
  bad <- setdiff(all.vars(expr), columns)
  if (length(bad)) {
    stop("column ", quote_names(bad), " used in ", where, " not found in ",
         label, call. = FALSE)
  }
  all.vars(expr)
}

# The types of the columns `used` ("numeric", "character", "logical" or
# their class), read from one row where the SQL condition `where` holds; an
# error when no row does.
sql_column_types <- function(backend, used, where, verbose) {
  one <- dbplyr::sql_query_select(
    backend$con, select = dbplyr::sql(paste(vapply(used, backend$ident, ""), collapse = ", ")),
    from = dbplyr::sql(backend$from), where = dbplyr::sql(where), limit = 1L)
  row <- sql_run(backend, as.character(one), "the column types (one row)", verbose)
  if (nrow(row) == 0L) {
    stop("no rows of ", backend$label, " are left after 'subset' and the ",
         "removal of rows with NULL in a column the model uses (",
         quote_names(used), ")", call. = FALSE)
  }
  types <- vapply(row, function(x) {
    if (is.logical(x)) "logical" else if (is.character(x) || is.factor(x)) "character"
    else if (is.numeric(x) || inherits(x, "integer64")) "numeric" else class(x)[1L]
  }, "")
  stats::setNames(types, used)
}
