//! Backend calls as values, so that a router can inspect and dispatch them.

use crate::backend::Backend;
use crate::body::Body;
use crate::error::StoreError;
use crate::object::{
    Checksums, CompletedPart, GetOutput, ListPage, ListRequest, ObjectInfo, PartInfo, PartUpload,
    PartsPage, PartsQuery, PutMeta, PutOutput, UploadInfo,
};
use crate::range::ByteRange;
use crate::sse::Sse;

/// What an [`Operation`] does, without its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    /// PutObject.
    Put,
    /// GetObject.
    Get,
    /// HeadObject.
    Head,
    /// DeleteObject.
    Delete,
    /// ListObjectsV2.
    List,
    /// CopyObject.
    Copy,
    /// CreateMultipartUpload.
    CreateMultipart,
    /// UploadPart.
    UploadPart,
    /// CompleteMultipartUpload.
    CompleteMultipart,
    /// AbortMultipartUpload.
    AbortMultipart,
    /// ListParts.
    ListParts,
    /// ListMultipartUploads.
    ListMultipartUploads,
}

impl OpKind {
    /// Every kind, for metrics registration.
    pub const ALL: [OpKind; 12] = [
        Self::Put,
        Self::Get,
        Self::Head,
        Self::Delete,
        Self::List,
        Self::Copy,
        Self::CreateMultipart,
        Self::UploadPart,
        Self::CompleteMultipart,
        Self::AbortMultipart,
        Self::ListParts,
        Self::ListMultipartUploads,
    ];

    /// A short snake_case name for logs and metric labels (`put`, `upload_part`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Get => "get",
            Self::Head => "head",
            Self::Delete => "delete",
            Self::List => "list",
            Self::Copy => "copy",
            Self::CreateMultipart => "create_multipart",
            Self::UploadPart => "upload_part",
            Self::CompleteMultipart => "complete_multipart",
            Self::AbortMultipart => "abort_multipart",
            Self::ListParts => "list_parts",
            Self::ListMultipartUploads => "list_multipart_uploads",
        }
    }

    /// True for operations that change stored data (and so carry a placement
    /// decision): put, delete, copy and the multipart writes.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Self::Put
                | Self::Delete
                | Self::Copy
                | Self::CreateMultipart
                | Self::UploadPart
                | Self::CompleteMultipart
                | Self::AbortMultipart
        )
    }
}

impl std::fmt::Display for OpKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One backend call with its arguments.
#[derive(Debug)]
pub enum Operation {
    /// [`Backend::put_object`].
    Put {
        /// Object key.
        key: String,
        /// Object bytes.
        body: Body,
        /// Metadata and checksums (boxed: see [`Operation`]'s size test).
        meta: Box<PutMeta>,
    },
    /// [`Backend::get_object`].
    Get {
        /// Object key.
        key: String,
        /// Optional byte range.
        range: Option<ByteRange>,
        /// SSE-C: the object's customer key.
        sse: Option<Box<Sse>>,
    },
    /// [`Backend::head_object`].
    Head {
        /// Object key.
        key: String,
        /// SSE-C: the object's customer key.
        sse: Option<Box<Sse>>,
    },
    /// [`Backend::delete_object`].
    Delete {
        /// Object key.
        key: String,
    },
    /// [`Backend::list_objects`].
    List {
        /// The listing request.
        request: ListRequest,
    },
    /// [`Backend::copy_object`].
    Copy {
        /// Source key.
        src_key: String,
        /// Destination key.
        dst_key: String,
        /// Replacement metadata; `None` copies the source's.
        meta: Option<Box<PutMeta>>,
        /// The source's customer key and the destination's encryption.
        sse: Option<Box<Sse>>,
    },
    /// [`Backend::create_multipart`].
    CreateMultipart {
        /// Object key.
        key: String,
        /// Metadata of the object to be.
        meta: Box<PutMeta>,
    },
    /// [`Backend::upload_part`].
    UploadPart {
        /// Object key.
        key: String,
        /// Upload id.
        upload_id: String,
        /// Part number, 1..=10000.
        part_number: u32,
        /// Part bytes.
        body: Body,
        /// Part checksums.
        checksums: Box<Checksums>,
        /// SSE-C: the upload's customer key.
        sse: Option<Box<Sse>>,
    },
    /// [`Backend::complete_multipart`].
    CompleteMultipart {
        /// Object key.
        key: String,
        /// Upload id.
        upload_id: String,
        /// The parts, in ascending order.
        parts: Vec<CompletedPart>,
    },
    /// [`Backend::abort_multipart`].
    AbortMultipart {
        /// Object key.
        key: String,
        /// Upload id.
        upload_id: String,
    },
    /// [`Backend::list_parts`].
    ListParts {
        /// Object key.
        key: String,
        /// Upload id.
        upload_id: String,
        /// List parts after this number.
        part_number_marker: Option<u32>,
        /// At most this many parts.
        max_parts: Option<u32>,
    },
    /// [`Backend::list_multipart_uploads`].
    ListMultipartUploads {
        /// Key prefix.
        prefix: String,
    },
}

impl Operation {
    /// What this operation does.
    pub fn kind(&self) -> OpKind {
        match self {
            Self::Put { .. } => OpKind::Put,
            Self::Get { .. } => OpKind::Get,
            Self::Head { .. } => OpKind::Head,
            Self::Delete { .. } => OpKind::Delete,
            Self::List { .. } => OpKind::List,
            Self::Copy { .. } => OpKind::Copy,
            Self::CreateMultipart { .. } => OpKind::CreateMultipart,
            Self::UploadPart { .. } => OpKind::UploadPart,
            Self::CompleteMultipart { .. } => OpKind::CompleteMultipart,
            Self::AbortMultipart { .. } => OpKind::AbortMultipart,
            Self::ListParts { .. } => OpKind::ListParts,
            Self::ListMultipartUploads { .. } => OpKind::ListMultipartUploads,
        }
    }

    /// The object key this operation addresses (for a copy, the destination);
    /// `None` for listings, which address a prefix.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Put { key, .. }
            | Self::Get { key, .. }
            | Self::Head { key, .. }
            | Self::Delete { key }
            | Self::CreateMultipart { key, .. }
            | Self::UploadPart { key, .. }
            | Self::CompleteMultipart { key, .. }
            | Self::AbortMultipart { key, .. }
            | Self::ListParts { key, .. } => Some(key),
            Self::Copy { dst_key, .. } => Some(dst_key),
            Self::List { .. } | Self::ListMultipartUploads { .. } => None,
        }
    }

    /// The source key of a copy.
    pub fn source_key(&self) -> Option<&str> {
        match self {
            Self::Copy { src_key, .. } => Some(src_key),
            _ => None,
        }
    }

    /// The prefix a listing addresses.
    pub fn prefix(&self) -> Option<&str> {
        match self {
            Self::List { request } => Some(&request.prefix),
            Self::ListMultipartUploads { prefix } => Some(prefix),
            _ => None,
        }
    }

    /// The multipart upload id this operation addresses.
    pub fn upload_id(&self) -> Option<&str> {
        match self {
            Self::UploadPart { upload_id, .. }
            | Self::CompleteMultipart { upload_id, .. }
            | Self::AbortMultipart { upload_id, .. }
            | Self::ListParts { upload_id, .. } => Some(upload_id),
            _ => None,
        }
    }

    /// The content type of a write that carries one.
    pub fn content_type(&self) -> Option<&str> {
        match self {
            Self::Put { meta, .. } | Self::CreateMultipart { meta, .. } => {
                meta.headers.content_type.as_deref()
            }
            Self::Copy {
                meta: Some(meta), ..
            } => meta.headers.content_type.as_deref(),
            _ => None,
        }
    }
}

/// The result of an [`Operation`], one variant per operation.
///
/// The large answers are boxed: an outcome is handed up through every layer
/// of a region's stack by value, and inline the enum would be ~500 bytes
/// copied at each (boxed: under 100).
#[derive(Debug)]
pub enum Outcome {
    /// From `Put`.
    Put(Box<PutOutput>),
    /// From `Get`.
    Get(Box<GetOutput>),
    /// From `Head`.
    Head(Box<ObjectInfo>),
    /// From `Delete`.
    Delete,
    /// From `List`.
    List(ListPage),
    /// From `Copy`.
    Copy(Box<PutOutput>),
    /// From `CreateMultipart`: the upload id.
    CreateMultipart(String),
    /// From `UploadPart`.
    UploadPart(Box<PartInfo>),
    /// From `CompleteMultipart`.
    CompleteMultipart(Box<PutOutput>),
    /// From `AbortMultipart`.
    AbortMultipart,
    /// From `ListParts`.
    ListParts(PartsPage),
    /// From `ListMultipartUploads`.
    ListMultipartUploads(Vec<UploadInfo>),
}

impl Outcome {
    /// The kind of operation this is the result of.
    pub fn kind(&self) -> OpKind {
        match self {
            Self::Put(_) => OpKind::Put,
            Self::Get(_) => OpKind::Get,
            Self::Head(_) => OpKind::Head,
            Self::Delete => OpKind::Delete,
            Self::List(_) => OpKind::List,
            Self::Copy(_) => OpKind::Copy,
            Self::CreateMultipart(_) => OpKind::CreateMultipart,
            Self::UploadPart(_) => OpKind::UploadPart,
            Self::CompleteMultipart(_) => OpKind::CompleteMultipart,
            Self::AbortMultipart => OpKind::AbortMultipart,
            Self::ListParts(_) => OpKind::ListParts,
            Self::ListMultipartUploads(_) => OpKind::ListMultipartUploads,
        }
    }
}

/// Runs `op` on `backend`.
///
/// # Errors
/// Whatever the backend method returns.
pub async fn execute(backend: &dyn Backend, op: Operation) -> Result<Outcome, StoreError> {
    let kind = backend.describe().kind;
    // Encryption the backend cannot honour is refused before anything is
    // sent (a backend that ignored it would store the object unencrypted).
    let resolve = |sse: Option<Box<Sse>>| -> Result<Sse, StoreError> {
        let mut sse = sse.map(|s| *s).unwrap_or_default();
        if !sse.is_empty() {
            backend.sse_support().resolve(kind, &mut sse)?;
        }
        Ok(sse)
    };
    Ok(match op {
        Operation::Put {
            key,
            body,
            mut meta,
        } => {
            if !meta.sse.is_empty() {
                backend.sse_support().resolve(kind, &mut meta.sse)?;
            }
            Outcome::Put(Box::new(backend.put_object(&key, body, *meta).await?))
        }
        Operation::Get { key, range, sse } => {
            let sse = resolve(sse)?;
            Outcome::Get(Box::new(backend.get_object_sse(&key, range, &sse).await?))
        }
        Operation::Head { key, sse } => {
            let sse = resolve(sse)?;
            Outcome::Head(Box::new(backend.head_object_sse(&key, &sse).await?))
        }
        Operation::Delete { key } => {
            backend.delete_object(&key).await?;
            Outcome::Delete
        }
        Operation::List { request } => Outcome::List(backend.list_objects(request).await?),
        Operation::Copy {
            src_key,
            dst_key,
            meta,
            sse,
        } => {
            let sse = resolve(sse)?;
            Outcome::Copy(Box::new(
                backend
                    .copy_object_sse(&src_key, &dst_key, meta.map(|m| *m), &sse)
                    .await?,
            ))
        }
        Operation::CreateMultipart { key, mut meta } => {
            if !meta.sse.is_empty() {
                backend.sse_support().resolve(kind, &mut meta.sse)?;
            }
            Outcome::CreateMultipart(backend.create_multipart(&key, *meta).await?)
        }
        Operation::UploadPart {
            key,
            upload_id,
            part_number,
            body,
            checksums,
            sse,
        } => {
            let sse = resolve(sse)?;
            Outcome::UploadPart(Box::new(
                backend
                    .upload_part(PartUpload {
                        key: &key,
                        upload_id: &upload_id,
                        part_number,
                        body,
                        checksums: *checksums,
                        sse,
                    })
                    .await?,
            ))
        }
        Operation::CompleteMultipart {
            key,
            upload_id,
            parts,
        } => Outcome::CompleteMultipart(Box::new(
            backend.complete_multipart(&key, &upload_id, parts).await?,
        )),
        Operation::AbortMultipart { key, upload_id } => {
            backend.abort_multipart(&key, &upload_id).await?;
            Outcome::AbortMultipart
        }
        Operation::ListParts {
            key,
            upload_id,
            part_number_marker,
            max_parts,
        } => Outcome::ListParts(
            backend
                .list_parts(PartsQuery {
                    key: &key,
                    upload_id: &upload_id,
                    part_number_marker,
                    max_parts,
                })
                .await?,
        ),
        Operation::ListMultipartUploads { prefix } => {
            Outcome::ListMultipartUploads(backend.list_multipart_uploads(&prefix).await?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_is_small_enough_to_hand_up_a_stack_by_value() {
        // Every layer of a region's stack returns the outcome by value: the
        // large answers are boxed so that each hand-over copies little.
        let size = std::mem::size_of::<Outcome>();
        assert!(size <= 96, "Outcome is {size} bytes");
    }

    #[test]
    fn an_operation_is_small_enough_to_move_through_a_stack() {
        // An operation is moved into the layer's future, the dispatch's and
        // each region call's: with the metadata and part checksums inline it
        // was 432 bytes, and those copies were 18 % of a HEAD's time in
        // `benches/layer.rs`.
        let size = std::mem::size_of::<Operation>();
        assert!(size <= 128, "Operation is {size} bytes");
    }
}
