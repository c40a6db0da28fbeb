/* config.c — see config.h. */
#include "sysmem.h"
#include "config.h"

#include "log.h"
#include "nq_error.h"
#include "scheduler.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Whether listen still holds the built-in default: the first "listen" of
 * the file (or the command line) replaces it, later ones add. */
static int config_listen_is_default;
static int config_mode_set;

static int
config_fmt(char *dst, size_t n, const char *a, const char *b)
{
	int w = snprintf(dst, n, "%s%s", a, b);

	return (w < 0 || (size_t) w >= n) ? -1 : 0;
}

int
config_defaults(struct config *c, char *msg, size_t msglen)
{
	const char *xrt = getenv("XDG_RUNTIME_DIR");
	const char *xst = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	char rundir[CONFIG_PATH_MAX];
	char exe[CONFIG_PATH_MAX];
	ssize_t n;

	memset(c, 0, sizeof(*c));
	c->system = geteuid() == 0;
	if (!c->system && xrt != NULL && xrt[0] == '/')
		snprintf(rundir, sizeof(rundir), "%.900s/neuroq", xrt);
	else
		snprintf(rundir, sizeof(rundir), "/run/neuroq");
	snprintf(c->listen[0], sizeof(c->listen[0]), "ipc://%.960s/neuroq.sock",
	         rundir);
	c->nlisten = 1;
	config_listen_is_default = 1;
	config_mode_set = 0;
	c->events[0] = '\0'; /* beside the first ipc listen (config_finish) */

	if (c->system)
		snprintf(c->state_dir, sizeof(c->state_dir), "/var/lib/neuroq");
	else if (xst != NULL && xst[0] == '/')
		snprintf(c->state_dir, sizeof(c->state_dir), "%.960s/neuroq",
		         xst);
	else if (home != NULL && home[0] == '/')
		snprintf(c->state_dir, sizeof(c->state_dir),
		         "%.960s/.local/state/neuroq", home);
	else
		snprintf(c->state_dir, sizeof(c->state_dir), "/var/lib/neuroq");

	c->cpu_slots = 1;
	c->gpu_slots = 4;
	c->cpu_memory_bytes = sysmem_bytes("MemTotal") / 10 * 8;
	c->headroom_bytes = 256ull << 20;
	c->max_message_bytes = 1ull << 30;
	c->max_attempts = 3;
	c->tcp_owner_uid = 65534;
	c->contexts = 16;
	c->auto_cpu_max_flops = SCHED_AUTO_CPU_MAX_FLOPS_DEFAULT;
	c->retention_days = 30;
	snprintf(c->log_level, sizeof(c->log_level), "info");

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		snprintf(msg, msglen, "cannot read /proc/self/exe: %s",
		         strerror(errno));
		return NQ_EIO;
	}
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (slash != NULL)
		slash[1] = '\0';
	if (config_fmt(c->worker_path, sizeof(c->worker_path), exe,
	               "neuroq-worker") != 0) {
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
	long x;
	uint64_t b;
	enum log_level lv;

	if (strcmp(key, "listen") == 0)
		return config_add_listen(c, v, msg, msglen);
	if (strcmp(key, "events") == 0 || strcmp(key, "state_dir") == 0 ||
	    strcmp(key, "worker_path") == 0) {
		char *dst = key[0] == 'e'   ? c->events
		            : key[0] == 's' ? c->state_dir
		                            : c->worker_path;
		if (config_str(dst, CONFIG_PATH_MAX, v) != 0 || v[0] == '\0') {
			snprintf(msg, msglen, "%s: empty or too long", key);
			return NQ_EBADPARAM;
		}
		return 0;
	}
	if (strcmp(key, "devices") == 0) {
		if (config_str(c->devices, sizeof(c->devices), v) != 0) {
			snprintf(msg, msglen, "devices: too long");
			return NQ_EBADPARAM;
		}
		return 0;
	}
	if (strcmp(key, "cpu_slots") == 0 || strcmp(key, "gpu_slots") == 0 ||
	    strcmp(key, "max_attempts") == 0 || strcmp(key, "contexts") == 0) {
		if (config_int(v, 1, 1024, &x) != 0) {
			snprintf(msg, msglen,
			         "%s: expected an integer 1..1024, got '%s'",
			         key, v);
			return NQ_EBADPARAM;
		}
		if (key[0] == 'c' && key[1] == 'p')
			c->cpu_slots = (int) x;
		else if (key[0] == 'g')
			c->gpu_slots = (int) x;
		else if (key[0] == 'm')
			c->max_attempts = (int) x;
		else
			c->contexts = (int) x;
		return 0;
	}
	if (strcmp(key, "cpu_memory_bytes") == 0 ||
	    strcmp(key, "headroom_bytes") == 0 ||
	    strcmp(key, "max_message_bytes") == 0) {
		if (config_parse_bytes(v, &b) != 0) {
			snprintf(msg, msglen,
			         "%s: expected a byte count like 1073741824 or "
			         "1G, got '%s'",
			         key, v);
			return NQ_EBADPARAM;
		}
		if (key[0] == 'c')
			c->cpu_memory_bytes = b;
		else if (key[0] == 'h')
			c->headroom_bytes = b;
		else
			c->max_message_bytes = b;
		return 0;
	}
	if (strcmp(key, "auto_cpu_max_flops") == 0) {
		char *end;
		double f;
		errno = 0;
		f = strtod(v, &end);
		/* NaN/inf are no threshold; -1 = GPUs only is allowed */
		if (errno != 0 || end == v || *end != '\0' || !isfinite(f)) {
			snprintf(msg, msglen,
			         "auto_cpu_max_flops: expected a number like "
			         "2e11, got '%s'",
			         v);
			return NQ_EBADPARAM;
		}
		c->auto_cpu_max_flops = f;
		return 0;
	}
	if (strcmp(key, "retention_days") == 0) {
		if (config_int(v, 0, 36500, &x) != 0) {
			snprintf(msg, msglen,
			         "retention_days: expected days 0..36500 (0 = "
			         "keep forever), got '%s'",
			         v);
			return NQ_EBADPARAM;
		}
		c->retention_days = (int) x;
		return 0;
	}
	if (strcmp(key, "tcp_owner_uid") == 0) {
		if (config_int(v, 0, 4294967294L, &x) != 0) {
			snprintf(msg, msglen,
			         "tcp_owner_uid: expected a uid, got '%s'", v);
			return NQ_EBADPARAM;
		}
		c->tcp_owner_uid = (uint32_t) x;
		return 0;
	}
	if (strcmp(key, "log_level") == 0) {
		if (log_level_parse(v, &lv) != 0) {
			snprintf(msg, msglen,
			         "log_level: expected error, warning, notice, "
			         "info or debug, got '%s'",
			         v);
			return NQ_EBADPARAM;
		}
		snprintf(c->log_level, sizeof(c->log_level), "%s",
		         log_level_name(lv));
		return 0;
	}
	if (strcmp(key, "socket_mode") == 0) {
		char *end;
		errno = 0;
		x = strtol(v, &end, 8);
		if (errno != 0 || end == v || *end != '\0' || x < 0 ||
		    x > 0777) {
			snprintf(msg, msglen,
			         "socket_mode: expected octal permissions like "
			         "0660, got '%s'",
			         v);
			return NQ_EBADPARAM;
		}
		c->socket_mode = (int) x;
		config_mode_set = 1;
		return 0;
	}
	snprintf(msg, msglen, "unknown setting '%s'", key);
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

	for (int i = 0; i < c->nlisten; i++) {
		if (strncmp(c->listen[i], "ipc:///run/", 11) == 0)
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
	return 0;
}

void
config_print(const struct config *c, FILE *f)
{
	fprintf(f, "# neuroqd effective configuration\n");
	for (int i = 0; i < c->nlisten; i++)
		fprintf(f, "listen = %s\n", c->listen[i]);
	fprintf(f, "events = %s\n", c->events);
	fprintf(f, "state_dir = %s\n", c->state_dir);
	fprintf(f, "devices = %s\n", c->devices);
	fprintf(f, "cpu_slots = %d\n", c->cpu_slots);
	fprintf(f, "gpu_slots = %d\n", c->gpu_slots);
	fprintf(f, "cpu_memory_bytes = %" PRIu64 "\n", c->cpu_memory_bytes);
	fprintf(f, "headroom_bytes = %" PRIu64 "\n", c->headroom_bytes);
	fprintf(f, "max_message_bytes = %" PRIu64 "\n", c->max_message_bytes);
	fprintf(f, "max_attempts = %d\n", c->max_attempts);
	fprintf(f, "tcp_owner_uid = %" PRIu32 "\n", c->tcp_owner_uid);
	fprintf(f, "worker_path = %s\n", c->worker_path);
	fprintf(f, "log_level = %s\n", c->log_level);
	fprintf(f, "socket_mode = %04o\n", c->socket_mode);
	fprintf(f, "contexts = %d\n", c->contexts);
	fprintf(f, "auto_cpu_max_flops = %.17g\n", c->auto_cpu_max_flops);
	fprintf(f, "retention_days = %d\n", c->retention_days);
}
