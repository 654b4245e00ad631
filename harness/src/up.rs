//! `lift-harness up`: the local AWS environment, until Ctrl-C.

use std::io::Write;

use anyhow::Context as _;

use crate::aws::AwsMocks;
use crate::dynamodb::DynamoDbLocal;

/// Quotes a value for a POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// The `export` lines for the running environment.
pub fn export_lines(
    dynamodb_endpoint: &str,
    mocks: &[(String, String)],
    tables: &[(String, String)],
) -> String {
    let region = crate::dynamodb::default_region();
    let mut vars: Vec<(String, String)> = vec![
        ("AWS_ENDPOINT_URL_DYNAMODB".into(), dynamodb_endpoint.into()),
        ("LIFT_DYNAMODB_ENDPOINT".into(), dynamodb_endpoint.into()),
        ("AWS_REGION".into(), region.clone()),
        ("AWS_DEFAULT_REGION".into(), region),
        ("AWS_ACCESS_KEY_ID".into(), "local".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "local".into()),
    ];
    vars.extend(mocks.iter().cloned());
    vars.extend(tables.iter().cloned());
    vars.iter().map(|(k, v)| format!("export {k}={}\n", shell_quote(v))).collect()
}

/// Starts DynamoDB Local and the mocks, prints the environment, waits for Ctrl-C.
pub async fn run(create_tables: bool, once: bool) -> anyhow::Result<()> {
    eprintln!("lift-harness: starting DynamoDB Local and the AWS mocks...");
    let ddb = DynamoDbLocal::start().await.context("starting DynamoDB Local")?;
    let mocks = AwsMocks::start().await.context("starting the AWS mocks")?;
    let mut tables = Vec::new();
    if create_tables {
        let client = ddb.client().await;
        for def in lift::store::tables::all() {
            let name = def.resolve_name();
            // A shared or long-lived instance may have it already.
            def.create_if_missing(&client, &name).await.with_context(|| format!("creating table {name}"))?;
            let var = format!("LIFT_TABLE_{}", def.name.to_uppercase().replace('-', "_"));
            tables.push((var, name));
        }
    }
    let lines = export_lines(ddb.endpoint(), &mocks.env_vars(), &tables);
    let mut out = std::io::stdout().lock();
    out.write_all(lines.as_bytes())?;
    out.flush()?;
    drop(out);
    eprintln!(
        "lift-harness: DynamoDB Local ({:?}) at {}; press Ctrl-C to stop",
        ddb.source(),
        ddb.endpoint()
    );
    if once {
        return Ok(());
    }
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    eprintln!("lift-harness: stopping");
    drop(mocks);
    drop(ddb);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_lines_quote_for_the_shell() {
        let lines = export_lines("http://127.0.0.1:1234", &[("X".into(), "it's".into())], &[]);
        assert!(lines.contains("export AWS_ENDPOINT_URL_DYNAMODB='http://127.0.0.1:1234'\n"));
        assert!(lines.contains(r"export X='it'\''s'"));
    }
}
