/* config_test.c — the daemon's config file, device probe lines and spool
 * files (what users and the worker contract depend on). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "devices.h"
#include "nq_error.h"
#include "nq_npy.h"
#include "spool.h"

static char tmpdir[256];

static int
setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/nq-config-test-XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	spool_rm_rf(tmpdir);
	return 0;
}

static void
write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void
test_bytes(void **state)
{
	uint64_t b;

	assert_int_equal(config_parse_bytes("1G", &b), 0);
	assert_true(b == (1ull << 30));
	assert_int_equal(config_parse_bytes("512M", &b), 0);
	assert_true(b == (512ull << 20));
	assert_int_equal(config_parse_bytes("4KiB", &b), 0);
	assert_true(b == 4096);
	assert_int_equal(config_parse_bytes("1073741824", &b), 0);
	assert_true(b == 1073741824ull);
	assert_int_equal(config_parse_bytes("1.5G", &b), -1);
	assert_int_equal(config_parse_bytes("", &b), -1);
	assert_int_equal(config_parse_bytes("-1", &b), -1);
	assert_int_equal(config_parse_bytes("12X", &b), -1);
	assert_int_equal(config_parse_bytes("99999999999999T", &b), -1);
}

static void
test_file(void **state)
{
	struct config c;
	char msg[512], path[512];

	assert_int_equal(config_defaults(&c, msg, sizeof(msg)), 0);
	assert_int_equal(c.cpu_slots, 1);
	assert_int_equal(c.gpu_slots, 4);
	assert_int_equal(c.max_attempts, 3);
	assert_int_equal(c.max_job_seconds, 604800);
	assert_int_equal(c.heartbeat_timeout_s, 60);
	assert_true(c.max_message_bytes == (1ull << 30));
	assert_true(c.tcp_owner_uid == 65534);
	assert_non_null(strstr(c.worker_path, "/neuroq-worker"));
	assert_true(c.auto_cpu_max_flops == 2e11);
	assert_int_equal(c.retention_days, 30);
	assert_string_equal(c.admin_group, "");
	assert_int_equal(c.max_queued_jobs_per_user, 1000);
	assert_true(c.max_spool_bytes_per_user == (100ull << 30));
	assert_int_equal(c.tcp_unauthenticated, 0);

	snprintf(path, sizeof(path), "%s/ok.conf", tmpdir);
	write_text(path, "# comment\n\n"
	                 "listen = ipc:///tmp/x/a.sock   # trailing\n"
	                 "listen = tcp://127.0.0.1:7000\n"
	                 "tcp_unauthenticated = yes\n"
	                 "cpu_slots = 2\n"
	                 "max_message_bytes = 4M\n"
	                 "socket_mode = 0666\n"
	                 "auto_cpu_max_flops = 1.5e12\n"
	                 "retention_days = 0\n"
	                 "state_dir = \"/tmp/x/state\"\n");
	assert_int_equal(config_load(&c, path, msg, sizeof(msg)), 0);
	assert_int_equal(config_finish(&c, msg, sizeof(msg)), 0);
	/* the file's first listen replaces the default, the second adds */
	assert_int_equal(c.nlisten, 2);
	assert_string_equal(c.listen[0], "ipc:///tmp/x/a.sock");
	assert_string_equal(c.listen[1], "tcp://127.0.0.1:7000");
	assert_string_equal(c.events, "ipc:///tmp/x/events.sock");
	assert_string_equal(c.state_dir, "/tmp/x/state");
	assert_int_equal(c.cpu_slots, 2);
	assert_true(c.max_message_bytes == (4ull << 20));
	assert_int_equal(c.socket_mode, 0666);
	assert_true(c.auto_cpu_max_flops == 1.5e12);
	assert_int_equal(c.retention_days, 0);

	/* --print-config output loads back to the same settings */
	snprintf(path, sizeof(path), "%s/printed.conf", tmpdir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	config_print(&c, f);
	fclose(f);
	struct config c2;
	assert_int_equal(config_defaults(&c2, msg, sizeof(msg)), 0);
	assert_int_equal(config_load(&c2, path, msg, sizeof(msg)), 0);
	assert_int_equal(config_finish(&c2, msg, sizeof(msg)), 0);
	assert_int_equal(c2.nlisten, 2);
	assert_string_equal(c2.events, c.events);
	assert_true(c2.cpu_memory_bytes == c.cpu_memory_bytes);
	assert_int_equal(c2.socket_mode, 0666);
	assert_true(c2.auto_cpu_max_flops == 1.5e12);
	assert_int_equal(c2.retention_days, 0);
	assert_int_equal(c2.tcp_unauthenticated, 1);
}

/* tcp:// is an explicit, unauthenticated opt-in; its owner is never root;
 * events go only to ipc subscribers (issue 9). */
static void
test_tcp_opt_in(void **state)
{
	struct config c;
	char msg[512];

	assert_int_equal(config_defaults(&c, msg, sizeof(msg)), 0);
	assert_int_equal(config_set(&c, "listen",
	                            "ipc:///tmp/x/a.sock tcp://"
	                            "127.0.0.1:7000",
	                            msg, sizeof(msg)),
	                 0);
	assert_int_equal(config_finish(&c, msg, sizeof(msg)), NQ_EBADPARAM);
	assert_non_null(strstr(msg, "tcp://127.0.0.1:7000"));
	assert_non_null(strstr(msg, "ssh://"));
	assert_non_null(strstr(msg, "tcp_unauthenticated = yes"));
	/* ws:// carries no identity either */
	assert_int_equal(config_defaults(&c, msg, sizeof(msg)), 0);
	assert_int_equal(config_set(&c, "listen",
	                            "ipc:///tmp/x/a.sock ws://h:1/x", msg,
	                            sizeof(msg)),
	                 0);
	assert_int_equal(config_finish(&c, msg, sizeof(msg)), NQ_EBADPARAM);
	assert_int_equal(
	        config_set(&c, "tcp_unauthenticated", "on", msg, sizeof(msg)),
	        0);
	assert_int_equal(config_finish(&c, msg, sizeof(msg)), 0);
	assert_int_equal(c.tcp_unauthenticated, 1);
	assert_int_equal(
	        config_set(&c, "tcp_unauthenticated", "No", msg, sizeof(msg)),
	        0);
	assert_int_equal(c.tcp_unauthenticated, 0);
	assert_int_equal(config_set(&c, "tcp_unauthenticated", "maybe", msg,
	                            sizeof(msg)),
	                 NQ_EBADPARAM);
	assert_non_null(strstr(msg, "yes or no"));
	/* root never owns anonymous jobs */
	assert_int_equal(config_set(&c, "tcp_owner_uid", "0", msg, sizeof(msg)),
	                 NQ_EBADPARAM);
	assert_non_null(strstr(msg, "other than 0"));
	assert_int_equal(
	        config_set(&c, "tcp_owner_uid", "1000", msg, sizeof(msg)), 0);
	/* the events socket checks its subscribers' uids: ipc only */
	assert_int_equal(config_defaults(&c, msg, sizeof(msg)), 0);
	assert_int_equal(
	        config_set(&c, "events", "tcp://0.0.0.0:2", msg, sizeof(msg)),
	        0);
	assert_int_equal(config_finish(&c, msg, sizeof(msg)), NQ_EBADPARAM);
	assert_non_null(strstr(msg, "events"));
	/* quotas: 0 = unlimited; sizes with suffixes */
	assert_int_equal(config_set(&c, "max_queued_jobs_per_user", "0", msg,
	                            sizeof(msg)),
	                 0);
	assert_int_equal(config_set(&c, "max_queued_jobs_per_user", "-1", msg,
	                            sizeof(msg)),
	                 NQ_EBADPARAM);
	assert_int_equal(config_set(&c, "max_spool_bytes_per_user", "2T", msg,
	                            sizeof(msg)),
	                 0);
	assert_true(c.max_spool_bytes_per_user == (2ull << 40));
	assert_int_equal(
	        config_set(&c, "admin_group", "lab-admins", msg, sizeof(msg)),
	        0);
	assert_string_equal(c.admin_group, "lab-admins");
}

/* socket_mode's default (PROTOCOL.md §1): 0600 for a user daemon, also in
 * its own runtime dir under /run/user/UID; 0660 for root or a service's
 * socket under /run/; an explicit setting wins. */
static void
test_socket_mode_default(void **state)
{
	static const struct {
		const char *listen, *set;
		int system, want;
	} cases[] = {
	        {"ipc:///run/user/1000/neuroq/neuroq.sock", NULL, 0, 0600},
	        {"ipc:///tmp/x/a.sock", NULL, 0, 0600},
	        {"ipc:///run/neuroq/neuroq.sock", NULL, 0, 0660},
	        {"ipc:///run/user-sockets/n.sock", NULL, 0, 0660},
	        {"ipc:///run/user/1000/neuroq/neuroq.sock", NULL, 1, 0660},
	        {"ipc:///tmp/x/a.sock", NULL, 1, 0660},
	        {"ipc:///run/user/1000/neuroq/neuroq.sock", "0660", 0, 0660},
	        {"ipc:///run/neuroq/neuroq.sock", "0600", 1, 0600},
	};
	struct config c;
	char msg[512];

	(void) state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(config_defaults(&c, msg, sizeof(msg)), 0);
		c.system = cases[i].system;
		assert_int_equal(config_set(&c, "listen", cases[i].listen, msg,
		                            sizeof(msg)),
		                 0);
		if (cases[i].set != NULL)
			assert_int_equal(config_set(&c, "socket_mode",
			                            cases[i].set, msg,
			                            sizeof(msg)),
			                 0);
		assert_int_equal(config_finish(&c, msg, sizeof(msg)), 0);
		if (c.socket_mode != cases[i].want)
			fail_msg("case %zu (%s): socket_mode 0%o, want 0%o", i,
			         cases[i].listen, (unsigned) c.socket_mode,
			         (unsigned) cases[i].want);
	}
}

static void
test_file_errors(void **state)
{
	struct config c;
	char msg[512], path[512];

	snprintf(path, sizeof(path), "%s/bad.conf", tmpdir);
	write_text(path, "cpu_slots = 2\n\nbogus_key = 1\n");
	assert_int_equal(config_defaults(&c, msg, sizeof(msg)), 0);
	assert_int_equal(config_load(&c, path, msg, sizeof(msg)), NQ_EBADPARAM);
	assert_non_null(strstr(msg, ":3:"));
	assert_non_null(strstr(msg, "bogus_key"));

	write_text(path, "gpu_slots = many\n");
	assert_int_equal(config_load(&c, path, msg, sizeof(msg)), NQ_EBADPARAM);
	assert_non_null(strstr(msg, "gpu_slots"));
	write_text(path, "just words\n");
	assert_int_equal(config_load(&c, path, msg, sizeof(msg)), NQ_EBADPARAM);
	write_text(path, "socket_mode = 0999\n");
	assert_int_equal(config_load(&c, path, msg, sizeof(msg)), NQ_EBADPARAM);
	write_text(path, "retention_days = -1\n");
	assert_int_equal(config_load(&c, path, msg, sizeof(msg)), NQ_EBADPARAM);
	assert_non_null(strstr(msg, "retention_days"));
	write_text(path, "retention_days = 2.5\n");
	assert_int_equal(config_load(&c, path, msg, sizeof(msg)), NQ_EBADPARAM);
	write_text(path, "auto_cpu_max_flops = lots\n");
	assert_int_equal(config_load(&c, path, msg, sizeof(msg)), NQ_EBADPARAM);
	assert_non_null(strstr(msg, "auto_cpu_max_flops"));
	write_text(path, "auto_cpu_max_flops = nan\n");
	assert_int_equal(config_load(&c, path, msg, sizeof(msg)), NQ_EBADPARAM);
	write_text(path, "log_level = chatty\n");
	assert_int_equal(config_load(&c, path, msg, sizeof(msg)), NQ_EBADPARAM);
	assert_int_equal(
	        config_load(&c, "/nonexistent/x.conf", msg, sizeof(msg)),
	        NQ_EIO);
	/* no ipc listen: the events socket must be named */
	assert_int_equal(config_defaults(&c, msg, sizeof(msg)), 0);
	assert_int_equal(
	        config_set(&c, "listen", "tcp://0.0.0.0:1", msg, sizeof(msg)),
	        0);
	assert_int_equal(config_finish(&c, msg, sizeof(msg)), NQ_EBADPARAM);
}

static void
test_worker_default(void **state)
{
	char exe[512], worker[512], out[CONFIG_PATH_MAX];

	/* a packaged install: neuroqd in sbin, neuroq-worker in bin */
	snprintf(exe, sizeof(exe), "%s/sbin/neuroqd", tmpdir);
	snprintf(worker, sizeof(worker), "%s/sbin/neuroq-worker", tmpdir);
	assert_int_equal(config_worker_default(exe, "/usr/bin/neuroq-worker",
	                                       out, sizeof(out)),
	                 0);
	assert_string_equal(out, "/usr/bin/neuroq-worker");
	/* no build-time fallback: beside the daemon, as before */
	assert_int_equal(config_worker_default(exe, NULL, out, sizeof(out)), 0);
	assert_string_equal(out, worker);

	/* a build tree (or both in one bin): the one beside the daemon wins */
	snprintf(out, sizeof(out), "%s/sbin", tmpdir);
	assert_int_equal(mkdir(out, 0755), 0);
	write_text(worker, "#!/bin/sh\n");
	assert_int_equal(config_worker_default(exe, "/usr/bin/neuroq-worker",
	                                       out, sizeof(out)),
	                 0);
	assert_string_equal(out, worker);
	assert_int_equal(config_worker_default(exe, NULL, out, sizeof(out)), 0);
	assert_string_equal(out, worker);

	assert_int_equal(config_worker_default(exe, NULL, out, 8), -1);
	unlink(worker);
	assert_int_equal(
	        config_worker_default(exe, "/usr/bin/neuroq-worker", out, 8),
	        -1);
}

/* A setting's value in a and b is the same. */
static int
same_value(const struct config *a, const struct config *b,
           const struct config_key *k)
{
	const char *fa = (const char *) a + k->off;
	const char *fb = (const char *) b + k->off;

	switch (k->type) {
	case CONFIG_PATH:
	case CONFIG_STR:
	case CONFIG_LOGLEVEL:
		return strcmp(fa, fb) == 0;
	case CONFIG_LISTEN:
		return 0; /* computed: never a fixed default */
	default:
		return memcmp(fa, fb, k->size) == 0;
	}
}

/*
 * deploy/neuroqd.conf.example against the table: each setting has a
 * "key = value" line (commented out or not) whose value parses; one that
 * has a fixed default shows it; no such line names a key the table lacks.
 */
static void
test_example_file(void **state)
{
	FILE *f = fopen(NEUROQ_CONF_EXAMPLE, "r");
	struct config def, c;
	char line[1024], msg[512];
	int seen[64] = {0}, shows_default[64] = {0};
	int lineno = 0;

	assert_non_null(f);
	assert_true(config_nkeys <= 64);
	assert_int_equal(config_defaults(&def, msg, sizeof(msg)), 0);
	while (fgets(line, sizeof(line), f) != NULL) {
		char *p = line, *key, *val, *e;
		lineno++;
		if (*p == '#')
			p++;
		while (*p == ' ' || *p == '\t')
			p++;
		key = p;
		while ((*p >= 'a' && *p <= 'z') || *p == '_' ||
		       (*p >= '0' && *p <= '9'))
			p++;
		if (p == key)
			continue;
		e = p;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '=')
			continue;
		*e = '\0';
		val = p + 1;
		while (*val == ' ' || *val == '\t')
			val++;
		e = val + strlen(val);
		while (e > val &&
		       (e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';

		const struct config_key *k = config_key_find(key);
		if (k == NULL)
			fail_msg("%s:%d: '%s' is not a setting of neuroqd",
			         NEUROQ_CONF_EXAMPLE, lineno, key);
		assert_int_equal(config_defaults(&c, msg, sizeof(msg)), 0);
		if (config_set(&c, key, val, msg, sizeof(msg)) != 0)
			fail_msg("%s:%d: %s", NEUROQ_CONF_EXAMPLE, lineno, msg);
		size_t i = (size_t) (k - config_keys);
		seen[i] = 1;
		if (k->def != NULL && same_value(&c, &def, k))
			shows_default[i] = 1;
	}
	fclose(f);
	for (size_t i = 0; i < config_nkeys; i++) {
		if (!seen[i])
			fail_msg("%s: no '# %s = ...' line",
			         NEUROQ_CONF_EXAMPLE, config_keys[i].name);
		if (config_keys[i].def != NULL && !shows_default[i])
			fail_msg("%s: no '# %s = %s' line (the default)",
			         NEUROQ_CONF_EXAMPLE, config_keys[i].name,
			         config_keys[i].def);
	}
}

/* The table drives the defaults and --print-config: every setting is
 * printed once (listen once per address), in the table's order. */
static void
test_table(void **state)
{
	struct config c;
	char msg[512], line[1024], path[512];
	size_t next = 0;

	assert_int_equal(config_defaults(&c, msg, sizeof(msg)), 0);
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct config_key *k = &config_keys[i];
		assert_ptr_equal(config_key_find(k->name), k);
		assert_true(k->off + k->size <= sizeof(c));
		if (k->type != CONFIG_LISTEN && k->type != CONFIG_PATH &&
		    k->type != CONFIG_STR)
			assert_non_null(k->expect);
	}
	assert_null(config_key_find("bogus_key"));
	assert_true(c.headroom_bytes == (256ull << 20));
	assert_int_equal(c.contexts, 16);
	assert_string_equal(c.log_level, "info");

	snprintf(path, sizeof(path), "%s/table.conf", tmpdir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	config_print(&c, f);
	fclose(f);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f)); /* the title */
	while (fgets(line, sizeof(line), f) != NULL) {
		char *eq = strstr(line, " = ");
		assert_non_null(eq);
		*eq = '\0';
		assert_true(next < config_nkeys);
		assert_string_equal(line, config_keys[next].name);
		next++;
	}
	fclose(f);
	assert_int_equal(next, config_nkeys); /* one default listen */
}

static void
test_probe_lines(void **state)
{
	struct device_info d;

	assert_int_equal(devices_parse_line("cpu cpu 1000 900", &d), 0);
	assert_int_equal(d.kind, SCHED_CPU);
	assert_true(d.mem_total == 1000 && d.mem_free == 900);
	assert_int_equal(
	        devices_parse_line("cuda:1 cuda 85899345920 84000000000", &d),
	        0);
	assert_int_equal(d.kind, SCHED_CUDA);
	assert_int_equal(d.index, 1);
	assert_string_equal(d.name, "cuda:1");
	assert_true(d.mem_total == 85899345920ull);
	assert_int_equal(devices_parse_line("cuda:x cuda 1 2", &d), -1);
	assert_int_equal(devices_parse_line("cuda:1x cuda 1 2", &d), -1);
	assert_int_equal(devices_parse_line("tpu0 tpu 1 2", &d), -1);
	assert_int_equal(devices_parse_line("cpu cpu 1", &d), -1);
	assert_int_equal(devices_parse_line("", &d), -1);
}

static void
test_spool_names_and_error(void **state)
{
	char msg[256];
	int code;

	assert_true(spool_name_ok("data"));
	assert_true(spool_name_ok("cN_b-2.x"));
	assert_false(spool_name_ok(""));
	assert_false(spool_name_ok(".hidden"));
	assert_false(spool_name_ok("../etc"));
	assert_false(spool_name_ok("a/b"));
	assert_false(spool_name_ok("x y"));

	assert_int_equal(spool_read_error(tmpdir, &code, msg, sizeof(msg)),
	                 NQ_EIO);
	assert_int_equal(spool_write_error(tmpdir, NQ_EBADDATA,
	                                   "data has NaN\nin two lines"),
	                 0);
	assert_int_equal(spool_read_error(tmpdir, &code, msg, sizeof(msg)), 0);
	assert_int_equal(code, NQ_EBADDATA);
	assert_string_equal(msg, "data has NaN\nin two lines");
	char path[512];
	snprintf(path, sizeof(path), "%s/error", tmpdir);
	FILE *f = fopen(path, "r");
	char line[64];
	assert_non_null(fgets(line, sizeof(line), f));
	fclose(f);
	assert_string_equal(line, "8 EBADDATA\n");
}

static void
test_spool_outputs(void **state)
{
	struct nq_map *out = nq_map_new(), *back = nq_map_new();
	struct nq_array a;
	int64_t shape[2] = {2, 3};
	char msg[256], path[512];
	const struct nq_value *v;

	assert_int_equal(nq_array_init(&a, NQ_DT_F64, 2, shape), 0);
	for (int i = 0; i < 6; i++)
		((double *) a.data)[i] = i * 0.5;
	assert_int_equal(nq_map_set_array(out, "cN", &a), 0);
	assert_int_equal(nq_map_set_float(out, "shrinklevelN", 0.02), 0);
	assert_int_equal(nq_map_set_int(out, "numiters", 7), 0);
	assert_int_equal(nq_map_set_str(out, "note", "a \"quoted\" word"), 0);
	assert_int_equal(spool_write_outputs(tmpdir, out, msg, sizeof(msg)), 0);
	snprintf(path, sizeof(path), "%s/out.tmp", tmpdir);
	assert_int_equal(access(path, F_OK), -1);

	/* result.json: what scripts without msgpack read */
	snprintf(path, sizeof(path), "%s/out/result.json", tmpdir);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char js[512] = "";
	size_t n = fread(js, 1, sizeof(js) - 1, f);
	fclose(f);
	js[n] = '\0';
	assert_non_null(strstr(js, "\"shrinklevelN\": 0.02"));
	assert_non_null(strstr(js, "\"numiters\": 7"));
	assert_non_null(strstr(js, "\"note\": \"a \\\"quoted\\\" word\""));
	assert_null(strstr(js, "cN"));

	assert_int_equal(
	        spool_read_outputs(tmpdir, NULL, back, msg, sizeof(msg)), 0);
	assert_int_equal(back->n, 4);
	v = nq_map_get(back, "cN");
	assert_non_null(v);
	assert_int_equal(v->kind, NQ_ARRAY);
	assert_int_equal(v->u.arr.ndim, 2);
	assert_true(v->u.arr.shape[0] == 2 && v->u.arr.shape[1] == 3);
	assert_true(((double *) v->u.arr.data)[5] == 2.5);
	v = nq_map_get(back, "numiters");
	assert_true(v != NULL && v->kind == NQ_INT && v->u.i == 7);

	/* names: only those; an unknown one is the caller's error */
	struct nq_value names = {.kind = NQ_LIST};
	struct nq_value items[2];
	items[0].kind = NQ_STR;
	items[0].u.str.s = "shrinklevelN";
	items[0].u.str.len = 12;
	items[1].kind = NQ_STR;
	items[1].u.str.s = "cN";
	items[1].u.str.len = 2;
	names.u.list.items = items;
	names.u.list.n = 2;
	struct nq_map *sub = nq_map_new();
	assert_int_equal(
	        spool_read_outputs(tmpdir, &names, sub, msg, sizeof(msg)), 0);
	assert_int_equal(sub->n, 2);
	nq_map_free(sub);
	items[1].u.str.s = "cX";
	sub = nq_map_new();
	assert_int_equal(
	        spool_read_outputs(tmpdir, &names, sub, msg, sizeof(msg)),
	        NQ_EBADPARAM);
	assert_non_null(strstr(msg, "cX"));
	nq_map_free(sub);
	nq_map_free(back);
	nq_map_free(out);
}

static unsigned
mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

/* The spool's modes (issue 9): state dir and jobs/ 0700 even when they
 * existed with others, a staged job dir 02770, its files 0640; the owner's
 * umask kept with the job. */
static void
test_spool_modes_and_umask(void **state)
{
	char sd[512], jobs[600], path[800], tmp[700], msg[256];
	struct nq_map *params = nq_map_new(), *inputs = nq_map_new();
	struct nq_array a;
	int64_t shape[1] = {3};

	(void) state;
	snprintf(sd, sizeof(sd), "%s/state", tmpdir);
	snprintf(jobs, sizeof(jobs), "%s/jobs", sd);
	assert_int_equal(spool_mkdir_p(jobs, 0755), 0);
	assert_int_equal(chmod(sd, 0755), 0);
	assert_int_equal(chmod(jobs, 0755), 0);
	assert_int_equal(spool_init(sd), 0);
	assert_int_equal(mode_of(sd), 0700);
	assert_int_equal(mode_of(jobs), 0700);

	assert_int_equal(nq_map_set_int(params, "x", 1), 0);
	assert_int_equal(nq_array_init(&a, NQ_DT_F64, 1, shape), 0);
	assert_int_equal(nq_map_set_array(inputs, "data", &a), 0);
	assert_int_equal(spool_stage(sd, params, inputs, tmp, sizeof(tmp), msg,
	                             sizeof(msg)),
	                 0);
	assert_int_equal(mode_of(tmp), 02770);
	snprintf(path, sizeof(path), "%s/in", tmp);
	assert_int_equal(mode_of(path), 02770);
	snprintf(path, sizeof(path), "%s/ckpt", tmp);
	assert_int_equal(mode_of(path), 02770);
	snprintf(path, sizeof(path), "%s/params.mp", tmp);
	assert_int_equal(mode_of(path), 0640);
	snprintf(path, sizeof(path), "%s/in/data.npy", tmp);
	assert_int_equal(mode_of(path), 0640);

	assert_int_equal(spool_read_umask(tmp), SPOOL_UMASK_DEFAULT);
	assert_int_equal(spool_write_umask(tmp, 027), 0);
	assert_int_equal(spool_read_umask(tmp), 027);
	snprintf(path, sizeof(path), "%s/umask", tmp);
	assert_int_equal(mode_of(path), 0640);
	write_text(path, "9999\n");
	assert_int_equal(spool_read_umask(tmp), SPOOL_UMASK_DEFAULT);
	nq_map_free(params);
	nq_map_free(inputs);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_bytes),
	        cmocka_unit_test(test_file),
	        cmocka_unit_test(test_file_errors),
	        cmocka_unit_test(test_tcp_opt_in),
	        cmocka_unit_test(test_socket_mode_default),
	        cmocka_unit_test(test_worker_default),
	        cmocka_unit_test(test_table),
	        cmocka_unit_test(test_example_file),
	        cmocka_unit_test(test_probe_lines),
	        cmocka_unit_test(test_spool_names_and_error),
	        cmocka_unit_test(test_spool_outputs),
	        cmocka_unit_test(test_spool_modes_and_umask),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
