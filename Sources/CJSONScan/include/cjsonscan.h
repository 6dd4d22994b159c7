#ifndef CJSONSCAN_H
#define CJSONSCAN_H
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/// Which of the 16 bytes at `p` end a run of plain string content: bit k is set when byte k is a quote, a
/// backslash, a control character (below 0x20) or not ASCII (0x80 and above). Reads exactly 16 bytes.
/// Inline, so Swift's optimiser sees one SSE2 compare-and-mask sequence (a portable loop elsewhere).
static inline uint32_t leadtrail_json_string_stops16(const uint8_t *p) {
#if defined(__SSE2__)
    __m128i v = _mm_loadu_si128((const __m128i *)p);
    __m128i quote = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
    __m128i backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
    // Signed: bytes 0x80-0xFF are negative, so one compare flags them and the control characters.
    __m128i low = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
    return (uint32_t)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), low));
#else
    uint32_t mask = 0;
    for (int k = 0; k < 16; k++) {
        uint8_t c = p[k];
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) mask |= 1u << k;
    }
    return mask;
#endif
}

/// Asks the CPU to bring the cache line holding `p` in ahead of use (a hint: never faults).
static inline void leadtrail_prefetch(const void *p) {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p);
#endif
}
#endif
