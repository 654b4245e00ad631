//! Where backups and the stream archive are kept: a local directory, or an S3 bucket and
//! prefix (feature `backup-s3`).

use std::path::{Path, PathBuf};

use super::BackupError;

/// Where backups and the stream archive of a table are kept. Keys are `/`-separated paths
/// under the target's root: `backups/<id>/manifest.json`, `backups/<id>/segment-00000.jsonl.gz`,
/// `stream/chunk-<ms>-<run>-<number>.jsonl.gz` and its `.json` index.
///
/// # Examples
///
/// ```
/// use lift::disaster::backup::BackupTarget;
///
/// let target = BackupTarget::dir("/var/backups/orders");
/// assert_eq!(target.to_string(), "/var/backups/orders");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum BackupTarget {
    /// A local directory (created when missing). Files are written to a temporary name and
    /// renamed, so a reader never sees half a file.
    Dir(PathBuf),
    /// An S3 bucket and key prefix.
    #[cfg(feature = "backup-s3")]
    #[cfg_attr(docsrs, doc(cfg(feature = "backup-s3")))]
    S3 {
        /// The client (its endpoint and region decide where the bucket is).
        client: aws_sdk_s3::Client,
        /// The bucket.
        bucket: String,
        /// The key prefix (no leading or trailing `/`; may be empty).
        prefix: String,
    },
}

impl std::fmt::Display for BackupTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackupTarget::Dir(path) => write!(f, "{}", path.display()),
            #[cfg(feature = "backup-s3")]
            BackupTarget::S3 { bucket, prefix, .. } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

impl BackupTarget {
    /// A local directory.
    pub fn dir(path: impl Into<PathBuf>) -> Self {
        BackupTarget::Dir(path.into())
    }

    /// An S3 bucket and key prefix, reached through `client`.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use lift::disaster::backup::BackupTarget;
    ///
    /// let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    /// let target = BackupTarget::s3(aws_sdk_s3::Client::new(&config), "backups", "orders/prod");
    /// assert_eq!(target.to_string(), "s3://backups/orders/prod");
    /// # }
    /// ```
    #[cfg(feature = "backup-s3")]
    #[cfg_attr(docsrs, doc(cfg(feature = "backup-s3")))]
    pub fn s3(client: aws_sdk_s3::Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        BackupTarget::S3 { client, bucket: bucket.into(), prefix: prefix.into().trim_matches('/').to_owned() }
    }

    fn path(root: &Path, key: &str) -> PathBuf {
        key.split('/').fold(root.to_path_buf(), |p, part| p.join(part))
    }

    #[cfg(feature = "backup-s3")]
    fn object_key(prefix: &str, key: &str) -> String {
        if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}/{key}")
        }
    }

    /// Stores `bytes` under `key`.
    pub(crate) async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), BackupError> {
        match self {
            BackupTarget::Dir(root) => {
                let path = Self::path(root, key);
                let tmp = path.with_extension("partial");
                let write = async {
                    if let Some(parent) = path.parent() {
                        tokio::fs::create_dir_all(parent).await?;
                    }
                    tokio::fs::write(&tmp, &bytes).await?;
                    tokio::fs::rename(&tmp, &path).await
                };
                write.await.map_err(|e| BackupError::target(path.display().to_string(), e))
            }
            #[cfg(feature = "backup-s3")]
            BackupTarget::S3 { client, bucket, prefix } => {
                let object = Self::object_key(prefix, key);
                client
                    .put_object()
                    .bucket(bucket)
                    .key(&object)
                    .body(bytes.into())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        BackupError::target(format!("s3://{bucket}/{object}"), crate::error::error_chain(&e))
                    })
            }
        }
    }

    /// The bytes under `key`, or `None` when there are none.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackupError> {
        match self {
            BackupTarget::Dir(root) => {
                let path = Self::path(root, key);
                match tokio::fs::read(&path).await {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(BackupError::target(path.display().to_string(), e)),
                }
            }
            #[cfg(feature = "backup-s3")]
            BackupTarget::S3 { client, bucket, prefix } => {
                let object = Self::object_key(prefix, key);
                let location = || format!("s3://{bucket}/{object}");
                match client.get_object().bucket(bucket).key(&object).send().await {
                    Ok(out) => out
                        .body
                        .collect()
                        .await
                        .map(|b| Some(b.into_bytes().to_vec()))
                        .map_err(|e| BackupError::target(location(), e)),
                    Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
                    Err(e) => Err(BackupError::target(location(), crate::error::error_chain(&e))),
                }
            }
        }
    }

    /// The keys under `prefix` (a folder, e.g. `backups/`), sorted.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<String>, BackupError> {
        let mut keys = match self {
            BackupTarget::Dir(root) => {
                let mut keys = Vec::new();
                let mut dirs = vec![Self::path(root, prefix.trim_end_matches('/'))];
                while let Some(dir) = dirs.pop() {
                    let mut entries = match tokio::fs::read_dir(&dir).await {
                        Ok(entries) => entries,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(BackupError::target(dir.display().to_string(), e)),
                    };
                    while let Some(entry) = entries
                        .next_entry()
                        .await
                        .map_err(|e| BackupError::target(dir.display().to_string(), e))?
                    {
                        let path = entry.path();
                        if path.is_dir() {
                            dirs.push(path);
                        } else if let Ok(rel) = path.strip_prefix(root) {
                            let key: Vec<String> = rel
                                .components()
                                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                                .collect();
                            keys.push(key.join("/"));
                        }
                    }
                }
                keys
            }
            #[cfg(feature = "backup-s3")]
            BackupTarget::S3 { client, bucket, prefix: root } => {
                let full = Self::object_key(root, prefix);
                let strip = if root.is_empty() { 0 } else { root.len() + 1 };
                let mut keys = Vec::new();
                let mut pages = client.list_objects_v2().bucket(bucket).prefix(&full).into_paginator().send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| {
                        BackupError::target(format!("s3://{bucket}/{full}"), crate::error::error_chain(&e))
                    })?;
                    keys.extend(
                        page.contents().iter().filter_map(|o| o.key()).map(|k| k[strip..].to_owned()),
                    );
                }
                keys
            }
        };
        keys.sort_unstable();
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_directory_stores_lists_and_reads_back() {
        let root = std::env::temp_dir().join(format!("lift-backup-target-{}", uuid::Uuid::new_v4()));
        let target = BackupTarget::dir(&root);
        target.put("backups/b1/manifest.json", b"{}".to_vec()).await.unwrap();
        target.put("backups/b1/segment-00000.jsonl.gz", vec![1, 2]).await.unwrap();
        target.put("stream/chunk-1.json", vec![3]).await.unwrap();
        assert_eq!(
            target.list("backups/").await.unwrap(),
            ["backups/b1/manifest.json", "backups/b1/segment-00000.jsonl.gz"]
        );
        assert_eq!(target.get("backups/b1/segment-00000.jsonl.gz").await.unwrap(), Some(vec![1, 2]));
        assert_eq!(target.get("backups/b2/manifest.json").await.unwrap(), None);
        assert!(target.list("nothing/").await.unwrap().is_empty());
        std::fs::remove_dir_all(root).unwrap();
    }
}
