//! assertion (work in progress).
