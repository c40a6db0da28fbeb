/*
 * log.h — one line per event, "message key=value ...", to stderr. Under
 * systemd (JOURNAL_STREAM set) each line starts with a syslog priority
 * "<N>" so journald files it at the right level.
 */
#ifndef LOG_H
#define LOG_H

enum log_level {
	LOG_ERR = 3,
	LOG_WARN = 4,
	LOG_NOTICE = 5,
	LOG_INFO = 6,
	LOG_DEBUG = 7
};

/* Decides the "<N>" prefix from the environment; call once at start-up. */
void log_init(enum log_level max);
void log_set_level(enum log_level max);
/* "error" "warning" "notice" "info" "debug" → level; 0 or -1. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level l);
void log_msg(enum log_level l, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

#define log_err(...)    log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)  log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
