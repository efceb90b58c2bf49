//! ESP in UDP (RFC 3948): telling ESP from IKE and NAT-keepalives on port
//! 4500.

use crate::Error;
use crate::wire::UDP_HEADER_LEN;

/// The IANA port for UDP-encapsulated ESP and IKE (RFC 3948 §2).
pub const NAT_T_PORT: u16 = 4500;

/// What a UDP payload received on an RFC 3948 port is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpPayload {
    /// An ESP packet (first four bytes are a non-zero SPI, RFC 3948 §2.1).
    Esp,
    /// An IKE message behind the 4-byte Non-ESP Marker (RFC 3948 §2.2);
    /// the IKE message starts at byte 4.
    Ike,
    /// A NAT-keepalive (one byte 0xFF, RFC 3948 §2.3): ignore.
    Keepalive,
}

/// Classifies a UDP payload (the bytes after the UDP header).
pub fn classify(payload: &[u8]) -> Result<UdpPayload, Error> {
    match payload {
        [0xff] => Ok(UdpPayload::Keepalive),
        [0, 0, 0, 0, ..] => Ok(UdpPayload::Ike),
        // RFC 4303 §2.1: an ESP packet is at least SPI + Sequence Number.
        p if p.len() >= 8 => Ok(UdpPayload::Esp),
        _ => Err(Error::UdpEncap {
            reason: "payload is neither ESP, IKE nor a NAT-keepalive",
        }),
    }
}

/// Checks a UDP datagram (header + payload, exactly) carrying ESP.
pub(crate) fn check_esp_in_udp(datagram: &[u8]) -> Result<(), Error> {
    let (hdr, payload) = datagram
        .split_at_checked(UDP_HEADER_LEN)
        .ok_or(Error::Truncated {
            what: "UDP header",
            needed: UDP_HEADER_LEN,
            got: datagram.len(),
        })?;
    let len = usize::from(u16::from_be_bytes([hdr[4], hdr[5]]));
    if len != datagram.len() {
        return Err(Error::UdpEncap {
            reason: "UDP length does not match the IP length",
        });
    }
    match classify(payload)? {
        UdpPayload::Esp => Ok(()),
        UdpPayload::Ike => Err(Error::UdpEncap {
            reason: "non-ESP marker: an IKE message, not ESP",
        }),
        UdpPayload::Keepalive => Err(Error::UdpEncap {
            reason: "NAT-keepalive",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_rfc3948() {
        assert_eq!(classify(&[0xff]), Ok(UdpPayload::Keepalive));
        assert_eq!(classify(&[0, 0, 0, 0, 1, 2]), Ok(UdpPayload::Ike));
        assert_eq!(classify(&[0, 0, 1, 0, 0, 0, 0, 1]), Ok(UdpPayload::Esp));
        assert!(classify(&[1, 2]).is_err());
        assert!(
            check_esp_in_udp(&[0x11, 0x94, 0x11, 0x94, 0, 16, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1])
                .is_ok()
        );
        assert!(
            check_esp_in_udp(&[0x11, 0x94, 0x11, 0x94, 0, 17, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1])
                .is_err()
        );
    }
}
