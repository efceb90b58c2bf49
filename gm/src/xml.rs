//! A small namespace-aware element tree over `quick-xml`, for the XML
//! bodies of the Gm interface (reginfo): bounded in size, depth and
//! element count, no DOCTYPE (so no entity can be defined), text with
//! the predefined and character references resolved.

use quick_xml::NsReader;
use quick_xml::events::Event as Xml;
use quick_xml::name::ResolveResult;

/// Documents larger than this are refused.
pub(crate) const MAX_DOCUMENT: usize = 256 * 1024;
const MAX_DEPTH: usize = 32;
const MAX_ELEMENTS: usize = 10_000;

/// Why a document was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XmlError {
    /// Not well-formed (quick-xml's reason).
    Malformed(String),
    /// Too large, too deep, or too many elements.
    TooLarge,
    /// A DOCTYPE.
    Doctype,
}

impl std::fmt::Display for XmlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XmlError::Malformed(e) => write!(f, "not well-formed XML: {e}"),
            XmlError::TooLarge => f.write_str("document too large, too deep or too long"),
            XmlError::Doctype => f.write_str("a DOCTYPE is not accepted"),
        }
    }
}

/// One attribute: namespace (if prefixed), local name, value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Attr {
    pub ns: Option<String>,
    pub name: String,
    pub value: String,
}

/// One element.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct Element {
    pub ns: Option<String>,
    pub name: String,
    pub attrs: Vec<Attr>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    /// An unprefixed attribute's value.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_none() && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// Whether it is `{ns}name`.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns.as_deref() == Some(ns) && self.name == name
    }

    /// The children `{ns}name`.
    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.is(ns, name))
    }
}

/// Parses `text` into its root element.
pub(crate) fn parse(text: &str) -> Result<Element, XmlError> {
    if text.len() > MAX_DOCUMENT {
        return Err(XmlError::TooLarge);
    }
    let mut r = NsReader::from_str(text);
    r.config_mut().expand_empty_elements = true;
    r.config_mut().check_end_names = true;
    let bad = |e: String| XmlError::Malformed(e);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let (ns, ev) = r.read_resolved_event().map_err(|e| bad(e.to_string()))?;
        let ns = match ns {
            ResolveResult::Bound(n) => Some(String::from_utf8_lossy(n.as_ref()).into_owned()),
            _ => None,
        };
        match ev {
            Xml::Eof => break,
            Xml::DocType(_) => return Err(XmlError::Doctype),
            Xml::Start(e) => {
                count += 1;
                if stack.len() >= MAX_DEPTH || count > MAX_ELEMENTS {
                    return Err(XmlError::TooLarge);
                }
                if root.is_some() {
                    return Err(bad("content after the root element".into()));
                }
                let mut attrs = Vec::new();
                for a in e.attributes() {
                    let a = a.map_err(|e| bad(e.to_string()))?;
                    let (ans, aname) = r.resolver().resolve_attribute(a.key);
                    let ans = match ans {
                        ResolveResult::Bound(n) => {
                            Some(String::from_utf8_lossy(n.as_ref()).into_owned())
                        }
                        _ => None,
                    };
                    let value = a
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|e| bad(e.to_string()))?
                        .into_owned();
                    attrs.push(Attr {
                        ns: ans,
                        name: String::from_utf8_lossy(aname.as_ref()).into_owned(),
                        value,
                    });
                }
                stack.push(Element {
                    ns,
                    name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                    attrs,
                    children: Vec::new(),
                    text: String::new(),
                });
            }
            Xml::End(_) => {
                let done = stack.pop().ok_or_else(|| bad("unbalanced".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            Xml::Text(t) => {
                let s = t.decode().map_err(|e| bad(e.to_string()))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&s);
                } else if !s.trim().is_empty() {
                    return Err(bad("text outside the root element".into()));
                }
            }
            Xml::CData(c) => {
                let s = c.decode().map_err(|e| bad(e.to_string()))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&s);
                }
            }
            Xml::GeneralRef(g) => {
                let c = match g.resolve_char_ref().map_err(|e| bad(e.to_string()))? {
                    Some(c) => c,
                    None => match g.as_ref() {
                        b"amp" => '&',
                        b"lt" => '<',
                        b"gt" => '>',
                        b"quot" => '"',
                        b"apos" => '\'',
                        _ => return Err(bad("an undefined entity".into())),
                    },
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push(c);
                }
            }
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(bad("unclosed elements".into()));
    }
    root.ok_or_else(|| bad("no root element".into()))
}
