# The hypothesis (contrast) matrices behind the rows of a table of tests,
# lmerTest's show_tests(): the attribute "hypotheses" that anova(),
# drop1(), ls_means() and difflsmeans() give their tables.

#' The contrast matrices of a table of tests
#'
#' lmerTest's `show_tests()`: the hypothesis matrices behind the rows of a
#' table from [anova.lmm()], [drop1.lmm()], [ls_means()] or
#' [difflsmeans()], one per row (term, mean or difference), each row of a
#' matrix a contrast of the fixed effects.
#'
#' @param object A table with a `"hypotheses"` attribute.
#' @param fractions Logical: show the matrices as fractions
#'   (`MASS::fractions()`).
#' @param names Logical: keep the matrices' row and column names.
#' @param ... Not used; an argument given here is an error.
#' @return A named list of matrices.
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' cake <- lme4::cake
#' fit <- lmm(angle ~ recipe * temperature + (1 | recipe:replicate), cake)
#' show_tests(anova(fit))$recipe
#' show_tests(ls_means(fit, which = "recipe"), fractions = TRUE)
#' @export
show_tests <- function(object, fractions = FALSE, names = TRUE, ...) {
  UseMethod("show_tests")
}

#' @rdname show_tests
#' @export
show_tests.default <- function(object, fractions = FALSE, names = TRUE, ...) {
  check_no_dots(..., caller = "show_tests()")
  check_flag(fractions, "fractions", "show_tests()")
  check_flag(names, "names", "show_tests()")
  tests <- attr(object, "hypotheses")
  if (is.null(tests)) {
    stop("show_tests(): 'object' has no \"hypotheses\" attribute: give it a table from ",
         "anova(), drop1(), ls_means() or difflsmeans() of an lmm() fit", call. = FALSE)
  }
  if (fractions) {
    if (!requireNamespace("MASS", quietly = TRUE)) {
      stop("show_tests(fractions = TRUE) needs the MASS package", call. = FALSE)
    }
    tests <- lapply(tests, MASS::fractions)
  }
  if (!names) tests <- lapply(tests, unname)
  tests
}
