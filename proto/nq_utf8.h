/*
 * nq_utf8.h — UTF-8 (RFC 3629) validity of the wire's strings. Every msgpack
 * str is UTF-8 (proto/PROTOCOL.md §2): nq_check refuses a message with any
 * other str (EPROTO), and nq_encode never sends one (it replaces what is not
 * UTF-8, e.g. a log cut in the middle of a character), so a strict decoder
 * can read every reply.
 *
 * Valid: shortest forms only, no surrogates (U+D800..U+DFFF), nothing above
 * U+10FFFF.
 */
#ifndef NQ_UTF8_H
#define NQ_UTF8_H

#include <stddef.h>

/* Length (1..4) of the valid UTF-8 sequence at s[0..n), or 0 when s[0]
 * does not start one (n > 0). */
size_t nq_utf8_seq(const void *s, size_t n);

/* Offset of the first byte of s[0..n) that does not start a valid
 * sequence; n when all of it is UTF-8. */
size_t nq_utf8_invalid_at(const void *s, size_t n);

/* Bytes nq_utf8_fix writes for s[0..n): each byte that does not start a
 * valid sequence becomes U+FFFD (3 bytes). */
size_t nq_utf8_fixed_len(const void *s, size_t n);

/* Writes s[0..n) with each byte that does not start a valid sequence
 * replaced by U+FFFD into out (nq_utf8_fixed_len(s, n) bytes, no NUL). */
void nq_utf8_fix(const void *s, size_t n, char *out);

/* The longest prefix of s[0..n) of at most max bytes that does not end
 * inside a character: for cutting text to a length. */
size_t nq_utf8_cut(const void *s, size_t n, size_t max);

#endif
