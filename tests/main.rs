//! hookhost's integration tests, one binary (one link of the host instead of
//! one per file): each module is a suite of its own.

mod common;

mod cli;
mod nvidia;
mod rdma;
mod runc;
mod sandbox;
mod seed;
