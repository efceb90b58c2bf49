//! The setkey parser on hostile input.

/// Target `setkey_parse`: `sadb::parse` on arbitrary text (the bytes, UTF-8
/// lossily decoded).
///
/// Invariants: it returns `Ok` or a typed error and never panics; whatever
/// parses prints (`sadb::print_script`) to text that parses back to the
/// same statements.
pub fn setkey_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(stmts) = sadb::parse(&text) {
        let values: Vec<sadb::Statement> = stmts.into_iter().map(|l| l.value).collect();
        let printed = sadb::print_script(&values);
        let again: Vec<sadb::Statement> = match sadb::parse(&printed) {
            Ok(v) => v.into_iter().map(|l| l.value).collect(),
            Err(e) => panic!("printed script does not parse: {e}\n{printed}"),
        };
        assert_eq!(
            values, again,
            "print->parse changed the statements:\n{printed}"
        );
    }
}
