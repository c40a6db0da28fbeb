/* config.c — see config.h. */
#include "config.h"
#include "nq_sysmem.h"

#include "log.h"
#include "nq_error.h"
#include "scheduler.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Whether listen still holds the built-in default: the first "listen" of
 * the file (or the command line) replaces it, later ones add. */
static int config_listen_is_default;
static int config_mode_set;

#define CONFIG_STRINGIFY_(x) #x
#define CONFIG_STRINGIFY(x)  CONFIG_STRINGIFY_(x)

#define F(field) \
	offsetof(struct config, field), sizeof(((struct config *) 0)->field)
#define SLOTS 1, 1024, "an integer 1..1024"
#define BYTES 0, 0, "a byte count like 1073741824 or 1G"

const struct config_key config_keys[] = {
        {"listen", CONFIG_LISTEN, F(listen), 0, 0, NULL, NULL},
        {"events", CONFIG_PATH, F(events), 0, 0, NULL, NULL},
        {"state_dir", CONFIG_PATH, F(state_dir), 0, 0, NULL, NULL},
        {"devices", CONFIG_STR, F(devices), 0, 0, NULL, NULL},
        {"cpu_slots", CONFIG_INT, F(cpu_slots), SLOTS, "1"},
        {"gpu_slots", CONFIG_INT, F(gpu_slots), SLOTS, "4"},
        {"cpu_memory_bytes", CONFIG_BYTES, F(cpu_memory_bytes), BYTES, NULL},
        {"headroom_bytes", CONFIG_BYTES, F(headroom_bytes), BYTES, "256M"},
        {"max_message_bytes", CONFIG_BYTES, F(max_message_bytes), BYTES, "1G"},
        {"max_upload_bytes", CONFIG_BYTES, F(max_upload_bytes), BYTES, "1G"},
        {"max_attempts", CONFIG_INT, F(max_attempts), SLOTS, "3"},
        {"max_job_seconds", CONFIG_INT, F(max_job_seconds), 0, 2147483647L,
         "seconds 0..2147483647 (0 = no maximum)", "604800"},
        {"heartbeat_timeout_s", CONFIG_INT, F(heartbeat_timeout_s), 2, 86400,
         "seconds 2..86400", "60"},
        {"tcp_owner_uid", CONFIG_UID, F(tcp_owner_uid), 1, 4294967294L,
         "a uid other than 0 (root)", "65534"},
        {"tcp_unauthenticated", CONFIG_BOOL, F(tcp_unauthenticated), 0, 0,
         "yes or no", "no"},
        {"worker_path", CONFIG_PATH, F(worker_path), 0, 0, NULL, NULL},
        {"log_level", CONFIG_LOGLEVEL, F(log_level), 0, 0,
         "error, warning, notice, info or debug", "info"},
        {"socket_mode", CONFIG_MODE, F(socket_mode), 0, 0777,
         "octal permissions like 0660", NULL},
        {"contexts", CONFIG_INT, F(contexts), SLOTS, "16"},
        {"auto_cpu_max_flops", CONFIG_NUMBER, F(auto_cpu_max_flops), 0, 0,
         "a number like 2e11",
         CONFIG_STRINGIFY(SCHED_AUTO_CPU_MAX_FLOPS_DEFAULT)},
        {"retention_days", CONFIG_INT, F(retention_days), 0, 36500,
         "days 0..36500 (0 = keep forever)", "30"},
        {"admin_group", CONFIG_STR, F(admin_group), 0, 0, NULL, NULL},
        {"max_queued_jobs_per_user", CONFIG_INT, F(max_queued_jobs_per_user), 0,
         100000000, "an integer 0..100000000 (0 = unlimited)", "1000"},
        {"max_spool_bytes_per_user", CONFIG_BYTES, F(max_spool_bytes_per_user),
         BYTES, "100G"},
        {"http_listen", CONFIG_STR, F(http_listen), 0, 0, NULL, NULL},
        {"min_free_bytes", CONFIG_BYTES, F(min_free_bytes), BYTES, "64M"},
        {"executor", CONFIG_STR, F(executor), 0, 0, NULL, "local"},
        {"slurm_spool_dir", CONFIG_STR, F(slurm_spool_dir), 0, 0, NULL, NULL},
        {"slurm_partition", CONFIG_STR, F(slurm_partition), 0, 0, NULL, NULL},
        {"slurm_account", CONFIG_STR, F(slurm_account), 0, 0, NULL, NULL},
        {"slurm_qos", CONFIG_STR, F(slurm_qos), 0, 0, NULL, NULL},
        {"slurm_sbatch_args", CONFIG_STR, F(slurm_sbatch_args), 0, 0, NULL,
         NULL},
        {"slurm_poll_s", CONFIG_INT, F(slurm_poll_s), 1, 3600,
         "seconds 1..3600", "5"},
        {"slurm_bin_dir", CONFIG_STR, F(slurm_bin_dir), 0, 0, NULL, NULL},
};
const size_t config_nkeys = sizeof(config_keys) / sizeof(config_keys[0]);

#undef F
#undef SLOTS
#undef BYTES

const struct config_key *
config_key_find(const char *name)
{
	for (size_t i = 0; i < config_nkeys; i++) {
		if (strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	}
	return NULL;
}

int
config_worker_default(const char *exe, const char *fallback, char *out,
                      size_t n)
{
	const char *slash = strrchr(exe, '/');
	int dl = slash == NULL ? 0 : (int) (slash - exe + 1);
	int w = snprintf(out, n, "%.*sneuroq-worker", dl, exe);

	if (w < 0 || (size_t) w >= n)
		return -1;
	if (fallback == NULL || access(out, F_OK) == 0)
		return 0;
	w = snprintf(out, n, "%s", fallback);
	return (w < 0 || (size_t) w >= n) ? -1 : 0;
}

int
config_defaults(struct config *c, char *msg, size_t msglen)
{
	const char *xrt = getenv("XDG_RUNTIME_DIR");
	const char *xst = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
#ifdef NEUROQ_WORKER_DEFAULT
	const char *worker = NEUROQ_WORKER_DEFAULT;
#else
	const char *worker = NULL;
#endif
	char rundir[CONFIG_PATH_MAX];
	char exe[CONFIG_PATH_MAX];
	char emsg[256];
	ssize_t n;
	int rc;

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < config_nkeys; i++) {
		if (config_keys[i].def == NULL)
			continue;
		rc = config_set(c, config_keys[i].name, config_keys[i].def,
		                emsg, sizeof(emsg));
		if (rc != 0) {
			snprintf(msg, msglen, "built-in default: %s", emsg);
			return rc;
		}
	}

	/* the rest depends on the environment */
	c->system = geteuid() == 0;
	if (!c->system && xrt != NULL && xrt[0] == '/')
		snprintf(rundir, sizeof(rundir), "%.900s/neuroq", xrt);
	else
		snprintf(rundir, sizeof(rundir), "/run/neuroq");
	snprintf(c->listen[0], sizeof(c->listen[0]), "ipc://%.960s/neuroq.sock",
	         rundir);
	c->nlisten = 1;
	config_listen_is_default = 1;
	config_mode_set = 0; /* socket_mode: config_finish */
	c->events[0] = '\0'; /* beside the first ipc listen (config_finish) */

	if (!c->system && xst != NULL && xst[0] == '/')
		snprintf(c->state_dir, sizeof(c->state_dir), "%.960s/neuroq",
		         xst);
	else if (!c->system && home != NULL && home[0] == '/')
		snprintf(c->state_dir, sizeof(c->state_dir),
		         "%.960s/.local/state/neuroq", home);
	else
		snprintf(c->state_dir, sizeof(c->state_dir), "/var/lib/neuroq");

	c->cpu_memory_bytes = nq_sysmem_bytes("MemTotal") / 10 * 8;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		snprintf(msg, msglen, "cannot read /proc/self/exe: %s",
		         strerror(errno));
		return NQ_EIO;
	}
	exe[n] = '\0';
	if (config_worker_default(exe, worker, c->worker_path,
	                          sizeof(c->worker_path)) != 0) {
		snprintf(msg, msglen, "executable path too long");
		return NQ_EIO;
	}
	return 0;
}

int
config_parse_bytes(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	while (isspace((unsigned char) *s))
		s++;
	if (!isdigit((unsigned char) *s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	switch (toupper((unsigned char) *end)) {
	case 'K':
		mul = 1ull << 10;
		end++;
		break;
	case 'M':
		mul = 1ull << 20;
		end++;
		break;
	case 'G':
		mul = 1ull << 30;
		end++;
		break;
	case 'T':
		mul = 1ull << 40;
		end++;
		break;
	default:
		break;
	}
	if (mul > 1 && *end == 'i')
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end != '\0')
		return -1;
	if (v > UINT64_MAX / mul)
		return -1;
	*out = (uint64_t) v * mul;
	return 0;
}

static int
config_int(const char *v, long lo, long hi, long *out)
{
	char *end;
	long x;

	errno = 0;
	x = strtol(v, &end, 0);
	if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi)
		return -1;
	*out = x;
	return 0;
}

static int
config_bool(const char *v, long *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
			*out = strcasecmp(v, yes[i]) == 0;
			return 0;
		}
	}
	return -1;
}

static int
config_str(char *dst, size_t n, const char *v)
{
	if (strlen(v) >= n)
		return -1;
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

static int
config_add_listen(struct config *c, const char *v, char *msg, size_t msglen)
{
	char buf[CONFIG_PATH_MAX * 2];
	char *save = NULL;

	if (config_listen_is_default) {
		c->nlisten = 0;
		config_listen_is_default = 0;
	}
	if (config_str(buf, sizeof(buf), v) != 0)
		goto toolong;
	for (char *t = strtok_r(buf, " \t,", &save); t != NULL;
	     t = strtok_r(NULL, " \t,", &save)) {
		if (c->nlisten >= CONFIG_MAX_LISTEN) {
			snprintf(msg, msglen, "listen: at most %d addresses",
			         CONFIG_MAX_LISTEN);
			return NQ_EBADPARAM;
		}
		if (strstr(t, "://") == NULL) {
			snprintf(msg, msglen,
			         "listen: '%s' is not a URL (ipc:///path or "
			         "tcp://host:port)",
			         t);
			return NQ_EBADPARAM;
		}
		if (config_str(c->listen[c->nlisten], CONFIG_PATH_MAX, t) != 0)
			goto toolong;
		c->nlisten++;
	}
	return 0;
toolong:
	snprintf(msg, msglen, "listen: value too long");
	return NQ_EBADPARAM;
}

int
config_set(struct config *c, const char *key, const char *v, char *msg,
           size_t msglen)
{
	const struct config_key *k = config_key_find(key);
	char *field;
	char *end;
	long x;
	uint64_t b;
	double f;
	enum log_level lv;

	if (k == NULL) {
		snprintf(msg, msglen, "unknown setting '%s'", key);
		return NQ_EBADPARAM;
	}
	field = (char *) c + k->off;
	switch (k->type) {
	case CONFIG_LISTEN:
		return config_add_listen(c, v, msg, msglen);
	case CONFIG_PATH:
		if (config_str(field, k->size, v) != 0 || v[0] == '\0') {
			snprintf(msg, msglen, "%s: empty or too long", key);
			return NQ_EBADPARAM;
		}
		return 0;
	case CONFIG_STR:
		if (config_str(field, k->size, v) != 0) {
			snprintf(msg, msglen, "%s: too long", key);
			return NQ_EBADPARAM;
		}
		return 0;
	case CONFIG_INT:
		if (config_int(v, k->lo, k->hi, &x) != 0)
			goto bad;
		*(int *) field = (int) x;
		return 0;
	case CONFIG_UID:
		if (config_int(v, k->lo, k->hi, &x) != 0)
			goto bad;
		*(uint32_t *) field = (uint32_t) x;
		return 0;
	case CONFIG_BYTES:
		if (config_parse_bytes(v, &b) != 0)
			goto bad;
		*(uint64_t *) field = b;
		return 0;
	case CONFIG_NUMBER:
		errno = 0;
		f = strtod(v, &end);
		/* NaN/inf are no threshold; -1 = GPUs only is allowed */
		if (errno != 0 || end == v || *end != '\0' || !isfinite(f))
			goto bad;
		*(double *) field = f;
		return 0;
	case CONFIG_LOGLEVEL:
		if (log_level_parse(v, &lv) != 0)
			goto bad;
		snprintf(field, k->size, "%s", log_level_name(lv));
		return 0;
	case CONFIG_BOOL:
		if (config_bool(v, &x) != 0)
			goto bad;
		*(int *) field = (int) x;
		return 0;
	case CONFIG_MODE:
		errno = 0;
		x = strtol(v, &end, 8);
		if (errno != 0 || end == v || *end != '\0' || x < k->lo ||
		    x > k->hi)
			goto bad;
		*(int *) field = (int) x;
		config_mode_set = 1;
		return 0;
	}
bad:
	snprintf(msg, msglen, "%s: expected %s, got '%s'", key, k->expect, v);
	return NQ_EBADPARAM;
}

static char *
config_trim(char *s)
{
	char *e;

	while (isspace((unsigned char) *s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char) e[-1]))
		*--e = '\0';
	return s;
}

int
config_load(struct config *c, const char *path, char *msg, size_t msglen)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	char emsg[512];
	int lineno = 0;
	int rc = 0;

	if (f == NULL) {
		snprintf(msg, msglen, "cannot open config %s: %s", path,
		         strerror(errno));
		return NQ_EIO;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			snprintf(msg, msglen, "%s:%d: line too long", path,
			         lineno);
			rc = NQ_EBADPARAM;
			break;
		}
		char *hash = strchr(line, '#');
		if (hash != NULL)
			*hash = '\0';
		char *s = config_trim(line);
		if (*s == '\0')
			continue;
		char *eq = strchr(s, '=');
		if (eq == NULL) {
			snprintf(msg, msglen,
			         "%s:%d: expected 'key = value', got '%s'",
			         path, lineno, s);
			rc = NQ_EBADPARAM;
			break;
		}
		*eq = '\0';
		char *key = config_trim(s);
		char *val = config_trim(eq + 1);
		size_t vl = strlen(val);
		if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
			val[vl - 1] = '\0';
			val++;
		}
		rc = config_set(c, key, val, emsg, sizeof(emsg));
		if (rc != 0) {
			snprintf(msg, msglen, "%s:%d: %s", path, lineno, emsg);
			break;
		}
	}
	fclose(f);
	return rc;
}

int
config_finish(struct config *c, char *msg, size_t msglen)
{
	int under_run = 0;

	/* a system service's socket dir (/run/neuroq), not a user's own
	 * runtime dir (/run/user/UID): a user daemon stays 0600 */
	for (int i = 0; i < c->nlisten; i++) {
		if (strncmp(c->listen[i], "ipc:///run/", 11) == 0 &&
		    strncmp(c->listen[i], "ipc:///run/user/", 16) != 0)
			under_run = 1;
	}
	if (!config_mode_set)
		c->socket_mode = (c->system || under_run) ? 0660 : 0600;
	if (c->events[0] == '\0') {
		const char *ipc = NULL;
		for (int i = 0; i < c->nlisten && ipc == NULL; i++) {
			if (strncmp(c->listen[i], "ipc://", 6) == 0)
				ipc = c->listen[i] + 6;
		}
		if (ipc == NULL) {
			snprintf(msg, msglen,
			         "events: no ipc listen address to put the "
			         "events socket beside; set events");
			return NQ_EBADPARAM;
		}
		const char *slash = strrchr(ipc, '/');
		int dl = slash == NULL ? 0 : (int) (slash - ipc);
		int w = snprintf(c->events, sizeof(c->events),
		                 "ipc://%.*s/events.sock", dl, ipc);
		if (w < 0 || (size_t) w >= sizeof(c->events)) {
			snprintf(msg, msglen, "events: path too long");
			return NQ_EBADPARAM;
		}
	}
	/* only ipc:// tells the daemon who the caller is */
	for (int i = 0; i < c->nlisten; i++) {
		if (strncmp(c->listen[i], "ipc://", 6) == 0 ||
		    c->tcp_unauthenticated)
			continue;
		snprintf(msg, msglen,
		         "listen: %s carries no identity: every caller would "
		         "be tcp_owner_uid %" PRIu32 ". Remote users should "
		         "use ssh:// URLs to the ipc socket (PROTOCOL.md "
		         "section 1); set tcp_unauthenticated = yes to listen "
		         "there anyway",
		         c->listen[i], c->tcp_owner_uid);
		return NQ_EBADPARAM;
	}
	if (strncmp(c->events, "ipc://", 6) != 0) {
		snprintf(msg, msglen,
		         "events: %s is not an ipc:// URL (the daemon checks "
		         "each subscriber's uid, which only ipc carries)",
		         c->events);
		return NQ_EBADPARAM;
	}
	if (c->cpu_memory_bytes == 0) {
		snprintf(msg, msglen,
		         "cpu_memory_bytes: cannot read MemTotal; set it");
		return NQ_EBADPARAM;
	}
	if (c->max_message_bytes < 4096 || c->max_message_bytes > INT32_MAX) {
		/* NNG's receive cap is a size_t but a REQ resend of >2 GiB is
		 * no way to move data; keep it sane. */
		snprintf(msg, msglen,
		         "max_message_bytes: must be 4096 .. 2147483647");
		return NQ_EBADPARAM;
	}
	if (strcmp(c->executor, "local") != 0 && !config_is_slurm(c)) {
		snprintf(msg, msglen,
		         "executor: expected local or slurm, got '%s'",
		         c->executor);
		return NQ_EBADPARAM;
	}
	if (config_is_slurm(c) && c->slurm_spool_dir[0] != '/') {
		snprintf(
		        msg, msglen,
		        "slurm_spool_dir: executor = slurm needs an absolute "
		        "path on a filesystem shared with the cluster's nodes");
		return NQ_EBADPARAM;
	}
	return 0;
}

int
config_is_slurm(const struct config *c)
{
	return strcmp(c->executor, "slurm") == 0;
}

const char *
config_spool_root(const struct config *c)
{
	return config_is_slurm(c) ? c->slurm_spool_dir : c->state_dir;
}

void
config_print(const struct config *c, FILE *f)
{
	fprintf(f, "# neuroqd effective configuration\n");
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct config_key *k = &config_keys[i];
		const char *field = (const char *) c + k->off;

		if (k->type == CONFIG_LISTEN) {
			for (int l = 0; l < c->nlisten; l++)
				fprintf(f, "%s = %s\n", k->name, c->listen[l]);
			continue;
		}
		fprintf(f, "%s = ", k->name);
		switch (k->type) {
		case CONFIG_LISTEN:
			break;
		case CONFIG_PATH:
		case CONFIG_STR:
		case CONFIG_LOGLEVEL:
			fprintf(f, "%s", field);
			break;
		case CONFIG_INT:
			fprintf(f, "%d", *(const int *) field);
			break;
		case CONFIG_UID:
			fprintf(f, "%" PRIu32, *(const uint32_t *) field);
			break;
		case CONFIG_BYTES:
			fprintf(f, "%" PRIu64, *(const uint64_t *) field);
			break;
		case CONFIG_NUMBER:
			fprintf(f, "%.17g", *(const double *) field);
			break;
		case CONFIG_MODE:
			fprintf(f, "%04o", *(const int *) field);
			break;
		case CONFIG_BOOL:
			fputs(*(const int *) field ? "yes" : "no", f);
			break;
		}
		fputc('\n', f);
	}
}
