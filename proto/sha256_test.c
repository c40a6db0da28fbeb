/* sha256_test.c — SHA-256 against the FIPS 180-4 / NIST example vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above first */

#include "nq_sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
test_vectors(void **state)
{
	char hex[NQ_SHA256_HEX];

	(void) state;
	nq_sha256_hex("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223"
	                         "b00361a396177a9cb410ff61f20015ad");
	nq_sha256_hex("", 0, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb924"
	                         "27ae41e4649b934ca495991b7852b855");
	const char *m2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopn"
	                 "opq";
	nq_sha256_hex(m2, strlen(m2), hex);
	assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039"
	                         "a33ce45964ff2167f6ecedd419db06c1");
	const char *m4 =
	        "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
	        "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqr"
	        "stu";
	nq_sha256_hex(m4, strlen(m4), hex);
	assert_string_equal(hex, "cf5b16a778af8380036ce59e7b0492370"
	                         "b249b11e8f07a51afac45037afee9d1");
}

/* one million 'a', fed in odd-sized pieces (the partial-block path) */
static void
test_million_a(void **state)
{
	struct nq_sha256 c;
	uint8_t d[NQ_SHA256_LEN];
	char hex[NQ_SHA256_HEX], a[997];
	size_t left = 1000000;

	(void) state;
	memset(a, 'a', sizeof(a));
	nq_sha256_init(&c);
	for (size_t k = 1; left > 0; k = (k * 7 + 61) % sizeof(a) + 1) {
		size_t n = k < left ? k : left;
		nq_sha256_update(&c, a, n);
		left -= n;
	}
	nq_sha256_final(&c, d);
	nq_sha256_tohex(d, hex);
	assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67"
	                         "f1809a48a497200e046d39ccc7112cd0");
}

/* every length 0..200 across block boundaries: one call == bytewise */
static void
test_split_equals_whole(void **state)
{
	uint8_t m[200], d[NQ_SHA256_LEN];
	char whole[NQ_SHA256_HEX], split[NQ_SHA256_HEX];
	struct nq_sha256 c;

	(void) state;
	for (size_t i = 0; i < sizeof(m); i++)
		m[i] = (uint8_t) (i * 131 + 7);
	for (size_t n = 0; n <= sizeof(m); n++) {
		nq_sha256_hex(m, n, whole);
		nq_sha256_init(&c);
		for (size_t i = 0; i < n; i++)
			nq_sha256_update(&c, m + i, 1);
		nq_sha256_final(&c, d);
		nq_sha256_tohex(d, split);
		assert_string_equal(whole, split);
	}
}

static void
test_file(void **state)
{
	char path[] = "/tmp/sha256_test.XXXXXX", hex[NQ_SHA256_HEX];
	int fd = mkstemp(path);

	(void) state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "abc", 3), 3);
	close(fd);
	assert_int_equal(nq_sha256_file(path, hex), 0);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223"
	                         "b00361a396177a9cb410ff61f20015ad");
	unlink(path);
	assert_int_not_equal(nq_sha256_file(path, hex), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_vectors),
	        cmocka_unit_test(test_million_a),
	        cmocka_unit_test(test_split_equals_whole),
	        cmocka_unit_test(test_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
