//! Consumers of [`crate::calls::Call`]s, each a [`crate::pipeline::Sink`]:
//! the SQLite store, the Prometheus metrics, and the live view.

pub mod live;
pub mod metrics;
pub mod store;
