//! log (work in progress).
