/*
 * nq_check.h — structural check of raw msgpack bytes, run before msgpack-c
 * sees a buffer (msgpack-c allocates by the declared count, so a 5-byte
 * array32 header could otherwise ask for 64 GiB).
 */
#ifndef NQ_CHECK_H
#define NQ_CHECK_H

#include <stddef.h>

/* Accepts exactly one msgpack document of len bytes whose every declared
 * str/bin/array/map length fits in the bytes that remain, nested at most
 * NQ_MAX_DEPTH containers deep, with string map keys, every str valid
 * UTF-8 (nq_utf8.h) and no ext types.
 * 0 or NQ_EPROTO with a message naming the byte offset. */
int nq_check(const void *buf, size_t len, char *err, size_t errlen);

#endif
