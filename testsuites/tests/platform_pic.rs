//! 8259A suite.

use testsuites::platform::{pic, run_suite};

#[test]
fn pic_requests_priorities_and_paths() {
    run_suite(&pic::program());
}
