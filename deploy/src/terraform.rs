pub(crate) fn config(
    _m: &crate::Manifest,
    _c: &crate::DeployConfig,
    _r: &str,
    _e: &serde_json::Map<String, serde_json::Value>,
) -> Result<serde_json::Value, crate::Error> {
    Ok(serde_json::json!({}))
}
