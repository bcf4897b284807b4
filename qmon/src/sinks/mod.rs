//! Consumers of [`crate::calls::Call`]s.

pub mod live;
pub mod metrics;
pub mod store;
