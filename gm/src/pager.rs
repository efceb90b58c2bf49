//! Pager-mode MESSAGE (RFC 3428) on Gm, sans-IO: the request a UE sends,
//! and the relay decisions of a P-CSCF that is its own registrar and
//! S-CSCF (the test network of `pcscf`): which registered UE a MESSAGE goes
//! to, the forwarded request (our Via on top, Max-Forwards decremented, the
//! route set ended here), and the response relayed back (our Via removed).
//!
//! The caller runs the transactions ([`crate::txn`]): a server transaction
//! for the MESSAGE that came in, a client transaction for the one
//! forwarded, and passes the client transaction's final response through
//! [`response`] to the server transaction. Not done: retargeting the
//! Request-URI to the Contact (RFC 3261 §16.5; the request is sent to
//! the address the target registered from and keeps the IMPU), P-Asserted-
//! Identity, forking.
//!
//! ```
//! use gm::pager::{Page, Registry, Relay};
//! let mut reg: Registry<&str> = Registry::new();
//! reg.bind(&["sip:alice@ims.example.org".into()], "alice-addr");
//! reg.bind(&["sip:bob@ims.example.org".into()], "bob-addr");
//! let page = Page {
//!     from: "sip:bob@ims.example.org", to: "sip:alice@ims.example.org",
//!     local: "127.0.0.1:5070", call_id: "c1", from_tag: "t1", branch: "z9hG4bKm1",
//!     cseq: 1, routes: &[], text: "hello", protocol: gm::txn::Protocol::Udp,
//! };
//! let m = gm::pager::request(&page).unwrap();
//! let via = "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKp1";
//! match reg.route(&m, &"bob-addr", via) {
//!     Relay::Forward { to, request } => {
//!         assert_eq!(to, "alice-addr");
//!         assert_eq!(request.vias().unwrap().len(), 2);
//!     }
//!     Relay::Refuse(s) => panic!("{s}"),
//! }
//! ```

use std::collections::HashMap;

use crate::sip::header::Via;
use crate::sip::{Error, HeaderName, Message, Method, Uri};

/// A MESSAGE to build at the UE.
#[derive(Clone, Copy, Debug)]
pub struct Page<'a> {
    /// Our IMPU (From).
    pub from: &'a str,
    /// The target's URI (Request-URI and To).
    pub to: &'a str,
    /// Our `host:port` (Via sent-by).
    pub local: &'a str,
    /// The Call-ID.
    pub call_id: &'a str,
    /// The From tag.
    pub from_tag: &'a str,
    /// The Via branch, starting `z9hG4bK`.
    pub branch: &'a str,
    /// The CSeq number.
    pub cseq: u32,
    /// The route set (the registration's Service-Route values), in order.
    pub routes: &'a [String],
    /// The text, sent as `text/plain`.
    pub text: &'a str,
    /// The transport, for the Via.
    pub protocol: crate::txn::Protocol,
}

/// A pager-mode MESSAGE (RFC 3428 §4, RFC 3261 §8.1.1).
pub fn request(p: &Page<'_>) -> Result<Message<'static>, Error> {
    request_with_body(p, "text/plain", p.text.as_bytes())
}

/// A MESSAGE like [`request`]'s with a body of another type (e.g. an SMS,
/// `application/vnd.3gpp.sms`); `p.text` is not used.
pub fn request_with_body(
    p: &Page<'_>,
    content_type: &str,
    body: &[u8],
) -> Result<Message<'static>, Error> {
    let mut b = Message::request(Method::Message, p.to)
        .header(
            "Via",
            format!(
                "SIP/2.0/{} {};branch={};rport",
                p.protocol.via_name(),
                p.local,
                p.branch
            ),
        )
        .header("Max-Forwards", 70)
        .header("From", format!("<{}>;tag={}", p.from, p.from_tag))
        .header("To", format!("<{}>", p.to))
        .header("Call-ID", p.call_id)
        .header("CSeq", format!("{} MESSAGE", p.cseq));
    for r in p.routes {
        b = b.header("Route", r);
    }
    b.body(content_type, body.to_vec()).build()
}

/// The address-of-record of a URI, as bindings compare it: `scheme:user@host`
/// with the host in lower case, without port or parameters; `None` for a
/// URI that does not parse.
pub fn aor(uri: &str) -> Option<String> {
    let u = Uri::parse(uri).ok()?;
    let s = u.sip()?;
    let mut out = String::with_capacity(uri.len() + 1);
    out.push_str(if s.secure { "sips:" } else { "sip:" });
    if let Some(user) = s.user {
        out.push_str(user);
        out.push('@');
    }
    let at = out.len();
    // Writing to a String does not fail.
    let _ = std::fmt::Write::write_fmt(&mut out, format_args!("{}", s.host));
    if let Some(host) = out.get_mut(at..) {
        host.make_ascii_lowercase();
    }
    Some(out)
}

/// What to do with a MESSAGE that came to the P-CSCF.
#[derive(Debug)]
pub enum Relay<A> {
    /// Send `request` to `to` through a client transaction.
    Forward {
        /// Where requests to the target go ([`Registry::target`]).
        to: A,
        /// The request to forward.
        request: Message<'static>,
    },
    /// Answer with this status: 403 (the sender is not registered from
    /// where it sent), 404 (no such target), 483 (Max-Forwards reached
    /// 0), 400 (a request we cannot read), 405 (not a MESSAGE).
    Refuse(u16),
}

/// The registered public identities: the address each registered from
/// (where its requests must come from) and the address requests to it go
/// to. The two differ over SAs: a UE sends from its protected client port
/// and takes requests on its protected server port (TS 33.203 §7.1).
#[derive(Clone, Debug, Default)]
pub struct Registry<A> {
    bindings: HashMap<String, Binding<A>>,
}

#[derive(Clone, Debug)]
struct Binding<A> {
    from: A,
    target: A,
}

impl<A: Clone + PartialEq> Registry<A> {
    /// No bindings.
    pub fn new() -> Registry<A> {
        Registry {
            bindings: HashMap::new(),
        }
    }

    /// Binds every IMPU of `impus` (the registered one and its implicit
    /// registration set) to `addr`: registered from it, requests to it.
    pub fn bind(&mut self, impus: &[String], addr: A) {
        self.bind_flow(impus, addr.clone(), addr);
    }

    /// Binds every IMPU of `impus` to a UE registered from `from` that
    /// takes requests at `target`; a binding from before (another flow,
    /// such as the SAs a re-registration replaced) is replaced whole.
    pub fn bind_flow(&mut self, impus: &[String], from: A, target: A) {
        for i in impus {
            if let Some(k) = aor(i) {
                let b = Binding {
                    from: from.clone(),
                    target: target.clone(),
                };
                self.bindings.insert(k, b);
            }
        }
    }

    /// Removes the bindings of `impus`.
    pub fn unbind(&mut self, impus: &[String]) {
        for i in impus {
            if let Some(k) = aor(i) {
                self.bindings.remove(&k);
            }
        }
    }

    /// Where `uri` is registered from.
    pub fn lookup(&self, uri: &str) -> Option<&A> {
        self.bindings.get(&aor(uri)?).map(|b| &b.from)
    }

    /// Where requests to `uri` go.
    pub fn target(&self, uri: &str) -> Option<&A> {
        self.bindings.get(&aor(uri)?).map(|b| &b.target)
    }

    /// The address-of-record of `request`'s sender (its From), when it
    /// is registered from `from`, where the request came from: only a
    /// registered UE, from the address it registered from, may send (TS
    /// 24.229 §5.2.6.3: the P-CSCF knows the UE by its flow). Else the
    /// status to refuse with: 400 (no From to read), 403.
    pub fn sender(&self, request: &Message<'_>, from: &A) -> Result<String, u16> {
        let sender = request.from().map_err(|_| 400u16)?;
        let aor = aor(sender.uri.as_str()).ok_or(403u16)?;
        if self.bindings.get(&aor).map(|b| &b.from) != Some(from) {
            return Err(403);
        }
        Ok(aor)
    }

    /// Decides the fate of `request`, which came from `from`; `via` is the
    /// Via value the P-CSCF puts on top of a forwarded request. A request
    /// forwarded goes to its target's [`Registry::target`].
    pub fn route(&self, request: &Message<'_>, from: &A, via: &str) -> Relay<A> {
        if request.method() != Some(Method::Message) {
            return Relay::Refuse(405);
        }
        let Some(target) = request.request_uri() else {
            return Relay::Refuse(400);
        };
        if let Err(status) = self.sender(request, from) {
            return Relay::Refuse(status);
        }
        let Some(to) = self.target(target.as_str()).cloned() else {
            return Relay::Refuse(404);
        };
        match forward(request, via) {
            Ok(request) => Relay::Forward { to, request },
            Err(status) => Relay::Refuse(status),
        }
    }
}

/// The request to forward (RFC 3261 §16.6): Max-Forwards decremented (483
/// when it is 0), the Route rows removed (this P-CSCF is the end of the
/// route set: it is also the registrar and the S-CSCF), `via` on top.
pub fn forward(request: &Message<'_>, via: &str) -> Result<Message<'static>, u16> {
    let max_forwards = match request.max_forwards() {
        Ok(Some(0)) => return Err(483),
        Ok(Some(n)) => n - 1,
        Ok(None) => 70,
        Err(_) => return Err(400),
    };
    let mut m = request.clone().into_owned();
    m.remove_header("Route");
    m.set_header("Max-Forwards", max_forwards.to_string())
        .map_err(|_| 400u16)?;
    m.insert_header(0, "Via", via.to_owned())
        .map_err(|_| 400u16)?;
    Ok(m)
}

/// The response to relay back (RFC 3261 §16.7 step 3): the top Via value
/// (ours) removed; `None` when it has no second Via to go to.
pub fn response(response: &Message<'_>) -> Option<Message<'static>> {
    let index = response
        .headers()
        .iter()
        .position(|h| h.kind() == HeaderName::Via)?;
    let row = response.headers().get(index)?.value().to_owned();
    let vias = Via::parse_list(&row).ok()?;
    let mut m = response.clone().into_owned();
    if vias.len() > 1 {
        // Our value is the first of a comma-separated row: keep the rest.
        let rest = row.split_once(',')?.1.trim().to_owned();
        m.replace_header(index, rest).ok()?;
    } else {
        let mut headers: Vec<(String, String)> = m
            .headers()
            .iter()
            .map(|h| (h.name().to_owned(), h.value().to_owned()))
            .collect();
        headers.remove(index);
        if !headers
            .iter()
            .any(|(n, _)| HeaderName::from_name(n) == HeaderName::Via)
        {
            return None;
        }
        m.remove_header("Via");
        let mut at = index;
        for (n, v) in headers {
            if HeaderName::from_name(&n) == HeaderName::Via {
                m.insert_header(at, n, v).ok()?;
                at += 1;
            }
        }
    }
    Some(m)
}

/// What a UE of this layer makes of a request that reached it: the
/// response, and the page when it was a MESSAGE.
#[derive(Debug)]
pub struct Answer {
    /// 200 for a MESSAGE (RFC 3428 §7); 405 with `Allow: MESSAGE` for any
    /// other method, which this UA does not take (RFC 3261 §8.2.1).
    pub response: Message<'static>,
    /// The MESSAGE's sender, recipient and body.
    pub page: Option<Received>,
}

/// A MESSAGE received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// From's URI.
    pub from: String,
    /// To's URI.
    pub to: String,
    /// Content-Type, when given.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// The UE's answer to a request of a new server transaction, with
/// `local_tag` as its To tag.
pub fn answer(request: &Message<'_>, local_tag: &str) -> Result<Answer, Error> {
    let message = request.method() == Some(Method::Message);
    let status = if message { 200 } else { 405 };
    let mut b = crate::sip::Builder::response_to(request, status, None).to_tag(local_tag);
    if !message {
        b = b.header("Allow", "MESSAGE");
    }
    let response = b.build()?;
    let page = message.then(|| Received {
        from: request
            .from()
            .map(|f| f.uri.to_string())
            .unwrap_or_default(),
        to: request.to().map(|t| t.uri.to_string()).unwrap_or_default(),
        content_type: request.content_type().ok().flatten().map(|t| t.to_string()),
        body: request.body().to_vec(),
    });
    Ok(Answer { response, page })
}

/// The status a relay answers the sender with when forwarding failed
/// (RFC 3261 §16.7 step 6, §16.8): 408 when the forwarded request got no
/// final response (its Timer F), 500 when it could not be sent.
pub fn relay_failure(timed_out: bool) -> u16 {
    if timed_out { 408 } else { 500 }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn page(routes: &[String]) -> Message<'static> {
        request(&Page {
            from: "sip:bob@ims.example.org",
            to: "sip:alice@ims.example.org",
            local: "127.0.0.1:5070",
            call_id: "c1",
            from_tag: "t1",
            branch: "z9hG4bKm1",
            cseq: 1,
            routes,
            text: "hello",
            protocol: crate::txn::Protocol::Udp,
        })
        .unwrap()
    }

    fn registry() -> Registry<u16> {
        let mut r = Registry::new();
        r.bind(&["sip:alice@IMS.example.org".into()], 1);
        r.bind(&["sip:bob@ims.example.org".into()], 2);
        r
    }

    const VIA: &str = "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKp1";

    #[test]
    fn the_request() {
        let m = page(&["<sip:pcscf.ims.example.org;lr>".into()]);
        assert_eq!(m.method(), Some(Method::Message));
        assert_eq!(m.body(), b"hello");
        assert_eq!(m.cseq().unwrap().seq, 1);
        assert_eq!(m.routes().unwrap().len(), 1);
        assert_eq!(m.max_forwards().unwrap(), Some(70));
        assert_eq!(m.content_type().unwrap().unwrap().to_string(), "text/plain");
    }

    #[test]
    fn forwards_to_where_the_target_registered() {
        let m = page(&["<sip:pcscf.ims.example.org;lr>".into()]);
        let Relay::Forward { to, request } = registry().route(&m, &2, VIA) else {
            panic!()
        };
        assert_eq!(to, 1);
        let vias = request.vias().unwrap();
        assert_eq!(vias.len(), 2);
        assert_eq!(vias[0].branch, Some("z9hG4bKp1"));
        assert_eq!(request.max_forwards().unwrap(), Some(69));
        assert!(request.routes().unwrap().is_empty());
        assert_eq!(request.body(), b"hello");
    }

    /// Over SAs a UE registers from its port-c and takes requests on its
    /// port-s: requests and NOTIFYs go to the target, senders are checked
    /// against the address they registered from, and a re-registration
    /// over another flow replaces both.
    #[test]
    fn requests_go_to_the_target_and_senders_are_known_by_where_they_registered() {
        let mut r = registry();
        r.bind_flow(&["sip:alice@ims.example.org".into()], 10, 11);
        assert_eq!(r.lookup("sip:alice@ims.example.org"), Some(&10));
        assert_eq!(r.target("sip:alice@ims.example.org"), Some(&11));
        let Relay::Forward { to, .. } = r.route(&page(&[]), &2, VIA) else {
            panic!()
        };
        assert_eq!(to, 11);
        // Alice sends from her port-c, not from her port-s.
        let back = request(&Page {
            from: "sip:alice@ims.example.org",
            to: "sip:bob@ims.example.org",
            local: "127.0.0.1:5072",
            call_id: "c2",
            from_tag: "t2",
            branch: "z9hG4bKm2",
            cseq: 1,
            routes: &[],
            text: "hi",
            protocol: crate::txn::Protocol::Udp,
        })
        .unwrap();
        assert!(matches!(
            r.route(&back, &10, VIA),
            Relay::Forward { to: 2, .. }
        ));
        assert!(matches!(r.route(&back, &11, VIA), Relay::Refuse(403)));
        // A handover to new SAs: nothing of the old flow is left.
        r.bind_flow(&["sip:alice@ims.example.org".into()], 20, 11);
        assert_eq!(r.lookup("sip:alice@ims.example.org"), Some(&20));
        assert!(matches!(r.route(&back, &10, VIA), Relay::Refuse(403)));
        // Registered again without SAs: requests go where it registers from.
        r.bind(&["sip:alice@ims.example.org".into()], 30);
        assert_eq!(r.target("sip:alice@ims.example.org"), Some(&30));
    }

    #[test]
    fn refusals() {
        let r = registry();
        let m = page(&[]);
        // Not from where bob registered.
        assert!(matches!(r.route(&m, &7, VIA), Relay::Refuse(403)));
        let mut unknown = m.clone();
        unknown
            .set_header("From", "<sip:eve@ims.example.org>;tag=x")
            .unwrap();
        assert!(matches!(r.route(&unknown, &2, VIA), Relay::Refuse(403)));
        let mut r2 = registry();
        r2.unbind(&["sip:alice@ims.example.org".into()]);
        assert!(matches!(r2.route(&m, &2, VIA), Relay::Refuse(404)));
        let mut hops = m.clone();
        hops.set_header("Max-Forwards", "0").unwrap();
        assert!(matches!(r.route(&hops, &2, VIA), Relay::Refuse(483)));
        // The sender's AOR, as bindings compare it, or 403.
        assert_eq!(r.sender(&m, &2), Ok("sip:bob@ims.example.org".into()));
        assert_eq!(r.sender(&m, &1), Err(403));
        assert_eq!(r.sender(&unknown, &2), Err(403));
    }

    #[test]
    fn a_message_with_another_body() {
        let p = Page {
            from: "sip:bob@ims.example.org",
            to: "sip:+15555550000@ims.example.org",
            local: "127.0.0.1:5070",
            call_id: "c1",
            from_tag: "t1",
            branch: "z9hG4bKm1",
            cseq: 1,
            routes: &[],
            text: "not used",
            protocol: crate::txn::Protocol::Tcp,
        };
        let m = request_with_body(&p, "application/vnd.3gpp.sms", &[0, 1, 0xff]).unwrap();
        assert_eq!(m.body(), [0, 1, 0xff]);
        assert_eq!(m.top_via().unwrap().transport, "TCP");
        assert_eq!(
            m.content_type().unwrap().unwrap().to_string(),
            "application/vnd.3gpp.sms"
        );
    }

    #[test]
    fn the_response_loses_our_via() {
        let m = page(&[]);
        let Relay::Forward { request, .. } = registry().route(&m, &2, VIA) else {
            panic!()
        };
        let ok = crate::sip::Builder::response_to(&request, 200, None)
            .to_tag("a")
            .build()
            .unwrap();
        let back = response(&ok).unwrap();
        let vias = back.vias().unwrap();
        assert_eq!(vias.len(), 1);
        assert_eq!(vias[0].branch, Some("z9hG4bKm1"));
        // Our Via and the UE's in one row.
        let mut one_row = ok.clone();
        one_row.remove_header("Via");
        one_row
            .insert_header(
                0,
                "Via",
                format!("{VIA}, SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKm1"),
            )
            .unwrap();
        let vias2 = response(&one_row).unwrap();
        assert_eq!(vias2.vias().unwrap()[0].branch, Some("z9hG4bKm1"));
        // Nothing left to send it to.
        assert!(response(&back).is_none());
    }

    #[test]
    fn a_ue_answers_message_200_and_other_requests_405() {
        let msg = Message::parse(
            b"MESSAGE sip:b@example.org SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\r\n\
From: <sip:a@example.org>;tag=1\r\nTo: <sip:b@example.org>\r\nCall-ID: c\r\n\
CSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
        )
        .unwrap();
        let a = answer(&msg, "t").unwrap();
        assert_eq!(a.response.status(), Some(200));
        assert_eq!(a.response.to().unwrap().tag(), Some("t"));
        let page = a.page.unwrap();
        assert_eq!(
            (page.from.as_str(), page.body.as_slice()),
            ("sip:a@example.org", &b"hi"[..])
        );
        assert_eq!(page.content_type.as_deref(), Some("text/plain"));
        let text = String::from_utf8(msg.to_bytes())
            .unwrap()
            .replace("MESSAGE", "OPTIONS");
        let other = Message::parse(text.as_bytes()).unwrap();
        let a = answer(&other, "t").unwrap();
        assert_eq!(a.response.status(), Some(405));
        assert_eq!(a.response.header("Allow"), Some("MESSAGE"));
        assert!(a.page.is_none());
        assert_eq!((relay_failure(true), relay_failure(false)), (408, 500));
    }
}
