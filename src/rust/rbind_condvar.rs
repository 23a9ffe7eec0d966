//! R binding of the conditional variances of the random effects (`ranef(condVar = TRUE)`).
use extendr_api::prelude::*;

extendr_module! {
    mod rbind_condvar;
}
