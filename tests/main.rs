//! hookhost's integration tests, one binary (one link of the host instead of
//! one per file): each module is a suite of its own.

mod common;

mod amd;
mod cdi;
mod cgroup_v2;
mod cli;
mod engines;
mod fpga;
mod front;
mod fuzz;
mod load;
mod nvidia;
mod onload;
mod rdma;
mod runc;
mod runc_attacks;
mod sandbox;
mod seed;
mod shim;
mod trial;
