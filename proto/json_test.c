/* json_test.c — the JSON writer: escaping, nesting, numbers, layouts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "nq_error.h"
#include "nq_json.h"
#include "nq_value.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The writer's buffer after one value, as a string the test owns. */
static char *
json_of(const struct nq_value *v, int flags)
{
	struct nq_json w;
	char *s;

	nq_json_init_buf(&w, flags);
	nq_json_value(&w, v);
	assert_int_equal(nq_json_finish(&w), 0);
	s = strdup(w.buf != NULL ? w.buf : "");
	nq_json_free(&w);
	return s;
}

static void
assert_json(const struct nq_value *v, int flags, const char *want)
{
	char *got = json_of(v, flags);

	assert_string_equal(got, want);
	free(got);
}

static void
test_strings(void **state)
{
	struct nq_json w;
	/* quotes, backslash, the short escapes, other control bytes as
	 * \u00XX, DEL and bytes >= 0x80 (valid UTF-8 or not) as they are */
	static const char in[] = "a\"b\\c\n\r\t\x01\x1f\x7f"
	                         "\xc3\xa9\xff/";
	static const char nul[] = {'x', '\0', 'y'};

	(void) state;
	nq_json_init_buf(&w, 0);
	nq_json_str(&w, in, sizeof(in) - 1);
	assert_int_equal(nq_json_finish(&w), 0);
	assert_string_equal(w.buf, "\"a\\\"b\\\\c\\n\\r\\t\\u0001\\u001f\x7f"
	                           "\xc3\xa9\xff/\"");
	nq_json_free(&w);

	nq_json_init_buf(&w, 0);
	nq_json_arr_begin(&w);
	nq_json_str(&w, nul, sizeof(nul)); /* the length, not the NUL */
	nq_json_str(&w, "", 0);
	nq_json_arr_end(&w);
	assert_string_equal(w.buf, "[\"x\\u0000y\", \"\"]");
	nq_json_free(&w);

	/* keys are escaped the same way */
	nq_json_init_buf(&w, 0);
	nq_json_obj_begin(&w);
	nq_json_key(&w, "k\"\x02");
	nq_json_null(&w);
	nq_json_obj_end(&w);
	assert_string_equal(w.buf, "{\"k\\\"\\u0002\": null}");
	nq_json_free(&w);
}

static void
test_numbers(void **state)
{
	struct nq_json w;

	(void) state;
	nq_json_init_buf(&w, 0);
	nq_json_arr_begin(&w);
	nq_json_int(&w, 0);
	nq_json_int(&w, -7);
	nq_json_int(&w, INT64_MIN);
	nq_json_uint(&w, UINT64_MAX);
	nq_json_double(&w, 0.1);
	nq_json_double(&w, 0.02);
	nq_json_double(&w, 1.0);
	nq_json_double(&w, -2.5e-300);
	nq_json_double(&w, 1e300);
	nq_json_double(&w, NAN);
	nq_json_double(&w, INFINITY);
	nq_json_double(&w, -INFINITY);
	nq_json_bool(&w, 1);
	nq_json_bool(&w, 0);
	nq_json_null(&w);
	nq_json_arr_end(&w);
	assert_int_equal(nq_json_finish(&w), 0);
	assert_string_equal(w.buf, "[0, -7, -9223372036854775808, "
	                           "18446744073709551615, 0.10000000000000001, "
	                           "0.02, 1, -2.5e-300, "
	                           "1.0000000000000001e+300, null, null, null, "
	                           "true, false, null]");
	/* %.17g round-trips */
	assert_true(strtod("0.10000000000000001", NULL) == 0.1);
	nq_json_free(&w);
}

static void
test_nesting(void **state)
{
	struct nq_json w;

	(void) state;
	nq_json_init_buf(&w, 0);
	nq_json_obj_begin(&w);
	nq_json_key(&w, "a");
	nq_json_arr_begin(&w);
	nq_json_arr_begin(&w);
	nq_json_arr_end(&w);
	nq_json_obj_begin(&w);
	nq_json_obj_end(&w);
	nq_json_int(&w, 1);
	nq_json_arr_end(&w);
	nq_json_key(&w, "b");
	nq_json_obj_begin(&w);
	nq_json_key(&w, "c");
	nq_json_arr_begin(&w);
	nq_json_int(&w, 2);
	nq_json_int(&w, 3);
	nq_json_arr_end(&w);
	nq_json_obj_end(&w);
	nq_json_obj_end(&w);
	nq_json_raw(&w, "\n");
	assert_int_equal(nq_json_finish(&w), 0);
	assert_string_equal(w.buf,
	                    "{\"a\": [[], {}, 1], \"b\": {\"c\": [2, 3]}}\n");
	assert_int_equal(w.len, strlen(w.buf));
	nq_json_free(&w);
}

static void
test_lines(void **state)
{
	struct nq_json w;

	(void) state;
	/* result.json: one member per line at the top, inline below */
	nq_json_init_buf(&w, NQ_JSON_LINES);
	nq_json_obj_begin(&w);
	nq_json_key(&w, "x");
	nq_json_int(&w, 1);
	nq_json_key(&w, "y");
	nq_json_arr_begin(&w);
	nq_json_double(&w, 0.5);
	nq_json_obj_begin(&w);
	nq_json_key(&w, "z");
	nq_json_null(&w);
	nq_json_obj_end(&w);
	nq_json_arr_end(&w);
	nq_json_obj_end(&w);
	nq_json_raw(&w, "\n");
	assert_string_equal(w.buf, "{\n  \"x\": 1,\n  \"y\": [0.5, {\"z\": "
	                           "null}]\n}\n");
	nq_json_free(&w);

	nq_json_init_buf(&w, NQ_JSON_LINES);
	nq_json_obj_begin(&w);
	nq_json_obj_end(&w);
	nq_json_raw(&w, "\n");
	assert_string_equal(w.buf, "{}\n");
	nq_json_free(&w);
}

static void
test_values(void **state)
{
	struct nq_map *m = nq_map_new();
	struct nq_value v = {.kind = NQ_MAP};
	struct nq_array a;
	int64_t shape[2] = {3, 3};
	struct nq_value items[3];

	(void) state;
	assert_non_null(m);
	assert_int_equal(nq_map_set_int(m, "n", 7), 0);
	assert_int_equal(nq_map_set_float(m, "f", NAN), 0);
	assert_int_equal(nq_map_set_str(m, "s", "a \"quoted\" word"), 0);
	assert_int_equal(nq_map_set_nil(m, "nil"), 0);
	assert_int_equal(nq_array_init(&a, NQ_DT_F64, 2, shape), 0);
	assert_int_equal(nq_map_set_array(m, "arr", &a), 0);
	items[0].kind = NQ_BOOL;
	items[0].u.b = 1;
	items[1].kind = NQ_BIN;
	items[1].u.bin.p = NULL;
	items[1].u.bin.len = 5;
	items[2].kind = NQ_MAP;
	items[2].u.map = NULL; /* an empty map may have no table */
	struct nq_value list = {.kind = NQ_LIST};
	list.u.list.items = items;
	list.u.list.n = 3;
	v.u.map = m;

	assert_json(&v, 0,
	            "{\"n\": 7, \"f\": null, \"s\": \"a \\\"quoted\\\" word\", "
	            "\"nil\": null, \"arr\": null}");
	assert_json(&v, NQ_JSON_DESCRIBE,
	            "{\"n\": 7, \"f\": null, \"s\": \"a \\\"quoted\\\" word\", "
	            "\"nil\": null, \"arr\": {\"dtype\": \"<f8\", \"shape\": "
	            "[3, 3], \"nbytes\": 72}}");
	assert_json(&list, 0, "[true, null, {}]");
	assert_json(&list, NQ_JSON_DESCRIBE, "[true, {\"bin\": 5}, {}]");

	/* result.json: the scalars only, one a line, the arrays left out */
	struct nq_json w;
	nq_json_init_buf(&w, NQ_JSON_LINES);
	nq_json_result(&w, m);
	assert_int_equal(nq_json_finish(&w), 0);
	assert_string_equal(w.buf,
	                    "{\n  \"n\": 7,\n  \"f\": null,\n  \"s\": "
	                    "\"a \\\"quoted\\\" word\",\n  \"nil\": null\n}\n");
	nq_json_free(&w);
	nq_json_init_buf(&w, NQ_JSON_LINES);
	nq_json_result(&w, NULL); /* no outputs at all */
	assert_int_equal(nq_json_finish(&w), 0);
	assert_string_equal(w.buf, "{}\n");
	nq_json_free(&w);
	nq_map_free(m);
}

static void
test_file(void **state)
{
	struct nq_json w;
	char buf[64] = "";
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	(void) state;
	assert_non_null(f);
	nq_json_init_file(&w, f, 0);
	nq_json_arr_begin(&w);
	nq_json_str(&w, "x", 1);
	nq_json_int(&w, 2);
	nq_json_arr_end(&w);
	assert_int_equal(nq_json_finish(&w), 0);
	assert_null(w.buf);
	fclose(f);
	assert_string_equal(buf, "[\"x\", 2]");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_strings), cmocka_unit_test(test_numbers),
	        cmocka_unit_test(test_nesting), cmocka_unit_test(test_lines),
	        cmocka_unit_test(test_values),  cmocka_unit_test(test_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
