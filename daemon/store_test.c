/*
 * store_test.c — the job table: persistence, idempotent submits, the state
 * machine, start-up recovery, listing, and survival of a kill -9.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nq_clock.h"
#include "nq_error.h"
#include "store.h"

struct fx {
	char dir[64];
	char path[128];
	struct store *s;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char msg[256];

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/nq_store_XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/jobs.db", f->dir);
	if (store_open(&f->s, f->path, msg, sizeof(msg)) != 0) {
		fprintf(stderr, "store_open: %s\n", msg);
		unlink(f->path);
		rmdir(f->dir);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char p[192];

	store_close(f->s);
	/* WAL side files may or may not exist: remove what is there */
	static const char *const sfx[] = {"", "-wal", "-shm", ".bad"};
	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", f->path, sfx[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

static void
basic_row(struct job_row *r, uint32_t owner, const char *idem)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->type, sizeof(r->type), "gsn");
	snprintf(r->device_req, sizeof(r->device_req), "auto");
	r->owner = owner;
	if (idem != NULL)
		snprintf(r->idem, sizeof(r->idem), "%s", idem);
}

static int64_t
put(struct store *s, uint32_t owner, int priority)
{
	struct job_row r;
	int existing = -1;

	basic_row(&r, owner, NULL);
	r.priority = priority;
	assert_int_equal(store_put_job(s, &r, &existing), 0);
	assert_int_equal(existing, 0);
	assert_true(r.id > 0);
	return r.id;
}

static enum job_state
state_of(struct store *s, int64_t id)
{
	struct job_row r;

	assert_int_equal(store_get_job(s, id, &r), 0);
	return r.state;
}

/* ---- list helpers -------------------------------------------------- */

struct collect {
	int64_t ids[64];
	int n;
	int stop_after; /* 0 = never */
};

static int
collect_cb(void *arg, const struct job_row *row)
{
	struct collect *c = arg;

	if (c->n < 64)
		c->ids[c->n] = row->id;
	c->n++;
	return c->stop_after > 0 && c->n >= c->stop_after;
}

static int
count_rows(struct store *s, int st)
{
	struct store_filter f = {.state = st, .any_owner = 1};
	struct collect c = {0};

	if (store_list(s, &f, collect_cb, &c) != 0)
		fail_msg("store_list: %s", store_errmsg(s));
	return c.n;
}

/* ---- tests --------------------------------------------------------- */

static void
test_state_names(void **state)
{
	enum job_state st;

	(void) state;
	assert_string_equal(job_state_name(JOB_QUEUED), "QUEUED");
	assert_string_equal(job_state_name(JOB_RUNNING), "RUNNING");
	assert_string_equal(job_state_name(JOB_DONE), "DONE");
	assert_string_equal(job_state_name(JOB_FAILED), "FAILED");
	assert_string_equal(job_state_name(JOB_CANCELED), "CANCELED");
	assert_int_equal(job_state_parse("running", &st), 0);
	assert_int_equal(st, JOB_RUNNING);
	assert_int_equal(job_state_parse("Canceled", &st), 0);
	assert_int_equal(st, JOB_CANCELED);
	assert_int_equal(job_state_parse("CANCELLED", &st), -1);
	assert_int_equal(job_state_parse("", &st), -1);
	assert_int_equal(job_state_parse(NULL, &st), -1);
	assert_false(job_state_final(JOB_QUEUED));
	assert_false(job_state_final(JOB_RUNNING));
	assert_true(job_state_final(JOB_DONE));
	assert_true(job_state_final(JOB_FAILED));
	assert_true(job_state_final(JOB_CANCELED));
}

static void
test_open_sets_wal_and_schema(void **state)
{
	struct fx *f = *state;
	sqlite3 *db;
	sqlite3_stmt *q;

	/* a second connection sees what store_open made persistent */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(
	        sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL),
	        SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_string_equal((const char *) sqlite3_column_text(q, 0), "wal");
	sqlite3_finalize(q);
	assert_int_equal(
	        sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL),
	        SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(q, 0), 4);
	sqlite3_finalize(q);
	/* the idempotency index is unique and partial */
	assert_int_equal(sqlite3_prepare_v2(db,
	                                    "SELECT sql FROM sqlite_master "
	                                    "WHERE name = 'jobs_owner_idem'",
	                                    -1, &q, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_non_null(
	        strstr((const char *) sqlite3_column_text(q, 0), "UNIQUE"));
	assert_non_null(
	        strstr((const char *) sqlite3_column_text(q, 0), "WHERE"));
	sqlite3_finalize(q);
	sqlite3_close(db);
}

static void
test_reopen_persists(void **state)
{
	struct fx *f = *state;
	struct job_row r;
	char msg[256];
	int64_t a, b;

	a = put(f->s, 1000, 0);
	b = put(f->s, 1001, 5);
	assert_int_equal(store_mark_running(f->s, b, "cuda:1"), 0);
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(store_open(&f->s, f->path, msg, sizeof(msg)), 0);
	assert_int_equal(store_get_job(f->s, a, &r), 0);
	assert_int_equal(r.owner, 1000);
	assert_int_equal(r.state, JOB_QUEUED);
	assert_int_equal(store_get_job(f->s, b, &r), 0);
	assert_int_equal(r.state, JOB_RUNNING);
	assert_string_equal(r.device, "cuda:1");
	assert_int_equal(r.priority, 5);
	/* ids keep growing after a reopen */
	assert_true(put(f->s, 1000, 0) > b);
	/* opening again (migrations already applied) is a no-op */
	store_close(f->s);
	assert_int_equal(store_open(&f->s, f->path, msg, sizeof(msg)), 0);
	assert_int_equal(count_rows(f->s, -1), 3);
}

static void
test_roundtrip_every_field(void **state)
{
	struct fx *f = *state;
	struct job_row in, out;
	int existing = -1;
	int64_t before = nq_wall_us(), after;

	memset(&in, 0, sizeof(in));
	snprintf(in.type, sizeof(in.type), "spikesort");
	in.state = JOB_DONE; /* ignored: a new row is QUEUED */
	in.owner = 4000000000u;
	in.priority = -7;
	snprintf(in.device_req, sizeof(in.device_req), "cuda:3");
	snprintf(in.device, sizeof(in.device), "cuda:2");
	in.attempts = 2;
	in.progress = 0.25;
	snprintf(in.stage, sizeof(in.stage), "shrinkage λ=0.5 'x'");
	in.started_us = 1234567890123456LL;
	in.finished_us = 1234567890999999LL;
	in.est_host_bytes = (1ull << 63) + 12345678901ull; /* > INT64_MAX */
	in.est_device_bytes = 3ull << 40;
	in.est_flops = 1.5e15;
	in.error_code = NQ_EDEVICE;
	snprintf(in.error, sizeof(in.error), "x'); DROP TABLE jobs; --");
	snprintf(in.idem, sizeof(in.idem), "key-\"quoted\"-ü");
	in.cancel_requested = 1;
	in.spool_bytes = 5ull << 40;

	assert_int_equal(store_put_job(f->s, &in, &existing), 0);
	after = nq_wall_us();
	assert_int_equal(existing, 0);
	assert_true(in.id > 0);
	assert_int_equal(in.state, JOB_QUEUED);
	assert_true(in.submitted_us >= before && in.submitted_us <= after);

	assert_int_equal(store_get_job(f->s, in.id, &out), 0);
	assert_int_equal(out.id, in.id);
	assert_string_equal(out.type, "spikesort");
	assert_int_equal(out.state, JOB_QUEUED);
	assert_int_equal(out.owner, 4000000000u);
	assert_int_equal(out.priority, -7);
	assert_string_equal(out.device_req, "cuda:3");
	assert_string_equal(out.device, "cuda:2");
	assert_int_equal(out.attempts, 2);
	assert_true(out.progress == 0.25);
	assert_string_equal(out.stage, "shrinkage λ=0.5 'x'");
	assert_int_equal(out.submitted_us, in.submitted_us);
	assert_int_equal(out.started_us, 1234567890123456LL);
	assert_int_equal(out.finished_us, 1234567890999999LL);
	assert_true(out.est_host_bytes == (1ull << 63) + 12345678901ull);
	assert_true(out.est_device_bytes == 3ull << 40);
	assert_true(out.est_flops == 1.5e15);
	assert_int_equal(out.error_code, NQ_EDEVICE);
	assert_string_equal(out.error, "x'); DROP TABLE jobs; --");
	assert_string_equal(out.idem, "key-\"quoted\"-ü");
	assert_int_equal(out.cancel_requested, 1);
	assert_true(out.spool_bytes == 5ull << 40);
	/* the quoted text was data, not SQL */
	assert_int_equal(count_rows(f->s, -1), 1);
}

static void
test_get_missing(void **state)
{
	struct fx *f = *state;
	struct job_row r;

	assert_int_equal(store_get_job(f->s, 1, &r), NQ_ENOJOB);
	assert_int_equal(store_get_job(f->s, -5, &r), NQ_ENOJOB);
	assert_non_null(strstr(store_errmsg(f->s), "no such job"));
}

static void
test_idempotency(void **state)
{
	struct fx *f = *state;
	struct job_row a, b, c, d, e;
	int existing = -1;

	basic_row(&a, 1000, "submit-1");
	assert_int_equal(store_put_job(f->s, &a, &existing), 0);
	assert_int_equal(existing, 0);

	/* the same owner resending the same key gets the same job back */
	basic_row(&b, 1000, "submit-1");
	b.priority = 9;
	assert_int_equal(store_put_job(f->s, &b, &existing), 0);
	assert_int_equal(existing, 1);
	assert_int_equal(b.id, a.id);
	assert_int_equal(count_rows(f->s, -1), 1);
	assert_int_equal(store_get_job(f->s, a.id, &e), 0);
	assert_int_equal(e.priority, 0); /* the first submit's row */

	/* another owner's key is its own */
	basic_row(&c, 1001, "submit-1");
	assert_int_equal(store_put_job(f->s, &c, &existing), 0);
	assert_int_equal(existing, 0);
	assert_true(c.id != a.id);

	/* no key: every submit is a new job */
	basic_row(&d, 1000, NULL);
	assert_int_equal(store_put_job(f->s, &d, &existing), 0);
	assert_int_equal(existing, 0);
	basic_row(&e, 1000, NULL);
	assert_int_equal(store_put_job(f->s, &e, &existing), 0);
	assert_int_equal(existing, 0);
	assert_true(d.id != e.id);
	assert_int_equal(count_rows(f->s, -1), 4);

	/* the key holds after the job finished, and across a reopen */
	assert_int_equal(store_mark_final(f->s, a.id, JOB_CANCELED, 0, ""), 0);
	char msg[256];
	store_close(f->s);
	assert_int_equal(store_open(&f->s, f->path, msg, sizeof(msg)), 0);
	basic_row(&b, 1000, "submit-1");
	assert_int_equal(store_put_job(f->s, &b, &existing), 0);
	assert_int_equal(existing, 1);
	assert_int_equal(b.id, a.id);
	/* existing may be NULL */
	basic_row(&b, 1000, "submit-2");
	assert_int_equal(store_put_job(f->s, &b, NULL), 0);
	assert_int_equal(count_rows(f->s, -1), 5);
}

static void
test_transitions(void **state)
{
	struct fx *f = *state;
	struct job_row r;
	int64_t id = put(f->s, 1000, 0), t0;

	/* QUEUED -> RUNNING */
	t0 = nq_wall_us();
	assert_int_equal(store_mark_running(f->s, id, "cuda:0"), 0);
	assert_int_equal(store_get_job(f->s, id, &r), 0);
	assert_int_equal(r.state, JOB_RUNNING);
	assert_string_equal(r.device, "cuda:0");
	assert_int_equal(r.attempts, 1);
	assert_true(r.started_us >= t0 && r.started_us <= nq_wall_us());
	assert_int_equal(r.finished_us, 0);
	/* not twice */
	assert_int_equal(store_mark_running(f->s, id, "cuda:1"), NQ_ESTATE);
	assert_int_equal(store_get_job(f->s, id, &r), 0);
	assert_string_equal(r.device, "cuda:0");
	assert_int_equal(r.attempts, 1);

	/* progress only while running; NaN and out-of-range are clamped */
	assert_int_equal(store_set_progress(f->s, id, 0.5, "eig"), 0);
	assert_int_equal(store_get_job(f->s, id, &r), 0);
	assert_true(r.progress == 0.5);
	assert_string_equal(r.stage, "eig");
	assert_int_equal(store_set_progress(f->s, id, 7.0, NULL), 0);
	assert_int_equal(store_get_job(f->s, id, &r), 0);
	assert_true(r.progress == 1.0);
	assert_string_equal(r.stage, "eig"); /* NULL keeps the stage */
	assert_int_equal(store_set_progress(f->s, id, NAN, "x"), 0);
	assert_int_equal(store_get_job(f->s, id, &r), 0);
	assert_true(r.progress == 0.0);

	/* RUNNING -> QUEUED keeps attempts; not from QUEUED */
	assert_int_equal(store_requeue(f->s, id, "drain"), 0);
	assert_int_equal(store_get_job(f->s, id, &r), 0);
	assert_int_equal(r.state, JOB_QUEUED);
	assert_int_equal(r.attempts, 1);
	assert_string_equal(r.stage, "requeued: drain");
	assert_int_equal(store_requeue(f->s, id, "again"), NQ_ESTATE);
	assert_int_equal(store_set_progress(f->s, id, 0.1, "x"), NQ_ESTATE);

	/* second run counts */
	assert_int_equal(store_mark_running(f->s, id, "cpu"), 0);
	assert_int_equal(store_get_job(f->s, id, &r), 0);
	assert_int_equal(r.attempts, 2);
	assert_string_equal(r.device, "cpu");

	/* cancel request is a flag, idempotent, while not final */
	assert_int_equal(store_set_cancel(f->s, id), 0);
	assert_int_equal(store_set_cancel(f->s, id), 0);
	assert_int_equal(store_get_job(f->s, id, &r), 0);
	assert_int_equal(r.cancel_requested, 1);
	assert_int_equal(r.state, JOB_RUNNING);

	/* RUNNING -> DONE */
	t0 = nq_wall_us();
	assert_int_equal(store_mark_final(f->s, id, JOB_DONE, 0, ""), 0);
	assert_int_equal(store_get_job(f->s, id, &r), 0);
	assert_int_equal(r.state, JOB_DONE);
	assert_true(r.progress == 1.0);
	assert_int_equal(r.error_code, 0);
	assert_string_equal(r.error, "");
	assert_true(r.finished_us >= t0 && r.finished_us >= r.started_us);

	/* nothing leaves a final state */
	assert_int_equal(
	        store_mark_final(f->s, id, JOB_FAILED, NQ_EFAILED, "late"),
	        NQ_ESTATE);
	assert_int_equal(store_mark_final(f->s, id, JOB_DONE, 0, ""),
	                 NQ_ESTATE);
	assert_int_equal(store_mark_running(f->s, id, "cpu"), NQ_ESTATE);
	assert_int_equal(store_requeue(f->s, id, "x"), NQ_ESTATE);
	assert_int_equal(store_set_progress(f->s, id, 0.2, "x"), NQ_ESTATE);
	assert_int_equal(store_set_cancel(f->s, id), NQ_ESTATE);
	assert_int_equal(store_get_job(f->s, id, &r), 0);
	assert_int_equal(r.state, JOB_DONE);
	assert_string_equal(r.error, "");
	assert_int_equal(r.attempts, 2);
}

static void
test_final_from_queued(void **state)
{
	struct fx *f = *state;
	struct job_row r;
	int64_t a = put(f->s, 1, 0), b = put(f->s, 1, 0), c = put(f->s, 1, 0);

	/* cancel before it ever ran */
	assert_int_equal(store_mark_final(f->s, a, JOB_CANCELED, NQ_ECANCELED,
	                                  "canceled by user"),
	                 0);
	assert_int_equal(store_get_job(f->s, a, &r), 0);
	assert_int_equal(r.state, JOB_CANCELED);
	assert_int_equal(r.error_code, NQ_ECANCELED);
	assert_string_equal(r.error, "canceled by user");
	assert_true(r.finished_us > 0);
	assert_int_equal(r.started_us, 0);
	/* failing a queued job (e.g. its device is gone) */
	assert_int_equal(store_mark_final(f->s, b, JOB_FAILED, NQ_EBADDEVICE,
	                                  "no device cuda:3"),
	                 0);
	assert_int_equal(state_of(f->s, b), JOB_FAILED);
	/* DONE needs a run */
	assert_int_equal(store_mark_final(f->s, c, JOB_DONE, 0, ""), NQ_ESTATE);
	assert_int_equal(state_of(f->s, c), JOB_QUEUED);
	/* a non-final target is a caller bug */
	assert_int_equal(store_mark_final(f->s, c, JOB_RUNNING, 0, ""),
	                 NQ_EBADPARAM);
	assert_int_equal(store_mark_final(f->s, c, JOB_QUEUED, 0, ""),
	                 NQ_EBADPARAM);
	assert_int_equal(state_of(f->s, c), JOB_QUEUED);
}

static void
test_missing_job_errors(void **state)
{
	struct fx *f = *state;

	assert_int_equal(store_mark_running(f->s, 42, "cpu"), NQ_ENOJOB);
	assert_int_equal(store_mark_final(f->s, 42, JOB_DONE, 0, ""),
	                 NQ_ENOJOB);
	assert_int_equal(store_requeue(f->s, 42, NULL), NQ_ENOJOB);
	assert_int_equal(store_set_progress(f->s, 42, 0.1, NULL), NQ_ENOJOB);
	assert_int_equal(store_set_cancel(f->s, 42), NQ_ENOJOB);
	/* failed writes leave no transaction open: the next write works */
	int64_t id = put(f->s, 1, 0);
	assert_int_equal(store_mark_running(f->s, id, "cpu"), 0);
}

static void
test_long_error_truncated(void **state)
{
	struct fx *f = *state;
	struct job_row r;
	char big[2000];
	int64_t id = put(f->s, 1, 0);
	size_t n;

	/* "ab" then 2-byte UTF-8 chars: the 511-byte cut falls inside one */
	big[0] = 'a';
	big[1] = 'b';
	for (n = 2; n + 2 < sizeof(big); n += 2) {
		big[n] = (char) 0xc3;
		big[n + 1] = (char) 0xa9; /* é */
	}
	big[n] = '\0';
	assert_int_equal(
	        store_mark_final(f->s, id, JOB_FAILED, NQ_EFAILED, big), 0);
	assert_int_equal(store_get_job(f->s, id, &r), 0);
	assert_int_equal(strlen(r.error), 510); /* "ab" + 254 × 2 bytes */
	assert_memory_equal(r.error, big, 510);
	/* NULL error text is "" */
	id = put(f->s, 1, 0);
	assert_int_equal(store_mark_final(f->s, id, JOB_CANCELED, 0, NULL), 0);
	assert_int_equal(store_get_job(f->s, id, &r), 0);
	assert_string_equal(r.error, "");
}

static void
test_recover(void **state)
{
	struct fx *f = *state;
	struct job_row r;
	int64_t q = put(f->s, 1, 0), r1 = put(f->s, 1, 0), r2 = put(f->s, 2, 0),
	        r3 = put(f->s, 2, 0), done = put(f->s, 3, 0);
	int requeued = -1, failed = -1;

	/* r1: 1 attempt, r2: 2 attempts, r3: 3 attempts, all RUNNING */
	assert_int_equal(store_mark_running(f->s, r1, "cpu"), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(store_mark_running(f->s, r2, "cuda:0"), 0);
		if (i < 1)
			assert_int_equal(store_requeue(f->s, r2, "x"), 0);
	}
	for (int i = 0; i < 3; i++) {
		assert_int_equal(store_mark_running(f->s, r3, "cuda:1"), 0);
		if (i < 2)
			assert_int_equal(store_requeue(f->s, r3, "x"), 0);
	}
	assert_int_equal(store_mark_running(f->s, done, "cpu"), 0);
	assert_int_equal(store_mark_final(f->s, done, JOB_DONE, 0, ""), 0);

	assert_int_equal(store_recover(f->s, 0, &requeued, &failed),
	                 NQ_EBADPARAM);
	assert_int_equal(store_recover(f->s, 3, &requeued, &failed), 0);
	assert_int_equal(requeued, 2);
	assert_int_equal(failed, 1);

	assert_int_equal(store_get_job(f->s, r1, &r), 0);
	assert_int_equal(r.state, JOB_QUEUED);
	assert_int_equal(r.attempts, 1);
	assert_int_equal(r.error_code, 0);
	assert_int_equal(store_get_job(f->s, r2, &r), 0);
	assert_int_equal(r.state, JOB_QUEUED);
	assert_int_equal(r.attempts, 2);
	assert_int_equal(store_get_job(f->s, r3, &r), 0);
	assert_int_equal(r.state, JOB_FAILED);
	assert_int_equal(r.attempts, 3);
	assert_int_equal(r.error_code, NQ_EFAILED);
	assert_string_equal(r.error, "worker died 3 times (max_attempts 3)");
	assert_true(r.finished_us > 0);
	assert_int_equal(state_of(f->s, q), JOB_QUEUED);
	assert_int_equal(state_of(f->s, done), JOB_DONE);

	/* nothing left running: a second pass does nothing */
	assert_int_equal(store_recover(f->s, 3, &requeued, &failed), 0);
	assert_int_equal(requeued, 0);
	assert_int_equal(failed, 0);
	/* requeued jobs can run again */
	assert_int_equal(store_mark_running(f->s, r2, "cuda:0"), 0);
	assert_int_equal(store_get_job(f->s, r2, &r), 0);
	assert_int_equal(r.attempts, 3);
}

static void
test_recover_cancel_requested(void **state)
{
	struct fx *f = *state;
	struct job_row r;
	int64_t run = put(f->s, 1, 0), other = put(f->s, 1, 0),
	        often = put(f->s, 1, 0);
	int requeued = -1, failed = -1, canceled = -1;

	/* cancel asked while RUNNING, then the daemon died */
	assert_int_equal(store_mark_running(f->s, run, "cpu"), 0);
	assert_int_equal(store_set_cancel(f->s, run), 0);
	assert_int_equal(store_mark_running(f->s, other, "cpu"), 0);
	/* a cancel beats max_attempts: CANCELED, not FAILED */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(store_mark_running(f->s, often, "cpu"), 0);
		if (i < 2)
			assert_int_equal(store_requeue(f->s, often, "x"), 0);
	}
	assert_int_equal(store_set_cancel(f->s, often), 0);
	assert_int_equal(store_recover2(f->s, 3, &requeued, &failed, &canceled),
	                 0);
	assert_int_equal(canceled, 2);
	assert_int_equal(requeued, 1);
	assert_int_equal(failed, 0);
	assert_int_equal(store_get_job(f->s, run, &r), 0);
	assert_int_equal(r.state, JOB_CANCELED);
	assert_int_equal(r.error_code, NQ_ECANCELED);
	assert_non_null(strstr(r.error, "canceled"));
	assert_true(r.finished_us > 0);
	assert_int_equal(state_of(f->s, often), JOB_CANCELED);
	assert_int_equal(state_of(f->s, other), JOB_QUEUED);
	/* a final job cannot be started again */
	assert_int_equal(store_mark_running(f->s, run, "cpu"), NQ_ESTATE);
}

/* executor = slurm (issue 11): a RUNNING job's Slurm id and pending reason;
 * start-up recovery leaves jobs with a Slurm id to the executor (they may
 * still run in Slurm), even past max_attempts or with a cancel asked. */
static void
test_backend_ids(void **state)
{
	struct fx *f = *state;
	struct job_row r;
	int64_t inslurm = put(f->s, 1, 0), canc = put(f->s, 1, 0),
	        late = put(f->s, 1, 0), q = put(f->s, 1, 0);
	int requeued = -1, failed = -1, canceled = -1;

	/* only a RUNNING job has one */
	assert_int_equal(store_set_backend(f->s, q, "5"), NQ_ESTATE);
	assert_int_equal(store_set_pending_reason(f->s, q, "x"), NQ_ESTATE);
	assert_int_equal(store_set_backend(f->s, 999, "5"), NQ_ENOJOB);
	assert_int_equal(store_mark_running(f->s, inslurm, "cuda:0"), 0);
	assert_int_equal(store_set_backend(f->s, inslurm, "1234"), 0);
	assert_int_equal(store_set_pending_reason(f->s, inslurm, "Resources"),
	                 0);
	assert_int_equal(store_get_job(f->s, inslurm, &r), 0);
	assert_string_equal(r.backend_job_id, "1234");
	assert_string_equal(r.pending_reason, "Resources");
	/* a cancel asked while the daemon was away */
	assert_int_equal(store_mark_running(f->s, canc, "cpu"), 0);
	assert_int_equal(store_set_backend(f->s, canc, "1235"), 0);
	assert_int_equal(store_set_cancel(f->s, canc), 0);
	/* its last attempt: still the executor's */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(store_mark_running(f->s, late, "cpu"), 0);
		if (i < 2)
			assert_int_equal(store_requeue(f->s, late, "x"), 0);
	}
	assert_int_equal(store_set_backend(f->s, late, "1236"), 0);
	assert_int_equal(store_recover2(f->s, 3, &requeued, &failed, &canceled),
	                 0);
	assert_int_equal(requeued + failed + canceled, 0);
	assert_int_equal(state_of(f->s, inslurm), JOB_RUNNING);
	assert_int_equal(state_of(f->s, canc), JOB_RUNNING);
	assert_int_equal(state_of(f->s, late), JOB_RUNNING);
	/* requeue and a new start clear both; the end clears the reason and
	 * keeps the id (history) */
	assert_int_equal(store_requeue(f->s, inslurm, "NODE_FAIL"), 0);
	assert_int_equal(store_get_job(f->s, inslurm, &r), 0);
	assert_string_equal(r.backend_job_id, "");
	assert_string_equal(r.pending_reason, "");
	assert_int_equal(store_mark_running(f->s, inslurm, "cuda:0"), 0);
	assert_int_equal(store_set_backend(f->s, inslurm, "1300"), 0);
	assert_int_equal(store_set_pending_reason(f->s, inslurm, "Priority"),
	                 0);
	assert_int_equal(store_mark_final(f->s, inslurm, JOB_DONE, 0, ""), 0);
	assert_int_equal(store_get_job(f->s, inslurm, &r), 0);
	assert_string_equal(r.backend_job_id, "1300");
	assert_string_equal(r.pending_reason, "");
	/* without an id, recovery works as before */
	assert_int_equal(store_mark_running(f->s, q, "cpu"), 0);
	assert_int_equal(store_recover2(f->s, 3, &requeued, &failed, &canceled),
	                 0);
	assert_int_equal(requeued, 1);
	assert_int_equal(state_of(f->s, q), JOB_QUEUED);
}

/* Sets finished_us behind the store's back: fake clocks for retention. */
static void
set_finished(struct fx *f, int64_t id, int64_t us)
{
	sqlite3 *db;
	char sql[128];

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	snprintf(sql, sizeof(sql),
	         "UPDATE jobs SET finished_us = %lld WHERE id = %lld",
	         (long long) us, (long long) id);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void
test_retention_selection(void **state)
{
	struct fx *f = *state;
	const int64_t day = 86400ll * 1000000;
	const int64_t now = nq_wall_us();
	struct collect c = {0};
	struct job_row r;
	int64_t done_old = put(f->s, 1, 0), failed_old = put(f->s, 2, 0),
	        canc_old = put(f->s, 1, 0), done_new = put(f->s, 1, 0),
	        queued = put(f->s, 1, 0), running = put(f->s, 1, 0);

	assert_int_equal(store_mark_running(f->s, done_old, "cpu"), 0);
	assert_int_equal(store_mark_final(f->s, done_old, JOB_DONE, 0, ""), 0);
	assert_int_equal(store_mark_running(f->s, failed_old, "cpu"), 0);
	assert_int_equal(
	        store_mark_final(f->s, failed_old, JOB_FAILED, NQ_EFAILED, "x"),
	        0);
	assert_int_equal(store_mark_final(f->s, canc_old, JOB_CANCELED,
	                                  NQ_ECANCELED, "canceled"),
	                 0);
	assert_int_equal(store_mark_running(f->s, done_new, "cpu"), 0);
	assert_int_equal(store_mark_final(f->s, done_new, JOB_DONE, 0, ""), 0);
	assert_int_equal(store_mark_running(f->s, running, "cpu"), 0);
	set_finished(f, done_old, now - 40 * day);
	set_finished(f, failed_old, now - 31 * day);
	set_finished(f, canc_old, now - 30 * day - 1);
	set_finished(f, done_new, now - 29 * day);
	/* a live job with a stray timestamp is never selected */
	set_finished(f, running, now - 100 * day);
	set_finished(f, queued, now - 100 * day);

	/* 30 days: the three older ones, oldest first */
	assert_int_equal(
	        store_list_expired(f->s, now - 30 * day, 0, collect_cb, &c), 0);
	assert_int_equal(c.n, 3);
	assert_true(c.ids[0] == done_old);
	assert_true(c.ids[1] == failed_old);
	assert_true(c.ids[2] == canc_old);
	/* limit */
	memset(&c, 0, sizeof(c));
	assert_int_equal(
	        store_list_expired(f->s, now - 30 * day, 1, collect_cb, &c), 0);
	assert_int_equal(c.n, 1);
	assert_true(c.ids[0] == done_old);
	/* purged rows stay (history, idem) but are not selected again */
	assert_int_equal(store_mark_purged(f->s, done_old), 0);
	assert_int_equal(store_get_job(f->s, done_old, &r), 0);
	assert_int_equal(r.state, JOB_DONE);
	assert_true(r.purged_us >= now);
	memset(&c, 0, sizeof(c));
	assert_int_equal(
	        store_list_expired(f->s, now - 30 * day, 0, collect_cb, &c), 0);
	assert_int_equal(c.n, 2);
	assert_true(c.ids[0] == failed_old);
	/* 1 day: everything final but not purged */
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_list_expired(f->s, now - day, 0, collect_cb, &c),
	                 0);
	assert_int_equal(c.n, 3);
	assert_true(c.ids[2] == done_new);
	/* only final jobs can be purged */
	assert_int_equal(store_mark_purged(f->s, running), NQ_ESTATE);
	assert_int_equal(store_mark_purged(f->s, queued), NQ_ESTATE);
	assert_int_equal(store_mark_purged(f->s, 9999), NQ_ENOJOB);
	assert_int_equal(store_get_job(f->s, running, &r), 0);
	assert_true(r.purged_us == 0);
}

/* A database of schema v1 (before retention) opens and gains purged_us. */
static void
test_migrate_v1(void **state)
{
	struct fx *f = *state;
	char path[160], msg[256];
	struct store *st;
	struct job_row r;
	sqlite3 *db;

	snprintf(path, sizeof(path), "%s/v1.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
	        sqlite3_exec(
	                db,
	                "PRAGMA journal_mode = WAL;"
	                "CREATE TABLE jobs ("
	                " id INTEGER PRIMARY KEY AUTOINCREMENT,"
	                " type TEXT NOT NULL,"
	                " state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 4),"
	                " owner INTEGER NOT NULL,"
	                " priority INTEGER NOT NULL DEFAULT 0,"
	                " device_req TEXT NOT NULL DEFAULT 'auto',"
	                " device TEXT NOT NULL DEFAULT '',"
	                " attempts INTEGER NOT NULL DEFAULT 0,"
	                " progress REAL NOT NULL DEFAULT 0,"
	                " stage TEXT NOT NULL DEFAULT '',"
	                " submitted_us INTEGER NOT NULL DEFAULT 0,"
	                " started_us INTEGER NOT NULL DEFAULT 0,"
	                " finished_us INTEGER NOT NULL DEFAULT 0,"
	                " est_host_bytes INTEGER NOT NULL DEFAULT 0,"
	                " est_device_bytes INTEGER NOT NULL DEFAULT 0,"
	                " est_flops REAL NOT NULL DEFAULT 0,"
	                " error_code INTEGER NOT NULL DEFAULT 0,"
	                " error TEXT NOT NULL DEFAULT '',"
	                " idem TEXT NOT NULL DEFAULT '',"
	                " cancel_requested INTEGER NOT NULL DEFAULT 0);"
	                "INSERT INTO jobs (type, state, owner, finished_us)"
	                " VALUES ('gsn', 2, 7, 123);"
	                "PRAGMA user_version = 1;",
	                NULL, NULL, NULL),
	        SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_open(&st, path, msg, sizeof(msg)), 0);
	assert_int_equal(store_get_job(st, 1, &r), 0);
	assert_int_equal(r.state, JOB_DONE);
	assert_int_equal(r.owner, 7);
	assert_true(r.purged_us == 0);
	/* ... and spool_bytes (v3): 0 for the old rows, then settable */
	assert_true(r.spool_bytes == 0);
	assert_int_equal(store_set_spool_bytes(st, 1, 4096), 0);
	assert_int_equal(store_mark_purged(st, 1), 0);
	assert_int_equal(store_get_job(st, 1, &r), 0);
	assert_true(r.purged_us > 0);
	assert_true(r.spool_bytes == 4096);
	store_close(st);
	static const char *const sfx[] = {"", "-wal", "-shm"};
	for (size_t i = 0; i < 3; i++) {
		char p[192];
		snprintf(p, sizeof(p), "%s%s", path, sfx[i]);
		unlink(p);
	}
}

/* Quotas: a user's QUEUED/RUNNING counts and spool bytes are sums over
 * their rows (purged jobs hold nothing); others' counts for list; idem. */
static void
test_owner_usage(void **state)
{
	struct fx *f = *state;
	struct store_usage u;
	struct job_row r;
	int64_t q1, q2, run, done, purged, other, id = 0, oq, orun;
	int existing;

	assert_int_equal(store_owner_usage(f->s, 7, &u), 0);
	assert_true(u.queued == 0 && u.running == 0 && u.spool_bytes == 0);
	q1 = put(f->s, 7, 0);
	q2 = put(f->s, 7, 0);
	run = put(f->s, 7, 0);
	done = put(f->s, 7, 0);
	purged = put(f->s, 7, 0);
	other = put(f->s, 8, 0);
	put(f->s, 9, 0);
	assert_int_equal(store_mark_running(f->s, run, "cpu"), 0);
	assert_int_equal(store_mark_running(f->s, done, "cpu"), 0);
	assert_int_equal(store_mark_final(f->s, done, JOB_DONE, 0, ""), 0);
	assert_int_equal(store_mark_final(f->s, purged, JOB_CANCELED,
	                                  NQ_ECANCELED, "canceled"),
	                 0);
	assert_int_equal(store_mark_running(f->s, other, "cpu"), 0);
	assert_int_equal(store_set_spool_bytes(f->s, q1, 1000), 0);
	assert_int_equal(store_set_spool_bytes(f->s, q2, 2000), 0);
	assert_int_equal(store_set_spool_bytes(f->s, run, 4000), 0);
	/* a finished job's outputs replace its submit-time figure */
	assert_int_equal(store_set_spool_bytes(f->s, done, 8000), 0);
	assert_int_equal(store_set_spool_bytes(f->s, done, 3ull << 40), 0);
	assert_int_equal(store_set_spool_bytes(f->s, purged, 16000), 0);
	assert_int_equal(store_set_spool_bytes(f->s, other, 1ull << 50), 0);
	assert_int_equal(store_set_spool_bytes(f->s, 9999, 1), NQ_ENOJOB);

	assert_int_equal(store_owner_usage(f->s, 7, &u), 0);
	assert_true(u.queued == 2);
	assert_true(u.running == 1);
	assert_true(u.spool_bytes == 1000 + 2000 + 4000 + (3ull << 40) + 16000);
	assert_int_equal(store_mark_purged(f->s, purged), 0);
	assert_int_equal(store_owner_usage(f->s, 7, &u), 0);
	assert_true(u.spool_bytes == 1000 + 2000 + 4000 + (3ull << 40));
	assert_int_equal(store_get_job(f->s, purged, &r), 0);
	assert_true(r.spool_bytes == 16000); /* kept, not counted */

	/* the others of 7: 8's RUNNING, 9's QUEUED; final ones not */
	assert_int_equal(store_count_others(f->s, 7, &oq, &orun), 0);
	assert_true(oq == 1 && orun == 1);
	assert_int_equal(store_count_others(f->s, 8, &oq, &orun), 0);
	assert_true(oq == 3 && orun == 1);

	/* idem lookup, per owner */
	basic_row(&r, 7, "k1");
	assert_int_equal(store_put_job(f->s, &r, &existing), 0);
	assert_int_equal(store_find_idem(f->s, 7, "k1", &id), 0);
	assert_true(id == r.id);
	assert_int_equal(store_find_idem(f->s, 8, "k1", &id), NQ_ENOJOB);
	assert_int_equal(store_find_idem(f->s, 7, "k2", &id), NQ_ENOJOB);
	assert_int_equal(store_find_idem(f->s, 7, "", &id), NQ_ENOJOB);
	/* the usage survives a reopen (it is in the rows) */
	store_close(f->s);
	f->s = NULL;
	{
		char msg[256];
		assert_int_equal(store_open(&f->s, f->path, msg, sizeof(msg)),
		                 0);
	}
	assert_int_equal(store_owner_usage(f->s, 7, &u), 0);
	assert_true(u.queued == 3 && u.running == 1);
	assert_true(u.spool_bytes == 1000 + 2000 + 4000 + (3ull << 40));
}

static void
test_list_filters(void **state)
{
	struct fx *f = *state;
	struct store_filter flt;
	struct collect c;
	int64_t id[8];

	/* owner 1: ids 0,1,2,3 ; owner 2: ids 4,5,6,7 */
	for (int i = 0; i < 8; i++)
		id[i] = put(f->s, i < 4 ? 1 : 2, 0);
	assert_int_equal(store_mark_running(f->s, id[1], "cpu"), 0);
	assert_int_equal(store_mark_running(f->s, id[5], "cpu"), 0);
	assert_int_equal(store_mark_running(f->s, id[6], "cpu"), 0);
	assert_int_equal(store_mark_final(f->s, id[6], JOB_DONE, 0, ""), 0);
	assert_int_equal(store_mark_final(f->s, id[3], JOB_CANCELED, 0, ""), 0);

	/* all, newest first */
	flt = (struct store_filter){.state = -1, .any_owner = 1};
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_list(f->s, &flt, collect_cb, &c), 0);
	assert_int_equal(c.n, 8);
	for (int i = 0; i < 8; i++)
		assert_int_equal(c.ids[i], id[7 - i]);

	/* oldest first with a limit */
	flt = (struct store_filter){
	        .state = -1, .any_owner = 1, .limit = 3, .oldest_first = 1};
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_list(f->s, &flt, collect_cb, &c), 0);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.ids[0], id[0]);
	assert_int_equal(c.ids[1], id[1]);
	assert_int_equal(c.ids[2], id[2]);

	/* one owner only (any_owner = 0) */
	flt = (struct store_filter){.state = -1, .owner = 2};
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_list(f->s, &flt, collect_cb, &c), 0);
	assert_int_equal(c.n, 4);
	assert_int_equal(c.ids[0], id[7]);
	assert_int_equal(c.ids[3], id[4]);

	/* state across owners */
	flt = (struct store_filter){.state = JOB_RUNNING, .any_owner = 1};
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_list(f->s, &flt, collect_cb, &c), 0);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.ids[0], id[5]);
	assert_int_equal(c.ids[1], id[1]);

	/* state and owner */
	flt = (struct store_filter){
	        .state = JOB_QUEUED, .owner = 1, .oldest_first = 1};
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_list(f->s, &flt, collect_cb, &c), 0);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.ids[0], id[0]);
	assert_int_equal(c.ids[1], id[2]);

	/* an owner with no jobs */
	flt = (struct store_filter){.state = -1, .owner = 99};
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_list(f->s, &flt, collect_cb, &c), 0);
	assert_int_equal(c.n, 0);

	/* the callback stops the walk */
	flt = (struct store_filter){.state = -1, .any_owner = 1};
	memset(&c, 0, sizeof(c));
	c.stop_after = 2;
	assert_int_equal(store_list(f->s, &flt, collect_cb, &c), 0);
	assert_int_equal(c.n, 2);
	/* and a stopped walk leaves nothing in the way of a new one */
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_list(f->s, &flt, collect_cb, &c), 0);
	assert_int_equal(c.n, 8);
}

struct nested {
	struct store *s;
	int rows, inner_rows, writes_ok;
};

static int
count_cb(void *arg, const struct job_row *row)
{
	(void) row;
	(*(int *) arg)++;
	return 0;
}

/* A callback may read and write the store while the walk is open. */
static int
nested_cb(void *arg, const struct job_row *row)
{
	struct nested *n = arg;
	struct store_filter flt = {.state = -1, .any_owner = 1};
	int inner = 0;

	n->rows++;
	if (store_list(n->s, &flt, count_cb, &inner) == 0)
		n->inner_rows += inner;
	if (store_set_cancel(n->s, row->id) == 0)
		n->writes_ok++;
	return 0;
}

static void
test_list_reentrant(void **state)
{
	struct fx *f = *state;
	struct store_filter flt = {.state = -1, .any_owner = 1};
	struct nested n = {.s = f->s};
	struct job_row r;
	int64_t a = put(f->s, 1, 0), b = put(f->s, 1, 0);

	assert_int_equal(store_list(f->s, &flt, nested_cb, &n), 0);
	assert_int_equal(n.rows, 2);
	assert_int_equal(n.inner_rows, 4);
	assert_int_equal(n.writes_ok, 2);
	assert_int_equal(store_get_job(f->s, a, &r), 0);
	assert_int_equal(r.cancel_requested, 1);
	assert_int_equal(store_get_job(f->s, b, &r), 0);
	assert_int_equal(r.cancel_requested, 1);
}

static void
test_many_inserts(void **state)
{
	struct fx *f = *state;
	double t0, secs;
	int64_t prev = 0;

	t0 = nq_mono_s();
	for (int i = 0; i < 1000; i++) {
		struct job_row r;
		basic_row(&r, (uint32_t) (i % 7), NULL);
		snprintf(r.idem, sizeof(r.idem), "k%d", i);
		assert_int_equal(store_put_job(f->s, &r, NULL), 0);
		assert_true(r.id > prev);
		prev = r.id;
	}
	secs = nq_mono_s() - t0;
	print_message("1000 inserts: %.3f s\n", secs);
	assert_true(secs < 10.0);
	assert_int_equal(count_rows(f->s, JOB_QUEUED), 1000);
}

static void
test_not_a_database(void **state)
{
	struct fx *f = *state;
	struct store *s = (struct store *) 1;
	char bad[192], msg[256];
	int fd;

	snprintf(bad, sizeof(bad), "%s.bad", f->path);
	fd = open(bad, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	for (int i = 0; i < 64; i++)
		assert_int_equal(write(fd, "this is not sqlite at all!\n", 27),
		                 27);
	close(fd);
	msg[0] = '\0';
	assert_int_equal(store_open(&s, bad, msg, sizeof(msg)), NQ_EIO);
	assert_null(s);
	assert_non_null(strstr(msg, "not a database"));
	assert_non_null(strstr(msg, bad));

	/* a directory that does not exist */
	s = (struct store *) 1;
	assert_int_equal(
	        store_open(&s, "/nonexistent-nq/dir/jobs.db", msg, sizeof(msg)),
	        NQ_EIO);
	assert_null(s);
	assert_true(strlen(msg) > 0);
	/* a NULL message buffer is allowed */
	assert_int_equal(store_open(&s, bad, NULL, 0), NQ_EIO);
	assert_null(s);
}

static void
test_newer_schema_refused(void **state)
{
	struct fx *f = *state;
	sqlite3 *db;
	char msg[256];

	store_close(f->s);
	f->s = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(
	        sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL),
	        SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_open(&f->s, f->path, msg, sizeof(msg)), NQ_EIO);
	assert_null(f->s);
	assert_non_null(strstr(msg, "newer"));
}

static void
test_locked_database(void **state)
{
	struct fx *f = *state;
	sqlite3 *db;
	struct job_row r;

	/* WAL: an open read transaction of another process (a `neuroq` admin
	 * tool, sqlite3 shell) must not block the daemon's writes */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN; SELECT count(*) FROM jobs;",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	int64_t id = put(f->s, 1, 0);
	assert_int_equal(store_get_job(f->s, id, &r), 0);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
}

/* ---- kill -9 ------------------------------------------------------- */

/* The child writes, and after each commit reports "<id> <state>\n" on the
 * pipe; the parent kills it at a random point of its loop. */
static void
crash_child(const char *path, int wfd)
{
	struct store *s;
	char msg[256], line[64];

	if (store_open(&s, path, msg, sizeof(msg)) != 0)
		_exit(2);
	for (int i = 0;; i++) {
		struct job_row r;
		basic_row(&r, (uint32_t) (i % 3), NULL);
		snprintf(r.idem, sizeof(r.idem), "crash-%d", i);
		if (store_put_job(s, &r, NULL) != 0)
			_exit(3);
		int st = JOB_QUEUED;
		if (i % 3 == 0) {
			if (store_mark_running(s, r.id, "cpu") != 0)
				_exit(4);
			st = JOB_RUNNING;
		}
		int n = snprintf(line, sizeof(line), "%lld %d\n",
		                 (long long) r.id, st);
		if (write(wfd, line, (size_t) n) != n)
			_exit(5);
	}
}

static void
run_crash(struct fx *f, int kill_it)
{
	int p[2];
	pid_t pid;
	char buf[65536];
	size_t have = 0;
	int status, nrun = 0, nrows = 0, requeued = -1, failed = -1;
	char msg[256];

	store_close(f->s);
	f->s = NULL;
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		if (kill_it) {
			crash_child(f->path, p[1]);
		} else {
			/* a few rows, then exit without store_close */
			struct store *s;
			if (store_open(&s, f->path, msg, sizeof(msg)) != 0)
				_exit(2);
			for (int i = 0; i < 30; i++) {
				struct job_row r;
				basic_row(&r, 7, NULL);
				if (store_put_job(s, &r, NULL) != 0)
					_exit(3);
				int st = JOB_QUEUED;
				if (i % 3 == 0) {
					if (store_mark_running(s, r.id, "cpu"))
						_exit(4);
					st = JOB_RUNNING;
				}
				char line[64];
				int n = snprintf(line, sizeof(line),
				                 "%lld %d\n", (long long) r.id,
				                 st);
				if (write(p[1], line, (size_t) n) != n)
					_exit(5);
			}
			_exit(0);
		}
		_exit(6);
	}
	close(p[1]);
	/* read until enough rows are reported (or the child is done) */
	for (;;) {
		ssize_t k = read(p[0], buf + have, sizeof(buf) - 1 - have);
		if (k <= 0)
			break;
		have += (size_t) k;
		if (kill_it && have > 4000)
			break;
	}
	if (kill_it)
		kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (kill_it) {
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGKILL);
	} else {
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	/* drain what was written before the kill landed */
	for (;;) {
		ssize_t k = read(p[0], buf + have, sizeof(buf) - 1 - have);
		if (k <= 0)
			break;
		have += (size_t) k;
	}
	close(p[0]);
	buf[have] = '\0';

	assert_int_equal(store_open(&f->s, f->path, msg, sizeof(msg)), 0);
	/* every reported commit is there, in the reported state */
	char *save = NULL;
	for (char *ln = strtok_r(buf, "\n", &save); ln != NULL;
	     ln = strtok_r(NULL, "\n", &save)) {
		long long id;
		int st;
		struct job_row r;
		/* the test's own child wrote it */
		// NOLINTNEXTLINE(cert-err34-c)
		if (sscanf(ln, "%lld %d", &id, &st) != 2)
			break; /* a torn last line */
		assert_int_equal(store_get_job(f->s, id, &r), 0);
		assert_int_equal(r.state, st);
		nrows++;
		nrun += st == JOB_RUNNING;
	}
	assert_true(nrows > 0);
	if (!kill_it)
		assert_int_equal(nrows, 30);
	/* the child may have committed one more row than it reported */
	int total = count_rows(f->s, -1);
	assert_true(total >= nrows && total <= nrows + 1);
	int running = count_rows(f->s, JOB_RUNNING);
	assert_true(running >= nrun && running <= nrun + 1);
	assert_int_equal(store_recover(f->s, 5, &requeued, &failed), 0);
	assert_int_equal(requeued, running);
	assert_int_equal(failed, 0);
	assert_int_equal(count_rows(f->s, JOB_RUNNING), 0);
	assert_int_equal(count_rows(f->s, JOB_QUEUED), total);
}

static void
test_crash_exit_without_close(void **state)
{
	run_crash(*state, 0);
}

static void
test_crash_kill9(void **state)
{
	run_crash(*state, 1);
}

static void
assert_mode(const char *path, unsigned mode)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, mode);
}

/* The database and its WAL files are the service user's alone (issue 9):
 * new ones are made 0600, an older daemon's 0644 ones are fixed on open. */
static void
test_db_private(void **state)
{
	struct fx *f = *state;
	struct job_row row;
	char p[192], msg[256];
	int existing;

	memset(&row, 0, sizeof(row));
	snprintf(row.type, sizeof(row.type), "gsn");
	row.state = JOB_QUEUED;
	row.owner = 1000;
	snprintf(row.device_req, sizeof(row.device_req), "auto");
	assert_int_equal(store_put_job(f->s, &row, &existing), 0);
	assert_mode(f->path, 0600);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	assert_mode(p, 0600);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	assert_mode(p, 0600);
	store_close(f->s);
	f->s = NULL;
	/* as an older daemon left them (an empty WAL is a valid one) */
	assert_int_equal(chmod(f->path, 0644), 0);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	int fd = open(p, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(chmod(p, 0644), 0);
	assert_int_equal(store_open(&f->s, f->path, msg, sizeof(msg)), 0);
	assert_mode(f->path, 0600);
	assert_mode(p, 0600);
}

/* start-up's check: a whole store passes, a missing one is new, a store cut
 * in half or with garbage in its middle is NQ_EBADDATA with "damaged" */
static void
damage_copy(const char *from, const char *to, int how)
{
	FILE *f = fopen(from, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	assert_true(n > 8 * 4096);
	buf = malloc((size_t) n);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t) n, f), (size_t) n);
	fclose(f);
	if (how == 1) /* garbage over a few pages in the middle */
		for (long i = n / 2; i < n / 2 + 3 * 4096; i++)
			buf[i] = (char) (i * 7919 % 251);
	f = fopen(to, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, (size_t) (how == 0 ? n / 2 : n), f),
	                 (size_t) (how == 0 ? n / 2 : n));
	fclose(f);
	free(buf);
}

static void
test_verify_damaged(void **state)
{
	struct fx *f = *state;
	char msg[512], bad[192];

	for (int i = 0; i < 400; i++) {
		struct job_row r;
		int existing;
		basic_row(&r, 1000, NULL);
		snprintf(r.error, sizeof(r.error), "%0400d", i);
		assert_int_equal(store_put_job(f->s, &r, &existing), 0);
	}
	store_close(f->s); /* the last close checkpoints the WAL */
	f->s = NULL;
	if (store_verify(f->path, msg, sizeof(msg)) != 0)
		fail_msg("%s", msg);
	snprintf(bad, sizeof(bad), "%s.bad", f->dir);
	assert_int_equal(store_verify(bad, msg, sizeof(msg)), 0); /* none */
	for (int how = 0; how < 2; how++) {
		char side[256];
		snprintf(bad, sizeof(bad), "%s.bad", f->path);
		damage_copy(f->path, bad, how);
		msg[0] = '\0';
		assert_int_equal(store_verify(bad, msg, sizeof(msg)),
		                 NQ_EBADDATA);
		assert_non_null(strstr(msg, "damaged"));
		assert_non_null(strstr(msg, bad));
		snprintf(side, sizeof(side), "%s-wal", bad);
		unlink(side);
		snprintf(side, sizeof(side), "%s-shm", bad);
		unlink(side);
	}
	/* the original was only read */
	assert_int_equal(store_verify(f->path, msg, sizeof(msg)), 0);
	assert_int_equal(store_open(&f->s, f->path, msg, sizeof(msg)), 0);
}

/* ids never go backwards: raised past a spool dir, never lowered */
static void
test_raise_next_id(void **state)
{
	struct fx *f = *state;

	int64_t max = -1;

	assert_int_equal(store_max_id(f->s, &max), 0);
	assert_int_equal(max, 0);
	/* a new store whose spool holds dirs up to 150 */
	assert_int_equal(store_raise_next_id(f->s, 151), 0);
	assert_int_equal(store_max_id(f->s, &max), 0);
	assert_int_equal(max, 0); /* the sequence moved, no row yet */
	assert_int_equal(put(f->s, 1000, 0), 151);
	assert_int_equal(put(f->s, 1000, 0), 152);
	/* lower: no effect */
	assert_int_equal(store_raise_next_id(f->s, 10), 0);
	assert_int_equal(put(f->s, 1000, 0), 153);
	assert_int_equal(store_raise_next_id(f->s, 153), 0);
	assert_int_equal(put(f->s, 1000, 0), 154);
	assert_int_equal(store_raise_next_id(f->s, 1000), 0);
	assert_int_equal(put(f->s, 1000, 0), 1000);
	assert_int_equal(store_max_id(f->s, &max), 0);
	assert_int_equal(max, 1000);
}

/* --recover's rows: their own id and state; a taken id is refused */
static void
test_restore_job(void **state)
{
	struct fx *f = *state;
	struct job_row r, g;

	basic_row(&r, 1234, NULL);
	r.id = 7;
	r.state = JOB_FAILED;
	r.error_code = NQ_EIO;
	snprintf(r.error, sizeof(r.error), "input file in/data.npy damaged");
	r.finished_us = 1700000000000000;
	r.est_host_bytes = 99;
	assert_int_equal(store_restore_job(f->s, &r), 0);
	assert_int_equal(store_get_job(f->s, 7, &g), 0);
	assert_int_equal(g.state, JOB_FAILED);
	assert_int_equal(g.owner, 1234);
	assert_int_equal(g.error_code, NQ_EIO);
	assert_string_equal(g.error, "input file in/data.npy damaged");
	assert_int_equal(g.est_host_bytes, 99);
	assert_true(g.finished_us == 1700000000000000);
	assert_int_not_equal(store_restore_job(f->s, &r), 0); /* taken */
	assert_int_equal(put(f->s, 1000, 0), 8);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_state_names),
	        cmocka_unit_test_setup_teardown(test_open_sets_wal_and_schema,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_reopen_persists, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_roundtrip_every_field,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_get_missing, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_idempotency, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_transitions, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_final_from_queued, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_missing_job_errors, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_long_error_truncated,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_recover, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_backend_ids, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_recover_cancel_requested,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_retention_selection, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_migrate_v1, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_owner_usage, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_list_filters, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_list_reentrant, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_many_inserts, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_not_a_database, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_newer_schema_refused,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_locked_database, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_crash_exit_without_close,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_crash_kill9, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_db_private, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_verify_damaged, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_raise_next_id, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_restore_job, setup,
	                                        teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
