# show_tests(): the hypothesis matrices of tables of tests, side by side with
# lmerTest's show_tests() of the same tables of an lmerTest fit.
skip_if_not_installed("lmerTest")

test_that("show_tests() gives lmerTest's matrices for anova(), drop1() and ls_means()", {
  cake <- lme4::cake
  # one cell missing: the model matrix loses a column
  cake3 <- cake[!(cake$recipe == "C" & cake$temperature == "225"), ]
  for (data in list(cake, cake3)) {
    form <- angle ~ recipe * temperature + (1 | recipe:replicate)
    fit <- suppressMessages(lmm(form, data))
    ref <- suppressMessages(eval(bquote(lmerTest_full(.(form), .(data)))))
    for (type in 1:3) {
      expect_equal(show_tests(suppressMessages(anova(fit, type = type))),
                   lmerTest::show_tests(suppressMessages(anova(ref, type = type))),
                   tolerance = 1e-10)
    }
    expect_equal(show_tests(ls_means(fit)), lmerTest::show_tests(lmerTest::ls_means(ref)),
                 tolerance = 1e-12)
    expect_equal(show_tests(difflsmeans(fit, which = "recipe"), names = FALSE),
                 lmerTest::show_tests(lmerTest::difflsmeans(ref, which = "recipe"),
                                      names = FALSE), tolerance = 1e-12)
    shown <- show_tests(ls_means(fit, which = "recipe"), fractions = TRUE)
    expect_s3_class(shown$recipe, "fractions")
    expect_equal(unclass(shown$recipe),
                 unclass(lmerTest::show_tests(lmerTest::ls_means(ref, which = "recipe"),
                                              fractions = TRUE)$recipe), ignore_attr = TRUE)
  }
  expect_error(show_tests(data.frame()), "has no \"hypotheses\" attribute")
  expect_error(show_tests(ls_means(fit), fractions = NA), "'fractions' must be TRUE or FALSE")
})

test_that("anova() type III says which cells are missing, as lmerTest does", {
  cake <- lme4::cake
  cake3 <- cake[!(cake$recipe == "C" & cake$temperature == "225"), ]
  form <- angle ~ recipe * temperature + (1 | recipe:replicate)
  fit <- suppressMessages(lmm(form, cake3))
  ref <- suppressMessages(eval(bquote(lmerTest_full(.(form), .(cake3)))))
  ours <- tryCatch(anova(fit), message = conditionMessage)
  theirs <- tryCatch(anova(ref), message = conditionMessage)
  expect_identical(ours, theirs)
  expect_match(ours, "Missing cells for: recipeC:temperature225")
  # none for the full data, nor for type II
  expect_silent(anova(lmm(form, cake)))
  expect_silent(anova(fit, type = 2))
})
