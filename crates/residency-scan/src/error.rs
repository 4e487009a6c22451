//! Why a scan could not run or complete.

use std::path::{Path, PathBuf};

use residency_directory::DirectoryError;
use residency_store::StoreError;

/// Why a scan could not run or complete.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Bad options, or a checkpoint of another scan in the folder.
    #[error("{0}")]
    Usage(String),
    /// A region's bucket could not be listed or read: the scan is incomplete.
    #[error("region {region}: {source}")]
    Store {
        /// The region.
        region: String,
        /// The backend's error.
        source: StoreError,
    },
    /// The tenant directory could not answer: the scan is incomplete.
    #[error("tenant directory: {0}")]
    Directory(#[from] DirectoryError),
    /// A tenant's migration journals could not be read.
    #[error("the migration journals of tenant {tenant}: {source}")]
    Journals {
        /// The tenant.
        tenant: String,
        /// The error.
        source: residency_migrate::MigrateError,
    },
    /// An inventory manifest or data file could not be read.
    #[error("inventory {path}: {reason}")]
    Inventory {
        /// The manifest or data file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The output folder could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl ScanError {
    /// A region's backend failed.
    pub(crate) fn store(region: &str) -> impl FnOnce(StoreError) -> ScanError + '_ {
        move |source| ScanError::Store {
            region: region.to_owned(),
            source,
        }
    }

    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ScanError + '_ {
        move |source| ScanError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
