/*
 * devname_test.c — the one device-name parser: what it accepts, and that
 * everything near it is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "devname.h"
#include "nq_error.h"

static void
test_accepted(void **state)
{
	static const struct {
		const char *s;
		enum devname_kind kind;
		int index;
	} ok[] = {
	        {"auto", DEVNAME_AUTO, 0},
	        {"cpu", DEVNAME_CPU, 0},
	        {"cuda", DEVNAME_CUDA, 0},
	        {"cuda:0", DEVNAME_CUDA_N, 0},
	        {"cuda:1", DEVNAME_CUDA_N, 1},
	        {"cuda:10", DEVNAME_CUDA_N, 10},
	        {"cuda:31", DEVNAME_CUDA_N, DEVICES_MAX - 1},
	};

	(void) state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct devname d = {.kind = DEVNAME_CPU, .index = -7};
		assert_int_equal(devname_parse(ok[i].s, &d), NQ_OK);
		assert_int_equal(d.kind, ok[i].kind);
		assert_int_equal(d.index, ok[i].index);
	}
}

static void
test_refused(void **state)
{
	static const char *const bad[] = {
	        "",
	        "CUDA",
	        "Cuda:0",
	        "CPU",
	        "AUTO",
	        "gpu",
	        "cuda:",
	        "cuda:01",
	        "cuda:00",
	        "cuda:-1",
	        "cuda:+1",
	        "cuda: 1",
	        "cuda:1 ",
	        " cpu",
	        "cpu ",
	        "cuda:1x",
	        "cuda:0x1",
	        "cuda:32",
	        "cuda:99",
	        "cuda:4294967297",
	        "cuda:99999999999999999999",
	        "cuda0",
	        "cuda::0",
	        "cpu:0",
	        "auto:0",
	        "cudax",
	        "cuda:1:2",
	};

	(void) state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct devname d = {.kind = DEVNAME_CPU, .index = 3};
		assert_int_equal(devname_parse(bad[i], &d), NQ_EBADDEVICE);
		assert_int_equal(d.kind, DEVNAME_AUTO);
		assert_int_equal(d.index, 0);
	}
}

static void
test_null(void **state)
{
	struct devname d;

	(void) state;
	assert_int_equal(devname_parse(NULL, &d), NQ_EBADDEVICE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_accepted),
	        cmocka_unit_test(test_refused),
	        cmocka_unit_test(test_null),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
