//! The SIP side of SMS over IP (TS 24.341 §5.3): which MESSAGE carries an
//! SMS, which one goes to the service centre, the MESSAGE that carries an
//! RP message, and the E.164 numbers SMS addresses are written in.
//!
//! ```
//! use gm::sms::sip::{default_centre, e164, tel_uri};
//! assert_eq!(default_centre("ims.example.org"), "sip:+15555550000@ims.example.org");
//! assert_eq!(e164("tel:+1-555-555-0102").as_deref(), Some("15555550102"));
//! assert_eq!(e164("sip:+15555550102@ims.example.org;user=phone").as_deref(), Some("15555550102"));
//! assert_eq!(e164("+15555550102").as_deref(), Some("15555550102"));
//! assert_eq!(e164("sip:bob@ims.example.org"), None);
//! assert_eq!(tel_uri("15555550102"), "tel:+15555550102");
//! ```

use super::service::SMS_TYPE;
use crate::pager::{Page, aor};
use crate::sip::{Error, Message, Method};

/// The E.164 number of the service centre a network of this workspace
/// runs unless told otherwise (`+1 555 555 0000`: a number reserved for
/// fiction).
pub const DEFAULT_CENTRE_NUMBER: &str = "15555550000";

/// The most digits an E.164 number has (ITU-T E.164 §6).
const MAX_E164_DIGITS: usize = 15;

/// The service centre's PSI in `domain` when none is configured:
/// `sip:+15555550000@domain`.
pub fn default_centre(domain: &str) -> String {
    format!("sip:+{DEFAULT_CENTRE_NUMBER}@{domain}")
}

/// The digits (without `+`) of an E.164 number written `+digits`, as a
/// `tel:` URI (RFC 3966 §5.1.4, visual separators allowed) or as the user
/// part of a SIP URI (`sip:+digits@host;user=phone`); `None` for anything
/// else (a local number, a name, more than 15 digits).
pub fn e164(s: &str) -> Option<String> {
    let s = s.trim();
    let lower = s.get(..5).map(str::to_ascii_lowercase).unwrap_or_default();
    let number = if lower.starts_with("tel:") {
        s.get(4..)?
    } else if lower.starts_with("sip:") || lower.starts_with("sips:") {
        let rest = s.split_once(':')?.1;
        rest.split_once('@')?.0
    } else {
        s
    };
    let number = number.split(';').next()?.strip_prefix('+')?;
    let digits: String = number
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
        .collect();
    let ok =
        (1..=MAX_E164_DIGITS).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(digits)
}

/// The `tel:` URI of E.164 `digits` (what a subscriber's P-Associated-URI
/// lists beside its SIP URI, TS 24.229 §5.4.1.2.2).
pub fn tel_uri(digits: &str) -> String {
    format!("tel:+{digits}")
}

/// The public identity a subscriber's E.164 number stands for at the
/// service centre, from the subscriber's identities: the first SIP URI, as
/// the address of record its MESSAGEs come from and go to (a `tel:` URI
/// cannot be registered to; TS 24.229 §5.4.1.2.2).
pub fn number_owner(impus: &[String]) -> Option<String> {
    impus.iter().find_map(|u| aor(u))
}

/// Whether `request` is a MESSAGE whose body is an RP message
/// (`Content-Type: application/vnd.3gpp.sms`, TS 24.341 §7.2).
pub fn is_sms(request: &Message<'_>) -> bool {
    request.method() == Some(Method::Message)
        && request
            .content_type()
            .ok()
            .flatten()
            .is_some_and(|t| t.to_string().eq_ignore_ascii_case(SMS_TYPE))
}

/// Whether `request` is a MESSAGE to the service centre whose PSI is
/// `centre` (its Request-URI names the same address of record, or the
/// same E.164 number when either is a `tel:` URI).
pub fn for_centre(request: &Message<'_>, centre: &str) -> bool {
    if request.method() != Some(Method::Message) {
        return false;
    }
    let Some(target) = request.request_uri().map(|u| u.to_string()) else {
        return false;
    };
    match (aor(&target), aor(centre)) {
        (Some(a), Some(b)) => a == b,
        _ => e164(&target).is_some_and(|t| e164(centre).is_some_and(|c| c == t)),
    }
}

/// The MESSAGE that carries the RP message `body` (TS 24.341 §5.3.1.2,
/// §5.3.2.4): `p` as for a pager-mode MESSAGE, to the service centre's PSI
/// from a UE, or to the UE's public identity from the centre.
pub fn request(p: &Page<'_>, body: &[u8]) -> Result<Message<'static>, Error> {
    crate::pager::request_with_body(p, SMS_TYPE, body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn page(to: &str) -> Page<'_> {
        Page {
            from: "sip:alice@ims.example.org",
            to,
            local: "127.0.0.1:5070",
            call_id: "c1",
            from_tag: "t1",
            branch: "z9hG4bKm1",
            cseq: 1,
            routes: &[],
            text: "",
            protocol: crate::txn::Protocol::Udp,
        }
    }

    #[test]
    fn numbers() {
        for (s, want) in [
            ("+15555550102", Some("15555550102")),
            ("tel:+15555550102", Some("15555550102")),
            ("TEL:+1.555.555.0102;phone-context=x", Some("15555550102")),
            ("sips:+15555550102@ims.example.org", Some("15555550102")),
            ("sip:+15555550102;npdi@ims.example.org", Some("15555550102")),
            ("15555550102", None),
            ("tel:5550102;phone-context=+1555", None),
            ("+", None),
            ("+1234567890123456", None),
            ("+1555a", None),
            ("sip:ims.example.org", None),
            ("", None),
            ("tél:+1", None),
        ] {
            assert_eq!(e164(s).as_deref(), want, "{s}");
        }
    }

    #[test]
    fn a_number_belongs_to_the_first_sip_identity() {
        let impus = [
            "tel:+15555550102".to_owned(),
            "sip:Bob@IMS.example.org;user=x".to_owned(),
            "sip:bob2@ims.example.org".to_owned(),
        ];
        assert_eq!(
            number_owner(&impus).as_deref(),
            Some("sip:Bob@ims.example.org")
        );
        assert_eq!(number_owner(&impus[..1]), None);
    }

    #[test]
    fn messages_to_the_centre() {
        let centre = default_centre("ims.example.org");
        let m = request(&page("sip:+15555550000@IMS.example.org"), &[1, 2]).unwrap();
        assert!(is_sms(&m));
        assert!(for_centre(&m, &centre));
        assert!(for_centre(&m, "tel:+15555550000"));
        assert!(!for_centre(&m, "sip:+15555550001@ims.example.org"));
        let other = crate::pager::request(&page("sip:bob@ims.example.org")).unwrap();
        assert!(!is_sms(&other));
        assert!(!for_centre(&other, &centre));
        let tel = request(&page("tel:+15555550000"), &[1]).unwrap();
        assert!(for_centre(&tel, &centre));
    }
}
