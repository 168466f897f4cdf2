//! What `postgresql.data_dir` must be before an agent starts on it (`--validate-config`
//! says the same): a directory, or a path pgkeel can create one at, owned by the user
//! PostgreSQL runs as, writable by it, and (once initialized) with the permissions the
//! server demands. Each refusal names the path and says what to change.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::unistd::{access, AccessFlags, Uid, User};

/// `Err` says what is wrong with `dir` as a data directory for an agent running as the
/// current user (root runs PostgreSQL as the directory's owner, or `postgres`).
pub fn check_data_dir(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return check_creatable(dir)
        }
        Err(e) => return Err(format!("{shown} cannot be inspected: {e}")),
    };
    if !meta.is_dir() {
        let kind = if meta.is_file() {
            "a regular file"
        } else {
            "not a directory"
        };
        return Err(format!(
            "{shown} is {kind}; it must be a directory (or not exist yet: pgkeel creates it)"
        ));
    }
    let me = Uid::effective();
    let owner = Uid::from_raw(meta.uid());
    let name = |uid: Uid| {
        User::from_uid(uid)
            .ok()
            .flatten()
            .map_or_else(|| format!("uid {uid}"), |u| u.name)
    };
    if me.is_root() && owner.is_root() {
        return Err(format!(
            "{shown} is owned by root, and PostgreSQL refuses to run as root; give it to the \
             user PostgreSQL runs as: chown -R postgres: {shown}"
        ));
    }
    if !me.is_root() && owner != me {
        return Err(format!(
            "{shown} is owned by {}, but pgkeel runs as {}; PostgreSQL only runs in a data \
             directory its own user owns: run pgkeel as {} or chown -R {} {shown}",
            name(owner),
            name(me),
            name(owner),
            name(me),
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o300 != 0o300 {
        return Err(format!(
            "{shown} (mode {mode:04o}) is not writable by its owner {}: chmod 700 {shown}",
            name(owner)
        ));
    }
    if !me.is_root() {
        access(dir, AccessFlags::W_OK | AccessFlags::X_OK)
            .map_err(|e| format!("{shown} is not writable by pgkeel ({}): {e}", name(me)))?;
    }
    // Once initialized, PostgreSQL refuses to start unless the directory is 0700 or 0750.
    if dir.join("PG_VERSION").exists() && mode & 0o027 != 0 {
        return Err(format!(
            "{shown} has mode {mode:04o}; PostgreSQL requires 0700 or 0750: chmod 700 {shown}"
        ));
    }
    Ok(())
}

/// A data directory that does not exist yet: its nearest existing ancestor must be a
/// directory pgkeel may create it in.
fn check_creatable(dir: &Path) -> Result<(), String> {
    let mut ancestor = dir.parent();
    while let Some(a) = ancestor {
        let a = if a.as_os_str().is_empty() {
            Path::new(".")
        } else {
            a
        };
        match std::fs::metadata(a) {
            Ok(m) if m.is_dir() => {
                if Uid::effective().is_root() {
                    return Ok(());
                }
                return access(a, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| {
                    format!(
                        "{} does not exist and cannot be created: {} is not writable ({e})",
                        dir.display(),
                        a.display()
                    )
                });
            }
            Ok(_) => {
                return Err(format!(
                    "{} cannot be created: {} is not a directory",
                    dir.display(),
                    a.display()
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ancestor = a.parent(),
            Err(e) => return Err(format!("{} cannot be inspected: {e}", a.display())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> bool {
        Uid::effective().is_root()
    }

    #[test]
    fn a_file_is_refused_and_a_missing_directory_is_fine() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("data");
        std::fs::write(&file, "x").unwrap();
        let e = check_data_dir(&file).unwrap_err();
        assert!(e.contains("is a regular file"), "{e}");
        assert_eq!(check_data_dir(&t.path().join("new/data")), Ok(()));
        let e = check_data_dir(&file.join("below")).unwrap_err();
        assert!(e.contains("is not a directory"), "{e}");
    }

    #[test]
    fn owner_and_permissions_are_checked() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        if root() {
            let e = check_data_dir(&dir).unwrap_err();
            assert!(e.contains("owned by root"), "{e}");
            let pg = User::from_name("postgres")
                .unwrap()
                .expect("a postgres user");
            nix::unistd::chown(&dir, Some(pg.uid), Some(pg.gid)).unwrap();
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(check_data_dir(&dir), Ok(()));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
        let e = check_data_dir(&dir).unwrap_err();
        assert!(e.contains("not writable"), "{e}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(check_data_dir(&dir), Ok(()), "empty: initdb fixes the mode");
        std::fs::write(dir.join("PG_VERSION"), "15\n").unwrap();
        let e = check_data_dir(&dir).unwrap_err();
        assert!(e.contains("requires 0700 or 0750"), "{e}");
    }
}
