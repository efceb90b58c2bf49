//! Request methods.

use std::fmt;

/// A request method. Methods are case-sensitive tokens (RFC 3261 §7.1,
/// §25.1: `INVITEm = %x49.4E.56.49.54.45`); any other token is an
/// [`Method::Extension`], which a UAS that does not know it answers with 501
/// (RFC 3261 §8.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method<'s> {
    /// INVITE (RFC 3261).
    Invite,
    /// ACK (RFC 3261).
    Ack,
    /// OPTIONS (RFC 3261).
    Options,
    /// BYE (RFC 3261).
    Bye,
    /// CANCEL (RFC 3261).
    Cancel,
    /// REGISTER (RFC 3261).
    Register,
    /// PRACK (RFC 3262).
    Prack,
    /// SUBSCRIBE (RFC 6665).
    Subscribe,
    /// NOTIFY (RFC 6665).
    Notify,
    /// PUBLISH (RFC 3903).
    Publish,
    /// MESSAGE (RFC 3428).
    Message,
    /// REFER (RFC 3515).
    Refer,
    /// INFO (RFC 6086).
    Info,
    /// UPDATE (RFC 3311).
    Update,
    /// Any other token.
    Extension(&'s str),
}

const KNOWN: [(Method<'static>, &str); 14] = [
    (Method::Invite, "INVITE"),
    (Method::Ack, "ACK"),
    (Method::Options, "OPTIONS"),
    (Method::Bye, "BYE"),
    (Method::Cancel, "CANCEL"),
    (Method::Register, "REGISTER"),
    (Method::Prack, "PRACK"),
    (Method::Subscribe, "SUBSCRIBE"),
    (Method::Notify, "NOTIFY"),
    (Method::Publish, "PUBLISH"),
    (Method::Message, "MESSAGE"),
    (Method::Refer, "REFER"),
    (Method::Info, "INFO"),
    (Method::Update, "UPDATE"),
];

impl<'s> Method<'s> {
    /// The method a token names (the caller has checked it is a token).
    pub fn from_token(s: &'s str) -> Method<'s> {
        KNOWN
            .iter()
            .find(|(_, n)| *n == s)
            .map_or(Method::Extension(s), |(m, _)| *m)
    }

    /// The method's name.
    pub fn as_str(&self) -> &'s str {
        match self {
            Method::Extension(s) => s,
            m => KNOWN.iter().find(|(k, _)| k == m).map_or("", |(_, n)| n),
        }
    }

    /// The name of a known method as a `'static` string (`None` for an
    /// [`Method::Extension`]): a name to keep without a copy.
    pub fn known_name(&self) -> Option<&'static str> {
        KNOWN.iter().find(|(k, _)| k == self).map(|(_, n)| *n)
    }

    /// Whether this is one of the methods of RFC 3261 and its extensions
    /// listed above (not an [`Method::Extension`]).
    pub fn is_known(&self) -> bool {
        !matches!(self, Method::Extension(_))
    }
}

impl fmt::Display for Method<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_case_sensitive() {
        assert_eq!(Method::from_token("REGISTER"), Method::Register);
        assert_eq!(
            Method::from_token("register"),
            Method::Extension("register")
        );
        assert_eq!(Method::from_token("RE%47IST%45R").as_str(), "RE%47IST%45R");
        for (m, n) in KNOWN {
            assert_eq!(m.as_str(), n);
            assert!(m.is_known());
            assert_eq!(Method::from_token(n).known_name(), Some(n));
        }
        assert_eq!(Method::from_token("FOO").known_name(), None);
    }
}
