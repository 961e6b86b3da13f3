//! The `url` of `NatsBridge::connect`: one server or a comma-separated
//! list, with the credentials written in it.

mod common;

use std::error::Error;

use agentbus::EventBus;
use agentbus_nats::{BridgeConfig, ConnectError, NatsBridge};
use agentbus_testkit::{free_port, NatsServer};
use common::{runtime, shut_down};

fn connect(url: &str) -> Result<NatsBridge, ConnectError> {
    runtime().block_on(NatsBridge::connect(
        url,
        &EventBus::new(),
        BridgeConfig::default().name("servers-test"),
    ))
}

/// The error and its causes, as `Display` and `Debug` show them.
fn whole_chain(error: &ConnectError) -> String {
    let mut text = format!("{error} {error:?}");
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(" {cause} {cause:?}"));
        source = cause.source();
    }
    text
}

#[test]
fn a_server_list_is_tried_server_by_server() {
    let (a, b) = (free_port(), free_port());
    for list in [
        format!("nats://127.0.0.1:{a},nats://127.0.0.1:{b}"),
        format!("nats://127.0.0.1:{a}, 127.0.0.1:{b}"),
    ] {
        let error = connect(&list).expect_err("nothing listens");
        // Refused (an I/O error), not a list taken as one malformed URL.
        let ConnectError::Connect(cause) = &error else {
            panic!("{list}: {error:?}");
        };
        assert_eq!(
            cause.kind(),
            async_nats::ConnectErrorKind::Io,
            "{list}: {}",
            whole_chain(&error)
        );
    }
}

#[test]
fn bad_server_lists_are_typed_errors_without_their_secrets() {
    let port = free_port();
    let not_nats = connect(&format!("http://ann:hunter2@127.0.0.1:{port}")).err();
    assert!(
        matches!(not_nats, Some(ConnectError::Url(_))),
        "{not_nats:?}"
    );
    let mixed = connect(&format!(
        "nats://ann:hunter2@127.0.0.1:{port},nats://bob:swordfish@127.0.0.1:{port}"
    ))
    .err();
    assert!(matches!(mixed, Some(ConnectError::Config(_))), "{mixed:?}");
    for error in [not_nats, mixed].iter().flatten() {
        let text = whole_chain(error);
        assert!(
            !text.contains("hunter2") && !text.contains("swordfish"),
            "{text}"
        );
    }
}

#[test]
fn a_user_and_password_in_the_url_authenticate() {
    let Some(server) = NatsServer::start_with_args_or_skip(
        "a_user_and_password_in_the_url_authenticate",
        &["--user", "ann", "--pass", "p@ss word"],
    ) else {
        return;
    };
    let port = server.url().rsplit(':').next().unwrap().to_owned();
    let bridge = connect(&format!("nats://ann:p%40ss%20word@127.0.0.1:{port}"))
        .expect("the right password is accepted");
    shut_down(&runtime(), bridge);
    let wrong = connect(&format!("nats://ann:nope@127.0.0.1:{port}"))
        .expect_err("a wrong password is refused");
    assert!(!whole_chain(&wrong).contains("nope"), "{wrong:?}");
}

#[test]
fn a_token_in_the_url_authenticates() {
    let Some(server) = NatsServer::start_with_args_or_skip(
        "a_token_in_the_url_authenticates",
        &["--auth", "s3cret"],
    ) else {
        return;
    };
    let port = server.url().rsplit(':').next().unwrap().to_owned();
    let bridge =
        connect(&format!("nats://s3cret@127.0.0.1:{port}")).expect("the right token is accepted");
    shut_down(&runtime(), bridge);
    assert!(connect(&format!("nats://wrong@127.0.0.1:{port}")).is_err());
}
