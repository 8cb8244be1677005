//! JWT verification (work in progress).
