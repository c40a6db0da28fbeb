/* fuzz_decode.h — the decode/encode check shared by fuzz_decode and
 * fuzz_replay. */
#ifndef NQ_FUZZ_DECODE_H
#define NQ_FUZZ_DECODE_H

#include <stddef.h>
#include <stdint.h>

/* 0, or -1 with the broken invariant in why. */
int nq_fuzz_one(const uint8_t *data, size_t size, char *why, size_t whylen);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
