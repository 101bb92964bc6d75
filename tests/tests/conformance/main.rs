//! The conformance suite (`tglink_tests::conformance`), written once and run against both
//! adapters: the embedded default (a SQLite file + a local master key) and DynamoDB + KMS served
//! by moto_server over HTTP. Each adapter's module also checks that no suite function is left out
//! of [`tglink_tests::conformance_suite!`].

mod sqlite {
    tglink_tests::conformance_suite!(tglink_tests::fixtures::Backend::Sqlite);
}

mod dynamodb {
    tglink_tests::conformance_suite!(tglink_tests::fixtures::Backend::DynamoDb);
}
