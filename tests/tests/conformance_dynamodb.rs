//! The conformance suite on DynamoDB and KMS, served by moto_server over HTTP.
tglink_tests::conformance_suite!(tglink_tests::fixtures::Backend::DynamoDb);
