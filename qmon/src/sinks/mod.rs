//! Consumers of [`crate::calls::Call`]s.

pub mod metrics;
pub mod store;
