//! Revocation and sessions in Redis (work in progress).
