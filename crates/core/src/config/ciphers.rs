//! `restapi.ciphers`: an OpenSSL cipher list (what Patroni hands to `SSLContext.set_ciphers`)
//! read into the TLS 1.2 suites pgkeel's TLS library (rustls) implements.
//!
//! OpenSSL's list language is large; pgkeel reads the part whose meaning it can honour
//! exactly and refuses the rest with the element named, never guessing:
//!
//! - a suite's OpenSSL name (`ECDHE-RSA-AES256-GCM-SHA384`) allows it; names of suites that
//!   rustls does not implement (`DHE-RSA-AES256-GCM-SHA384`, CBC suites) are left out, as
//!   OpenSSL leaves out names it does not know, since no such suite can be negotiated;
//! - `HIGH`, `DEFAULT`, `ALL`, `ECDHE`, `EECDH`, `AESGCM`, `CHACHA20` allow the suites of
//!   that class (every rustls suite is forward-secret, AEAD, and HIGH);
//! - `!X` / `-X` remove `X`; removing a class that holds no rustls suite (`!aNULL`, `!MD5`,
//!   `!SSLv3`, `!TLSv1`, `!TLSv1.1`, `!RC4`, `!3DES`, ...) changes nothing and is accepted;
//! - anything else (`+X`, `@STRENGTH`, `@SECLEVEL=n`, classes pgkeel does not know) is an
//!   error naming the element.
//!
//! As in Python's `set_ciphers`, TLS 1.3 suites are not affected by the list: all three stay.

use super::Tls12Cipher;

/// Every suite, in rustls's order of preference (the order used for a class).
const ALL: [Tls12Cipher; 6] = [
    Tls12Cipher::EcdheEcdsaAes256Gcm,
    Tls12Cipher::EcdheEcdsaAes128Gcm,
    Tls12Cipher::EcdheEcdsaChacha20,
    Tls12Cipher::EcdheRsaAes256Gcm,
    Tls12Cipher::EcdheRsaAes128Gcm,
    Tls12Cipher::EcdheRsaChacha20,
];

impl Tls12Cipher {
    /// OpenSSL's name of the suite.
    pub fn openssl_name(self) -> &'static str {
        match self {
            Tls12Cipher::EcdheEcdsaAes256Gcm => "ECDHE-ECDSA-AES256-GCM-SHA384",
            Tls12Cipher::EcdheEcdsaAes128Gcm => "ECDHE-ECDSA-AES128-GCM-SHA256",
            Tls12Cipher::EcdheEcdsaChacha20 => "ECDHE-ECDSA-CHACHA20-POLY1305",
            Tls12Cipher::EcdheRsaAes256Gcm => "ECDHE-RSA-AES256-GCM-SHA384",
            Tls12Cipher::EcdheRsaAes128Gcm => "ECDHE-RSA-AES128-GCM-SHA256",
            Tls12Cipher::EcdheRsaChacha20 => "ECDHE-RSA-CHACHA20-POLY1305",
        }
    }

    fn is_aes_gcm(self) -> bool {
        !matches!(
            self,
            Tls12Cipher::EcdheEcdsaChacha20 | Tls12Cipher::EcdheRsaChacha20
        )
    }

    fn is_ecdsa(self) -> bool {
        matches!(
            self,
            Tls12Cipher::EcdheEcdsaAes256Gcm
                | Tls12Cipher::EcdheEcdsaAes128Gcm
                | Tls12Cipher::EcdheEcdsaChacha20
        )
    }
}

/// The suites a class name stands for; `None`: not a class pgkeel knows.
fn class(name: &str) -> Option<Vec<Tls12Cipher>> {
    let pick = |f: fn(Tls12Cipher) -> bool| Some(ALL.iter().copied().filter(|c| f(*c)).collect());
    match name {
        "HIGH" | "DEFAULT" | "ALL" | "ECDHE" | "EECDH" | "kECDHE" | "kEECDH" | "AEAD"
        | "TLSv1.2" => pick(|_| true),
        "AESGCM" | "AES" => pick(Tls12Cipher::is_aes_gcm),
        "CHACHA20" => pick(|c| !c.is_aes_gcm()),
        "aECDSA" | "ECDSA" => pick(Tls12Cipher::is_ecdsa),
        "aRSA" | "RSA" => pick(|c| !c.is_ecdsa()),
        // Classes that hold no suite rustls implements (weak, anonymous, old protocols,
        // other key exchanges): allowing or removing them changes nothing.
        "aNULL"
        | "eNULL"
        | "NULL"
        | "COMPLEMENTOFDEFAULT"
        | "COMPLEMENTOFALL"
        | "EXPORT"
        | "EXP"
        | "LOW"
        | "MEDIUM"
        | "MD5"
        | "RC4"
        | "DES"
        | "3DES"
        | "IDEA"
        | "SEED"
        | "CAMELLIA"
        | "ARIA"
        | "PSK"
        | "SRP"
        | "DSS"
        | "aDSS"
        | "DH"
        | "DHE"
        | "EDH"
        | "kDHE"
        | "kEDH"
        | "ADH"
        | "AECDH"
        | "SSLv2"
        | "SSLv3"
        | "SSLv1"
        | "TLSv1"
        | "TLSv1.0"
        | "TLSv1.1"
        | "SHA1"
        | "SHA"
        | "CBC"
        | "AESCCM"
        | "AESCCM8"
        | "kRSA"
        | "GOST"
        | "SM4" => Some(Vec::new()),
        _ => None,
    }
}

/// Reads an OpenSSL cipher list. `Err`: the element pgkeel cannot honour and why.
pub(crate) fn parse(list: &str) -> Result<Vec<Tls12Cipher>, String> {
    let mut allowed: Vec<Tls12Cipher> = Vec::new();
    let mut removed: Vec<Tls12Cipher> = Vec::new();
    let elements = list
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|e| !e.is_empty());
    let mut any = false;
    for element in elements {
        any = true;
        let (remove, name) = match element.as_bytes()[0] {
            b'!' | b'-' => (true, &element[1..]),
            b'+' | b'@' => {
                return Err(format!(
                    "the element {element:?} (reordering and security levels are not supported)"
                ))
            }
            _ => (false, element),
        };
        let suites = match ALL.iter().find(|c| c.openssl_name() == name) {
            Some(c) => vec![*c],
            None => match class(name) {
                Some(suites) => suites,
                // A suite name OpenSSL knows and rustls does not implement looks like one:
                // upper case, digits and dashes with a dash in it (DHE-RSA-AES256-SHA256).
                None if looks_like_suite(name) => Vec::new(),
                None => {
                    return Err(format!(
                        "the element {element:?} (not a cipher or class pgkeel knows)"
                    ))
                }
            },
        };
        for s in suites {
            if remove {
                allowed.retain(|a| *a != s);
                removed.push(s);
            } else if !allowed.contains(&s) && !removed.contains(&s) {
                allowed.push(s);
            }
        }
    }
    if !any {
        return Err("an empty list".into());
    }
    if allowed.is_empty() {
        return Err(format!(
            "no TLS 1.2 suite that pgkeel implements (it implements {})",
            ALL.map(Tls12Cipher::openssl_name).join(", ")
        ));
    }
    Ok(allowed)
}

fn looks_like_suite(name: &str) -> bool {
    name.contains('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use Tls12Cipher::*;

    #[test]
    fn patronis_documented_example_keeps_the_suites_rustls_has() {
        let list =
            "ECDHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:\
                    DHE-RSA-AES128-GCM-SHA256:!SSLv1:!SSLv2:!SSLv3:!TLSv1:!TLSv1.1";
        assert_eq!(
            parse(list).unwrap(),
            vec![EcdheRsaAes256Gcm, EcdheRsaAes128Gcm]
        );
    }

    #[test]
    fn classes_and_removals() {
        assert_eq!(parse("HIGH:!aNULL:!MD5").unwrap(), ALL.to_vec());
        assert_eq!(
            parse("ECDHE:!CHACHA20:!aECDSA").unwrap(),
            vec![EcdheRsaAes256Gcm, EcdheRsaAes128Gcm]
        );
        // A removal is permanent, as in OpenSSL's `!`.
        assert_eq!(
            parse("!ECDHE-RSA-AES128-GCM-SHA256:aRSA").unwrap(),
            vec![EcdheRsaAes256Gcm, EcdheRsaChacha20]
        );
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_by_name() {
        assert!(parse("HIGH:@STRENGTH")
            .unwrap_err()
            .contains("\"@STRENGTH\""));
        assert!(parse("HIGH:+AES").unwrap_err().contains("\"+AES\""));
        assert!(parse("kFOO").unwrap_err().contains("\"kFOO\""));
        assert!(parse("DHE-RSA-AES256-GCM-SHA384")
            .unwrap_err()
            .contains("no TLS 1.2 suite"));
        assert!(parse(" : ").unwrap_err().contains("empty"));
    }
}
