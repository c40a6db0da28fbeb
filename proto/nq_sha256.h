/*
 * nq_sha256.h — SHA-256 (FIPS 180-4), for the checksums of spooled inputs.
 * No dependency links one we may use (OpenSSL is not a dependency).
 */
#ifndef NQ_SHA256_H
#define NQ_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define NQ_SHA256_LEN 32
#define NQ_SHA256_HEX (2 * NQ_SHA256_LEN + 1) /* with the NUL */

struct nq_sha256 {
	uint32_t h[8];
	uint64_t bytes;  /* message length so far */
	uint8_t buf[64]; /* a partial block */
	size_t nbuf;
};

void nq_sha256_init(struct nq_sha256 *c);
void nq_sha256_update(struct nq_sha256 *c, const void *data, size_t n);
void nq_sha256_final(struct nq_sha256 *c, uint8_t out[NQ_SHA256_LEN]);
/* One call: digest of data as 64 lowercase hex digits + NUL. */
void nq_sha256_hex(const void *data, size_t n, char hex[NQ_SHA256_HEX]);
void nq_sha256_tohex(const uint8_t d[NQ_SHA256_LEN], char hex[NQ_SHA256_HEX]);
/* The digest of a file's bytes (hex). 0, or NQ_EIO with errno set. */
int nq_sha256_file(const char *path, char hex[NQ_SHA256_HEX]);

#endif
