//! The conformance suite on the embedded default: a SQLite file and a local master key.
tglink_tests::conformance_suite!(tglink_tests::fixtures::Backend::Sqlite);
