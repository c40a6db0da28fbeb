/*
 * sysmem_test.c — nq_sysmem against this machine's /proc/meminfo.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "nq_sysmem.h"

static void
test_this_machine(void **state)
{
	uint64_t total = nq_sysmem_bytes("MemTotal");
	uint64_t avail = nq_sysmem_available();
	uint64_t kb = 0;
	char line[256];
	FILE *f = fopen("/proc/meminfo", "r");

	(void) state;
	assert_non_null(f);
	/* the first line is MemTotal: the same number, in bytes */
	assert_non_null(fgets(line, sizeof(line), f));
	fclose(f);
	// NOLINTNEXTLINE(cert-err34-c)
	assert_int_equal(sscanf(line, "MemTotal: %lu kB", &kb), 1);
	assert_true(total == kb * 1024);
	assert_true(avail > 0 && avail <= total);
	/* a key must match whole: "Mem" is no key, nor is a prefix of one */
	assert_true(nq_sysmem_bytes("Mem") == 0);
	assert_true(nq_sysmem_bytes("MemTota") == 0);
	assert_true(nq_sysmem_bytes("NoSuchKey") == 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_this_machine),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
