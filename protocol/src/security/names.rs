//! The names a certificate is valid for: its subject common name and its DNS names.

use x509_parser::extensions::GeneralName;

/// The common name and the DNS subject alternative names of a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertificateNames {
    /// The first subject common name (Choria's certname), if any.
    pub common_name: Option<String>,
    /// The DNS names of the subject alternative name extension.
    pub dns: Vec<String>,
}

impl CertificateNames {
    /// The names of DER certificate `der`, or the parser's complaint.
    pub fn of_der(der: &[u8]) -> Result<Self, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .map(|cn| cn.as_str().map(str::to_owned))
            .transpose()
            .map_err(|e| e.to_string())?;
        let dns = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                    _ => None,
                })
                .collect(),
            Ok(None) => Vec::new(),
            Err(e) => return Err(e.to_string()),
        };
        Ok(Self { common_name, dns })
    }

    /// Every name: the common name first, then the DNS names.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.common_name
            .as_deref()
            .into_iter()
            .chain(self.dns.iter().map(String::as_str))
    }

    /// Whether the certificate is valid for `certname` (exactly one of its names, as Go
    /// Choria checks it).
    pub fn contains(&self, certname: &str) -> bool {
        self.all().any(|name| name == certname)
    }
}
