/*
 * ss_io.c — probe maps, SpikeGLX .meta, and the recording reader.
 *
 * The recording is never loaded whole: each batch is one pread of its
 * samples × n_rows int16 block (sample-major, so one contiguous range).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nq_clones.h"
#include "nq_error.h"
#include "ss.h"
#include "ss_json.h"

void
ss_probe_free(struct ss_probe *p)
{
	free(p->row);
	free(p->x);
	free(p->y);
	free(p->shank);
	memset(p, 0, sizeof(*p));
}

static int
probe_alloc(struct ss_probe *p, int n)
{
	memset(p, 0, sizeof(*p));
	p->n = n;
	p->row = calloc((size_t) n + 1, sizeof(int));
	p->x = calloc((size_t) n + 1, sizeof(float));
	p->y = calloc((size_t) n + 1, sizeof(float));
	p->shank = calloc((size_t) n + 1, sizeof(int));
	if (!p->row || !p->x || !p->y || !p->shank) {
		ss_probe_free(p);
		return NQ_ENOMEM;
	}
	return 0;
}

int
ss_probe_linear(struct ss_probe *p, int n, double pitch)
{
	int rc = probe_alloc(p, n);

	if (rc != 0)
		return rc;
	for (int i = 0; i < n; i++) {
		p->row[i] = i;
		p->y[i] = (float) (pitch * i);
	}
	return 0;
}

/* Numbers of a JSON array (or NULL when absent/wrong). */
static int
num_array(const struct ssj *a, size_t n, double *out)
{
	if (a == NULL || a->kind != SSJ_ARR || a->n != n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const struct ssj *v = &a->items[i];
		if (v->kind != SSJ_NUM && v->kind != SSJ_BOOL)
			return -1;
		out[i] = v->num;
	}
	return 0;
}

static int
parse_kilosort(struct ss_probe *p, const struct ssj *root, int n_rows,
               char *msg, size_t msglen)
{
	const struct ssj *cm = ssj_get(root, "chanMap0ind");
	size_t n;
	double *buf = NULL;
	int rc = NQ_EBADPARAM, kept = 0, one_based = 0;

	if (cm == NULL)
		cm = ssj_get(root, "chanMap");
	else
		one_based = -1;
	if (cm == NULL || cm->kind != SSJ_ARR || cm->n == 0) {
		snprintf(msg, msglen,
		         "probe: chanMap must be a non-empty array");
		return NQ_EBADPARAM;
	}
	n = cm->n;
	buf = calloc(5 * n, sizeof(double));
	if (buf == NULL)
		return NQ_ENOMEM;
	double *row = buf, *xc = buf + n, *yc = buf + 2 * n, *kc = buf + 3 * n,
	       *con = buf + 4 * n;
	if (num_array(cm, n, row) != 0 ||
	    num_array(ssj_get(root, "xc"), n, xc) != 0 ||
	    num_array(ssj_get(root, "yc"), n, yc) != 0) {
		snprintf(msg, msglen,
		         "probe: chanMap, xc and yc must be numeric arrays of "
		         "the same length (%zu)",
		         n);
		goto out;
	}
	if (num_array(ssj_get(root, "kcoords"), n, kc) != 0)
		for (size_t i = 0; i < n; i++)
			kc[i] = 1;
	if (num_array(ssj_get(root, "connected"), n, con) != 0)
		for (size_t i = 0; i < n; i++)
			con[i] = 1;
	/* MATLAB maps are 1-based ("chanMap"); Kilosort's Python and our docs
	 * use 0-based rows. A map whose rows are 1..n_rows with no 0 is
	 * MATLAB's. */
	if (one_based == 0) {
		double mn = row[0], mx = row[0];
		for (size_t i = 1; i < n; i++) {
			mn = fmin(mn, row[i]);
			mx = fmax(mx, row[i]);
		}
		one_based = mn >= 1 && mx >= n_rows;
	} else {
		one_based = 0;
	}
	for (size_t i = 0; i < n; i++)
		kept += con[i] != 0;
	if (kept == 0) {
		snprintf(msg, msglen, "probe: no connected channel");
		goto out;
	}
	rc = probe_alloc(p, kept);
	if (rc != 0)
		goto out;
	kept = 0;
	for (size_t i = 0; i < n; i++) {
		double r = row[i] - one_based;
		if (con[i] == 0)
			continue;
		if (r < 0 || r >= n_rows || r != floor(r)) {
			snprintf(msg, msglen,
			         "probe: chanMap entry %zu is %g, but the "
			         "recording has rows 0..%d",
			         i, row[i], n_rows - 1);
			ss_probe_free(p);
			rc = NQ_EBADPARAM;
			goto out;
		}
		p->row[kept] = (int) r;
		p->x[kept] = (float) xc[i];
		p->y[kept] = (float) yc[i];
		p->shank[kept] = (int) kc[i];
		kept++;
	}
	rc = 0;
out:
	free(buf);
	return rc;
}

static int
parse_probeinterface(struct ss_probe *p, const struct ssj *root, int n_rows,
                     char *msg, size_t msglen)
{
	const struct ssj *probes = ssj_get(root, "probes");
	const struct ssj single = {
	        .kind = SSJ_ARR, .n = 1, .items = (struct ssj *) root};
	size_t total = 0;
	int rc, k = 0;

	if (probes == NULL)
		probes = &single;
	if (probes->kind != SSJ_ARR || probes->n == 0) {
		snprintf(msg, msglen, "probe: \"probes\" must be a list");
		return NQ_EBADPARAM;
	}
	for (size_t q = 0; q < probes->n; q++) {
		const struct ssj *pos =
		        ssj_get(&probes->items[q], "contact_positions");
		const struct ssj *dci =
		        ssj_get(&probes->items[q], "device_channel_indices");
		if (pos == NULL || pos->kind != SSJ_ARR) {
			snprintf(msg, msglen,
			         "probe %zu: contact_positions missing", q);
			return NQ_EBADPARAM;
		}
		if (dci == NULL || dci->kind != SSJ_ARR || dci->n != pos->n) {
			snprintf(msg, msglen,
			         "probe %zu: device_channel_indices must list "
			         "one row per contact (%zu)",
			         q, pos->n);
			return NQ_EBADPARAM;
		}
		for (size_t i = 0; i < dci->n; i++)
			total += dci->items[i].kind == SSJ_NUM &&
			         dci->items[i].num >= 0;
	}
	if (total == 0) {
		snprintf(msg, msglen, "probe: no connected contact");
		return NQ_EBADPARAM;
	}
	rc = probe_alloc(p, (int) total);
	if (rc != 0)
		return rc;
	for (size_t q = 0; q < probes->n; q++) {
		const struct ssj *pr = &probes->items[q];
		const struct ssj *pos = ssj_get(pr, "contact_positions");
		const struct ssj *dci = ssj_get(pr, "device_channel_indices");
		const struct ssj *sh = ssj_get(pr, "shank_ids");
		for (size_t i = 0; i < dci->n; i++) {
			const struct ssj *d = &dci->items[i],
			                 *xy = &pos->items[i];
			if (d->kind != SSJ_NUM || d->num < 0)
				continue;
			if (d->num >= n_rows || d->num != floor(d->num)) {
				snprintf(msg, msglen,
				         "probe: device_channel_indices[%zu] = "
				         "%g, but the recording has rows 0..%d",
				         i, d->num, n_rows - 1);
				goto bad;
			}
			if (xy->kind != SSJ_ARR || xy->n < 2 ||
			    xy->items[0].kind != SSJ_NUM ||
			    xy->items[1].kind != SSJ_NUM) {
				snprintf(
				        msg, msglen,
				        "probe: contact_positions[%zu] must be "
				        "[x, y]",
				        i);
				goto bad;
			}
			p->row[k] = (int) d->num;
			p->x[k] = (float) xy->items[0].num;
			p->y[k] = (float) xy->items[1].num;
			p->shank[k] = (int) q;
			if (sh && sh->kind == SSJ_ARR && sh->n == dci->n &&
			    sh->items[i].kind == SSJ_STR) {
				/* a label that is no number 0..999 is shank 0
				 */
				long v = strtol(sh->items[i].str, NULL, 10);
				p->shank[k] = (int) q * 1000 +
				              (v > 0 && v < 1000 ? (int) v : 0);
			}
			k++;
		}
	}
	return 0;
bad:
	ss_probe_free(p);
	return NQ_EBADPARAM;
}

int
ss_probe_parse(struct ss_probe *p, const char *text, size_t len, int n_rows,
               char *msg, size_t msglen)
{
	struct ssj root;
	int rc;

	memset(p, 0, sizeof(*p));
	if (ssj_parse(text, len, &root, msg, msglen) != 0)
		return NQ_EBADPARAM;
	if (root.kind != SSJ_OBJ) {
		snprintf(msg, msglen, "probe: JSON must be an object");
		rc = NQ_EBADPARAM;
	} else if (ssj_get(&root, "chanMap") || ssj_get(&root, "chanMap0ind")) {
		rc = parse_kilosort(p, &root, n_rows, msg, msglen);
	} else if (ssj_get(&root, "probes") ||
	           ssj_get(&root, "contact_positions")) {
		rc = parse_probeinterface(p, &root, n_rows, msg, msglen);
	} else {
		snprintf(
		        msg, msglen,
		        "probe: expected a Kilosort channel map (chanMap, xc, "
		        "yc, kcoords, connected) or a probeinterface file "
		        "(probes[].contact_positions, device_channel_indices)");
		rc = NQ_EBADPARAM;
	}
	ssj_free(&root);
	if (rc == 0) {
		/* a row used twice would double-count a channel */
		for (int i = 0; i < p->n; i++)
			for (int j = i + 1; j < p->n; j++)
				if (p->row[i] == p->row[j]) {
					snprintf(
					        msg, msglen,
					        "probe: row %d is mapped twice",
					        p->row[i]);
					ss_probe_free(p);
					return NQ_EBADPARAM;
				}
	}
	return rc;
}

int
ss_probe_load(struct ss_probe *p, const char *path, int n_rows, char *msg,
              size_t msglen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	memset(p, 0, sizeof(*p));
	if (fd < 0) {
		snprintf(msg, msglen, "probe: cannot open %s: %s", path,
		         strerror(errno));
		return NQ_EBADPARAM;
	}
	return ss_probe_load_fd(p, fd, path, n_rows, msg, msglen);
}

int
ss_probe_load_fd(struct ss_probe *p, int fd, const char *path, int n_rows,
                 char *msg, size_t msglen)
{
	FILE *f = fdopen(fd, "rb");
	char *buf;
	long len;
	int rc;

	memset(p, 0, sizeof(*p));
	if (f == NULL) {
		close(fd);
		snprintf(msg, msglen, "probe: cannot open %s: %s", path,
		         strerror(errno));
		return NQ_EBADPARAM;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
	    len > (64L << 20) || fseek(f, 0, SEEK_SET) != 0) {
		fclose(f);
		snprintf(msg, msglen,
		         "probe: %s is not a readable file < 64 MB", path);
		return NQ_EBADPARAM;
	}
	buf = malloc((size_t) len + 1);
	if (buf == NULL) {
		fclose(f);
		return NQ_ENOMEM;
	}
	if (fread(buf, 1, (size_t) len, f) != (size_t) len) {
		fclose(f);
		free(buf);
		snprintf(msg, msglen, "probe: cannot read %s", path);
		return NQ_EIO;
	}
	fclose(f);
	rc = ss_probe_parse(p, buf, (size_t) len, n_rows, msg, msglen);
	free(buf);
	return rc;
}

void
ss_probe_nearest(const struct ss_probe *p, int c, int k, int *idx)
{
	/* selection by repeated scans: k and n are small (≤ 32, ≤ 1000s) */
	int n = p->n;
	double lastd = -1;
	int lasti = -1;

	if (k > n)
		k = n;
	for (int m = 0; m < k; m++) {
		double bestd = INFINITY;
		int best = -1;
		for (int j = 0; j < n; j++) {
			double dx = p->x[j] - p->x[c], dy = p->y[j] - p->y[c];
			double d = dx * dx + dy * dy;
			if (p->shank[j] != p->shank[c])
				d += 1e12; /* other shanks only when needed */
			if (j == c)
				d = -1;
			/* strictly after the last chosen in (d, j) order */
			if (d < lastd || (d == lastd && j <= lasti))
				continue;
			if (d < bestd || (d == bestd && j < best)) {
				bestd = d;
				best = j;
			}
		}
		idx[m] = best;
		lastd = bestd;
		lasti = best;
	}
}

int
ss_probe_neighbours(const struct ss_probe *p, int k, int32_t *nbr)
{
	/* zeroed: ss_probe_nearest fills min(k, n) of them */
	int *nb = calloc((size_t) (k > 0 ? k : 1), sizeof(int));

	if (nb == NULL)
		return NQ_ENOMEM;
	for (int c = 0; c < p->n; c++) {
		ss_probe_nearest(p, c, k, nb);
		for (int j = 0; j < k; j++)
			nbr[(size_t) c * k + j] = nb[j];
	}
	free(nb);
	return 0;
}

int
ss_meta_read(const char *bin_path, double *fs, int *n_chan)
{
	char path[4096], line[1024];
	size_t len = strlen(bin_path);
	FILE *f;

	if (len + 6 >= sizeof(path))
		return 1;
	if (len > 4 && strcmp(bin_path + len - 4, ".bin") == 0)
		len -= 4; /* x.bin -> x.meta; anything else -> x.ext.meta */
	snprintf(path, sizeof(path), "%.*s.meta", (int) len, bin_path);
	f = fopen(path, "r");
	if (f == NULL)
		return 1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "imSampRate=", 11) == 0 ||
		    (strncmp(line, "niSampRate=", 11) == 0 && *fs == 0))
			*fs = strtod(line + 11, NULL);
		else if (strncmp(line, "nSavedChans=", 12) == 0) {
			char *end;
			long v = strtol(line + 12, &end, 10);
			/* a malformed count reads as none (n_channels needed)
			 */
			int ok =
			        end != line + 12 && v > 0 && v <= INT_MAX &&
			        (*end == '\0' || isspace((unsigned char) *end));
			*n_chan = ok ? (int) v : 0;
		}
	}
	fclose(f);
	return 0;
}

int
ss_source_open_file(struct ss_source *s, const char *path, int n_rows,
                    char *msg, size_t msglen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	if (fd < 0) {
		snprintf(msg, msglen, "recording %s: %s", path,
		         strerror(errno));
		return NQ_EBADPARAM;
	}
	return ss_source_open_fd(s, fd, path, n_rows, msg, msglen);
}

int
ss_source_open_fd(struct ss_source *s, int fd, const char *path, int n_rows,
                  char *msg, size_t msglen)
{
	struct stat st;

	memset(s, 0, sizeof(*s));
	s->fd = fd;
	if (fstat(s->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(msg, msglen, "recording %s is not a regular file",
		         path);
		goto bad;
	}
	if (n_rows <= 0 || st.st_size % (2 * (off_t) n_rows) != 0) {
		snprintf(msg, msglen,
		         "recording %s: size %lld is not a multiple of 2 × "
		         "n_channels (%d): wrong n_channels or not int16",
		         path, (long long) st.st_size, n_rows);
		goto bad;
	}
	s->n_rows = n_rows;
	s->n_samples = st.st_size / (2 * (off_t) n_rows);
	if (s->n_samples == 0) {
		snprintf(msg, msglen, "recording %s is empty", path);
		goto bad;
	}
	return 0;
bad:
	close(s->fd);
	s->fd = -1;
	return NQ_EBADPARAM;
}

void
ss_source_open_mem(struct ss_source *s, const int16_t *data, int64_t n_samples,
                   int n_rows)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->mem = data;
	s->n_rows = n_rows;
	s->n_samples = n_samples;
}

void
ss_source_close(struct ss_source *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s->tmp);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
}

static int
read_rows(struct ss_source *s, int64_t t0, int64_t n, const int16_t **out)
{
	size_t need = (size_t) n * (size_t) s->n_rows;
	size_t bytes = need * sizeof(int16_t), done = 0;

	if (s->fd < 0) {
		*out = s->mem + (size_t) t0 * (size_t) s->n_rows;
		return 0;
	}
	if (s->tmp_cap < need) {
		int16_t *t = realloc(s->tmp, bytes);
		if (t == NULL)
			return NQ_ENOMEM;
		s->tmp = t;
		s->tmp_cap = need;
	}
	while (done < bytes) {
		ssize_t r = pread(s->fd, (char *) s->tmp + done, bytes - done,
		                  (off_t) (t0 * s->n_rows * 2) + (off_t) done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return NQ_EIO;
		done += (size_t) r;
	}
	*out = s->tmp;
	return 0;
}

/* The conversion loop is built for AVX-512, AVX2 and the baseline
 * (NQ_CLONES; int16 to float is exact, so all agree). */
/* out rows (C floats each) = the probe's channels of n raw samples. row0 >=
 * 0: the channels are rows row0, row0 + 1, ... (a contiguous block, the
 * usual case), converted without an index per value. */
NQ_CLONES static void
convert_rows(const int16_t *raw, int n_rows, int64_t n, const int *row,
             int row0, int C, float *out)
{
	for (int64_t t = 0; t < n; t++) {
		const int16_t *r = raw + (size_t) t * (size_t) n_rows;
		float *o = out + (size_t) t * (size_t) C;
		if (row0 >= 0)
			for (int c = 0; c < C; c++)
				o[c] = r[row0 + c];
		else
			for (int c = 0; c < C; c++)
				o[c] = r[row[c]];
	}
}

/* Samples per pread: the raw block (n_rows × 2 bytes each) stays in cache
 * between the read and the conversion instead of a whole batch of it
 * going out to memory and back. */
#define READ_CHUNK 1024

int
ss_source_read(struct ss_source *s, const struct ss_probe *p, int64_t t0,
               int64_t n, float *out)
{
	int64_t a = t0 < 0 ? 0 : t0, b = t0 + n;
	int C = p->n, rc, row0 = C > 0 ? p->row[0] : -1;
	const int16_t *raw;

	if (b > s->n_samples)
		b = s->n_samples;
	if (a >= b) {
		memset(out, 0, sizeof(float) * (size_t) n * (size_t) C);
		return 0;
	}
	for (int c = 1; c < C && row0 >= 0; c++)
		if (p->row[c] != row0 + c)
			row0 = -1;
	for (int64_t t = a; t < b; t += READ_CHUNK) {
		int64_t m = b - t < READ_CHUNK ? b - t : READ_CHUNK;
		if ((rc = read_rows(s, t, m, &raw)) != 0)
			return rc;
		convert_rows(raw, s->n_rows, m, p->row, row0, C,
		             out + (size_t) (t - t0) * (size_t) C);
	}
	/* odd reflection outside the recording keeps the filter quiet */
	for (int64_t t = t0; t < a; t++) {
		int64_t m = 2 * a - t;
		float *o = out + (size_t) (t - t0) * (size_t) C;
		const float *e = out + (size_t) (a - t0) * (size_t) C;
		for (int c = 0; c < C; c++)
			o[c] = m < b ? 2 * e[c] - out[(size_t) (m - t0) * C + c]
			             : e[c];
	}
	for (int64_t t = b; t < t0 + n; t++) {
		int64_t m = 2 * (b - 1) - t;
		float *o = out + (size_t) (t - t0) * (size_t) C;
		const float *e = out + (size_t) (b - 1 - t0) * (size_t) C;
		for (int c = 0; c < C; c++)
			o[c] = m >= a ? 2 * e[c] -
			                        out[(size_t) (m - t0) * C + c]
			              : e[c];
	}
	return 0;
}
