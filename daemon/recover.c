/* recover.c — see recover.h. */
#include "recover.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "nq_error.h"
#include "quota.h"
#include "spool.h"
#include "store.h"

/* The database and its -wal/-shm into <state_dir>/damaged-<time>/. */
static int
recover_move_db(const char *state_dir, const char *db, FILE *out)
{
	static const char *const sfx[] = {"", "-wal", "-shm"};
	char dir[4096], from[4200], to[4300], stamp[32];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(dir, sizeof(dir), "%s/damaged-%s", state_dir, stamp);
	if (mkdir(dir, 0700) != 0) {
		fprintf(out, "neuroqd: cannot create %s: %s\n", dir,
		        strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < 3; i++) {
		snprintf(from, sizeof(from), "%s%s", db, sfx[i]);
		snprintf(to, sizeof(to), "%s/neuroq.db%s", dir, sfx[i]);
		if (rename(from, to) != 0 && errno != ENOENT) {
			fprintf(out, "neuroqd: cannot move %s to %s: %s\n",
			        from, to, strerror(errno));
			return 1;
		}
	}
	fprintf(out, "damaged database kept in %s\n", dir);
	return 0;
}

static int
recover_aside(const char *root, const char *jd, int64_t id, const char *why,
              FILE *out)
{
	char dir[4096], to[4200];

	snprintf(dir, sizeof(dir), "%s/recovered-aside", root);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		goto fail;
	snprintf(to, sizeof(to), "%s/%" PRId64, dir, id);
	if (rename(jd, to) != 0)
		goto fail;
	fprintf(out, "job %" PRId64 ": set aside to %s (%s)\n", id, to, why);
	return 0;
fail:
	fprintf(out, "job %" PRId64 ": cannot set aside (%s): %s\n", id, why,
	        strerror(errno));
	return -1;
}

static int64_t
recover_mtime_us(const char *jd, const char *name)
{
	char p[4200];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", jd, name);
	if (lstat(p, &st) != 0)
		return 0;
	return (int64_t) st.st_mtim.tv_sec * 1000000 +
	       st.st_mtim.tv_nsec / 1000;
}

/* One dir → a row. 0 restored, 1 set aside, -1 store error. */
static int
recover_one(struct store *s, const char *root, int64_t id,
            struct recover_counts *c, FILE *out)
{
	char jd[4096], emsg[512];
	struct spool_meta m;
	struct job_row row;
	struct nq_value params = {0};
	int code;

	if (spool_job_dir(root, id, jd, sizeof(jd)) != 0)
		return 1;
	if (spool_read_meta(jd, &m) != 0)
		return recover_aside(root, jd, id, "no readable `job` file",
		                     out) == 0
		               ? 1
		               : -1;
	if (spool_read_params(jd, &params, emsg, sizeof(emsg)) != 0)
		return recover_aside(root, jd, id, "params.mp unreadable",
		                     out) == 0
		               ? 1
		               : -1;
	nq_value_free(&params);
	memset(&row, 0, sizeof(row));
	row.id = id;
	snprintf(row.type, sizeof(row.type), "%s", m.type);
	row.owner = m.owner;
	row.priority = m.priority;
	snprintf(row.device_req, sizeof(row.device_req), "%s", m.device_req);
	snprintf(row.idem, sizeof(row.idem), "%s", m.idem);
	row.est_host_bytes = m.host_bytes;
	row.est_device_bytes = m.device_bytes;
	row.est_flops = m.flops;
	row.submitted_us = recover_mtime_us(jd, "params.mp");
	{
		/* under Slurm the owner owns the dir: out/ only as a dir */
		if (spool_dir_in(jd, "out")) {
			row.state = JOB_DONE;
			row.finished_us = recover_mtime_us(jd, "out");
		} else if (spool_read_error(jd, &code, emsg, sizeof(emsg)) ==
		           0) {
			row.state = code == NQ_ECANCELED ? JOB_CANCELED
			                                 : JOB_FAILED;
			row.error_code = code;
			snprintf(row.error, sizeof(row.error), "%s", emsg);
			row.finished_us = recover_mtime_us(jd, "error");
		} else {
			row.state = JOB_QUEUED;
		}
	}
	if (row.state != JOB_QUEUED)
		row.attempts = 1;
	if (quota_dir_bytes(jd, &row.spool_bytes) != 0)
		row.spool_bytes = 0;
	if (store_restore_job(s, &row) != 0) {
		fprintf(out, "neuroqd: job %" PRId64 ": %s\n", id,
		        store_errmsg(s));
		return -1;
	}
	switch (row.state) {
	case JOB_DONE:
		c->done++;
		break;
	case JOB_FAILED:
		c->failed++;
		break;
	case JOB_CANCELED:
		c->canceled++;
		break;
	default:
		c->queued++;
		break;
	}
	return 0;
}

static int
recover_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;

	return x < y ? -1 : x > y;
}

/* The numeric dirs of <root>/jobs, ascending; *n of them (malloc'd). */
static int64_t *
recover_list_ids(const char *root, size_t *n)
{
	char jobs[4096];
	DIR *d;
	struct dirent *e;
	int64_t *ids = NULL;
	size_t cap = 0;

	*n = 0;
	snprintf(jobs, sizeof(jobs), "%s/jobs", root);
	if ((d = opendir(jobs)) == NULL)
		return NULL;
	while ((e = readdir(d)) != NULL) {
		char *end;
		long long v;
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		errno = 0;
		v = strtoll(e->d_name, &end, 10);
		if (errno != 0 || *end != '\0' || v <= 0)
			continue;
		if (*n == cap) {
			size_t nc = cap == 0 ? 64 : cap * 2;
			int64_t *ni = realloc(ids, nc * sizeof(*ids));
			if (ni == NULL)
				break;
			ids = ni;
			cap = nc;
		}
		ids[(*n)++] = v;
	}
	closedir(d);
	if (*n > 0)
		qsort(ids, *n, sizeof(*ids), recover_cmp);
	return ids;
}

int
recover_state_dir(const char *state_dir, const char *spool_root, FILE *out,
                  struct recover_counts *c)
{
	char db[4096], msg[1024];
	struct store *s = NULL;
	int64_t *ids, top = 0;
	size_t n;
	int rc;

	memset(c, 0, sizeof(*c));
	if (spool_init(state_dir) != 0) {
		fprintf(out, "neuroqd: cannot use state dir %s: %s\n",
		        state_dir, strerror(errno));
		return 1;
	}
	if ((rc = spool_lock(state_dir)) < 0) {
		if (rc == -NQ_ESTATE)
			fprintf(out,
			        "neuroqd: a neuroqd is running on %s: "
			        "stop it first\n",
			        state_dir);
		else
			fprintf(out, "neuroqd: cannot lock %s: %s\n", state_dir,
			        strerror(errno));
		return 1;
	}
	spool_clean_staging(state_dir);
	snprintf(db, sizeof(db), "%s/neuroq.db", state_dir);
	rc = store_verify(db, msg, sizeof(msg));
	if (rc == NQ_EBADDATA || rc == NQ_EIO) {
		fprintf(out, "%s\n", msg);
		if (recover_move_db(state_dir, db, out) != 0)
			return 1;
		c->damaged = 1;
	}
	if (store_open(&s, db, msg, sizeof(msg)) != 0) {
		fprintf(out, "neuroqd: cannot open a new store: %s\n", msg);
		return 1;
	}
	ids = recover_list_ids(spool_root, &n);
	rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct job_row row;
		top = ids[i];
		if (store_get_job(s, ids[i], &row) == 0) {
			c->kept++;
			continue;
		}
		int r = recover_one(s, spool_root, ids[i], c, out);
		if (r < 0)
			rc = 1;
		else if (r > 0)
			c->aside++;
	}
	free(ids);
	if (rc == 0 && store_raise_next_id(s, top + 1) != 0) {
		fprintf(out, "neuroqd: cannot set the next id: %s\n",
		        store_errmsg(s));
		rc = 1;
	}
	store_close(s);
	fprintf(out,
	        "recovered: kept=%d done=%d failed=%d canceled=%d queued=%d "
	        "set_aside=%d next_id>%" PRId64 "\n",
	        c->kept, c->done, c->failed, c->canceled, c->queued, c->aside,
	        top);
	return rc;
}
