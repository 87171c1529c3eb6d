//! RFC 6962 / RFC 9162 Merkle tree hashing over audit entry hashes.
//!
//! The audit chain's entry hash *is* the RFC 6962 leaf hash (`SHA-256(0x00 || JCS(entry))`),
//! so the same 32 bytes link the chain and form the leaves of the tree that signed
//! checkpoints commit to. [`MerkleAccumulator`] keeps only the roots of the perfect subtrees
//! ("the frontier"), so appending is O(log n) with no allocation and the root of the whole
//! log is available at any size without reading the log back.
//!
//! The proof functions work on a full slice of leaf hashes: they are for tests and for an
//! auditor who has an export in hand, not for the append path.

use sha2::{Digest, Sha256};

/// A SHA-256 output: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// RFC 6962 MTH of the empty tree: SHA-256 of the empty string.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Largest tree an accumulator accepts. Restored frontiers are capped here so that `push`
/// can never overflow the size counter (reaching it by appending would take centuries).
pub const MAX_TREE_SIZE: u64 = 1 << 62;

/// Frontier slots: one per bit of the size, which is more than `MAX_TREE_SIZE` needs.
const FRONTIER_SLOTS: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MerkleError {
    #[error("a Merkle frontier for {size} leaves holds {expected} hashes, not {got}")]
    FrontierLength {
        size: u64,
        expected: u32,
        got: usize,
    },
    #[error("tree size {0} exceeds the supported maximum of {MAX_TREE_SIZE}")]
    TooLarge(u64),
}

/// RFC 6962 leaf hash: SHA-256(0x00 || data). This is the audit entry hash.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// RFC 6962 interior node hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Incremental RFC 6962 tree head: the roots of the perfect subtrees that make up the tree,
/// largest first (one per set bit of `size`).
#[derive(Clone)]
pub struct MerkleAccumulator {
    size: u64,
    // A fixed array rather than a Vec so that neither `push` nor `clone` allocates; only
    // the first `size.count_ones()` slots are meaningful.
    frontier: [Hash; FRONTIER_SLOTS],
}

impl Default for MerkleAccumulator {
    fn default() -> Self {
        MerkleAccumulator::new()
    }
}

impl std::fmt::Debug for MerkleAccumulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MerkleAccumulator")
            .field("size", &self.size)
            .field("root", &hex::encode(self.root()))
            .finish()
    }
}

// Stale slots past the live frontier must not affect equality, so no derive.
impl PartialEq for MerkleAccumulator {
    fn eq(&self, other: &Self) -> bool {
        self.size == other.size && self.live() == other.live()
    }
}

impl Eq for MerkleAccumulator {}

impl MerkleAccumulator {
    /// The empty tree.
    pub fn new() -> MerkleAccumulator {
        MerkleAccumulator {
            size: 0,
            frontier: [[0; 32]; FRONTIER_SLOTS],
        }
    }

    /// Number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn depth(&self) -> usize {
        self.size.count_ones() as usize
    }

    fn live(&self) -> &[Hash] {
        &self.frontier[..self.depth()]
    }

    /// Appends one leaf hash (as returned by [`leaf_hash`]).
    pub fn push(&mut self, leaf: Hash) {
        // Binary-counter carry: every trailing one bit of the old size is a perfect subtree
        // of the same height as the carried node, so merge it in (left sibling first).
        let mut node = leaf;
        let mut depth = self.depth();
        let mut carry = self.size;
        while carry & 1 == 1 {
            depth -= 1;
            node = node_hash(&self.frontier[depth], &node);
            carry >>= 1;
        }
        self.frontier[depth] = node;
        self.size += 1;
    }

    /// RFC 6962 MTH of all leaves appended so far.
    pub fn root(&self) -> Hash {
        // The MTH splits at the largest power of two below n, i.e. the largest perfect
        // subtree is the left child and the rest recurses on the right: fold right-to-left.
        let live = self.live();
        let Some((last, rest)) = live.split_last() else {
            return EMPTY_ROOT;
        };
        rest.iter()
            .rev()
            .fold(*last, |right, left| node_hash(left, &right))
    }

    /// The perfect-subtree roots, largest first; store them with [`Self::size`] and give
    /// both back to [`Self::from_frontier`] to resume without re-reading the log.
    pub fn frontier(&self) -> Vec<Hash> {
        self.live().to_vec()
    }

    /// Restores an accumulator saved with [`Self::frontier`] and [`Self::size`].
    pub fn from_frontier(
        size: u64,
        frontier: impl AsRef<[Hash]>,
    ) -> Result<MerkleAccumulator, MerkleError> {
        let frontier = frontier.as_ref();
        if size > MAX_TREE_SIZE {
            return Err(MerkleError::TooLarge(size));
        }
        let expected = size.count_ones();
        if frontier.len() != expected as usize {
            return Err(MerkleError::FrontierLength {
                size,
                expected,
                got: frontier.len(),
            });
        }
        let mut acc = MerkleAccumulator::new();
        acc.frontier[..frontier.len()].copy_from_slice(frontier);
        acc.size = size;
        Ok(acc)
    }
}

/// Largest power of two strictly below `n` (`n >= 2`): where RFC 6962 splits a tree.
fn split(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// RFC 6962 MTH by its recursive definition; the reference the accumulator is tested against.
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => EMPTY_ROOT,
        [leaf] => *leaf,
        _ => {
            let (left, right) = leaves.split_at(split(leaves.len()));
            node_hash(&root_of(left), &root_of(right))
        }
    }
}

/// RFC 6962 audit path for `leaves[index]`. Empty when `index` is out of range (which no
/// verifier accepts unless the tree has exactly one leaf and `index` is 0).
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Vec<Hash> {
    let mut proof = Vec::new();
    if let Ok(index) = usize::try_from(index)
        && index < leaves.len()
    {
        path(leaves, index, &mut proof);
    }
    proof
}

fn path(leaves: &[Hash], index: usize, proof: &mut Vec<Hash>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split(leaves.len());
    let (left, right) = leaves.split_at(k);
    // Proof order is leaf-to-root, so recurse before pushing this level's sibling.
    if index < k {
        path(left, index, proof);
        proof.push(root_of(right));
    } else {
        path(right, index - k, proof);
        proof.push(root_of(left));
    }
}

/// RFC 9162 §2.1.3.2: does `proof` show `leaf` at `index` in the tree of `size` with `root`?
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            // Skip the levels where this node is a right-edge child with no sibling.
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// RFC 6962 consistency proof from the first `old_size` leaves to all of `leaves`. Empty
/// when `old_size` is 0, equal to `leaves.len()` or larger (no proof is needed or possible).
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Vec<Hash> {
    let mut proof = Vec::new();
    if let Ok(m) = usize::try_from(old_size)
        && m > 0
        && m < leaves.len()
    {
        subproof(m, leaves, true, &mut proof);
    }
    proof
}

fn subproof(m: usize, leaves: &[Hash], whole: bool, proof: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        // The old tree is this whole subtree: the verifier knows its root already only if
        // it is the original old tree.
        if !whole {
            proof.push(root_of(leaves));
        }
        return;
    }
    let k = split(n);
    let (left, right) = leaves.split_at(k);
    if m <= k {
        subproof(m, left, whole, proof);
        proof.push(root_of(right));
    } else {
        subproof(m - k, right, false, proof);
        proof.push(root_of(left));
    }
}

/// RFC 9162 §2.1.4.2: does `proof` show that the tree of `old_size` with `old_root` is a
/// prefix of the tree of `new_size` with `new_root`?
///
/// The empty tree is a prefix of every tree, so `old_size == 0` holds with an empty proof
/// when `old_root` is [`EMPTY_ROOT`].
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        return proof.is_empty() && *old_root == EMPTY_ROOT;
    }
    let Some((first, rest)) = proof.split_first() else {
        return false;
    };
    // When the old tree is a perfect subtree, its root is the implicit first proof node;
    // chaining avoids copying the proof to prepend it.
    let old_is_perfect = old_size.is_power_of_two();
    let (seed, tail): (&Hash, &[Hash]) = if old_is_perfect {
        (old_root, proof)
    } else {
        (first, rest)
    };
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*seed, *seed);
    for c in tail {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && fr == *old_root && sr == *new_root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test vector is hex")
    }

    fn h(s: &str) -> Hash {
        unhex(s).try_into().expect("test vector is 32 bytes")
    }

    fn synthetic_leaves(n: usize) -> Vec<Hash> {
        (0..n as u64).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    // certificate-transparency merkle_tree_test.cc leaves and the roots of each prefix.
    const CT_LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const CT_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn ct_leaves() -> Vec<Hash> {
        CT_LEAVES.iter().map(|d| leaf_hash(&unhex(d))).collect()
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        let computed: Hash = Sha256::digest([]).into();
        assert_eq!(EMPTY_ROOT, computed);
        assert_eq!(
            hex::encode(EMPTY_ROOT),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(root_of(&[]), EMPTY_ROOT);
        assert_eq!(MerkleAccumulator::new().root(), EMPTY_ROOT);
    }

    #[test]
    fn known_answer_roots() {
        let leaves = ct_leaves();
        let mut acc = MerkleAccumulator::new();
        for (n, want) in CT_ROOTS.iter().enumerate() {
            acc.push(leaves[n]);
            assert_eq!(
                hex::encode(root_of(&leaves[..=n])),
                *want,
                "root_of {}",
                n + 1
            );
            assert_eq!(hex::encode(acc.root()), *want, "accumulator {}", n + 1);
        }
    }

    #[test]
    fn known_answer_inclusion_proofs() {
        // (0-based index, tree size, audit path) from the same CT test data.
        let vectors: [(u64, u64, &[&str]); 5] = [
            (0, 1, &[]),
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                3,
                &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
            (
                1,
                5,
                &[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        let leaves = ct_leaves();
        for (index, size, want) in vectors {
            let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
            let sub = &leaves[..size as usize];
            assert_eq!(inclusion_proof(sub, index), want, "({index}, {size})");
            let root = h(CT_ROOTS[size as usize - 1]);
            assert!(verify_inclusion(
                &leaves[index as usize],
                index,
                size,
                &want,
                &root
            ));
        }
    }

    #[test]
    fn known_answer_consistency_proofs() {
        let vectors: [(u64, u64, &[&str]); 5] = [
            (1, 1, &[]),
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
            (
                6,
                7,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        let leaves = ct_leaves();
        for (m, n, want) in vectors {
            let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
            assert_eq!(
                consistency_proof(&leaves[..n as usize], m),
                want,
                "({m}, {n})"
            );
            let old = h(CT_ROOTS[m as usize - 1]);
            let new = h(CT_ROOTS[n as usize - 1]);
            assert!(verify_consistency(m, n, &old, &new, &want), "({m}, {n})");
        }
    }

    #[test]
    fn accumulator_matches_reference_for_every_size_up_to_200() {
        let leaves = synthetic_leaves(200);
        let mut acc = MerkleAccumulator::new();
        assert_eq!(acc.root(), root_of(&[]));
        for n in 1..=200 {
            acc.push(leaves[n - 1]);
            assert_eq!(acc.size(), n as u64);
            assert_eq!(acc.root(), root_of(&leaves[..n]), "size {n}");
            assert_eq!(acc.frontier().len(), n.count_ones() as usize);
        }
    }

    #[test]
    fn frontier_round_trip_resumes_appending() {
        let leaves = synthetic_leaves(100);
        let mut acc = MerkleAccumulator::new();
        for n in 0..100 {
            let restored = MerkleAccumulator::from_frontier(acc.size(), acc.frontier())
                .expect("a saved frontier restores");
            assert_eq!(restored, acc);
            assert_eq!(restored.root(), acc.root());
            // Appending after a restore continues the same tree.
            let mut resumed = restored.clone();
            for leaf in &leaves[n..] {
                resumed.push(*leaf);
            }
            assert_eq!(resumed.root(), root_of(&leaves), "resumed at {n}");
            acc.push(leaves[n]);
        }
    }

    #[test]
    fn bad_frontiers_are_rejected() {
        let acc = {
            let mut a = MerkleAccumulator::new();
            for leaf in synthetic_leaves(5) {
                a.push(leaf);
            }
            a
        };
        let frontier = acc.frontier();
        assert_eq!(frontier.len(), 2);
        assert_eq!(
            MerkleAccumulator::from_frontier(6, &frontier).map(|a| a.size()),
            Ok(6)
        );
        assert_eq!(
            MerkleAccumulator::from_frontier(7, &frontier),
            Err(MerkleError::FrontierLength {
                size: 7,
                expected: 3,
                got: 2
            })
        );
        assert!(MerkleAccumulator::from_frontier(0, &frontier).is_err());
        assert!(MerkleAccumulator::from_frontier(5, Vec::new()).is_err());
        assert_eq!(
            MerkleAccumulator::from_frontier(u64::MAX, vec![[0; 32]; 64]),
            Err(MerkleError::TooLarge(u64::MAX))
        );
        // The largest accepted size can still be appended to without overflow.
        let mut big = MerkleAccumulator::from_frontier(MAX_TREE_SIZE, vec![[7; 32]])
            .expect("MAX_TREE_SIZE is accepted");
        big.push([1; 32]);
        assert_eq!(big.size(), MAX_TREE_SIZE + 1);
    }

    #[test]
    fn inclusion_proofs_verify_and_tampering_fails() {
        let all = synthetic_leaves(64);
        for size in 1..=64u64 {
            let leaves = &all[..size as usize];
            let root = root_of(leaves);
            for index in 0..size {
                let leaf = &leaves[index as usize];
                let proof = inclusion_proof(leaves, index);
                assert!(
                    verify_inclusion(leaf, index, size, &proof, &root),
                    "({index}, {size})"
                );
                // Wrong leaf, index, size or root.
                assert!(!verify_inclusion(&[9; 32], index, size, &proof, &root));
                assert!(!verify_inclusion(leaf, index + 1, size, &proof, &root));
                if index > 0 {
                    assert!(!verify_inclusion(leaf, index - 1, size, &proof, &root));
                }
                assert!(!verify_inclusion(leaf, index, size, &proof, &EMPTY_ROOT));
                // Every single-bit flip in every proof element.
                for i in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[i][0] ^= 0x08;
                    assert!(!verify_inclusion(leaf, index, size, &bad, &root));
                }
                // Truncated and extended proofs.
                if let Some((_, shorter)) = proof.split_last() {
                    assert!(!verify_inclusion(leaf, index, size, shorter, &root));
                }
                let mut longer = proof.clone();
                longer.push(root);
                assert!(!verify_inclusion(leaf, index, size, &longer, &root));
                let mut front = vec![root];
                front.extend_from_slice(&proof);
                assert!(!verify_inclusion(leaf, index, size, &front, &root));
            }
            assert!(inclusion_proof(leaves, size).is_empty());
            assert!(!verify_inclusion(&leaves[0], size, size, &[], &root));
        }
    }

    #[test]
    fn consistency_proofs_verify_and_tampering_fails() {
        let all = synthetic_leaves(64);
        let roots: Vec<Hash> = (0..=64).map(|n| root_of(&all[..n])).collect();
        for n in 1..=64u64 {
            let leaves = &all[..n as usize];
            let new_root = roots[n as usize];
            for m in 0..=n {
                let old_root = roots[m as usize];
                let proof = consistency_proof(leaves, m);
                assert!(
                    verify_consistency(m, n, &old_root, &new_root, &proof),
                    "({m}, {n})"
                );
                if m == n {
                    assert!(proof.is_empty());
                    // Equal sizes with different roots are inconsistent.
                    assert!(!verify_consistency(m, n, &[1; 32], &new_root, &proof));
                    continue;
                }
                // Reversed direction and wrong roots.
                assert!(!verify_consistency(n, m, &new_root, &old_root, &proof));
                assert!(!verify_consistency(m, n, &[1; 32], &new_root, &proof));
                if m == 0 {
                    // The empty tree is a prefix of any tree, whatever its root.
                    continue;
                }
                assert!(!verify_consistency(m, n, &old_root, &[1; 32], &proof));
                assert!(!verify_consistency(m, n, &new_root, &old_root, &proof));
                // Wrong old size. (A wrong new size can still verify against the same
                // root, which is harmless: a checkpoint binds the root to its size.)
                assert!(!verify_consistency(m + 1, n, &old_root, &new_root, &proof));
                assert!(!verify_consistency(m - 1, n, &old_root, &new_root, &proof));
                // An old root from a different history.
                let forked = node_hash(&old_root, &[2; 32]);
                assert!(!verify_consistency(m, n, &forked, &new_root, &proof));
                // Bit flips, truncation, extension, empty proof.
                for i in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[i][0] ^= 0x10;
                    assert!(!verify_consistency(m, n, &old_root, &new_root, &bad));
                }
                if let Some((_, shorter)) = proof.split_last() {
                    assert!(!verify_consistency(m, n, &old_root, &new_root, shorter));
                }
                let mut longer = proof.clone();
                longer.push(old_root);
                assert!(!verify_consistency(m, n, &old_root, &new_root, &longer));
                let mut front = vec![new_root];
                front.extend_from_slice(&proof);
                assert!(!verify_consistency(m, n, &old_root, &new_root, &front));
                assert!(!verify_consistency(m, n, &old_root, &new_root, &[]));
            }
        }
    }

    #[test]
    fn degenerate_consistency_inputs() {
        let r1 = [1; 32];
        let r2 = [2; 32];
        assert!(verify_consistency(0, 0, &r1, &r1, &[]));
        assert!(!verify_consistency(0, 0, &r1, &r2, &[]));
        assert!(!verify_consistency(1, 1, &r1, &r2, &[]));
        assert!(!verify_consistency(
            0,
            0,
            &EMPTY_ROOT,
            &EMPTY_ROOT,
            &[EMPTY_ROOT]
        ));
        assert!(!verify_consistency(1, 1, &r1, &r1, &[EMPTY_ROOT]));
        assert!(!verify_consistency(0, 1, &r1, &r2, &[]));
        assert!(!verify_consistency(
            0,
            1,
            &EMPTY_ROOT,
            &EMPTY_ROOT,
            &[EMPTY_ROOT]
        ));
        assert!(verify_consistency(0, 5, &EMPTY_ROOT, &r2, &[]));
        assert!(!verify_consistency(1, 0, &r1, &r2, &[]));
        assert!(!verify_consistency(2, 1, &r1, &r2, &[]));
        assert!(!verify_consistency(1, 2, &r1, &r2, &[]));
        assert!(!verify_consistency(u64::MAX, u64::MAX - 1, &r1, &r2, &[r1]));
        assert!(!verify_consistency(1, u64::MAX, &r1, &r2, &[r1; 70]));
        assert!(!verify_inclusion(&r1, u64::MAX, u64::MAX, &[r1; 70], &r2));
    }

    /// Release-mode throughput of `leaf_hash` + `push`:
    /// `cargo test --release --lib audit::merkle -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing measurement, not a check"]
    fn push_throughput() {
        const N: u64 = 1 << 20;
        // A typical audit entry is a few hundred bytes of canonical JSON.
        let mut entry = [b'x'; 300];
        let mut acc = MerkleAccumulator::new();
        let start = std::time::Instant::now();
        for i in 0..N {
            entry[..8].copy_from_slice(&i.to_be_bytes());
            acc.push(leaf_hash(&entry));
        }
        let root = acc.root();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{N} leaves (300-byte entries) in {secs:.3}s: {:.0} leaves/s, root {}",
            N as f64 / secs,
            hex::encode(root)
        );
    }
}
