//! [`Verdict`]: what a verifier decided about a secure request, and why it refused.

/// The outcome of verifying one secure request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every check passed: the request may be answered.
    Trusted {
        /// The certname the request acts as (from its `callerid`).
        certname: String,
        /// Whether a privileged certificate signed it (it may act as any caller).
        privileged: bool,
    },
    /// A check failed: the request gets no reply.
    Refused(Rejection),
}

impl Verdict {
    /// Whether the request passed.
    pub fn is_trusted(&self) -> bool {
        matches!(self, Self::Trusted { .. })
    }

    /// The rejection, if refused.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Self::Trusted { .. } => None,
            Self::Refused(rejection) => Some(rejection),
        }
    }
}

/// Why a secure request was refused; [`Rejection::reason`] is its metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The request is unsigned (`signature`/`pubcert` = `insecure`) but security is on.
    #[error("insecure request refused by a secure verifier")]
    Insecure,
    /// The `callerid` has no `<prefix>=<certname>` shape.
    #[error("invalid callerid {0:?}")]
    InvalidCallerid(String),
    /// `pubcert` holds no parsable certificate.
    #[error("invalid pubcert: {0}")]
    InvalidCertificate(String),
    /// The certificate does not chain to the trusted CA.
    #[error("certificate is not signed by the trusted CA: {0}")]
    Untrusted(String),
    /// The certificate (or one in its chain) has expired.
    #[error("certificate has expired")]
    Expired,
    /// The certificate (or one in its chain) is not valid yet.
    #[error("certificate is not valid yet")]
    NotYetValid,
    /// The certname in `callerid` is not one of the certificate's names.
    #[error("callerid certname {certname:?} does not match certificate names {names:?}")]
    CallerMismatch {
        /// The certname from `callerid`.
        certname: String,
        /// The certificate's common name and DNS names.
        names: Vec<String>,
    },
    /// The certname matches neither the allowlist nor the privileged users.
    #[error("certname {0:?} is not on the allowlist")]
    NotAllowed(String),
    /// The signature is not base64 or not valid over the message bytes.
    #[error("invalid signature: {0}")]
    BadSignature(String),
}

impl Rejection {
    /// Every reason label, for metrics registered up front.
    pub const REASONS: [&'static str; 9] = [
        "insecure",
        "invalid_callerid",
        "invalid_certificate",
        "untrusted_certificate",
        "expired_certificate",
        "not_yet_valid_certificate",
        "callerid_mismatch",
        "certname_not_allowed",
        "invalid_signature",
    ];

    /// The metric label of this rejection (one of [`Rejection::REASONS`]).
    pub fn reason(&self) -> &'static str {
        let index = match self {
            Self::Insecure => 0,
            Self::InvalidCallerid(_) => 1,
            Self::InvalidCertificate(_) => 2,
            Self::Untrusted(_) => 3,
            Self::Expired => 4,
            Self::NotYetValid => 5,
            Self::CallerMismatch { .. } => 6,
            Self::NotAllowed(_) => 7,
            Self::BadSignature(_) => 8,
        };
        Self::REASONS[index]
    }
}
