/* utf8_test.c — nq_utf8 (validity, repair, cutting) and the codec's use of
 * it: nq_decode refuses a str that is not UTF-8 without echoing it, and
 * nq_encode sends only UTF-8. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above first */

#include "nq_error.h"
#include "nq_utf8.h"
#include "nq_value.h"

#include <stdlib.h>
#include <string.h>

struct bytes {
	const char *name;
	const char *s;
	size_t n;
};

#define B(name, lit)                       \
	{                                  \
		name, lit, sizeof(lit) - 1 \
	}

static const struct bytes good[] = {
        B("empty", ""),
        B("ascii", "hello, world"),
        B("2-byte", "h\xc3\xa9llo"),            /* é */
        B("3-byte", "\xe2\x82\xac"),            /* € */
        B("4-byte", "\xf0\x9f\x98\x80"),        /* U+1F600 */
        B("lowest 3-byte", "\xe0\xa0\x80"),     /* U+0800 */
        B("before surrogates", "\xed\x9f\xbf"), /* U+D7FF */
        B("after surrogates", "\xee\x80\x80"),  /* U+E000 */
        B("lowest 4-byte", "\xf0\x90\x80\x80"), /* U+10000 */
        B("highest", "\xf4\x8f\xbf\xbf"),       /* U+10FFFF */
        B("U+FFFD", "\xef\xbf\xbd"),
};

/* each with the offset of its first bad byte */
static const struct {
	struct bytes b;
	size_t at;
} bad[] = {
        {B("lone continuation", "a\x80"), 1},
        {B("0xff", "\xff"), 0},
        {B("latin-1 e acute", "caf\xe9"), 3},
        {B("overlong slash", "\xc0\xaf"), 0},
        {B("overlong 2-byte c1", "\xc1\xbf"), 0},
        {B("overlong 3-byte", "\xe0\x80\xaf"), 0},
        {B("overlong 4-byte", "\xf0\x80\x80\xaf"), 0},
        {B("surrogate D800", "\xed\xa0\x80"), 0},
        {B("surrogate DFFF", "x\xed\xbf\xbf"), 1},
        {B("above U+10FFFF", "\xf4\x90\x80\x80"), 0},
        {B("f5 lead", "\xf5\x80\x80\x80"), 0},
        {B("truncated 2-byte", "ab\xc3"), 2},
        {B("truncated 3-byte", "\xe2\x82"), 0},
        {B("truncated 4-byte", "\xf0\x9f\x98"), 0},
        {B("continuation not 10xxxxxx", "\xe2\x28\xa1"), 0},
};

static void
test_valid_and_invalid(void **state)
{
	(void) state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (nq_utf8_invalid_at(good[i].s, good[i].n) != good[i].n)
			fail_msg("%s: refused", good[i].name);
		assert_int_equal(nq_utf8_fixed_len(good[i].s, good[i].n),
		                 good[i].n);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t at = nq_utf8_invalid_at(bad[i].b.s, bad[i].b.n);

		if (at != bad[i].at)
			fail_msg("%s: invalid at %zu, want %zu", bad[i].b.name,
			         at, bad[i].at);
	}
}

static void
test_fix(void **state)
{
	char out[64];
	size_t n;

	(void) state;
	/* each bad byte becomes U+FFFD; valid characters stay */
	n = nq_utf8_fixed_len("caf\xe9 \xc3\xa9\xed\xa0\x80", 10);
	assert_int_equal(n, 3 + 3 + 1 + 2 + 9);
	nq_utf8_fix("caf\xe9 \xc3\xa9\xed\xa0\x80", 10, out);
	assert_memory_equal(out,
	                    "caf\xef\xbf\xbd \xc3\xa9"
	                    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
	                    n);
	assert_int_equal(nq_utf8_invalid_at(out, n), n);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = nq_utf8_fixed_len(bad[i].b.s, bad[i].b.n);
		assert_true(n <= sizeof(out));
		nq_utf8_fix(bad[i].b.s, bad[i].b.n, out);
		if (nq_utf8_invalid_at(out, n) != n)
			fail_msg("%s: repair is not UTF-8", bad[i].b.name);
	}
}

static void
test_cut(void **state)
{
	const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"; /* aé€😀 */

	(void) state;
	/* never inside a character */
	static const size_t want[] = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 10};
	for (size_t max = 0; max < sizeof(want) / sizeof(want[0]); max++)
		assert_int_equal(nq_utf8_cut(s, 10, max), want[max]);
	assert_int_equal(nq_utf8_cut("ab\xff\xff", 4, 3), 3);
}

/* A msgpack map {"k": str(s)} of n bytes into buf; its length. */
static size_t
map_with_str(uint8_t *buf, const char *s, size_t n, int as_key)
{
	size_t o = 0;

	assert_true(n < 32);
	buf[o++] = 0x81;
	if (as_key) {
		buf[o++] = (uint8_t) (0xa0 | n);
		memcpy(buf + o, s, n);
		o += n;
		buf[o++] = 0xc0;
	} else {
		buf[o++] = 0xa1;
		buf[o++] = 'k';
		buf[o++] = (uint8_t) (0xa0 | n);
		memcpy(buf + o, s, n);
		o += n;
	}
	return o;
}

static void
test_decode_refuses(void **state)
{
	uint8_t buf[64];
	char err[256];
	struct nq_value v;

	(void) state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (int key = 0; key < 2; key++) {
			size_t n =
			        map_with_str(buf, bad[i].b.s, bad[i].b.n, key);
			int rc = nq_decode(buf, n, &v, err, sizeof(err));

			if (rc != NQ_EPROTO)
				fail_msg("%s (%s): rc %d", bad[i].b.name,
				         key ? "key" : "value", rc);
			assert_non_null(strstr(err, "not valid UTF-8"));
			/* the message is UTF-8 itself: the bytes are not
			 * echoed */
			assert_int_equal(nq_utf8_invalid_at(err, strlen(err)),
			                 strlen(err));
		}
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		size_t n = map_with_str(buf, good[i].s, good[i].n, 0);

		assert_int_equal(nq_decode(buf, n, &v, err, sizeof(err)), 0);
		assert_int_equal(v.u.map->vals[0].u.str.len, good[i].n);
		nq_value_free(&v);
	}
}

static void
test_encode_sends_utf8(void **state)
{
	struct nq_map *m = nq_map_new();
	struct nq_value v, back;
	void *buf;
	size_t len;
	char err[256];
	/* a log cut inside a character, and a long one past the piece size */
	char *big = malloc(3000);

	(void) state;
	assert_non_null(m);
	assert_non_null(big);
	for (size_t i = 0; i < 2999; i++)
		big[i] = i % 3 == 0 ? (char) 0xff : 'x';
	big[2999] = '\0';
	assert_int_equal(nq_map_set_str(m, "cut", "ab\xe2\x82"), 0);
	assert_int_equal(nq_map_set_str(m, "ok", "\xe2\x82\xac"), 0);
	assert_int_equal(nq_map_set_str(m, "k\xff", "big follows"), 0);
	assert_int_equal(nq_map_set_str(m, "big", big), 0);
	v = nq_val_map(m);
	assert_int_equal(nq_encode(&v, &buf, &len), 0);
	/* strict decoding (nq_check's UTF-8 rule) takes it back */
	assert_int_equal(nq_decode(buf, len, &back, err, sizeof(err)), 0);
	assert_string_equal(nq_map_get(back.u.map, "cut")->u.str.s,
	                    "ab\xef\xbf\xbd\xef\xbf\xbd");
	assert_string_equal(nq_map_get(back.u.map, "ok")->u.str.s,
	                    "\xe2\x82\xac");
	assert_non_null(nq_map_get(back.u.map, "k\xef\xbf\xbd"));
	assert_int_equal(nq_map_get(back.u.map, "big")->u.str.len,
	                 1000 * 3 + 1999);
	nq_value_free(&back);
	nq_value_free(&v);
	free(buf);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_valid_and_invalid),
	        cmocka_unit_test(test_fix),
	        cmocka_unit_test(test_cut),
	        cmocka_unit_test(test_decode_refuses),
	        cmocka_unit_test(test_encode_sends_utf8),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
