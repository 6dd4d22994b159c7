#include "scancount.h"
#include <string.h>
#if defined(__x86_64__) || defined(_M_X64)
#include <emmintrin.h>
#define HAVE_SSE2 1
#endif

/// Bit i set where byte i of the 64-byte block equals c.
static inline uint64_t eq_mask(const uint8_t *block, uint8_t c) {
#ifdef HAVE_SSE2
    const __m128i needle = _mm_set1_epi8((char)c);
    uint64_t m = 0;
    for (int k = 0; k < 4; k++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(block + 16 * k));
        m |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, needle)) << (16 * k);
    }
    return m;
#else
    uint64_t m = 0;
    for (int i = 0; i < 64; i++) m |= (uint64_t)(block[i] == c) << i;
    return m;
#endif
}

static inline uint64_t prefix_xor(uint64_t x) {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    return x;
}

typedef struct {
    int depth;
    int in_events;
    const uint8_t *key;  /* the last key seen at depth 1 */
    size_t key_length;
    leadtrail_scan_count result;
} state;

static int key_is(const state *s, const char *name) {
    size_t n = strlen(name);
    return s->key && s->key_length == n && memcmp(s->key, name, n) == 0;
}

/// The bytes of the top-level object between two brackets (`"id":1,"ok":true,"events":`): keys and `true`s.
static void top_level(state *s, const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c == '"') {
            size_t j = i + 1;
            while (j < n && p[j] != '"') j += (p[j] == '\\') ? 2 : 1;
            size_t k = j + 1;
            while (k < n && (p[k] == ' ' || p[k] == '\t' || p[k] == '\n' || p[k] == '\r')) k++;
            if (k < n && p[k] == ':') {
                s->key = p + i + 1;
                s->key_length = j - i - 1;
            }
            i = j + 1;
        } else if (c == 't') {
            if (key_is(s, "ok")) s->result.ok = 1;
            if (key_is(s, "done")) s->result.done = 1;
            i += 4;
        } else {
            i++;
        }
    }
}

leadtrail_scan_count leadtrail_count_scan_frame(const uint8_t *bytes, size_t count) {
    state s = {0};
    uint64_t prev_in_string = 0;  /* all ones when the previous block ended inside a string */
    uint64_t prev_escaped = 0;    /* 1 when the previous block ended with an odd run of backslashes */
    size_t span_start = 0;        /* where the current stretch of the top-level object began */
    uint8_t tail[64];
    const uint64_t even_bits = 0x5555555555555555ULL;
    for (size_t base = 0; base < count; base += 64) {
        const uint8_t *block = bytes + base;
        if (count - base < 64) {
            memset(tail, ' ', sizeof tail);
            memcpy(tail, block, count - base);
            block = tail;
        }
        /* Escaped characters: those after an odd run of backslashes (simdjson's find_escaped). */
        uint64_t backslash = eq_mask(block, '\\') & ~prev_escaped;
        uint64_t follows_escape = backslash << 1 | prev_escaped;
        uint64_t odd_starts = backslash & ~even_bits & ~follows_escape;
        uint64_t sequences_on_even;
        prev_escaped = __builtin_add_overflow(odd_starts, backslash, &sequences_on_even);
        uint64_t escaped = (even_bits ^ (sequences_on_even << 1)) & follows_escape;

        uint64_t quotes = eq_mask(block, '"') & ~escaped;
        uint64_t in_string = prefix_xor(quotes) ^ prev_in_string;
        prev_in_string = (uint64_t)((int64_t)in_string >> 63);
        uint64_t brackets = eq_mask(block, '{') | eq_mask(block, '}') | eq_mask(block, '[') | eq_mask(block, ']');
        uint64_t structural = brackets & ~in_string;
        while (structural) {
            size_t pos = base + (size_t)__builtin_ctzll(structural);
            structural &= structural - 1;
            uint8_t c = bytes[pos];
            if (s.depth == 1) top_level(&s, bytes + span_start, pos - span_start);
            if (c == '{' || c == '[') {
                s.depth++;
                if (s.depth == 1) span_start = pos + 1;
                if (s.depth == 2 && c == '[' && key_is(&s, "events")) s.in_events = 1;
                if (s.depth == 3 && s.in_events) s.result.events++;
            } else {
                s.depth--;
                if (s.depth == 1) {
                    s.in_events = 0;
                    span_start = pos + 1;
                }
            }
        }
    }
    return s.result;
}
