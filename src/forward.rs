//! forward (work in progress).
