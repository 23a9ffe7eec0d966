# Model-frame stage: from the matched call of lmm() to validated model
# inputs: one model frame over every variable, the response, the fixed-effects
# matrix X, prior weights, offset, and per random-effects term its grouping
# factor and its columns. Model frames and matrices come from R's own
# model.frame()/model.matrix(); this file adds lme4's term handling and the
# checks, with errors that name the variable at fault.

#' Build and check the inputs of a linear or generalized linear mixed model
#'
#' @param mc the matched call of `lmm()` or `glmm()`; its `formula`, `data`,
#'   `subset`, `weights`, `offset` and `na.action` are used. `subset`,
#'   `weights` and `offset` are evaluated in `data`, then in the formula's
#'   environment, as `model.frame()` does.
#' @param env environment the call was made from (where `data` is found).
#' @param control an `lmmControl` or `glmmControl` object; its `check.*`
#'   fields set what the checks do.
#' @param family `NULL` for a linear mixed model; for a GLMM a family object
#'   (or anything [resolve_family()] accepts). With a family the response is
#'   processed by [glmm_response()] (so it may be a factor, logical or
#'   `cbind(successes, failures)`), and a grouping factor may have as many
#'   levels, and a term as many random effects, as there are observations
#'   (lme4's `allow.n = TRUE` for glmer).
#' @param response `NULL`, or for a family that [glmm_response()] does not
#'   know (glmmTMB's families) a function of the model frame, the prior
#'   weights (or `NULL`) and `list(mustart, etastart)` returning what
#'   [glmm_response()] returns (`y`, `weights`, `n`, `mustart`, `etastart`).
#' @param extra_vars names of variables the model frame must also hold (those
#'   of glmm()'s `ziformula` and `dispformula`).
#' @param data the value of the call's `data` argument, when the caller has
#'   evaluated it already (so that it is evaluated once); by default
#'   [data_value()] evaluates it.
#' @return A list with `formula`, `model_formula` (`formula` with a `.`
#'   written out as the data's other columns, see [expand_dot()]; `formula`
#'   itself without one), `frame`, `y`, `X`, `fixed_formula`,
#'   `weights`, `offset`, `reterms`, `flist` and `na.action`. With a family,
#'   `y` is the response as fitted (e.g. proportions), `weights` the prior
#'   weights after the family's `initialize` (never `NULL`; times the trials
#'   for `cbind()` responses), and the list ends with `n_trials`, `mustart`,
#'   `etastart` and `family`.
#' @noRd
lmm_inputs <- function(mc, env, control, family = NULL, response = NULL,
                       extra_vars = NULL, data = data_value(mc, env)) {
  if (is.null(mc$formula)) {
    stop("argument 'formula' is missing: give a formula such as ",
         "y ~ x + (1 | group)", call. = FALSE)
  }
  # A formula written in the call (`y ~ x + (1 | g)`) evaluates to itself
  # without error, and skips tryCatch()'s cost.
  formula <- if (is_call_to(mc$formula, "~")) eval(mc$formula, env) else
    tryCatch(eval(mc$formula, env), error = function(e) {
      stop("could not evaluate 'formula' (", deparse1(mc$formula), "): ",
           conditionMessage(e), call. = FALSE)
    })
  if (!is.null(family) && !inherits(family, "family")) {
    family <- resolve_family(family, env)
  }
  formula <- lmm_formula(formula, env)
  parsed <- parse_lmm_formula(formula)
  data <- lmm_data(data)
  # A `.` is read as the data's other columns; the model is built from that
  # formula (kept as `model_formula`), the fit shows the formula as written.
  model_formula <- expand_dot(formula, data)
  if (!identical(model_formula, formula)) {
    parsed <- parse_lmm_formula(model_formula)
    parsed$formula <- formula
  }
  if (length(extra_vars) > 0L) {
    parsed$frame_formula <- add_frame_variables(parsed$frame_formula, extra_vars)
  }
  frame <- simple_call_frame(parsed$frame_formula, data, mc)
  if (is.null(frame)) {
    check_variables(parsed, data, mc)
    frame <- lmm_frame(parsed$frame_formula, data, mc, env)
  }
  # glmer's starting values, evaluated in the data like the weights and
  # taken out of the frame.
  user_start <- list(mustart = NULL, etastart = NULL)
  if (any(c("(mustart)", "(etastart)") %in% names(frame))) {
    user_start <- list(mustart = stats::model.extract(frame, "mustart"),
                       etastart = stats::model.extract(frame, "etastart"))
    frame[["(mustart)"]] <- NULL
    frame[["(etastart)"]] <- NULL
  }
  # The fixed part's terms, read by the frame's annotation and by X's builder.
  fixed_terms <- stats::terms(parsed$fixed_formula)
  frame <- annotate_frame(frame, parsed, mc, expand = is.null(family), fixed_terms)
  n <- nrow(frame)
  if (is.null(family)) {
    y <- frame_response(frame)
    weights <- frame_weights(frame)
  } else if (!is.null(response)) {
    resp <- response(frame, frame_weights(frame, zero_ok = TRUE), user_start)
    y <- resp$y
    weights <- resp$weights
  } else {
    not_const <- control$check.response.not.const
    resp <- glmm_response(frame, family, frame_weights(frame, zero_ok = TRUE),
                          if (is.null(not_const)) "stop" else not_const,
                          mustart = user_start$mustart,
                          etastart = user_start$etastart)
    y <- resp$y
    weights <- resp$weights
  }
  offset <- frame_offset(frame)
  reterms <- order_reterms(Map(make_reterm, parsed$bars, parsed$structures,
                              MoreArgs = list(frame = frame, env = environment(formula))))
  flist <- make_flist(reterms)
  check_grouping(flist, reterms, n, control, allow_n = !is.null(family))
  X <- checked_fixed_matrix(parsed$fixed_formula, frame, fixed_contrasts(mc, env), control,
                            fixed_terms)
  if (!is.null(family)) {
    check_weighted_rows(X, if (is.null(resp$n)) weights else weights * resp$n)
  }
  out <- list(formula = formula, model_formula = model_formula, frame = frame, y = y, X = X,
              fixed_formula = parsed$fixed_formula, weights = weights,
              offset = offset, reterms = reterms, flist = flist,
              na.action = attr(frame, "na.action"))
  if (is.null(family)) return(out)
  c(out, list(n_trials = resp$n, mustart = resp$mustart,
              etastart = resp$etastart, family = family))
}

# `formula` with the variables named `vars` added to its right-hand side, so
# that the model frame also holds the variables of other formulas of the
# model (glmm()'s zero-inflation and dispersion formulas) and its na.action
# drops the same rows for all of them.
add_frame_variables <- function(formula, vars) {
  rhs <- formula[[length(formula)]]
  for (v in setdiff(vars, all.vars(formula))) rhs <- call("+", rhs, as.name(v))
  formula[[length(formula)]] <- rhs
  formula
}

# The value of the call's `data` argument (NULL when there is none); a name
# that is not found, or an error in evaluating it, is reported as lme4 words
# it ("'data' not found", "bad 'data': ..."), with the expression.
data_value <- function(mc, env) {
  if (is.null(mc$data)) return(NULL)
  # (evaluated, not looked up with exists(): called through lapply() the
  # argument is `..2`, which only evaluation finds)
  tryCatch(eval(mc$data, env), error = function(e) {
    name <- if (is.name(mc$data)) as.character(mc$data) else ""
    if (nzchar(name) && identical(conditionMessage(e), sprintf("object '%s' not found", name))) {
      stop("'data' not found: there is no object '", name, "'", call. = FALSE)
    }
    stop("bad 'data': ", conditionMessage(e), " (evaluating ", deparse1(mc$data), ")",
         call. = FALSE)
  })
}

# Checks that the `data` argument's value (data_value()) is a data frame (or
# NULL). Subclasses such as tibbles become plain data frames; the caller's
# object is not touched.
lmm_data <- function(data) {
  if (is.null(data)) return(NULL)
  if (!is.data.frame(data)) {
    stop("'data' must be a data frame, not ", describe_class(data),
         call. = FALSE)
  }
  if (nrow(data) == 0L) {
    stop("'data' has no rows: there are no observations to fit",
         call. = FALSE)
  }
  if (identical(oldClass(data), "data.frame")) data else as.data.frame(data)
}

# A model formula `y ~ . - g + (1 | g)` with its `.` written out as the
# columns of `data` other than those on the left, as terms() and
# model.frame() read a `.` (`y ~ (g + x) - g + (1 | g)`), so that the fixed
# part's model matrix and the predictions' designs can be built without the
# data; lme4 expands it against the model frame. A formula without `.` is
# returned as it is; a `.` without `data` is an error.
expand_dot <- function(formula, data) {
  if (!any(all.names(formula[[3L]]) == ".")) return(formula)
  if (is.null(data)) {
    stop("the formula ", deparse1(formula), " uses '.' (all other columns ",
         "of the data), which needs the 'data' argument", call. = FALSE)
  }
  expanded <- stats::formula(stats::terms(formula, data = data))
  attributes(expanded) <- attributes(formula)
  expanded
}

# Checks, before model.frame() runs, that every variable of the formula and
# of `weights`, `offset` and `subset` is a column of `data` or an object (not
# a function) in the formula's environment; errors name the missing ones.
check_variables <- function(parsed, data, mc) {
  fenv <- environment(parsed$formula)
  # (a function is a variable of the formula only by mistake, but an
  # argument of a call in mustart and the like can name one: family = Gamma)
  missing_vars <- function(expr, functions_ok = FALSE) {
    vars <- setdiff(referenced_variables(expr), c(".", names(data)))
    found <- vapply(vars, function(v) {
      obj <- get0(v, envir = fenv, inherits = TRUE)
      !is.null(obj) && (functions_ok || !is.function(obj))
    }, logical(1))
    vars[!found]
  }
  where <- if (is.null(data)) "the formula's environment" else
    "'data' or the formula's environment"
  # The frame formula holds every variable of the bars: only when some of
  # its variables are missing is the term that uses them looked for.
  bad <- missing_vars(parsed$frame_formula)
  if (length(bad)) {
    for (bar in parsed$bars) {
      bad_bar <- missing_vars(bar)
      if (length(bad_bar)) {
        stop("variable ", quote_names(bad_bar), " in random-effects term (",
             deparse1(bar), ") not found in ", where, call. = FALSE)
      }
    }
    one <- length(bad) == 1L
    stop(if (one) "object " else "objects ", quote_names(bad), " not found (",
         if (one) "variable " else "variables ", quote_names(bad),
         " of the formula, looked for in ", where, ")", call. = FALSE)
  }
  for (arg in c("weights", "offset", "subset", "mustart", "etastart")) {
    bad <- if (is.null(mc[[arg]])) character() else missing_vars(mc[[arg]], functions_ok = TRUE)
    if (length(bad)) {
      stop("variable ", quote_names(bad), " used in '", arg, "' not found in ",
           where, call. = FALSE)
    }
  }
  invisible(NULL)
}

# The names an expression looks up as variables: all.vars() without the
# element names of `$` and `@` (in `fit$eta` only `fit` is a variable, as
# model.frame() evaluates it).
referenced_variables <- function(expr) {
  if (is.name(expr)) {
    name <- as.character(expr)
    return(if (nzchar(name)) name else character())
  }
  if (!is.call(expr)) return(character())
  fun <- expr[[1L]]
  if (identical(fun, as.name("$")) || identical(fun, as.name("@"))) {
    return(referenced_variables(expr[[2L]]))
  }
  args <- as.list(expr)[-1L]
  # (the function position is not a variable, as for all.vars())
  unique(unlist(lapply(args, referenced_variables), use.names = FALSE))
}

# Quotes and joins names for messages: 'a', 'b'.
quote_names <- function(x) paste0("'", x, "'", collapse = ", ")

# Builds the model frame with one stats::model.frame() call made from the
# matched call (data, subset, weights, offset, na.action), dropping unused
# factor levels (by drop_unused_levels(), as drop.unused.levels = TRUE
# does). Stops when no rows are left.
lmm_frame <- function(frame_formula, data, mc, env) {
  mf <- mc[c(1L, match(frame_arguments, names(mc), 0L))]
  mf[[1L]] <- quote(stats::model.frame)
  mf$formula <- frame_formula
  eval_env <- new.env(parent = env)
  if (!is.null(data)) {
    assign(".lmm_data", data, envir = eval_env)
    mf$data <- quote(.lmm_data)
  }
  build <- function(call) {
    tryCatch(drop_unused_levels(eval(call, eval_env)), error = function(e) {
      stop("could not build the model frame: ", conditionMessage(e),
           call. = FALSE)
    })
  }
  # With the default na.action (na.omit, na.exclude or na.fail) a frame
  # without missing values is the one na.pass gives, and na.pass skips
  # na.omit()'s copy of the frame (VerbAgg: 0.12 ms instead of 0.68 for
  # model.frame()); only where some value is missing does the frame get
  # built again with the na.action itself.
  checked_na <- is.null(mc$na.action) && default_na_action_is_standard(data)
  if (checked_na) mf$na.action <- quote(stats::na.pass)
  frame <- build(mf)
  if (checked_na) {
    if (frame_has_missing(frame)) {
      mf$na.action <- NULL
      frame <- build(mf)
    } else {
      frame <- na_omit_attribute_order(frame)
    }
  }
  if (nrow(frame) == 0L) {
    stop("no observations left after 'subset' and removal of rows with ",
         "missing values (na.action): check the data and 'subset'",
         call. = FALSE)
  }
  frame
}

# The arguments of the call that lmm_frame() passes to model.frame().
frame_arguments <- c("subset", "weights", "na.action", "offset", "mustart", "etastart")

# The model frame of a call without any of frame_arguments, on `data` whose
# default na.action leaves a frame without missing values as it is, when
# simple_model_frame() can build it (its variables are then all columns of
# `data`, so check_variables() has nothing to find); NULL otherwise.
simple_call_frame <- function(frame_formula, data, mc) {
  if (is.null(data) || any(match(frame_arguments, names(mc), 0L) > 0L) ||
      !default_na_action_is_standard(data)) {
    return(NULL)
  }
  simple_model_frame(frame_formula, data)
}

# The model frame stats::model.frame(frame_formula, data) gives (after
# drop_unused_levels()) when every variable of the formula is a column of
# `data` named by a symbol, or a call of pure functions (pure_frame_functions)
# of such columns, each holding a plain vector (double, integer, logical or
# character without attributes), a plain factor (class "factor" or
# c("ordered", "factor"), no attribute but its levels) or a plain numeric
# matrix (such as `cbind(successes, failures)`), none with a missing value,
# and the call has no subset, weights, offset or na.action: then model.frame()
# takes the values as they are, its na.action has nothing to remove and the
# predvars are the variables (makepredictcall() only changes calls whose
# values carry attributes). Built directly, it costs 0.04 ms instead of
# model.frame()'s 0.13 ms (sleepstudy), most of a small model's front end;
# identical to model.frame()'s, attributes and their order included
# (tests/testthat/test-fast-paths.R). NULL in any other case (also when
# evaluating a call fails or warns), which then goes through model.frame().
simple_model_frame <- function(frame_formula, data) {
  # A formula terms() rejects is left to model.frame()'s error.
  tt <- tryCatch(stats::terms(frame_formula, data = data), error = function(e) NULL)
  if (is.null(tt)) return(NULL)
  vars <- attr(tt, "variables")
  k <- length(vars) - 1L
  n <- .row_names_info(data, 2L)
  columns <- vector("list", k)
  col_names <- character(k)
  classes <- character(k)
  unused_levels <- FALSE
  for (i in seq_len(k)) {
    v <- vars[[i + 1L]]
    if (is.symbol(v)) {
      name <- as.character(v)
      x <- .subset2(data, name)
    } else {
      name <- deparse1(v)
      x <- pure_call_value(v, data, environment(tt))
    }
    cls <- plain_frame_class(x)
    if (is.null(cls) || NROW(x) != n || anyNA(x)) return(NULL)
    if ((cls == "factor" || cls == "ordered") && has_unused_levels(x)) unused_levels <- TRUE
    columns[[i]] <- x
    col_names[i] <- name
    classes[i] <- cls
  }
  if (anyDuplicated(col_names)) return(NULL)
  names(columns) <- col_names
  names(classes) <- col_names
  attr(tt, "predvars") <- vars
  attr(tt, "dataClasses") <- classes
  attr(columns, "terms") <- tt
  attr(columns, "row.names") <- .row_names_info(data, 0L)
  class(columns) <- "data.frame"
  if (unused_levels) columns <- drop_unused_levels(columns)
  columns
}

# Functions whose calls simple_model_frame() evaluates itself: pure ones,
# which model.frame() may evaluate again should the direct frame not apply.
pure_frame_functions <- c("cbind", "+", "-", "*", "/", "^", "(", "log", "exp", "sqrt",
                          "log1p", "log2", "log10", "abs")

# The value of call `v` of pure_frame_functions whose variables are all
# columns of `data`, evaluated as model.frame() evaluates it (in `data`, then
# `env`); NULL for any other call, or when the evaluation fails or warns.
pure_call_value <- function(v, data, env) {
  vars <- all.vars(v)
  if (!all(setdiff(all.names(v), vars) %in% pure_frame_functions) ||
      !all(vars %in% names(data))) {
    return(NULL)
  }
  warned <- FALSE
  value <- tryCatch(withCallingHandlers(eval(v, data, env), warning = function(w) {
    warned <<- TRUE
    invokeRestart("muffleWarning")
  }), error = function(e) NULL)
  if (warned) NULL else value
}

# The class model.frame() records for a value it takes as it is
# (stats::.MFclass()): "numeric", "logical" or "character" for a double,
# integer, logical or character vector without attributes, "factor" or
# "ordered" for a factor whose only attributes are its levels and class
# ("factor" or c("ordered", "factor")), "nmatrix.<columns>" for a double or
# integer matrix with no attributes but its dimensions and names (a logical
# one: "logical"). NULL for any other value.
plain_frame_class <- function(x) {
  at <- attributes(x)
  if (is.null(at)) {
    if (is.double(x) || is.integer(x)) return("numeric")
    if (is.logical(x)) return("logical")
    if (is.character(x)) return("character")
    return(NULL)
  }
  if (is.matrix(x)) {
    if (!all(names(at) %in% c("dim", "dimnames"))) return(NULL)
    if (is.logical(x)) return("logical")
    if (is.double(x) || is.integer(x)) return(paste0("nmatrix.", ncol(x)))
    return(NULL)
  }
  if (length(at) == 2L && typeof(x) == "integer" && is.character(at$levels)) {
    if (identical(at$class, "factor")) return("factor")
    if (identical(at$class, c("ordered", "factor"))) return("ordered")
  }
  NULL
}

# TRUE when model.frame() on `data` without an `na.action` argument would use
# na.omit, na.exclude or na.fail (the option `na.action`, by name or as the
# function, and no na.action attribute of the data that would take its
# place), which leave a frame without missing values as it is.
default_na_action_is_standard <- function(data) {
  naa <- attr(data, "na.action")
  if (!is.null(naa) && mode(naa) != "numeric") return(FALSE)
  opt <- getOption("na.action")
  if (is.character(opt)) return(length(opt) == 1L && opt %in% c("na.omit", "na.exclude", "na.fail"))
  is.function(opt) && (identical(opt, stats::na.omit) || identical(opt, stats::na.exclude) ||
                         identical(opt, stats::na.fail))
}

# TRUE when some atomic column of the frame (as na.omit() looks at them) has
# a missing value.
frame_has_missing <- function(frame) {
  for (x in frame) if (is.atomic(x) && anyNA(x)) return(TRUE)
  FALSE
}

# The frame with its attributes in the order na.omit() leaves them (names,
# terms, row.names, class), so that a frame built with na.pass is identical
# to na.omit's, attributes and their order included.
na_omit_attribute_order <- function(frame) {
  if (!setequal(names(attributes(frame)), c("names", "terms", "row.names", "class"))) {
    return(frame)
  }
  row_names <- .row_names_info(frame, 0L)
  cls <- oldClass(frame)
  class(frame) <- NULL
  attr(frame, "row.names") <- NULL
  attr(frame, "row.names") <- row_names
  class(frame) <- cls
  frame
}

# What model.frame(drop.unused.levels = TRUE) does after building the frame:
# each factor column with levels that no (non-missing) row uses is replaced
# by x[, drop = TRUE], with model.frame()'s warning when that loses the
# factor's contrasts. The unused levels of a plain factor (class "factor" or
# c("ordered", "factor")) are found by counting its codes rather than by
# model.frame()'s unique(x[!is.na(x)]).
drop_unused_levels <- function(frame) {
  for (nm in names(frame)) {
    x <- .subset2(frame, nm)
    if (is.factor(x) && has_unused_levels(x)) {
      ctr <- attr(x, "contrasts")
      frame[[nm]] <- x[, drop = TRUE]
      if (!identical(attr(frame[[nm]], "contrasts"), ctr)) {
        warning(gettextf("contrasts dropped from factor %s due to missing levels",
                         nm), domain = NA, call. = FALSE)
      }
    }
  }
  frame
}

# TRUE when factor `x` has a level that none of its non-missing values takes
# (model.frame()'s test, length(unique(x[!is.na(x)])) < length(levels(x))).
has_unused_levels <- function(x) {
  n_levels <- length(levels(x))
  if (identical(class(x), "factor") || identical(class(x), c("ordered", "factor"))) {
    # every value a valid level (no NA): the counts decide
    counts <- tabulate(x, nbins = n_levels)
    if (sum(counts) == length(x)) return(any(counts == 0L))
  }
  length(unique(x[!is.na(x)])) < n_levels
}

# Adds lme4's attributes to the frame: the formula (with `||` expanded, as
# lmer stores it; glmer keeps it as written: `expand = FALSE`), the
# offset expression, and on its terms the `predvars`/variable names of the
# fixed and the random part (used to rebuild matrices for new data). They are
# picked out of the full frame's `predvars` rather than by building two more
# model frames.
annotate_frame <- function(frame, parsed, mc, expand = TRUE,
                           fixed_terms = stats::terms(parsed$fixed_formula)) {
  attr(frame, "formula") <- if (expand) parsed$expanded_formula else parsed$formula
  attr(frame, "offset") <- mc$offset
  trms <- attr(frame, "terms")
  wanted <- list(fixed = as.list(attr(fixed_terms, "variables"))[-1L],
                 random = random_part_variables(parsed),
                 extras = intersect(c("(weights)", "(offset)"), names(frame)))
  parts <- simple_part_variables(trms, wanted, names(frame))
  if (is.null(parts)) parts <- part_variables(trms, wanted)
  for (nm in names(parts)) attr(trms, nm) <- parts[[nm]]
  attr(frame, "terms") <- trms
  frame
}

# The variables of the random part, the response's and those of the bars, as
# terms() lists them for `response ~ (lhs1 + group1) + ...`. Where the bars
# hold only names, `+` and `:` and the response is a name or a call of
# pure_frame_functions, they are the response and the names in order of
# first appearance, found without terms() (0.009 ms).
random_part_variables <- function(parsed) {
  response <- parsed$formula[[2L]]
  bars <- as.call(c(as.name("list"), parsed$bars))
  names <- all.vars(bars)
  if (all(all.names(bars) %in% c(names, "list", "|", "+", ":"))) {
    if (is.symbol(response)) {
      return(lapply(unique(c(as.character(response), names)), as.name))
    }
    # a call of pure functions, such as cbind(successes, n - successes), is
    # one variable of its own (0.04 ms less on cbpp)
    if (is.call(response) && is.symbol(response[[1L]]) &&
        as.character(response[[1L]]) %in% setdiff(pure_frame_functions, "(")) {
      return(c(list(response), lapply(unique(names), as.name)))
    }
  }
  random_rhs <- Reduce(function(a, b) call("+", a, b), lapply(parsed$bars, bars_to_sums))
  formula_variables(with_rhs(parsed$formula, random_rhs))
}

# The frame terms' attributes `predvars.fixed`, `varnames.fixed` and
# `predvars.random` (a list of the three) for the variables `wanted$fixed`
# and `wanted$random` of the fixed and the random part (`wanted$extras`: the
# frame's "(weights)"/"(offset)" columns, which end varnames.fixed), picked
# out of the predvars of the frame's terms `trms`.
part_variables <- function(trms, wanted) {
  variables <- as.list(attr(trms, "variables"))[-1L]
  frame_vars <- list(
    variables = variables,
    labels = vapply(variables, deparse_var, ""),
    predvars = as.list(attr(trms, "predvars"))[-1L]
  )
  fixed_labels <- variable_labels_in(wanted$fixed, frame_vars)
  list(
    predvars.fixed = subset_predvars(frame_vars, wanted$fixed, fixed_labels),
    varnames.fixed = c(fixed_labels, wanted$extras),
    predvars.random = subset_predvars(frame_vars, wanted$random,
                                      variable_labels_in(wanted$random, frame_vars))
  )
}

# part_variables() where the frame's predvars are its variables (as
# simple_model_frame() leaves them, and model.frame() for variables without
# attributes) and every variable of both parts is one of the frame's: each
# part's predvars are then its variables, and its labels the names of their
# columns (model.frame() names a column by its deparsed variable), found
# without deparsing (tests/testthat/test-fast-paths.R checks the two agree).
# NULL otherwise.
simple_part_variables <- function(trms, wanted, frame_names) {
  variables <- attr(trms, "variables")
  if (!identical(attr(trms, "predvars"), variables)) return(NULL)
  variables <- as.list(variables)[-1L]
  labels_of <- function(vars) {
    out <- character(length(vars))
    for (j in seq_along(vars)) {
      v <- vars[[j]]
      if (is.symbol(v)) {
        out[j] <- as.character(v)
        next
      }
      idx <- 0L
      for (i in seq_along(variables)) {
        if (identical(v, variables[[i]])) {
          idx <- i
          break
        }
      }
      if (idx == 0L) return(NULL)
      out[j] <- frame_names[idx]
    }
    out
  }
  fixed_labels <- labels_of(wanted$fixed)
  if (is.null(fixed_labels) || is.null(labels_of(wanted$random))) return(NULL)
  list(
    predvars.fixed = as.call(c(quote(list), wanted$fixed)),
    varnames.fixed = c(fixed_labels, wanted$extras),
    predvars.random = as.call(c(quote(list), wanted$random))
  )
}

# deparse1() of a variable of a formula: a symbol deparses to its name (as
# model.frame() names its column), so only calls go through deparse1().
deparse_var <- function(x) {
  if (is.symbol(x)) as.character(x) else deparse1(x)
}

# deparse_var() of each of `wanted`, reusing the label of an identical
# variable of the frame (`frame_vars` as in annotate_frame()) rather than
# deparsing the same call again.
variable_labels_in <- function(wanted, frame_vars) {
  vapply(wanted, function(v) {
    if (is.symbol(v)) return(as.character(v))
    for (i in seq_along(frame_vars$variables)) {
      if (identical(v, frame_vars$variables[[i]])) return(frame_vars$labels[[i]])
    }
    deparse1(v)
  }, "")
}

# The variables of a formula (as terms() lists them) as a list of symbols
# and calls.
formula_variables <- function(formula) {
  as.list(attr(stats::terms(formula), "variables"))[-1L]
}

# The `predvars` call of the model frame restricted to the variables
# `wanted` (deparsed: `labels`). `frame_vars` holds the deparsed variables of
# the frame's terms (`labels`) and their `predvars` as a list.
subset_predvars <- function(frame_vars, wanted, labels) {
  idx <- match(labels, frame_vars$labels)
  picked <- wanted
  found <- which(!is.na(idx))
  picked[found] <- frame_vars$predvars[idx[found]]
  as.call(c(quote(list), unname(picked)))
}

# Numeric response (a double vector without names) with finite values.
frame_response <- function(frame) {
  y <- response_values(frame)
  name <- names(frame)[attr(attr(frame, "terms"), "response")]
  if (is.matrix(y) && ncol(y) != 1L) {
    stop("response '", name, "' must be a single numeric variable, not a ",
         "matrix with ", ncol(y), " columns", call. = FALSE)
  }
  if (!is.numeric(y) || is.factor(y)) {
    stop("response '", name, "' must be numeric, not ",
         class(y)[1L], if (is.logical(y)) " (use as.numeric())",
         call. = FALSE)
  }
  y <- as.double(y)
  stop_if_nonfinite(y, paste0("response '", name, "'"))
  y
}

# model.response(frame) without the names it copies from the row names
# (which the response as fitted drops again, and which on large data would
# turn every row name into a string): the first column when the terms have a
# response, a one-column matrix turned into a vector; NULL without response.
response_values <- function(frame) {
  if (!attr(attr(frame, "terms"), "response")) return(NULL)
  y <- .subset2(frame, 1L)
  if (is.matrix(y) && ncol(y) == 1L) dim(y) <- NULL
  y
}

# The error for non-finite values in the columns `columns` of the random-effects
# term `term` (lme4's "NA in Z" first).
stop_nonfinite_z <- function(term, columns) {
  stop("NA in Z (the random-effects model matrix): term (", term, "), column ",
       quote_names(columns), " has non-finite values (NA, NaN or Inf)", call. = FALSE)
}

# Stops when `x` has NA, NaN or Inf values; `what` names it.
stop_if_nonfinite <- function(x, what) {
  bad <- sum(!is.finite(x))
  if (bad > 0L) {
    # (lme4's wording for the response first)
    stop(if (startsWith(what, "response")) "NA/NaN/Inf in 'y': ",
         what, " has ", bad, " non-finite value", if (bad > 1L) "s",
         " (NA, NaN or Inf) after na.action; remove or fix those rows",
         call. = FALSE)
  }
  invisible(x)
}

# Prior weights from the frame: NULL when none were given, otherwise a
# finite, positive double vector (with `zero_ok`, non-negative: a GLMM's row
# of weight 0 adds nothing to the likelihood, as in glm() and glmer()).
frame_weights <- function(frame, zero_ok = FALSE) {
  w <- stats::model.weights(frame)
  if (is.null(w)) return(NULL)
  if (!is.numeric(w) || is.matrix(w)) {
    stop("'weights' must be a numeric vector, not ", class(w)[1L],
         call. = FALSE)
  }
  w <- as.double(w)
  stop_if_nonfinite(w, "'weights'")
  if (any(w < 0)) {
    stop("'weights' must not be negative (", sum(w < 0),
         " negative values)", call. = FALSE)
  }
  if (!zero_ok && any(w == 0)) {
    stop("zero 'weights' are not supported by a linear mixed model (", sum(w == 0),
         " zero values; its likelihood holds log(w), and lme4 reports -Inf): ",
         "drop those rows from the data or use 'subset'", call. = FALSE)
  }
  w
}

# A GLMM's rows of prior weight 0 (given as weights, or binomial rows of zero
# trials: `weights` here are the prior weights times the trials) add nothing to its likelihood, as in glm() and glmer(); stops when
# no row is left, or when the rows left cannot estimate every fixed effect
# (glmer's error there, "Downdated VtV is not positive definite", does not
# say why).
check_weighted_rows <- function(X, weights) {
  if (is.null(weights) || all(weights > 0)) return(invisible(NULL))
  used <- weights > 0
  if (!any(used)) {
    stop("every row has prior weight 0 (zero 'weights', or binomial rows of zero trials): ",
         "there is nothing to fit", call. = FALSE)
  }
  if (ncol(X) == 0L) return(invisible(NULL))
  dec <- qr(X[used, , drop = FALSE], tol = 1e-7, LAPACK = FALSE)
  if (dec$rank < ncol(X)) {
    idle <- colnames(X)[dec$pivot[(dec$rank + 1L):ncol(X)]]
    stop("the rows of positive prior weight cannot estimate every fixed effect: ",
         ngettext(length(idle), "column ", "columns "), quote_names(idle),
         " of the fixed-effects matrix ", ngettext(length(idle), "is", "are"),
         " collinear with the others on them (", sum(!used), " of ", length(used),
         " rows have weight 0: zero 'weights', or binomial rows of zero trials); ",
         "remove the term or those rows", call. = FALSE)
  }
  invisible(NULL)
}

# Offset from the frame: the sum of all offset() terms and the `offset`
# argument, or NULL when there is none.
frame_offset <- function(frame) {
  tt <- attr(frame, "terms")
  cols <- c(names(frame)[attr(tt, "offset")],
            intersect("(offset)", names(frame)))
  if (length(cols) == 0L) return(NULL)
  for (col in cols) {
    what <- if (col == "(offset)") "'offset'" else paste0("offset term '", col, "'")
    val <- frame[[col]]
    if (!is.numeric(val) || NCOL(val) != 1L) {
      stop(what, " must be a numeric vector, not ", class(val)[1L],
           call. = FALSE)
    }
    stop_if_nonfinite(val, what)
  }
  as.double(stats::model.offset(frame))
}

# `X` with double storage: `storage.mode<-` copies even a double matrix (with
# its row names: 0.23 ms for VerbAgg's 7,584 x 6 X), so only other types are
# converted.
double_storage <- function(X) {
  if (!is.double(X)) storage.mode(X) <- "double"
  X
}

# Fixed-effects matrix from the fixed formula (offset() terms excluded),
# double, with `assign` and `contrasts` (checked_fixed_matrix() checks it).
# `extra` holds attributes to add after those (the scale check's
# `msgScaleX`): an object made in Rust is copied when R modifies it, so the
# simple path's Rust builder sets every attribute.
fixed_matrix <- function(fixed_formula, frame, contrasts = NULL, extra = list(),
                         terms = stats::terms(fixed_formula)) {
  X <- if (is.null(contrasts)) simple_fixed_matrix(terms, frame, extra)
  if (is.null(X)) {
    X <- tryCatch(stats::model.matrix(fixed_formula, frame, contrasts.arg = contrasts),
                  error = function(e) {
      stop("could not build the fixed-effects model matrix: ", conditionMessage(e),
           call. = FALSE)
    })
    X <- double_storage(X)
    for (nm in names(extra)) attr(X, nm) <- extra[[nm]]
  }
  X
}

# The fixed-effects matrix as the model uses it (lmm_inputs()): fixed_matrix()
# checked as lme4 checks it, in one pass in Rust (fixed_matrix_checks_rs()):
# an error for a column with non-finite values, the rank-deficient columns
# dropped per `control$check.rankX` (drop_deficient_columns()) and the scales
# of the others checked per `control$check.scaleX` (attribute `msgScaleX`, as
# lme4's checkScaleX() sets it).
checked_fixed_matrix <- function(fixed_formula, frame, contrasts, control,
                                 terms = stats::terms(fixed_formula)) {
  scale_level <- control$check.scaleX
  # lme4's attribute (no message: character()) is set as X is made: once X
  # has been to Rust, R would copy it to add one (VerbAgg's X: 1 ms).
  X <- fixed_matrix(fixed_formula, frame, contrasts,
                    extra = if (scale_level != "ignore") list(msgScaleX = character()),
                    terms = terms)
  check_scales <- scale_level != "ignore" && ncol(X) > 0L
  if (!check_scales) attr(X, "msgScaleX") <- NULL
  checks <- fixed_matrix_checks_rs(X)
  if (!all(checks$finite)) {
    stop("fixed-effects column ", quote_names(colnames(X)[!checks$finite]),
         " has non-finite values (NA, NaN or Inf); check the variable(s) ",
         "and transformations it is made from", call. = FALSE)
  }
  X <- drop_deficient_columns(X, control$check.rankX, checks = checks)
  if (check_scales) {
    # The log sds of the columns kept (the QR keeps their order).
    dropped <- attr(X, "col.dropped")
    log_sd <- if (length(dropped)) checks$log_sd[-dropped] else checks$log_sd
    msg <- report_scale(log_sd, scale_level)
    if (length(msg) || length(dropped)) attr(X, "msgScaleX") <- msg
  }
  X
}

# The `contrasts` argument of the call (lme4's): NULL, or a named list of
# contrasts (function names, functions or matrices) for model.matrix()'s
# `contrasts.arg`.
fixed_contrasts <- function(mc, env) {
  if (is.null(mc$contrasts)) return(NULL)
  ctr <- tryCatch(eval(mc$contrasts, env), error = function(e) {
    stop("could not evaluate 'contrasts' (", deparse1(mc$contrasts), "): ",
         conditionMessage(e), call. = FALSE)
  })
  if (is.null(ctr)) return(NULL)
  if (!is.list(ctr) || is.null(names(ctr)) || any(!nzchar(names(ctr)))) {
    stop("'contrasts' must be NULL or a named list such as ",
         "list(f = \"contr.sum\") (one element per factor), not ",
         describe_class(ctr), call. = FALSE)
  }
  ctr
}

# model.matrix(fixed_formula, frame) for a fixed part made only of main
# effects of plain numeric variables (double or integer vectors without
# attributes) and, with an intercept, of factors coded by treatment contrasts
# (the default `options(contrasts =)`, no contrasts of their own), such as
# `y ~ x + z`, `y ~ 1` or `y ~ period + x`: the intercept, then per term its
# values or the indicators of the factor's levels after the first, named and
# assigned as model.matrix() names and assigns them, with the frame's row
# names and the `contrasts` attribute. NULL for any other fixed part
# (interactions, other contrasts, ordered, logical or character variables,
# matrices, non-syntactic names, variables without a column, ...), which then
# goes through model.matrix(). `tt`: the fixed part's terms (or formula).
simple_fixed_matrix <- function(tt, frame, extra = list()) {
  if (!inherits(tt, "terms")) tt <- stats::terms(tt)
  labels <- attr(tt, "term.labels")
  intercept <- attr(tt, "intercept") == 1L
  n_vars <- length(attr(tt, "variables")) - 1L - (attr(tt, "response") > 0L) -
    length(attr(tt, "offset"))
  if ((length(labels) == 0L && !intercept) || n_vars != length(labels) ||
      any(attr(tt, "order") != 1L)) {
    return(NULL)
  }
  n <- .row_names_info(frame, 2L)
  columns <- vector("list", length(labels))
  values <- vector("list", length(labels))
  n_levels <- integer(length(labels))
  for (j in seq_along(labels)) {
    x <- .subset2(frame, labels[j])
    if (length(x) != n) return(NULL)
    if ((is.double(x) || is.integer(x)) && is.null(attributes(x))) {
      columns[[j]] <- labels[j]
    } else if (intercept && treatment_factor(x)) {
      n_levels[j] <- nlevels(x)
      columns[[j]] <- paste0(labels[j], levels(x)[-1L])
    } else {
      return(NULL)
    }
    values[[j]] <- x
  }
  widths <- lengths(columns)
  is_factor <- n_levels > 0L
  attrs <- list(dimnames = list(row.names(frame),
                                c(if (intercept) "(Intercept)", unlist(columns))),
                assign = c(if (intercept) 0L, rep.int(seq_along(labels), widths)))
  if (any(is_factor)) {
    attrs$contrasts <- stats::setNames(
      rep(list("contr.treatment"), sum(is_factor)), labels[is_factor])
  }
  # The columns are filled, and the attributes set, in one pass in Rust
  # (src/rust/model/treatment_matrix.rs); NULL when a factor code is missing
  # or out of range.
  treatment_matrix_rs(values, n_levels, intercept, n, c(attrs, extra))
}

# TRUE for an unordered factor without attributes other than its levels and
# class, with at least two levels (none NA or empty), when the option
# `contrasts` codes unordered factors by "contr.treatment": model.matrix()
# then codes it by stats::contr.treatment().
treatment_factor <- function(x) {
  if (!identical(class(x), "factor")) return(FALSE)
  at <- names(attributes(x))
  if (length(at) != 2L || !all(at %in% c("levels", "class"))) return(FALSE)
  lev <- levels(x)
  if (length(lev) < 2L || anyNA(lev) || !all(nzchar(lev))) return(FALSE)
  identical(as.character(getOption("contrasts"))[1L], "contr.treatment")
}

# Drops columns of a rank-deficient X as lme4 does (pivoted LINPACK QR with
# tolerance 1e-7, keeping the first `rank` pivots) and reports it according
# to check.rankX. Adds attributes `col.dropped` and `msgRankdrop` on drop.
drop_deficient_columns <- function(X, level, tol = 1e-7,
                                   checks = fixed_matrix_checks_rs(X)) {
  p <- ncol(X)
  if (p == 0L || clearly_full_rank(checks$min_cosine_eigenvalue, tol)) return(X)
  dec <- qr(X, tol = tol, LAPACK = FALSE)
  rank <- dec$rank
  if (rank == p) return(X)
  dropped <- dec$pivot[(rank + 1L):p]
  msg <- report_rank_drop(level, rank, p, colnames(X)[dropped])
  keep <- dec$pivot[seq_len(rank)]
  kept <- X[, keep, drop = FALSE]
  if (qr(kept, tol = tol, LAPACK = FALSE)$rank < rank) {
    stop("dropping collinear columns did not give a full-rank ",
         "fixed-effects model matrix", call. = FALSE)
  }
  attr(kept, "contrasts") <- attr(X, "contrasts")
  attr(kept, "assign") <- attr(X, "assign")[keep]
  attr(kept, "msgRankdrop") <- msg
  attr(kept, "col.dropped") <- stats::setNames(dropped, colnames(X)[dropped])
  kept
}

# The error (check.rankX "stop.deficient" or "ignore") or the message or
# warning of a rank-deficient fixed-effects matrix of `p` columns and rank
# `rank`, `dropped_names` the columns set aside; returns the message. Shared
# by the in-memory and the grouped-sums paths (sums_drop_deficient()).
report_rank_drop <- function(level, rank, p, dropped_names) {
  if (level %in% c("stop.deficient", "ignore")) {
    stop("the fixed-effects model matrix is rank deficient (rank(X) = ", rank,
         " < ", p, " columns; X'X is not positive definite), so its ",
         "coefficients cannot all be estimated; ",
         "collinear column(s): ", quote_names(dropped_names),
         ". Remove them or use check.rankX = \"message+drop.cols\"",
         if (level == "ignore") " (check.rankX = \"ignore\" skips dropping them)",
         call. = FALSE)
  }
  msg <- sprintf(ngettext(p - rank,
    "fixed-effect model matrix is rank deficient so dropping %d column / coefficient",
    "fixed-effect model matrix is rank deficient so dropping %d columns / coefficients"),
    p - rank)
  signal_check(switch(level, "message+drop.cols" = "message",
                      "warn+drop.cols" = "warning", "ignore"), msg)
  msg
}

# TRUE when the pivoted QR of drop_deficient_columns() would certainly find
# X of full rank, decided from the p x p cross-product instead of a QR of the
# n x p matrix. That QR sets a column aside when what is left of it after
# projection on the columns before it is shorter than `tol` times its length;
# with the columns scaled to length 1, what is left is at least the smallest
# singular value of the scaled X, the square root of the smallest eigenvalue
# `min_eigenvalue` of its cross-product, the columns' cosine matrix (from
# fixed_matrix_checks_rs(); NA with a zero or non-finite column). Requiring
# that eigenvalue to exceed max(1e-6, (1000 tol)^2) leaves a margin of 1000
# on `tol` and far more than the rounding errors of the matrix. Otherwise
# FALSE, and the QR decides.
clearly_full_rank <- function(min_eigenvalue, tol) {
  isTRUE(min_eigenvalue > max(1e-6, (1000 * tol)^2))
}

# lme4's scale test on the log standard deviations of the non-0/1 columns
# (NA ones left out): signals (per check.scaleX `level`) and returns the
# message, or character() when the scales are acceptable. Shared by the
# in-memory and the grouped-sums paths (sums_check_scale()).
report_scale <- function(log_sd, level, tol = 1000) {
  log_sd <- log_sd[!is.na(log_sd)]
  lim <- log(tol)
  msg <- character()
  if (any(abs(log_sd) > lim) ||
      (length(log_sd) > 1L && isTRUE(diff(range(log_sd)) > lim))) {
    msg <- "Some predictor variables are on very different scales: consider rescaling"
    signal_check(level, msg)
  }
  msg
}

# One random-effects term from a bar call `lhs | group`: its grouping factor
# and the model matrix of its left-hand side over the frame.
make_reterm <- function(bar, structure = list(type = "us", hom = FALSE), frame, env) {
  term <- bar_label(bar)
  Z <- term_matrix(bar[[2L]], frame, term, env)
  rt <- list(group = deparse_var(bar[[3L]]), term = term,
             factor = group_factor(bar[[3L]], frame, term),
             cnms = colnames(Z), Z = Z)
  if (!identical(structure$type, "us")) {
    rt$structure <- structure
    # The engine checks that the structure suits the term (e.g. ar1() needs
    # two columns) and names the term in its error.
    covariance_layout(list(rt))
  }
  rt
}

# deparse1() of a bar `lhs | group` (the term's label), pasted together where
# both sides are syntactic names, the numbers 0 or 1 or sums `0 + x`, `1 + x`
# (a deparse1() takes 0.013 ms, a fifth of a small model's random-effects
# terms); other bars are deparsed.
bar_label <- function(bar) {
  lhs <- simple_label(bar[[2L]], sum_ok = TRUE)
  group <- simple_label(bar[[3L]])
  if (is.null(lhs) || is.null(group)) return(deparse1(bar))
  paste(lhs, "|", group)
}

# The deparsed text of `x` when it is a syntactic name (deparse() writes it as
# it is), 0 or 1 (doubles) or, with `sum_ok`, `0 + name` or `1 + name`;
# otherwise NULL.
simple_label <- function(x, sum_ok = FALSE) {
  if (is.symbol(x)) {
    name <- as.character(x)
    return(if (identical(make.names(name), name)) name)
  }
  if (identical(x, 1)) return("1")
  if (identical(x, 0)) return("0")
  if (sum_ok && is.call(x) && length(x) == 3L && identical(x[[1L]], sym_plus)) {
    first <- simple_label(x[[2L]])
    second <- simple_label(x[[3L]])
    if (!is.null(first) && !is.null(second) && first %in% c("0", "1") &&
        is.symbol(x[[3L]])) {
      return(paste(first, "+", second))
    }
  }
  NULL
}

# Model matrix of a term's left-hand side, taken from the frame's columns
# (model.matrix() matches them by name, so transformations are not redone).
# A plain double matrix with column names. The common left-hand sides `1`,
# `x`, `1 + x` and `0 + x` with a plain numeric column `x` are built
# directly (see simple_term_matrix()); everything else by model.matrix().
term_matrix <- function(lhs, frame, term, env) {
  Z <- simple_term_matrix(lhs, frame, term)
  if (!is.null(Z)) return(Z)
  mm <- stats::model.matrix(stats::as.formula(call("~", lhs), env = env), frame)
  if (ncol(mm) == 0L) {
    stop("random-effects term (", term, ") has no columns: the part before ",
         "'|' must give at least an intercept (1) or a variable", call. = FALSE)
  }
  Z <- matrix(as.double(mm), nrow(mm), ncol(mm),
              dimnames = list(NULL, colnames(mm)))
  if (!all(is.finite(Z))) {
    bad <- colSums(!is.finite(Z)) > 0
    stop_nonfinite_z(term, colnames(Z)[bad])
  }
  Z
}

# The model matrix of a left-hand side `1`, `x`, `1 + x` or `0 + x` where `x`
# names a plain numeric column of the frame (a double or integer vector
# without attributes), built without model.matrix(): a column of ones named
# "(Intercept)" and/or the values of `x` as doubles, exactly what
# term_matrix() gets from model.matrix(). NULL for any other left-hand side,
# which then goes through model.matrix().
simple_term_matrix <- function(lhs, frame, term) {
  intercept <- TRUE
  var <- NULL
  if (is.symbol(lhs)) {
    var <- lhs
  } else if (is.call(lhs)) {
    if (length(lhs) != 3L || !identical(lhs[[1L]], quote(`+`)) ||
        !is.symbol(lhs[[3L]])) {
      return(NULL)
    }
    first <- lhs[[2L]]
    if (identical(first, 0) || identical(first, 0L)) {
      intercept <- FALSE
    } else if (!identical(first, 1) && !identical(first, 1L)) {
      return(NULL)
    }
    var <- lhs[[3L]]
  } else if (!identical(lhs, 1) && !identical(lhs, 1L)) {
    return(NULL)
  }
  n <- .row_names_info(frame, 2L)
  if (is.null(var)) {
    return(matrix(1, n, 1L, dimnames = list(NULL, "(Intercept)")))
  }
  name <- as.character(var)
  x <- .subset2(frame, name)
  if (!(is.double(x) || is.integer(x)) || !is.null(attributes(x)) ||
      length(x) != n) {
    return(NULL)
  }
  x <- as.double(x)
  if (!all(is.finite(x))) {
    stop_nonfinite_z(term, name)
  }
  if (!intercept) return(matrix(x, n, 1L, dimnames = list(NULL, name)))
  matrix(c(rep.int(1, n), x), n, 2L,
         dimnames = list(NULL, c("(Intercept)", name)))
}

# Grouping factor of a term, from frame columns: a variable (any type,
# converted with factor()), `a:b` interactions (levels in lme4's order) and
# parentheses. Unused levels are dropped; missing values are an error.
group_factor <- function(group, frame, term) {
  if (is_call_to(group, "(")) return(group_factor(group[[2L]], frame, term))
  if (is_call_to(group, ":") && length(group) == 3L) {
    return(interact_factors(group_factor(group[[2L]], frame, term),
                            group_factor(group[[3L]], frame, term)))
  }
  name <- deparse_var(group)
  x <- .subset2(frame, name)
  if (is.null(x) || NCOL(x) != 1L) {
    stop("grouping factor '", deparse1(group), "' of random-effects term (",
         term, ") must be a variable or an interaction of variables such as ",
         "a:b (or nesting a/b)", call. = FALSE)
  }
  if (anyNA(x)) {
    stop("grouping variable '", name, "' of random-effects term (", term,
         ") has missing values; use na.action = na.omit or remove those rows",
         call. = FALSE)
  }
  as_group_factor(x)
}

# factor(x) for a grouping variable without missing values. Two common cases
# are built from integer codes, with the result factor(x) gives:
# - a factor (class "factor" or c("ordered", "factor")) whose levels are
#   distinct, not NA and all used (as the model frame leaves them): the same
#   codes and levels;
# - an integer vector without attributes other than names: the sorted
#   distinct values as levels (as.character() of distinct integers is
#   distinct, so this is factor()'s levels and codes).
# Everything else (character, double, logical, classed vectors) goes through
# factor(), which also avoids as.character() of every observation above.
as_group_factor <- function(x) {
  nx <- names(x)
  if (is.factor(x)) {
    ordered <- identical(class(x), c("ordered", "factor"))
    lev <- levels(x)
    if (!ordered && !identical(class(x), "factor")) return(factor(x))
    if (!is.character(lev) || anyNA(lev) || anyDuplicated(lev)) {
      return(factor(x))
    }
    codes <- as.integer(x)
    counts <- tabulate(codes, nbins = length(lev))
    if (sum(counts) != length(codes) || any(counts == 0L)) return(factor(x))
  } else if (is.integer(x) && all(names(attributes(x)) == "names")) {
    ordered <- FALSE
    values <- sort(unique(x))
    codes <- match(x, values)
    lev <- as.character(values)
  } else {
    return(factor(x))
  }
  if (!is.null(nx)) names(codes) <- nx
  levels(codes) <- lev
  class(codes) <- c(if (ordered) "ordered", "factor")
  codes
}

# Interaction factor "a:b" of two factors: only observed combinations, in
# the order of (level of f1, level of f2) as lme4's `%i%`. Works on the
# integer codes; the labels "level1:level2" are pasted for the observed
# combinations only. Should two combinations give the same label (levels
# that contain ':'), the labels of every observation are pasted and
# factor() merges them, as a label-based interaction does.
interact_factors <- function(f1, f2) {
  c1 <- as.integer(f1)
  c2 <- as.integer(f2)
  key <- (c1 - 1) * nlevels(f2) + c2
  first <- which(!duplicated(key))
  ord <- first[order(c1[first], c2[first])]
  lev <- paste(levels(f1)[c1[ord]], levels(f2)[c2[ord]], sep = ":")
  if (anyDuplicated(lev)) {
    labels <- paste(f1, f2, sep = ":")
    first <- !duplicated(labels)
    ord <- order(c1[first], c2[first])
    return(factor(labels, levels = labels[first][ord]))
  }
  codes <- match(key, key[ord])
  levels(codes) <- lev
  class(codes) <- "factor"
  codes
}

# Orders terms as lme4 does: only when some term has more levels than the
# one before it, by rev(order(number of levels)) (ties end up reversed).
order_reterms <- function(reterms) {
  nl <- vapply(reterms, function(rt) nlevels(rt$factor), integer(1))
  if (any(diff(nl) > 0)) reterms <- reterms[rev(order(nl))]
  reterms
}

# Named list of the distinct grouping factors in order of first use, with
# attribute `assign` mapping each term to its factor (lme4's reTrms$flist).
make_flist <- function(reterms) {
  groups <- vapply(reterms, `[[`, "", "group")
  unique_groups <- unique(groups)
  flist <- lapply(reterms[match(unique_groups, groups)], `[[`, "factor")
  names(flist) <- unique_groups
  attr(flist, "assign") <- match(groups, unique_groups)
  flist
}

# lme4's checks on grouping factors and terms, each acting per its
# control level: more than one level, fewer levels than observations, and
# more observations than random effects in each term. With `allow_n` (GLMMs,
# lme4's allow.n = TRUE) as many levels, and as many random effects, as
# observations are allowed, so observation-level random effects can be fitted.
check_grouping <- function(flist, reterms, n, control, allow_n = FALSE) {
  nlev <- vapply(flist, nlevels, integer(1))
  if (any(nlev < 2L)) {
    signal_check(control$check.nlev.gtr.1, paste0(
      "grouping factor ", quote_names(names(flist)[nlev < 2L]),
      " has only one sampled level; grouping factors must have > 1 sampled ",
      "level"))
  }
  if (!allow_n && any(nlev >= n)) {
    signal_check(control$check.nobs.vs.nlev, paste0(
      "grouping factor ", quote_names(names(flist)[nlev >= n]),
      " has as many levels as observations (", n, "); the number of levels ",
      "of each grouping factor must be < the number of observations"))
  }
  if (allow_n && any(nlev > n)) {
    signal_check(control$check.nobs.vs.nlev, paste0(
      "grouping factor ", quote_names(names(flist)[nlev > n]),
      " has more levels than observations (", n, "); the number of levels ",
      "of each grouping factor must be <= the number of observations"))
  }
  for (rt in reterms) {
    # A structured term (cs(), ar1(), ...) has a few parameters however many
    # random effects it has, and may have one per observation, as in
    # ar1(0 + factor(time) | subject): lme4 2.x fits those, so they are not
    # checked.
    if (!is.null(rt$structure)) next
    n_re <- nlevels(rt$factor) * ncol(rt$Z)
    if (!allow_n && n_re >= n) {
      signal_check(control$check.nobs.vs.nRE, paste0(
        "number of observations (=", n, ") <= number of random effects (=", n_re,
        ") for term (", rt$term, "): the number of observations must exceed the ",
        "number of random effects, else they and the residual variance cannot be ",
        "told apart"))
    }
    if (allow_n && n_re > n) {
      signal_check(control$check.nobs.vs.nRE, paste0(
        "number of observations (=", n, ") < number of random effects (=", n_re,
        ") for term (", rt$term, "): the number of random effects must not exceed ",
        "the number of observations"))
    }
  }
  invisible(NULL)
}
