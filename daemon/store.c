/*
 * store.c — the durable job table on SQLite.
 *
 * WAL + synchronous=NORMAL: a commit survives the daemon being killed at
 * any point (the WAL is written before COMMIT returns); only a power loss
 * can drop the last few commits.  Every write runs in BEGIN IMMEDIATE so a
 * second process on the same file waits (busy_timeout) instead of failing
 * half-way through.  Statements are prepared once and cached; all values are
 * bound, never spliced into SQL text.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "diskspace.h"
#include "nq_clock.h"
#include "nq_error.h"

#define STORE_BUSY_MS 5000

/* Schema history: migrations[v] takes a database from user_version v to
 * v + 1.  Append new steps (ALTER TABLE jobs ADD COLUMN ...); never edit a
 * step that has shipped. */
static const char *const migrations[] = {
        /* 0 -> 1 */
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
        "CREATE UNIQUE INDEX jobs_owner_idem ON jobs(owner, idem)"
        " WHERE idem != '';"
        "CREATE INDEX jobs_state_id ON jobs(state, id);"
        "CREATE INDEX jobs_owner_state ON jobs(owner, state);",
        /* 1 -> 2: retention; the row stays (idempotency keys, history) */
        "ALTER TABLE jobs ADD COLUMN purged_us INTEGER NOT NULL DEFAULT 0;",
        /* 2 -> 3: quotas; what the job's spool dir holds (rows from before
         * count 0 until they end) */
        "ALTER TABLE jobs ADD COLUMN spool_bytes INTEGER NOT NULL DEFAULT 0;",
        /* 3 -> 4: executor = slurm (executor.h); the Slurm job id of the
         * running attempt, and why Slurm keeps it pending */
        "ALTER TABLE jobs ADD COLUMN backend_job_id TEXT NOT NULL DEFAULT '';"
        "ALTER TABLE jobs ADD COLUMN pending_reason TEXT NOT NULL"
        " DEFAULT '';",
};
#define STORE_SCHEMA_VERSION \
	((int) (sizeof(migrations) / sizeof(migrations[0])))

#define COLS                                                               \
	"id, type, state, owner, priority, device_req, device, attempts,"  \
	" progress, stage, submitted_us, started_us, finished_us,"         \
	" est_host_bytes, est_device_bytes, est_flops, error_code, error," \
	" idem, cancel_requested, purged_us, spool_bytes, backend_job_id," \
	" pending_reason"

enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_INSERT,
	ST_FIND_IDEM,
	ST_GET,
	ST_STATE,
	ST_RUN,
	ST_FINAL,
	ST_REQUEUE,
	ST_PROGRESS,
	ST_CANCEL,
	ST_RECOVER_FAIL,
	ST_RECOVER_REQUEUE,
	ST_RECOVER_CANCEL,
	ST_EXPIRED,
	ST_PURGED,
	ST_SET_BYTES,
	ST_USAGE,
	ST_OTHERS,
	ST_SET_BACKEND,
	ST_SET_PENDING,
	/* store_list: base + (state filter ? 1 : 0) + (owner filter ? 2 : 0)
	 * + (oldest first ? 4 : 0) */
	ST_LIST,
	ST_COUNT = ST_LIST + 8
};

static const char *const fixed_sql[ST_LIST] = {
        [ST_BEGIN] = "BEGIN IMMEDIATE",
        [ST_COMMIT] = "COMMIT",
        [ST_ROLLBACK] = "ROLLBACK",
        [ST_INSERT] = "INSERT INTO jobs (type, state, owner, priority,"
                      " device_req, device, attempts, progress, stage,"
                      " submitted_us, started_us, finished_us, est_host_bytes,"
                      " est_device_bytes, est_flops, error_code, error, idem,"
                      " cancel_requested, spool_bytes) VALUES (?1, 0, ?2, ?3,"
                      " ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
                      " ?16, ?17, ?18, ?19)",
        [ST_FIND_IDEM] = "SELECT id FROM jobs WHERE owner = ?1 AND idem = ?2"
                         " AND idem != ''",
        [ST_GET] = "SELECT " COLS " FROM jobs WHERE id = ?1",
        [ST_STATE] = "SELECT state FROM jobs WHERE id = ?1",
        [ST_RUN] = "UPDATE jobs SET state = 1, device = ?2, started_us = ?3,"
                   " finished_us = 0, attempts = attempts + 1,"
                   " backend_job_id = '', pending_reason = ''"
                   " WHERE id = ?1 AND state = 0",
        /* DONE needs a run behind it; FAILED/CANCELED may end a queued
         * job (cancel before start, unrunnable after a restart). */
        [ST_FINAL] =
                "UPDATE jobs SET state = ?2, error_code = ?3, error = ?4,"
                " finished_us = ?5, pending_reason = '',"
                " progress = CASE WHEN ?2 = 2 THEN 1.0 ELSE progress END"
                " WHERE id = ?1 AND (state = 1 OR (state = 0 AND ?2 != 2))",
        [ST_REQUEUE] = "UPDATE jobs SET state = 0, stage = ?2,"
                       " backend_job_id = '', pending_reason = ''"
                       " WHERE id = ?1 AND state = 1",
        [ST_PROGRESS] = "UPDATE jobs SET progress = ?2,"
                        " stage = coalesce(?3, stage)"
                        " WHERE id = ?1 AND state = 1",
        [ST_CANCEL] = "UPDATE jobs SET cancel_requested = 1"
                      " WHERE id = ?1 AND state IN (0, 1)",
        [ST_RECOVER_FAIL] = "UPDATE jobs SET state = 3, error_code = ?2,"
                            " error = 'worker died ' || attempts ||"
                            " ' times (max_attempts ' || ?1 || ')',"
                            " finished_us = ?3"
                            " WHERE state = 1 AND attempts >= ?1"
                            " AND backend_job_id = ''",
        [ST_RECOVER_REQUEUE] = "UPDATE jobs SET state = 0,"
                               " stage = 'requeued: daemon restarted'"
                               " WHERE state = 1 AND backend_job_id = ''",
        /* the user asked for it to stop: never run it again */
        [ST_RECOVER_CANCEL] = "UPDATE jobs SET state = 4, error_code = ?1,"
                              " error = 'canceled (the daemon stopped"
                              " before the job did)', finished_us = ?2"
                              " WHERE state IN (0, 1)"
                              " AND cancel_requested != 0"
                              " AND backend_job_id = ''",
        [ST_EXPIRED] = "SELECT " COLS " FROM jobs WHERE state IN (2, 3, 4)"
                       " AND purged_us = 0 AND finished_us > 0"
                       " AND finished_us < ?1 ORDER BY finished_us, id"
                       " LIMIT ?2",
        [ST_PURGED] = "UPDATE jobs SET purged_us = ?2"
                      " WHERE id = ?1 AND state IN (2, 3, 4)",
        [ST_SET_BYTES] = "UPDATE jobs SET spool_bytes = ?2 WHERE id = ?1",
        /* purged jobs hold nothing in the spool */
        [ST_USAGE] = "SELECT coalesce(sum(state = 0), 0),"
                     " coalesce(sum(state = 1), 0),"
                     " coalesce(sum(CASE WHEN purged_us = 0"
                     " THEN spool_bytes ELSE 0 END), 0)"
                     " FROM jobs WHERE owner = ?1",
        [ST_OTHERS] = "SELECT coalesce(sum(state = 0), 0),"
                      " coalesce(sum(state = 1), 0)"
                      " FROM jobs WHERE state IN (0, 1) AND owner != ?1",
        [ST_SET_BACKEND] = "UPDATE jobs SET backend_job_id = ?2"
                           " WHERE id = ?1 AND state = 1",
        [ST_SET_PENDING] = "UPDATE jobs SET pending_reason = ?2"
                           " WHERE id = ?1 AND state = 1",
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	char msg[256];
};

const char *
job_state_name(enum job_state s)
{
	switch (s) {
	case JOB_QUEUED:
		return "QUEUED";
	case JOB_RUNNING:
		return "RUNNING";
	case JOB_DONE:
		return "DONE";
	case JOB_FAILED:
		return "FAILED";
	case JOB_CANCELED:
		return "CANCELED";
	}
	return "UNKNOWN";
}

int
job_state_parse(const char *s, enum job_state *out)
{
	if (s == NULL)
		return -1;
	for (int i = JOB_QUEUED; i <= JOB_CANCELED; i++) {
		if (strcasecmp(s, job_state_name((enum job_state) i)) == 0) {
			*out = (enum job_state) i;
			return 0;
		}
	}
	return -1;
}

int
job_state_final(enum job_state s)
{
	return s == JOB_DONE || s == JOB_FAILED || s == JOB_CANCELED;
}

const char *
store_errmsg(const struct store *s)
{
	return s != NULL ? s->msg : "no store";
}

/* Length of s cut to fit a buffer of cap bytes (with its NUL) without
 * splitting a UTF-8 sequence. */
static size_t
fit_len(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);

	if (n < cap)
		return n;
	n = cap - 1;
	while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

/* Record sqlite's view of a failure and map it to an nq_err. */
static int
fail_sql(struct store *s, int rc, const char *what)
{
	char note[400] = "";
	const char *db =
	        s->db != NULL ? sqlite3_db_filename(s->db, "main") : NULL;

	/* a full disk is named as such, with the filesystem's free bytes */
	if ((rc & 0xff) == SQLITE_FULL && db != NULL && db[0] != '\0')
		diskspace_note(db, note, sizeof(note));
	snprintf(s->msg, sizeof(s->msg), "%s: %s%s", what,
	         s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc),
	         note);
	if ((rc & 0xff) == SQLITE_NOMEM)
		return NQ_ENOMEM;
	if ((rc & 0xff) == SQLITE_FULL)
		return NQ_ENOSPACE;
	return NQ_EIO;
}

static sqlite3_stmt *
stmt_sql(struct store *s, int k, const char *sql)
{
	if (s->st[k] == NULL) {
		int rc = sqlite3_prepare_v3(s->db, sql, -1,
		                            SQLITE_PREPARE_PERSISTENT,
		                            &s->st[k], NULL);
		if (rc != SQLITE_OK) {
			fail_sql(s, rc, "prepare");
			s->st[k] = NULL;
			return NULL;
		}
	}
	sqlite3_reset(s->st[k]);
	sqlite3_clear_bindings(s->st[k]);
	return s->st[k];
}

static sqlite3_stmt *
stmt(struct store *s, int k)
{
	return stmt_sql(s, k, fixed_sql[k]);
}

/* Run a cached statement that returns no rows. */
static int
exec_stmt(struct store *s, sqlite3_stmt *q, const char *what)
{
	int rc = sqlite3_step(q);

	if (rc != SQLITE_DONE) {
		int err = fail_sql(s, rc, what);
		sqlite3_reset(q);
		return err;
	}
	sqlite3_reset(q);
	return 0;
}

static int
begin(struct store *s)
{
	sqlite3_stmt *q = stmt(s, ST_BEGIN);

	if (q == NULL)
		return NQ_EIO;
	return exec_stmt(s, q, "begin");
}

static int
commit(struct store *s)
{
	sqlite3_stmt *q = stmt(s, ST_COMMIT);

	if (q == NULL)
		return NQ_EIO;
	return exec_stmt(s, q, "commit");
}

/* Best effort: the error that made us roll back is the one reported. */
static void
rollback(struct store *s)
{
	if (sqlite3_get_autocommit(s->db))
		return;
	sqlite3_stmt *q = stmt(s, ST_ROLLBACK);
	if (q != NULL) {
		sqlite3_step(q);
		sqlite3_reset(q);
	}
}

static void
bind_str(sqlite3_stmt *q, int i, const char *v, size_t cap)
{
	if (v == NULL)
		v = "";
	sqlite3_bind_text(q, i, v, (int) fit_len(v, cap), SQLITE_STATIC);
}

static void
col_str(sqlite3_stmt *q, int i, char *dst, size_t cap)
{
	const unsigned char *v = sqlite3_column_text(q, i);
	size_t n;

	if (v == NULL) {
		dst[0] = '\0';
		return;
	}
	n = fit_len((const char *) v, cap);
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static void
read_row(sqlite3_stmt *q, struct job_row *r)
{
	memset(r, 0, sizeof(*r));
	r->id = sqlite3_column_int64(q, 0);
	col_str(q, 1, r->type, sizeof(r->type));
	r->state = (enum job_state) sqlite3_column_int(q, 2);
	r->owner = (uint32_t) sqlite3_column_int64(q, 3);
	r->priority = sqlite3_column_int(q, 4);
	col_str(q, 5, r->device_req, sizeof(r->device_req));
	col_str(q, 6, r->device, sizeof(r->device));
	r->attempts = sqlite3_column_int(q, 7);
	r->progress = sqlite3_column_double(q, 8);
	col_str(q, 9, r->stage, sizeof(r->stage));
	r->submitted_us = sqlite3_column_int64(q, 10);
	r->started_us = sqlite3_column_int64(q, 11);
	r->finished_us = sqlite3_column_int64(q, 12);
	r->est_host_bytes = (uint64_t) sqlite3_column_int64(q, 13);
	r->est_device_bytes = (uint64_t) sqlite3_column_int64(q, 14);
	r->est_flops = sqlite3_column_double(q, 15);
	r->error_code = sqlite3_column_int(q, 16);
	col_str(q, 17, r->error, sizeof(r->error));
	col_str(q, 18, r->idem, sizeof(r->idem));
	r->cancel_requested = sqlite3_column_int(q, 19);
	r->purged_us = sqlite3_column_int64(q, 20);
	r->spool_bytes = (uint64_t) sqlite3_column_int64(q, 21);
	col_str(q, 22, r->backend_job_id, sizeof(r->backend_job_id));
	col_str(q, 23, r->pending_reason, sizeof(r->pending_reason));
}

static int
pragma_text(struct store *s, const char *sql, char *out, size_t cap)
{
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &q, NULL);

	if (rc != SQLITE_OK)
		return fail_sql(s, rc, "open");
	rc = sqlite3_step(q);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		int err = fail_sql(s, rc, "open");
		sqlite3_finalize(q);
		return err;
	}
	out[0] = '\0';
	if (rc == SQLITE_ROW && sqlite3_column_text(q, 0) != NULL)
		snprintf(out, cap, "%s", sqlite3_column_text(q, 0));
	sqlite3_finalize(q);
	return 0;
}

static int
exec_sql(struct store *s, const char *sql, const char *what)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return fail_sql(s, rc, what);
	return 0;
}

/* Bring the schema up to STORE_SCHEMA_VERSION, one transaction per step so
 * a crash mid-way leaves a consistent older version behind. */
static int
migrate(struct store *s)
{
	char buf[32], sql[64];
	int ver, err;

	if ((err = pragma_text(s, "PRAGMA user_version", buf, sizeof(buf))))
		return err;
	/* SQLite prints user_version, an int */
	// NOLINTNEXTLINE(cert-err34-c)
	ver = atoi(buf);
	if (ver > STORE_SCHEMA_VERSION) {
		snprintf(s->msg, sizeof(s->msg),
		         "database schema version %d is newer than this "
		         "neuroqd understands (%d)",
		         ver, STORE_SCHEMA_VERSION);
		return NQ_EIO;
	}
	for (; ver < STORE_SCHEMA_VERSION; ver++) {
		if ((err = exec_sql(s, "BEGIN IMMEDIATE", "migrate")))
			return err;
		/* The version is an integer we own; PRAGMA cannot bind. */
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", ver + 1);
		if ((err = exec_sql(s, migrations[ver], "migrate")) ||
		    (err = exec_sql(s, sql, "migrate")) ||
		    (err = exec_sql(s, "COMMIT", "migrate"))) {
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			return err;
		}
	}
	return 0;
}

/* The database and its -wal/-shm: the service user's alone (it holds every
 * job's owner, paths and idempotency keys). */
#define STORE_FILE_MODE 0600

/* path, path-wal and path-shm made STORE_FILE_MODE when they exist (an
 * older daemon left them 0644), and with create (before SQLite opens it)
 * the database created so when new: SQLite gives the -wal/-shm it creates
 * the database's mode. 0 or errno. */
static int
store_private(const char *path, int create)
{
	static const char *const sfx[] = {"", "-wal", "-shm"};
	char p[4096];

	/* only before SQLite opens the file: a close() of any fd of it drops
	 * every POSIX lock this process holds on it, SQLite's SHARED lock
	 * too, and another process's connection would then take the file as
	 * unused and delete the WAL under our feet (later commits lost) */
	if (create) {
		int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
		              STORE_FILE_MODE);
		if (fd < 0)
			return errno;
		close(fd);
	}
	for (size_t i = 0; i < 3; i++) {
		struct stat st;
		if ((size_t) snprintf(p, sizeof(p), "%s%s", path, sfx[i]) >=
		    sizeof(p))
			return ENAMETOOLONG;
		if (lstat(p, &st) != 0) {
			if (errno == ENOENT)
				continue;
			return errno;
		}
		if ((st.st_mode & 07777) != STORE_FILE_MODE &&
		    chmod(p, STORE_FILE_MODE) != 0)
			return errno;
	}
	return 0;
}

int
store_open(struct store **out, const char *path, char *msg, size_t msglen)
{
	struct store *s;
	char mode[16];
	int rc, err;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		if (msg != NULL && msglen > 0)
			snprintf(msg, msglen, "out of memory");
		return NQ_ENOMEM;
	}
	if ((err = store_private(path, 1)) != 0) {
		snprintf(s->msg, sizeof(s->msg), "cannot make it private: %s",
		         strerror(err));
		err = NQ_EIO;
		goto fail;
	}
	rc = sqlite3_open_v2(path, &s->db,
	                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	                             SQLITE_OPEN_NOMUTEX,
	                     NULL);
	if (rc != SQLITE_OK) {
		err = fail_sql(s, rc, "open");
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, STORE_BUSY_MS);
	/* The first statement that reads the file: a file that is not a
	 * database fails here with SQLITE_NOTADB. */
	if ((err = pragma_text(s, "PRAGMA journal_mode = WAL", mode,
	                       sizeof(mode))))
		goto fail;
	if (strcasecmp(mode, "wal") != 0) {
		snprintf(s->msg, sizeof(s->msg),
		         "open: cannot use WAL journal mode (got '%s')", mode);
		err = NQ_EIO;
		goto fail;
	}
	if ((err = exec_sql(s,
	                    "PRAGMA synchronous = NORMAL;"
	                    " PRAGMA foreign_keys = ON;",
	                    "open")))
		goto fail;
	if ((err = migrate(s)))
		goto fail;
	/* again, now that WAL made its files: checked, not assumed */
	if ((err = store_private(path, 0)) != 0) {
		snprintf(s->msg, sizeof(s->msg), "cannot make it private: %s",
		         strerror(err));
		err = NQ_EIO;
		goto fail;
	}
	s->msg[0] = '\0';
	*out = s;
	return 0;
fail:
	if (msg != NULL && msglen > 0)
		snprintf(msg, msglen, "%s: %s", path, s->msg);
	store_close(s);
	return err;
}

int
store_verify(const char *path, char *msg, size_t msglen)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	struct stat st;
	char first[256] = "";
	int rc, n = 0, err = 0, ver = -1, tables = -1;

	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return 0; /* a new store */
		snprintf(msg, msglen, "%s: %s", path, strerror(errno));
		return NQ_EIO;
	}
	rc = sqlite3_open_v2(path, &db,
	                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(msg, msglen, "%s: cannot open: %s", path,
		         db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close_v2(db);
		return NQ_EIO;
	}
	sqlite3_busy_timeout(db, STORE_BUSY_MS);
	/* quick_check: every page, b-tree and record well-formed (not the
	 * indexes' contents: O(N), not O(N log N)); the first problem kept */
	rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(20)", -1, &q, NULL);
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		if ((rc = sqlite3_step(q)) != SQLITE_ROW)
			break;
		const unsigned char *t = sqlite3_column_text(q, 0);
		if (t != NULL && strcmp((const char *) t, "ok") != 0 &&
		    n++ == 0)
			snprintf(first, sizeof(first), "%s", t);
	}
	if (rc != SQLITE_DONE && rc != SQLITE_OK) {
		int base = rc & 0xff;
		snprintf(first, sizeof(first), "%s", sqlite3_errmsg(db));
		err = (base == SQLITE_CORRUPT || base == SQLITE_NOTADB)
		              ? NQ_EBADDATA
		              : NQ_EIO;
	} else if (n > 0) {
		err = NQ_EBADDATA;
	}
	sqlite3_finalize(q);
	q = NULL;
	if (err == 0) {
		/* the schema version names what must be there */
		if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q,
		                       NULL) == SQLITE_OK &&
		    sqlite3_step(q) == SQLITE_ROW)
			ver = sqlite3_column_int(q, 0);
		sqlite3_finalize(q);
		q = NULL;
		if (sqlite3_prepare_v2(
		            db,
		            "SELECT count(*) FROM sqlite_master"
		            " WHERE type = 'table' AND name = 'jobs'",
		            -1, &q, NULL) == SQLITE_OK &&
		    sqlite3_step(q) == SQLITE_ROW)
			tables = sqlite3_column_int(q, 0);
		sqlite3_finalize(q);
		q = NULL;
		if (ver < 0 || tables < 0) {
			snprintf(first, sizeof(first), "%s",
			         sqlite3_errmsg(db));
			err = NQ_EBADDATA;
		} else if ((ver > 0) != (tables == 1)) {
			snprintf(first, sizeof(first),
			         "schema version %d but %s jobs table", ver,
			         tables == 1 ? "a" : "no");
			err = NQ_EBADDATA;
		}
	}
	sqlite3_close_v2(db);
	if (err != 0)
		snprintf(msg, msglen, "%s: %s%s", path,
		         err == NQ_EBADDATA ? "damaged: " : "", first);
	return err;
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	/* close_v2: never leaves the handle open on a stray statement */
	sqlite3_close_v2(s->db);
	free(s);
}

/* After an UPDATE that matched nothing: was the job missing or in the
 * wrong state? */
static int
why_unchanged(struct store *s, int64_t id)
{
	sqlite3_stmt *q = stmt(s, ST_STATE);
	int rc;

	if (q == NULL)
		return NQ_EIO;
	sqlite3_bind_int64(q, 1, id);
	rc = sqlite3_step(q);
	sqlite3_reset(q);
	if (rc == SQLITE_ROW) {
		snprintf(s->msg, sizeof(s->msg), "job %lld: wrong state",
		         (long long) id);
		return NQ_ESTATE;
	}
	if (rc == SQLITE_DONE) {
		snprintf(s->msg, sizeof(s->msg), "job %lld: no such job",
		         (long long) id);
		return NQ_ENOJOB;
	}
	return fail_sql(s, rc, "state");
}

/* Run an UPDATE of one job in its own write transaction; a job that was
 * not updated is reported as missing or in the wrong state. */
static int
update_one(struct store *s, sqlite3_stmt *q, int64_t id, const char *what)
{
	int err;

	if ((err = begin(s))) {
		sqlite3_reset(q);
		return err;
	}
	if ((err = exec_stmt(s, q, what)))
		goto fail;
	if (sqlite3_changes(s->db) == 0) {
		err = why_unchanged(s, id);
		goto fail;
	}
	if ((err = commit(s)))
		goto fail;
	return 0;
fail:
	rollback(s);
	return err;
}

int
store_put_job(struct store *s, struct job_row *row, int *existing)
{
	sqlite3_stmt *q;
	int rc, err;
	int64_t now = nq_wall_us();

	if (existing != NULL)
		*existing = 0;
	if ((err = begin(s)))
		return err;
	if (row->idem[0] != '\0') {
		if ((q = stmt(s, ST_FIND_IDEM)) == NULL) {
			err = NQ_EIO;
			goto fail;
		}
		sqlite3_bind_int64(q, 1, row->owner);
		bind_str(q, 2, row->idem, sizeof(row->idem));
		rc = sqlite3_step(q);
		if (rc == SQLITE_ROW) {
			row->id = sqlite3_column_int64(q, 0);
			sqlite3_reset(q);
			if (existing != NULL)
				*existing = 1;
			/* nothing written: ending the transaction cannot
			 * lose anything */
			rollback(s);
			return 0;
		}
		sqlite3_reset(q);
		if (rc != SQLITE_DONE) {
			err = fail_sql(s, rc, "put");
			goto fail;
		}
	}
	if ((q = stmt(s, ST_INSERT)) == NULL) {
		err = NQ_EIO;
		goto fail;
	}
	bind_str(q, 1, row->type, sizeof(row->type));
	sqlite3_bind_int64(q, 2, row->owner);
	sqlite3_bind_int(q, 3, row->priority);
	bind_str(q, 4, row->device_req, sizeof(row->device_req));
	bind_str(q, 5, row->device, sizeof(row->device));
	sqlite3_bind_int(q, 6, row->attempts);
	sqlite3_bind_double(q, 7, isfinite(row->progress) ? row->progress : 0);
	bind_str(q, 8, row->stage, sizeof(row->stage));
	sqlite3_bind_int64(q, 9, now);
	sqlite3_bind_int64(q, 10, row->started_us);
	sqlite3_bind_int64(q, 11, row->finished_us);
	sqlite3_bind_int64(q, 12, (int64_t) row->est_host_bytes);
	sqlite3_bind_int64(q, 13, (int64_t) row->est_device_bytes);
	sqlite3_bind_double(q, 14,
	                    isfinite(row->est_flops) ? row->est_flops : 0);
	sqlite3_bind_int(q, 15, row->error_code);
	bind_str(q, 16, row->error, sizeof(row->error));
	bind_str(q, 17, row->idem, sizeof(row->idem));
	sqlite3_bind_int(q, 18, row->cancel_requested);
	sqlite3_bind_int64(q, 19, (int64_t) row->spool_bytes);
	if ((err = exec_stmt(s, q, "put")))
		goto fail;
	row->id = sqlite3_last_insert_rowid(s->db);
	if ((err = commit(s)))
		goto fail;
	row->state = JOB_QUEUED;
	row->submitted_us = now;
	return 0;
fail:
	rollback(s);
	return err;
}

int
store_get_job(struct store *s, int64_t id, struct job_row *row)
{
	sqlite3_stmt *q = stmt(s, ST_GET);
	int rc;

	if (q == NULL)
		return NQ_EIO;
	sqlite3_bind_int64(q, 1, id);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		read_row(q, row);
		sqlite3_reset(q);
		return 0;
	}
	sqlite3_reset(q);
	if (rc == SQLITE_DONE) {
		snprintf(s->msg, sizeof(s->msg), "job %lld: no such job",
		         (long long) id);
		return NQ_ENOJOB;
	}
	return fail_sql(s, rc, "get");
}

int
store_mark_running(struct store *s, int64_t id, const char *device)
{
	struct job_row r;
	sqlite3_stmt *q = stmt(s, ST_RUN);

	if (q == NULL)
		return NQ_EIO;
	sqlite3_bind_int64(q, 1, id);
	bind_str(q, 2, device, sizeof(r.device));
	sqlite3_bind_int64(q, 3, nq_wall_us());
	return update_one(s, q, id, "mark running");
}

int
store_mark_final(struct store *s, int64_t id, enum job_state st, int error_code,
                 const char *error)
{
	struct job_row r;
	sqlite3_stmt *q;

	if (!job_state_final(st)) {
		snprintf(s->msg, sizeof(s->msg),
		         "job %lld: %s is not a final state", (long long) id,
		         job_state_name(st));
		return NQ_EBADPARAM;
	}
	if ((q = stmt(s, ST_FINAL)) == NULL)
		return NQ_EIO;
	sqlite3_bind_int64(q, 1, id);
	sqlite3_bind_int(q, 2, (int) st);
	sqlite3_bind_int(q, 3, error_code);
	bind_str(q, 4, error, sizeof(r.error));
	sqlite3_bind_int64(q, 5, nq_wall_us());
	return update_one(s, q, id, "mark final");
}

int
store_requeue(struct store *s, int64_t id, const char *why)
{
	struct job_row r;
	char stage[sizeof(r.stage)];
	sqlite3_stmt *q = stmt(s, ST_REQUEUE);

	if (q == NULL)
		return NQ_EIO;
	if (why != NULL && why[0] != '\0')
		snprintf(stage, sizeof(stage), "requeued: %s", why);
	else
		snprintf(stage, sizeof(stage), "requeued");
	sqlite3_bind_int64(q, 1, id);
	bind_str(q, 2, stage, sizeof(stage));
	return update_one(s, q, id, "requeue");
}

int
store_set_progress(struct store *s, int64_t id, double progress,
                   const char *stage)
{
	struct job_row r;
	sqlite3_stmt *q = stmt(s, ST_PROGRESS);

	if (q == NULL)
		return NQ_EIO;
	if (!(progress >= 0)) /* NaN too */
		progress = 0;
	if (progress > 1)
		progress = 1;
	sqlite3_bind_int64(q, 1, id);
	sqlite3_bind_double(q, 2, progress);
	if (stage != NULL)
		bind_str(q, 3, stage, sizeof(r.stage));
	return update_one(s, q, id, "progress");
}

int
store_set_backend(struct store *s, int64_t id, const char *backend_job_id)
{
	struct job_row r;
	sqlite3_stmt *q = stmt(s, ST_SET_BACKEND);

	if (q == NULL)
		return NQ_EIO;
	sqlite3_bind_int64(q, 1, id);
	bind_str(q, 2, backend_job_id, sizeof(r.backend_job_id));
	return update_one(s, q, id, "backend id");
}

int
store_set_pending_reason(struct store *s, int64_t id, const char *reason)
{
	struct job_row r;
	sqlite3_stmt *q = stmt(s, ST_SET_PENDING);

	if (q == NULL)
		return NQ_EIO;
	sqlite3_bind_int64(q, 1, id);
	bind_str(q, 2, reason, sizeof(r.pending_reason));
	return update_one(s, q, id, "pending reason");
}

int
store_set_cancel(struct store *s, int64_t id)
{
	sqlite3_stmt *q = stmt(s, ST_CANCEL);

	if (q == NULL)
		return NQ_EIO;
	sqlite3_bind_int64(q, 1, id);
	return update_one(s, q, id, "cancel");
}

int
store_list(struct store *s, const struct store_filter *f,
           int (*cb)(void *arg, const struct job_row *row), void *arg)
{
	static const char *const where[4] = {
	        "",
	        " WHERE state = ?1",
	        " WHERE owner = ?2",
	        " WHERE state = ?1 AND owner = ?2",
	};
	char sql[512];
	struct job_row row;
	sqlite3_stmt *q, *fresh = NULL;
	int k = (f->state >= 0 ? 1 : 0) | (f->any_owner ? 0 : 2) |
	        (f->oldest_first ? 4 : 0);
	int rc, err = 0;

	/* Only constant fragments go into the text; values are bound. */
	rc = snprintf(sql, sizeof(sql),
	              "SELECT " COLS " FROM jobs%s ORDER BY id %s LIMIT ?3",
	              where[k & 3], (k & 4) ? "ASC" : "DESC");
	if (rc < 0 || (size_t) rc >= sizeof(sql)) {
		snprintf(s->msg, sizeof(s->msg), "list: query too long");
		return NQ_EINTERNAL;
	}
	if (s->st[ST_LIST + k] != NULL &&
	    sqlite3_stmt_busy(s->st[ST_LIST + k])) {
		/* a callback listing again with the same shape */
		rc = sqlite3_prepare_v2(s->db, sql, -1, &fresh, NULL);
		if (rc != SQLITE_OK)
			return fail_sql(s, rc, "list");
		q = fresh;
	} else if ((q = stmt_sql(s, ST_LIST + k, sql)) == NULL) {
		return NQ_EIO;
	}
	if (f->state >= 0)
		sqlite3_bind_int(q, 1, f->state);
	if (!f->any_owner)
		sqlite3_bind_int64(q, 2, f->owner);
	sqlite3_bind_int64(q, 3, f->limit > 0 ? f->limit : -1);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		read_row(q, &row);
		if (cb(arg, &row) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		err = fail_sql(s, rc, "list");
	sqlite3_reset(q);
	sqlite3_finalize(fresh);
	return err;
}

int
store_recover(struct store *s, int max_attempts, int *requeued, int *failed)
{
	return store_recover2(s, max_attempts, requeued, failed, NULL);
}

int
store_recover2(struct store *s, int max_attempts, int *requeued, int *failed,
               int *canceled)
{
	sqlite3_stmt *q;
	int err, nfail, nreq, ncan;

	if (requeued != NULL)
		*requeued = 0;
	if (failed != NULL)
		*failed = 0;
	if (canceled != NULL)
		*canceled = 0;
	if (max_attempts < 1) {
		snprintf(s->msg, sizeof(s->msg),
		         "recover: max_attempts must be >= 1 (got %d)",
		         max_attempts);
		return NQ_EBADPARAM;
	}
	if ((err = begin(s)))
		return err;
	/* cancels first: a canceled job is neither retried nor failed */
	if ((q = stmt(s, ST_RECOVER_CANCEL)) == NULL) {
		err = NQ_EIO;
		goto fail;
	}
	sqlite3_bind_int(q, 1, NQ_ECANCELED);
	sqlite3_bind_int64(q, 2, nq_wall_us());
	if ((err = exec_stmt(s, q, "recover")))
		goto fail;
	ncan = sqlite3_changes(s->db);
	if ((q = stmt(s, ST_RECOVER_FAIL)) == NULL) {
		err = NQ_EIO;
		goto fail;
	}
	sqlite3_bind_int(q, 1, max_attempts);
	sqlite3_bind_int(q, 2, NQ_EFAILED);
	sqlite3_bind_int64(q, 3, nq_wall_us());
	if ((err = exec_stmt(s, q, "recover")))
		goto fail;
	nfail = sqlite3_changes(s->db);
	if ((q = stmt(s, ST_RECOVER_REQUEUE)) == NULL) {
		err = NQ_EIO;
		goto fail;
	}
	if ((err = exec_stmt(s, q, "recover")))
		goto fail;
	nreq = sqlite3_changes(s->db);
	if ((err = commit(s)))
		goto fail;
	if (requeued != NULL)
		*requeued = nreq;
	if (failed != NULL)
		*failed = nfail;
	if (canceled != NULL)
		*canceled = ncan;
	return 0;
fail:
	rollback(s);
	return err;
}

int
store_list_expired(struct store *s, int64_t before_us, int64_t limit,
                   int (*cb)(void *arg, const struct job_row *row), void *arg)
{
	struct job_row row;
	sqlite3_stmt *q = stmt(s, ST_EXPIRED);
	int rc, err = 0;

	if (q == NULL)
		return NQ_EIO;
	sqlite3_bind_int64(q, 1, before_us);
	sqlite3_bind_int64(q, 2, limit > 0 ? limit : -1);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		read_row(q, &row);
		if (cb(arg, &row) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		err = fail_sql(s, rc, "expired");
	sqlite3_reset(q);
	return err;
}

int
store_mark_purged(struct store *s, int64_t id)
{
	sqlite3_stmt *q = stmt(s, ST_PURGED);

	if (q == NULL)
		return NQ_EIO;
	sqlite3_bind_int64(q, 1, id);
	sqlite3_bind_int64(q, 2, nq_wall_us());
	return update_one(s, q, id, "purged");
}

int
store_find_idem(struct store *s, uint32_t owner, const char *idem, int64_t *id)
{
	struct job_row r;
	sqlite3_stmt *q;
	int rc;

	if (idem == NULL || idem[0] == '\0')
		return NQ_ENOJOB;
	if ((q = stmt(s, ST_FIND_IDEM)) == NULL)
		return NQ_EIO;
	sqlite3_bind_int64(q, 1, owner);
	bind_str(q, 2, idem, sizeof(r.idem));
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(q, 0);
	sqlite3_reset(q);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return NQ_ENOJOB;
	return fail_sql(s, rc, "find idem");
}

int
store_set_spool_bytes(struct store *s, int64_t id, uint64_t bytes)
{
	sqlite3_stmt *q = stmt(s, ST_SET_BYTES);

	if (q == NULL)
		return NQ_EIO;
	sqlite3_bind_int64(q, 1, id);
	sqlite3_bind_int64(q, 2,
	                   bytes > INT64_MAX ? INT64_MAX : (int64_t) bytes);
	return update_one(s, q, id, "spool bytes");
}

/* One row of two or three integer sums. */
static int
sums(struct store *s, int k, uint32_t owner, int64_t *out, int n)
{
	sqlite3_stmt *q = stmt(s, k);
	int rc;

	if (q == NULL)
		return NQ_EIO;
	sqlite3_bind_int64(q, 1, owner);
	rc = sqlite3_step(q);
	for (int i = 0; i < n; i++)
		out[i] = rc == SQLITE_ROW ? sqlite3_column_int64(q, i) : 0;
	sqlite3_reset(q);
	if (rc != SQLITE_ROW)
		return fail_sql(s, rc, "usage");
	return 0;
}

int
store_owner_usage(struct store *s, uint32_t owner, struct store_usage *u)
{
	int64_t v[3];
	int err = sums(s, ST_USAGE, owner, v, 3);

	memset(u, 0, sizeof(*u));
	if (err != 0)
		return err;
	u->queued = v[0];
	u->running = v[1];
	u->spool_bytes = v[2] > 0 ? (uint64_t) v[2] : 0;
	return 0;
}

int
store_count_others(struct store *s, uint32_t owner, int64_t *queued,
                   int64_t *running)
{
	int64_t v[2];
	int err = sums(s, ST_OTHERS, owner, v, 2);

	*queued = err == 0 ? v[0] : 0;
	*running = err == 0 ? v[1] : 0;
	return err;
}

int
store_raise_next_id(struct store *s, int64_t next)
{
	sqlite3_stmt *q = NULL;
	int rc, err;

	if (next <= 1)
		return 0;
	if ((err = exec_sql(s, "BEGIN IMMEDIATE", "next id")))
		return err;
	/* AUTOINCREMENT hands out max(seq, max(id)) + 1: a jobs row in
	 * sqlite_sequence (made on the first insert) at least next - 1 */
	rc = sqlite3_prepare_v2(
	        s->db,
	        "INSERT INTO sqlite_sequence (name, seq)"
	        " SELECT 'jobs', ?1 WHERE NOT EXISTS"
	        " (SELECT 1 FROM sqlite_sequence WHERE name = 'jobs');",
	        -1, &q, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, next - 1);
		rc = sqlite3_step(q);
		sqlite3_finalize(q);
		q = NULL;
	}
	if (rc == SQLITE_DONE)
		rc = sqlite3_prepare_v2(s->db,
		                        "UPDATE sqlite_sequence SET seq = ?1"
		                        " WHERE name = 'jobs' AND seq < ?1",
		                        -1, &q, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, next - 1);
		rc = sqlite3_step(q);
		sqlite3_finalize(q);
	}
	if (rc != SQLITE_DONE) {
		err = fail_sql(s, rc, "next id");
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return err;
	}
	return exec_sql(s, "COMMIT", "next id");
}

int
store_restore_job(struct store *s, const struct job_row *row)
{
	sqlite3_stmt *q = NULL;
	int rc, err;

	rc = sqlite3_prepare_v2(
	        s->db,
	        "INSERT INTO jobs (id, type, state, owner, priority,"
	        " device_req, attempts, submitted_us, finished_us,"
	        " est_host_bytes, est_device_bytes, est_flops, error_code,"
	        " error, spool_bytes, progress, idem) VALUES (?1, ?2, ?3, ?4,"
	        " ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
	        -1, &q, NULL);
	if (rc != SQLITE_OK)
		return fail_sql(s, rc, "restore");
	sqlite3_bind_int64(q, 1, row->id);
	sqlite3_bind_text(q, 2, row->type, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(q, 3, (int) row->state);
	sqlite3_bind_int64(q, 4, (int64_t) row->owner);
	sqlite3_bind_int(q, 5, row->priority);
	sqlite3_bind_text(q, 6, row->device_req, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(q, 7, row->attempts);
	sqlite3_bind_int64(q, 8, row->submitted_us);
	sqlite3_bind_int64(q, 9, row->finished_us);
	sqlite3_bind_int64(q, 10, (int64_t) row->est_host_bytes);
	sqlite3_bind_int64(q, 11, (int64_t) row->est_device_bytes);
	sqlite3_bind_double(q, 12, row->est_flops);
	sqlite3_bind_int(q, 13, row->error_code);
	sqlite3_bind_text(q, 14, row->error, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 15, (int64_t) row->spool_bytes);
	sqlite3_bind_double(q, 16, row->state == JOB_DONE ? 1.0 : 0.0);
	bind_str(q, 17, row->idem, sizeof(row->idem));
	rc = sqlite3_step(q);
	err = rc == SQLITE_DONE ? 0 : fail_sql(s, rc, "restore");
	sqlite3_finalize(q);
	return err;
}

int
store_max_id(struct store *s, int64_t *max)
{
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(
	        s->db, "SELECT coalesce(max(id), 0) FROM jobs", -1, &q, NULL);

	if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		*max = sqlite3_column_int64(q, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(q);
	return rc == SQLITE_OK ? 0 : fail_sql(s, rc, "max id");
}
