//! Public keys from PEM: SPKI (`BEGIN PUBLIC KEY`) for RSA, EC P-256/P-384 and Ed25519, and
//! PKCS#1 (`BEGIN RSA PUBLIC KEY`). Private keys are refused with a clear message.

use spki::der::asn1::ObjectIdentifier;
use spki::der::Decode;
use spki::SubjectPublicKeyInfoRef;

use super::keys::{strip_leading_zeros, EcCurve, KeyMaterial};

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Reads one PEM-encoded public key.
pub fn parse_public_key_pem(pem: &str) -> Result<KeyMaterial, String> {
    let pem = pem.trim();
    let (label, der) = pem_rfc7468::decode_vec(pem.as_bytes()).map_err(|e| {
        if pem.contains("PRIVATE KEY") {
            private_key_error()
        } else {
            format!("not a valid PEM block: {e}")
        }
    })?;
    match label {
        "PUBLIC KEY" => parse_spki_der(&der),
        "RSA PUBLIC KEY" => parse_pkcs1_der(&der),
        l if l.contains("PRIVATE KEY") => Err(private_key_error()),
        "CERTIFICATE" => Err("certificates are not accepted; configure the SPKI public key (BEGIN PUBLIC KEY)".into()),
        other => Err(format!("unsupported PEM label {other:?}; expected BEGIN PUBLIC KEY")),
    }
}

fn private_key_error() -> String {
    "this is a PRIVATE key; configure the public key only (BEGIN PUBLIC KEY)".into()
}

/// Reads a DER-encoded SubjectPublicKeyInfo.
pub fn parse_spki_der(der: &[u8]) -> Result<KeyMaterial, String> {
    let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(|e| format!("invalid SubjectPublicKeyInfo: {e}"))?;
    let key = spki.subject_public_key.as_bytes().ok_or("public key bit string has unused bits")?;
    let oid = spki.algorithm.oid;
    let material = if oid == RSA_ENCRYPTION {
        parse_pkcs1_der(key)?
    } else if oid == EC_PUBLIC_KEY {
        let curve_oid = spki.algorithm.parameters_oid().map_err(|_| "EC key without a named curve")?;
        let curve = if curve_oid == SECP256R1 {
            EcCurve::P256
        } else if curve_oid == SECP384R1 {
            EcCurve::P384
        } else {
            return Err(format!("unsupported EC curve {curve_oid}"));
        };
        let n = curve.coord_len();
        if key.len() != 1 + 2 * n || key.first() != Some(&4) {
            return Err("EC public key must be an uncompressed point".into());
        }
        KeyMaterial::Ec { curve, x: key[1..1 + n].to_vec(), y: key[1 + n..].to_vec() }
    } else if oid == ED25519 {
        KeyMaterial::Ed25519 { x: key.to_vec() }
    } else {
        return Err(format!("unsupported public key algorithm {oid}"));
    };
    material.check()?;
    Ok(material)
}

/// Reads a DER-encoded PKCS#1 RSAPublicKey.
pub fn parse_pkcs1_der(der: &[u8]) -> Result<KeyMaterial, String> {
    let k = pkcs1::RsaPublicKey::from_der(der).map_err(|e| format!("invalid RSA public key: {e}"))?;
    let material = KeyMaterial::Rsa {
        n: strip_leading_zeros(k.modulus.as_bytes()),
        e: strip_leading_zeros(k.public_exponent.as_bytes()),
    };
    material.check()?;
    Ok(material)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEKSexBRK64+3c/kZ4KBKLrSkDJpkZ\n9whgacjE32xzKDjHeHlk6qwA5ZIfsUmKYPRgZ2az2WhQAVWNGpdOc0FRPg==\n-----END PUBLIC KEY-----\n";
    const ED_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAfU0Of2FTpptiQrUiq77mhf2kQg+INLEIw72uNp71Sfo=\n-----END PUBLIC KEY-----\n";

    #[test]
    fn reads_ec_and_ed25519_spki() {
        match parse_public_key_pem(EC_PEM).unwrap() {
            KeyMaterial::Ec { curve, x, y } => {
                assert_eq!(curve, EcCurve::P256);
                assert_eq!(x[0], 0x29);
                assert_eq!(y.len(), 32);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_public_key_pem(ED_PEM).unwrap(), KeyMaterial::Ed25519 { x } if x[0] == 0x7d));
    }

    #[test]
    fn private_keys_and_junk_are_refused_clearly() {
        let e = parse_public_key_pem("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n").unwrap_err();
        assert!(e.contains("PRIVATE"), "{e}");
        let e = parse_public_key_pem("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----").unwrap_err();
        assert!(e.contains("PRIVATE"), "{e}");
        assert!(parse_public_key_pem("hello").is_err());
        assert!(parse_public_key_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----").is_err());
    }
}
