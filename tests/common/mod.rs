//! Test harness shared by the integration tests: real nats-server processes on free loopback
//! ports, the `choir` binary as a child process, a tiny HTTP client and poll-until helpers.
//! Every wait has a timeout; every process is killed on drop.
#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::mod_module_files
)]

pub mod consul;
pub mod creds;
pub mod etcd;
pub mod http;
pub mod jetstream;
pub mod nats;
pub mod node;
pub mod poll;
pub mod replication;

pub use http::http_get;
pub use nats::NatsServer;
pub use node::ChoirNode;
pub use poll::{eventually, poll_until};
