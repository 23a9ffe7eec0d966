# step(): lmerTest's backward elimination of random and then fixed terms,
# side by side with lmerTest::step() on lmerTest fits run to full precision
# (lmerTest refits through update(), so the reduced models keep that control).
skip_if_not_installed("lmerTest")

expect_same_step <- function(ours, ref, tolerance = 1e-6) {
  expect_s3_class(ours, "step_list")
  for (part in c("random", "fixed")) {
    expect_identical(rownames(ours[[part]]), rownames(ref[[part]]))
    expect_identical(colnames(ours[[part]]), colnames(ref[[part]]))
    expect_equal(as.matrix(ours[[part]]), as.matrix(ref[[part]]), tolerance = tolerance,
                 ignore_attr = TRUE)
    expect_identical(attr(ours[[part]], "heading"), attr(ref[[part]], "heading"))
  }
  ours_model <- get_model(ours)
  ref_model <- lmerTest::get_model(ref)
  expect_identical(deparse1(formula(ours_model)), deparse1(formula(ref_model)))
  expect_equal(as.numeric(logLik(ours_model)), as.numeric(logLik(ref_model)), tolerance = 1e-8)
  expect_equal(if (inherits(ours_model, "lm")) coef(ours_model) else fixef(ours_model),
               if (inherits(ref_model, "lm")) coef(ref_model) else lme4::fixef(ref_model),
               tolerance = 1e-6)
  expect_equal(as.matrix(attr(ours, "drop1")), as.matrix(attr(ref, "drop1")),
               tolerance = tolerance, ignore_attr = TRUE)
}

sleep <- lme4::sleepstudy
set.seed(3)
sleep$z <- stats::rnorm(nrow(sleep))
sleep$f <- factor(sample(c("a", "b"), nrow(sleep), TRUE))
sleep$g <- factor(sample(1:6, nrow(sleep), TRUE))

test_that("step() eliminates random and fixed terms as lmerTest's step()", {
  form <- Reaction ~ Days * f + z + (Days | Subject) + (1 | g)
  fit <- lmm(form, sleep)
  ref <- suppressMessages(lmerTest_full(form, sleep))
  ours <- step(fit)
  expect_same_step(ours, suppressMessages(lmerTest::step(ref)))
  # (1 | g) and three fixed terms go, in lmerTest's order
  expect_identical(rownames(ours$random)[ours$random$Eliminated %in% 1], "(1 | g)")
  expect_identical(rownames(ours$fixed)[ours$fixed$Eliminated > 0], c("z", "Days:f", "f"))
  expect_output(print(ours), "Model found:\nReaction ~ Days \\+ \\(Days \\| Subject\\)")
})

test_that("step() takes lmerTest's options: terms kept, parts not reduced, thresholds, ddf", {
  # (without (1 | g), whose variance is so flat near 0 once fixed terms are
  # kept that the fits' sds differ at 1e-6 of the log-likelihood, ours the
  # higher)
  form <- Reaction ~ Days * f + z + (Days | Subject)
  fit <- lmm(form, sleep)
  # the data put into lmerTest's call: its refits look the name up elsewhere
  ref <- suppressMessages(eval(bquote(lmerTest_full(.(form), .(sleep)))))
  for (args in list(list(keep = c("z", "Days:f")), list(reduce.random = FALSE),
                    list(reduce.fixed = FALSE), list(alpha.random = 1e-12, alpha.fixed = 0.2),
                    list(ddf = "Kenward-Roger"))) {
    expect_same_step(suppressMessages(do.call(step, c(list(fit), args))),
                     suppressMessages(do.call(lmerTest::step, c(list(ref), args))))
  }
})

test_that("step() of lmerTest's sensory example (ham) reaches lmerTest's model", {
  ham <- lmerTest::ham
  form <- Informed.liking ~ Product * Information * Gender + (1 | Product:Consumer) +
    (1 | Consumer)
  fit <- lmm(form, ham)
  ref <- suppressMessages(lmerTest_full(form, ham))
  expect_same_step(step(fit), lmerTest::step(ref))
})

test_that("step() goes on with lm() once every random-effects term is eliminated", {
  set.seed(5)
  d <- data.frame(x = stats::rnorm(60), h = stats::rnorm(60), g = factor(rep(1:10, 6)))
  d$y <- d$x + stats::rnorm(60)
  for (reml in c(TRUE, FALSE)) {
    fit <- lmm(y ~ x + h + (1 | g), d, REML = reml)
    # (lme4's bobyqa warns at the singular optimum it reaches)
    # (the data put into lmerTest's call: its lm() refit looks the name up in
    # lmerTest's namespace)
    ref <- suppressWarnings(suppressMessages(
      eval(bquote(lmerTest_full(y ~ x + h + (1 | g), .(d), REML = .(reml))))))
    ours <- suppressMessages(step(fit))
    expect_s3_class(get_model(ours), "lm")
    expect_same_step(ours, suppressMessages(lmerTest::step(ref)), tolerance = 1e-7)
  }
})

test_that("step() keeps a structured term as written and removes it whole", {
  set.seed(11)
  d <- expand.grid(t = factor(1:4), s = factor(1:15))
  d$x <- stats::rnorm(nrow(d))
  d$z <- stats::rnorm(nrow(d))
  d$y <- 1 + 0.5 * d$x + stats::rnorm(15)[d$s] + stats::rnorm(nrow(d))
  ours <- suppressMessages(step(lmm(y ~ x + z + cs(0 + t | s) + (1 | t), d)))
  expect_identical(rownames(ours$random), c("<none>", "(1 | t)", "cs(0 + t | s)"))
  expect_identical(rownames(ours$fixed), c("z", "x"))
  # (stats::update() would write the term as (cs(0 + t | s)))
  expect_identical(deparse1(formula(get_model(ours))), "y ~ x + cs(0 + t | s)")
  expect_identical(deparse1(attr(ranova(lmm(y ~ x + cs(0 + t | s) + (1 | t), d)), "formulae")[[2]]),
                   "y ~ x + cs(0 + t | s)")
})

test_that("step() refits in the caller's frame, and other models go to stats::step()", {
  local_fit <- function() {
    local_data <- sleep
    step(lmm(Reaction ~ Days + z + (Days | Subject), local_data))
  }
  expect_identical(deparse1(formula(get_model(local_fit()))), "Reaction ~ Days + (Days | Subject)")
  lm_step <- function() {
    local_data <- sleep
    step(stats::lm(Reaction ~ Days + z, local_data), trace = 0)
  }
  expect_equal(coef(lm_step()), coef(stats::lm(Reaction ~ Days, sleep)))
  ref <- suppressMessages(lmerTest_full(Reaction ~ Days + z + (Days | Subject), sleep))
  ours <- step(ref)
  expect_s3_class(ours, "step_list")
  expect_identical(ours[c("random", "fixed")], lmerTest::step(ref)[c("random", "fixed")])
})

test_that("step() stops with the cause on models and arguments it cannot use", {
  fit <- lmm(Reaction ~ Days + z + (Days | Subject), sleep)
  expect_error(step(fit, keep = "q"), "'keep' must name fixed-effects terms of the model \\('Days', 'z'\\), not 'q'")
  expect_error(step(fit, type = 3), "step\\(\\) does not use the argument\\(s\\) 'type'")
  expect_error(step(fit, alpha.fixed = 2), "'alpha.fixed' must be a number between 0 and 1")
  expect_error(step(fit, alpha.random = NA), "'alpha.random' must be a number between 0 and 1")
  expect_error(step(fit, reduce.fixed = "yes"), "'reduce.fixed' must be TRUE or FALSE")
  expect_error(step(fit, ddf = "lme4"), "'arg' should be one of")
  gfit <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), lme4::cbpp,
               family = binomial)
  expect_error(step(gfit), "for a glmm\\(\\) fit compare terms with drop1")
})
