//! Shared code of the command-line tools. All IO of the project lives in
//! this crate.
pub mod pcap;
