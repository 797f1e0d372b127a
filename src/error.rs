//! The library's error type: every failure a file, a shape or an adapter can cause.

/// Errors returned by inferno-llama. Each variant carries the context a user needs
/// (file, tensor, field) to fix the input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No GPU adapter matched the request.
    #[error("no GPU adapter found{0}")]
    NoAdapter(String),
    /// The adapter refused to create a device.
    #[error("could not create a GPU device on {adapter}: {reason}")]
    Device {
        /// Adapter name.
        adapter: String,
        /// The driver's reason.
        reason: String,
    },
    /// The GPU ran out of memory while allocating `what`.
    #[error("out of GPU memory allocating {what} ({bytes} bytes)")]
    OutOfMemory {
        /// What was being allocated.
        what: String,
        /// Its size in bytes.
        bytes: u64,
    },
    /// A tensor or operand has the wrong shape.
    #[error("shape mismatch for {what}: expected {expected}, got {got}")]
    ShapeMismatch {
        /// The tensor or operand.
        what: String,
        /// The expected shape, in words.
        expected: String,
        /// The shape found.
        got: String,
    },
    /// A dtype the engine does not handle.
    #[error("unsupported dtype {dtype} for {what}")]
    UnsupportedDtype {
        /// The tensor (or context) that has it.
        what: String,
        /// The dtype's name.
        dtype: String,
    },
    /// A configuration value is missing or inconsistent.
    #[error("invalid config {field}: {reason}")]
    Config {
        /// The field or file.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A model file could not be read or parsed.
    #[error("{file}: {reason}")]
    Loader {
        /// The file.
        file: String,
        /// What went wrong.
        reason: String,
    },
    /// A GPU operation failed (validation, mapping, device loss).
    #[error("GPU error in {what}: {reason}")]
    Gpu {
        /// What was running.
        what: String,
        /// The backend's message.
        reason: String,
    },
    /// An I/O error on a named file.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Anything else a caller asked for that cannot be done.
    #[error("{0}")]
    Invalid(String),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::ShapeMismatch`].
    pub fn shape(what: impl Into<String>, expected: impl ToString, got: impl ToString) -> Self {
        Error::ShapeMismatch { what: what.into(), expected: expected.to_string(), got: got.to_string() }
    }

    /// Shorthand for [`Error::Loader`].
    pub fn loader(file: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        Error::Loader { file: file.to_string(), reason: reason.into() }
    }
}
