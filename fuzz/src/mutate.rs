//! Byte-level mutation of corpus inputs: the classic havoc operators (bit
//! flips, interesting values, arithmetic, block insert/delete/duplicate,
//! splicing), stacked one to four deep.

use crate::rng::Rng;

/// Returns a mutated copy of `input`, at most `max_len` bytes long;
/// `other` is a second corpus input for splicing.
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8], max_len: usize) -> Vec<u8> {
    let mut v = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        one(rng, &mut v, other);
    }
    v.truncate(max_len.max(1));
    if v.is_empty() {
        v.push(rng.byte());
    }
    v
}

fn one(rng: &mut Rng, v: &mut Vec<u8>, other: &[u8]) {
    let len = v.len() as u64;
    let at = |rng: &mut Rng| rng.below(len.max(1)) as usize;
    match rng.below(11) {
        0 if len > 0 => {
            let i = at(rng);
            v[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = at(rng);
            v[i] = rng.byte();
        }
        2 if len > 0 => {
            let i = at(rng);
            v[i] = v[i].wrapping_add(rng.range(1, 16) as u8);
            if rng.chance(1, 2) {
                v[i] = v[i].wrapping_sub(rng.range(1, 32) as u8);
            }
        }
        3 if len >= 2 => {
            // An interesting value, 1 to 8 bytes wide.
            let w = *rng.pick(&[1usize, 2, 4, 8]);
            let i = at(rng);
            let x = rng.interesting_u64().to_le_bytes();
            let n = w.min(v.len() - i);
            v[i..i + n].copy_from_slice(&x[..n]);
        }
        4 => {
            let i = rng.below(len + 1) as usize;
            let n = rng.range(1, 32) as usize;
            let bytes = rng.bytes(n);
            v.splice(i..i, bytes);
        }
        5 if len > 1 => {
            let i = at(rng);
            let n = (rng.range(1, 64) as usize).min(v.len() - i);
            v.drain(i..i + n);
        }
        6 if len > 0 => {
            // Duplicate a block somewhere else.
            let i = at(rng);
            let n = (rng.range(1, 64) as usize).min(v.len() - i);
            let block = v[i..i + n].to_vec();
            let j = rng.below(len + 1) as usize;
            v.splice(j..j, block);
        }
        7 if !other.is_empty() => {
            // Splice: our head, the other input's tail.
            let i = rng.below(len + 1) as usize;
            let j = rng.below(other.len() as u64) as usize;
            v.truncate(i);
            v.extend_from_slice(&other[j..]);
        }
        8 if len > 0 => {
            let i = at(rng);
            v.truncate(i.max(1));
        }
        9 if len > 0 => {
            // Overwrite a block with random bytes.
            let i = at(rng);
            let n = (rng.range(1, 16) as usize).min(v.len() - i);
            for b in &mut v[i..i + n] {
                *b = rng.byte();
            }
        }
        _ => {
            let n = rng.range(1, 64) as usize;
            v.extend(rng.bytes(n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutation_is_deterministic_and_bounded() {
        let base = vec![0u8; 100];
        let a: Vec<Vec<u8>> = {
            let mut r = Rng::new(3);
            (0..200)
                .map(|_| mutate(&mut r, &base, b"xyz", 128))
                .collect()
        };
        let mut r = Rng::new(3);
        for m in &a {
            assert_eq!(m, &mutate(&mut r, &base, b"xyz", 128));
            assert!(!m.is_empty() && m.len() <= 128);
        }
        assert!(a.iter().any(|m| m != &base));
    }
}
