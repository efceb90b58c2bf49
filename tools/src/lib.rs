//! Shared code of the command-line tools. All IO of the project lives in
//! this crate.
pub mod cli;
pub mod ims;
pub mod ipsecd;
pub mod json;
pub mod pcap;
pub mod sigcomp_flow;
pub mod sip_view;
#[allow(unsafe_code)]
pub mod sys;
