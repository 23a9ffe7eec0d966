# The R binding (src/rust/rbind/): the model crosses as one list,
# list(y, X, p, weights, offset, terms), converted once; a malformed list
# names the element, a core error keeps its message, and the inference
# entry points take the list fit_engine_inputs() rebuilds.

ss <- lme4::sleepstudy

test_that("a fit's model list is what the inference entry points take", {
  fit <- lmm(Reaction ~ Days + (Days | Subject), ss)
  model <- fit_engine_inputs(fit)
  expect_named(model, c("y", "X", "p", "weights", "offset", "terms"))
  arrays <- lmm_condvar_rs(model, TRUE, unname(fit$theta), 1L)
  expect_length(arrays, 1L)
  expect_identical(dim(arrays[[1]]), c(2L, 2L, 18L))
  # the criterion at the estimates is the fit's
  X <- fit$X
  storage.mode(X) <- "double"
  dev <- lmm_deviance_rs(as.double(ss$Reaction), X, ncol(X), NULL, NULL, model$terms,
                         TRUE, unname(fit$theta))
  expect_equal(dev, REMLcrit(fit), tolerance = 1e-10)
})

test_that("a malformed model list is an error naming the element", {
  fit <- lmm(Reaction ~ Days + (1 | Subject), ss)
  model <- fit_engine_inputs(fit)
  theta <- unname(fit$theta)
  expect_error(lmm_condvar_rs(model[names(model) != "X"], TRUE, theta, 1L),
               "missing element 'X'")
  bad <- model
  bad$weights <- rep("1", length(model$y))
  expect_error(lmm_condvar_rs(bad, TRUE, theta, 1L), "'weights' must be a double vector")
  bad <- model
  bad$terms[[1]]$codes <- as.double(bad$terms[[1]]$codes)
  expect_error(lmm_condvar_rs(bad, TRUE, theta, 1L), "'codes' must be an integer vector")
  expect_error(lmm_condvar_rs(model, TRUE, theta, -1L),
               "'threads' must be a non-negative whole number")
})

test_that("core errors cross the boundary with their own message", {
  fit <- lmm(Reaction ~ Days + (1 | Subject), ss)
  model <- fit_engine_inputs(fit)
  bad <- model
  # The engine reads the grouping factor's codes (engine_terms() passes the factor).
  bad$terms[[1]]$codes <- as.integer(bad$terms[[1]]$codes)
  bad$terms[[1]]$codes[3] <- 99L
  expect_error(lmm_condvar_rs(bad, TRUE, unname(fit$theta), 1L),
               "grouping factor code 99 at observation 3 is outside 1..18")
  expect_error(lmm_ddf_rs(model, TRUE, unname(fit$theta), fit$sigma, "Welch", 1L),
               "unknown degrees-of-freedom method 'Welch'")
})
