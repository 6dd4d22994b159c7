#ifndef CCRC32C_H
#define CCRC32C_H
#include <stddef.h>
#include <stdint.h>

/// Extends a CRC32C (Castagnoli) value over `length` bytes. Start with crc = 0.
/// Folds 256 bytes a step with VPCLMULQDQ (AVX-512) when the CPU has it and the buffer is at least 256 bytes,
/// else uses the SSE4.2 crc32 instruction, else a slicing-by-8 table.
uint32_t leadtrail_crc32c_extend(uint32_t crc, const void *data, size_t length);

/// The crc32 instruction's path alone (the table where the CPU lacks it), so tests can compare it with folding.
uint32_t leadtrail_crc32c_extend_crc32_instruction(uint32_t crc, const void *data, size_t length);

/// The portable table implementation, exposed so tests can compare both paths.
uint32_t leadtrail_crc32c_extend_portable(uint32_t crc, const void *data, size_t length);

/// 0: the table; 1: the SSE4.2 crc32 instruction; 2: that, and VPCLMULQDQ folding for long buffers.
int leadtrail_crc32c_hardware(void);
#endif
