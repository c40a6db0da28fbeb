/* spool.c — see spool.h. */
#include "spool.h"

#include "nq_error.h"
#include "nq_json.h"
#include "nq_npy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPOOL_MAX_RESULT_MP (64u << 20)

int
spool_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 64 || name[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
		      ch == '.'))
			return 0;
	}
	return 1;
}

static int
spool_path(char *buf, size_t n, const char *dir, const char *a, const char *b)
{
	size_t ld = strlen(dir), la = strlen(a), lb = b == NULL ? 0 : strlen(b);

	if (ld + 1 + la + lb >= n) {
		if (n > 0)
			buf[0] = '\0';
		return NQ_EINTERNAL;
	}
	memcpy(buf, dir, ld);
	buf[ld] = '/';
	memcpy(buf + ld + 1, a, la);
	if (lb > 0)
		memcpy(buf + ld + 1 + la, b, lb);
	buf[ld + 1 + la + lb] = '\0';
	return 0;
}

int
spool_job_dir(const char *state_dir, int64_t id, char *buf, size_t n)
{
	int w = snprintf(buf, n, "%s/jobs/%" PRId64, state_dir, id);

	return (w < 0 || (size_t) w >= n) ? NQ_EINTERNAL : 0;
}

int
spool_mkdir_p(const char *path, mode_t mode)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return NQ_EIO;
	}
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) != 0 && errno != EEXIST)
			return NQ_EIO;
		*p = '/';
	}
	if (mkdir(buf, mode) != 0 && errno != EEXIST)
		return NQ_EIO;
	return 0;
}

int
spool_rm_rf(const char *path)
{
	DIR *d;
	struct dirent *e;
	char sub[4096];
	int err = 0; /* errno of the last failure */

	d = opendir(path);
	if (d == NULL) {
		if (errno == ENOENT)
			return 0;
		if (errno == ENOTDIR)
			return unlink(path) == 0 ? 0 : NQ_EIO;
		return NQ_EIO;
	}
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (spool_path(sub, sizeof(sub), path, e->d_name, NULL) != 0) {
			err = ENAMETOOLONG;
			continue;
		}
		struct stat st;
		if (lstat(sub, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			if (spool_rm_rf(sub) != 0)
				err = errno;
		} else if (unlink(sub) != 0) {
			err = errno;
		}
	}
	closedir(d);
	if (rmdir(path) != 0 && err == 0)
		err = errno;
	if (err != 0) {
		errno = err;
		return NQ_EIO;
	}
	return 0;
}

int
spool_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return NQ_EIO;
	if (fsync(fd) != 0)
		err = errno;
	close(fd);
	if (err != 0) {
		errno = err;
		return NQ_EIO;
	}
	return 0;
}

/* Write a whole file durably: temp + fsync + rename. */
static int
spool_write_file(const char *path, const void *buf, size_t len)
{
	char tmp[4096];
	const char *p = buf;
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int) sizeof(tmp))
		return ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return errno;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		p += w;
		len -= (size_t) w;
	}
	if (fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	if (rename(tmp, path) != 0) {
		fd = -1;
		goto fail;
	}
	return 0;
fail : {
	int e = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return e;
}
}

/* Read a whole file of at most max bytes. */
static int
spool_read_file(const char *path, size_t max, char **out, size_t *outlen)
{
	/* "e": close-on-exec, since the daemon reads in its threadpool while
	 * the loop thread may be forking a worker */
	FILE *f = fopen(path, "rbe");
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (f == NULL)
		return errno;
	for (;;) {
		if (len == cap) {
			if (cap >= max + 1)
				break;
			cap = cap == 0 ? 4096 : cap * 2;
			if (cap > max + 1)
				cap = max + 1;
			char *nb = realloc(buf, cap + 1);
			if (nb == NULL) {
				free(buf);
				fclose(f);
				return ENOMEM;
			}
			buf = nb;
		}
		size_t r = fread(buf + len, 1, cap - len, f);
		len += r;
		if (r == 0)
			break;
	}
	fclose(f);
	if (len > max) {
		free(buf);
		return EFBIG;
	}
	if (buf == NULL) {
		buf = malloc(1);
		if (buf == NULL)
			return ENOMEM;
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return 0;
}

int
spool_stage(const char *state_dir, const struct nq_map *params,
            const struct nq_map *inputs, char *tmp, size_t tmplen, char *msg,
            size_t msglen)
{
	char jobs[4096], path[4096];
	void *buf = NULL;
	size_t len = 0;
	int rc, e;

	tmp[0] = '\0';
	if (spool_path(jobs, sizeof(jobs), state_dir, "jobs", NULL) != 0 ||
	    spool_path(tmp, tmplen, jobs, ".new-XXXXXX", NULL) != 0) {
		snprintf(msg, msglen, "state dir path too long");
		return NQ_EIO;
	}
	if (mkdtemp(tmp) == NULL) {
		snprintf(msg, msglen, "cannot create %s: %s", tmp,
		         strerror(errno));
		tmp[0] = '\0';
		return NQ_EIO;
	}
	chmod(tmp, 0755);
	/* params go to disk as their own msgpack document, re-encoded so
	 * that the worker reads exactly what validate() saw */
	{
		struct nq_value v = {.kind = NQ_MAP};
		v.u.map = (struct nq_map *) params;
		rc = nq_encode(&v, &buf, &len);
	}
	if (rc != 0) {
		snprintf(msg, msglen, "cannot encode params");
		goto fail;
	}
	spool_path(path, sizeof(path), tmp, "params.mp", NULL);
	e = spool_write_file(path, buf, len);
	free(buf);
	if (e != 0) {
		snprintf(msg, msglen, "cannot write %s: %s", path, strerror(e));
		rc = NQ_EIO;
		goto fail;
	}
	spool_path(path, sizeof(path), tmp, "in", NULL);
	if (mkdir(path, 0755) != 0) {
		snprintf(msg, msglen, "cannot create %s: %s", path,
		         strerror(errno));
		rc = NQ_EIO;
		goto fail;
	}
	spool_path(path, sizeof(path), tmp, "ckpt", NULL);
	if (mkdir(path, 0755) != 0) {
		snprintf(msg, msglen, "cannot create %s: %s", path,
		         strerror(errno));
		rc = NQ_EIO;
		goto fail;
	}
	for (size_t i = 0; inputs != NULL && i < inputs->n; i++) {
		const char *name = inputs->keys[i];
		if (!spool_name_ok(name)) {
			snprintf(msg, msglen,
			         "input name '%.64s' is not allowed: use 1..64 "
			         "of A-Z a-z 0-9 _ - .",
			         name);
			rc = NQ_EBADPARAM;
			goto fail;
		}
		if (inputs->vals[i].kind != NQ_ARRAY) {
			snprintf(msg, msglen,
			         "input '%s' is not an array {dtype, shape, "
			         "data}",
			         name);
			rc = NQ_EBADARRAY;
			goto fail;
		}
		char rel[128];
		snprintf(rel, sizeof(rel), "in/%s.npy", name);
		spool_path(path, sizeof(path), tmp, rel, NULL);
		rc = nq_npy_write(path, &inputs->vals[i].u.arr);
		if (rc != 0) {
			snprintf(msg, msglen, "cannot write %s", path);
			goto fail;
		}
	}
	spool_path(path, sizeof(path), tmp, "in", NULL);
	spool_fsync_dir(path);
	spool_fsync_dir(tmp);
	return 0;
fail:
	spool_rm_rf(tmp);
	tmp[0] = '\0';
	return rc;
}

int
spool_commit(const char *tmp, const char *state_dir, int64_t id, char *msg,
             size_t msglen)
{
	char dir[4096], jobs[4096];

	if (spool_job_dir(state_dir, id, dir, sizeof(dir)) != 0)
		return NQ_EINTERNAL;
	/* a stale dir of the same id can only come from a database that was
	 * reset under a kept spool; it is not this job's */
	spool_rm_rf(dir);
	if (rename(tmp, dir) != 0) {
		snprintf(msg, msglen, "cannot rename %s to %s: %s", tmp, dir,
		         strerror(errno));
		return NQ_EIO;
	}
	spool_path(jobs, sizeof(jobs), state_dir, "jobs", NULL);
	spool_fsync_dir(jobs);
	return 0;
}

void
spool_clean_staging(const char *state_dir)
{
	char jobs[4096], sub[4096];
	DIR *d;
	struct dirent *e;

	if (spool_path(jobs, sizeof(jobs), state_dir, "jobs", NULL) != 0)
		return;
	d = opendir(jobs);
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, ".new-", 5) != 0)
			continue;
		if (spool_path(sub, sizeof(sub), jobs, e->d_name, NULL) == 0)
			spool_rm_rf(sub);
	}
	closedir(d);
}

int
spool_write_error(const char *job_dir, int code, const char *message)
{
	char path[4096];
	char *buf;
	int n, e;

	if (spool_path(path, sizeof(path), job_dir, "error", NULL) != 0)
		return NQ_EIO;
	n = snprintf(NULL, 0, "%d %s\n%s\n", code, nq_errname(code),
	             message == NULL ? "" : message);
	buf = malloc((size_t) n + 1);
	if (buf == NULL)
		return NQ_ENOMEM;
	snprintf(buf, (size_t) n + 1, "%d %s\n%s\n", code, nq_errname(code),
	         message == NULL ? "" : message);
	e = spool_write_file(path, buf, (size_t) n);
	free(buf);
	return e == 0 ? 0 : NQ_EIO;
}

int
spool_read_error(const char *job_dir, int *code, char *message, size_t msglen)
{
	char path[4096];
	char *buf = NULL, *nl;
	size_t len;
	int c;

	if (spool_path(path, sizeof(path), job_dir, "error", NULL) != 0 ||
	    spool_read_file(path, 64 * 1024, &buf, &len) != 0)
		return NQ_EIO;
	long v = strtol(buf, &nl, 10); /* the worker's code, 1..INT_MAX */
	if (nl == buf || v <= 0 || v > INT_MAX) {
		free(buf);
		return NQ_EIO;
	}
	c = (int) v;
	nl = strchr(buf, '\n');
	const char *m = nl == NULL ? "" : nl + 1;
	snprintf(message, msglen, "%s", m);
	/* drop the trailing newline */
	size_t ml = strlen(message);
	while (ml > 0 && (message[ml - 1] == '\n' || message[ml - 1] == '\r'))
		message[--ml] = '\0';
	*code = c;
	free(buf);
	return 0;
}

int
spool_read_log(const char *job_dir, size_t max, char **text)
{
	char path[4096];
	FILE *f;
	long size;
	char *buf;

	*text = NULL;
	if (spool_path(path, sizeof(path), job_dir, "log", NULL) != 0)
		return NQ_EINTERNAL;
	f = fopen(path, "rbe");
	if (f == NULL) {
		*text = strdup("");
		return *text == NULL ? NQ_ENOMEM : 0;
	}
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	if (size < 0)
		size = 0;
	if ((size_t) size > max)
		fseek(f, size - (long) max, SEEK_SET);
	else
		fseek(f, 0, SEEK_SET);
	size_t want = (size_t) size > max ? max : (size_t) size;
	buf = malloc(want + 1);
	if (buf == NULL) {
		fclose(f);
		return NQ_ENOMEM;
	}
	size_t got = fread(buf, 1, want, f);
	fclose(f);
	buf[got] = '\0';
	/* the wire carries str: no NUL inside */
	for (size_t i = 0; i < got; i++) {
		if (buf[i] == '\0')
			buf[i] = ' ';
	}
	*text = buf;
	return 0;
}

int
spool_read_params(const char *job_dir, struct nq_value *params, char *msg,
                  size_t msglen)
{
	char path[4096];
	char *buf = NULL;
	size_t len = 0;
	int e, rc;

	spool_path(path, sizeof(path), job_dir, "params.mp", NULL);
	e = spool_read_file(path, 1u << 30, &buf, &len);
	if (e != 0) {
		snprintf(msg, msglen, "cannot read %s: %s", path, strerror(e));
		return NQ_EIO;
	}
	rc = nq_decode(buf, len, params, msg, msglen);
	free(buf);
	if (rc == 0 && params->kind != NQ_MAP) {
		nq_value_free(params);
		snprintf(msg, msglen, "%s: not a msgpack map", path);
		return NQ_EBADPARAM;
	}
	return rc;
}

static int
spool_ends_with(const char *s, const char *suffix, size_t *stem)
{
	size_t n = strlen(s), m = strlen(suffix);

	if (n <= m || strcmp(s + n - m, suffix) != 0)
		return 0;
	*stem = n - m;
	return 1;
}

/* Load every <dir>/<name>.npy into m (only names in `names` when given). */
static int
spool_load_npys(const char *dir, struct nq_map *m, char *msg, size_t msglen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096], name[80];
	int rc = 0;

	if (d == NULL) {
		if (errno == ENOENT)
			return 0;
		snprintf(msg, msglen, "cannot open %s: %s", dir,
		         strerror(errno));
		return NQ_EIO;
	}
	while ((e = readdir(d)) != NULL) {
		size_t stem;
		if (!spool_ends_with(e->d_name, ".npy", &stem) ||
		    stem >= sizeof(name))
			continue;
		memcpy(name, e->d_name, stem);
		name[stem] = '\0';
		if (!spool_name_ok(name))
			continue;
		struct nq_array a;
		memset(&a, 0, sizeof(a));
		spool_path(path, sizeof(path), dir, e->d_name, NULL);
		rc = nq_npy_read(path, &a, 0, msg, msglen);
		if (rc != 0)
			break;
		rc = nq_map_set_array(m, name, &a);
		nq_array_fini(&a);
		if (rc != 0)
			break;
	}
	closedir(d);
	return rc;
}

int
spool_read_inputs(const char *job_dir, struct nq_map *inputs, char *msg,
                  size_t msglen)
{
	char dir[4096];

	spool_path(dir, sizeof(dir), job_dir, "in", NULL);
	return spool_load_npys(dir, inputs, msg, msglen);
}

int
spool_write_outputs(const char *job_dir, const struct nq_map *out, char *msg,
                    size_t msglen)
{
	char tmp[4096], fin[4096], path[4096];
	struct nq_map *scal = NULL;
	struct nq_json js;
	void *mp = NULL;
	size_t mplen = 0;
	int rc = NQ_EIO, e;

	nq_json_init_buf(&js, NQ_JSON_LINES);
	spool_path(tmp, sizeof(tmp), job_dir, "out.tmp", NULL);
	spool_path(fin, sizeof(fin), job_dir, "out", NULL);
	spool_rm_rf(tmp);
	if (mkdir(tmp, 0755) != 0) {
		snprintf(msg, msglen, "cannot create %s: %s", tmp,
		         strerror(errno));
		return NQ_EIO;
	}
	scal = nq_map_new();
	if (scal == NULL) {
		rc = NQ_ENOMEM;
		goto fail;
	}
	/* result.json: the scalars, for people and scripts without msgpack */
	nq_json_obj_begin(&js);
	for (size_t i = 0; i < out->n; i++) {
		const char *name = out->keys[i];
		const struct nq_value *v = &out->vals[i];
		if (v->kind == NQ_ARRAY) {
			char rel[128];
			if (!spool_name_ok(name)) {
				snprintf(msg, msglen,
				         "output name '%.64s' is not a valid "
				         "file name",
				         name);
				rc = NQ_EINTERNAL;
				goto fail;
			}
			snprintf(rel, sizeof(rel), "%s.npy", name);
			spool_path(path, sizeof(path), tmp, rel, NULL);
			rc = nq_npy_write(path, &v->u.arr);
			if (rc != 0) {
				snprintf(msg, msglen, "cannot write %s", path);
				goto fail;
			}
			continue;
		}
		struct nq_value copy;
		rc = nq_value_copy(&copy, v);
		if (rc == 0)
			rc = nq_map_set(scal, name, &copy);
		if (rc != 0) {
			nq_value_free(&copy);
			snprintf(msg, msglen, "out of memory");
			goto fail;
		}
		nq_json_key(&js, name);
		nq_json_value(&js, v);
	}
	nq_json_obj_end(&js);
	nq_json_raw(&js, "\n");
	if (nq_json_finish(&js) != 0) {
		rc = NQ_ENOMEM;
		snprintf(msg, msglen, "out of memory");
		goto fail;
	}
	spool_path(path, sizeof(path), tmp, "result.json", NULL);
	e = spool_write_file(path, js.buf, js.len);
	if (e != 0) {
		snprintf(msg, msglen, "cannot write %s: %s", path, strerror(e));
		rc = NQ_EIO;
		goto fail;
	}
	{
		struct nq_value sv = {.kind = NQ_MAP};
		sv.u.map = scal;
		rc = nq_encode(&sv, &mp, &mplen);
	}
	if (rc != 0) {
		snprintf(msg, msglen, "cannot encode result scalars");
		goto fail;
	}
	spool_path(path, sizeof(path), tmp, "result.mp", NULL);
	e = spool_write_file(path, mp, mplen);
	if (e != 0) {
		snprintf(msg, msglen, "cannot write %s: %s", path, strerror(e));
		rc = NQ_EIO;
		goto fail;
	}
	spool_fsync_dir(tmp);
	spool_rm_rf(fin);
	if (rename(tmp, fin) != 0) {
		snprintf(msg, msglen, "cannot rename %s: %s", tmp,
		         strerror(errno));
		rc = NQ_EIO;
		goto fail;
	}
	spool_fsync_dir(job_dir);
	free(mp);
	nq_json_free(&js);
	nq_map_free(scal);
	return 0;
fail:
	free(mp);
	nq_json_free(&js);
	nq_map_free(scal);
	spool_rm_rf(tmp);
	return rc;
}

static int
spool_read_scalars(const char *odir, struct nq_value *sv, char *msg,
                   size_t msglen)
{
	char path[4096];
	char *buf = NULL;
	size_t len = 0;
	int e, rc;

	spool_path(path, sizeof(path), odir, "result.mp", NULL);
	e = spool_read_file(path, SPOOL_MAX_RESULT_MP, &buf, &len);
	if (e == ENOENT) {
		sv->kind = NQ_MAP;
		sv->u.map = nq_map_new();
		return sv->u.map == NULL ? NQ_ENOMEM : 0;
	}
	if (e != 0) {
		snprintf(msg, msglen, "cannot read %s: %s", path, strerror(e));
		return NQ_EIO;
	}
	rc = nq_decode(buf, len, sv, msg, msglen);
	free(buf);
	if (rc == 0 && sv->kind != NQ_MAP) {
		nq_value_free(sv);
		snprintf(msg, msglen, "%s is not a map", path);
		rc = NQ_EIO;
	}
	return rc;
}

int
spool_read_outputs(const char *job_dir, const struct nq_value *names,
                   struct nq_map *out, char *msg, size_t msglen)
{
	char odir[4096], path[4096];
	struct nq_value sv = {.kind = NQ_NIL};
	int rc;

	spool_path(odir, sizeof(odir), job_dir, "out", NULL);
	rc = spool_read_scalars(odir, &sv, msg, msglen);
	if (rc != 0)
		return rc;
	if (names == NULL) {
		rc = spool_load_npys(odir, out, msg, msglen);
		for (size_t i = 0; rc == 0 && i < sv.u.map->n; i++)
			rc = nq_map_set(out, sv.u.map->keys[i],
			                &sv.u.map->vals[i]);
		goto done;
	}
	for (size_t i = 0; i < names->u.list.n; i++) {
		const struct nq_value *nv = &names->u.list.items[i];
		struct nq_array a;
		memset(&a, 0, sizeof(a));
		if (nv->kind != NQ_STR) {
			snprintf(msg, msglen, "names: expected strings");
			rc = NQ_EBADPARAM;
			goto done;
		}
		const char *name = nv->u.str.s;
		for (size_t j = 0; j < sv.u.map->n; j++) {
			if (strcmp(sv.u.map->keys[j], name) == 0 &&
			    sv.u.map->vals[j].kind != NQ_NIL) {
				rc = nq_map_set(out, name, &sv.u.map->vals[j]);
				if (rc != 0)
					goto done;
				goto next;
			}
		}
		if (!spool_name_ok(name)) {
			snprintf(msg, msglen, "names: no output named '%.64s'",
			         name);
			rc = NQ_EBADPARAM;
			goto done;
		}
		char rel[128];
		snprintf(rel, sizeof(rel), "%s.npy", name);
		spool_path(path, sizeof(path), odir, rel, NULL);
		if (access(path, F_OK) != 0) {
			snprintf(msg, msglen, "names: no output named '%s'",
			         name);
			rc = NQ_EBADPARAM;
			goto done;
		}
		rc = nq_npy_read(path, &a, 0, msg, msglen);
		if (rc == 0)
			rc = nq_map_set_array(out, name, &a);
		nq_array_fini(&a);
		if (rc != 0)
			goto done;
	next:;
	}
done:
	nq_value_free(&sv);
	return rc;
}
