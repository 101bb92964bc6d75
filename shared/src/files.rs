//! Private files created once: written to a temporary file with mode 0600 and hard-linked into
//! place, so two processes starting together either create the file or read the winner's.
//! Files are opened with exclusive create and without following symlinks (`O_EXCL |
//! O_NOFOLLOW`), so a link planted at the path cannot redirect the write; directories this
//! module creates are 0700.

use std::{fs::File, io::Write, path::Path};

/// Creates `dir` and its missing parents with mode 0700 (existing ones are left as they are).
pub fn create_private_dir_all(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Creates the new file `path` (mode 0600) for writing: fails if anything, a symlink included,
/// is already there.
pub fn create_private_new(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path)
}

/// Creates `path` with `contents` (mode 0600) unless it already exists. Returns whether this
/// call created it.
pub fn create_private_once(path: &Path, contents: &[u8]) -> std::io::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    // A leftover of a crashed run (or anything planted there): removing a symlink removes the
    // link, never its target.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = create_private_new(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_with_private_mode() {
        let dir = std::env::temp_dir().join(format!("tglink-files-{}", std::process::id()));
        let path = dir.join("sub/secret");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(create_private_once(&path, b"first").unwrap());
        assert!(!create_private_once(&path, b"second").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A symlink planted where the temporary file goes is not followed: the file it points
    /// to is neither truncated nor written, and the private file is still created.
    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_is_not_followed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("tglink-files-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let path = dir.join("secret");
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        assert!(create_private_once(&path, b"key").unwrap());
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(&path).unwrap(), b"key");
        assert!(
            !std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // A new directory is private too.
        let nested = dir.join("a/b/secret");
        assert!(create_private_once(&nested, b"x").unwrap());
        for d in [dir.join("a"), dir.join("a/b")] {
            let mode = std::fs::metadata(&d).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{}", d.display());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
