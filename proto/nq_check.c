/* nq_check.c — bounds walk over raw msgpack bytes (see nq_check.h). */
#include "nq_check.h"

#include "nq_error.h"
#include "nq_utf8.h"
#include "nq_value.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

struct nq_walk {
	const uint8_t *p;
	size_t len;
	size_t off;
	char *err;
	size_t errlen;
};

static int
nq_walk_fail(struct nq_walk *w, size_t off, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (w->err != NULL && w->errlen > 0) {
		n = snprintf(w->err, w->errlen,
		             "malformed msgpack at byte %zu: ", off);
		if (n >= 0 && (size_t) n < w->errlen) {
			va_start(ap, fmt);
			vsnprintf(w->err + n, w->errlen - (size_t) n, fmt, ap);
			va_end(ap);
		}
	}
	return NQ_EPROTO;
}

static uint64_t
nq_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Reads an n-byte big-endian length after the type byte at w->off. */
static int
nq_walk_len(struct nq_walk *w, int n, uint64_t *out)
{
	if (w->len - w->off < 1 + (size_t) n)
		return nq_walk_fail(w, w->off, "truncated length field");
	*out = nq_be(w->p + w->off + 1, n);
	w->off += 1 + (size_t) n;
	return 0;
}

static int
nq_walk_skip(struct nq_walk *w, size_t start, uint64_t n, const char *what)
{
	if (n > w->len - w->off)
		return nq_walk_fail(
		        w, start, "%s declares %llu bytes, only %zu remain",
		        what, (unsigned long long) n, w->len - w->off);
	w->off += (size_t) n;
	return 0;
}

/* A str of n bytes at w->off: in the message and UTF-8 (§2). The message
 * names the offset, never the bytes: an error reply must be UTF-8 too. */
static int
nq_walk_str(struct nq_walk *w, size_t start, uint64_t n)
{
	size_t at;

	if (n > w->len - w->off)
		return nq_walk_skip(w, start, n, "str");
	at = nq_utf8_invalid_at(w->p + w->off, (size_t) n);
	if (at != (size_t) n)
		return nq_walk_fail(w, start,
		                    "str of %zu bytes is not valid UTF-8 (at "
		                    "its byte %zu)",
		                    (size_t) n, at);
	w->off += (size_t) n;
	return 0;
}

static int nq_walk_value(struct nq_walk *w, int depth, int is_key);

static int
nq_walk_container(struct nq_walk *w, size_t start, uint64_t n, int is_map,
                  int depth)
{
	uint64_t per = is_map ? 2 : 1;
	int rc;

	if (depth >= NQ_MAX_DEPTH)
		return nq_walk_fail(w, start, "nesting deeper than %d",
		                    NQ_MAX_DEPTH);
	/* Every element takes at least one byte; a map entry two. */
	if (n > (w->len - w->off) / per)
		return nq_walk_fail(
		        w, start, "%s declares %llu %s, only %zu bytes remain",
		        is_map ? "map" : "array", (unsigned long long) n,
		        is_map ? "entries" : "elements", w->len - w->off);
	for (uint64_t i = 0; i < n; i++) {
		if (is_map) {
			rc = nq_walk_value(w, depth + 1, 1);
			if (rc != 0)
				return rc;
		}
		rc = nq_walk_value(w, depth + 1, 0);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int
nq_walk_value(struct nq_walk *w, int depth, int is_key)
{
	size_t start = w->off;
	uint8_t t;
	uint64_t n = 0;
	int rc;

	if (w->off >= w->len)
		return nq_walk_fail(w, w->off, "truncated message");
	t = w->p[w->off];
	if (is_key &&
	    !((t >= 0xa0 && t <= 0xbf) || t == 0xd9 || t == 0xda || t == 0xdb))
		return nq_walk_fail(
		        w, start, "map key is not a string (type byte 0x%02x)",
		        t);
	if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
		w->off++;
		return 0;
	}
	if (t >= 0xa0 && t <= 0xbf) {
		w->off++;
		return nq_walk_str(w, start, t & 0x1f);
	}
	if (t >= 0x90 && t <= 0x9f) {
		w->off++;
		return nq_walk_container(w, start, t & 0x0f, 0, depth);
	}
	if (t >= 0x80 && t <= 0x8f) {
		w->off++;
		return nq_walk_container(w, start, t & 0x0f, 1, depth);
	}
	switch (t) {
	case 0xcc: /* fixed-size payloads: ints and floats */
	case 0xd0:
		w->off++;
		return nq_walk_skip(w, start, 1, "int");
	case 0xcd:
	case 0xd1:
		w->off++;
		return nq_walk_skip(w, start, 2, "int");
	case 0xce:
	case 0xd2:
	case 0xca:
		w->off++;
		return nq_walk_skip(w, start, 4, "number");
	case 0xcf:
	case 0xd3:
	case 0xcb:
		w->off++;
		return nq_walk_skip(w, start, 8, "number");
	case 0xd9:
	case 0xc4:
		rc = nq_walk_len(w, 1, &n);
		break;
	case 0xda:
	case 0xc5:
	case 0xdc:
	case 0xde:
		rc = nq_walk_len(w, 2, &n);
		break;
	case 0xdb:
	case 0xc6:
	case 0xdd:
	case 0xdf:
		rc = nq_walk_len(w, 4, &n);
		break;
	case 0xd4:
	case 0xd5:
	case 0xd6:
	case 0xd7:
	case 0xd8:
	case 0xc7:
	case 0xc8:
	case 0xc9:
		return nq_walk_fail(w, start, "ext types are not accepted");
	default:
		return nq_walk_fail(w, start, "invalid type byte 0x%02x", t);
	}
	if (rc != 0)
		return rc;
	switch (t) {
	case 0xd9:
	case 0xda:
	case 0xdb:
		return nq_walk_str(w, start, n);
	case 0xc4:
	case 0xc5:
	case 0xc6:
		return nq_walk_skip(w, start, n, "bin");
	case 0xdc:
	case 0xdd:
		return nq_walk_container(w, start, n, 0, depth);
	default:
		return nq_walk_container(w, start, n, 1, depth);
	}
}

int
nq_check(const void *buf, size_t len, char *err, size_t errlen)
{
	struct nq_walk w = {buf, len, 0, err, errlen};
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (buf == NULL || len == 0)
		return nq_walk_fail(&w, 0, "empty message");
	rc = nq_walk_value(&w, 0, 0);
	if (rc != 0)
		return rc;
	if (w.off != len)
		return nq_walk_fail(&w, w.off,
		                    "%zu trailing bytes after the "
		                    "message",
		                    len - w.off);
	return 0;
}
