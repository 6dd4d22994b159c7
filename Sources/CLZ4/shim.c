#define LZ4_HC_STATIC_LINKING_ONLY
#include "clz4.h"

int leadtrail_lz4hc_compress_dict(LZ4_streamHC_t *stream, int level, const char *dict, int dictSize,
                                  const char *src, char *dst, int srcSize, int dstCapacity) {
    LZ4_resetStreamHC_fast(stream, level);
    if (dictSize > 0) LZ4_loadDictHC(stream, dict, dictSize);
    return LZ4_compress_HC_continue(stream, src, dst, srcSize, dstCapacity);
}
