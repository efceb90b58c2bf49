//! Header field names: the ones this codec knows, with their compact forms.

use core::fmt;

macro_rules! header_names {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal $(, $compact:literal)? ;)*) => {
        /// A header field name this codec knows, or [`HeaderName::Other`].
        ///
        /// Names compare case-insensitively and compact forms map to their
        /// long name (RFC 3261 §7.3.1, §7.3.3), so `v`, `Via` and `VIA` are
        /// all [`HeaderName::Via`]. A message keeps the name as written.
        #[non_exhaustive]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum HeaderName {
            $( $(#[$doc])* $variant, )*
            /// Any other header (kept verbatim).
            Other,
        }

        const TABLE: &[(HeaderName, &str, u8)] = &[
            $( (HeaderName::$variant, $name, header_names!(@compact $($compact)?)), )*
        ];

        impl HeaderName {
            /// The long form, as RFC 3261 and its extensions spell it
            /// (`"Other"` for [`HeaderName::Other`]).
            pub fn as_str(self) -> &'static str {
                match self {
                    $( HeaderName::$variant => $name, )*
                    HeaderName::Other => "Other",
                }
            }
        }
    };
    (@compact $c:literal) => { $c };
    (@compact) => { 0 };
}

header_names! {
    /// Via (RFC 3261 §20.42), compact `v`.
    Via = "Via", b'v';
    /// From (§20.20), compact `f`.
    From = "From", b'f';
    /// To (§20.39), compact `t`.
    To = "To", b't';
    /// Call-ID (§20.8), compact `i`.
    CallId = "Call-ID", b'i';
    /// CSeq (§20.16).
    CSeq = "CSeq";
    /// Contact (§20.10), compact `m`.
    Contact = "Contact", b'm';
    /// Max-Forwards (§20.22).
    MaxForwards = "Max-Forwards";
    /// Route (§20.34).
    Route = "Route";
    /// Record-Route (§20.30).
    RecordRoute = "Record-Route";
    /// Service-Route (RFC 3608).
    ServiceRoute = "Service-Route";
    /// Path (RFC 3327).
    Path = "Path";
    /// Expires (§20.19).
    Expires = "Expires";
    /// Min-Expires (§20.23).
    MinExpires = "Min-Expires";
    /// WWW-Authenticate (§20.44).
    WwwAuthenticate = "WWW-Authenticate";
    /// Proxy-Authenticate (§20.27).
    ProxyAuthenticate = "Proxy-Authenticate";
    /// Authorization (§20.7).
    Authorization = "Authorization";
    /// Proxy-Authorization (§20.28).
    ProxyAuthorization = "Proxy-Authorization";
    /// Authentication-Info (§20.6).
    AuthenticationInfo = "Authentication-Info";
    /// Security-Client (RFC 3329).
    SecurityClient = "Security-Client";
    /// Security-Server (RFC 3329).
    SecurityServer = "Security-Server";
    /// Security-Verify (RFC 3329).
    SecurityVerify = "Security-Verify";
    /// P-Associated-URI (RFC 3455 §4.1).
    PAssociatedUri = "P-Associated-URI";
    /// P-Preferred-Identity (RFC 3325 §9.2).
    PPreferredIdentity = "P-Preferred-Identity";
    /// P-Asserted-Identity (RFC 3325 §9.1).
    PAssertedIdentity = "P-Asserted-Identity";
    /// Event (RFC 6665 §8.2.1), compact `o`.
    Event = "Event", b'o';
    /// Allow-Events (RFC 6665 §8.2.2), compact `u`.
    AllowEvents = "Allow-Events", b'u';
    /// Subscription-State (RFC 6665 §8.2.3).
    SubscriptionState = "Subscription-State";
    /// SIP-ETag (RFC 3903 §11.3.1).
    SipEtag = "SIP-ETag";
    /// SIP-If-Match (RFC 3903 §11.3.2).
    SipIfMatch = "SIP-If-Match";
    /// Content-Type (§20.15), compact `c`.
    ContentType = "Content-Type", b'c';
    /// Content-Length (§20.14), compact `l`.
    ContentLength = "Content-Length", b'l';
    /// Content-Encoding (§20.12), compact `e`.
    ContentEncoding = "Content-Encoding", b'e';
    /// Accept (§20.1).
    Accept = "Accept";
    /// Allow (§20.5).
    Allow = "Allow";
    /// Require (§20.32).
    Require = "Require";
    /// Proxy-Require (§20.29).
    ProxyRequire = "Proxy-Require";
    /// Supported (§20.37), compact `k`.
    Supported = "Supported", b'k';
    /// Unsupported (§20.40).
    Unsupported = "Unsupported";
    /// Subject (§20.36), compact `s`.
    Subject = "Subject", b's';
    /// Date (§20.17).
    Date = "Date";
    /// User-Agent (§20.41).
    UserAgent = "User-Agent";
    /// Server (§20.35).
    Server = "Server";
    /// Refer-To (RFC 3515), compact `r`.
    ReferTo = "Refer-To", b'r';
    /// Referred-By (RFC 3892), compact `b`.
    ReferredBy = "Referred-By", b'b';
    /// Accept-Contact (RFC 3841 §9.2), compact `a`.
    AcceptContact = "Accept-Contact", b'a';
    /// Reject-Contact (RFC 3841 §9.2), compact `j`.
    RejectContact = "Reject-Contact", b'j';
    /// Request-Disposition (RFC 3841 §9.1), compact `d`.
    RequestDisposition = "Request-Disposition", b'd';
    /// Session-Expires (RFC 4028), compact `x`.
    SessionExpires = "Session-Expires", b'x';
    /// Identity (RFC 4474), compact `y`.
    Identity = "Identity", b'y';
    /// Identity-Info (RFC 4474), compact `n`.
    IdentityInfo = "Identity-Info", b'n';
}

impl HeaderName {
    /// The name a header line carries (long or compact form, any case).
    pub fn from_name(name: &str) -> HeaderName {
        let b = name.as_bytes();
        let slot = if let [c] = b {
            COMPACT.get(usize::from(c.to_ascii_lowercase()))
        } else {
            LONG.get(hash(b))
        };
        match slot
            .copied()
            .map(usize::from)
            .and_then(|i| TABLE.get(i.checked_sub(1)?))
        {
            // Names are usually written as the RFC spells them: try that first.
            Some((h, n, _)) if b.len() == 1 || *n == name || n.eq_ignore_ascii_case(name) => *h,
            _ => HeaderName::Other,
        }
    }

    /// The compact form (RFC 3261 §7.3.3 and the extensions cited), if any.
    pub fn compact(self) -> Option<char> {
        TABLE
            .iter()
            .find(|(h, _, k)| *h == self && *k != 0)
            .map(|(_, _, k)| char::from(*k))
    }
}

/// A hash of a header name (any case) into 0..256 that separates every
/// long name of [`TABLE`]: its length and its first, middle and last
/// letters (`len + 13 (first + last) + middle`). [`LONG`] is built from it at compile time, and the build fails
/// if two names ever collide.
// Indexes below the length just checked; also called at compile time.
#[allow(clippy::indexing_slicing)]
const fn hash(b: &[u8]) -> usize {
    let n = b.len();
    if n == 0 {
        return 0;
    }
    let (f, m, l) = (b[0], b[n / 2], b[n - 1]);
    let ends = f.to_ascii_lowercase() as usize + l.to_ascii_lowercase() as usize;
    (n + 13 * ends + m.to_ascii_lowercase() as usize) & 255
}

/// `TABLE` index + 1 by [`hash`] of the long name (0: none).
#[allow(clippy::indexing_slicing)] // compile-time, within the arrays
static LONG: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < TABLE.len() {
        let h = hash(TABLE[i].1.as_bytes());
        assert!(t[h] == 0, "two header names share a hash slot");
        t[h] = (i + 1) as u8;
        i += 1;
    }
    t
};

/// `TABLE` index + 1 by compact form (0: none).
#[allow(clippy::indexing_slicing)] // compile-time, within the arrays
static COMPACT: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < TABLE.len() {
        let c = TABLE[i].2;
        if c != 0 {
            t[c as usize] = (i + 1) as u8;
        }
        i += 1;
    }
    t
};

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_compact_forms() {
        assert_eq!(
            HeaderName::from_name("MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(HeaderName::from_name("v"), HeaderName::Via);
        assert_eq!(HeaderName::from_name("V"), HeaderName::Via);
        assert_eq!(HeaderName::from_name("l"), HeaderName::ContentLength);
        assert_eq!(HeaderName::from_name("I"), HeaderName::CallId);
        assert_eq!(HeaderName::from_name("C%6Fntact"), HeaderName::Other);
        assert_eq!(HeaderName::from_name("q"), HeaderName::Other);
        assert_eq!(HeaderName::Contact.compact(), Some('m'));
        assert_eq!(HeaderName::CSeq.compact(), None);
        for (h, n, _) in TABLE {
            assert_eq!(HeaderName::from_name(n), *h);
            assert_eq!(HeaderName::from_name(&n.to_uppercase()), *h);
        }
    }
}
