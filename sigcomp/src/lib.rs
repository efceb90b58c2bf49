//! `sigcomp`: Signaling Compression (RFC 3320 with the RFC 4896 corrections).
//!
//! The UDVM, the state handler and compartments, feedback and NACK
//! (RFC 4077), the static dictionaries (RFC 3485, RFC 5112), UDP and TCP
//! framing, a DEFLATE compressor with RFC 3321 acknowledgements and shared
//! compression ([`compress`]), and the UDVM instruction set as one table
//! ([`isa`]). It does no IO. The RFC 4464 assembler and disassembler and
//! the RFC 4465 torture driver are developer tools, in the `sigcomp-asm`
//! crate.
//!
//! # The SigComp layer of a SIP stack
//!
//! [`Endpoint`] is what an application uses as is: `send(compartment,
//! message, link)` gives the bytes to write, `receive(bytes, link)` the
//! messages (or a NACK to send back), and `accept(compartment, &received)`
//! saves a message's states and believes its feedback once the
//! application has authenticated it (RFC 3320 §4.3). Feedback and
//! announcements travel in the next message to the peer, over UDP or TCP
//! (see the [`endpoint`] module). The types below are its parts, for
//! researchers and tests.
//!
//! # Decompressing
//!
//! A [`Decompressor`] runs one message at a time in a UDVM whose memory is
//! reused between messages and never larger than the
//! decompression_memory_size allows. It only *reads* states: the state
//! creation and free requests of a message come back in [`Decompressed`],
//! and [`StateHandler::commit`] applies them once the application has
//! confirmed the message (RFC 3320 §4.3), so a forged message cannot create
//! state. A failure is a [`Failure`] carrying its RFC 4077 reason, from
//! which [`Nack::from_failure`] builds the NACK.
//!
//! ```
//! use sigcomp::{CompartmentId, Decompressor, Parameters, StateHandler, Transport};
//!
//! // RFC 4896 §11: bytecode that outputs the rest of the message as is.
//! let mut msg = vec![0xf8, 0x00, 0xa1, 0x1c, 0x01, 0x86, 0x09, 0x22, 0x86, 0x01, 0x16, 0xf9, 0x23];
//! msg.extend_from_slice(b"SIP/2.0 200 OK\r\n");
//!
//! let mut states = StateHandler::with_dictionaries();
//! let peer = CompartmentId(1);
//! states.open_compartment(peer, 4096);
//! let mut d = Decompressor::new(Parameters::default()).unwrap();
//! let out = d.decompress(&msg, Transport::Message, &states).unwrap();
//! assert_eq!(out.output, b"SIP/2.0 200 OK\r\n");
//! // The application accepts the message: now its states may be saved.
//! states.commit(peer, &out).unwrap();
//!
//! // A message that fails gives an RFC 4077 reason and a NACK.
//! let err = d.decompress(&[0xf8, 0x00], Transport::Message, &states).unwrap_err();
//! assert_eq!(err.reason, sigcomp::Reason::MessageTooShort);
//! let nack = sigcomp::Nack::from_failure(&err, &[0xf8, 0x00]);
//! let mut wire = Vec::new();
//! nack.emit(&mut wire);
//! assert_eq!(sigcomp::Nack::parse(&wire).unwrap(), nack);
//! ```
//!
//! # What it does not do
//!
//! No IO, no clock, no retransmission (over UDP the application
//! retransmits, RFC 4077 §2.3.1). Its compressor speaks only to its own
//! bytecode (any SigComp decompressor runs it); of RFC 3321 it implements
//! acknowledgements and shared compression, not the other extended
//! operations. Continuous mode (RFC 3320 §4.2.1) is not used with SIP
//! (RFC 5049 §6) and not implemented.

pub mod compress;
mod crc;
pub mod endpoint;
pub mod error;
pub mod feedback;
pub mod isa;
pub mod message;
pub mod nack;
pub mod state;
mod udvm;

pub use endpoint::{
    Accepted, Counters, Endpoint, EndpointConfig, Failed, Inbound, Link, Received, Sent, StreamId,
};
pub use error::{Error, Failure, Reason};
pub use feedback::{RequestedFeedback, Resources, ReturnedParameters};
pub use message::{Code, Message, StreamDeframer};
pub use nack::Nack;
pub use state::{
    CommitReport, Compartment, CompartmentId, State, StateHandler, StateId, StateRequest,
    StateStore,
};

/// The resources this endpoint offers as a decompressor (RFC 3320 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parameters {
    /// decompression_memory_size in bytes (at least 2048).
    pub decompression_memory_size: u32,
    /// state_memory_size offered per compartment, in bytes. State values
    /// longer than this minus 64 are cut when the message ends, as the
    /// state handler would cut them (RFC 3320 §6.2 step 2), so a message
    /// cannot make the decompressor hold more: open compartments with at
    /// most this size.
    pub state_memory_size: u32,
    /// cycles_per_bit: 16, 32, 64 or 128.
    pub cycles_per_bit: u16,
    /// SigComp_version: 2 announces NACK support (RFC 4077 §2.4).
    pub version: u8,
}

impl Default for Parameters {
    /// 8 KiB DMS and SMS, 16 cycles per bit, version 2.
    fn default() -> Parameters {
        Parameters {
            decompression_memory_size: 8192,
            state_memory_size: 8192,
            cycles_per_bit: 16,
            version: 2,
        }
    }
}

impl Parameters {
    /// Checks the values against RFC 3320 §3.3.1.
    pub fn validate(&self) -> Result<(), Error> {
        feedback::encode_cycles_per_bit(self.cycles_per_bit)?;
        let dms = self.decompression_memory_size;
        if !(2048..=131072).contains(&dms) {
            return Err(Error::InvalidParameter {
                name: "decompression_memory_size",
                value: dms,
            });
        }
        if self.version == 0 {
            return Err(Error::InvalidParameter {
                name: "SigComp_version",
                value: 0,
            });
        }
        Ok(())
    }

    /// The returned SigComp parameters we announce (RFC 3320 §9.4.9):
    /// cpb, dms, sms, version and the partial (6-byte) identifiers of
    /// `local_states`. Fails if a size is not one of the encodable values.
    pub fn announcement(&self, local_states: &[StateId]) -> Result<ReturnedParameters, Error> {
        let resources = Resources {
            cycles_per_bit: self.cycles_per_bit,
            decompression_memory_size: self.decompression_memory_size,
            state_memory_size: self.state_memory_size,
        };
        resources.to_byte()?;
        Ok(ReturnedParameters {
            resources: Some(resources),
            version: Some(self.version),
            state_ids: local_states.iter().map(|id| id.0[..6].to_vec()).collect(),
        })
    }
}

/// The transport a message came over; it sets the UDVM memory size
/// (RFC 3320 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Message-based (UDP): memory is decompression_memory_size minus the
    /// message size.
    Message,
    /// Stream-based (TCP): memory is decompression_memory_size / 2.
    Stream,
}

/// A successfully decompressed message, not yet confirmed by the
/// application: pass it to [`StateHandler::commit`] to save its states
/// and feedback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decompressed {
    /// The decompressed message (the concatenated OUTPUT strings).
    pub output: Vec<u8>,
    /// Whether any OUTPUT instruction ran (RFC 3320 §9.4.8 distinguishes
    /// no message from an empty one).
    pub has_output: bool,
    /// UDVM cycles used by the instructions.
    pub cycles: u64,
    /// State creation and free requests, in the order they were made.
    pub state_requests: Vec<StateRequest>,
    /// Requested feedback (END-MESSAGE), if a location was given.
    pub requested_feedback: Option<RequestedFeedback>,
    /// Returned SigComp parameters (END-MESSAGE), if a location was given.
    pub returned_parameters: Option<ReturnedParameters>,
    /// The returned feedback item of the message header (RFC 3320 §7.1).
    pub returned_feedback_item: Option<Vec<u8>>,
}

/// Decompresses SigComp messages: the dispatcher and UDVM of RFC 3320
/// §4.2, §7–9.
#[derive(Debug, Clone)]
pub struct Decompressor {
    params: Parameters,
    udvm: udvm::Udvm,
}

impl Decompressor {
    /// A decompressor offering `params`.
    pub fn new(params: Parameters) -> Result<Decompressor, Error> {
        params.validate()?;
        Ok(Decompressor {
            udvm: udvm::Udvm::with_memory(params.decompression_memory_size as usize),
            params,
        })
    }

    /// The parameters offered.
    pub fn parameters(&self) -> &Parameters {
        &self.params
    }

    /// Whether our own bytecode's decoding loop runs natively when a
    /// message uses it (the default), or in the interpreter as any other
    /// bytecode does. The results are the same either way (the loop has
    /// the interpreter's effects, instruction by instruction, and the
    /// tests compare the two); this is for measuring the difference and
    /// for ruling the native loop out when chasing a fault.
    pub fn set_native_loop(&mut self, on: bool) {
        self.udvm.native_off = !on;
    }

    /// Decompresses one complete SigComp message (for a stream, one record
    /// from [`StreamDeframer`]), reading states from `states`. Nothing is
    /// stored: see [`StateHandler::commit`].
    pub fn decompress<S: StateStore + ?Sized>(
        &mut self,
        msg: &[u8],
        transport: Transport,
        states: &S,
    ) -> Result<Decompressed, Failure> {
        let mut output = Vec::new();
        let mut d = self.decompress_into(msg, transport, states, &mut output)?;
        d.output = output;
        Ok(d)
    }

    /// As [`Decompressor::decompress`], appending the output to `output`
    /// (the returned `output` field is left empty).
    pub fn decompress_into<S: StateStore + ?Sized>(
        &mut self,
        msg: &[u8],
        transport: Transport,
        states: &S,
        output: &mut Vec<u8>,
    ) -> Result<Decompressed, Failure> {
        let parsed = Message::parse_reason(msg).map_err(Failure::header)?;
        let dms = self.params.decompression_memory_size as usize;
        // RFC 3320 §7: the UDVM memory size, at most 65536.
        let memory_size = match transport {
            Transport::Message => {
                if msg.len() >= dms {
                    // RFC 3320 §8.7 item 2: larger than the DMS.
                    return Err(Failure::header_with(
                        Reason::BytecodesTooLarge,
                        (dms.min(0xffff) as u16).to_be_bytes().to_vec(),
                    ));
                }
                dms - msg.len()
            }
            Transport::Stream => dms / 2,
        }
        .min(65536);
        let mem = self.udvm.reset(memory_size);
        let (pc, psid_len, state_length) = match parsed.code {
            Code::Bytecode { destination, code } => {
                let start = usize::from(destination);
                let Some(dst) = mem.get_mut(start..start + code.len()) else {
                    return Err(Failure::header_with(
                        Reason::BytecodesTooLarge,
                        (dms.min(0xffff) as u16).to_be_bytes().to_vec(),
                    ));
                };
                dst.copy_from_slice(code);
                (destination, 0, 0)
            }
            Code::PartialStateId(id) => {
                // RFC 3320 §7.2.
                let state = states
                    .lookup(id)
                    .map_err(|e| Failure::header_with(e.into(), id.to_vec()))?;
                let start = usize::from(state.address());
                let Some(dst) = mem.get_mut(start..start + state.value().len()) else {
                    return Err(Failure::header(Reason::Segfault));
                };
                dst.copy_from_slice(state.value());
                (state.instruction(), id.len() as u16, state.length())
            }
        };
        let out_start = output.len();
        let start = udvm::Start {
            memory_size,
            cycles_per_bit: self.params.cycles_per_bit,
            version: self.params.version,
            header_len: parsed.header_len,
            max_state_len: self
                .params
                .state_memory_size
                .saturating_sub(64)
                .min(u32::from(u16::MAX)) as u16,
            input: parsed.remaining,
        };
        let ended = match self
            .udvm
            .run(start, pc, psid_len, state_length, states, output)
        {
            Ok(e) => e,
            Err(f) => {
                output.truncate(out_start);
                return Err(f);
            }
        };
        Ok(Decompressed {
            output: Vec::new(),
            has_output: ended.output_seen,
            cycles: ended.cycles,
            state_requests: ended.state_requests,
            requested_feedback: ended.requested_feedback,
            returned_parameters: ended.returned_parameters,
            returned_feedback_item: parsed.returned_feedback_item.map(<[u8]>::to_vec),
        })
    }
}

/// The example of the crate's README.md, run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
