# ls_means() and difflsmeans(): lmerTest's least-squares means of the
# factor terms, side by side with lmerTest's on fits run to full precision.
skip_if_not_installed("lmerTest")

expect_same_ls_means_at <- function(ours, ref, tolerance) {
  expect_s3_class(ours, "ls_means")
  expect_identical(rownames(ours), rownames(ref))
  expect_identical(colnames(ours), colnames(ref))
  expect_equal(as.matrix(ours), as.matrix(ref), tolerance = tolerance, ignore_attr = TRUE)
  # the contrasts on all the model matrix's columns, estimable or not
  expect_equal(attr(ours, "hypotheses"), attr(ref, "hypotheses"), tolerance = 1e-12)
  for (a in c("response", "confidence_level", "ddf", "heading")) {
    expect_identical(attr(ours, a), attr(ref, a))
  }
  # the levels as lmerTest's as.data.frame() gives them (it fails on an
  # empty table)
  if (nrow(ref)) {
    expect_identical(as.data.frame(ours)[c("term", "levels")],
                     lmerTest:::as.data.frame.ls_means(ref)[c("term", "levels")])
  } else {
    expect_identical(names(as.data.frame(ours))[1:2], c("term", "levels"))
  }
}

expect_same_ls_means <- function(ours, ref) expect_same_ls_means_at(ours, ref, tolerance = 1e-6)

set.seed(2)
cells <- expand.grid(A = factor(letters[1:3]), B = factor(c("u", "v")), rep = 1:4,
                     g = factor(1:8))
cells$x <- stats::runif(nrow(cells), 1, 5)
cells$O <- factor(sample(c("lo", "mid", "hi"), nrow(cells), TRUE), levels = c("lo", "mid", "hi"),
                  ordered = TRUE)
cells$y <- stats::rnorm(8)[cells$g] + as.numeric(cells$A) + cells$x + stats::rnorm(nrow(cells))
# one combination of A and B missing: the fixed-effects matrix loses a column
missing_cell <- cells[!(cells$A == "c" & cells$B == "v"), ]

# lmerTest's fit with the data put into its call (its functions evaluate
# the call elsewhere)
lmerTest_ref <- function(form, data) {
  suppressMessages(eval(bquote(lmerTest_full(.(form), .(data)))))
}

test_that("ls_means() and difflsmeans() give lmerTest's tables", {
  cases <- list(list(y ~ A * B + x + (1 | g), cells), list(y ~ A * x + B + (1 | g), cells),
                list(y ~ O + B + (1 | g), cells), list(y ~ A:B + (1 | g), cells),
                list(y ~ x + (1 | g), cells), list(y ~ A * B + x + (1 | g), missing_cell))
  for (case in cases) {
    fit <- suppressMessages(lmm(case[[1]], case[[2]]))
    ref <- lmerTest_ref(case[[1]], case[[2]])
    expect_same_ls_means(ls_means(fit), lmerTest::ls_means(ref))
    expect_same_ls_means(difflsmeans(fit), lmerTest::difflsmeans(ref))
  }
  # the missing cell's means are NA (not estimable), the others estimated
  tab <- suppressMessages(ls_means(lmm(y ~ A * B + x + (1 | g), missing_cell)))
  expect_identical(rownames(tab)[is.na(tab$Estimate)], c("Ac", "Bv", "Ac:Bv"))
})

test_that("ls_means() takes lmerTest's which, level, ddf and pairwise", {
  ham <- lmerTest::ham
  form <- Informed.liking ~ Product * Information + Gender + (1 | Product:Consumer) +
    (1 | Consumer)
  fit <- lmm(form, ham)
  ref <- lmerTest_ref(form, ham)
  # (the two fits' variance parameters agree to ~1e-6, the df as closely)
  expect_same_ls_means <- function(ours, ref) {
    expect_same_ls_means_at(ours, ref, tolerance = 2e-5)
  }
  expect_same_ls_means(ls_means(fit), lmerTest::ls_means(ref))
  expect_same_ls_means(ls_means(fit, which = "Product", level = 0.9, ddf = "Kenward-Roger"),
                       lmerTest::ls_means(ref, which = "Product", level = 0.9,
                                          ddf = "Kenward-Roger"))
  expect_same_ls_means(difflsmeans(fit, which = "Product:Information", ddf = "Kenward-Roger"),
                       lmerTest::difflsmeans(ref, which = "Product:Information",
                                             ddf = "Kenward-Roger"))
  expect_same_ls_means(lsmeansLT(fit, which = "Gender", pairwise = TRUE),
                       lmerTest::lsmeansLT(ref, which = "Gender", pairwise = TRUE))
  expect_output(print(ls_means(fit, which = "Gender")),
                "Least Squares Means table:.*Gender1.*Confidence level: 95%.*Satterthwaite")
})

test_that("ls_means() holds transformed covariates at the mean of their column, and takes
          character and logical variables as factors", {
  cells$lx <- log(cells$x)
  expect_equal(ls_means(lmm(y ~ A + B + log(x) + (1 | g), cells)),
               ls_means(lmm(y ~ A + B + lx + (1 | g), cells)), ignore_attr = TRUE,
               tolerance = 1e-10)
  cells$chr <- as.character(cells$B)
  cells$lgl <- cells$B == "v"
  by_factor <- as.matrix(ls_means(lmm(y ~ A + B + (1 | g), cells)))
  by_chr <- ls_means(lmm(y ~ A + chr + (1 | g), cells))
  expect_identical(rownames(by_chr), c("Aa", "Ab", "Ac", "chru", "chrv"))
  expect_equal(as.matrix(by_chr), by_factor, ignore_attr = TRUE, tolerance = 1e-10)
  by_lgl <- ls_means(lmm(y ~ A + lgl + (1 | g), cells))
  expect_identical(rownames(by_lgl), c("Aa", "Ab", "Ac", "lglFALSE", "lglTRUE"))
  expect_equal(as.matrix(by_lgl), by_factor, ignore_attr = TRUE, tolerance = 1e-10)
})

test_that("plot() of LS-means and of step() draws the bars of lmerTest's plot", {
  skip_if_not_installed("ggplot2")
  fit <- lmm(y ~ A * B + x + (1 | g), cells)
  grDevices::pdf(NULL)
  on.exit(grDevices::dev.off())
  p <- plot(ls_means(fit))
  expect_s3_class(p, "ggplot")
  expect_equal(p$data$Estimate, ls_means(fit)$Estimate)
  expect_identical(levels(p$data$term), c("A", "B", "A:B"))
  per_term <- plot(difflsmeans(fit), which = "A", mult = FALSE)
  expect_named(per_term, "A")
  expect_identical(as.character(per_term$A$data$levels), c("a - b", "a - c", "b - c"))
  s <- step(lmm(y ~ A * B + x + (1 | g), cells), reduce.fixed = FALSE)
  expect_equal(plot(s)$data$Estimate, ls_means(fit)$Estimate)
  expect_error(plot(ls_means(fit), which = "C"), "'which' must name terms of the table")
})

test_that("ls_means() stops with the cause, and hands lme4 fits to lmerTest", {
  fit <- lmm(y ~ A + B + (1 | g), cells)
  expect_error(ls_means(fit, which = "x"), "'which' must name terms of the model made only of factors \\('A', 'B'\\), not 'x'")
  expect_error(ls_means(fit, level = 95), "'level' must be a number between 0 and 1")
  expect_error(ls_means(fit, pairwise = NA), "'pairwise' must be TRUE or FALSE")
  expect_error(ls_means(fit, adjust = "tukey"), "does not use the argument\\(s\\) 'adjust'")
  expect_error(ls_means(lmm(y ~ A + (1 | g), cells, REML = FALSE), ddf = "Kenward-Roger"),
               "only available for REML fits")
  gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), lme4::cbpp,
               family = binomial)
  expect_error(ls_means(gfit), "the emmeans package gives marginal means of a glmm\\(\\) fit")
  ref <- lmerTest_ref(y ~ A + B + (1 | g), cells)
  expect_identical(ls_means(ref, which = "A"), lmerTest::ls_means(ref, which = "A"))
  expect_identical(difflsmeans(ref), lmerTest::difflsmeans(ref))
})
