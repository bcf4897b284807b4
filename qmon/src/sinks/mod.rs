//! Consumers of [`crate::calls::Call`]s.

pub mod store;
