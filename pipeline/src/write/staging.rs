//! A unit of work's sealed files: published together, or discarded together.

use crate::Error;
use crate::store::Staged;

/// A unit of work's outputs, written and sealed, not yet visible: its files (and rejects), or
/// what a stream output has already sent.
#[derive(Default)]
pub struct Staging {
    pub(super) files: Vec<Staged>,
    pub(super) sent: Vec<String>,
    /// Data files of an Iceberg output, written, for the invocation to commit.
    #[cfg(feature = "iceberg")]
    pub(crate) table_files: Vec<iceberg::spec::DataFile>,
}

impl Staging {
    /// Add `other`'s outputs after these.
    pub fn extend(&mut self, other: Staging) {
        self.files.extend(other.files);
        self.sent.extend(other.sent);
        #[cfg(feature = "iceberg")]
        self.table_files.extend(other.table_files);
    }

    /// Add one staged file (a rejects file).
    pub fn push(&mut self, file: Staged) {
        self.files.push(file);
    }

    /// Make every file visible, all or none ([`crate::store::publish`]): every location, the
    /// records a stream output sent first.
    pub async fn publish(self) -> Result<Vec<String>, Error> {
        let mut out = self.sent;
        out.extend(crate::store::publish(self.files).await?);
        Ok(out)
    }

    /// Drop every staged file.
    pub async fn discard(self) {
        crate::store::discard(self.files).await;
    }
}
