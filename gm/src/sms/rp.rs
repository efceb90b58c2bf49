//! The relay-layer messages of TS 24.011 §7.3: RP-DATA in both
//! directions, RP-ACK, RP-ERROR and RP-SMMA, the body of an SMS-over-IP
//! SIP MESSAGE (TS 24.341).

use super::Error;
use super::tpdu::{Address, Direction, Reader, Tpdu};

/// The IEI of RP-User-Data in RP-ACK and RP-ERROR (TS 24.011 §7.3.3-4).
pub const IEI_USER_DATA: u8 = 0x41;
/// RP-User-Data holds at most 233 octets (TS 24.011 §8.2.5.3).
pub const MAX_USER_DATA: usize = 233;

/// An RP message (TS 24.011 §7.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RpMessage {
    /// RP-DATA (RP-MTI 0 MS to network, 1 network to MS).
    Data(RpData),
    /// RP-ACK (RP-MTI 2, 3).
    Ack(RpAck),
    /// RP-ERROR (RP-MTI 4, 5).
    Error(RpError),
    /// RP-SMMA (RP-MTI 6): the MS has memory again.
    Smma {
        /// RP-Message Reference.
        message_ref: u8,
    },
}

/// RP-DATA (TS 24.011 §7.3.1): addresses and a TPDU.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RpData {
    /// MS to network (RP-MTI 0) or network to MS (1).
    pub direction: Direction,
    /// RP-Message Reference.
    pub message_ref: u8,
    /// RP-Originator Address: the service centre going to the MS, empty
    /// (`None`) from it.
    pub originator: Option<Address>,
    /// RP-Destination Address: the service centre from the MS, empty going
    /// to it.
    pub destination: Option<Address>,
    /// RP-User-Data: the TPDU's octets.
    pub user_data: Vec<u8>,
}

/// RP-ACK (TS 24.011 §7.3.3), with the report TPDU if any.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RpAck {
    /// MS to network (RP-MTI 2) or network to MS (3).
    pub direction: Direction,
    /// RP-Message Reference of the RP-DATA acknowledged.
    pub message_ref: u8,
    /// RP-User-Data (IE 0x41): SMS-DELIVER-REPORT or SMS-SUBMIT-REPORT.
    pub user_data: Option<Vec<u8>>,
}

/// RP-ERROR (TS 24.011 §7.3.4).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RpError {
    /// MS to network (RP-MTI 4) or network to MS (5).
    pub direction: Direction,
    /// RP-Message Reference of the message refused.
    pub message_ref: u8,
    /// RP-Cause.
    pub cause: RpCause,
    /// RP-User-Data (IE 0x41): the report TPDU with its TP-FCS.
    pub user_data: Option<Vec<u8>>,
}

/// RP-Cause (TS 24.011 §8.2.5.4): a cause value and an optional
/// diagnostic.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RpCause {
    /// The cause value, 7 bits (e.g. 41 temporary failure, 22 memory
    /// capacity exceeded, 111 protocol error).
    pub value: u8,
    /// The diagnostic field's octets.
    pub diagnostic: Vec<u8>,
}

/// The name TS 24.011 Table 8.4 gives an RP-Cause value (lower case, for
/// one-line reports); "unknown cause" for a value it does not list.
pub fn cause_name(value: u8) -> &'static str {
    match value {
        1 => "unassigned (unallocated) number",
        8 => "operator determined barring",
        10 => "call barred",
        21 => "short message transfer rejected",
        22 => "memory capacity exceeded",
        27 => "destination out of order",
        28 => "unidentified subscriber",
        29 => "facility rejected",
        30 => "unknown subscriber",
        38 => "network out of order",
        41 => "temporary failure",
        42 => "congestion",
        47 => "resources unavailable, unspecified",
        50 => "requested facility not subscribed",
        69 => "requested facility not implemented",
        81 => "invalid short message transfer reference value",
        95 => "semantically incorrect message",
        96 => "invalid mandatory information",
        97 => "message type non-existent or not implemented",
        98 => "message not compatible with short message protocol state",
        99 => "information element non-existent or not implemented",
        111 => "protocol error, unspecified",
        127 => "interworking, unspecified",
        _ => "unknown cause",
    }
}

/// Something a decoder accepted although the specification does not
/// allow it.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Warning {
    /// RP-User-Data began with a service-centre address (length octet,
    /// type of address, BCD) before the TPDU, as in the PDU mode of a
    /// modem's AT commands; TS 24.011 §8.2.5.3 has the TPDU alone.
    ServiceCentrePrefix(Address),
}

/// A TPDU read from RP-User-Data, with what was accepted on the way.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DecodedTpdu {
    /// The TPDU.
    pub tpdu: Tpdu,
    /// Set when the user data was not in the standard form.
    pub warning: Option<Warning>,
}

impl RpData {
    /// An RP-DATA from the MS carrying `tpdu` (an SMS-SUBMIT) to the
    /// service centre `service_centre`.
    pub fn mo(message_ref: u8, service_centre: Address, tpdu: &Tpdu) -> Result<RpData, Error> {
        Ok(RpData {
            direction: Direction::MsToNetwork,
            message_ref,
            originator: None,
            destination: Some(service_centre),
            user_data: tpdu.encode()?,
        })
    }

    /// An RP-DATA to the MS carrying `tpdu` (an SMS-DELIVER or
    /// SMS-STATUS-REPORT) from the service centre `service_centre`.
    pub fn mt(message_ref: u8, service_centre: Address, tpdu: &Tpdu) -> Result<RpData, Error> {
        Ok(RpData {
            direction: Direction::NetworkToMs,
            message_ref,
            originator: Some(service_centre),
            destination: None,
            user_data: tpdu.encode()?,
        })
    }

    /// Decodes the TPDU. When the octets are not a TPDU but a
    /// service-centre address followed by one, that TPDU is returned with
    /// [`Warning::ServiceCentrePrefix`].
    pub fn tpdu(&self) -> Result<DecodedTpdu, Error> {
        let err = match Tpdu::decode(&self.user_data, self.direction) {
            Ok(tpdu) => {
                return Ok(DecodedTpdu {
                    tpdu,
                    warning: None,
                });
            }
            Err(e) => e,
        };
        // A service-centre address: its length in octets (type of address
        // and at most 10 BCD octets), a type of address with bit 8 set.
        let prefix = self.user_data.split_first().and_then(|(&len, rest)| {
            let len = usize::from(len);
            let value = rest.get(..len)?;
            let after = rest.get(len..)?;
            if !(2..=11).contains(&len) || value.first().is_none_or(|t| t & 0x80 == 0) {
                return None;
            }
            let address = Address::decode_rp(value, "SC address").ok()?;
            let tpdu = Tpdu::decode(after, self.direction).ok()?;
            Some(DecodedTpdu {
                tpdu,
                warning: Some(Warning::ServiceCentrePrefix(address)),
            })
        });
        prefix.ok_or(err)
    }
}

impl RpAck {
    /// Decodes the report TPDU, if there is one.
    pub fn tpdu(&self) -> Option<Result<Tpdu, Error>> {
        let ud = self.user_data.as_ref()?;
        Some(Tpdu::decode_report(ud, self.direction, false))
    }
}

impl RpError {
    /// Decodes the report TPDU, if there is one.
    pub fn tpdu(&self) -> Option<Result<Tpdu, Error>> {
        let ud = self.user_data.as_ref()?;
        Some(Tpdu::decode_report(ud, self.direction, true))
    }
}

fn mti(kind: u8, dir: Direction) -> u8 {
    match dir {
        Direction::MsToNetwork => kind,
        Direction::NetworkToMs => kind + 1,
    }
}

impl RpMessage {
    /// Decodes an RP message; every byte must belong to it.
    pub fn decode(bytes: &[u8]) -> Result<RpMessage, Error> {
        let mut r = Reader::new(bytes);
        // Bits 4-8 of the first octet are spare.
        let mti = r.u8("RP-MTI")? & 7;
        let message_ref = r.u8("RP-MR")?;
        let direction = if mti % 2 == 0 {
            Direction::MsToNetwork
        } else {
            Direction::NetworkToMs
        };
        let m = match mti {
            0 | 1 => {
                let originator = decode_rp_address(&mut r, "RP-OA")?;
                let destination = decode_rp_address(&mut r, "RP-DA")?;
                let len = usize::from(r.u8("RP-User-Data")?);
                if len > MAX_USER_DATA {
                    return Err(Error::InvalidField {
                        field: "RP-User-Data",
                        value: len,
                    });
                }
                let user_data = r.take(len, "RP-User-Data")?.to_vec();
                RpMessage::Data(RpData {
                    direction,
                    message_ref,
                    originator,
                    destination,
                    user_data,
                })
            }
            2 | 3 => {
                let user_data = decode_user_data_ie(&mut r)?;
                RpMessage::Ack(RpAck {
                    direction,
                    message_ref,
                    user_data,
                })
            }
            4 | 5 => {
                let len = usize::from(r.u8("RP-Cause")?);
                let cause = r.take(len, "RP-Cause")?;
                let (&value, diagnostic) = cause.split_first().ok_or(Error::InvalidField {
                    field: "RP-Cause",
                    value: 0,
                })?;
                let cause = RpCause {
                    value: value & 0x7F,
                    diagnostic: diagnostic.to_vec(),
                };
                let user_data = decode_user_data_ie(&mut r)?;
                RpMessage::Error(RpError {
                    direction,
                    message_ref,
                    cause,
                    user_data,
                })
            }
            6 => RpMessage::Smma { message_ref },
            _ => {
                return Err(Error::UnsupportedMessageType {
                    field: "RP-MTI",
                    mti,
                });
            }
        };
        r.finish()?;
        Ok(m)
    }

    /// Encodes the message.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(64);
        match self {
            RpMessage::Data(d) => {
                out.push(mti(0, d.direction));
                out.push(d.message_ref);
                encode_rp_address(d.originator.as_ref(), &mut out, "RP-OA")?;
                encode_rp_address(d.destination.as_ref(), &mut out, "RP-DA")?;
                out.push(user_data_len(&d.user_data)?);
                out.extend_from_slice(&d.user_data);
            }
            RpMessage::Ack(a) => {
                out.push(mti(2, a.direction));
                out.push(a.message_ref);
                encode_user_data_ie(a.user_data.as_deref(), &mut out)?;
            }
            RpMessage::Error(e) => {
                out.push(mti(4, e.direction));
                out.push(e.message_ref);
                let len = 1 + e.cause.diagnostic.len();
                out.push(u8::try_from(len).map_err(|_| Error::TooLong {
                    field: "RP-Cause",
                    len,
                    max: 255,
                })?);
                // Bit 8 of the cause value octet is the extension bit, 0.
                out.push(e.cause.value & 0x7F);
                out.extend_from_slice(&e.cause.diagnostic);
                encode_user_data_ie(e.user_data.as_deref(), &mut out)?;
            }
            RpMessage::Smma { message_ref } => {
                out.push(6);
                out.push(*message_ref);
            }
        }
        Ok(out)
    }
}

fn decode_rp_address(r: &mut Reader<'_>, field: &'static str) -> Result<Option<Address>, Error> {
    let len = usize::from(r.u8(field)?);
    if len == 0 {
        return Ok(None);
    }
    Address::decode_rp(r.take(len, field)?, field).map(Some)
}

fn encode_rp_address(
    a: Option<&Address>,
    out: &mut Vec<u8>,
    field: &'static str,
) -> Result<(), Error> {
    match a {
        None => {
            out.push(0);
            Ok(())
        }
        Some(a) => a.encode_rp(out, field),
    }
}

fn decode_user_data_ie(r: &mut Reader<'_>) -> Result<Option<Vec<u8>>, Error> {
    if r.is_empty() {
        return Ok(None);
    }
    let iei = r.u8("RP-User-Data")?;
    if iei != IEI_USER_DATA {
        return Err(Error::UnexpectedIe { iei });
    }
    let len = usize::from(r.u8("RP-User-Data")?);
    if len > MAX_USER_DATA {
        return Err(Error::InvalidField {
            field: "RP-User-Data",
            value: len,
        });
    }
    Ok(Some(r.take(len, "RP-User-Data")?.to_vec()))
}

fn user_data_len(ud: &[u8]) -> Result<u8, Error> {
    if ud.len() > MAX_USER_DATA {
        return Err(Error::TooLong {
            field: "RP-User-Data",
            len: ud.len(),
            max: MAX_USER_DATA,
        });
    }
    Ok(ud.len() as u8)
}

fn encode_user_data_ie(ud: Option<&[u8]>, out: &mut Vec<u8>) -> Result<(), Error> {
    if let Some(ud) = ud {
        out.push(IEI_USER_DATA);
        out.push(user_data_len(ud)?);
        out.extend_from_slice(ud);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn causes_have_the_names_of_table_8_4() {
        assert_eq!(cause_name(1), "unassigned (unallocated) number");
        assert_eq!(cause_name(41), "temporary failure");
        assert_eq!(cause_name(2), "unknown cause");
    }

    #[test]
    fn ack_error_and_smma_round_trip() {
        let msgs = [
            RpMessage::Ack(RpAck {
                direction: Direction::NetworkToMs,
                message_ref: 7,
                user_data: None,
            }),
            RpMessage::Ack(RpAck {
                direction: Direction::MsToNetwork,
                message_ref: 8,
                user_data: Some(vec![0, 0]),
            }),
            RpMessage::Error(RpError {
                direction: Direction::MsToNetwork,
                message_ref: 9,
                cause: RpCause {
                    value: 22,
                    diagnostic: vec![],
                },
                user_data: Some(vec![0, 0xD3, 0]),
            }),
            RpMessage::Error(RpError {
                direction: Direction::NetworkToMs,
                message_ref: 10,
                cause: RpCause {
                    value: 111,
                    diagnostic: vec![1, 2],
                },
                user_data: None,
            }),
            RpMessage::Smma { message_ref: 11 },
        ];
        for m in msgs {
            let b = m.encode().unwrap();
            assert_eq!(RpMessage::decode(&b).unwrap(), m, "{b:02x?}");
        }
        assert_eq!(
            RpMessage::Smma { message_ref: 1 }.encode().unwrap(),
            unhex("0601")
        );
        assert_eq!(
            RpMessage::decode(&unhex("030142")),
            Err(Error::UnexpectedIe { iei: 0x42 })
        );
        assert_eq!(
            RpMessage::decode(&unhex("0701")),
            Err(Error::UnsupportedMessageType {
                field: "RP-MTI",
                mti: 7
            })
        );
    }
}
