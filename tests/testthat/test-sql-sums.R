# sql_model_inputs(): the aggregates of a linear mixed model computed by SQL
# on SQLite (through a dbplyr lazy table and through sql_source()), checked
# element by element against the same sums formed in R from the in-memory
# inputs of lmm() on the same rows (helper-sql.R), and the metadata against
# those inputs.
skip_if_not_installed("RSQLite")
skip_if_not_installed("dbplyr")
skip_if_not_installed("dplyr")
skip_if_not_installed("lme4")

# Rows as R sees them after the round trip through the database.
pulled <- function(con, table) DBI::dbGetQuery(con, paste("SELECT * FROM", table))

test_that("sleepstudy (Days | Subject): sums and metadata match the in-memory inputs", {
  con <- sql_test_con()
  on.exit(DBI::dbDisconnect(con))
  data("sleepstudy", package = "lme4", envir = environment())
  DBI::dbWriteTable(con, "sleep", sleepstudy)
  f <- Reaction ~ Days + (Days | Subject)
  ri <- sql_ref_inputs(f, pulled(con, "sleep"))
  inp <- sql_model_inputs(f, dplyr::tbl(con, "sleep"))
  expect_sql_inputs_match(inp, ri)
  expect_identical(inp$source, "SQLite table sleep")
  expect_false(inp$has_weights)
  expect_false(inp$has_offset)
  expect_equal(inp$x_shift, c(0, 4.5))
  # the same through a run function
  inp2 <- sql_model_inputs(f, sql_test_source(con, "sleep"))
  expect_sql_inputs_match(inp2, ri)
  expect_identical(inp2$source, "table sleep")
  # the levels are those of the in-memory fit of the original data frame
  expect_identical(levels(inp$flist$Subject), levels(sleepstudy$Subject))
})

test_that("||, structured terms and factor(column) slopes match", {
  con <- sql_test_con()
  on.exit(DBI::dbDisconnect(con))
  data("sleepstudy", package = "lme4", envir = environment())
  DBI::dbWriteTable(con, "sleep", sleepstudy)
  d <- pulled(con, "sleep")
  for (f in list(Reaction ~ Days + (Days || Subject),
                 Reaction ~ Days + cs(0 + factor(Days) | Subject),
                 Reaction ~ Days + diag(Days | Subject, hom = TRUE))) {
    ri <- sql_ref_inputs(f, d)
    inp <- sql_model_inputs(f, dplyr::tbl(con, "sleep"))
    expect_sql_inputs_match(inp, ri)
    expect_identical(inp$formula, lmm(f, d, control = lmmControl(optimizer = "none"))$formula)
  }
})

test_that("Penicillin (crossed) and Pastes (nested a/b and a:b) match, pairs included", {
  con <- sql_test_con()
  on.exit(DBI::dbDisconnect(con))
  data("Penicillin", package = "lme4", envir = environment())
  data("Pastes", package = "lme4", envir = environment())
  DBI::dbWriteTable(con, "pen", Penicillin)
  DBI::dbWriteTable(con, "pastes", Pastes)
  f <- diameter ~ 1 + (1 | plate) + (1 | sample)
  ri <- sql_ref_inputs(f, pulled(con, "pen"))
  inp <- sql_model_inputs(f, dplyr::tbl(con, "pen"))
  expect_sql_inputs_match(inp, ri)
  expect_length(inp$sums$pairs, 1L)
  expect_identical(length(inp$sums$pairs[[1]]$li), 144L)
  for (f in list(strength ~ 1 + (1 | batch/cask),
                 strength ~ 1 + (1 | batch) + (1 | batch:cask))) {
    ri <- sql_ref_inputs(f, pulled(con, "pastes"))
    inp <- sql_model_inputs(f, dplyr::tbl(con, "pastes"))
    expect_sql_inputs_match(inp, ri)
    expect_true("A:a" %in% levels(inp$flist[["batch:cask"]]) ||
                  "a:A" %in% levels(inp$flist[["cask:batch"]]))
    inp2 <- sql_model_inputs(f, sql_test_source(con, "pastes"))
    expect_sql_inputs_match(inp2, ri)
  }
})

# A model with everything the fixed part supports, weights, an offset
# argument and an offset() term, a subset, and NULLs in used columns.
rich_data <- function(n = 400L) {
  set.seed(16)
  g <- sample(sprintf("g%02d", 1:12), n, TRUE)
  h <- sample(c("north", "south", "East", "west"), n, TRUE)
  f <- sample(c("b", "a", "C"), n, TRUE)
  x <- rnorm(n, 2)
  z <- rexp(n) + 0.1
  k <- sample(1:50000, n, TRUE)  # integer column: squares overflow 32 bits
  w <- runif(n, 0.5, 2)
  off <- rnorm(n, sd = 0.1)
  y <- 1 + 0.5 * x + (f == "a") + rnorm(12)[match(g, sprintf("g%02d", 1:12))] + rnorm(n)
  d <- data.frame(y, x, z, k, f, g, h, w, off, stringsAsFactors = FALSE)
  d$x[c(3, 50)] <- NA
  d$f[7] <- NA
  d$g[9] <- NA
  d$w[11] <- NA
  d$h[13] <- NA
  d$unused[1:5] <- NA  # NULLs in a column the model does not use
  d
}

test_that("factors, interactions, I(), log(), sqrt(), weights, offsets, subset and NULLs match", {
  con <- sql_test_con()
  on.exit(DBI::dbDisconnect(con))
  DBI::dbWriteTable(con, "rich", rich_data())
  d <- pulled(con, "rich")
  expect_type(d$k, "integer")
  f <- y ~ f * x + I(x^2) + log(z) + sqrt(z) + I(k * k / 1e9) + offset(off) +
    (1 + x | g) + (0 + f | h)
  # R's integer k * k overflows; SQL casts every column to double first
  dref <- d
  dref$k <- as.double(dref$k)
  ri <- sql_ref_inputs(f, dref, weights = quote(w), offset = quote(x / 10),
                       subset = quote(z > 0.2 & h != "west"))
  inp <- sql_model_inputs(f, dplyr::tbl(con, "rich"), weights = "w",
                          offset = quote(x / 10), subset = quote(z > 0.2 & h != "west"))
  expect_sql_inputs_match(inp, ri)
  expect_true(inp$has_weights)
  expect_true(inp$has_offset)
  expect_true(inp$n_dropped > 0)
  expect_true(all(c("I(x^2)", "log(z)", "sqrt(z)", "I(k * k/1e+09)") %in% inp$X_names))
  expect_length(grep("^f.*:x$", inp$X_names), 2L)
  # factor-free columns are centred, factor columns are not
  expect_equal(inp$x_shift[inp$X_names == "x"], mean(ri$X[, "x"]), tolerance = 1e-12)
  expect_identical(inp$x_shift[inp$X_names == "fa"], 0)
  # subset as a lazy-table filter gives the same inputs
  tbl <- dplyr::filter(dplyr::tbl(con, "rich"), z > 0.2, h != "west")
  inp2 <- sql_model_inputs(f, tbl, weights = quote(w), offset = quote(x / 10))
  # (filter() drops the rows where the condition is NULL, which 'subset'
  # counts as dropped for NULLs, as model.frame() does)
  d2 <- as.data.frame(dplyr::collect(tbl))
  d2$k <- as.double(d2$k)
  ri2 <- sql_ref_inputs(f, d2, weights = quote(w), offset = quote(x / 10))
  expect_sql_inputs_match(inp2, ri2)
  expect_identical(inp2$n_dropped, inp$n_dropped - 1)
  expect_identical(inp2$source, "SQLite lazy query")
  # contrasts
  ri3 <- sql_ref_inputs(y ~ f + x + (1 | g), d, contrasts = list(f = "contr.sum"))
  inp3 <- sql_model_inputs(y ~ f + x + (1 | g), sql_test_source(con, "rich"),
                           contrasts = list(f = "contr.sum"))
  expect_sql_inputs_match(inp3, ri3)
  # without an intercept nothing is shifted
  ri4 <- sql_ref_inputs(y ~ 0 + f + x + (1 | g), d)
  inp4 <- sql_model_inputs(y ~ 0 + f + x + (1 | g), dplyr::tbl(con, "rich"))
  expect_sql_inputs_match(inp4, ri4)
  expect_true(all(inp4$x_shift == 0))
})

test_that("y around 1e6 keeps its digits (centred in SQL)", {
  con <- sql_test_con()
  on.exit(DBI::dbDisconnect(con))
  data("sleepstudy", package = "lme4", envir = environment())
  sleep <- sleepstudy
  sleep$Reaction <- sleep$Reaction + 1e6
  sleep$Days <- sleep$Days + 1e6
  DBI::dbWriteTable(con, "sleep", sleep)
  f <- Reaction ~ Days + (Days | Subject)
  ri <- sql_ref_inputs(f, pulled(con, "sleep"))
  inp <- sql_model_inputs(f, dplyr::tbl(con, "sleep"))
  expect_sql_inputs_match(inp, ri)
  expect_gt(inp$y_shift, 1e6)
  # the centred cross-product of y is that of the original data, which
  # uncentred sums in double precision (sum y^2 ~ 1.8e14) could not give
  ss <- sum((sleepstudy$Reaction - mean(sleepstudy$Reaction))^2)
  expect_equal(inp$sums$ff[3, 3], ss, tolerance = 1e-9)
})

test_that("verbose prints each query's purpose and time", {
  con <- sql_test_con()
  on.exit(DBI::dbDisconnect(con))
  data("Penicillin", package = "lme4", envir = environment())
  DBI::dbWriteTable(con, "pen", Penicillin)
  msgs <- testthat::capture_messages(
    sql_model_inputs(diameter ~ 1 + (1 | plate) + (1 | sample), dplyr::tbl(con, "pen"),
                     verbose = TRUE))
  expect_length(msgs, 7L)
  expect_match(msgs[2], "row counts, means and levels of plate: 24 rows in [0-9.]+ s")
  expect_match(msgs[3], "levels of sample: 6 rows")
  expect_match(msgs[7], "sums per level pair of plate and sample \\(zz\\)")
})

test_that("errors name the cause", {
  con <- sql_test_con()
  on.exit(DBI::dbDisconnect(con))
  DBI::dbWriteTable(con, "rich", rich_data())
  tbl <- dplyr::tbl(con, "rich")
  expect_error(sql_model_inputs(y ~ nope + (1 | g), tbl),
               "column 'nope' used in the fixed effects not found in SQLite table rich")
  expect_error(sql_model_inputs(y ~ x + (1 | gg), tbl),
               "column 'gg' used in random-effects term \\(1 \\| gg\\) not found")
  expect_error(sql_model_inputs(y ~ x + (1 | g), sql_test_source(con, "nosuch")),
               "query for the column names failed on table nosuch: no such table: nosuch")
  expect_error(sql_model_inputs(g ~ x + (1 | h), tbl),
               "response 'g' must be numeric, not character")
  expect_error(sql_model_inputs(y ~ poly(x, 2) + (1 | g), tbl),
               "'poly\\(x, 2\\)' cannot be computed in the database: poly\\(\\).*dplyr::mutate\\(\\)")
  expect_error(sql_model_inputs(y ~ splines::ns(x, 3) + (1 | g), tbl),
               "cannot be computed in the database.*mutate")
  expect_error(sql_model_inputs(y ~ scale(x) + (1 | g), tbl), "scale\\(\\) is not translated")
  expect_error(sql_model_inputs(y ~ . + (1 | g), tbl), "'.' in the formula")
  expect_error(sql_model_inputs(y ~ log(g) + (1 | h), tbl),
               "column 'g' used as a number in 'log\\(g\\)' is character")
  expect_error(sql_model_inputs(y ~ x + (1 | g), tbl, weights = "x"),
               "'weights' must not be negative")
  expect_error(sql_model_inputs(y ~ x + (1 | g), tbl, subset = quote(z > 100)),
               "no rows of SQLite table rich are left")
  expect_error(sql_model_inputs(y ~ x + (1 | g), mtcars), "'data' must be a dbplyr lazy table")
  # a failing query: the database's message and the statistic
  failing <- sql_source(function(sql) {
    if (grepl("GROUP BY", sql)) stop("connection lost") else DBI::dbGetQuery(con, sql)
  }, "rich")
  expect_error(sql_model_inputs(y ~ x + (1 | g), failing),
               "query for the row counts, means and levels of g failed on table rich: connection lost")
  # log() of a non-positive value: the database refuses
  expect_error(sql_model_inputs(y ~ log(x) + (1 | g), tbl), "failed on SQLite table rich")
  # a grouping column with one level: lmm()'s error
  d <- pulled(con, "rich")
  d1 <- d[!is.na(d$g) & d$g == "g01", ]
  DBI::dbWriteTable(con, "one", d1)
  in_memory <- tryCatch(lmm(y ~ x + (1 | g), d1), error = conditionMessage)
  expect_match(in_memory, "only one sampled level")
  expect_error(sql_model_inputs(y ~ x + (1 | g), dplyr::tbl(con, "one")), in_memory, fixed = TRUE)
})

test_that("sql_source() checks its arguments and prints", {
  expect_error(sql_source("SELECT", "t"), "'run' must be a function")
  expect_error(sql_source(identity, c("a", "b")), "'table' must be a single table name")
  expect_error(sql_source(identity, "t", dialect = "oracle"), "should be one of")
  src <- sql_source(identity, "(SELECT * FROM events WHERE year = 2024)", "spark")
  expect_output(print(src), "<sql_source> subquery \\(SELECT \\* FROM events WHERE year = 2024\\)")
  expect_output(print(src), "dialect: spark")
})

test_that("sql_source() dialects write their own quoting and double type", {
  seen <- character()
  run <- function(sql) {
    seen <<- c(seen, sql)
    stop("stop here")
  }
  for (d in c("ansi", "postgres", "spark")) {
    seen <- character()
    expect_error(sql_model_inputs(y ~ x + (1 | g), sql_source(run, "my table", d)), "stop here")
    q <- if (d == "spark") "`my table`" else "\"my table\""
    expect_match(seen[1], paste0("SELECT * FROM ", q, " AS mixedrs_base WHERE 1 = 0"), fixed = TRUE)
  }
  b <- mixedrs:::sql_backend(sql_source(run, "t", "postgres"))
  expect_identical(b$dbl, "DOUBLE PRECISION")
  expect_identical(mixedrs:::sql_backend(sql_source(run, "t", "spark"))$dbl, "DOUBLE")
  expect_identical(mixedrs:::sql_backend(sql_source(run, "t", "ansi"))$dbl, "DOUBLE PRECISION")
})
