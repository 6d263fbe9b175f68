//! The one error type of the library. Every variant names where the problem is (an op, a file)
//! and what it is, so a user can act on the message without reading code.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Tensor shapes that do not fit together; `detail` names both shapes.
    #[error("{op}: shape mismatch: {detail}")]
    Shape { op: &'static str, detail: String },
    /// A parameter outside its domain (label out of range, negative weight, zero stride, ...).
    #[error("{op}: invalid argument: {detail}")]
    Invalid { op: &'static str, detail: String },
    /// A file that could not be read, written or understood.
    #[error("{}: {detail}", path.display())]
    File { path: PathBuf, detail: String },
    /// A backend (for example CUDA) that is absent or failed.
    #[error("{backend} backend: {detail}")]
    Backend {
        backend: &'static str,
        detail: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for [`Error::Shape`].
pub fn shape_err(op: &'static str, detail: impl Into<String>) -> Error {
    Error::Shape {
        op,
        detail: detail.into(),
    }
}

/// Shorthand for [`Error::Invalid`].
pub fn invalid(op: &'static str, detail: impl Into<String>) -> Error {
    Error::Invalid {
        op,
        detail: detail.into(),
    }
}

/// Shorthand for [`Error::File`].
pub fn file_err(path: impl Into<PathBuf>, detail: impl Into<String>) -> Error {
    Error::File {
        path: path.into(),
        detail: detail.into(),
    }
}
