# What bounds the small-model targets of issue 18 (sleepstudy within 0.5 ms of R's own
# model.frame()): the whole lmm() call, model.frame() alone, and a pipeline written for
# sleepstudy's formula only -- its model frame, X from the same Rust routine lmm() uses, Z,
# the engine's fit and a bare object, without reading the formula, lme4's checks or lme4's
# attributes -- side by side in one process (bench::mark, 1,000 calls each), and the share of
# each lmm() call that R's garbage collector takes (gc.time() over 1,000 calls); and the whole
# glmm() call on cbpp, whose target is the glmm crate's fit time (0.5 ms), beside the least
# a fit of that model can do with R's model.frame() and model.matrix(): a pipeline for
# cbpp's formula only (its model frame, X, the response as proportions and trials, Z, the
# engine's fit; no checks, no object). Not part of `make bench`. Run from the repository root after installing the package:
#   Rscript bench/front-end.R
suppressPackageStartupMessages(library(mixedrs))
utils::data(sleepstudy, package = "lme4")  # without loading lme4, whose namespace grows the heap
utils::data(cbpp, package = "lme4")
ns <- asNamespace("mixedrs")
control <- unclass(ns$as_fit_control(ns$default_control("lmm"), "lmm"))

# The pipeline for Reaction ~ Days + (Days | Subject) alone.
bare_fit <- function(data) {
  frame <- stats::model.frame(Reaction ~ Days + Subject, data)
  X <- ns$simple_fixed_matrix(stats::terms(Reaction ~ Days), frame)
  y <- frame[[1L]]
  f <- frame$Subject
  n <- nrow(frame)
  Z <- matrix(c(rep.int(1, n), frame$Days), n, 2L,
              dimnames = list(NULL, c("(Intercept)", "Days")))
  terms <- list(list(codes = f, n_levels = nlevels(f), z = Z, q = 2L, factor_id = 1L))
  raw <- ns$lmm_fit_rs(y, X, 2L, NULL, NULL, terms, TRUE, NULL, control, 0L)
  list(frame = frame, X = X, y = y, Z = Z,
       theta = stats::setNames(raw$theta, c("Subject.(Intercept)", "Subject.Days.(Intercept)",
                                            "Subject.Days")),
       beta = stats::setNames(raw$beta, colnames(X)),
       b = matrix(raw$b[[1L]], nlevels(f), 2L, byrow = TRUE,
                  dimnames = list(levels(f), colnames(Z))),
       sigma = raw$sigma, fitted = raw$fitted)
}
# The pipeline for cbind(incidence, size - incidence) ~ period + (1 | herd), binomial, alone:
# R's model frame and model matrix, and the engine's fit (started as glm's binomial
# initialize starts).
glmm_control <- unclass(ns$as_fit_control(ns$default_control("glmm"), "glmm"))
bare_cbpp_fit <- function(data) {
  frame <- stats::model.frame(cbind(incidence, size - incidence) ~ period + herd, data)
  X <- stats::model.matrix(~ period, frame)
  counts <- frame[[1L]]
  trials <- counts[, 1L] + counts[, 2L]
  y <- counts[, 1L] / trials
  f <- frame$herd
  terms <- list(list(codes = f, n_levels = nlevels(f), z = matrix(1, nrow(frame), 1L),
                     q = 1L, factor_id = 1L))
  eta_start <- stats::qlogis((trials * y + 0.5) / (trials + 1))
  raw <- ns$glmm_fit_rs(y, X, ncol(X), trials, NULL, terms, "binomial", "logit", trials,
                        eta_start, 1L, NULL, NULL, glmm_control, 0L)
  list(frame = frame, X = X, beta = raw$beta, theta = raw$theta)
}
full_cbpp <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
                  family = binomial)
stopifnot(isTRUE(all.equal(bare_cbpp_fit(cbpp)$beta, unname(fixef(full_cbpp)),
                           tolerance = 1e-6)))

full <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
bare <- bare_fit(sleepstudy)
stopifnot(isTRUE(all.equal(unname(bare$beta), unname(fixef(full)), tolerance = 1e-10)))

# The collector first, in a fresh process (bench::mark's thousands of calls grow R's heap,
# after which it collects less often).
for (i in 1:50) lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
gc_before <- gc.time()[[1L]]
t0 <- proc.time()[["elapsed"]]
for (i in 1:1000) lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
cat(sprintf("lmm(): %.3f ms a call, of which R's garbage collector %.3f ms (gc.time())\n",
            (proc.time()[["elapsed"]] - t0), gc.time()[[1L]] - gc_before))

timings <- bench::mark(
  `lmm()` = lmm(Reaction ~ Days + (Days | Subject), sleepstudy),
  `model.frame()` = stats::model.frame(Reaction ~ Days + Subject, sleepstudy),
  `sleepstudy-only pipeline` = bare_fit(sleepstudy),
  # cbpp's target is the glmm crate's fit time (0.5 ms) for the whole call
  `glmm() on cbpp` = glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                          cbpp, family = binomial),
  `cbpp-only pipeline` = bare_cbpp_fit(cbpp),
  check = FALSE, min_iterations = 1000)
ms <- function(x) sprintf("%.3f", as.numeric(x) * 1e3)
print(data.frame(call = as.character(timings$expression), min_ms = ms(timings$min),
                 median_ms = ms(timings$median)), row.names = FALSE)
