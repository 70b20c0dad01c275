//! Documents kept beside the runs, one collection per kind (the preflight history): on the file
//! store `STATE/KIND/KEY` (mode 0600 in a 0700 directory, written atomically), on etcd
//! `PREFIX/KIND/KEY`. Keys sort in the order the caller wants them read (timestamps). Nothing
//! here is a run: no lock, no journal — a document is written whole or not at all.

use std::path::{Path, PathBuf};

use super::StoreSpec;
use super::etcd::EtcdStore;
use crate::error::{Error, Result};

/// One collection of documents.
pub struct Docs {
    kind: &'static str,
    at: At,
}

enum At {
    File(PathBuf),
    Etcd(Box<EtcdStore>),
}

impl Docs {
    /// The `kind` collection of `spec`. Connects to etcd; creates nothing.
    pub async fn open(spec: &StoreSpec, kind: &'static str) -> Result<Docs> {
        let at = match spec {
            StoreSpec::File(root) => At::File(root.join(kind)),
            StoreSpec::Etcd(e) => At::Etcd(Box::new(EtcdStore::connect(e).await?)),
        };
        Ok(Docs { kind, at })
    }

    /// Where the collection is, for messages.
    pub fn describe(&self) -> String {
        match &self.at {
            At::File(dir) => dir.display().to_string(),
            At::Etcd(e) => format!("{}/{}", e.spec(), self.kind),
        }
    }

    /// Writes `key` unless it exists (`Ok(false)` then: the caller picks another key).
    pub async fn create(&self, key: &str, bytes: &[u8]) -> Result<bool> {
        match &self.at {
            At::File(dir) => {
                let ctx = |e| Error::io(format!("cannot write in {}", dir.display()), e);
                if let Some(root) = dir.parent() {
                    super::file::ensure_private_dir(root).map_err(ctx)?;
                }
                super::file::ensure_private_dir(dir).map_err(ctx)?;
                let path = dir.join(key);
                if path.exists() {
                    return Ok(false);
                }
                super::file::write_private_atomic(&path, bytes).map_err(ctx)?;
                Ok(true)
            }
            At::Etcd(e) => e.create_doc(self.kind, key, bytes).await,
        }
    }

    /// Every key, sorted.
    pub async fn keys(&self) -> Result<Vec<String>> {
        match &self.at {
            At::File(dir) => file_keys(dir),
            At::Etcd(e) => e.doc_keys(self.kind).await,
        }
    }

    /// The newest (greatest key) documents first, at most `limit` of them; every one when
    /// `limit` is `None`. Documents that cannot be read on the file store are skipped with a
    /// warning: one damaged file must not hide the history.
    pub async fn newest(&self, limit: Option<usize>) -> Result<Vec<(String, Vec<u8>)>> {
        match &self.at {
            At::File(dir) => {
                let mut out = Vec::new();
                for key in file_keys(dir)?.into_iter().rev() {
                    if limit.is_some_and(|l| out.len() >= l) {
                        break;
                    }
                    match std::fs::read(dir.join(&key)) {
                        Ok(b) => out.push((key, b)),
                        Err(e) => tracing::warn!("cannot read {}: {e}", dir.join(&key).display()),
                    }
                }
                Ok(out)
            }
            At::Etcd(e) => e.newest_docs(self.kind, limit).await,
        }
    }

    /// Deletes `keys` (missing ones are not an error).
    pub async fn delete(&self, keys: &[String]) -> Result<()> {
        match &self.at {
            At::File(dir) => {
                for k in keys {
                    match std::fs::remove_file(dir.join(k)) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(Error::io(
                                format!("cannot remove {}", dir.join(k).display()),
                                e,
                            ));
                        }
                    }
                }
                Ok(())
            }
            At::Etcd(e) => e.delete_docs(self.kind, keys).await,
        }
    }
}

/// The directory's visible files, sorted; none when it does not exist.
fn file_keys(dir: &Path) -> Result<Vec<String>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("cannot read {}", dir.display()), e)),
    };
    let mut keys: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        // Atomic writes go through hidden temporary files.
        .filter(|n| !n.starts_with('.'))
        .collect();
    keys.sort();
    Ok(keys)
}
