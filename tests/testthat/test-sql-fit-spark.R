# lmm() on a Spark table through sql_source(dialect = "spark"), run by a
# local SparkSession (helper-databases.R), against lmm() on the same rows.

test_that("lmm() on a Spark table is lmm() on its rows", {
  spark <- spark_test_session()
  run <- spark_sql_runner(spark)
  sleep <- lme4::sleepstudy
  sleep$Subject <- as.character(sleep$Subject)
  spark_register_df(spark, "sleep", sleep)
  src <- sql_source(run, table = "sleep", dialect = "spark")
  expect_sql_fit_matches(Reaction ~ Days + (Days | Subject), src, lme4::sleepstudy)
  mixed <- sql_fit_frame(n = spark_test_rows(600L))
  spark_register_df(spark, "mixed", mixed)
  src2 <- sql_source(run, table = "mixed", dialect = "spark")
  expect_sql_fit_matches(y ~ f * x + I(x^2) + log(z) + (x | g) + (1 | h), src2, mixed,
                         weights = w, offset = o, anova = FALSE)
})

test_that("glmm() on a Spark table is glmm() on its rows", {
  spark <- spark_test_session()
  run <- spark_sql_runner(spark)
  rows <- sql_glmm_frame(n = spark_test_rows(2000L))
  rows$yes <- NULL
  spark_register_df(spark, "glmm_events", rows)
  src <- sql_source(run, table = "glmm_events", dialect = "spark")
  expect_sql_glmm_matches(y ~ f + x + (x | g) + (1 | h), src, rows, binomial)
  expect_sql_glmm_matches(cbind(s, m - s) ~ f + (1 | g), src, rows, binomial)
  expect_sql_glmm_matches(count ~ f + x + offset(log(expo)) + (1 | g), src, rows, poisson)
  expect_sql_glmm_matches(count ~ x + (1 | g), src, rows, poisson)
})
