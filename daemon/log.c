/* log.c — see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static enum log_level log_max = LOG_INFO;
static int log_journal;

static const struct {
	const char *name;
	enum log_level level;
} log_names[] = {
        {"error", LOG_ERR}, {"warning", LOG_WARN}, {"notice", LOG_NOTICE},
        {"info", LOG_INFO}, {"debug", LOG_DEBUG},
};

void
log_init(enum log_level max)
{
	const char *js = getenv("JOURNAL_STREAM");

	log_max = max;
	log_journal = js != NULL && js[0] != '\0';
}

void
log_set_level(enum log_level max)
{
	log_max = max;
}

int
log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
		if (strcasecmp(s, log_names[i].name) == 0) {
			*out = log_names[i].level;
			return 0;
		}
	}
	if (strcasecmp(s, "warn") == 0) {
		*out = LOG_WARN;
		return 0;
	}
	return -1;
}

const char *
log_level_name(enum log_level l)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
		if (log_names[i].level == l)
			return log_names[i].name;
	}
	return "info";
}

void
log_msg(enum log_level l, const char *fmt, ...)
{
	char line[2048];
	int n = 0;
	va_list ap;

	if (l > log_max)
		return;
	if (log_journal)
		n = snprintf(line, sizeof(line), "<%d>", (int) l);
	else if (l <= LOG_WARN)
		n = snprintf(line, sizeof(line),
		             "%s: ", l == LOG_ERR ? "error" : "warning");
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t) n, fmt, ap);
	va_end(ap);
	/* one write per line keeps lines whole when several processes share
	 * stderr */
	size_t len = strlen(line);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	for (size_t i = (size_t) n; i < len; i++) {
		if (line[i] == '\n')
			line[i] = ' ';
	}
	line[len] = '\n';
	fwrite(line, 1, len + 1, stderr);
	fflush(stderr);
}
