//! VNC Authentication (RFC 6143 §7.2.2): DES challenge-response.
//!
//! The server sends a 16-byte challenge; the client encrypts it with DES in ECB mode, keyed by
//! the password truncated or zero-padded to 8 bytes. VNC treats the lowest bit of each key byte
//! as the first bit, the reverse of standard DES, so every key byte is bit-reversed first.

use des::cipher::generic_array::GenericArray;
use des::cipher::{BlockEncrypt, KeyInit};
use des::Des;

/// Length of the challenge and of the response.
pub const CHALLENGE_LEN: usize = 16;

/// The DES key VNC derives from a password: first 8 bytes, zero-padded, each bit-reversed.
pub fn vnc_des_key(password: &[u8]) -> [u8; 8] {
    let mut key = [0u8; 8];
    for (k, p) in key.iter_mut().zip(password.iter()) {
        *k = p.reverse_bits();
    }
    key
}

/// The response a client holding `password` sends for `challenge`.
pub fn encrypt_challenge(password: &[u8], challenge: &[u8; CHALLENGE_LEN]) -> [u8; CHALLENGE_LEN] {
    let key = vnc_des_key(password);
    let cipher = Des::new(GenericArray::from_slice(&key));
    let mut out = *challenge;
    for block in out.chunks_exact_mut(8) {
        cipher.encrypt_block(GenericArray::from_mut_slice(block));
    }
    out
}

/// True when `response` is the right answer to `challenge` for `password`.
///
/// The comparison takes the same time whatever the mismatch position, so a client cannot learn
/// the expected response byte by byte.
pub fn verify_response(
    password: &[u8],
    challenge: &[u8; CHALLENGE_LEN],
    response: &[u8; CHALLENGE_LEN],
) -> bool {
    constant_time_eq(&encrypt_challenge(password, challenge), response)
}

/// `a == b` in a time that depends only on the lengths, not on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_bits_are_reversed_and_padded() {
        assert_eq!(vnc_des_key(b"\x01\x80"), [0x80, 0x01, 0, 0, 0, 0, 0, 0]);
        assert_eq!(vnc_des_key(b"123456789"), vnc_des_key(b"12345678"));
    }

    #[test]
    fn verify_accepts_only_the_right_password() {
        let ch = [7u8; 16];
        let r = encrypt_challenge(b"secret", &ch);
        assert!(verify_response(b"secret", &ch, &r));
        assert!(!verify_response(b"Secret", &ch, &r));
        // Only the first 8 bytes count.
        let r = encrypt_challenge(b"password1", &ch);
        assert!(verify_response(b"password2", &ch, &r));
    }
}
