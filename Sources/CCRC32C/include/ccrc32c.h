#ifndef CCRC32C_H
#define CCRC32C_H
#include <stddef.h>
#include <stdint.h>

/// Extends a CRC32C (Castagnoli) value over `length` bytes. Start with crc = 0.
/// Uses SSE4.2 when the CPU has it, else a slicing-by-8 table.
uint32_t leadtrail_crc32c_extend(uint32_t crc, const void *data, size_t length);

/// The portable table implementation, exposed so tests can compare both paths.
uint32_t leadtrail_crc32c_extend_portable(uint32_t crc, const void *data, size_t length);

/// 1 when the hardware path is in use.
int leadtrail_crc32c_hardware(void);
#endif
