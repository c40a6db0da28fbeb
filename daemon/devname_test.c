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
	        {"fake:0", DEVNAME_FAKE_N, 0},
	        {"fake:7", DEVNAME_FAKE_N, 7},
	        {"fake:31", DEVNAME_FAKE_N, DEVICES_MAX - 1},
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
	        "fake",
	        "fake:",
	        "fake:01",
	        "fake:-1",
	        "fake:32",
	        "fake:0:8GiB", /* a spec, not a name */
	        "FAKE:0",
	        "fake:0 ",
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

static void
test_fake_spec(void **state)
{
	static const struct {
		const char *s, *name, *size;
		int index;
	} ok[] = {
	        {"fake:0:8GiB", "fake:0", "8GiB", 0},
	        {"fake:1:4G", "fake:1", "4G", 1},
	        {"fake:31:1", "fake:31", "1", 31},
	        {"fake:2:x", "fake:2", "x", 2}, /* size checked by caller */
	};
	static const char *const bad[] = {
	        "fake:0",     "fake:0:",    "fake::8G",   "fake:01:8G",
	        "fake:32:8G", "fake:-1:8G", "cuda:0:8G",  "FAKE:0:8G",
	        "fake:a:8G",  "",           " fake:0:8G", "fake:0x:8G",
	};

	(void) state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct devname d = {.kind = DEVNAME_CPU, .index = -7};
		char name[16] = "";
		const char *size = NULL;
		assert_int_equal(devname_parse_fake(ok[i].s, &d, name,
		                                    sizeof(name), &size),
		                 NQ_OK);
		assert_int_equal(d.kind, DEVNAME_FAKE_N);
		assert_int_equal(d.index, ok[i].index);
		assert_string_equal(name, ok[i].name);
		assert_string_equal(size, ok[i].size);
		/* the name it gives is one devname_parse takes */
		assert_int_equal(devname_parse(name, &d), NQ_OK);
		assert_int_equal(d.kind, DEVNAME_FAKE_N);
		assert_int_equal(d.index, ok[i].index);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct devname d = {.kind = DEVNAME_CPU, .index = 3};
		char name[16];
		const char *size = NULL;
		assert_int_equal(devname_parse_fake(bad[i], &d, name,
		                                    sizeof(name), &size),
		                 NQ_EBADDEVICE);
		assert_int_equal(d.kind, DEVNAME_AUTO);
		assert_null(size);
	}
	{
		struct devname d;
		char tiny[4];
		const char *size = NULL;
		assert_int_equal(devname_parse_fake("fake:1:8G", &d, tiny,
		                                    sizeof(tiny), &size),
		                 NQ_EBADDEVICE);
		assert_int_equal(
		        devname_parse_fake(NULL, &d, tiny, sizeof(tiny), &size),
		        NQ_EBADDEVICE);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_accepted),
	        cmocka_unit_test(test_refused),
	        cmocka_unit_test(test_null),
	        cmocka_unit_test(test_fake_spec),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
