#ifndef LEADTRAIL_SCANCOUNT_H
#define LEADTRAIL_SCANCOUNT_H
#include <stddef.h>
#include <stdint.h>

/// What one scan response frame holds: the objects of its top-level `events` array, and
/// whether its top level says `"ok":true` and `"done":true`.
typedef struct {
    long events;
    int ok;
    int done;
} leadtrail_scan_count;

/// Counts a scan frame's events in one pass over its bytes that follows strings (escapes
/// included) and nesting and decodes nothing: 64 bytes at a time, finding quotes, backslashes
/// and brackets with SSE2 compares and the bytes inside strings with a prefix XOR (as simdjson's
/// first stage does), so only brackets outside strings and the few top-level members are looked
/// at one by one.
leadtrail_scan_count leadtrail_count_scan_frame(const uint8_t *bytes, size_t count);
#endif
