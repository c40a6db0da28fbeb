/* params_test.c — the table-driven checks and getters (params.h) and the
 * describe map, on a small table of every parameter type. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above first */

#include "nq_error.h"
#include "params.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const modes[] = {"fast", "slow", NULL};
static const char *const outs[] = {"a", "b", "c", NULL};

static const struct param_def tp[] = {
        {.name = "on",
         .type = PARAM_BOOL,
         .has_def = 1,
         .def_num = 1,
         .doc = "a switch"},
        {.name = "n",
         .type = PARAM_INT,
         .ilo = 1,
         .ihi = 10,
         .has_def = 1,
         .def_num = 3,
         .doc = "a count"},
        {.name = "x",
         .type = PARAM_FLOAT,
         .lo = 0.5,
         .hi = 2,
         .has_def = 1,
         .def_num = 1.5,
         .doc = "a number"},
        {.name = "mode",
         .type = PARAM_STR,
         .choices = modes,
         .has_def = 1,
         .def_str = "slow",
         .doc = "a choice"},
        {.name = "file",
         .type = PARAM_PATH,
         .def_text = "none",
         .doc = "a path"},
        {.name = "levels",
         .type = PARAM_FLOATS,
         .lo = 0,
         .hi = 1,
         .ilo = 1,
         .ihi = 3,
         .def_text = "[0, 1]",
         .doc = "levels"},
        {.name = "want",
         .type = PARAM_STRS,
         .choices = outs,
         .has_def = 1,
         .def_str = "a b",
         .doc = "outputs"},
};
static const struct input_def ti[] = {
        {.name = "data",
         .dtypes = PARAMS_DT(NQ_DT_F64) | PARAMS_DT(NQ_DT_F32),
         .shape = "N T",
         .required = 1,
         .doc = "the data"},
        {.name = "mask",
         .dtypes = PARAMS_DT(NQ_DT_BOOL),
         .shape = "N",
         .required = 0,
         .doc = "optional"},
};
static const struct output_def to[] = {
        {"m", OUT_ARRAY, PARAMS_DT(NQ_DT_F64), "1 N", NULL, "a row"},
        {"k", OUT_INT, 0, NULL, "on is true", "a count"},
};
static const struct shape_symbol ts[] = {{"N", "rows"}, {"T", "columns"}};
static struct job_desc td = {
        .summary = "test",
        .params = tp,
        .nparams = 7,
        .inputs = ti,
        .ninputs = 2,
        .outputs = to,
        .noutputs = 2,
        .symbols = ts,
        .nsymbols = 2,
};

static struct nq_map *
inputs_with(enum nq_dtype dt, int ndim)
{
	struct nq_map *m = nq_map_new();
	struct nq_array a;
	int64_t shape[3] = {2, 3, 4};

	assert_int_equal(nq_array_init(&a, dt, ndim, shape), 0);
	assert_int_equal(nq_map_set_array(m, "data", &a), 0);
	return m;
}

static int
check(const struct nq_map *p, const struct nq_map *in, char *msg, size_t n)
{
	msg[0] = '\0';
	return params_check(&td, "tt", p, in, msg, n);
}

static void
test_defaults_and_getters(void **st)
{
	struct nq_map *p = nq_map_new(), *in = inputs_with(NQ_DT_F64, 2);
	char msg[256];

	(void) st;
	assert_int_equal(check(p, in, msg, sizeof(msg)), 0);
	assert_int_equal(params_bool(&td, p, "on"), 1);
	assert_int_equal(params_int(&td, p, "n"), 3);
	assert_true(params_float(&td, p, "x") == 1.5);
	assert_string_equal(params_str(&td, p, "mode"), "slow");
	assert_int_equal(params_choice(&td, p, "mode"), 1);
	assert_null(params_str(&td, p, "file"));
	assert_null(params_given(&td, p, "levels"));

	assert_int_equal(nq_map_set_bool(p, "on", 0), 0);
	assert_int_equal(nq_map_set_int(p, "n", 10), 0);
	assert_int_equal(nq_map_set_int(p, "x", 2), 0); /* int for a float */
	assert_int_equal(nq_map_set_str(p, "mode", "fast"), 0);
	assert_int_equal(nq_map_set_str(p, "file", "/x"), 0);
	assert_int_equal(nq_map_set_str(p, "want", "c"), 0);
	assert_int_equal(check(p, in, msg, sizeof(msg)), 0);
	assert_int_equal(params_bool(&td, p, "on"), 0);
	assert_int_equal(params_int(&td, p, "n"), 10);
	assert_true(params_float(&td, p, "x") == 2.0);
	assert_int_equal(params_choice(&td, p, "mode"), 0);
	assert_string_equal(params_str(&td, p, "file"), "/x");

	/* nil: refused unless the table says nil means the default */
	assert_int_equal(nq_map_set_nil(p, "n"), 0);
	assert_int_equal(check(p, in, msg, sizeof(msg)), NQ_EBADPARAM);
	assert_non_null(strstr(msg, "'n'"));
	td.nil_is_default = 1;
	assert_int_equal(check(p, in, msg, sizeof(msg)), 0);
	assert_int_equal(params_int(&td, p, "n"), 3);
	td.nil_is_default = 0;
	nq_map_free(p);
	nq_map_free(in);
}

/* Sets key to v in a fresh map, expects code and a message containing
 * want. */
static void
refused(const char *key, struct nq_value v, int code, const char *want)
{
	struct nq_map *p = nq_map_new(), *in = inputs_with(NQ_DT_F32, 2);
	char msg[256];

	assert_int_equal(nq_map_set(p, key, &v), 0);
	assert_int_equal(check(p, in, msg, sizeof(msg)), code);
	if (strstr(msg, want) == NULL)
		fail_msg("'%s' not in '%s'", want, msg);
	nq_map_free(p);
	nq_map_free(in);
}

static struct nq_value
str(const char *s)
{
	struct nq_value v = {.kind = NQ_STR};

	v.u.str.s = strdup(s);
	v.u.str.len = strlen(s);
	return v;
}

static struct nq_value
num_list(int n, const double *x)
{
	struct nq_value v = {.kind = NQ_LIST};

	v.u.list.items = calloc((size_t) n, sizeof(struct nq_value));
	v.u.list.n = (size_t) n;
	for (int i = 0; i < n; i++) {
		v.u.list.items[i].kind = NQ_FLOAT;
		v.u.list.items[i].u.f = x[i];
	}
	return v;
}

static void
test_refusals(void **st)
{
	struct nq_value iv = {.kind = NQ_INT}, fv = {.kind = NQ_FLOAT};
	double ok2[2] = {0, 1}, bad2[2] = {0.5, 1.5}, four[4] = {0, 0, 0, 0};
	struct nq_value lst;

	(void) st;
	iv.u.i = 1;
	refused("nosuch", iv, NQ_EBADPARAM,
	        "unknown parameter 'nosuch'; tt accepts on, n, x, mode, file, "
	        "levels, want");
	refused("on", str("yes"), NQ_EBADPARAM, "on");
	iv.u.i = 11;
	refused("n", iv, NQ_EBADPARAM, "'n' = 11 is out of range [1, 10]");
	fv.u.f = 1.0;
	refused("n", fv, NQ_EBADPARAM, "'n'"); /* a float for an int */
	fv.u.f = 2.5;
	refused("x", fv, NQ_EBADPARAM, "'x' = 2.5 is out of range [0.5, 2]");
	fv.u.f = NAN;
	refused("x", fv, NQ_EBADPARAM, "out of range");
	refused("mode", str("medium"), NQ_EBADPARAM,
	        "'mode' must be one of 'fast', 'slow' (got 'medium')");
	iv.u.i = 3;
	refused("file", iv, NQ_EBADPARAM, "file");
	refused("levels", num_list(2, bad2), NQ_EBADPARAM,
	        "'levels' item 1 = 1.5 is not in [0, 1]");
	refused("levels", num_list(4, four), NQ_EBADPARAM, "1 to 3 items");
	refused("levels", str("0.5"), NQ_EBADPARAM, "list of numbers");
	lst = num_list(2, ok2);
	lst.u.list.items[1] = str("1");
	refused("levels", lst, NQ_EBADPARAM, "item 1 is not a number");
	refused("want", str("d"), NQ_EBADPARAM,
	        "'want' has unknown item 'd'; valid names are 'a', 'b', 'c'");
	iv.u.i = 1;
	refused("want", iv, NQ_EBADPARAM, "a string or a list of strings");
}

static void
test_inputs(void **st)
{
	struct nq_map *p = nq_map_new(), *in;
	struct nq_array a;
	int64_t shape[1] = {2};
	char msg[256];

	(void) st;
	in = nq_map_new();
	assert_int_equal(check(p, in, msg, sizeof(msg)), NQ_EBADARRAY);
	assert_string_equal(msg, "input 'data' is required: the data");
	assert_int_equal(check(p, NULL, msg, sizeof(msg)), NQ_EBADARRAY);
	nq_map_free(in);

	in = inputs_with(NQ_DT_F64, 3);
	assert_int_equal(check(p, in, msg, sizeof(msg)), NQ_EBADARRAY);
	assert_string_equal(msg, "input 'data' must be 2-D (N × T), got 3-D");
	nq_map_free(in);

	in = inputs_with(NQ_DT_I16, 2);
	assert_int_equal(check(p, in, msg, sizeof(msg)), NQ_EBADARRAY);
	assert_string_equal(msg, "input 'data' must be float64 or float32, "
	                         "got int16 (<i2)");
	nq_map_free(in);

	/* an optional input is checked when given; an unknown one refused */
	in = inputs_with(NQ_DT_F64, 2);
	assert_int_equal(nq_map_set_int(in, "mask", 1), 0);
	assert_int_equal(check(p, in, msg, sizeof(msg)), NQ_EBADARRAY);
	assert_int_equal(nq_array_init(&a, NQ_DT_BOOL, 1, shape), 0);
	assert_int_equal(nq_map_set_array(in, "mask", &a), 0);
	assert_int_equal(check(p, in, msg, sizeof(msg)), 0);
	assert_int_equal(nq_array_init(&a, NQ_DT_BOOL, 1, shape), 0);
	assert_int_equal(nq_map_set_array(in, "weights", &a), 0);
	assert_int_equal(check(p, in, msg, sizeof(msg)), NQ_EBADPARAM);
	assert_string_equal(msg,
	                    "unknown input 'weights'; tt takes 'data', 'mask'");
	nq_map_free(in);
	nq_map_free(p);
}

static const struct nq_value *
row(const struct nq_value *list, size_t i)
{
	assert_int_equal(list->kind, NQ_LIST);
	assert_true(i < list->u.list.n);
	assert_int_equal(list->u.list.items[i].kind, NQ_MAP);
	return &list->u.list.items[i];
}

static const struct nq_value *
get(const struct nq_value *m, const char *key)
{
	const struct nq_value *v;

	assert_int_equal(m->kind, NQ_MAP);
	v = nq_map_get(m->u.map, key);
	if (v == NULL)
		fail_msg("no '%s'", key);
	return v;
}

static void
test_describe(void **st)
{
	struct nq_value d;
	const struct nq_value *ps, *v;

	(void) st;
	assert_int_equal(params_describe(&td, "tt", &d), 0);
	assert_string_equal(get(&d, "name")->u.str.s, "tt");
	assert_string_equal(get(&d, "nil")->u.str.s, "refused");
	assert_string_equal(nq_map_get(get(&d, "symbols")->u.map, "T")->u.str.s,
	                    "columns");
	ps = get(&d, "params");
	assert_int_equal(ps->u.list.n, 7);
	v = row(ps, 0);
	assert_string_equal(get(v, "type")->u.str.s, "bool");
	assert_true(get(v, "default")->kind == NQ_BOOL &&
	            get(v, "default")->u.b == 1);
	v = row(ps, 1);
	assert_true(get(v, "default")->kind == NQ_INT &&
	            get(v, "default")->u.i == 3);
	assert_int_equal(get(v, "min")->u.i, 1);
	assert_int_equal(get(v, "max")->u.i, 10);
	v = row(ps, 2);
	assert_true(get(v, "max")->kind == NQ_FLOAT &&
	            get(v, "max")->u.f == 2.0);
	v = row(ps, 3);
	assert_string_equal(get(v, "default")->u.str.s, "slow");
	assert_int_equal(get(v, "choices")->u.list.n, 2);
	v = row(ps, 4);
	assert_string_equal(get(v, "type")->u.str.s, "path");
	assert_null(nq_map_get(v->u.map, "default"));
	assert_string_equal(get(v, "default_text")->u.str.s, "none");
	v = row(ps, 5);
	assert_string_equal(get(v, "type")->u.str.s, "[float]");
	assert_int_equal(get(v, "max_items")->u.i, 3);
	v = row(ps, 6);
	assert_int_equal(get(v, "default")->u.list.n, 2);
	assert_string_equal(get(v, "default")->u.list.items[1].u.str.s, "b");
	v = row(get(&d, "inputs"), 0);
	assert_int_equal(get(v, "dtypes")->u.list.n, 2);
	assert_string_equal(get(v, "dtypes")->u.list.items[1].u.str.s, "<f4");
	assert_string_equal(get(v, "shape")->u.list.items[1].u.str.s, "T");
	assert_true(get(v, "required")->u.b);
	v = row(get(&d, "outputs"), 0);
	assert_string_equal(get(v, "type")->u.str.s, "array");
	/* "1 N": the 1 is an int */
	assert_true(get(v, "shape")->u.list.items[0].kind == NQ_INT);
	assert_string_equal(get(v, "when")->u.str.s, "always");
	v = row(get(&d, "outputs"), 1);
	assert_string_equal(get(v, "type")->u.str.s, "int");
	assert_null(nq_map_get(v->u.map, "shape"));
	assert_string_equal(get(v, "when")->u.str.s, "on is true");
	/* and the two every job gets from the worker */
	assert_int_equal(get(&d, "outputs")->u.list.n, 4);
	v = row(get(&d, "outputs"), 3);
	assert_string_equal(get(v, "name")->u.str.s, "device");
	nq_value_free(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_defaults_and_getters),
	        cmocka_unit_test(test_refusals),
	        cmocka_unit_test(test_inputs),
	        cmocka_unit_test(test_describe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
