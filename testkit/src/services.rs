//! Where the shared test services are: `make test` (scripts/test.sh) starts them and sets
//! these variables; a developer points them at services of their own.

fn required(name: &str, what: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run `make test`, or point it at {what}"))
}

/// `TEST_DATABASE_URL`: a PostgreSQL role that may create databases.
pub fn database_url() -> String {
    required("TEST_DATABASE_URL", "a Postgres role with CREATEDB")
}

/// `TEST_REDIS_URL`: a Redis 7.
pub fn redis_url() -> String {
    required("TEST_REDIS_URL", "a Redis 7")
}

/// `TEST_LOCALSTACK_URL`: a LocalStack with SQS and SES.
pub fn localstack_url() -> String {
    required("TEST_LOCALSTACK_URL", "a LocalStack")
}
