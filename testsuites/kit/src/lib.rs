//! Guest-program kit.
