//! `sip parse`: a message's typed view as JSON. Every value comes from
//! `gm::sip`'s typed accessors; this module only chooses the shape.

use gm::sip::header::{self, Auth, CSeq, Contacts, MediaType, NameAddr, Rport, SecMechanism, Via};
use gm::sip::{HeaderName, Message, Params, Uri};

use crate::json::Json;

/// The typed view of `msg` (which [`Message::validate`] accepted).
pub fn message(msg: &Message<'_>) -> Result<Json, gm::sip::Error> {
    let mut o = Json::obj();
    match (msg.method(), msg.status()) {
        (Some(m), _) => {
            o.set("type", "request").set("method", m.as_str());
            if let Some(u) = msg.request_uri() {
                o.set("request_uri", uri(&u));
            }
        }
        (None, Some(s)) => {
            o.set("type", "response")
                .set("status", s)
                .set("reason", msg.reason().unwrap_or_default());
        }
        (None, None) => {}
    }
    o.set("version", msg.version());
    o.set(
        "headers",
        Json::Arr(
            msg.headers()
                .iter()
                .map(|h| {
                    let mut x = Json::obj();
                    x.set("name", h.name()).set("value", h.value());
                    x
                })
                .collect(),
        ),
    );
    o.set("typed", typed(msg)?);
    let mut body = Json::obj();
    body.set("length", msg.body().len());
    match std::str::from_utf8(msg.body()) {
        Ok(t) => body.set("text", t),
        Err(_) => body.set("hex", hex::encode(msg.body())),
    };
    o.set("body", body);
    Ok(o)
}

fn typed(msg: &Message<'_>) -> Result<Json, gm::sip::Error> {
    use HeaderName as H;
    let mut t = Json::obj();
    let has = |k: H| msg.rows(k).next().is_some();
    if has(H::Via) {
        t.set("via", Json::Arr(msg.vias()?.iter().map(via).collect()));
    }
    // From, To, Call-ID, CSeq, Max-Forwards appear once; a message that
    // repeats them (RFC 4475 §3.3.8) shows every row's value in an array.
    let rows = |k: H, f: &dyn Fn(&str) -> Result<Json, gm::sip::Syntax>| {
        let v: Result<Vec<Json>, gm::sip::Error> = msg
            .rows(k)
            .map(|h| f(h.value()).map_err(|syntax| gm::sip::Error::Header { name: k, syntax }))
            .collect();
        v.map(|mut v| match v.len() {
            0 => None,
            1 => v.pop(),
            _ => Some(Json::Arr(v)),
        })
    };
    t.set_opt(
        "from",
        rows(H::From, &|v| NameAddr::parse(v).map(|a| name_addr(&a)))?,
    );
    t.set_opt(
        "to",
        rows(H::To, &|v| NameAddr::parse(v).map(|a| name_addr(&a)))?,
    );
    t.set_opt(
        "call_id",
        rows(H::CallId, &|v| header::call_id(v).map(Json::from))?,
    );
    t.set_opt(
        "cseq",
        rows(H::CSeq, &|v| {
            CSeq::parse(v).map(|c| {
                let mut x = Json::obj();
                x.set("seq", c.seq).set("method", c.method.as_str());
                x
            })
        })?,
    );
    t.set_opt(
        "max_forwards",
        rows(H::MaxForwards, &|v| header::number(v, 255).map(Json::from))?,
    );
    t.set_opt("expires", msg.expires()?);
    t.set_opt("min_expires", msg.min_expires()?);
    match msg.contacts()? {
        Some(Contacts::Star) => {
            t.set("contact", "*");
        }
        Some(Contacts::List(l)) => {
            t.set("contact", Json::Arr(l.iter().map(contact).collect()));
        }
        None => {}
    }
    for (key, kind, list) in [
        ("route", H::Route, msg.routes()?),
        ("record_route", H::RecordRoute, msg.record_routes()?),
        ("service_route", H::ServiceRoute, msg.service_routes()?),
        ("path", H::Path, msg.paths()?),
        (
            "p_associated_uri",
            H::PAssociatedUri,
            msg.p_associated_uris()?,
        ),
        (
            "p_preferred_identity",
            H::PPreferredIdentity,
            msg.p_preferred_identities()?,
        ),
        (
            "p_asserted_identity",
            H::PAssertedIdentity,
            msg.p_asserted_identities()?,
        ),
    ] {
        if has(kind) {
            t.set(key, Json::Arr(list.iter().map(name_addr).collect()));
        }
    }
    for (key, kind) in [
        ("www_authenticate", H::WwwAuthenticate),
        ("proxy_authenticate", H::ProxyAuthenticate),
        ("authorization", H::Authorization),
        ("proxy_authorization", H::ProxyAuthorization),
    ] {
        if has(kind) {
            t.set(key, Json::Arr(msg.auth(kind)?.iter().map(auth).collect()));
        }
    }
    for (key, kind) in [
        ("security_client", H::SecurityClient),
        ("security_server", H::SecurityServer),
        ("security_verify", H::SecurityVerify),
    ] {
        if has(kind) {
            t.set(
                key,
                Json::Arr(msg.security(kind)?.iter().map(sec).collect()),
            );
        }
    }
    if let Some(e) = msg.event()? {
        let mut x = Json::obj();
        x.set("type", e.event_type)
            .set("package", e.package())
            .set("params", params(&e.params));
        t.set("event", x);
    }
    if let Some(s) = msg.subscription_state()? {
        let mut x = Json::obj();
        x.set("state", s.state)
            .set_opt("reason", s.reason)
            .set_opt("expires", s.expires)
            .set_opt("retry_after", s.retry_after)
            .set("params", params(&s.params));
        t.set("subscription_state", x);
    }
    t.set_opt("sip_etag", msg.sip_etag()?);
    t.set_opt("sip_if_match", msg.sip_if_match()?);
    if let Some(c) = msg.content_type()? {
        t.set("content_type", media(&c));
    }
    t.set_opt("content_length", msg.content_length());
    if let Some(a) = msg.accept()? {
        t.set("accept", Json::Arr(a.iter().map(media).collect()));
    }
    for (key, kind) in [
        ("require", H::Require),
        ("proxy_require", H::ProxyRequire),
        ("supported", H::Supported),
        ("unsupported", H::Unsupported),
    ] {
        if has(kind) {
            t.set(key, msg.option_tags(kind)?);
        }
    }
    Ok(t)
}

fn params(p: &Params<'_>) -> Json {
    Json::Obj(
        p.iter()
            .map(|x| {
                let v = x
                    .unquoted()
                    .map_or(Json::Bool(true), |v| Json::Str(v.into_owned()));
                (x.name.to_owned(), v)
            })
            .collect(),
    )
}

fn uri(u: &Uri<'_>) -> Json {
    let mut o = Json::obj();
    o.set("text", u.as_str()).set("scheme", u.scheme());
    match u {
        Uri::Sip(s) => {
            o.set_opt("user", s.user)
                .set_opt("password", s.password)
                .set("host", s.host.to_string())
                .set_opt("port", s.port)
                .set("params", params(&s.params));
            if s.headers.is_some() {
                o.set(
                    "headers",
                    Json::Obj(
                        s.header_fields()
                            .map(|(n, v)| (n.to_owned(), Json::from(v)))
                            .collect(),
                    ),
                );
            }
        }
        Uri::Other(x) => {
            o.set("rest", x.rest);
        }
    }
    o
}

fn name_addr(a: &NameAddr<'_>) -> Json {
    let mut o = Json::obj();
    o.set_opt("display_name", a.display_name().map(|d| d.into_owned()))
        .set("uri", uri(&a.uri))
        .set_opt("tag", a.tag())
        .set("params", params(&a.params));
    o
}

fn contact(a: &NameAddr<'_>) -> Json {
    let mut o = name_addr(a);
    o.set_opt("expires", a.expires())
        .set_opt("q", a.q().map(|q| q.to_string()))
        .set_opt("sip_instance", a.sip_instance().map(|s| s.into_owned()));
    let tags: Vec<(String, Json)> = a
        .feature_tags()
        .map(|(n, v)| {
            (
                n.to_owned(),
                v.map_or(Json::Bool(true), |v| Json::Str(v.into_owned())),
            )
        })
        .collect();
    if !tags.is_empty() {
        o.set("feature_tags", Json::Obj(tags));
    }
    o
}

fn via(v: &Via<'_>) -> Json {
    let mut o = Json::obj();
    o.set("protocol", v.protocol)
        .set("version", v.version)
        .set("transport", v.transport)
        .set("host", v.host.to_string())
        .set_opt("port", v.port)
        .set_opt("branch", v.branch)
        .set_opt("received", v.received.map(|r| r.to_string()));
    match v.rport {
        Rport::Absent => {}
        Rport::Requested => {
            o.set("rport", true);
        }
        Rport::Port(p) => {
            o.set("rport", p);
        }
    }
    o.set_opt("ttl", v.ttl)
        .set_opt("maddr", v.maddr.map(|m| m.to_string()))
        .set_opt("comp", v.comp())
        .set("params", params(&v.params));
    o
}

fn auth(a: &Auth<'_>) -> Json {
    let mut o = Json::obj();
    o.set("scheme", a.scheme)
        .set_opt("algorithm", a.algorithm().map(|x| x.as_str()))
        .set("params", params(&a.params));
    o
}

fn sec(s: &SecMechanism<'_>) -> Json {
    let mut o = Json::obj();
    o.set("mechanism", s.mechanism)
        .set_opt("q", s.q.map(|q| q.to_string()));
    if let Some(x) = s.ipsec {
        let mut i = Json::obj();
        i.set_opt("alg", x.alg)
            .set_opt("ealg", x.ealg)
            .set_opt("prot", x.prot)
            .set_opt("mod", x.mode)
            .set_opt("spi_c", x.spi_c)
            .set_opt("spi_s", x.spi_s)
            .set_opt("port_c", x.port_c)
            .set_opt("port_s", x.port_s);
        o.set("ipsec_3gpp", i);
    }
    o.set("params", params(&s.params));
    o
}

fn media(m: &MediaType<'_>) -> Json {
    let mut o = Json::obj();
    o.set("type", m.mtype)
        .set("subtype", m.subtype)
        .set("params", params(&m.params));
    o
}
