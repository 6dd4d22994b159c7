#ifndef CLZ4_SHIM_H
#define CLZ4_SHIM_H
#include <lz4.h>
#include <lz4hc.h>

/// Compresses `src` into one independent LZ4 block with LZ4HC at `level`, against the
/// raw dictionary `dict` (`dictSize` 0 for none; at most 64 KiB are used). The block
/// decompresses with LZ4_decompress_safe_usingDict and the same dictionary (or
/// LZ4_decompress_safe without one). `stream` comes from LZ4_createStreamHC and is
/// reset here. Returns the compressed size, or 0 when it does not fit `dstCapacity`.
int leadtrail_lz4hc_compress_dict(LZ4_streamHC_t *stream, int level, const char *dict, int dictSize,
                                  const char *src, char *dst, int srcSize, int dstCapacity);
#endif
