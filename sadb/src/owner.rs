//! Owner tags: which client installed an SA or a policy, so that it can
//! remove everything it installed in one call (see
//! [`crate::Databases::delete_owned`]).

use core::fmt;
use std::sync::Arc;

use crate::Error;

/// The longest owner tag.
pub const MAX_OWNER_LEN: usize = 64;

/// A client's tag on the SAs and policies it installed: 1 to 64 characters
/// among ASCII letters, digits and `.`, `_`, `-`, `:`, `@` (so that it
/// prints as one word in dumps and control requests).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner(Arc<str>);

impl Owner {
    /// Checks and makes a tag.
    pub fn new(tag: &str) -> Result<Owner, Error> {
        let ok = !tag.is_empty()
            && tag.len() <= MAX_OWNER_LEN
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_:@".contains(&b));
        if !ok {
            return Err(Error::Inconsistent {
                pos: None,
                reason: format!(
                    "invalid owner tag {tag:?}: 1 to {MAX_OWNER_LEN} letters, digits or . _ - : @"
                ),
            });
        }
        Ok(Owner(Arc::from(tag)))
    }

    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::str::FromStr for Owner {
    type Err = Error;
    fn from_str(s: &str) -> Result<Owner, Error> {
        Owner::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_one_printable_word() {
        assert_eq!(Owner::new("imsua-1234").unwrap().as_str(), "imsua-1234");
        assert!(Owner::new("ue@192.0.2.1:5060").is_ok());
        for bad in ["", "two words", "semi;colon", "new\nline", &"x".repeat(65)] {
            assert!(Owner::new(bad).is_err(), "{bad:?}");
        }
    }
}
