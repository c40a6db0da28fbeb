/*
 * fuzz_decode.c — libFuzzer target for nq_decode/nq_encode, also linked into
 * fuzz_replay (gcc, always built) which runs the seed corpus under ctest.
 *
 * Invariants: decoding never crashes and fails only with EPROTO, EBADARRAY
 * or ENOMEM plus a message; whatever decodes re-encodes, and the encoding is
 * a fixed point (decode(encode(v)) encodes to the same bytes); decoding in
 * place gives the same value.
 */
#include "fuzz_decode.h"

#include "nq_check.h"
#include "nq_error.h"
#include "nq_value.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
nq_fuzz_one(const uint8_t *data, size_t size, char *why, size_t whylen)
{
	struct nq_value v, w;
	char err[512];
	void *b1 = NULL, *b2 = NULL;
	size_t n1 = 0, n2 = 0;
	int rc, crc, bad = 0;

	why[0] = '\0';
	crc = nq_check(data, size, NULL, 0);
	err[0] = '\0';
	rc = nq_decode(data, size, &v, err, sizeof(err));
	if (rc != 0) {
		if (rc != NQ_EPROTO && rc != NQ_EBADARRAY && rc != NQ_ENOMEM)
			snprintf(why, whylen, "decode returned code %d", rc);
		else if (err[0] == '\0')
			snprintf(why, whylen,
			         "decode failed without a message");
		else if (v.kind != NQ_NIL)
			snprintf(why, whylen, "failed decode left a value");
		return why[0] ? -1 : 0;
	}
	if (crc != 0) {
		snprintf(why, whylen, "decode accepted what nq_check rejects");
		nq_value_free(&v);
		return -1;
	}
	rc = nq_encode(&v, &b1, &n1);
	if (rc != 0) {
		snprintf(why, whylen, "encode of a decoded value failed: %d",
		         rc);
		bad = 1;
		goto out;
	}
	rc = nq_decode(b1, n1, &w, err, sizeof(err));
	if (rc != 0) {
		snprintf(why, whylen, "re-decode failed: %s", err);
		bad = 1;
		goto out;
	}
	/* in place (big arrays borrowed from a copy of the input): the same
	 * value, so the same encoding */
	if ((b2 = malloc(size ? size : 1)) != NULL) {
		struct nq_value x;
		void *b3 = NULL;
		size_t n3 = 0;

		memcpy(b2, data, size);
		rc = nq_decode_inplace(b2, size, &x, err, sizeof(err));
		if (rc == 0)
			rc = nq_encode(&x, &b3, &n3);
		nq_value_free(&x);
		if (rc != 0 || n3 != n1 || memcmp(b3, b1, n1) != 0) {
			snprintf(why, whylen, "in-place decode differs");
			bad = 1;
		}
		free(b3);
		free(b2);
		b2 = NULL;
		if (bad)
			goto out;
	}
	rc = nq_encode(&w, &b2, &n2);
	nq_value_free(&w);
	if (rc != 0 || n1 != n2 || memcmp(b1, b2, n1) != 0) {
		snprintf(why, whylen, "encoding is not a fixed point");
		bad = 1;
	}
out:
	free(b1);
	free(b2);
	nq_value_free(&v);
	return bad ? -1 : 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[256];

	if (nq_fuzz_one(data, size, why, sizeof(why)) != 0) {
		fprintf(stderr, "fuzz_decode: %s\n", why);
		abort(); /* make libFuzzer keep the input */
	}
	return 0;
}
