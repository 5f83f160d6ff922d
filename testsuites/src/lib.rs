//! Guest suites run end to end; see `tests/`.
