/*
 * top.c — `neuroq top`: the daemon's queue in the terminal, redrawn every
 * second like htop/nvtop: devices with their memory ledger, running jobs
 * with progress and ETA, the queue in the order it will run with each
 * job's reason for waiting, recent finished jobs. One `queue` request per
 * frame (proto/PROTOCOL.md §5); what the reply holds follows the protocol's
 * privacy rules, this file only draws it.
 *
 * Plain ANSI escapes, no curses: the alternate screen, cursor home, erase
 * to the end of each line. The terminal is put in non-canonical no-echo
 * mode so that `q` quits at once; Ctrl-C (SIGINT), SIGTERM and SIGHUP quit
 * too, and every way out restores the terminal; Ctrl-Z gives the shell its
 * terminal back while top is stopped, and `fg` redraws. --once prints one frame
 * without escapes (scripts, tests), --json the reply.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "nq_clock.h"

#define TOP_MIN_WIDTH 40

static volatile sig_atomic_t top_quit, top_resized, top_suspend;

static void
on_quit(int sig)
{
	(void) sig;
	top_quit = 1;
}

static void
on_winch(int sig)
{
	(void) sig;
	top_resized = 1;
}

static void
on_suspend(int sig)
{
	(void) sig;
	top_suspend = 1;
}

/* ---- a frame: lines cut to the width, at most height of them */

struct frame {
	char *buf;
	size_t len, cap;
	int width, height, lines; /* height 0: no limit */
	int tty;                  /* erase each line's rest */
	int err;
};

static void frame_line(struct frame *f, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void
frame_line(struct frame *f, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	size_t n;

	if (f->err || (f->height > 0 && f->lines >= f->height))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	n = strlen(line);
	if (n > (size_t) f->width)
		n = (size_t) f->width;
	if (f->len + n + 8 > f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 8192;
		char *nb;
		while (cap < f->len + n + 8)
			cap *= 2;
		if ((nb = realloc(f->buf, cap)) == NULL) {
			f->err = 1;
			return;
		}
		f->buf = nb;
		f->cap = cap;
	}
	memcpy(f->buf + f->len, line, n);
	f->len += n;
	/* on a terminal: erase what the last frame left on the line */
	if (f->tty) {
		memcpy(f->buf + f->len, "\033[K", 3);
		f->len += 3;
	}
	f->buf[f->len++] = '\n';
	f->lines++;
}

/* the reply's list under key; NULL when absent */
static const struct nq_value *
rep_list(const struct nq_map *m, const char *key)
{
	const struct nq_value *v = nq_map_get(m, key);

	return v != NULL && v->kind == NQ_LIST ? v : NULL;
}

static void
bar(char *buf, int width, double p)
{
	int fill;

	if (!(p >= 0))
		p = 0;
	if (p > 1)
		p = 1;
	fill = (int) lround(p * width);
	for (int i = 0; i < width; i++)
		buf[i] = i < fill ? '#' : '.';
	buf[width] = 0;
}

static void
dur_or_dash(char *buf, size_t n, double s)
{
	if (s >= 0 && isfinite(s))
		cli_fmt_dur(buf, n, s);
	else
		snprintf(buf, n, "?");
}

/* the owner column: the uid when the reply has it */
static void
owner_col(char *buf, size_t n, const struct nq_map *j)
{
	double o = cli_map_num(j, "owner", -1);

	if (o >= 0)
		snprintf(buf, n, "%.0f", o);
	else
		snprintf(buf, n, "-");
}

static void
draw_devices(struct frame *f, const struct nq_map *rep)
{
	const struct nq_value *devs = rep_list(rep, "devices");
	int bw = f->width - 62;

	if (bw > 30)
		bw = 30;
	if (bw < 0)
		bw = 0;
	frame_line(f, "%-8s %-5s %-*s%s%21s %10s %5s", "DEVICE", "KIND", bw, "",
	           bw ? " " : "", "GRANTED / CAPACITY", "MEM_TOTAL", "SLOTS");
	for (size_t i = 0; devs != NULL && i < devs->u.list.n; i++) {
		const struct nq_value *d = &devs->u.list.items[i];
		const struct nq_map *m;
		char b[64], g[32], c[32], t[32], gc[72];
		double cap, res;

		if (d->kind != NQ_MAP)
			continue;
		m = d->u.map;
		cap = cli_map_num(m, "capacity", 0);
		res = cli_map_num(m, "mem_reserved", 0);
		bar(b, bw, cap > 0 ? res / cap : 0);
		cli_human_bytes(g, sizeof(g), res);
		cli_human_bytes(c, sizeof(c), cap);
		cli_human_bytes(t, sizeof(t), cli_map_num(m, "mem_total", 0));
		snprintf(gc, sizeof(gc), "%s / %s", g, c);
		frame_line(f, "%-8s %-5s %s%s%21s %10s %2.0f/%-2.0f",
		           cli_map_str(m, "name", "?"),
		           cli_map_str(m, "kind", "?"), b, bw ? " " : "", gc, t,
		           cli_map_num(m, "running_count", 0),
		           cli_map_num(m, "slots", 0));
	}
}

static void
draw_running(struct frame *f, const struct nq_map *rep)
{
	const struct nq_value *run = rep_list(rep, "running");
	size_t n = run ? run->u.list.n : 0;
	int bw = f->width - 90;

	if (bw > 30)
		bw = 30;
	if (bw < 0)
		bw = 0;
	frame_line(f, "%s", "");
	frame_line(f, "RUNNING (%zu)", n);
	if (n == 0)
		return;
	frame_line(f, "%8s %-10s %6s %-8s %-*s%s%5s %8s %8s  %s", "ID", "TYPE",
	           "OWNER", "DEVICE", bw, "", bw ? " " : "", "PROG", "ETA",
	           "ELAPSED", "STAGE");
	for (size_t i = 0; i < n; i++) {
		const struct nq_value *j = &run->u.list.items[i];
		const struct nq_map *m;
		char b[64], eta[32], el[32], own[24];
		double p;

		if (j->kind != NQ_MAP)
			continue;
		m = j->u.map;
		p = cli_map_num(m, "progress", 0);
		bar(b, bw, p);
		dur_or_dash(eta, sizeof(eta), cli_map_num(m, "eta_s", -1));
		dur_or_dash(el, sizeof(el), cli_map_num(m, "elapsed_s", -1));
		owner_col(own, sizeof(own), m);
		frame_line(f,
		           "%8.0f %-10.10s %6s %-8.8s %s%s%4.0f%% %8s %8s  %s",
		           cli_map_num(m, "id", 0), cli_map_str(m, "type", "?"),
		           own, cli_map_str(m, "device", ""), b, bw ? " " : "",
		           100 * p, eta, el, cli_map_str(m, "stage", ""));
	}
}

static void
draw_queue(struct frame *f, const struct nq_map *rep)
{
	const struct nq_value *q = rep_list(rep, "queue");
	size_t n = q ? q->u.list.n : 0;

	frame_line(f, "%s", "");
	frame_line(f, "QUEUE (%.0f waiting%s)",
	           cli_map_num(rep, "queue_total", 0),
	           nq_map_get(rep, "others") != NULL && n > 0
	                   ? "; POS counts every user's jobs"
	                   : "");
	if (n == 0)
		return;
	frame_line(f, "%5s %8s %-10s %6s %4s  %s", "POS", "ID", "TYPE", "OWNER",
	           "PRIO", "WAITING FOR");
	for (size_t i = 0; i < n; i++) {
		const struct nq_value *j = &q->u.list.items[i];
		const struct nq_map *m;
		char own[24];

		if (j->kind != NQ_MAP)
			continue;
		m = j->u.map;
		owner_col(own, sizeof(own), m);
		frame_line(f, "%5.0f %8.0f %-10.10s %6s %4.0f  %s",
		           cli_map_num(m, "position", 0),
		           cli_map_num(m, "id", 0), cli_map_str(m, "type", "?"),
		           own, cli_map_num(m, "priority", 0),
		           cli_map_str(m, "reason", ""));
	}
}

static void
draw_recent(struct frame *f, const struct nq_map *rep)
{
	const struct nq_value *rec = rep_list(rep, "recent");
	size_t n = rec ? rec->u.list.n : 0;

	frame_line(f, "%s", "");
	frame_line(f, "RECENT (%zu)", n);
	if (n == 0)
		return;
	frame_line(f, "%8s %-10s %6s %-8s %-8s %8s  %s", "ID", "TYPE", "OWNER",
	           "STATE", "DEVICE", "RUN", "FINISHED");
	for (size_t i = 0; i < n; i++) {
		const struct nq_value *j = &rec->u.list.items[i];
		const struct nq_map *m;
		char own[24], run[32], fin[32];
		double st, en;
		time_t t;
		struct tm tm;

		if (j->kind != NQ_MAP)
			continue;
		m = j->u.map;
		owner_col(own, sizeof(own), m);
		st = cli_map_num(m, "started", 0);
		en = cli_map_num(m, "finished", 0);
		dur_or_dash(run, sizeof(run),
		            st > 0 && en >= st ? en - st : -1);
		t = (time_t) en;
		if (en > 0 && localtime_r(&t, &tm))
			strftime(fin, sizeof(fin), "%H:%M:%S", &tm);
		else
			snprintf(fin, sizeof(fin), "-");
		frame_line(f, "%8.0f %-10.10s %6s %-8s %-8.8s %8s  %s",
		           cli_map_num(m, "id", 0), cli_map_str(m, "type", "?"),
		           own, cli_map_str(m, "state", "?"),
		           cli_map_str(m, "device", ""), run, fin);
	}
}

static void
draw(struct frame *f, const struct cli *c, const struct nq_map *rep,
     const char *trouble)
{
	char clock[32];
	time_t now = time(NULL);
	struct tm tm;
	const struct nq_value *others;

	if (localtime_r(&now, &tm))
		strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
	else
		clock[0] = 0;
	frame_line(f, "neuroq top  %s  %s%s%s", c->url, clock,
	           rep && cli_map_num(rep, "draining", 0) ? "  DRAINING" : "",
	           f->tty ? "  (q quits)" : "");
	if (trouble != NULL) {
		frame_line(f, "%s", trouble);
		if (rep == NULL)
			return;
	}
	frame_line(f, "%s", "");
	draw_devices(f, rep);
	draw_running(f, rep);
	draw_queue(f, rep);
	draw_recent(f, rep);
	others = nq_map_get(rep, "others");
	if (others != NULL && others->kind == NQ_MAP) {
		frame_line(f, "%s", "");
		frame_line(f, "other users' jobs: %.0f queued, %.0f running",
		           cli_map_num(others->u.map, "queued", 0),
		           cli_map_num(others->u.map, "running", 0));
	}
}

/* ---- the terminal */

static struct termios top_saved;
static int top_raw;

static void
term_size(int *w, int *h)
{
	struct winsize ws;
	const char *cols = getenv("COLUMNS");

	*w = 100;
	*h = 0;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
		*w = ws.ws_col;
		*h = ws.ws_row;
	} else if (cols != NULL) {
		char *end;
		long c = strtol(cols, &end, 10);
		if (end != cols && *end == '\0' && c > 0 && c <= 10000)
			*w = (int) c;
	}
	if (*w < TOP_MIN_WIDTH)
		*w = TOP_MIN_WIDTH;
}

static void
write_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(STDOUT_FILENO, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return;
		p += k;
		n -= (size_t) k;
	}
}

static int
term_enter(void)
{
	struct termios t;

	if (tcgetattr(STDIN_FILENO, &top_saved) != 0)
		return -1;
	t = top_saved;
	t.c_lflag &= ~(tcflag_t) (ICANON | ECHO);
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) != 0)
		return -1;
	top_raw = 1;
	/* the alternate screen, cursor hidden */
	write_all("\033[?1049h\033[?25l", 14);
	return 0;
}

static void
term_leave(void)
{
	if (!top_raw)
		return;
	write_all("\033[?25h\033[?1049l", 14);
	tcsetattr(STDIN_FILENO, TCSANOW, &top_saved);
	top_raw = 0;
}

/* Ctrl-Z: the shell's terminal back, stop as SIGTSTP would, and on
 * SIGCONT the alternate screen again (the next frame redraws it) */
static int
suspend_here(struct sigaction *sa)
{
	top_suspend = 0;
	term_leave();
	sa->sa_handler = SIG_DFL;
	sigaction(SIGTSTP, sa, NULL);
	raise(SIGTSTP); /* returns after SIGCONT */
	sa->sa_handler = on_suspend;
	sigaction(SIGTSTP, sa, NULL);
	return term_enter();
}

/* waits up to s seconds for a key; 1 when it asks to quit */
static int
wait_key(double s)
{
	double end = nq_mono_s() + s;

	while (!top_quit && !top_resized && !top_suspend) {
		double left = end - nq_mono_s();
		struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
		char k[16];
		ssize_t n;

		if (left <= 0)
			return 0;
		if (poll(&p, 1, (int) ceil(left * 1000)) <= 0)
			continue; /* timeout, or a signal: the loop decides */
		n = read(STDIN_FILENO, k, sizeof(k));
		if (n == 0)
			return 1; /* the terminal went away */
		for (ssize_t i = 0; i < n; i++) {
			if (k[i] == 'q' || k[i] == 'Q')
				return 1;
		}
	}
	return top_quit;
}

static int
top_frame_once(struct cli *c)
{
	struct nq_value rep;
	struct frame f = {0};
	int rv = cli_call(c, "queue", NULL, &rep);

	if (rv != CLI_OK) {
		if (rv == CLI_EREPLY && c->json) {
			cli_json_print(stdout, &rep);
			fputc('\n', stdout);
		}
		if (rv == CLI_EREPLY)
			nq_value_free(&rep);
		return rv;
	}
	if (c->json) {
		cli_json_print(stdout, &rep);
		fputc('\n', stdout);
	} else {
		term_size(&f.width, &f.height);
		f.height = 0; /* every line */
		draw(&f, c, rep.u.map, NULL);
		if (!f.err)
			fwrite(f.buf, 1, f.len, stdout);
	}
	free(f.buf);
	nq_value_free(&rep);
	return f.err ? CLI_EREACH : CLI_OK;
}

int
cmd_top(struct cli *c, int argc, char **argv)
{
	double interval = 1;
	int once = 0, rv = CLI_OK;
	struct sigaction sa;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--once")) {
			once = 1;
		} else if (!strcmp(argv[i], "--interval") && i + 1 < argc) {
			if (cli_parse_seconds(argv[++i], &interval))
				return CLI_EUSAGE;
			if (interval < 0.1) {
				cli_usage_error("--interval must be >= 0.1");
				return CLI_EUSAGE;
			}
		} else {
			cli_usage_error("top: unexpected argument %s", argv[i]);
			return CLI_EUSAGE;
		}
	}
	if (once || c->json)
		return top_frame_once(c);
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		cli_usage_error("top needs a terminal (use --once or --json)");
		return CLI_EUSAGE;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_quit;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_winch;
	sigaction(SIGWINCH, &sa, NULL);
	sa.sa_handler = on_suspend;
	sigaction(SIGTSTP, &sa, NULL);
	if (term_enter() != 0) {
		cli_usage_error("top: cannot set up the terminal");
		return CLI_EUSAGE;
	}
	c->quiet = 1; /* a daemon away is shown in the frame */
	/* q and Ctrl-C are only read between requests: keep them short */
	if (c->timeout_s > 5)
		c->timeout_s = 5;
	while (!top_quit) {
		struct nq_value rep;
		struct frame f = {0};
		char trouble[256];
		int r = cli_call(c, "queue", NULL, &rep);

		term_size(&f.width, &f.height);
		f.tty = 1;
		if (f.height > 1)
			f.height--; /* a newline on the last row would scroll */
		if (r == CLI_EREPLY) {
			/* e.g. an older daemon without the op: no point
			 * asking again */
			term_leave();
			cli_print_error_reply(rep.u.map);
			nq_value_free(&rep);
			rv = CLI_EREPLY;
			break;
		}
		if (r != CLI_OK)
			snprintf(trouble, sizeof(trouble),
			         "cannot reach the daemon; trying again");
		write_all("\033[H", 3);
		draw(&f, c, r == CLI_OK ? rep.u.map : NULL,
		     r == CLI_OK ? NULL : trouble);
		if (!f.err) {
			write_all(f.buf, f.len);
			write_all("\033[J", 3);
		}
		free(f.buf);
		if (r == CLI_OK)
			nq_value_free(&rep);
		if (r != CLI_OK)
			cli_close(c); /* dial again next time */
		top_resized = 0;
		if (wait_key(interval))
			break;
		if (top_suspend && suspend_here(&sa) != 0) {
			cli_usage_error("top: cannot set up the terminal");
			rv = CLI_EUSAGE;
			break;
		}
	}
	term_leave();
	return rv;
}
