library(testthat)
library(mixedrs)

test_check("mixedrs")
