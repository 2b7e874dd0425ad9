/* Inline pieces shared by the CPU code (had.c) and the CUDA kernels (had_cuda.cu): the signs of the
 * m x m Hadamard blocks (m = 12, 20, 28, built by Paley's constructions).
 * In the kernels the block loops unroll, so every had_block_sign() call folds to a constant. */
#ifndef MQ_HAD_SIGN_H
#define MQ_HAD_SIGN_H
#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define HAD_HD static inline __host__ __device__
#else
#define HAD_HD static inline
#endif

/* Bit s set <=> s is a nonzero square modulo the prime q (11, 13, 19); tests recompute these. */
HAD_HD uint32_t had_qr_mask(int q) {
    return q == 11 ? 0x23Au : q == 13 ? 0x161Au : q == 19 ? 0x30AF2u : 0u;
}

/* Quadratic character of s modulo q: 0 for s = 0, +1 for a square, -1 otherwise. */
HAD_HD int had_chi(int q, int s) {
    s %= q;
    if (s < 0) s += q;
    return s == 0 ? 0 : ((had_qr_mask(q) >> s) & 1u) ? 1 : -1;
}

/* Entry (i, j) of the unnormalized m x m block A_m (+1 or -1). Every A_m is symmetric with
 * A_m A_m^T = m I.
 *  m = 1:      A = [1].
 *  m = 12, 20: Paley I with q = m - 1 (q = 3 mod 4). The textbook matrix [[1, 1^T], [-1, Q + I]]
 *              (Q[i][j] = chi(j - i), skew) times the orthogonal diag(-1, P), P[i][j] = [i + j = 0
 *              mod q], which makes it symmetric: A = [[-1, 1^T], [1, B]], B[i][j] = 1 when
 *              i + j = 0 mod q, else -chi(i + j).
 *  m = 28:     Paley II with q = 13 (q = 1 mod 4): S = [[0, 1^T], [1, Q]] (symmetric), each 0 of S
 *              replaced by [[1, -1], [-1, -1]] and each +-1 by +-[[1, 1], [1, -1]]. */
HAD_HD int had_block_sign(int m, int i, int j) {
    if (m == 12 || m == 20) {
        int q = m - 1;
        if (i == 0 && j == 0) return -1;
        if (i == 0 || j == 0) return 1;
        int s = (i - 1 + j - 1) % q;
        return s == 0 ? 1 : -had_chi(q, s);
    }
    if (m == 28) {
        int I = i >> 1, J = j >> 1, r = i & 1, c = j & 1;
        int s = (I == 0 || J == 0) ? (I == J ? 0 : 1) : had_chi(13, J - I);
        if (s == 0) return (r == 0 && c == 0) ? 1 : -1;
        return (r && c) ? -s : s;
    }
    return 1;
}

#endif
