//! `Redacted`: every kind of location string shows without its secrets.

use agentbus::Redacted;

fn shown(location: &str) -> String {
    Redacted(location).to_string()
}

#[track_caller]
fn assert_shown(location: &str, expected: &str) {
    assert_eq!(shown(location), expected, "shown form of {location:?}");
    // `Debug` (a struct's field in a log line) is the shown form, quoted.
    assert_eq!(
        format!("{:?}", Redacted(location)),
        format!("\"{expected}\""),
        "debug form of {location:?}"
    );
}

#[test]
fn sqlite_locations_and_paths_are_shown_as_given() {
    for location in [
        "sqlite:./events.db",
        "sqlite://var/lib/events.db",
        "sqlite:/home/me/dir@2/events:old.db",
        "./events.db",
        "/srv/mail@home/events.db",
        // Not a scheme (a space): a path, whatever follows.
        "my backups://2024@events.db",
        "memory",
        "none",
    ] {
        assert_shown(location, location);
    }
}

#[test]
fn postgres_url_passwords_are_hidden() {
    assert_shown(
        "postgres://app:hunter2@127.0.0.1:5432/events",
        "postgres://app:***@127.0.0.1:5432/events",
    );
    assert_shown(
        "postgresql://app:hunter2@db/events",
        "postgresql://app:***@db/events",
    );
    // The role name alone is not a secret.
    assert_shown(
        "postgres://postgres@127.0.0.1/events",
        "postgres://postgres@127.0.0.1/events",
    );
}

#[test]
fn a_password_holding_at_slash_or_colon_is_hidden_whole() {
    assert_shown(
        "postgres://app:p@ss@w0rd@db:5432/events",
        "postgres://app:***@db:5432/events",
    );
    assert_shown(
        "postgres://app:a/b:c@d@db/events",
        "postgres://app:***@db/events",
    );
    assert_shown(
        "nats://ann:x@y@127.0.0.1:4222",
        "nats://ann:***@127.0.0.1:4222",
    );
}

#[test]
fn secret_query_parameters_are_hidden() {
    assert_shown(
        "postgres://app@db/events?password=hunter2",
        "postgres://app@db/events?password=***",
    );
    assert_shown(
        "postgres://db/events?sslmode=disable&PASSWORD=hunter2&application_name=a",
        "postgres://db/events?sslmode=disable&PASSWORD=***&application_name=a",
    );
    assert_shown(
        "http://127.0.0.1:7878/?token=s3cret",
        "http://127.0.0.1:7878/?token=***",
    );
    assert_shown(
        "nats://127.0.0.1:4222?auth_token=s3cret#secret=x",
        "nats://127.0.0.1:4222?auth_token=***#secret=***",
    );
}

#[test]
fn postgres_key_value_passwords_are_hidden() {
    assert_shown(
        "host=127.0.0.1 port=5432 user=app password=hunter2 dbname=events",
        "host=127.0.0.1 port=5432 user=app password=*** dbname=events",
    );
    assert_shown(
        "host=db password = 'hunter 2 \\' still secret' dbname=events",
        "host=db password = *** dbname=events",
    );
    assert_shown("password=hunter2", "password=***");
    // A quote inside an unquoted value is part of it.
    assert_shown(
        "host=db password=it's2secret user=app",
        "host=db password=*** user=app",
    );
    assert_shown(
        "host=db sslpassword=x\\ y user=app",
        "host=db sslpassword=*** user=app",
    );
}

#[test]
fn nats_urls_and_lists_hide_every_credential() {
    assert_shown(
        "nats://ann:hunter2@127.0.0.1:4222",
        "nats://ann:***@127.0.0.1:4222",
    );
    // A user alone is a token to NATS.
    assert_shown("nats://s3cret@127.0.0.1:4222", "nats://***@127.0.0.1:4222");
    assert_shown(
        "nats://ann:hunter2@h1:4222,nats://bob:swordfish@h2:4222, tls://tok@h3",
        "nats://ann:***@h1:4222,nats://bob:***@h2:4222, tls://***@h3",
    );
    // Without a scheme NATS still reads user:password@host.
    assert_shown("ann:hunter2@127.0.0.1:4222", "ann:***@127.0.0.1:4222");
    // A comma inside a password does not split the list.
    assert_shown("nats://ann:a,b@h1:4222", "nats://ann:***@h1:4222");
}

#[test]
fn client_urls_hide_their_user_information() {
    assert_shown(
        "http://ann:hunter2@127.0.0.1:7878/api/events",
        "http://ann:***@127.0.0.1:7878/api/events",
    );
    assert_shown("http://127.0.0.1:7878/", "http://127.0.0.1:7878/");
}

#[test]
fn no_secret_survives_in_any_form() {
    for (location, secret) in [
        ("postgres://app:hunter2@db/events", "hunter2"),
        (
            "postgres://app:hunter2@db/events?password=swordfish",
            "swordfish",
        ),
        ("host=db password=hunter2", "hunter2"),
        ("nats://ann:hunter2@h1,nats://bob:swordfish@h2", "swordfish"),
        ("http://ann:hunter2@127.0.0.1:7878/", "hunter2"),
    ] {
        let redacted = Redacted(location);
        for text in [
            redacted.to_string(),
            format!("{redacted:?}"),
            format!("{redacted:>80}"),
        ] {
            assert!(!text.contains(secret), "{secret} shows in {text:?}");
        }
    }
}
