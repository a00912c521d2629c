//! The `agentgate` binary's building blocks, as a library so tests and benchmarks
//! can run the same servers in process.

pub mod config;
pub mod data_dir;
pub mod observe;
pub mod routes;
pub mod serve;
pub mod whoami;
