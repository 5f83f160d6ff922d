//! nestemu library.
