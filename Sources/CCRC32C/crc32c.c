#include "ccrc32c.h"
#include <string.h>

static uint32_t table[8][256];
static int table_ready = 0;

static void build_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xFF];
    __atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

uint32_t leadtrail_crc32c_extend_portable(uint32_t crc, const void *data, size_t length) {
    if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE)) build_table();
    const uint8_t *p = (const uint8_t *)data;
    uint32_t c = ~crc;
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        uint32_t lo = (uint32_t)word ^ c, hi = (uint32_t)(word >> 32);
        c = table[7][lo & 0xFF] ^ table[6][(lo >> 8) & 0xFF] ^ table[5][(lo >> 16) & 0xFF] ^ table[4][lo >> 24] ^
            table[3][hi & 0xFF] ^ table[2][(hi >> 8) & 0xFF] ^ table[1][(hi >> 16) & 0xFF] ^ table[0][hi >> 24];
        p += 8;
        length -= 8;
    }
    while (length--) c = (c >> 8) ^ table[0][(c ^ *p++) & 0xFF];
    return ~c;
}

#if defined(__x86_64__)
#include <immintrin.h>

/* Three independent CRC streams run in parallel (the crc32 instruction has a
 * latency of 3 cycles and a throughput of 1), then are combined by shifting a
 * CRC over a run of zero bytes with a table (Mark Adler's method, as in zlib's
 * crc32_combine). GF(2) matrix helpers build the shift tables once. */
#define CRC32C_LONG 8192
#define CRC32C_SHORT 256
static uint32_t crc32c_long[4][256];
static uint32_t crc32c_short[4][256];

static uint32_t gf2_matrix_times(const uint32_t *mat, uint32_t vec) {
    uint32_t sum = 0;
    while (vec) {
        if (vec & 1) sum ^= *mat;
        vec >>= 1;
        mat++;
    }
    return sum;
}

static void gf2_matrix_square(uint32_t *square, const uint32_t *mat) {
    for (int n = 0; n < 32; n++) square[n] = gf2_matrix_times(mat, mat[n]);
}

/* The operator that appends `len` zero bytes to a CRC (len a power of two). */
static void crc32c_zeros_op(uint32_t *even, size_t len) {
    uint32_t odd[32];
    odd[0] = 0x82F63B78u;
    uint32_t row = 1;
    for (int n = 1; n < 32; n++) {
        odd[n] = row;
        row <<= 1;
    }
    gf2_matrix_square(even, odd); /* 2 zero bits */
    gf2_matrix_square(odd, even); /* 4 zero bits */
    do {
        gf2_matrix_square(even, odd); /* 8 zero bits (one byte), then 4 bytes, ... */
        len >>= 1;
        if (len == 0) return;
        gf2_matrix_square(odd, even);
        len >>= 1;
    } while (len);
    for (int n = 0; n < 32; n++) even[n] = odd[n];
}

static void crc32c_zeros(uint32_t zeros[][256], size_t len) {
    uint32_t op[32];
    crc32c_zeros_op(op, len);
    for (uint32_t n = 0; n < 256; n++) {
        zeros[0][n] = gf2_matrix_times(op, n);
        zeros[1][n] = gf2_matrix_times(op, n << 8);
        zeros[2][n] = gf2_matrix_times(op, n << 16);
        zeros[3][n] = gf2_matrix_times(op, n << 24);
    }
}

static inline uint32_t crc32c_shift(uint32_t zeros[][256], uint32_t crc) {
    return zeros[0][crc & 0xFF] ^ zeros[1][(crc >> 8) & 0xFF] ^ zeros[2][(crc >> 16) & 0xFF] ^ zeros[3][crc >> 24];
}

__attribute__((constructor)) static void crc32c_build_shift_tables(void) {
    crc32c_zeros(crc32c_long, CRC32C_LONG);
    crc32c_zeros(crc32c_short, CRC32C_SHORT);
}

static inline uint64_t load64(const uint8_t *p) {
    uint64_t word;
    memcpy(&word, p, 8);
    return word;
}

/* Consumes runs of 3 * `block` bytes: three streams side by side, then combined. */
__attribute__((target("sse4.2")))
static inline uint64_t crc32c_three_streams(uint64_t c0, const uint8_t **next, size_t *length, size_t block,
                                            uint32_t zeros[][256]) {
    const uint8_t *p = *next;
    while (*length >= 3 * block) {
        uint64_t c1 = 0, c2 = 0;
        const uint8_t *end = p + block;
        do {
            c0 = _mm_crc32_u64(c0, load64(p));
            c1 = _mm_crc32_u64(c1, load64(p + block));
            c2 = _mm_crc32_u64(c2, load64(p + 2 * block));
            p += 8;
        } while (p < end);
        c0 = crc32c_shift(zeros, (uint32_t)c0) ^ (uint32_t)c1;
        c0 = crc32c_shift(zeros, (uint32_t)c0) ^ (uint32_t)c2;
        p += 2 * block;
        *length -= 3 * block;
    }
    *next = p;
    return c0;
}

/* The crc32 instruction over the rest, 8 bytes at a time, then byte by byte (the raw state, not inverted). */
__attribute__((target("sse4.2")))
static inline uint64_t crc32c_rest(uint64_t c, const uint8_t *p, size_t length) {
    while (length >= 8) {
        c = _mm_crc32_u64(c, load64(p));
        p += 8;
        length -= 8;
    }
    while (length--) c = _mm_crc32_u8((uint32_t)c, *p++);
    return c;
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_sse42(uint32_t crc, const void *data, size_t length) {
    const uint8_t *p = (const uint8_t *)data;
    uint64_t c0 = ~crc;
    while (length && ((uintptr_t)p & 7)) { c0 = _mm_crc32_u8((uint32_t)c0, *p++); length--; }
    c0 = crc32c_three_streams(c0, &p, &length, CRC32C_LONG, crc32c_long);
    c0 = crc32c_three_streams(c0, &p, &length, CRC32C_SHORT, crc32c_short);
    return ~(uint32_t)crc32c_rest(c0, p, length);
}
/* Folding with carry-less multiplication, 256 bytes a step (the method of Intel's "Fast CRC Computation for
 * Generic Polynomials Using PCLMULQDQ", on 512-bit registers). Four registers hold 256 bytes; each 16-byte lane
 * X is carried D bytes forward as clmul(X.lo, K1) ^ clmul(X.hi, K2), a 16-byte value with the same CRC
 * contribution at that place, and the data found there is XORed in. The last 16 bytes left are finished with
 * the crc32 instruction, which reduces them modulo the polynomial, and so are the bytes after the last 64.
 * The constants (K1 in the low half, K2 in the high half) are solved for and checked against the bitwise CRC
 * by scripts/crc32c-fold-constants; the tests compare this path with the crc32 instruction's and the table's. */
#define FOLD_CONSTANTS(k1, k2) _mm512_set_epi64((long long)(k2), (long long)(k1), (long long)(k2), (long long)(k1), \
                                                (long long)(k2), (long long)(k1), (long long)(k2), (long long)(k1))
#define FOLD_TARGET __attribute__((target("avx512f,avx512vl,avx512bw,vpclmulqdq,pclmul,sse4.2")))

/* x carried `D` bytes forward (the constants say how far), with `next` XORed in. */
FOLD_TARGET static inline __m512i crc32c_fold(__m512i x, __m512i constants, __m512i next) {
    return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, constants, 0x00),
                                     _mm512_clmulepi64_epi128(x, constants, 0x11), next, 0x96);
}

FOLD_TARGET static inline __m128i crc32c_fold16(__m128i x, uint64_t k1, uint64_t k2, __m128i next) {
    __m128i constants = _mm_set_epi64x((long long)k2, (long long)k1);
    return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, constants, 0x00),
                                       _mm_clmulepi64_si128(x, constants, 0x11)), next);
}

/* At least 256 bytes. */
FOLD_TARGET static uint32_t crc32c_folding(uint32_t crc, const uint8_t *p, size_t length) {
    const __m512i by256 = FOLD_CONSTANTS(0xe9a5d8be00000000ull, 0x1426a81500000000ull); /* 256 bytes on */
    const __m512i by64 = FOLD_CONSTANTS(0x1c19243b00000000ull, 0x75bba45b00000000ull);   /* 64 bytes on */
    __m512i a0 = _mm512_xor_si512(_mm512_loadu_si512(p), _mm512_set_epi64(0, 0, 0, 0, 0, 0, 0, (long long)(uint32_t)~crc));
    __m512i a1 = _mm512_loadu_si512(p + 64);
    __m512i a2 = _mm512_loadu_si512(p + 128);
    __m512i a3 = _mm512_loadu_si512(p + 192);
    p += 256;
    length -= 256;
    while (length >= 256) {
        a0 = crc32c_fold(a0, by256, _mm512_loadu_si512(p));
        a1 = crc32c_fold(a1, by256, _mm512_loadu_si512(p + 64));
        a2 = crc32c_fold(a2, by256, _mm512_loadu_si512(p + 128));
        a3 = crc32c_fold(a3, by256, _mm512_loadu_si512(p + 192));
        p += 256;
        length -= 256;
    }
    a1 = crc32c_fold(a0, by64, a1);
    a2 = crc32c_fold(a1, by64, a2);
    a3 = crc32c_fold(a2, by64, a3);
    while (length >= 64) {
        a3 = crc32c_fold(a3, by64, _mm512_loadu_si512(p));
        p += 64;
        length -= 64;
    }
    /* The last register's four lanes into its last one: 48, 32 and 16 bytes on. */
    __m128i x = _mm512_extracti32x4_epi32(a3, 0);
    x = crc32c_fold16(x, 0xa46ef4aa00000000ull, 0x6051243f00000000ull, _mm512_extracti32x4_epi32(a3, 3));
    x = _mm_xor_si128(x, crc32c_fold16(_mm512_extracti32x4_epi32(a3, 1), 0x33ccbbbc00000000ull, 0xa2158b3400000000ull,
                                       _mm_setzero_si128()));
    x = _mm_xor_si128(x, crc32c_fold16(_mm512_extracti32x4_epi32(a3, 2), 0x3743f7bd00000000ull, 0x3171d43000000000ull,
                                       _mm_setzero_si128()));
    uint64_t c = _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(x));
    c = _mm_crc32_u64(c, (uint64_t)_mm_extract_epi64(x, 1));
    return ~(uint32_t)crc32c_rest(c, p, length);
}

/* Folding takes one whole 256-byte step to start; shorter buffers go through the crc32 instruction. */
#define CRC32C_FOLDING_MINIMUM 256

static int hardware = -1;
int leadtrail_crc32c_hardware(void) {
    int h = __atomic_load_n(&hardware, __ATOMIC_RELAXED);
    if (h < 0) {
        __builtin_cpu_init();
        h = 0;
        if (__builtin_cpu_supports("sse4.2")) h = 1;
        if (h && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
            __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("vpclmulqdq") &&
            __builtin_cpu_supports("pclmul")) h = 2;
        __atomic_store_n(&hardware, h, __ATOMIC_RELAXED);
    }
    return h;
}
uint32_t leadtrail_crc32c_extend(uint32_t crc, const void *data, size_t length) {
    int h = leadtrail_crc32c_hardware();
    if (h == 2 && length >= CRC32C_FOLDING_MINIMUM) return crc32c_folding(crc, (const uint8_t *)data, length);
    if (h) return crc32c_sse42(crc, data, length);
    return leadtrail_crc32c_extend_portable(crc, data, length);
}
uint32_t leadtrail_crc32c_extend_crc32_instruction(uint32_t crc, const void *data, size_t length) {
    if (leadtrail_crc32c_hardware()) return crc32c_sse42(crc, data, length);
    return leadtrail_crc32c_extend_portable(crc, data, length);
}
#else
int leadtrail_crc32c_hardware(void) { return 0; }
uint32_t leadtrail_crc32c_extend(uint32_t crc, const void *data, size_t length) {
    return leadtrail_crc32c_extend_portable(crc, data, length);
}
uint32_t leadtrail_crc32c_extend_crc32_instruction(uint32_t crc, const void *data, size_t length) {
    return leadtrail_crc32c_extend_portable(crc, data, length);
}
#endif
