#![no_main]
//! The setkey parser on hostile input: it must return Ok or a typed error,
//! never panic or hang; whatever parses must print and parse back to the
//! same statements.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(stmts) = sadb::parse(&text) {
        let values: Vec<sadb::Statement> = stmts.into_iter().map(|l| l.value).collect();
        let printed = sadb::print_script(&values);
        let again: Vec<sadb::Statement> = match sadb::parse(&printed) {
            Ok(v) => v.into_iter().map(|l| l.value).collect(),
            Err(e) => panic!("printed script does not parse: {e}\n{printed}"),
        };
        assert_eq!(values, again, "print->parse changed the statements:\n{printed}");
    }
});
