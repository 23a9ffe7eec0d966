# Methods for lmerTest's generics step(), ls_means(), lsmeansLT(),
# difflsmeans(), contest(), contest1D() and contestMD(), registered when lmerTest's namespace loads
# (delayed registration: nothing happens without it). With lmerTest
# attached after mixedrs, its generics mask ours; these methods send our
# fits on to our functions. (lmerTest's ranova() is not a generic: it
# cannot be given a method.)

#' @rawNamespace S3method(lmerTest::step, lmm)
#' @rawNamespace S3method(lmerTest::step, glmm)
#' @rawNamespace S3method(lmerTest::ls_means, lmm)
#' @rawNamespace S3method(lmerTest::ls_means, glmm)
#' @rawNamespace S3method(lmerTest::lsmeansLT, lmm)
#' @rawNamespace S3method(lmerTest::lsmeansLT, glmm)
#' @rawNamespace S3method(lmerTest::difflsmeans, lmm)
#' @rawNamespace S3method(lmerTest::difflsmeans, glmm)
#' @rawNamespace S3method(lmerTest::contest, lmm)
#' @rawNamespace S3method(lmerTest::contest, glmm)
#' @rawNamespace S3method(lmerTest::contest1D, lmm)
#' @rawNamespace S3method(lmerTest::contest1D, glmm)
#' @rawNamespace S3method(lmerTest::contestMD, lmm)
#' @rawNamespace S3method(lmerTest::contestMD, glmm)
NULL

lsmeansLT.lmm <- function(model, ...) ls_means.lmm(model, ...)

lsmeansLT.glmm <- function(model, ...) ls_means.glmm(model, ...)

difflsmeans.lmm <- function(model, which = NULL, level = 0.95,
                            ddf = c("Satterthwaite", "Kenward-Roger"), ...) {
  ls_means.lmm(model, which = which, level = level, ddf = ddf, pairwise = TRUE, ...)
}

difflsmeans.glmm <- function(model, ...) ls_means.glmm(model, ...)

# Methods that pass the call on, as it was written (so that the function
# sees which arguments were given), to our function `fun`.
passing_to <- function(fun) {
  force(fun)
  function(model, L, ...) {
    call <- match.call()
    call[[1L]] <- fun
    call$model <- model
    eval(call, parent.frame())
  }
}

contest.lmm <- contest.glmm <- passing_to(contest)

contest1D.lmm <- contest1D.glmm <- passing_to(contest1D)

contestMD.lmm <- contestMD.glmm <- passing_to(contestMD)
