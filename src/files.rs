//! Files that hold secrets: the keys dir, the key-encryption key, the bootstrap password and the
//! SQLite database are created readable by their owner only, and an existing one readable by
//! others is reported.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

/// Creates `dir` (and parents) if missing; a new folder gets mode 0700.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("creating the folder {}", dir.display()))
}

/// Writes a new file readable by its owner only (0600); fails if it already exists.
pub fn write_private_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut file = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Creates an empty file readable by its owner only (0600) unless it exists.
pub fn create_private_file_if_missing(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    match write_private_file(path, b"") {
        // Another process created it meanwhile: fine.
        Err(_) if path.exists() => Ok(()),
        other => other,
    }
}

/// Logs a warning when `path` exists and other users may read it (group or world bits).
pub fn warn_if_shared(path: &Path, what: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", mode & 0o777),
                    "{what} is readable by other users; chmod it to {}",
                    if meta.is_dir() { "0700" } else { "0600" }
                );
            }
        }
    }
}
