/* nq_utf8.c — UTF-8 validity (see nq_utf8.h). */
#include "nq_utf8.h"

#include <stdint.h>
#include <string.h>

static const char nq_utf8_repl[3] = {'\xef', '\xbf', '\xbd'}; /* U+FFFD */

size_t
nq_utf8_seq(const void *s, size_t n)
{
	const uint8_t *p = s;
	uint8_t c, lo = 0x80, hi = 0xbf;
	size_t len;

	if (n == 0)
		return 0;
	c = p[0];
	if (c < 0x80)
		return 1;
	if (c < 0xc2) /* continuation byte, or an overlong 2-byte lead */
		return 0;
	if (c < 0xe0) {
		len = 2;
	} else if (c < 0xf0) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c < 0xf5) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90; /* overlong */
		else if (c == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else {
		return 0;
	}
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++) {
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	}
	return len;
}

size_t
nq_utf8_invalid_at(const void *s, size_t n)
{
	const uint8_t *p = s;
	size_t i = 0;

	while (i < n) {
		size_t k;

		if (p[i] < 0x80) { /* the common case, byte by byte */
			i++;
			continue;
		}
		if ((k = nq_utf8_seq(p + i, n - i)) == 0)
			return i;
		i += k;
	}
	return n;
}

size_t
nq_utf8_fixed_len(const void *s, size_t n)
{
	const uint8_t *p = s;
	size_t i = 0, out = 0;

	while (i < n) {
		size_t k = nq_utf8_seq(p + i, n - i);

		out += k ? k : sizeof(nq_utf8_repl);
		i += k ? k : 1;
	}
	return out;
}

void
nq_utf8_fix(const void *s, size_t n, char *out)
{
	const uint8_t *p = s;
	size_t i = 0;

	while (i < n) {
		size_t k = nq_utf8_seq(p + i, n - i);

		if (k == 0) {
			memcpy(out, nq_utf8_repl, sizeof(nq_utf8_repl));
			out += sizeof(nq_utf8_repl);
			i++;
		} else {
			memcpy(out, p + i, k);
			out += k;
			i += k;
		}
	}
}

size_t
nq_utf8_cut(const void *s, size_t n, size_t max)
{
	const uint8_t *p = s;
	size_t i = 0;

	if (max >= n)
		return n;
	while (i < max) {
		size_t k = nq_utf8_seq(p + i, n - i);

		if (k == 0)
			k = 1; /* not UTF-8: cut anywhere */
		if (i + k > max)
			break;
		i += k;
	}
	return i;
}
