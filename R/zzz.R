# Package load hook: registers the emmeans methods (R/emmeans.R) with
# emmeans when emmeans is loaded -- now if it already is, otherwise when it
# gets loaded -- without loading emmeans ourselves.
.onLoad <- function(libname, pkgname) {
  if (getRversion() >= "4.3.0") {
    # `@` dispatches to S3 methods from R 4.3.0 (see mer_slot()).
    registerS3method("@", "mixedrs_fit", mer_slot, envir = baseenv())
  }
  if (isNamespaceLoaded("emmeans")) {
    register_emmeans()
  } else {
    setHook(packageEvent("emmeans", "onLoad"), function(...) register_emmeans(),
            action = "append")
  }
  invisible(NULL)
}
