//! The conformance suite against PostgreSQL: one throwaway cluster for this
//! binary, a fresh database per test.

use agentbus_store::PostgresStore;
use agentbus_testkit::Postgres;

async fn store() -> Option<PostgresStore> {
    let cluster = Postgres::shared_or_skip("agentbus-store PostgreSQL conformance suite")?;
    Some(
        PostgresStore::connect(&cluster.create_database())
            .await
            .unwrap(),
    )
}

agentbus_testkit::conformance_suite!(store().await);
